"""Build policy arguments the way the engine does, without constructing the pack."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.rules import ALL_POLICIES

STACK = "tier3"
TAGS = {
    "project": "student-success",
    "stack": STACK,
    "tier": STACK,
    "owner": "platform",
    "managed-by": "pulumi",
    "data-classification": "internal",
}


def policy(name: str) -> Policy:
    return next(p for p in ALL_POLICIES if p.name == name)


def urn(resource_type: str, name: str, stack: str = STACK) -> str:
    return f"urn:pulumi:{stack}::student-success::{resource_type}::{name}"


def options(parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], False, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def resource_args(
    resource_type: str,
    props: Mapping[str, Any],
    name: str = "res",
    config: Mapping[str, Any] | None = None,
) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource_type, props, urn(resource_type, name), name, options(), None, config
    )


def resource_messages(
    name: str,
    resource_type: str,
    props: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    resource_name: str = "res",
) -> list[str]:
    """Messages the named resource rule reports for one resource."""
    rule = policy(name)
    assert isinstance(rule, ResourceValidationPolicy)
    messages: list[str] = []

    def report(message: str, _urn: str | None = None) -> None:
        messages.append(message)

    rule.validate(resource_args(resource_type, props, resource_name, config), report)
    return messages


def stack_resource(
    resource_type: str, name: str, props: Mapping[str, Any], parent: PolicyResource | None = None
) -> PolicyResource:
    return PolicyResource(
        resource_type,
        dict(props),
        urn(resource_type, name),
        name,
        options(parent.urn if parent else None),
        None,
        parent,
        [],
        {},
    )


def stack_messages(
    name: str, resources: list[PolicyResource], config: Mapping[str, Any] | None = None
) -> list[tuple[str, str | None]]:
    """(message, urn) pairs the named stack rule reports."""
    rule = policy(name)
    assert isinstance(rule, StackValidationPolicy)
    found: list[tuple[str, str | None]] = []

    def report(message: str, at: str | None = None) -> None:
        found.append((message, at))

    rule.validate(StackValidationArgs(resources, config), report)
    return found
