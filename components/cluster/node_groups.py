"""Managed node groups: the node role, one launch template and one group per tier group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.cluster.args import ClusterArgs
from components.cluster.control_plane import ControlPlane
from components.config.tier import NodeGroupSize
from components.shared.contract import NetworkRef, owned
from components.shared.iam import service_trust_policy

NODE_UPDATE_MAX_UNAVAILABLE_PERCENT = 33
AMI_TYPE = "AL2023_x86_64_STANDARD"
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)


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


@dataclass(frozen=True)
class Nodes:
    role: aws.iam.Role
    """IAM role of every node."""
    groups: list[aws.eks.NodeGroup]
    """One managed group per ``ClusterArgs.node_groups`` entry, in that order."""


def node_groups(
    plane: ControlPlane, args: ClusterArgs, *, after: Sequence[pulumi.Resource]
) -> Nodes:
    """The node role and the tier's groups; the groups come up after ``after`` (the
    add-ons nodes need to become Ready)."""
    role, role_policies = _node_role(plane)
    groups = []
    # Explicit, so that a control-plane upgrade reaches the nodes (EKS then rolls them onto
    # the new minor's AMI), but only once the stack lets go of the held version.
    version = args.node_kubernetes_version or args.kubernetes_version
    for group in args.node_groups:
        template = _launch_template(plane, args.cluster_name, args.network, group)
        groups.append(
            _node_group(
                plane,
                group,
                role,
                template,
                cluster_name=args.cluster_name,
                version=version,
                subnet_ids=args.network.private_subnet_ids,
                after=[*role_policies, *after],
            )
        )
    return Nodes(role=role, groups=groups)


def _node_role(plane: ControlPlane) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    role = aws.iam.Role(
        f"{plane.name}-node-role",
        assume_role_policy=service_trust_policy("ec2.amazonaws.com"),
        tags=plane.tags,
        opts=pulumi.ResourceOptions(parent=plane.component),
    )
    policies = [
        aws.iam.RolePolicyAttachment(
            f"{plane.name}-node-{arn.rsplit('/', 1)[-1]}",
            role=role.name,
            policy_arn=arn,
            opts=owned(plane.component, was=role),
        )
        for arn in NODE_POLICIES
    ]
    return role, policies


def _launch_template(
    plane: ControlPlane, cluster_name: str, network: NetworkRef, group: NodeGroupSize
) -> aws.ec2.LaunchTemplate:
    """The group's nodes: encrypted gp3 disk, IMDSv2 with one hop, the app tier's and the
    cluster's security groups."""
    node_tags = {**plane.tags, "Name": f"{cluster_name}-{group.name}"}
    return aws.ec2.LaunchTemplate(
        f"{plane.name}-{group.name}-lt",
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
        vpc_security_group_ids=[network.app_security_group_id, plane.security_group_id],
        tag_specifications=[
            {"resource_type": "instance", "tags": node_tags},
            {"resource_type": "volume", "tags": node_tags},
        ],
        tags=plane.tags,
        opts=pulumi.ResourceOptions(parent=plane.component),
    )


def _node_group(
    plane: ControlPlane,
    group: NodeGroupSize,
    role: aws.iam.Role,
    template: aws.ec2.LaunchTemplate,
    *,
    cluster_name: str,
    version: str,
    subnet_ids: Sequence[pulumi.Input[str]],
    after: Sequence[pulumi.Resource],
) -> aws.eks.NodeGroup:
    """The managed node group on Kubernetes ``version``, in ``subnet_ids``."""
    return aws.eks.NodeGroup(
        f"{plane.name}-{group.name}",
        cluster_name=plane.eks.name,
        # A prefix lets a replacement group come up before the old one goes.
        node_group_name_prefix=f"{group.name}-",
        node_role_arn=role.arn,
        version=version,
        subnet_ids=list(subnet_ids),
        ami_type=AMI_TYPE,
        capacity_type=group.capacity_type,
        instance_types=list(group.instance_types),
        scaling_config={
            "min_size": group.min_size,
            "max_size": group.max_size,
            "desired_size": group.desired_size,
        },
        update_config={"max_unavailable_percentage": NODE_UPDATE_MAX_UNAVAILABLE_PERCENT},
        launch_template={"id": template.id, "version": template.latest_version.apply(str)},
        labels={"workload": group.name},
        taints=[{"key": "workload", "value": group.name, "effect": "NO_SCHEDULE"}]
        if group.dedicated
        else None,
        tags={**plane.tags, **node_group_tags(cluster_name, group)},
        opts=pulumi.ResourceOptions.merge(
            owned(plane.component, was=plane.eks, depends_on=after),
            # The cluster autoscaler owns the desired size between min and max.
            pulumi.ResourceOptions(ignore_changes=["scalingConfig.desiredSize"]),
        ),
    )
