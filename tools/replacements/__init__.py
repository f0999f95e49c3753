"""Which input changes force a replacement, per resource type, at the pinned provider versions.

The tables beside this module (``aws.json``, ``kubernetes.json``, ``random.json``,
``grafana.json``, ``time.json``) say, for
every resource type the program registers, which input paths (camelCase, dotted, list
indexes dropped) the provider cannot change in place. Each records where it came from;
``python -m tools.replacements.refresh`` rebuilds them from the providers' sources (see its
docstring). A change under such a path, or under a ``replaceOnChanges`` option, is a
replacement; every other change is an in-place update. An AWS type's ``optional_computed``
list names the inputs the provider keeps from state when the program stops setting them
(``tools.provider_diff`` applies it); its ``defaults`` are the schema's ``Default`` values,
which the provider reads for an absent input. A type no table covers is an error, never a
silent update (``UnknownTypeError``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

TABLES = Path(__file__).resolve().parent
PROVIDERS = ("aws", "kubernetes", "random", "grafana", "time")

_INDEX = re.compile(r"\[[^\]]*\]")


def normalized(path: str) -> str:
    """``spec.template.spec.containers[0].image`` -> ``spec.template.spec.containers.image``;
    ``a[*].b`` (a ``replaceOnChanges`` pattern) -> ``a.b``; a set item keyed by name
    (``parameters[max_connections].value``) -> ``parameters.value``."""
    return _INDEX.sub("", path).strip(".")


def under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or lies below it (``*`` is every path)."""
    return prefix == "*" or path == prefix or path.startswith(prefix + ".")


@dataclass(frozen=True)
class Rule:
    """What forces a replacement of one resource type."""

    paths: tuple[str, ...]
    """Input paths whose change forces a replacement."""
    unless_mutable: tuple[str, ...] = ()
    """Paths that force a replacement unless the provider option ``mutable_option`` is on
    and the object is not ``immutable`` (a Kubernetes Secret's data, a ConfigMap's)."""
    mutable_option: str = ""
    conditional: tuple[tuple[str, str], ...] = ()
    """Paths the provider replaces on only in some cases (a CustomizeDiff ``ForceNewIf``),
    with the case: reported as a note, since the mocks cannot tell."""
    optional_computed: tuple[str, ...] = ()
    """Inputs the schema marks Optional and Computed: dropped by the program, they keep the
    state's value (no change, even where they force a replacement when set)."""
    defaults: tuple[tuple[str, Any], ...] = ()
    """The schema's ``Default`` per input: the provider reads an absent input as its default,
    so spelling the default out (or dropping it) is no change."""
    active_cluster: tuple[str, ...] = ()
    """A Kubernetes provider's inputs that replace it only when the cluster they select
    changes (``tools.diff.compare.active_cluster``)."""


@cache
def table(provider: str) -> dict[str, Any]:
    """One provider's table as checked in (``tools/replacements/<provider>.json``)."""
    doc: dict[str, Any] = json.loads((TABLES / f"{provider}.json").read_text())
    return doc


def provider_of(type_: str) -> str:
    """``aws:rds/instance:Instance`` -> ``aws``; ``pulumi:providers:aws`` -> ``aws``."""
    if type_.startswith("pulumi:providers:"):
        return type_.split(":")[2]
    return type_.split(":")[0]


def rule(type_: str) -> Rule | None:
    """The replacement rule of a resource type, or None when no table covers it."""
    provider = provider_of(type_)
    if provider not in PROVIDERS:
        return None
    doc = table(provider)
    entry = doc["types"].get(type_)
    if entry is None:
        return None
    return Rule(
        paths=tuple(doc.get("every_type", [])) + tuple(entry.get("replace", [])),
        unless_mutable=tuple(entry.get("replace_unless_mutable", [])),
        mutable_option=entry.get("mutable_option", ""),
        conditional=tuple(sorted(entry.get("replace_if", {}).items())),
        optional_computed=tuple(entry.get("optional_computed", [])),
        defaults=tuple(sorted(entry.get("defaults", {}).items())),
        active_cluster=tuple(entry.get("active_cluster", [])),
    )


class UnknownTypeError(ValueError):
    """A resource type no replacement table covers: the diff cannot tell update from replace."""

    def __init__(self, type_: str, name: str = ""):
        where = f" (resource {name})" if name else ""
        super().__init__(
            f"no replacement table covers {type_}{where}: add it to "
            f"tools/replacements/{provider_of(type_)}.json from the provider's schema "
            "(see tools/replacements/refresh.py)"
        )
        self.type = type_


def uncovered(types: Iterable[str]) -> list[str]:
    """The custom resource types no table covers."""
    return sorted({t for t in types if rule(t) is None})


def forcing(
    type_: str,
    path: str,
    *,
    replace_on_changes: Iterable[str] = (),
    mutable: bool = False,
) -> str | None:
    """Why a change at ``path`` forces a replacement: the rule that says so, or None.

    ``mutable`` says the provider is configured to update this object's data in place
    (pulumi-kubernetes' ``enableSecretMutable`` / ``enableConfigMapMutable``)."""
    path = normalized(path)
    for pattern in replace_on_changes:
        if under(path, normalized(pattern)):
            return f"replaceOnChanges {pattern}"
    found = rule(type_)
    if found is None:
        return None
    for prefix in found.paths:
        if under(path, prefix):
            return f"{provider_of(type_)} replaces on {prefix}"
    if not mutable:
        for prefix in found.unless_mutable:
            if under(path, prefix):
                return f"{provider_of(type_)} replaces on {prefix} ({found.mutable_option} off)"
    return None


def condition(type_: str, path: str) -> str | None:
    """When a change at ``path`` may force a replacement, the case in which it does."""
    found = rule(type_)
    path = normalized(path)
    for prefix, case in found.conditional if found else ():
        if under(path, prefix):
            return case
    return None
