"""Network and data: the VPC, the database and the cache in its isolated subnets, and the
buckets (access logs, models, archived audit partitions, the district's exports)."""

from __future__ import annotations

from dataclasses import dataclass

from components.cache import Cache, CacheArgs
from components.config.spec import StackSpec
from components.config.tier import AuditLockSize
from components.database import Database, DatabaseArgs
from components.edge import AssetsGrant
from components.log_bucket import LogBucket, LogBucketArgs
from components.network import Network, NetworkArgs
from components.shared.stack import StackContext
from components.storage import ObjectLock, SecureBucket, SecureBucketArgs, Transition
from stacks.references import reporting_replica


@dataclass(frozen=True)
class Data:
    """The stack's network and everything that holds its data."""

    network: Network
    database: Database
    cache: Cache | None
    access_logs: LogBucket
    models: SecureBucket
    audit_archive: SecureBucket
    district_drop: SecureBucket
    assets_grant: AssetsGrant | None
    """CloudFront's read of the models bucket's public assets, on edge tiers."""


def network_and_data(spec: StackSpec, stack: StackContext) -> Data:
    tier = spec.tier
    network = Network("network", NetworkArgs(stack=stack, cidr=spec.vpc_cidr, size=tier.network))
    # Student records (FERPA) from here on: the data stores and the buckets.
    ferpa = stack.classified("ferpa")
    database = Database(
        "database",
        DatabaseArgs(
            stack=ferpa,
            network=network.ref,
            size=tier.db,
            alarms=tier.alarms,
            private_zone_name=f"{spec.stack}.{spec.project}.internal",
            apply_immediately=not spec.protect,
            backup_region=spec.db_backup_region,
            restore=spec.db_restore,
            engine_version=spec.db_engine_version,
            blue_green=spec.db_upgrade_strategy == "blue-green",
            reporting_replica=reporting_replica(spec.db_reporting_replica),
            master_password_rotation=spec.db_master_password_rotation,
        ),
    )
    cache = None
    if tier.cache.enabled:
        cache = Cache(
            "cache",
            CacheArgs(
                stack=ferpa,
                network=network.ref,
                size=tier.cache,
                alarms=tier.alarms,
                apply_immediately=not spec.protect,
            ),
        )
    buckets = _buckets(ferpa, edge=tier.edge.enabled, audit_lock=tier.audit_lock)
    return Data(network, database, cache, *buckets)


def _buckets(
    stack: StackContext, *, edge: bool, audit_lock: AuditLockSize
) -> tuple[LogBucket, SecureBucket, SecureBucket, SecureBucket, AssetsGrant | None]:
    """The access logs (load balancer and buckets: who read which record, when), the model
    store, the audit archive and the district's drop bucket."""
    access_logs = LogBucket("access-logs", LogBucketArgs(stack=stack))
    # CloudFront's read grant joins the models bucket's one policy once the distribution exists.
    assets_grant = AssetsGrant() if edge else None
    models = SecureBucket(
        "models",
        SecureBucketArgs(
            stack=stack,
            purpose="model artifacts",
            force_destroy=not stack.protect,
            # The last 5 model versions stay restorable for a rollback of a bad training run.
            noncurrent_versions_kept=5,
            noncurrent_days=30,
            extra_policy_statements=[assets_grant.statement] if assets_grant else [],
            extra_key_policy_statements=[assets_grant.key_statement] if assets_grant else [],
            access_log_bucket=access_logs.bucket_name,
        ),
    )
    audit_archive = SecureBucket(
        "audit-archive",
        SecureBucketArgs(
            stack=stack,
            purpose="archived audit-log partitions",
            force_destroy=not stack.protect,
            # Audit partitions are read only for investigations: instant-retrieval archive after
            # 30 days, deep archive (hours to restore) after a year. Nothing expires (FERPA).
            transitions=(Transition(30, "GLACIER_IR"), Transition(365, "DEEP_ARCHIVE")),
            access_log_bucket=access_logs.bucket_name,
            # Append-only in S3 too: an archived month cannot be overwritten or deleted.
            object_lock=ObjectLock(audit_lock.mode, audit_lock.days),
        ),
    )
    # The district's nightly exports (native CSV or OneRoster) land under exports/ here; the
    # nightly pipeline imports them. Student records (FERPA): a key of its own; each night's
    # export replaces the last, whose versions are kept 30 days for a re-import.
    district_drop = SecureBucket(
        "district-drop",
        SecureBucketArgs(
            stack=stack,
            purpose="district data exports",
            force_destroy=not stack.protect,
            noncurrent_versions_kept=7,
            noncurrent_days=30,
            access_log_bucket=access_logs.bucket_name,
        ),
    )
    return access_logs, models, audit_archive, district_drop, assets_grant
