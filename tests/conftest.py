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


# The files that rehearse a stack in full (a minute or more each) run first, longest first
# (as `pytest --durations` measured them), so that the parallel workers (pytest-xdist, one
# file per worker at a time) end together rather than one of them finishing a long rehearsal
# alone at the end.
LONGEST_FIRST = (
    "tests/tools/test_first_day_tier3.py",
    "tests/tools/test_rehearse_growth.py",
    "tests/tools/test_rehearse_growth_tier1.py",
    "tests/tools/test_rehearse.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
