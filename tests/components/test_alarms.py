"""The stack's alarms as a whole: the thresholds the catalog asks for, on every stack, each
notifying the alarm topic."""

from __future__ import annotations

from typing import Any

import pytest

from components.config.catalog import TIERS
from components.config.spec import build_spec
from tests.shared import EKS_CLUSTER, METRIC_ALARM, STACKS, StackRunner, tier_of
from tools.harness import StackRun


@pytest.mark.parametrize("stack", STACKS)
def test_alarms(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    alarms = {a.name: a for a in run.of_type(METRIC_ALARM)}
    latency = alarms["workloads-alb-latency-p95"]
    assert latency.get("extendedStatistic") == "p95"
    assert latency.get("threshold") == pytest.approx(tier.alarms.latency_p95_ms / 1000)
    rate = alarms["workloads-alb-5xx-rate"]
    assert rate.get("threshold") == tier.alarms.error_rate_percent
    assert "IF(" in rate.get("metricQueries.0.expression")
    cpu = alarms["cluster-node-cpu-utilization"]
    assert (
        cpu.get("namespace") == "ContainerInsights"
        and cpu.get("threshold") == tier.alarms.cpu_percent
    )
    assert cpu.get("period") * cpu.get("evaluationPeriods") == 600
    memory = alarms["cluster-node-memory-utilization"]
    assert memory.get("threshold") == tier.alarms.memory_percent
    cluster_name = run.one(EKS_CLUSTER).get("name")
    metric_filter = run.one("aws:cloudwatch/logMetricFilter:LogMetricFilter")
    assert metric_filter.get("logGroupName") == f"/aws/containerinsights/{cluster_name}/application"
    assert '"trainer"' in metric_filter.get("pattern")
    assert alarms["workloads-training-failed"].get("treatMissingData") == "notBreaching"


def _expected_alarms(stack: str, run: StackRun) -> dict[tuple[str, str], tuple[float, int]]:
    """(namespace-ish key, metric) -> (threshold, how many alarms) the catalog asks for."""
    config = {
        k.split(":", 1)[1]: v for k, v in run.config.items() if k.startswith("student-success:")
    }
    tier = build_spec(config, stack=stack, region=run.config.get("aws:region")).tier
    expected: dict[tuple[str, str], tuple[float, int]] = {
        ("ALB", "TargetResponseTime"): (tier.alarms.latency_p95_ms / 1000, 1),
        ("ALB", "HTTPCode_Target_5XX_Count"): (tier.alarms.error_rate_percent, 1),
        ("EKS", "node_cpu_utilization"): (tier.alarms.cpu_percent, 1),
        ("EKS", "node_memory_utilization"): (tier.alarms.memory_percent, 1),
        ("RDS", "CPUUtilization"): (tier.alarms.cpu_percent, 1 + tier.db.replica_count),
        ("RDS", "DatabaseConnections"): (
            tier.db.max_connections * tier.alarms.db_connections_percent // 100,
            1,
        ),
        ("RDS", "FreeStorageSpace"): (
            tier.db.storage_gib * 1024**3 * tier.alarms.free_storage_percent // 100,
            1,
        ),
        ("App", "TrainingFailures"): (0, 1),
    }
    if tier.db.replica_count:
        expected[("RDS", "ReplicaLag")] = (tier.alarms.replica_lag_seconds, tier.db.replica_count)
    if tier.cache.enabled:
        nodes = tier.cache.num_nodes
        expected[("Redis", "EngineCPUUtilization")] = (tier.alarms.cpu_percent, nodes)
        expected[("Redis", "DatabaseMemoryUsagePercentage")] = (tier.alarms.memory_percent, nodes)
        expected[("Redis", "Evictions")] = (0, nodes)
    if tier.inference.enabled:
        expected[("SageMaker", "ModelLatency")] = (tier.alarms.model_latency_p95_ms * 1000, 1)
        expected[("SageMaker", "Invocation5XXErrors")] = (tier.alarms.error_rate_percent, 1)
    return expected


_NAMESPACES = {
    "AWS/ApplicationELB": "ALB",
    "ContainerInsights": "EKS",
    "AWS/RDS": "RDS",
    "AWS/ElastiCache": "Redis",
    "AWS/SageMaker": "SageMaker",
}


def _alarm_keys(alarm: Any) -> set[tuple[str, str]]:
    pairs = {(alarm.inputs.get("namespace"), alarm.inputs.get("metricName"))}
    for query in alarm.inputs.get("metricQueries") or []:
        metric = query.get("metric") or {}
        pairs.add((metric.get("namespace"), metric.get("metricName")))
    return {(_NAMESPACES.get(ns or "", "App"), m) for ns, m in pairs if m}


@pytest.mark.parametrize("stack", ["dev", "tier1", "tier2", "tier3", "tier4"])
def test_every_stack_has_the_catalog_alarms(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    alarms = run.of_type(METRIC_ALARM)
    problems = []
    for key, (threshold, count) in _expected_alarms(stack, run).items():
        found = [a for a in alarms if key in _alarm_keys(a)]
        if len(found) != count:
            problems.append(f"{key}: {count} alarm(s) expected, found {[a.name for a in found]}")
        for a in found:
            if a.inputs["threshold"] != pytest.approx(threshold):
                problems.append(f"{a.name}: threshold {a.inputs['threshold']} != {threshold}")
            if not a.inputs.get("alarmActions"):
                problems.append(f"{a.name}: notifies nobody")
    assert not problems, f"{stack}:\n" + "\n".join(problems)
