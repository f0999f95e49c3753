"""Shared fixtures: one mocked evaluation per stack, reused by every test of a session."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.shared import StackRunner  # noqa: E402
from tools.harness import StackRun, run_stack  # noqa: E402
from tools.shared_evaluations import SHARED_EVALUATIONS, share_evaluations  # noqa: E402

_RUNS: dict[str, StackRun] = {}
# Fixtures of a test that patches code or captures what an evaluation prints: its stacks are
# evaluated afresh, not shared with the session's other processes.
PATCHING = {"monkeypatch", "caplog", "capsys", "capfd", "capsysbinary", "capfdbinary", "recwarn"}
_MADE_HERE = pytest.StashKey[str]()  # the shared evaluations' directory, in its maker


def pytest_configure(config: pytest.Config) -> None:
    """The session's shared evaluations (tools.shared_evaluations): one directory, made by the
    first process, which the test workers (pytest-xdist) inherit through the environment."""
    if SHARED_EVALUATIONS not in os.environ:
        os.environ[SHARED_EVALUATIONS] = tempfile.mkdtemp(prefix="ssp-evaluations-")
        config.stash[_MADE_HERE] = os.environ[SHARED_EVALUATIONS]


def pytest_unconfigure(config: pytest.Config) -> None:
    if made := config.stash.get(_MADE_HERE, None):
        shutil.rmtree(made, ignore_errors=True)
        del os.environ[SHARED_EVALUATIONS]


@pytest.fixture(autouse=True)
def _evaluations_shared_unless_patched(request: pytest.FixtureRequest) -> Iterator[None]:
    share_evaluations(not PATCHING & set(request.fixturenames))
    yield
    share_evaluations(True)


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
