"""Shared fixtures: one mocked evaluation per stack, reused by every test of a session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.shared import StackRunner  # noqa: E402
from tools.harness import StackRun, run_stack  # noqa: E402

_RUNS: dict[str, StackRun] = {}


@pytest.fixture(scope="session")
def stack_run() -> StackRunner:
    """``stack_run("tier3")``: the stack's mocked evaluation, computed once per session.
    Tests must not mutate the returned run."""

    def get(stack: str) -> StackRun:
        if stack not in _RUNS:
            _RUNS[stack] = run_stack(stack)
        return _RUNS[stack]

    return get
