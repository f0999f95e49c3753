"""The table of pinned versions: every pin lies in the Kubernetes range upstream supports it
on, with the source of that range beside it, so moving the cluster's version fails until the
pins follow."""

from __future__ import annotations

import pytest

from components.config import versions
from components.config.versions import (
    ADDON_PINS,
    CHART_PINS,
    KUBERNETES_VERSION,
    Pin,
    pin_problems,
    release,
)


def test_every_pin_is_supported_on_the_clusters_kubernetes_version() -> None:
    assert pin_problems(KUBERNETES_VERSION) == []


def test_every_pin_names_the_source_of_its_range() -> None:
    for name, pin in {**ADDON_PINS, **CHART_PINS}.items():
        assert len(pin.source) > 20, name
        low, high = pin.supported
        assert high is None or versions.minor(low) <= versions.minor(high), name


def test_bumping_the_cluster_without_the_pins_fails() -> None:
    problems = "\n".join(pin_problems("1.36"))
    # The pins bound to one minor, and KEDA, whose 2.20 is tested up to 1.35.
    for name in ("kube-proxy", "keda", "cluster-autoscaler", "cluster-autoscaler-image"):
        assert f"{name} " in problems, name
    assert "keda.sh" in problems, "the message names the source of the range"


def test_a_pin_older_than_its_range_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    old_keda = Pin("2.18.3", ("1.31", "1.33"), "keda.sh/docs/2.18/operate/cluster/")
    monkeypatch.setitem(CHART_PINS, "keda", old_keda)
    (problem,) = pin_problems("1.35")
    assert problem.startswith("keda 2.18.3 is supported on Kubernetes 1.31-1.33, not 1.35")


def test_the_vpc_cni_bundles_a_network_policy_agent_that_keeps_new_pods_reachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert release(ADDON_PINS["vpc-cni"].version) >= (1, 21, 2)
    agent_v131 = Pin("v1.21.1-eksbuild.3", ("1.29", "1.35"), "amazon-vpc-cni-k8s CHANGELOG")
    monkeypatch.setitem(ADDON_PINS, "vpc-cni", agent_v131)
    assert any("network-policy agent older than v1.3.5" in p for p in pin_problems("1.35"))


def test_the_metrics_api_is_a_pinned_add_on() -> None:
    assert ADDON_PINS["metrics-server"].version.startswith("v0.8.")
