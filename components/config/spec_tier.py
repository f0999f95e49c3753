"""The tier row of a stack, validated for ``components.config.spec`` after its overrides:
each rule appends a message naming the override key (``db.replica_count``) that breaks it."""

from __future__ import annotations

from components.config.capacity import (
    CACHE_NODE_TYPES,
    DB_INSTANCE_MEMORY_MIB,
    SAGEMAKER_INSTANCE_VCPUS,
    connection_capacity,
)
from components.config.spec_events import events_problems
from components.config.tier import Tier


def tier_problems(t: Tier) -> list[str]:
    """Rules every tier row must satisfy after overrides; each message names the override
    key."""
    problems: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    net, db, api, cache, sm = t.network, t.db, t.api, t.cache, t.inference
    need(
        2 <= net.az_count <= 4,
        f"network.az_count={net.az_count}: allowed 2-4 (EKS and RDS need two AZs)",
    )
    need(
        net.nat_mode in ("single", "per_az"),
        f"network.nat_mode={net.nat_mode!r}: allowed single, per_az",
    )
    need(
        db.instance_class in DB_INSTANCE_MEMORY_MIB,
        f"db.instance_class={db.instance_class!r}: allowed "
        f"{', '.join(sorted(DB_INSTANCE_MEMORY_MIB))}",
    )
    need(
        0 <= db.replica_count <= db.max_replica_count,
        f"db.replica_count={db.replica_count}: tier {t.name} allows 0-{db.max_replica_count}",
    )
    need(
        20 <= db.storage_gib <= db.max_storage_gib <= 65_536,
        f"db.storage_gib={db.storage_gib}, db.max_storage_gib={db.max_storage_gib}: need "
        "20 <= db.storage_gib <= db.max_storage_gib <= 65536",
    )
    need(
        1 <= db.backup_retention_days <= 35,
        f"db.backup_retention_days={db.backup_retention_days}: allowed 1-35",
    )
    if t.name != "dev":
        need(
            db.backup_retention_days >= 7,
            f"db.backup_retention_days={db.backup_retention_days}: outside dev at least 7",
        )
        need(t.deletion_protection, "deletion_protection=false: only dev may drop it")
    need(
        10 <= db.proxy_max_connections_percent <= 100,
        f"db.proxy_max_connections_percent={db.proxy_max_connections_percent}: allowed 10-100",
    )
    need(db.max_connections >= 20, f"db.max_connections={db.max_connections}: at least 20")
    need(
        1 <= api.min_replicas <= api.max_replicas,
        f"api.min_replicas={api.min_replicas} > api.max_replicas={api.max_replicas}: "
        "need 1 <= min <= max",
    )
    for name in ("cpu_target_percent", "memory_target_percent"):
        value = getattr(api, name)
        need(10 <= value <= 95, f"api.{name}={value}: allowed 10-95")
    # A pod's DB_POOL_MAX is its share of size + overflow: a negative overflow would silently
    # shrink the pool below its size, and a pool of no connection serves nothing.
    need(api.pool_size >= 1, f"api.pool_size={api.pool_size}: at least 1")
    need(api.pool_max_overflow >= 0, f"api.pool_max_overflow={api.pool_max_overflow}: at least 0")
    if cache.enabled:
        need(
            cache.node_type in CACHE_NODE_TYPES,
            f"cache.node_type={cache.node_type!r}: allowed {', '.join(sorted(CACHE_NODE_TYPES))}",
        )
        need(1 <= cache.num_nodes <= 6, f"cache.num_nodes={cache.num_nodes}: allowed 1-6")
    for name in ("per_ip_limit", "anonymous_limit", "auth_limit", "per_key_limit"):
        value = getattr(t.waf, name)
        need(10 <= value <= 2_000_000_000, f"waf.{name}={value}: WAF allows 10-2,000,000,000")
    need(
        t.waf.window_seconds in (60, 120, 300, 600),
        f"waf.window_seconds={t.waf.window_seconds}: allowed 60, 120, 300, 600",
    )
    if sm.enabled:
        need(
            sm.instance_type in SAGEMAKER_INSTANCE_VCPUS,
            f"inference.instance_type={sm.instance_type!r}: allowed "
            f"{', '.join(sorted(SAGEMAKER_INSTANCE_VCPUS))}",
        )
        need(
            1 <= sm.min_instances <= sm.max_instances,
            f"inference.min_instances={sm.min_instances} > inference.max_instances="
            f"{sm.max_instances}: need 1 <= min <= max",
        )
        need(
            0 < sm.data_capture_percent <= 100,
            f"inference.data_capture_percent={sm.data_capture_percent}: allowed 1-100",
        )
    if db.multi_az is False and t.name in ("tier3", "tier4"):
        problems.append(f"db.multi_az=false: tier {t.name} requires a Multi-AZ primary")
    for g in t.node_groups:
        need(
            0 <= g.min_size <= g.desired_size <= g.max_size and g.max_size >= 1,
            f"node_groups.{g.name}: need 0 <= min_size ({g.min_size}) <= desired_size "
            f"({g.desired_size}) <= max_size ({g.max_size}), max_size >= 1",
        )
        need(bool(g.instance_types), f"node_groups.{g.name}.instance_types: at least one type")
    problems.extend(events_problems(t.events))
    problems.extend(connection_capacity(t).problems())
    return problems
