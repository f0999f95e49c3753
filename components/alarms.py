"""Alarm plumbing shared by every component: the alarm topic, and one way to make an alarm.

Each component creates the alarms of the resources it owns (the database its CPU and
replica-lag alarms, the workloads their latency alarms...), all through ``metric_alarm``
so that actions, naming and tags are the same everywhere, and all notifying the one
topic made here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws

from components.kms import customer_key, key_policy

MissingData = Literal["missing", "ignore", "breaching", "notBreaching"]
Comparison = Literal[
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
]


# CloudWatch publishes alarm notifications to the encrypted topic; the AWS-managed SNS key
# would not let it, so the topic's own key grants it.
CLOUDWATCH_PUBLISHES = {
    "Sid": "CloudWatchPublishes",
    "Effect": "Allow",
    "Principal": {"Service": "cloudwatch.amazonaws.com"},
    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
    "Resource": "*",
}


@dataclass
class AlarmTopicArgs:
    email: str | None
    """Address subscribed to the topic; ``None`` for no subscription."""
    tags: dict[str, str] = field(default_factory=dict)


class AlarmTopic(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    """SNS topic every alarm of the stack notifies."""

    def __init__(self, name: str, args: AlarmTopicArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:alarms:AlarmTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output().account_id
        key = customer_key(
            f"{name}-key",
            description="Encrypts the alarm topic",
            policy=account.apply(lambda a: key_policy(a, [CLOUDWATCH_PUBLISHES])),
            tags=args.tags,
            opts=child,
        )
        topic = aws.sns.Topic(
            f"{name}-topic", kms_master_key_id=key.arn, tags=args.tags, opts=child
        )
        if args.email:
            aws.sns.TopicSubscription(
                f"{name}-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.email,
                opts=pulumi.ResourceOptions(parent=topic),
            )
        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})


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
    parent: pulumi.Resource,
    statistic: str = "Average",
) -> aws.cloudwatch.MetricAlarm:
    """One CloudWatch alarm on one metric, notifying the stack's topic on alarm and OK.

    ``statistic`` is a plain statistic (Average, Maximum, Sum...) or a percentile (p95),
    which CloudWatch takes as an extended statistic.
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
        opts=pulumi.ResourceOptions(parent=parent),
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
    parent: pulumi.Resource,
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
        opts=pulumi.ResourceOptions(parent=parent),
    )
