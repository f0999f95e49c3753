"""Helpers shared by the rule modules: safe property access, tags, tier, config, messages.

Props arrive as the engine's unknown-checking proxies (``Mapping``/``Sequence``, not dict/list)
with camelCase wire names and numbers as floats; reading a value that is unknown during a
preview raises ``UnknownValueError``, which the engine reports as "can't run during preview".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

REQUIRED_TAGS = ("project", "stack", "tier", "owner", "data-classification")
# "global": the tier 4 global stack (zone, district directory, registry), no tier row.
TIERS = ("dev", "tier1", "tier2", "tier3", "tier4", "global")


def get(value: Any, path: str, default: Any = None) -> Any:
    """Value at a dotted path (``vpcConfig.publicAccessCidrs``, ``rules.0.x``), or ``default``."""
    for part in path.split("."):
        if isinstance(value, Mapping):
            if part not in value:
                return default
            value = value[part]
        elif is_list(value) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return default
        if value is None:
            return default
    return value


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def as_list(value: Any) -> list[Any]:
    """A list for a list-like value, ``[value]`` for a scalar, ``[]`` for None."""
    if value is None:
        return []
    if is_list(value):
        return list(value)
    return [value]


def num(value: Any, default: float | None = None) -> float | None:
    """A number from a wire value (floats, ints or numeric strings)."""
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return default


def tags_of(props: Mapping[str, Any]) -> Mapping[str, Any]:
    tags = props.get("tags")
    return tags if isinstance(tags, Mapping) else {}


def tier_of(props: Mapping[str, Any]) -> str | None:
    """The stack's tier, read from the resource's ``tier`` tag (every taggable resource carries
    it, and a policy pack cannot read the program's config)."""
    tier = tags_of(props).get("tier")
    return str(tier) if tier else None


def stack_of_urn(urn: str) -> str:
    """``urn:pulumi:<stack>::<project>::<type>::<name>`` -> ``<stack>``."""
    head = urn.split("::", 1)[0]
    return head.rsplit(":", 1)[-1] if head.startswith("urn:pulumi:") else ""


def known(read: Callable[[], Any], default: Any = None) -> Any:
    """``read()``, or ``default`` when the value is unknown during a preview (stack rules use
    it so that one unknown ID does not disable the whole rule)."""
    try:
        return read()
    except UnknownValueError:
        return default


def present(value: Any, path: str) -> bool:
    """Whether a value is set at a path. A value unknown during a preview counts as set: it
    is the output of another resource (a KMS key ARN, a generated token, a web ACL)."""
    try:
        return bool(get(value, path))
    except UnknownValueError:
        return True


def label(kind: str, name: str) -> str:
    return f"{kind} '{name}'"


def parse_json(document: Any) -> Any:
    """A policy document given as JSON text or as an object."""
    if isinstance(document, str):
        try:
            return json.loads(document)
        except json.JSONDecodeError:
            return None
    return document


def statements(document: Any) -> Iterator[Mapping[str, Any]]:
    doc = parse_json(document)
    if not isinstance(doc, Mapping):
        return
    for statement in as_list(doc.get("Statement")):
        if isinstance(statement, Mapping):
            yield statement


def setting(args: Any, schema: PolicyConfigSchema, key: str) -> Any:
    """A policy's config value, falling back to its schema default (the engine fills defaults
    in, the offline runner and tests may not)."""
    config = args.get_config() or {}
    if key in config and config[key] is not None:
        return config[key]
    return schema.properties[key].get("default")


Validate = Callable[[ResourceValidationArgs, ReportViolation], None]


def for_types(types: Sequence[str] | None, check: Validate) -> Validate:
    """Run ``check`` only on resources of the given type tokens (all types when None)."""
    wanted = frozenset(types) if types is not None else None

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if wanted is None or args.resource_type in wanted:
            check(args, report)

    return validate


def rule(
    name: str,
    description: str,
    types: Sequence[str] | None,
    check: Validate,
    level: EnforcementLevel,
    config_schema: PolicyConfigSchema | None = None,
) -> ResourceValidationPolicy:
    """A ``ResourceValidationPolicy`` applied to some type tokens (every type when None)."""
    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=for_types(types, check),
        enforcement_level=level,
        config_schema=config_schema,
    )
