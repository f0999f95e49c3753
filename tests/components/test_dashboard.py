"""The CloudWatch dashboard: its body from the pure function, and per stack."""

from __future__ import annotations

import json

import pytest

from components import dashboard
from components.config.catalog import TIERS
from tests.shared import DASHBOARD, StackRunner

IDS = dashboard.DashboardIds(
    load_balancer_arn_suffix="app/api/1",
    target_group_arn_suffix="targetgroup/api/2",
    cluster_name="c",
    db_primary_identifier="db",
)


def _titles(body: str) -> list[str]:
    return [w["properties"]["title"] for w in json.loads(body)["widgets"]]


def test_dashboard_core_widgets_on_every_tier() -> None:
    body = dashboard.dashboard_body(IDS, "eu-west-1", TIERS["dev"].alarms, TIERS["dev"].db)
    titles = _titles(body)
    assert titles == [
        "API p95 latency (s)",
        "API 5xx rate (%)",
        "API requests",
        "EKS node CPU / memory (%)",
        "DB CPU (%)",
        "DB connections",
        "DB free storage (bytes)",
    ]
    widgets = json.loads(body)["widgets"]
    latency = widgets[0]["properties"]
    assert latency["stat"] == "p95" and latency["region"] == "eu-west-1"
    # ALB latency is in seconds: the 200 ms trigger is drawn at 0.2.
    assert latency["annotations"]["horizontal"][0]["value"] == 0.2
    connections = widgets[5]["properties"]["annotations"]["horizontal"][0]["value"]
    assert connections == TIERS["dev"].db.max_connections * 0.8
    # Two per row, no overlap.
    positions = {(w["x"], w["y"]) for w in widgets}
    assert len(positions) == len(widgets)
    assert all(w["x"] + w["width"] <= 24 for w in widgets)


def test_dashboard_optional_sections() -> None:
    ids = dashboard.DashboardIds(
        **{
            **IDS.__dict__,
            "db_replica_identifiers": ("r1", "r2"),
            "cache_replication_group_id": "rg",
            "sagemaker_endpoint_name": "ep",
            "sagemaker_variant_name": "primary",
            "distribution_id": "E1",
        }
    )
    body = json.loads(
        dashboard.dashboard_body(ids, "us-west-2", TIERS["tier3"].alarms, TIERS["tier3"].db)
    )
    by_title = {w["properties"]["title"]: w["properties"] for w in body["widgets"]}
    lag = by_title["DB replica lag (s)"]
    assert [m[3] for m in lag["metrics"]] == ["r1", "r2"]
    assert [m[3] for m in by_title["DB CPU (%)"]["metrics"]] == ["db", "r1", "r2"]
    assert "rg" in by_title["Redis evictions"]["metrics"][0][0]["expression"]
    latency = by_title["SageMaker p95 model latency (µs)"]
    assert latency["annotations"]["horizontal"][0]["value"] == 100_000
    assert latency["metrics"][0][:6] == [
        "AWS/SageMaker",
        "ModelLatency",
        "EndpointName",
        "ep",
        "VariantName",
        "primary",
    ]
    cdn = by_title["CloudFront requests"]
    assert cdn["region"] == "us-east-1"
    assert cdn["metrics"][0][2:] == ["DistributionId", "E1", "Region", "Global"]


# -- the whole program, per stack ----------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "tier1", "tier2", "tier3", "tier4"])
def test_dashboard_covers_the_stack(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    board = run.one(DASHBOARD)
    assert board.inputs["dashboardName"] == f"ssp-{stack}"
    titles = _titles(board.inputs["dashboardBody"])
    spec_tier = TIERS[run.config["student-success:tier"]]
    assert ("Redis evictions" in titles) == spec_tier.cache.enabled
    assert ("SageMaker p95 model latency (µs)" in titles) == spec_tier.inference.enabled
    assert ("CloudFront requests" in titles) == spec_tier.edge.enabled
    replicas = run.outputs.get("db_replica_identifiers") or []
    assert ("DB replica lag (s)" in titles) == bool(replicas)
