"""The ``Cluster`` component: composes the control plane, add-ons, node groups,
observability and controllers, every resource of them its direct child."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.args import ClusterArgs
from components.cluster.control_plane import (
    ADDONS_BEFORE_NODES,
    addon_roles,
    addons,
    control_plane,
    kubernetes_provider,
)
from components.cluster.controllers import controllers
from components.cluster.node_groups import node_groups
from components.cluster.observability import insights_log_groups, node_alarms
from components.config.versions import ADDON_VERSIONS
from components.shared.contract import ClusterRef, QueueAutoscaler


class Cluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    """Name of the EKS cluster."""
    cluster_arn: pulumi.Output[str]
    """ARN of the EKS cluster."""
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
    queue_autoscaler: QueueAutoscaler | None
    """KEDA, where the tier has it: its CRDs and the role that reads the queue's depth."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:cluster:Cluster", name, None, opts)
        if not args.node_groups:
            raise ValueError(f"cluster {args.cluster_name}: at least one node group is required")

        plane = control_plane(self, name, args)
        roles = addon_roles(plane)
        early_addons = addons(plane, ADDONS_BEFORE_NODES, roles, after=[])
        nodes = node_groups(plane, args, after=early_addons)
        insight_logs = insights_log_groups(plane, args.cluster_name)
        late_addons = addons(
            plane,
            [a for a in ADDON_VERSIONS if a not in ADDONS_BEFORE_NODES],
            roles,
            after=[*nodes.groups, *insight_logs.values()],
        )
        node_alarms(plane, args.cluster_name, args.alarms, args.stack.alarm_topic)
        ready = [*nodes.groups, *late_addons, *plane.api_access]
        self.kubeconfig, provider = kubernetes_provider(plane, args.stack.region, depends_on=ready)
        keda = controllers(plane, args, provider, after=ready)

        self.cluster_name = plane.eks.name
        self.cluster_arn = plane.eks.arn
        self.cluster_endpoint = plane.eks.endpoint
        self.cluster_security_group_id = plane.security_group_id
        self.oidc_provider_arn = plane.oidc.arn
        self.oidc_issuer = plane.oidc_issuer
        self.k8s_provider = provider
        self.node_role_arn = nodes.role.arn
        self.application_log_group_name = insight_logs["application"].name
        self.queue_autoscaler = (
            QueueAutoscaler(release=keda[0], role_name=keda[1].name) if keda else None
        )
        self._configured_name = args.cluster_name
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_arn": self.cluster_arn,
                "cluster_endpoint": self.cluster_endpoint,
                "cluster_security_group_id": self.cluster_security_group_id,
                "oidc_provider_arn": self.oidc_provider_arn,
                "oidc_issuer": self.oidc_issuer,
                "kubeconfig": self.kubeconfig,
                "k8s_provider": self.k8s_provider,
                "node_role_arn": self.node_role_arn,
                "application_log_group_name": self.application_log_group_name,
                "queue_autoscaler_role_name": keda[1].name if keda else None,
            }
        )

    @property
    def ref(self) -> ClusterRef:
        """The cluster, as one bundle for what runs in it."""
        return ClusterRef(
            name=self._configured_name,
            arn=self.cluster_arn,
            security_group_id=self.cluster_security_group_id,
            k8s_provider=self.k8s_provider,
            oidc_provider_arn=self.oidc_provider_arn,
            oidc_issuer=self.oidc_issuer,
            application_log_group_name=self.application_log_group_name,
            queue_autoscaler=self.queue_autoscaler,
        )
