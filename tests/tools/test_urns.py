"""Deployed stacks see no replacement from a refactor: every URN a stack has ever been
deployed with (``tests/fixtures/deployed_urns/<stack>.txt``) is still answered to, by the
resource itself or through an alias.

When a resource is deliberately removed or renamed without an alias, the change is a
replacement or a deletion for every deployed stack: update the fixture in the same commit
(``python -m tools.plan --write-urns``), so that the review sees it."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.shared import FIXTURES, OPTIONS_PROGRAM, StackRunner
from tools.harness import StackRun, run_stack, stacks

DEPLOYED_URNS = FIXTURES / "deployed_urns"


def unanswered(run: StackRun, deployed: set[str]) -> tuple[list[str], list[str]]:
    """Deployed URNs no resource answers to, and those two resources claim."""
    answered = Counter(urn for r in run for urn in r.previous_urns & deployed)
    return sorted(deployed - set(answered)), sorted(u for u, n in answered.items() if n > 1)


@pytest.mark.parametrize("stack", stacks())
def test_every_deployed_urn_is_still_answered_to(stack_run: StackRunner, stack: str) -> None:
    deployed = set((DEPLOYED_URNS / f"{stack}.txt").read_text().split())
    lost, twice = unanswered(stack_run(stack), deployed)
    assert not lost, f"{stack}: resources whose URN changed without an alias:\n" + "\n".join(lost)
    assert not twice, f"{stack}: URNs claimed by two resources:\n" + "\n".join(twice)


def test_a_move_without_alias_is_caught() -> None:
    run = run_stack("dev", program=OPTIONS_PROGRAM)
    prefix = "urn:pulumi:dev::student-success::"
    moved_with_alias = f"{prefix}aws:s3/bucket:Bucket$aws:ssm/parameter:Parameter::moved"
    moved_without = f"{prefix}aws:ssm/parameter:Parameter::token"
    lost, twice = unanswered(run, {moved_with_alias, moved_without})
    assert lost == [moved_without]
    assert twice == []
