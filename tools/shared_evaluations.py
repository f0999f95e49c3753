"""Evaluations shared by the processes of one test session (``tests/conftest.py`` names their
directory in SSP_SHARED_EVALUATIONS; the test workers inherit it). This checkout's program
evaluates a stack's config to the same registrations in any process, so the first process to
evaluate it keeps the run and the others read it back (``tools.harness.run_stack``); one that
asks while another evaluates it waits for that run rather than evaluating it too. A test
that patches code or captures what an evaluation prints turns sharing off
(``share_evaluations(False)``): its runs are neither read from nor written to the directory."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SHARED_EVALUATIONS = "SSP_SHARED_EVALUATIONS"
_sharing = {"on": True}


def share_evaluations(on: bool) -> None:
    _sharing["on"] = on


class SharedEvaluation:
    """One evaluation's place in the directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Any:
        """The run another process kept, or None."""
        return pickle.loads(self.path.read_bytes()) if self.path.exists() else None

    @contextmanager
    def claimed(self) -> Iterator[None]:
        """Held while this process reads or makes the evaluation: another process asking for
        it meanwhile waits, then reads what this one kept (or, if this one failed, evaluates
        it itself). The lock goes with the process if it dies."""
        with self.path.with_suffix(".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def keep(self, run: Any) -> None:
        kept = self.path.with_suffix(f".{os.getpid()}")
        kept.write_bytes(pickle.dumps(run))
        kept.replace(self.path)  # whole or not at all, for the other processes


def shared_evaluation(this_checkout: bool, inputs: list[Any]) -> SharedEvaluation | None:
    """Where the evaluation of ``inputs`` (the stack, its whole config, ...) is kept, when
    evaluations are shared and the program is this checkout's."""
    where = os.environ.get(SHARED_EVALUATIONS)
    if not where or not _sharing["on"] or not this_checkout:
        return None
    key = json.dumps(inputs, sort_keys=True, default=repr).encode()
    return SharedEvaluation(Path(where) / f"{hashlib.sha256(key).hexdigest()}.pickle")
