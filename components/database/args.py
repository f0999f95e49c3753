"""The inputs of ``Database``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi

from components.config.tier import AlarmThresholds, DatabaseSize
from components.shared.contract import DatabaseRestore


@dataclass(frozen=True)
class ReportingReplica:
    """A read replica of the primary in another region, for reporting, placed in the network
    of the regional stack there (its outputs, read by StackReference)."""

    region: str
    """The replica's region; it must differ from the stack's."""
    vpc_id: pulumi.Input[str]
    """That stack's VPC."""
    subnet_ids: pulumi.Input[Sequence[str]]
    """That stack's isolated subnets, for the replica's subnet group."""
    client_security_group_ids: Sequence[pulumi.Input[str]]
    """Security groups there allowed to connect on 5432 (that stack's app tier)."""
    alarm_topic_arn: pulumi.Input[str]
    """That stack's alarm topic: an alarm notifies a topic of its own region only."""


@dataclass
class DatabaseArgs:
    size: DatabaseSize
    """The tier's database slice: instance class, storage, replicas, proxy, backups."""
    alarms: AlarmThresholds
    """The tier's alarm thresholds."""
    identifier: str
    """Prefix of the AWS names (``ssp-tier3`` -> ``ssp-tier3-db``, ``ssp-tier3-db-replica-1``)."""
    vpc_id: pulumi.Input[str]
    """VPC of the database."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """Isolated subnets, one per AZ, for the subnet group and the proxy."""
    availability_zones: Sequence[pulumi.Input[str]]
    """AZ names, in subnet order; the primary takes the first, replicas the next ones."""
    client_security_group_ids: Sequence[pulumi.Input[str]]
    """Security groups allowed to connect on 5432 (the app's); nothing else is."""
    alarm_topic_arn: pulumi.Input[str]
    """SNS topic the alarms notify."""
    private_zone_name: str
    """Private hosted zone holding the reader name (``tier3.student-success.internal``)."""
    log_retention_days: int
    """Retention of the instances' exported PostgreSQL logs."""
    protect: bool = True
    """Deletion protection, final snapshot and Pulumi ``protect``; False on dev only."""
    apply_immediately: bool = False
    """Apply modifications at once instead of in the maintenance window (dev only)."""
    backup_region: str | None = None
    """Region the automated backups are replicated to, where ``size.cross_region_backups``."""
    restore: DatabaseRestore | None = None
    """The restore that made the primary (a new instance ``<identifier>-db-<name>``)."""
    engine_version: str | None = None
    """PostgreSQL major to upgrade to ahead of the program's pin; applied at once."""
    blue_green: bool = False
    """Run engine upgrades as an RDS Blue/Green switchover (tiers without replicas or proxy)."""
    reporting_replica: ReportingReplica | None = None
    """A cross-region read replica for reporting (opt-in: ``dbReportingReplica``), or None."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for every resource of the component (``spec.tags("ferpa")``)."""
