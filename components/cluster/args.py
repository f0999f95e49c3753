"""What the ``Cluster`` component is given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi

from components.config.tier import AlarmThresholds, NodeGroupSize
from components.config.versions import KUBERNETES_VERSION


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
    alarms: AlarmThresholds
    """The tier's alarm thresholds (node CPU and memory)."""
    kubernetes_version: str = KUBERNETES_VERSION
    """Pinned control-plane minor version; the add-on table must match it."""
    node_kubernetes_version: str | None = None
    """Minor the node groups stay on while the control plane and add-ons move first (an
    upgrade one step at a time); None: the control plane's."""
    public_access_cidrs: Sequence[str] = ()
    """CIDRs allowed to the public API endpoint; empty keeps the endpoint private only."""
    admin_role_arn: str | None = None
    """IAM role granted cluster admin through an access entry."""
    queue_autoscaler: bool = False
    """Install KEDA, which scales the event worker on its SQS queue's depth (SQS tiers)."""
    deletion_protection: bool = False
    """EKS deletion protection (outside dev)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for every resource of the component."""
