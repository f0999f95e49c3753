"""The EKS control plane: its secrets key, role and log group, the ``aws.eks.Cluster``, the
IAM OIDC provider of IRSA, the admin access entry, the managed add-ons, and the kubeconfig
and ``pulumi_kubernetes`` provider every Kubernetes object uses.

Plain pulumi-aws (pulumi-eks is not on our list). Every resource here is a child of the
``Cluster`` component; those that used to be children of the ``aws.eks.Cluster`` or of an
IAM role keep their deployed URN through an alias (``contract.owned``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster.args import ClusterArgs
from components.cluster.iam_policies import cluster_encryption_policy
from components.config.versions import ADDON_VERSIONS
from components.shared.contract import owned
from components.shared.iam import service_account_role, service_trust_policy
from components.shared.kms import account_key_policy, customer_key
from components.shared.log_groups import EncryptedLogs, encrypted_logs
from components.shared.stack import StackContext

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator")
ADMIN_ACCESS_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
# DaemonSets that nodes need to become Ready: installed before the node groups. The others
# run Deployments and need nodes to become ACTIVE.
ADDONS_BEFORE_NODES = ("vpc-cni", "kube-proxy")


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
ADDON_CONFIG: dict[str, str] = {
    # NetworkPolicies of the workloads are enforced by the VPC CNI's policy agent.
    "vpc-cni": json.dumps({"enableNetworkPolicy": "true"}),
}


def kubeconfig(
    cluster_name: str, endpoint: str, ca_data: str, region: str, profile: str | None = None
) -> dict[str, Any]:
    """A kubeconfig whose user runs ``aws eks get-token``: short-lived tokens, nothing stored.
    ``profile`` (the stack's ``aws:profile``) is passed as ``--profile``, not left to
    ``AWS_PROFILE``, which ambient credentials override: the token must belong to the identity
    that created the cluster, its only admin besides ``clusterAdminRoleArn``."""
    token_args = ["eks", "get-token", "--cluster-name", cluster_name, "--region", region]
    if profile:
        token_args += ["--profile", profile]
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
                        "args": [*token_args, "--output", "json"],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }


@dataclass(frozen=True)
class ControlPlane:
    """What the node groups, add-ons and controllers build on."""

    component: pulumi.Resource
    """The ``Cluster`` component, parent of every resource of the cluster."""
    name: str
    """Logical name of the component, the prefix of its children's names."""
    tags: dict[str, str]
    eks: aws.eks.Cluster
    oidc: aws.iam.OpenIdConnectProvider
    oidc_issuer: pulumi.Output[str]
    """OIDC issuer without ``https://``."""
    security_group_id: pulumi.Output[str]
    """Security group EKS created for the control plane and nodes."""
    logs: EncryptedLogs
    """The key of the cluster's log groups (control plane, Container Insights)."""
    api_access: list[pulumi.Resource] = field(default_factory=list)
    """The rules admitting the deployers to the private API endpoint: Kubernetes objects
    wait for them."""

    def irsa_role(self, role: str, namespace: str, service_account: str) -> aws.iam.Role:
        """``<name>-<role>-role``, assumed by one service account through IRSA."""
        return service_account_role(
            f"{self.name}-{role}-role",
            oidc_provider_arn=self.oidc.arn,
            oidc_issuer=self.oidc_issuer,
            namespace=namespace,
            service_account=service_account,
            tags=self.tags,
            opts=owned(self.component, was=self.eks),
        )


def cluster_logs(
    name: str, cluster_name: str, stack: StackContext, opts: pulumi.ResourceOptions
) -> EncryptedLogs:
    """The key of the control plane's and Container Insights' log groups, which keep the
    stack's log retention."""
    return encrypted_logs(
        f"{name}-logs-key",
        log_group_prefixes=[f"/aws/eks/{cluster_name}/", f"/aws/containerinsights/{cluster_name}/"],
        description=f"Encrypts the log groups of {cluster_name}",
        retention_days=stack.log_retention_days,
        tags=stack.tags,
        opts=opts,
    )


def control_plane(component: pulumi.Resource, name: str, args: ClusterArgs) -> ControlPlane:
    """The control plane, its OIDC provider and (when configured) the admin access entry."""
    child = pulumi.ResourceOptions(parent=component)
    secrets_key = customer_key(
        f"{name}-secrets-key",
        description=f"Encrypts Kubernetes secrets of {args.cluster_name}",
        policy=account_key_policy(),
        tags=args.stack.tags,
        opts=child,
    )
    logs = cluster_logs(name, args.cluster_name, args.stack, child)
    cluster_role, role_policies = _cluster_role(component, name, args.stack.tags, secrets_key)
    # EKS would create this group with no retention; owning it sets retention and lets
    # `pulumi destroy` remove it.
    control_plane_logs = logs.group(
        f"{name}-control-plane-logs", name=f"/aws/eks/{args.cluster_name}/cluster"
    )
    eks = _eks_cluster(
        component,
        name,
        args,
        role=cluster_role,
        secrets_key=secrets_key,
        depends_on=[*role_policies, control_plane_logs],
    )
    issuer_url = eks.identities.apply(lambda ids: (ids[0].oidcs or [])[0].issuer or "")
    oidc = aws.iam.OpenIdConnectProvider(
        f"{name}-oidc",
        url=issuer_url,
        client_id_lists=["sts.amazonaws.com"],
        tags=args.stack.tags,
        opts=owned(component, was=eks),
    )
    plane = ControlPlane(
        component=component,
        name=name,
        tags=args.stack.tags,
        eks=eks,
        oidc=oidc,
        oidc_issuer=issuer_url.apply(lambda url: url.removeprefix("https://")),
        security_group_id=eks.vpc_config.apply(lambda c: c.cluster_security_group_id or ""),
        logs=logs,
    )
    plane.api_access.extend(
        _api_access(plane, args.api_access_cidrs, args.api_access_security_group_ids)
    )
    if args.admin_role_arn:
        _admin_access(plane, args.admin_role_arn)
    return plane


def _api_access(
    plane: ControlPlane, cidrs: Sequence[str], security_group_ids: Sequence[str]
) -> list[pulumi.Resource]:
    """HTTPS to the private API endpoint from the deployers' networks: the cluster security
    group EKS creates admits only itself, so a runner in a peered or connected network (or a
    bastion's group) needs these rules to install the charts and the workloads."""

    def rule(suffix: str, description: str) -> dict[str, Any]:
        return {
            "resource_name": f"{plane.name}-api-from-{suffix}",
            "security_group_id": plane.security_group_id,
            "ip_protocol": "tcp",
            "from_port": 443,
            "to_port": 443,
            "description": f"Kubernetes API from {description}",
            "tags": plane.tags,
            "opts": owned(plane.component, was=plane.eks),
        }

    rules: list[pulumi.Resource] = [
        aws.vpc.SecurityGroupIngressRule(
            **rule(cidr.replace(".", "-").replace("/", "-"), f"{cidr} (clusterApiAccessCidrs)"),
            cidr_ipv4=cidr,
        )
        for cidr in cidrs
    ]
    rules += [
        aws.vpc.SecurityGroupIngressRule(
            **rule(group, f"{group} (clusterApiAccessSecurityGroupIds)"),
            referenced_security_group_id=group,
        )
        for group in security_group_ids
    ]
    return rules


def _cluster_role(
    component: pulumi.Resource, name: str, tags: dict[str, str], secrets_key: aws.kms.Key
) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
    """The control plane's role and the policies it must have before the cluster exists."""
    role = aws.iam.Role(
        f"{name}-cluster-role",
        assume_role_policy=service_trust_policy("eks.amazonaws.com", tag_session=True),
        tags=tags,
        opts=pulumi.ResourceOptions(parent=component),
    )
    cluster_policy = aws.iam.RolePolicyAttachment(
        f"{name}-cluster-policy",
        role=role.name,
        policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
        opts=owned(component, was=role),
    )
    encryption_policy = aws.iam.RolePolicy(
        f"{name}-cluster-kms",
        role=role.id,
        policy=secrets_key.arn.apply(cluster_encryption_policy),
        opts=owned(component, was=role),
    )
    return role, [cluster_policy, encryption_policy]


def _eks_cluster(
    component: pulumi.Resource,
    name: str,
    args: ClusterArgs,
    *,
    role: aws.iam.Role,
    secrets_key: aws.kms.Key,
    depends_on: Sequence[pulumi.Resource],
) -> aws.eks.Cluster:
    public_cidrs = list(args.public_access_cidrs)
    vpc_config: aws.eks.ClusterVpcConfigArgsDict = {
        "subnet_ids": list(args.network.private_subnet_ids),
        "endpoint_private_access": True,
        "endpoint_public_access": bool(public_cidrs),
    }
    if public_cidrs:
        vpc_config["public_access_cidrs"] = public_cidrs
    return aws.eks.Cluster(
        f"{name}-eks",
        name=args.cluster_name,
        version=args.kubernetes_version,
        role_arn=role.arn,
        vpc_config=vpc_config,
        access_config={
            "authentication_mode": "API",
            # The identity running `pulumi up` must reach the API to install the
            # controllers and the workloads.
            "bootstrap_cluster_creator_admin_permissions": True,
        },
        # The managed add-ons replace the self-managed defaults.
        bootstrap_self_managed_addons=False,
        enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
        encryption_config={"resources": ["secrets"], "provider": {"key_arn": secrets_key.arn}},
        # No silent move to paid extended support: upgrades are planned (see versions.py).
        upgrade_policy={"support_type": "STANDARD"},
        deletion_protection=args.stack.protect,
        tags=args.stack.tags,
        opts=pulumi.ResourceOptions(parent=component, depends_on=list(depends_on)),
    )


def _admin_access(plane: ControlPlane, admin_role_arn: str) -> None:
    """Cluster admin for ``admin_role_arn`` through an access entry (never the role that
    creates the cluster, which EKS makes admin itself: ``stacks.preconditions``)."""
    admin = aws.eks.AccessEntry(
        f"{plane.name}-admin",
        cluster_name=plane.eks.name,
        principal_arn=admin_role_arn,
        type="STANDARD",
        tags=plane.tags,
        opts=owned(plane.component, was=plane.eks),
    )
    aws.eks.AccessPolicyAssociation(
        f"{plane.name}-admin-policy",
        cluster_name=plane.eks.name,
        principal_arn=admin_role_arn,
        policy_arn=ADMIN_ACCESS_POLICY,
        access_scope={"type": "cluster"},
        opts=owned(plane.component, was=admin, depends_on=[admin]),
    )


def addon_roles(plane: ControlPlane) -> dict[str, aws.iam.Role]:
    """The IRSA role of every add-on in ``ADDON_ROLES``, with its managed policy."""
    roles: dict[str, aws.iam.Role] = {}
    for addon, sa in ADDON_ROLES.items():
        role = plane.irsa_role(addon, sa.namespace, sa.service_account)
        aws.iam.RolePolicyAttachment(
            f"{plane.name}-{addon}-policy",
            role=role.name,
            policy_arn=sa.policy_arn,
            opts=owned(plane.component, was=role),
        )
        roles[addon] = role
    return roles


def addons(
    plane: ControlPlane,
    names: Sequence[str],
    roles: dict[str, aws.iam.Role],
    *,
    after: Sequence[pulumi.Resource],
) -> list[aws.eks.Addon]:
    """The managed add-ons ``names``, each created after ``after``."""
    return [_addon(plane, addon, roles.get(addon), after) for addon in names]


def _addon(
    plane: ControlPlane,
    addon: str,
    role: aws.iam.Role | None,
    after: Sequence[pulumi.Resource],
) -> aws.eks.Addon:
    return aws.eks.Addon(
        f"{plane.name}-{addon}",
        cluster_name=plane.eks.name,
        addon_name=addon,
        addon_version=ADDON_VERSIONS[addon],
        service_account_role_arn=role.arn if role else None,
        configuration_values=ADDON_CONFIG.get(addon),
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="OVERWRITE",
        tags=plane.tags,
        opts=owned(plane.component, was=plane.eks, depends_on=after),
    )


def kubernetes_provider(
    plane: ControlPlane, region: str, *, depends_on: Sequence[pulumi.Resource]
) -> tuple[pulumi.Output[str], k8s.Provider]:
    """The kubeconfig (a secret) and the provider of every Kubernetes object, which waits
    for ``depends_on`` (nodes and add-ons) so that objects find a working cluster."""
    eks = plane.eks
    config: pulumi.Output[str] = pulumi.Output.secret(
        pulumi.Output.all(
            eks.name,
            eks.endpoint,
            eks.certificate_authority.apply(lambda ca: ca.data or ""),
        ).apply(lambda v: json.dumps(kubeconfig(v[0], v[1], v[2], region, aws.config.profile)))
    )
    provider = k8s.Provider(
        f"{plane.name}-k8s",
        kubeconfig=config,
        opts=pulumi.ResourceOptions(parent=plane.component, depends_on=list(depends_on)),
    )
    return config, provider
