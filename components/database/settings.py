"""The database's fixed choices and the pure functions derived from the tier: PostgreSQL
parameters in RDS units, the credentials document, the proxy's policy, replica placement."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

import pulumi

from components.config.capacity import pg_memory_settings
from components.config.tier import DatabaseSize
from components.shared.contract import POSTGRES_PARAMETER_FAMILIES, POSTGRES_PORT

# The major version only, with automatic minor upgrades in the maintenance window: AWS
# forces minor upgrades at the end of a minor's support anyway, and a pinned minor would then
# make the next `pulumi up` try to downgrade. The provider compares a major-only version with
# the running minor without a diff. A major upgrade is a deliberate change of this constant
# and of PARAMETER_FAMILY (see docs/operate.md, "Upgrades").
ENGINE_VERSION = "16"
PARAMETER_FAMILY = POSTGRES_PARAMETER_FAMILIES[ENGINE_VERSION]
DATABASE_NAME = "student_success"
MASTER_USERNAME = "ssp_admin"
# RDS forbids '/', '@', '"' and ' ' in master passwords; these specials are also URL-safe,
# so the password can sit in a connection URL without escaping.
PASSWORD_SPECIALS = "-_.~"
PAGE_KIB = 8  # RDS counts shared_buffers and effective_cache_size in 8 kB pages
# Night in the continental US (03:00-06:30 Eastern, 00:00-03:30 Pacific), not overlapping.
BACKUP_WINDOW = "08:00-09:00"
MAINTENANCE_WINDOW = "sun:09:30-10:30"
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7  # the free tier
MONITORING_INTERVAL_SECONDS = 60
LOG_EXPORTS = ("postgresql", "upgrade")
# Query text of slow statements is logged, never their bind parameters (student data), also
# not on errors (PostgreSQL 13+).
LOG_PARAMETER_MAX_LENGTH = 0
SLOW_QUERY_MS = 500  # slow enough to matter on a page that must answer within 200 ms
ENHANCED_MONITORING_POLICY_ARN = (
    "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
)
PROXY_IDLE_CLIENT_TIMEOUT_SECONDS = 1800
PROXY_BORROW_TIMEOUT_SECONDS = 120
READER_TTL_SECONDS = 30

ApplyMethod = Literal["immediate", "pending-reboot"]
# Static parameters: RDS rejects "immediate" for them, they take effect at the next reboot.
STATIC_PARAMETERS = frozenset(
    {"shared_buffers", "max_connections", "shared_preload_libraries", "rds.logical_replication"}
)


@dataclass(frozen=True)
class DbParameter:
    """One entry of the DB parameter group, already in RDS's units."""

    name: str
    value: str
    apply_method: ApplyMethod


def rds_parameters(size: DatabaseSize, *, logical_replication: bool = False) -> list[DbParameter]:
    """The tier's PostgreSQL settings in RDS units, each with an explicit apply_method
    (left unset, the provider's default differs from what RDS reports: a perpetual diff).
    ``logical_replication``: what an RDS Blue/Green deployment of PostgreSQL replicates by."""
    mem = pg_memory_settings(size.instance_class, size.max_connections)
    values: dict[str, int | float | str] = {
        "shared_buffers": mem.shared_buffers_mib * 1024 // PAGE_KIB,
        "effective_cache_size": mem.effective_cache_size_mib * 1024 // PAGE_KIB,
        "work_mem": mem.work_mem_mib * 1024,  # kB
        "maintenance_work_mem": mem.maintenance_work_mem_mib * 1024,  # kB
        "max_connections": size.max_connections,
        # SSD (gp3) storage makes random reads nearly as cheap as sequential ones.
        "random_page_cost": 1.1,
        "effective_io_concurrency": 200,
        "shared_preload_libraries": "pg_stat_statements",
        "log_min_duration_statement": SLOW_QUERY_MS,
        "log_parameter_max_length": LOG_PARAMETER_MAX_LENGTH,
        "log_parameter_max_length_on_error": LOG_PARAMETER_MAX_LENGTH,
        "rds.force_ssl": 1,
    }
    if logical_replication:
        values["rds.logical_replication"] = 1
    return [
        DbParameter(
            name,
            str(value),
            "pending-reboot" if name in STATIC_PARAMETERS else "immediate",
        )
        for name, value in values.items()
    ]


def proxy_secret_policy(secret_arn: str | Sequence[str], key_arn: str, region: str) -> str:
    """Least privilege for RDS Proxy: read the logins' secrets, decrypt them through Secrets
    Manager."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadCredentials",
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": secret_arn if isinstance(secret_arn, str) else list(secret_arn),
                },
                {
                    "Sid": "DecryptCredentials",
                    "Effect": "Allow",
                    "Action": "kms:Decrypt",
                    "Resource": key_arn,
                    "Condition": {
                        "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
                    },
                },
            ],
        }
    )


def credentials_document(host: str, password: str, username: str = MASTER_USERNAME) -> str:
    """The Secrets Manager secret's JSON, in the shape RDS Proxy and rotation expect."""
    return json.dumps(
        {
            "username": username,
            "password": password,
            "engine": "postgres",
            "host": host,
            "port": POSTGRES_PORT,
            "dbname": DATABASE_NAME,
        }
    )


def rds_log_group_prefix(identifier: str) -> str:
    """Where RDS exports an instance's logs: ``<prefix><log>`` per exported log."""
    return f"/aws/rds/instance/{identifier}/"


def replica_zone(availability_zones: Sequence[pulumi.Input[str]], index: int) -> pulumi.Input[str]:
    """AZ of replica ``index``: round-robin over the AZs, starting after the primary's."""
    return availability_zones[(index + 1) % len(availability_zones)]


class _SharedInstanceArgs(TypedDict):
    """Instance settings the primary and its replicas share."""

    instance_class: str
    storage_type: str
    storage_encrypted: bool
    kms_key_id: pulumi.Input[str]
    max_allocated_storage: int
    parameter_group_name: pulumi.Input[str]
    vpc_security_group_ids: list[pulumi.Input[str]]
    publicly_accessible: bool
    iam_database_authentication_enabled: bool
    auto_minor_version_upgrade: bool
    performance_insights_enabled: bool
    performance_insights_kms_key_id: pulumi.Input[str]
    performance_insights_retention_period: int
    monitoring_interval: int
    monitoring_role_arn: pulumi.Input[str]
    enabled_cloudwatch_logs_exports: list[str]
    copy_tags_to_snapshot: bool
    maintenance_window: str
    apply_immediately: bool
