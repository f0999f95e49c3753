"""The tagging rule's list of taggable types agrees with pulumi_aws, and no taggable resource of
any stack slips past it."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from policies.rules.tagging import DATA_STORES, TAGGABLE_TYPES
from tools.harness import StackRun, stacks

_TOKEN = re.compile(r"^aws:(?P<module>[a-z0-9]+)/(?P<file>[A-Za-z0-9]+):(?P<cls>[A-Za-z0-9]+)$")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@cache
def aws_taggable(token: str) -> bool:
    """Whether pulumi_aws's resource class for a type token accepts ``tags``."""
    match = _TOKEN.match(token)
    assert match, token
    module = importlib.import_module(f"pulumi_aws.{match['module']}")
    cls: Any = getattr(module, match["cls"], None)
    if not inspect.isclass(cls):
        module = importlib.import_module(f"pulumi_aws.{match['module']}.{_snake(match['file'])}")
        cls = getattr(module, match["cls"])
    return "tags" in inspect.signature(cls._internal_init).parameters


@pytest.mark.parametrize("token", sorted(TAGGABLE_TYPES | DATA_STORES))
def test_listed_types_accept_tags(token: str) -> None:
    assert aws_taggable(token), f"{token} takes no tags in pulumi_aws"


def test_non_taggable_types_are_recognised() -> None:
    assert not aws_taggable("aws:ec2/securityGroupRule:SecurityGroupRule")
    assert not aws_taggable("aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup")


@pytest.mark.parametrize("stack", stacks())
def test_every_taggable_resource_of_a_stack_is_checked(
    stack: str, stack_run: Callable[[str], StackRun]
) -> None:
    missed = sorted(
        {
            r.type
            for r in stack_run(stack).resources
            if r.custom
            and r.type.startswith("aws:")
            and r.type not in TAGGABLE_TYPES
            and "tags" not in r.inputs
            and aws_taggable(r.type)
        }
    )
    assert missed == [], f"add these taggable types to policies/rules/tagging.py: {missed}"
