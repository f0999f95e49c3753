"""How the plan and the diff show values: one ``path = value`` leaf per scalar (JSON text,
such as policy documents and dashboard bodies, unfolded), secrets masked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

MASK = "[secret]"


def masked(value: Any, secret_paths: frozenset[str], prefix: str = "") -> Any:
    path = prefix.rstrip(".")
    if path and path in secret_paths:
        return MASK
    if isinstance(value, dict):
        return {k: masked(v, secret_paths, f"{prefix}{k}.") for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, secret_paths, f"{prefix}{i}.") for i, v in enumerate(value)]
    return value


def _parse_json_text(value: Any) -> Any:
    """Policy documents and dashboard bodies arrive as JSON text: show their structure."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    value = _parse_json_text(value)
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from leaves(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            yield from leaves(item, f"{prefix}[{i}]")
    else:
        yield prefix, value


def fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    return json.dumps(value)
