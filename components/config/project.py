"""The project's config keys and their defaults, read from ``Pulumi.yaml``: the one place they
are written (with their type and description, which the CLI shows).

The CLI hands the program every default a stack file leaves unset, as config; the specs
merge the same defaults under what they are given, so a spec built from a stack file
alone (tests, tools) sees the same values a real ``pulumi up`` does.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml

PULUMI_YAML = Path(__file__).resolve().parents[2] / "Pulumi.yaml"


@functools.cache
def declared_config() -> dict[str, dict[str, Any]]:
    """Every key of the project's namespace with its declaration (type, default,
    description), as ``Pulumi.yaml`` holds them."""
    config = yaml.safe_load(PULUMI_YAML.read_text())["config"]
    return {str(key): dict(declaration) for key, declaration in config.items()}


def config_defaults() -> dict[str, Any]:
    """Every key's default, as a YAML value (``False``, ``[]``, ``"dev"``)."""
    return {key: d["default"] for key, d in declared_config().items()}


def is_project_default(key: str, value: Any) -> bool:
    """Whether ``value`` (a YAML value, or the string the engine hands over: ``"false"``,
    ``"[]"``) is the project's default of ``key``: what the CLI would hand the program if the
    stack file did not set the key at all."""
    declaration = declared_config().get(key)
    if declaration is None:
        return False
    if isinstance(value, str) and declaration["type"] == "boolean":
        value = {"true": True, "false": False}.get(value.strip().lower(), value)
    elif isinstance(value, str) and declaration["type"] == "integer":
        value = int(value) if value.strip().lstrip("-").isdigit() else value
    elif isinstance(value, str) and declaration["type"] == "array":
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            return False
    return bool(value == declaration["default"])
