"""The EKS cluster: control plane, managed node groups, IRSA, add-ons, autoscaler, load
balancer controller, and the ``pulumi_kubernetes`` provider every Kubernetes object uses.

- ``control_plane``: the ``aws.eks.Cluster``, its KMS keys, role and log group, the OIDC
  provider, the admin access entry, the managed add-ons, the kubeconfig and k8s provider;
- ``node_groups``: the node role, launch templates and managed node groups;
- ``observability``: Container Insights log groups and node alarms;
- ``controllers``: the Helm releases of the autoscaler and the Load Balancer Controller;
- ``iam_policies``: the policy documents, pure functions;
- ``args`` and ``component``: ``ClusterArgs`` and the ``Cluster`` component.

The pinned Kubernetes, add-on and chart versions are in ``components.config.versions``.
Every resource is a direct child of the ``Cluster`` component (type ``ssp:cluster:Cluster``).
"""

from components.cluster.args import ClusterArgs
from components.cluster.component import Cluster
from components.cluster.control_plane import (
    ADDON_ROLES,
    ADDONS_BEFORE_NODES,
    ADMIN_ACCESS_POLICY,
    CONTROL_PLANE_LOG_TYPES,
    ServiceAccountRole,
    kubeconfig,
)
from components.cluster.controllers import (
    AUTOSCALER_SA,
    LOAD_BALANCER_CONTROLLER_SA,
    system_node_selector,
)
from components.cluster.iam_policies import (
    autoscaler_policy,
    cluster_encryption_policy,
    load_balancer_controller_policy,
)
from components.cluster.node_groups import (
    AMI_TYPE,
    NODE_POLICIES,
    NODE_UPDATE_MAX_UNAVAILABLE_PERCENT,
    node_group_tags,
)
from components.cluster.observability import CONTAINER_INSIGHTS_LOG_GROUPS
from components.config.versions import (
    ADDON_VERSIONS,
    CLUSTER_AUTOSCALER_CHART,
    CLUSTER_AUTOSCALER_IMAGE_TAG,
    KUBERNETES_VERSION,
    LOAD_BALANCER_CONTROLLER_CHART,
)

__all__ = [
    "ADDONS_BEFORE_NODES",
    "ADDON_ROLES",
    "ADDON_VERSIONS",
    "ADMIN_ACCESS_POLICY",
    "AMI_TYPE",
    "AUTOSCALER_SA",
    "CLUSTER_AUTOSCALER_CHART",
    "CLUSTER_AUTOSCALER_IMAGE_TAG",
    "CONTAINER_INSIGHTS_LOG_GROUPS",
    "CONTROL_PLANE_LOG_TYPES",
    "KUBERNETES_VERSION",
    "LOAD_BALANCER_CONTROLLER_CHART",
    "LOAD_BALANCER_CONTROLLER_SA",
    "NODE_POLICIES",
    "NODE_UPDATE_MAX_UNAVAILABLE_PERCENT",
    "Cluster",
    "ClusterArgs",
    "ServiceAccountRole",
    "autoscaler_policy",
    "cluster_encryption_policy",
    "kubeconfig",
    "load_balancer_controller_policy",
    "node_group_tags",
    "system_node_selector",
]
