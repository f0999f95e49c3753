"""The EKS cluster: control plane, managed node groups, IRSA, add-ons, autoscaler, load
balancer controller, and the ``pulumi_kubernetes`` provider every Kubernetes object uses.

Plain pulumi-aws (pulumi-eks is not on our list). Kubernetes 1.35: released on EKS on
2026-01-28, in standard support until 2027-03-27, so a new cluster today (2026-11) is on a
supported version with four months to plan the 1.36 upgrade; 1.34's standard support ends
2026-12-02, too close to start on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.alarms import Threshold, metric_alarm
from components.catalog import NodeGroupSize
from components.iam import service_account_role, service_trust_policy
from components.kms import customer_key

KUBERNETES_VERSION = "1.35"

# Managed add-on versions for KUBERNETES_VERSION. Refresh them when the version changes:
#   aws eks describe-addon-versions --kubernetes-version 1.35 --addon-name <name> \
#     --query 'addons[].addonVersions[0].addonVersion'
ADDON_VERSIONS: dict[str, str] = {
    "vpc-cni": "v1.21.1-eksbuild.3",
    "kube-proxy": "v1.35.0-eksbuild.2",
    "coredns": "v1.13.2-eksbuild.1",
    "aws-ebs-csi-driver": "v1.57.1-eksbuild.1",
    "amazon-cloudwatch-observability": "v5.3.0-eksbuild.1",
}
# DaemonSets that nodes need to become Ready: installed before the node groups. The others
# run Deployments and need nodes to become ACTIVE.
ADDONS_BEFORE_NODES = ("vpc-cni", "kube-proxy")

# The cluster autoscaler's minor must match Kubernetes': chart 9.54.0 ships 1.35.0.
# Refresh: helm search repo autoscaler/cluster-autoscaler --versions
CLUSTER_AUTOSCALER_CHART = "9.54.0"
CLUSTER_AUTOSCALER_IMAGE_TAG = "v1.35.0"
# AWS Load Balancer Controller chart 1.17.1 (controller v2.17.1). Refresh:
#   helm search repo eks/aws-load-balancer-controller --versions
LOAD_BALANCER_CONTROLLER_CHART = "1.17.1"

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator")
# Log groups the CloudWatch observability add-on writes to; created here so that they get
# the tier's retention instead of "never expire", and so metric filters can target them.
CONTAINER_INSIGHTS_LOG_GROUPS = ("application", "dataplane", "host", "performance")
NODE_UPDATE_MAX_UNAVAILABLE_PERCENT = 33
AMI_TYPE = "AL2023_x86_64_STANDARD"

ADMIN_ACCESS_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)


@dataclass(frozen=True)
class ServiceAccountRole:
    """An add-on's Kubernetes service account bound by IRSA to an AWS managed policy."""

    namespace: str
    service_account: str
    policy_arn: str


# The VPC CNI gets its permissions through IRSA instead of the node role, so pods on the
# node cannot borrow them.
ADDON_ROLES: dict[str, ServiceAccountRole] = {
    "vpc-cni": ServiceAccountRole(
        "kube-system", "aws-node", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"
    ),
    "aws-ebs-csi-driver": ServiceAccountRole(
        "kube-system",
        "ebs-csi-controller-sa",
        "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
    ),
    "amazon-cloudwatch-observability": ServiceAccountRole(
        "amazon-cloudwatch",
        "cloudwatch-agent",
        "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
    ),
}
AUTOSCALER_SA = ("kube-system", "cluster-autoscaler")
LOAD_BALANCER_CONTROLLER_SA = ("kube-system", "aws-load-balancer-controller")


