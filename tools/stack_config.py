"""What the CLI hands a program as its config: a stack file's values as strings (``secure:``
values, which cannot be decrypted offline, as a placeholder), every default ``Pulumi.yaml``
declares, and the keys the later steps of a first deployment set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]
SECRET_PLACEHOLDER = "mock-secret-value"


def config_value(value: Any) -> str:
    """A config value as the CLI hands it to a program: a string, Go's ``%v`` of a primitive
    (``true``, ``3``), compact JSON of a structured value (pulumi's
    ``sdk/go/common/workspace`` ``createConfigValue``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def project_defaults(root: Path = ROOT) -> dict[str, str]:
    """Every default ``Pulumi.yaml`` declares, by full key, as the CLI hands it over."""
    declared = yaml.safe_load((root / "Pulumi.yaml").read_text()).get("config") or {}
    return {
        key if ":" in key else f"{PROJECT}:{key}": config_value(declaration["default"])
        for key, declaration in declared.items()
        if isinstance(declaration, dict) and "default" in declaration
    }


def config_strings(stack: str, root: Path = ROOT) -> tuple[dict[str, str], list[str]]:
    """The stack file's config as the engine hands it to a program: strings, JSON for
    structured values; ``secure:`` values cannot be decrypted offline and get a placeholder."""
    data = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text()) or {}
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (data.get("config") or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[full], secret_keys = SECRET_PLACEHOLDER, [*secret_keys, full]
        else:
            config[full] = config_value(value)
    return config, secret_keys


def after_first_up(config: dict[str, str]) -> dict[str, str]:
    """The keys the later steps of a first deployment set (the program's own
    ``components.config.lifecycle``, which the checkout being evaluated provides)."""
    try:
        from components.config.lifecycle import after_first_up as later_steps
    except ImportError:  # an older checkout: its stack files held those values themselves
        return {}
    ours = {
        k.removeprefix(f"{PROJECT}:"): v for k, v in config.items() if k.startswith(f"{PROJECT}:")
    }
    return {f"{PROJECT}:{k}": v for k, v in later_steps(ours).items()}
