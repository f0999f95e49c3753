"""Container Insights log groups and the node CPU/memory alarms."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.cluster.control_plane import ControlPlane
from components.config.tier import AlarmThresholds
from components.shared.alarms import Threshold, metric_alarm

# Log groups the CloudWatch observability add-on writes to; created here so that they get
# the tier's retention instead of "never expire", and so metric filters can target them.
CONTAINER_INSIGHTS_LOG_GROUPS = ("application", "dataplane", "host", "performance")


def insights_log_groups(
    plane: ControlPlane, cluster_name: str
) -> dict[str, aws.cloudwatch.LogGroup]:
    """The Container Insights log groups, by kind. The CloudWatch agent's Fluent Bit would
    create them itself (without retention) if it started first: its add-on waits for them."""
    return {
        kind: plane.logs.group(
            f"{plane.name}-insights-{kind}",
            name=f"/aws/containerinsights/{cluster_name}/{kind}",
        )
        for kind in CONTAINER_INSIGHTS_LOG_GROUPS
    }


def node_alarms(
    plane: ControlPlane, cluster_name: str, alarms: AlarmThresholds, topic_arn: pulumi.Input[str]
) -> None:
    """Average node CPU and memory utilization over the tier's thresholds."""
    for metric, limit in (
        ("node_cpu_utilization", alarms.cpu_percent),
        ("node_memory_utilization", alarms.memory_percent),
    ):
        metric_alarm(
            f"{plane.name}-{metric.replace('_', '-')}",
            description=f"{cluster_name}: average {metric} > {limit}% for 10 minutes",
            namespace="ContainerInsights",
            metric=metric,
            dimensions={"ClusterName": plane.eks.name},
            # Missing data means the agent is down, which the dashboard shows; an
            # alarm on it would page at every cluster upgrade.
            threshold=Threshold(limit, period_seconds=300, periods=2, missing_data="missing"),
            topic_arn=topic_arn,
            tags=plane.tags,
            opts=pulumi.ResourceOptions(parent=plane.component),
        )
