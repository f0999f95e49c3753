"""RDS PostgreSQL: encryption, exposure, durability, observability and sizing per tier.

The tier comes from the instance's ``tier`` tag. Read replicas (``replicateSourceDb`` set)
inherit encryption from their source and are not backed up or Multi-AZ themselves, so the
durability rules apply to primaries only.
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
)

from ._util import as_list, get, label, num, present, rule, setting, tier_of

INSTANCE = "aws:rds/instance:Instance"
CLUSTER = "aws:rds/cluster:Cluster"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
PROXY = "aws:rds/proxy:Proxy"

# Default allow-list of DB instance classes per tier: burstable classes only where a small
# district's load is spiky and low; memory-optimised classes for the large tiers.
DEFAULT_INSTANCE_CLASSES: dict[str, list[str]] = {
    "dev": ["db.t4g.micro", "db.t4g.small", "db.t4g.medium"],
    "tier1": ["db.t4g.medium", "db.t4g.large", "db.m6g.large", "db.r6g.large"],
    "tier2": ["db.m6g.large", "db.m6g.xlarge", "db.m6g.2xlarge", "db.r6g.large", "db.r6g.xlarge"],
    "tier3": ["db.r6g.xlarge", "db.r6g.2xlarge", "db.r6g.4xlarge"],
    "tier4": ["db.r6g.2xlarge", "db.r6g.4xlarge", "db.r6g.8xlarge"],
}


def _is_replica(props: Any) -> bool:
    return present(props, "replicateSourceDb")


def _db(args: ResourceValidationArgs) -> str:
    kind = "RDS read replica" if _is_replica(args.props) else "RDS instance"
    return label(kind, args.name)


def _encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    value = args.props.get("storageEncrypted")
    if value is False or (value is None and not _is_replica(args.props)):
        report(
            f"{_db(args)} stores student records unencrypted; set storage_encrypted=True "
            "with a customer-managed kms_key_id (needs a replacement of the instance).",
            None,
        )


def _not_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.props.get("publiclyAccessible") is True:
        report(
            f"{_db(args)} is publicly accessible; set publicly_accessible=False and keep it in "
            "the isolated subnets behind the app security group.",
            None,
        )


BACKUP_SCHEMA = PolicyConfigSchema(
    properties={
        "minimumRetentionDays": {
            "type": "integer",
            "minimum": 1,
            "maximum": 35,
            "default": 7,
            "description": "Minimum automated backup retention outside dev.",
        },
    }
)


def _backups(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if _is_replica(args.props) or tier_of(args.props) == "dev":
        return
    minimum = int(setting(args, BACKUP_SCHEMA, "minimumRetentionDays"))
    days = num(args.props.get("backupRetentionPeriod"), 0.0) or 0.0
    if days < minimum:
        report(
            f"{_db(args)} keeps automated backups {int(days)} day(s) on tier "
            f"{tier_of(args.props) or '?'}; outside dev set backup_retention_period >= {minimum} "
            "(catalog field db_backup_retention_days).",
            None,
        )


MULTI_AZ_SCHEMA = PolicyConfigSchema(
    properties={
        "tiers": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["tier3", "tier4"],
            "description": "Tiers whose primary must be Multi-AZ.",
        },
    }
)


def _multi_az(args: ResourceValidationArgs, report: ReportViolation) -> None:
    tier = tier_of(args.props)
    if _is_replica(args.props) or tier not in as_list(setting(args, MULTI_AZ_SCHEMA, "tiers")):
        return
    if args.props.get("multiAz") is not True:
        report(
            f"{_db(args)} is single-AZ but tier {tier} requires a Multi-AZ primary; set "
            "multi_az=True (catalog field db_multi_az).",
            None,
        )


def _deletion_protection(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if _is_replica(args.props) or tier_of(args.props) == "dev":
        return
    if args.props.get("deletionProtection") is not True:
        report(
            f"{_db(args)} has no deletion protection on tier {tier_of(args.props) or '?'}; set "
            "deletion_protection=True outside dev (and protect=True in its resource options).",
            None,
        )
    if args.props.get("skipFinalSnapshot") is True:
        report(
            f"{_db(args)} skips its final snapshot on tier {tier_of(args.props) or '?'}; set "
            "skip_final_snapshot=False with a final_snapshot_identifier outside dev.",
            None,
        )


def _iam_auth(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.props.get("iamDatabaseAuthenticationEnabled") is not True:
        report(
            f"{_db(args)} does not enable IAM database authentication; set "
            "iam_database_authentication_enabled=True so operators and jobs can log in with "
            "short-lived IAM tokens instead of the shared password.",
            None,
        )


def _performance_insights(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.props.get("performanceInsightsEnabled") is not True:
        report(
            f"{_db(args)} has Performance Insights off; set performance_insights_enabled=True "
            "(with performance_insights_kms_key_id) to diagnose slow queries.",
            None,
        )


LOG_EXPORTS_SCHEMA = PolicyConfigSchema(
    properties={
        "requiredLogTypes": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["postgresql"],
            "description": "CloudWatch log exports every instance must enable.",
        },
    }
)


def _log_exports(args: ResourceValidationArgs, report: ReportViolation) -> None:
    enabled = {str(t) for t in as_list(args.props.get("enabledCloudwatchLogsExports"))}
    missing = [
        t
        for t in as_list(setting(args, LOG_EXPORTS_SCHEMA, "requiredLogTypes"))
        if t not in enabled
    ]
    if missing:
        report(
            f"{_db(args)} does not export {', '.join(missing)} logs to CloudWatch; add them to "
            "enabled_cloudwatch_logs_exports (slow-query and audit trails).",
            None,
        )


INSTANCE_CLASS_SCHEMA = PolicyConfigSchema(
    properties={
        "allowedInstanceClasses": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "default": DEFAULT_INSTANCE_CLASSES,
            "description": "DB instance classes allowed per tier (tier name -> classes).",
        },
    }
)


def _instance_class(args: ResourceValidationArgs, report: ReportViolation) -> None:
    tier = tier_of(args.props)
    allowed_by_tier = setting(args, INSTANCE_CLASS_SCHEMA, "allowedInstanceClasses") or {}
    if tier is None or tier not in allowed_by_tier:
        return
    allowed = [str(c) for c in as_list(allowed_by_tier[tier])]
    cls = str(args.props.get("instanceClass") or "")
    if cls not in allowed:
        report(
            f"{_db(args)} uses instance class {cls or '(none)'}, not allowed on tier {tier}; "
            f"use one of {', '.join(allowed)} or extend allowedInstanceClasses.{tier} in the "
            "policy config.",
            None,
        )


def _force_ssl(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for parameter in as_list(args.props.get("parameters")):
        if get(parameter, "name") == "rds.force_ssl" and str(get(parameter, "value")) == "0":
            report(
                f"RDS parameter group '{args.name}' sets rds.force_ssl=0, allowing unencrypted "
                "connections; set it to 1 (the PostgreSQL 15+ default).",
                None,
            )


def _proxy_tls(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.props.get("requireTls") is not True:
        report(
            f"RDS proxy '{args.name}' accepts plaintext connections; set require_tls=True.",
            None,
        )


M, A = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY

POLICIES = [
    rule(
        "rds-storage-encrypted",
        "RDS instances encrypt their storage.",
        [INSTANCE],
        _encrypted,
        M,
    ),
    rule(
        "rds-not-publicly-accessible",
        "RDS instances are never publicly accessible.",
        [INSTANCE],
        _not_public,
        M,
    ),
    rule(
        "rds-backup-retention",
        "RDS primaries keep automated backups for at least 7 days outside dev.",
        [INSTANCE],
        _backups,
        M,
        BACKUP_SCHEMA,
    ),
    rule(
        "rds-multi-az",
        "RDS primaries are Multi-AZ on the tiers that require it (tier3, tier4).",
        [INSTANCE],
        _multi_az,
        M,
        MULTI_AZ_SCHEMA,
    ),
    rule(
        "rds-deletion-protection",
        "RDS primaries have deletion protection and a final snapshot outside dev.",
        [INSTANCE],
        _deletion_protection,
        M,
    ),
    rule(
        "rds-iam-authentication",
        "RDS instances enable IAM database authentication.",
        [INSTANCE],
        _iam_auth,
        A,
    ),
    rule(
        "rds-performance-insights",
        "RDS instances enable Performance Insights.",
        [INSTANCE],
        _performance_insights,
        A,
    ),
    rule(
        "rds-log-exports",
        "RDS instances export PostgreSQL logs to CloudWatch.",
        [INSTANCE],
        _log_exports,
        A,
        LOG_EXPORTS_SCHEMA,
    ),
    rule(
        "rds-instance-class-allowed",
        "RDS instance classes come from the allow-list of the stack's tier.",
        [INSTANCE],
        _instance_class,
        M,
        INSTANCE_CLASS_SCHEMA,
    ),
    rule(
        "rds-force-ssl",
        "RDS parameter groups never turn rds.force_ssl off.",
        [PARAMETER_GROUP],
        _force_ssl,
        M,
    ),
    rule(
        "rds-proxy-require-tls",
        "RDS proxies require TLS from clients.",
        [PROXY],
        _proxy_tls,
        M,
    ),
]
