"""What the ``Cluster`` component is given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from components.config.tier import AlarmThresholds, NodeGroupSize
from components.config.versions import KUBERNETES_VERSION
from components.shared.contract import NetworkRef
from components.shared.stack import StackContext


@dataclass
class ClusterArgs:
    stack: StackContext
    """The stack: its region (for the kubeconfig and the controllers: IMDS is closed to
    pods), tags, the topic of the node alarms, the retention of the control-plane and
    Container Insights log groups, and ``protect`` (EKS deletion protection)."""
    network: NetworkRef
    """The VPC: the control-plane ENIs and the nodes take its private subnets, and every node
    carries the app tier's group (data stores admit it)."""
    cluster_name: str
    """EKS cluster name; also names the control-plane log group and the autoscaler tags."""
    node_groups: Sequence[NodeGroupSize]
    """Managed node groups of the tier (``spec.tier.node_groups``)."""
    alarms: AlarmThresholds
    """The tier's alarm thresholds (node CPU and memory)."""
    kubernetes_version: str = KUBERNETES_VERSION
    """Pinned control-plane minor version; the add-on table must match it."""
    node_kubernetes_version: str | None = None
    """Minor the node groups stay on while the control plane and add-ons move first (an
    upgrade one step at a time); None: the control plane's."""
    public_access_cidrs: Sequence[str] = ()
    """CIDRs allowed to the public API endpoint; empty keeps the endpoint private only."""
    api_access_cidrs: Sequence[str] = ()
    """Networks (peered, VPN, Transit Gateway) admitted to the private API endpoint on 443."""
    api_access_security_group_ids: Sequence[str] = ()
    """Security groups (a runner's, a bastion's) admitted to the private API endpoint on 443."""
    admin_role_arn: str | None = None
    """IAM role granted cluster admin through an access entry."""
    queue_autoscaler: bool = False
    """Install KEDA, which scales the event worker on its SQS queue's depth (SQS tiers)."""