def cluster_encryption_policy(key_arn: str) -> str:
    """What the control plane needs on the secrets-encryption key."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                    "Resource": key_arn,
                }
            ],
        }
    )


def autoscaler_policy(cluster_name: str) -> str:
    """Cluster autoscaler, least privilege: read anything, but resize and terminate only in
    the groups tagged as owned by this cluster (EKS tags managed node groups' ASGs so)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Discover",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                        # Labels and taints of empty groups (scale from zero: training).
                        "eks:DescribeNodegroup",
                    ],
                    "Resource": "*",
                },
                {
                    "Sid": "ScaleOwnedGroups",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:SetDesiredCapacity",
                        "autoscaling:TerminateInstanceInAutoScalingGroup",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {
                            f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"
                        }
                    },
                },
            ],
        }
    )


def load_balancer_controller_policy() -> str:
    """AWS Load Balancer Controller, a least-privilege subset of the official policy.

    Kept: discovery, TargetGroupBinding (register/deregister pod IPs in any target group,
    including the one Pulumi creates for the API), and managing ALBs, target groups and
    security groups the controller itself created (tagged ``elbv2.k8s.aws/cluster``).
    Dropped: ACM, Cognito, WAF and Shield (TLS and WAF live on CloudFront here) and the
    untagged security-group rule edits (our TargetGroupBinding has no ``networking``; the
    ALB-to-pod rule is managed by Pulumi).
    """
    cluster_tag_present = {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"}}
    owned = {"Null": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}}
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ServiceLinkedRole",
                    "Effect": "Allow",
                    "Action": "iam:CreateServiceLinkedRole",
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}
                    },
                },
                {
                    "Sid": "Discover",
                    "Effect": "Allow",
                    "Action": [
                        "ec2:DescribeAccountAttributes",
                        "ec2:DescribeAddresses",
                        "ec2:DescribeAvailabilityZones",
                        "ec2:DescribeInternetGateways",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeVpcPeeringConnections",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeSecurityGroups",
                        "ec2:DescribeInstances",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeTags",
                        "ec2:DescribeRouteTables",
                        "ec2:GetSecurityGroupsForVpc",
                        "elasticloadbalancing:DescribeLoadBalancers",
                        "elasticloadbalancing:DescribeLoadBalancerAttributes",
                        "elasticloadbalancing:DescribeListeners",
                        "elasticloadbalancing:DescribeListenerAttributes",
                        "elasticloadbalancing:DescribeListenerCertificates",
                        "elasticloadbalancing:DescribeSSLPolicies",
                        "elasticloadbalancing:DescribeRules",
                        "elasticloadbalancing:DescribeTargetGroups",
                        "elasticloadbalancing:DescribeTargetGroupAttributes",
                        "elasticloadbalancing:DescribeTargetHealth",
                        "elasticloadbalancing:DescribeTags",
                        "elasticloadbalancing:DescribeTrustStores",
                        "elasticloadbalancing:DescribeCapacityReservation",
                    ],
                    "Resource": "*",
                },
                {
                    "Sid": "TargetGroupBinding",
                    "Effect": "Allow",
                    "Action": [
                        "elasticloadbalancing:RegisterTargets",
                        "elasticloadbalancing:DeregisterTargets",
                    ],
                    "Resource": "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
                },
                {
                    "Sid": "CreateSecurityGroup",
                    "Effect": "Allow",
                    "Action": "ec2:CreateSecurityGroup",
                    "Resource": "*",
                },
                {
                    "Sid": "TagNewSecurityGroup",
                    "Effect": "Allow",
                    "Action": "ec2:CreateTags",
                    "Resource": "arn:aws:ec2:*:*:security-group/*",
                    "Condition": {
                        "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"},
                        **cluster_tag_present,
                    },
                },
                {
                    "Sid": "ManageOwnedSecurityGroups",
                    "Effect": "Allow",
                    "Action": [
                        "ec2:CreateTags",
                        "ec2:DeleteTags",
                        "ec2:AuthorizeSecurityGroupIngress",
                        "ec2:RevokeSecurityGroupIngress",
                        "ec2:DeleteSecurityGroup",
                    ],
                    "Resource": "*",
                    "Condition": owned,
                },
                {
                    "Sid": "CreateTaggedLoadBalancers",
                    "Effect": "Allow",
                    "Action": [
                        "elasticloadbalancing:CreateLoadBalancer",
                        "elasticloadbalancing:CreateTargetGroup",
                    ],
                    "Resource": "*",
                    "Condition": cluster_tag_present,
                },
                {
                    "Sid": "ListenersAndRules",
                    "Effect": "Allow",
                    "Action": [
                        "elasticloadbalancing:CreateListener",
                        "elasticloadbalancing:DeleteListener",
                        "elasticloadbalancing:CreateRule",
                        "elasticloadbalancing:DeleteRule",
                        "elasticloadbalancing:ModifyListener",
                        "elasticloadbalancing:ModifyRule",
                    ],
                    "Resource": "*",
                },
                {
                    "Sid": "TagOwnedLoadBalancers",
                    "Effect": "Allow",
                    "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
                    "Resource": [
                        "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
                        "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
                    ],
                    "Condition": {
                        "Null": {
                            "aws:RequestTag/elbv2.k8s.aws/cluster": "true",
                            "aws:ResourceTag/elbv2.k8s.aws/cluster": "false",
                        }
                    },
                },
                {
                    "Sid": "TagOnCreate",
                    "Effect": "Allow",
                    "Action": "elasticloadbalancing:AddTags",
                    "Resource": [
                        "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
                        "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
                    ],
                    "Condition": {
                        "StringEquals": {
                            "elasticloadbalancing:CreateAction": [
                                "CreateTargetGroup",
                                "CreateLoadBalancer",
                            ]
                        },
                        **cluster_tag_present,
                    },
                },
                {
                    "Sid": "ModifyOwnedLoadBalancers",
                    "Effect": "Allow",
                    "Action": [
                        "elasticloadbalancing:ModifyLoadBalancerAttributes",
                        "elasticloadbalancing:SetIpAddressType",
                        "elasticloadbalancing:SetSecurityGroups",
                        "elasticloadbalancing:SetSubnets",
                        "elasticloadbalancing:DeleteLoadBalancer",
                        "elasticloadbalancing:ModifyTargetGroup",
                        "elasticloadbalancing:ModifyTargetGroupAttributes",
                        "elasticloadbalancing:ModifyListenerAttributes",
                        "elasticloadbalancing:DeleteTargetGroup",
                    ],
                    "Resource": "*",
                    "Condition": owned,
                },
            ],
        }
    )


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> dict[str, Any]:
    """A kubeconfig whose user runs ``aws eks get-token``: short-lived tokens, nothing stored."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": "aws"}}],
        "current-context": cluster_name,
        "users": [
            {
                "name": "aws",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": [
                            "eks",
                            "get-token",
                            "--cluster-name",
                            cluster_name,
                            "--region",
                            region,
                            "--output",
                            "json",
                        ],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }


def node_group_tags(cluster_name: str, group: NodeGroupSize) -> dict[str, str]:
    """Cluster autoscaler auto-discovery tags, plus the label/taint templates of a group.

    EKS tags a managed group's Auto Scaling group for auto-discovery itself and does not copy
    these tags there; the autoscaler reads a group's labels and taints (to scale the training
    group up from zero) with eks:DescribeNodegroup, which its policy grants. The tags keep the
    intent visible on the node group and in the plan."""
    tags = {
        "k8s.io/cluster-autoscaler/enabled": "true",
        f"k8s.io/cluster-autoscaler/{cluster_name}": "owned",
        "k8s.io/cluster-autoscaler/node-template/label/workload": group.name,
    }
    if group.dedicated:
        tags["k8s.io/cluster-autoscaler/node-template/taint/workload"] = f"{group.name}:NoSchedule"
    return tags


def system_node_selector(groups: Sequence[NodeGroupSize]) -> dict[str, str]:
    """Cluster add-ons go to the ``system`` group where the tier has one."""
    return {"workload": "system"} if any(g.name == "system" for g in groups) else {}


@dataclass
class ClusterArgs:
    cluster_name: str
    """EKS cluster name; also names the control-plane log group and the autoscaler tags."""
    region: str
    """AWS region, for the kubeconfig and the controllers (IMDS is closed to pods)."""
    vpc_id: pulumi.Input[str]
    """VPC of the cluster."""
    private_subnet_ids: Sequence[pulumi.Input[str]]
    """Subnets of the control-plane ENIs and the nodes."""
    app_security_group_id: pulumi.Input[str]
    """The application tier's security group, attached to every node (data stores admit it)."""
    node_groups: Sequence[NodeGroupSize]
    """Managed node groups of the tier (``spec.tier.node_groups``)."""
    log_retention_days: int
    """Retention of the control-plane and Container Insights log groups."""
    alarm_topic_arn: pulumi.Input[str]
    """Topic the node CPU/memory alarms notify."""
    alarm_cpu_percent: int
    """Node CPU utilization alarm threshold."""
    alarm_memory_percent: int
    """Node memory utilization alarm threshold."""
    kubernetes_version: str = KUBERNETES_VERSION
    """Pinned control-plane minor version; the add-on table must match it."""
    public_access_cidrs: Sequence[str] = ()
    """CIDRs allowed to the public API endpoint; empty keeps the endpoint private only."""
    admin_role_arn: str | None = None
    """IAM role granted cluster admin through an access entry."""
    deletion_protection: bool = False
    """EKS deletion protection (outside dev)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for every resource of the component."""


class Cluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    """Name of the EKS cluster."""
    cluster_endpoint: pulumi.Output[str]
    """HTTPS endpoint of the Kubernetes API."""
    cluster_security_group_id: pulumi.Output[str]
    """Security group EKS created for the control plane and nodes."""
    oidc_provider_arn: pulumi.Output[str]
    """IAM OIDC provider for IRSA trust policies."""
    oidc_issuer: pulumi.Output[str]
    """OIDC issuer without ``https://``, the prefix of IRSA condition keys."""
    kubeconfig: pulumi.Output[str]
    """Kubeconfig (JSON) with an ``aws eks get-token`` user; a secret output."""
    k8s_provider: k8s.Provider
    """Provider every Kubernetes resource of the stack must use."""
    node_role_arn: pulumi.Output[str]
    """IAM role of the nodes."""
    application_log_group_name: pulumi.Output[str]
    """Container Insights log group of container stdout/stderr, for metric filters."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:cluster:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags
        cluster_name = args.cluster_name
        if not args.node_groups:
            raise ValueError(f"cluster {cluster_name}: at least one node group is required")

        # -- control plane ---------------------------------------------------------------
        secrets_key = customer_key(
            f"{name}-secrets-key",
            description=f"Encrypts Kubernetes secrets of {cluster_name}",
            tags=tags,
            opts=child,
        )
        cluster_role = aws.iam.Role(
            f"{name}-cluster-role",
            assume_role_policy=service_trust_policy("eks.amazonaws.com", tag_session=True),
            tags=tags,
            opts=child,
        )
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy",
            role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=pulumi.ResourceOptions(parent=cluster_role),
        )
        encryption_policy = aws.iam.RolePolicy(
            f"{name}-cluster-kms",
            role=cluster_role.id,
            policy=secrets_key.arn.apply(cluster_encryption_policy),
            opts=pulumi.ResourceOptions(parent=cluster_role),
        )
        # EKS would create this group with no retention; owning it sets retention and lets
        # `pulumi destroy` remove it.
        control_plane_logs = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            tags=tags,
            opts=child,
        )
        public_cidrs = list(args.public_access_cidrs)
        vpc_config: aws.eks.ClusterVpcConfigArgsDict = {
            "subnet_ids": list(args.private_subnet_ids),
            "endpoint_private_access": True,
            "endpoint_public_access": bool(public_cidrs),
        }
        if public_cidrs:
            vpc_config["public_access_cidrs"] = public_cidrs
        cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=cluster_name,
            version=args.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=vpc_config,
            access_config={
                "authentication_mode": "API",
                # The identity running `pulumi up` must reach the API to install the
                # controllers and the workloads.
                "bootstrap_cluster_creator_admin_permissions": True,
            },
            # The managed add-ons below replace the self-managed defaults.
            bootstrap_self_managed_addons=False,
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            encryption_config={"resources": ["secrets"], "provider": {"key_arn": secrets_key.arn}},
            # No silent move to paid extended support: upgrades are planned (see module doc).
            upgrade_policy={"support_type": "STANDARD"},
            deletion_protection=args.deletion_protection,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[cluster_policy, encryption_policy, control_plane_logs],
            ),
        )
        in_cluster = pulumi.ResourceOptions(parent=cluster)
        issuer_url = cluster.identities.apply(lambda ids: (ids[0].oidcs or [])[0].issuer or "")
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer_url,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags,
            opts=in_cluster,
        )
        self.oidc_issuer = issuer_url.apply(lambda url: url.removeprefix("https://"))
        self.oidc_provider_arn = oidc.arn

        if args.admin_role_arn:
            admin = aws.eks.AccessEntry(
                f"{name}-admin",
                cluster_name=cluster.name,
                principal_arn=args.admin_role_arn,
                type="STANDARD",
                tags=tags,
                opts=in_cluster,
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-policy",
                cluster_name=cluster.name,
                principal_arn=args.admin_role_arn,
                policy_arn=ADMIN_ACCESS_POLICY,
                access_scope={"type": "cluster"},
                opts=pulumi.ResourceOptions(parent=admin, depends_on=[admin]),
            )

        def irsa_role(role: str, namespace: str, service_account: str) -> aws.iam.Role:
            return service_account_role(
                f"{name}-{role}-role",
                oidc_provider_arn=oidc.arn,
                oidc_issuer=self.oidc_issuer,
                namespace=namespace,
                service_account=service_account,
                tags=tags,
                opts=in_cluster,
            )

        # -- add-ons -----------------------------------------------------------------------
        addon_roles: dict[str, aws.iam.Role] = {}
        for addon, sa in ADDON_ROLES.items():
            role = irsa_role(addon, sa.namespace, sa.service_account)
            aws.iam.RolePolicyAttachment(
                f"{name}-{addon}-policy",
                role=role.name,
                policy_arn=sa.policy_arn,
                opts=pulumi.ResourceOptions(parent=role),
            )
            addon_roles[addon] = role
        addon_config: dict[str, str] = {
            # NetworkPolicies of the workloads are enforced by the VPC CNI's policy agent.
            "vpc-cni": json.dumps({"enableNetworkPolicy": "true"}),
        }

        def addon_resource(addon: str, after: Sequence[pulumi.Resource]) -> aws.eks.Addon:
            role = addon_roles.get(addon)
            return aws.eks.Addon(
                f"{name}-{addon}",
                cluster_name=cluster.name,
                addon_name=addon,
                addon_version=ADDON_VERSIONS[addon],
                service_account_role_arn=role.arn if role else None,
                configuration_values=addon_config.get(addon),
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                tags=tags,
                opts=pulumi.ResourceOptions(parent=cluster, depends_on=list(after)),
            )

        early_addons = [addon_resource(a, []) for a in ADDONS_BEFORE_NODES]

        # -- nodes -------------------------------------------------------------------------
        node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=service_trust_policy("ec2.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        node_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{arn.rsplit('/', 1)[-1]}",
                role=node_role.name,
                policy_arn=arn,
                opts=pulumi.ResourceOptions(parent=node_role),
            )
            for arn in NODE_POLICIES
        ]
        cluster_sg = cluster.vpc_config.apply(lambda c: c.cluster_security_group_id or "")
        node_groups: list[aws.eks.NodeGroup] = []
        for group in args.node_groups:
            node_tags = {**tags, "Name": f"{cluster_name}-{group.name}"}
            template = aws.ec2.LaunchTemplate(
                f"{name}-{group.name}-lt",
                name_prefix=f"{cluster_name}-{group.name}-",
                description=f"Nodes of the {group.name} group of {cluster_name}",
                update_default_version=True,
                block_device_mappings=[
                    {
                        "device_name": "/dev/xvda",
                        "ebs": {
                            "volume_size": group.disk_gib,
                            "volume_type": "gp3",
                            "encrypted": "true",
                            "delete_on_termination": "true",
                        },
                    }
                ],
                # IMDSv2 only, and one hop: pods (one hop further) cannot reach the node's
                # credentials; they get their own through IRSA.
                metadata_options={
                    "http_endpoint": "enabled",
                    "http_tokens": "required",
                    "http_put_response_hop_limit": 1,
                },
                # With a launch template EKS no longer adds the cluster SG by itself.
                vpc_security_group_ids=[args.app_security_group_id, cluster_sg],
                tag_specifications=[
                    {"resource_type": "instance", "tags": node_tags},
                    {"resource_type": "volume", "tags": node_tags},
                ],
                tags=tags,
                opts=child,
            )
            node_groups.append(
                aws.eks.NodeGroup(
                    f"{name}-{group.name}",
                    cluster_name=cluster.name,
                    # A prefix lets a replacement group come up before the old one goes.
                    node_group_name_prefix=f"{group.name}-",
                    node_role_arn=node_role.arn,
                    subnet_ids=list(args.private_subnet_ids),
                    ami_type=AMI_TYPE,
                    capacity_type=group.capacity_type,
                    instance_types=list(group.instance_types),
                    scaling_config={
                        "min_size": group.min_size,
                        "max_size": group.max_size,
                        "desired_size": group.desired_size,
                    },
                    update_config={
                        "max_unavailable_percentage": NODE_UPDATE_MAX_UNAVAILABLE_PERCENT
                    },
                    launch_template={
                        "id": template.id,
                        "version": template.latest_version.apply(str),
                    },
                    labels={"workload": group.name},
                    taints=[{"key": "workload", "value": group.name, "effect": "NO_SCHEDULE"}]
                    if group.dedicated
                    else None,
                    tags={**tags, **node_group_tags(cluster_name, group)},
                    opts=pulumi.ResourceOptions(
                        parent=cluster,
                        depends_on=[*node_policies, *early_addons],
                        # The cluster autoscaler owns the desired size between min and max.
                        ignore_changes=["scalingConfig.desiredSize"],
                    ),
                )
            )

        # -- Container Insights logs and node alarms -----------------------------------------
        insight_logs = {
            kind: aws.cloudwatch.LogGroup(
                f"{name}-insights-{kind}",
                name=f"/aws/containerinsights/{cluster_name}/{kind}",
                retention_in_days=args.log_retention_days,
                tags=tags,
                opts=child,
            )
            for kind in CONTAINER_INSIGHTS_LOG_GROUPS
        }
        # The CloudWatch agent's Fluent Bit would create the Container Insights log groups
        # itself (without retention) if it started first; ours must exist before it.
        late_addons = [
            addon_resource(a, [*node_groups, *insight_logs.values()])
            for a in ADDON_VERSIONS
            if a not in ADDONS_BEFORE_NODES
        ]
        for metric, limit in (
            ("node_cpu_utilization", args.alarm_cpu_percent),
            ("node_memory_utilization", args.alarm_memory_percent),
        ):
            metric_alarm(
                f"{name}-{metric.replace('_', '-')}",
                description=f"{cluster_name}: average {metric} > {limit}% for 10 minutes",
                namespace="ContainerInsights",
                metric=metric,
                dimensions={"ClusterName": cluster.name},
                # Missing data means the agent is down, which the dashboard shows; an
                # alarm on it would page at every cluster upgrade.
                threshold=Threshold(limit, period_seconds=300, periods=2, missing_data="missing"),
                topic_arn=args.alarm_topic_arn,
                tags=tags,
                parent=self,
            )

        # -- Kubernetes provider and controllers ---------------------------------------------
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.name,
                cluster.endpoint,
                cluster.certificate_authority.apply(lambda ca: ca.data or ""),
            ).apply(lambda v: json.dumps(kubeconfig(v[0], v[1], v[2], args.region)))
        )
        provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*node_groups, *late_addons]),
        )
        on_cluster = pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=[*node_groups, *late_addons]
        )
        selector = system_node_selector(args.node_groups)

        autoscaler_role = irsa_role("autoscaler", *AUTOSCALER_SA)
        aws.iam.RolePolicy(
            f"{name}-autoscaler-policy",
            role=autoscaler_role.id,
            policy=autoscaler_policy(cluster_name),
            opts=pulumi.ResourceOptions(parent=autoscaler_role),
        )
        k8s.helm.v3.Release(
            f"{name}-autoscaler",
            name="cluster-autoscaler",
            chart="cluster-autoscaler",
            version=CLUSTER_AUTOSCALER_CHART,
            repository_opts={"repo": "https://kubernetes.github.io/autoscaler"},
            namespace=AUTOSCALER_SA[0],
            values={
                "cloudProvider": "aws",
                "awsRegion": args.region,
                "autoDiscovery": {"clusterName": cluster_name},
                "image": {"tag": CLUSTER_AUTOSCALER_IMAGE_TAG},
                "rbac": {
                    "serviceAccount": {
                        "create": True,
                        "name": AUTOSCALER_SA[1],
                        "annotations": {"eks.amazonaws.com/role-arn": autoscaler_role.arn},
                    }
                },
                "extraArgs": {
                    "balance-similar-node-groups": True,
                    "skip-nodes-with-system-pods": False,
                    "expander": "least-waste",
                },
                "nodeSelector": selector,
            },
            opts=on_cluster,
        )

        lbc_role = irsa_role("lb-controller", *LOAD_BALANCER_CONTROLLER_SA)
        aws.iam.RolePolicy(
            f"{name}-lb-controller-policy",
            role=lbc_role.id,
            policy=load_balancer_controller_policy(),
            opts=pulumi.ResourceOptions(parent=lbc_role),
        )
        k8s.helm.v3.Release(
            f"{name}-lb-controller",
            name="aws-load-balancer-controller",
            chart="aws-load-balancer-controller",
            version=LOAD_BALANCER_CONTROLLER_CHART,
            repository_opts={"repo": "https://aws.github.io/eks-charts"},
            namespace=LOAD_BALANCER_CONTROLLER_SA[0],
            values={
                "clusterName": cluster_name,
                # Region and VPC given explicitly: IMDS is out of reach of pods (hop limit 1).
                "region": args.region,
                "vpcId": args.vpc_id,
                "replicaCount": 2,
                "serviceAccount": {
                    "create": True,
                    "name": LOAD_BALANCER_CONTROLLER_SA[1],
                    "annotations": {"eks.amazonaws.com/role-arn": lbc_role.arn},
                },
                # We bind a Pulumi-made ALB with a TargetGroupBinding; Services of type
                # LoadBalancer are not used, so their mutating webhook is not needed.
                "enableServiceMutatorWebhook": False,
                "nodeSelector": selector,
            },
            opts=on_cluster,
        )

        self.cluster_name = cluster.name
        self.cluster_endpoint = cluster.endpoint
        self.cluster_security_group_id = cluster_sg
        self.k8s_provider = provider
        self.node_role_arn = node_role.arn
        self.application_log_group_name = insight_logs["application"].name
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_endpoint": self.cluster_endpoint,
                "cluster_security_group_id": self.cluster_security_group_id,
                "oidc_provider_arn": self.oidc_provider_arn,
                "oidc_issuer": self.oidc_issuer,
                "kubeconfig": self.kubeconfig,
                "k8s_provider": self.k8s_provider,
                "node_role_arn": self.node_role_arn,
                "application_log_group_name": self.application_log_group_name,
            }
        )
