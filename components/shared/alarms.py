"""One way to make an alarm, shared by every component.

Each component creates the alarms of the resources it owns (the database its CPU and
replica-lag alarms, the load balancer its latency alarms...), all through ``metric_alarm``
so that actions, naming and tags are the same everywhere, and all notifying the stack's one
``AlarmTopic``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

MissingData = Literal["missing", "ignore", "breaching", "notBreaching"]
Comparison = Literal[
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
]


@dataclass(frozen=True)
class Threshold:
    """What an alarm compares: ``value`` over ``periods`` x ``period_seconds``."""

    value: float
    comparison: Comparison = "GreaterThanThreshold"
    period_seconds: int = 60
    periods: int = 5
    missing_data: MissingData = "missing"


def metric_alarm(
    name: str,
    *,
    description: str,
    namespace: str,
    metric: str,
    dimensions: Mapping[str, pulumi.Input[str]],
    threshold: Threshold,
    topic_arn: pulumi.Input[str],
    tags: Mapping[str, str],
    opts: pulumi.ResourceOptions,
    statistic: str = "Average",
) -> aws.cloudwatch.MetricAlarm:
    """One CloudWatch alarm on one metric, notifying the stack's topic on alarm and OK.

    ``statistic`` is a plain statistic (Average, Maximum, Sum...) or a percentile (p95),
    which CloudWatch takes as an extended statistic. ``opts`` names the owning component
    (``contract.owned``).
    """
    percentile = statistic.startswith("p")
    return aws.cloudwatch.MetricAlarm(
        name,
        alarm_description=description,
        namespace=namespace,
        metric_name=metric,
        dimensions=dict(dimensions),
        statistic=None if percentile else statistic,
        extended_statistic=statistic if percentile else None,
        period=threshold.period_seconds,
        evaluation_periods=threshold.periods,
        datapoints_to_alarm=threshold.periods,
        threshold=threshold.value,
        comparison_operator=threshold.comparison,
        treat_missing_data=threshold.missing_data,
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        tags=dict(tags),
        opts=opts,
    )


def expression_alarm(
    name: str,
    *,
    description: str,
    expression: str,
    metrics: Mapping[str, tuple[str, str, Mapping[str, pulumi.Input[str]], str]],
    threshold: Threshold,
    topic_arn: pulumi.Input[str],
    tags: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.cloudwatch.MetricAlarm:
    """An alarm on metric math, e.g. a 5xx *rate*: ``metrics`` maps an id to
    (namespace, metric name, dimensions, statistic) and ``expression`` combines them."""
    queries: list[aws.cloudwatch.MetricAlarmMetricQueryArgsDict] = [
        {"id": "result", "expression": expression, "label": description, "return_data": True}
    ]
    for query_id, (namespace, metric, dimensions, stat) in metrics.items():
        queries.append(
            {
                "id": query_id,
                "return_data": False,
                "metric": {
                    "namespace": namespace,
                    "metric_name": metric,
                    "dimensions": dict(dimensions),
                    "period": threshold.period_seconds,
                    "stat": stat,
                },
            }
        )
    return aws.cloudwatch.MetricAlarm(
        name,
        alarm_description=description,
        metric_queries=queries,
        evaluation_periods=threshold.periods,
        datapoints_to_alarm=threshold.periods,
        threshold=threshold.value,
        comparison_operator=threshold.comparison,
        treat_missing_data=threshold.missing_data,
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        tags=dict(tags),
        opts=opts,
    )
