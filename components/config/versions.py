"""Pinned versions of the cluster: Kubernetes, its managed add-ons, the VPC CNI, and the
controllers' charts, in one table. Each pin carries the Kubernetes minors upstream supports
it on and the source that says so; ``pin_problems`` checks every pin against the cluster's
version (a test runs it), so moving ``KUBERNETES_VERSION`` fails until the pins follow.

Kubernetes 1.35: released on EKS on 2026-01-27, in standard support until 2027-03-27, so a
new cluster today (2026-11) is on a supported version with four months to plan the 1.36
upgrade; 1.34's standard support ends 2026-12-02, too close to start on (EKS user guide,
"Kubernetes version lifecycle").

EKS add-on builds are validated by EKS per Kubernetes version. Refresh them when the
version changes:
    aws eks describe-addon-versions --kubernetes-version 1.35 --addon-name <name> \\
      --query 'addons[].addonVersions[].addonVersion'
Charts: ``helm search repo <repo>/<chart> --versions``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KUBERNETES_VERSION = "1.35"


@dataclass(frozen=True)
class Pin:
    version: str
    supported: tuple[str, str | None]
    """Kubernetes minors upstream supports the pin on, inclusive; None: no upper bound
    published (the pin follows the API's deprecations, not each minor)."""
    source: str
    """Where the supported range is published."""


# Managed EKS add-ons, by add-on name.
ADDON_PINS: dict[str, Pin] = {
    "vpc-cni": Pin(
        # v1.21.2 bundles the network-policy agent v1.3.5, which fixed the agent's drops of
        # traffic to new pods and nodes (v1.21.1 bundles v1.3.1); every namespace here
        # enforces NetworkPolicy through it.
        "v1.21.2-eksbuild.2",
        ("1.29", "1.35"),
        "EKS user guide, 'Amazon VPC CNI' versions; github.com/aws/amazon-vpc-cni-k8s "
        "CHANGELOG v1.21.2 and charts/aws-vpc-cni/values.yaml nodeAgent.image.tag",
    ),
    "kube-proxy": Pin(
        # One build line per Kubernetes minor: kube-proxy is never newer than the API server.
        "v1.35.0-eksbuild.2",
        ("1.35", "1.35"),
        "EKS user guide, 'Manage kube-proxy'; kubernetes.io/releases/version-skew-policy",
    ),
    "coredns": Pin(
        "v1.13.2-eksbuild.1",
        ("1.34", "1.35"),
        "EKS user guide, 'Manage CoreDNS' (versions per Kubernetes minor)",
    ),
    "aws-ebs-csi-driver": Pin(
        # Upstream supports its latest release and the one before it: v1.64 (2026-08) and
        # v1.63; v1.57 was past that.
        "v1.64.0-eksbuild.1",
        ("1.29", None),
        "github.com/kubernetes-sigs/aws-ebs-csi-driver README, 'Compatibility'",
    ),
    "amazon-cloudwatch-observability": Pin(
        "v5.3.0-eksbuild.1",
        ("1.29", "1.35"),
        "aws eks describe-addon-versions --addon-name amazon-cloudwatch-observability "
        "(compatibilities per Kubernetes minor; no upstream matrix)",
    ),
    "metrics-server": Pin(
        # The EKS community add-on: the resource-metrics API (metrics.k8s.io) the HPAs read;
        # EKS does not install one.
        "v0.8.1-eksbuild.6",
        ("1.31", None),
        "EKS user guide, 'Community add-ons'; github.com/kubernetes-sigs/metrics-server "
        "README, 'Compatibility Matrix' (0.8.x: Kubernetes 1.31+)",
    ),
}

# Helm charts and images of the controllers.
CLUSTER_AUTOSCALER = Pin(
    # Chart 9.54.0 ships the autoscaler 1.35.0, whose minor must match Kubernetes'.
    "9.54.0",
    ("1.35", "1.35"),
    "github.com/kubernetes/autoscaler cluster-autoscaler README, 'Releases' (the "
    "autoscaler's minor matches the Kubernetes minor it supports)",
)
CLUSTER_AUTOSCALER_IMAGE = Pin(
    "v1.35.0",
    ("1.35", "1.35"),
    "github.com/kubernetes/autoscaler cluster-autoscaler README, 'Releases'",
)
LOAD_BALANCER_CONTROLLER = Pin(
    # Chart 1.17.1 is the controller v2.17.1.
    "1.17.1",
    ("1.22", None),
    "github.com/kubernetes-sigs/aws-load-balancer-controller "
    "docs/deploy/installation.md (v2.5.0+ requires Kubernetes 1.22+)",
)
KEDA = Pin(
    # Scales the event worker on the SQS queue's depth; chart 2.20.2 is KEDA 2.20.2.
    "2.20.2",
    ("1.33", "1.35"),
    "keda.sh/docs/2.20/operate/cluster/, 'Kubernetes Compatibility' (2.20: v1.33 - v1.35)",
)

CHART_PINS: dict[str, Pin] = {
    "cluster-autoscaler": CLUSTER_AUTOSCALER,
    "cluster-autoscaler-image": CLUSTER_AUTOSCALER_IMAGE,
    "aws-load-balancer-controller": LOAD_BALANCER_CONTROLLER,
    "keda": KEDA,
}

ADDON_VERSIONS: dict[str, str] = {name: pin.version for name, pin in ADDON_PINS.items()}
CLUSTER_AUTOSCALER_CHART = CLUSTER_AUTOSCALER.version
CLUSTER_AUTOSCALER_IMAGE_TAG = CLUSTER_AUTOSCALER_IMAGE.version
LOAD_BALANCER_CONTROLLER_CHART = LOAD_BALANCER_CONTROLLER.version
KEDA_CHART = KEDA.version

# The network-policy agent's drops of traffic to new pods and nodes were fixed in v1.3.5,
# first bundled by the VPC CNI v1.21.2 (amazon-vpc-cni-k8s CHANGELOG).
MIN_VPC_CNI = (1, 21, 2)


def minor(version: str) -> int:
    """``1.35`` -> 35."""
    match = re.fullmatch(r"1\.(\d+)", version)
    if not match:
        raise ValueError(f"{version!r}: not a Kubernetes minor (1.N)")
    return int(match[1])


def release(version: str) -> tuple[int, ...]:
    """``v1.21.2-eksbuild.2`` -> (1, 21, 2)."""
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        raise ValueError(f"{version!r}: not a version")
    return tuple(int(part) for part in match.groups())


def pin_problems(kubernetes_version: str = KUBERNETES_VERSION) -> list[str]:
    """Every pin that upstream does not support on ``kubernetes_version``, named with the
    source of its range; empty when the table may run on that version."""
    problems = []
    cluster = minor(kubernetes_version)
    for name, pin in {**ADDON_PINS, **CHART_PINS}.items():
        low, high = pin.supported
        if cluster < minor(low) or (high is not None and cluster > minor(high)):
            problems.append(
                f"{name} {pin.version} is supported on Kubernetes {low}-{high or ''}, not "
                f"{kubernetes_version} ({pin.source}): move it with the cluster"
            )
    for name in ("kube-proxy", "cluster-autoscaler-image"):
        pinned = {**ADDON_PINS, **CHART_PINS}[name].version
        if release(pinned)[:2] != (1, cluster):
            problems.append(
                f"{name} {pinned}: its minor must be the cluster's {kubernetes_version}"
            )
    if release(ADDON_PINS["vpc-cni"].version) < MIN_VPC_CNI:
        problems.append(
            f"vpc-cni {ADDON_PINS['vpc-cni'].version}: bundles a network-policy agent older "
            "than v1.3.5 (use v1.21.2 or later)"
        )
    return problems
