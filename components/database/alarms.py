"""The database's alarms: CPU, connections and storage on the primary; CPU and lag on every
replica, the cross-region reporting replica included: the signs that the tier's database
must grow, or that a replica fell behind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.config.tier import AlarmThresholds, DatabaseSize
from components.shared.alarms import Threshold, metric_alarm
from components.shared.contract import owned


def database_alarms(
    owner: pulumi.Resource,
    name: str,
    *,
    size: DatabaseSize,
    alarms: AlarmThresholds,
    topic_arn: pulumi.Input[str],
    tags: Mapping[str, str],
    primary: aws.rds.Instance,
    replicas: Sequence[aws.rds.Instance],
) -> None:
    """CPU, connections and storage on the primary; CPU and lag on every replica.

    Every alarm is owned by the component; replica alarms were once children of their
    replica (the alias keeps them)."""

    def alarm(
        role: str,
        was: pulumi.Resource | None,
        identifier: pulumi.Output[str],
        description: str,
        metric: str,
        threshold: Threshold,
        statistic: str = "Average",
    ) -> None:
        metric_alarm(
            f"{name}-{role}",
            description=description,
            namespace="AWS/RDS",
            metric=metric,
            dimensions={"DBInstanceIdentifier": identifier},
            threshold=threshold,
            statistic=statistic,
            topic_arn=topic_arn,
            tags=tags,
            opts=owned(owner, was=was),
        )

    # "missing" keeps the last state when an instance reboots or fails over; RDS events,
    # not these alarms, report an instance that is down.
    cpu = Threshold(alarms.cpu_percent, period_seconds=300, periods=2)
    connections = size.max_connections * alarms.db_connections_percent // 100
    free_bytes = size.storage_gib * 1024**3 * alarms.free_storage_percent // 100
    alarm(
        "primary-cpu",
        None,
        primary.identifier,
        f"Primary CPU above {alarms.cpu_percent}% for 10 minutes",
        "CPUUtilization",
        cpu,
    )
    alarm(
        "primary-connections",
        None,
        primary.identifier,
        f"Primary connections above {alarms.db_connections_percent}% of "
        f"max_connections {size.max_connections}",
        "DatabaseConnections",
        Threshold(connections, period_seconds=60, periods=5),
        statistic="Maximum",
    )
    # Against the initially allocated storage: autoscaling grows the volume when free
    # space runs low, so the alarm lasting means the db_max_storage_gib ceiling is near.
    alarm(
        "primary-free-storage",
        None,
        primary.identifier,
        f"Primary free storage below {alarms.free_storage_percent}% of {size.storage_gib} GiB",
        "FreeStorageSpace",
        Threshold(free_bytes, comparison="LessThanThreshold", period_seconds=300, periods=1),
        statistic="Minimum",
    )
    for i, replica in enumerate(replicas):
        replica_alarms(
            owner,
            name,
            role=f"replica-{i + 1}",
            title=f"Replica {i + 1}",
            replica=replica,
            alarms=alarms,
            topic_arn=topic_arn,
            tags=tags,
            was=replica,
        )


def replica_alarms(
    owner: pulumi.Resource,
    name: str,
    *,
    role: str,
    title: str,
    replica: aws.rds.Instance,
    alarms: AlarmThresholds,
    topic_arn: pulumi.Input[str],
    tags: Mapping[str, str],
    was: pulumi.Resource | None = None,
    provider: pulumi.ProviderResource | None = None,
) -> None:
    """CPU and replication lag of one read replica, in its region (``provider``): an alarm
    notifies a topic of its own region only."""
    for metric, check, description, threshold, statistic in (
        (
            "CPUUtilization",
            "cpu",
            f"{title} CPU above {alarms.cpu_percent}% for 10 minutes",
            Threshold(alarms.cpu_percent, period_seconds=300, periods=2),
            "Average",
        ),
        # "breaching": a replica stops reporting ReplicaLag when replication breaks, so
        # silence is the failure this alarm exists for.
        (
            "ReplicaLag",
            "lag",
            f"{title} lag above {alarms.replica_lag_seconds} s, or no lag data",
            Threshold(
                alarms.replica_lag_seconds, period_seconds=60, periods=5, missing_data="breaching"
            ),
            "Maximum",
        ),
    ):
        metric_alarm(
            f"{name}-{role}-{check}",
            description=description,
            namespace="AWS/RDS",
            metric=metric,
            dimensions={"DBInstanceIdentifier": replica.identifier},
            threshold=threshold,
            statistic=statistic,
            topic_arn=topic_arn,
            tags=tags,
            opts=owned(owner, was=was, provider=provider),
        )
