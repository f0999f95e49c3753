"""The inputs of ``Database``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.config.tier import AlarmThresholds, DatabaseSize
from components.shared.contract import DatabaseRestore, NetworkRef
from components.shared.stack import StackContext


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
    stack: StackContext
    """The stack: the prefix of the AWS names (``ssp-tier3`` -> ``ssp-tier3-db``,
    ``ssp-tier3-db-replica-1``), tags, the alarm topic, the retention of the exported
    PostgreSQL logs, and ``protect`` (deletion protection, final snapshot and Pulumi
    ``protect``; False on dev only)."""
    network: NetworkRef
    """The VPC: the instances and the proxy take its isolated subnets (the primary the first
    AZ, replicas the next ones) and admit only its app tier's group on 5432."""
    size: DatabaseSize
    """The tier's database slice: instance class, storage, replicas, proxy, backups."""
    alarms: AlarmThresholds
    """The tier's alarm thresholds."""
    private_zone_name: str
    """Private hosted zone holding the reader name (``tier3.student-success.internal``)."""
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
    master_password_rotation: int = 0
    """Raised by one, a new master password (``dbMasterPasswordRotation``); 0 keeps the first."""
