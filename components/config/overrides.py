"""Stack overrides of single catalog values: ``<slice>.<field>=value`` (``db.replica_count=2``),
``<field>=value`` for a tier's scalars, ``node_groups.<group>.<field>=value``. Each value is
parsed to the type of the value it replaces."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from components.config.tier import Tier

_NODE_GROUP_FIELDS = {"min_size", "max_size", "desired_size", "instance_types"}
# Override keys: ``<slice>.<field>`` for the tier's slices (``db.replica_count``),
# ``<field>`` for its scalars, ``node_groups.<group>.<field>`` for node groups.
_SLICES = {
    name: {f.name for f in dataclasses.fields(hint)}
    for name, hint in typing.get_type_hints(Tier).items()
    if dataclasses.is_dataclass(hint)
}
_SCALARS = (
    {f.name for f in dataclasses.fields(Tier)}
    - set(_SLICES)
    - {
        "name",
        "description",
        "node_groups",
    }
)
# Flat override keys from before the tier row was sliced: a stack file that still uses one
# is told the new key.
_RENAMED_KEYS = {
    "az_count": "network.az_count",
    "nat_mode": "network.nat_mode",
    "db_instance_class": "db.instance_class",
    "db_storage_gib": "db.storage_gib",
    "db_max_storage_gib": "db.max_storage_gib",
    "db_multi_az": "db.multi_az",
    "db_replica_count": "db.replica_count",
    "db_max_replica_count": "db.max_replica_count",
    "db_max_connections": "db.max_connections",
    "db_proxy_max_connections_percent": "db.proxy_max_connections_percent",
    "db_proxy": "db.proxy",
    "db_backup_retention_days": "db.backup_retention_days",
    "app_pool_size": "api.pool_size",
    "app_pool_max_overflow": "api.pool_max_overflow",
    "trainer_db_connections": "training.db_connections",
    "cache_enabled": "cache.enabled",
    "cache_node_type": "cache.node_type",
    "cache_num_nodes": "cache.num_nodes",
    "cache_snapshot_retention_days": "cache.snapshot_retention_days",
    "api_min_replicas": "api.min_replicas",
    "api_max_replicas": "api.max_replicas",
    "api_cpu_target_percent": "api.cpu_target_percent",
    "api_memory_target_percent": "api.memory_target_percent",
    "api_cpu_request": "api.cpu_request",
    "api_memory_request": "api.memory_request",
    "api_cpu_limit": "api.cpu_limit",
    "api_memory_limit": "api.memory_limit",
    "edge_enabled": "edge.enabled",
    "edge_price_class": "edge.price_class",
    "waf_api_rate_limit": "waf.per_ip_limit",
    "waf_auth_rate_limit": "waf.auth_limit",
    "waf_window_seconds": "waf.window_seconds",
    "sagemaker_enabled": "inference.enabled",
    "sagemaker_instance_type": "inference.instance_type",
    "sagemaker_min_instances": "inference.min_instances",
    "sagemaker_max_instances": "inference.max_instances",
    "sagemaker_data_capture_percent": "inference.data_capture_percent",
    "sagemaker_measured_max_rps": "inference.measured_max_rps",
    "alarm_cpu_percent": "alarms.cpu_percent",
    "alarm_memory_percent": "alarms.memory_percent",
    "alarm_latency_p95_ms": "alarms.latency_p95_ms",
    "alarm_error_rate_percent": "alarms.error_rate_percent",
    "alarm_db_connections_percent": "alarms.db_connections_percent",
    "alarm_replica_lag_seconds": "alarms.replica_lag_seconds",
    "alarm_free_storage_percent": "alarms.free_storage_percent",
    "alarm_model_latency_p95_ms": "alarms.model_latency_p95_ms",
}
_OVERRIDE_KEYS = sorted(
    [*_SCALARS, *(f"{s}.{field}" for s, fields in _SLICES.items() for field in fields)]
)


def _parse(raw: Any, current: Any, key: str, problems: list[str]) -> Any:
    """Convert an override's text to the type of the value it replaces."""
    text = str(raw).strip()
    if isinstance(current, bool):
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        problems.append(f"overrides: {key}={text!r} must be true or false")
    elif isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            problems.append(f"overrides: {key}={text!r} must be an integer")
    elif isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            problems.append(f"overrides: {key}={text!r} must be a number")
    elif isinstance(current, tuple):
        return tuple(part.strip() for part in text.split(",") if part.strip())
    else:
        return text
    return current


def apply_overrides(tier: Tier, overrides: list[Any], problems: list[str]) -> Tier:
    """The tier with a stack's ``key=value`` overrides applied; each bad one is added to
    ``problems``, naming the key."""
    changes: dict[str, Any] = {}
    slices: dict[str, Any] = {name: getattr(tier, name) for name in _SLICES}
    groups = {g.name: g for g in tier.node_groups}
    for item in overrides:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        head, _, rest = key.partition(".")
        if not sep:
            problems.append(f"overrides: {item!r} must look like key=value")
        elif head == "node_groups":
            group, _, field = rest.partition(".")
            if group not in groups:
                problems.append(
                    f"overrides: {key} names node group {group!r}; tier {tier.name} has "
                    f"{', '.join(sorted(groups))}"
                )
            elif field not in _NODE_GROUP_FIELDS:
                problems.append(
                    f"overrides: {key}: node group field must be one of "
                    f"{', '.join(sorted(_NODE_GROUP_FIELDS))}"
                )
            else:
                new = _parse(value, getattr(groups[group], field), key, problems)
                groups[group] = dataclasses.replace(groups[group], **{field: new})
        elif head in _SLICES and rest in _SLICES[head]:
            new = _parse(value, getattr(slices[head], rest), key, problems)
            slices[head] = dataclasses.replace(slices[head], **{rest: new})
        elif key in _SCALARS:
            changes[key] = _parse(value, getattr(tier, key), key, problems)
        elif key in _RENAMED_KEYS:
            problems.append(f"overrides: {key} is now {_RENAMED_KEYS[key]}; rename it")
        else:
            problems.append(
                f"overrides: unknown key {key!r}; allowed: node_groups.<group>.<field> or one "
                f"of {', '.join(_OVERRIDE_KEYS)}"
            )
    return dataclasses.replace(tier, node_groups=tuple(groups.values()), **slices, **changes)


def with_overrides(tier: Tier, *overrides: str) -> Tier:
    """The tier with ``key=value`` overrides applied, as a stack file's ``overrides`` would;
    raises ``ValueError`` naming any bad key or value."""
    problems: list[str] = []
    changed = apply_overrides(tier, list(overrides), problems)
    if problems:
        raise ValueError("; ".join(problems))
    return changed
