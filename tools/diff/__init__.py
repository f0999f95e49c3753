"""Offline plan diff: what a change of the program does to each stack, in the words of
``pulumi preview --diff``: create, update, replace or delete, property by property.

    python -m tools.plan diff origin/main tier3
    python -m tools.plan diff origin/main --all
    python -m tools.plan diff HEAD~1 --all --allow-replace <urn> --markdown

Both sides are evaluated under the same mocks by today's harness: the working tree as it is,
the base ref from ``git archive`` (``tools.revision`` says why today's harness).

Matching follows the engine: a resource takes over the base resource whose URN it answers
to (its own, or one its aliases or its ancestors' aliases name), so a move with an alias is
no change. A changed input is a replacement when the provider's table
(``tools/replacements``) or the resource's ``replaceOnChanges`` says so, else an update; a
type no table covers fails the diff. ``ignoreChanges`` paths are not changes, nor is what
the providers themselves keep (``tools.provider_diff``: an Optional+Computed input the
program stops setting, a parameter's ``applyMethod`` alone), nor an input set to its schema
default. What a change does to the resources reading its outputs follows the dependency
graph (``tools.diff.cascade``). Secret values are compared but never printed.

Dangerous changes are listed first (``tools.diff.model``): replacing or deleting a protected
resource, a data store tagged ``data-classification = ferpa``, anything on the data tier
(databases, caches, buckets, keys, queues, tables), the load balancer, the VPC, the cluster
or the namespace. A deletion that ``retainOnDelete`` keeps in the account loses nothing.
The command exits 1 on such a change unless ``--allow-replace <urn>`` names it.
"""

from __future__ import annotations

from collections.abc import Sequence

from tools.diff import cascade, effects
from tools.diff.compare import direct_changes, property_changes
from tools.diff.model import Change, PropertyChange, StackDiff
from tools.diff.report import main, render
from tools.harness import Resource
from tools.revision import Evaluation

__all__ = [
    "Change",
    "PropertyChange",
    "StackDiff",
    "diff_resources",
    "diff_stacks",
    "main",
    "property_changes",
    "render",
]


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
