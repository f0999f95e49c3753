"""Pinned versions of the cluster: Kubernetes, its managed add-ons and the controllers' charts.

They move together: when ``KUBERNETES_VERSION`` changes, refresh the add-on table and the
autoscaler (whose minor must match Kubernetes').

Kubernetes 1.35: released on EKS on 2026-01-28, in standard support until 2027-03-27, so a
new cluster today (2026-11) is on a supported version with four months to plan the 1.36
upgrade; 1.34's standard support ends 2026-12-02, too close to start on.
"""

from __future__ import annotations

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

# The cluster autoscaler's minor must match Kubernetes': chart 9.54.0 ships 1.35.0.
# Refresh: helm search repo autoscaler/cluster-autoscaler --versions
CLUSTER_AUTOSCALER_CHART = "9.54.0"
CLUSTER_AUTOSCALER_IMAGE_TAG = "v1.35.0"
# AWS Load Balancer Controller chart 1.17.1 (controller v2.17.1). Refresh:
#   helm search repo eks/aws-load-balancer-controller --versions
LOAD_BALANCER_CONTROLLER_CHART = "1.17.1"
# KEDA (scales the event worker on the SQS queue's depth) chart 2.18.3 = KEDA 2.18.3.
# KEDA supports the three Kubernetes minors of its release ("N-2", keda.sh: operate/cluster):
# check its matrix for KUBERNETES_VERSION when either moves. Refresh:
#   helm search repo kedacore/keda --versions
KEDA_CHART = "2.18.3"
