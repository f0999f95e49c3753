"""The move from tier1 to tier2 rehearsed in full (its events queue switches from the PostgreSQL
table to SQS): a file of its own, so that the test runner places it beside the other tests."""

from __future__ import annotations

from tests.shared import StackRunner
from tools.harness import run_stack
from tools.moves import moved_config
from tools.rehearse_growth import NEW_EVENTS_STEP, rehearse_move


def test_the_move_from_tier1_to_tier2_loses_nothing(stack_run: StackRunner) -> None:
    lines: list[str] = []
    seconds = rehearse_move(
        stack_run("tier1"), run_stack("tier1", moved_config("tier1", "tier2")), lines.append
    )
    assert NEW_EVENTS_STEP in seconds  # the last step ran
    assert not [line for line in lines if "FAILED" in line]
