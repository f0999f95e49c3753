"""One stack's diff: the direct changes, what they do to their readers, and their effects."""

from __future__ import annotations

from collections.abc import Sequence

from tools.diff import cascade, effects
from tools.diff.compare import direct_changes
from tools.diff.model import Change, StackDiff
from tools.harness import Resource
from tools.revision import Evaluation


def diff_resources(base: Sequence[Resource], head: Sequence[Resource]) -> list[Change]:
    """The changes that take the base stack's custom resources to the head's, with what each
    does to its readers."""
    changes = direct_changes(base, head)
    cascade.follow(changes, base, head)
    effects.annotate(changes)
    return changes


def diff_stacks(
    base: dict[str, Evaluation], head: dict[str, Evaluation], stacks: Sequence[str]
) -> list[StackDiff]:
    empty = Evaluation([], 0.0)
    diffs = []
    for stack in stacks:
        old, new = base.get(stack, empty), head.get(stack, empty)
        diffs.append(
            StackDiff(
                stack,
                diff_resources(old.resources, new.resources),
                old.monthly_cost,
                new.monthly_cost,
                old.cost_items,
                new.cost_items,
                old.resources,
                new.resources,
            )
        )
    return diffs
