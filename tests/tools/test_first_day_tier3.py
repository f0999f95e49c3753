"""The first day of tier3 rehearsed in full (the tier with a cache): a file of its own, so
that the test runner places it beside the other tests."""

from __future__ import annotations

from tests.shared import StackRunner
from tools.first_day import ARCHIVE_STEP, PURGE_STEP, REQUEST_STEP, SAGEMAKER_STEP, rehearse


def test_the_first_day_of_tier3_passes_every_step(stack_run: StackRunner) -> None:
    lines: list[str] = []
    seconds = rehearse(stack_run("tier3"), lines.append)
    assert {REQUEST_STEP, ARCHIVE_STEP, PURGE_STEP, SAGEMAKER_STEP} <= set(seconds)
    assert not [line for line in lines if "FAILED" in line]
