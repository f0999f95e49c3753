"""The rehearsal of a move: what it compares, and that a broken move fails it at the step that
shows the damage (the pepper regenerated: the old key refused; the queue switched to SQS
without the drain: the pending events never processed)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.shared import StackRunner
from tools import rehearse_growth
from tools.first_day import StepFailed
from tools.harness import StackRun, run_stack
from tools.manifests import CONFIG_MAP, SECRET
from tools.move_checks import Kept, changed_keys, lost
from tools.moves import moved_config
from tools.rehearse import main
from tools.rehearse_growth import (
    DRAIN_STEP,
    NEW_API_STEP,
    PENDING_BATCH,
    SAME_KEY_STEP,
    rehearse_move,
)


def edited(run: StackRun, type_: str, name: str, field: str, **data: str | None) -> StackRun:
    """A copy of ``run`` whose ConfigMap or Secret ``name`` has ``data`` in ``field`` (None:
    the key removed)."""
    resources = []
    for r in run.resources:
        if r.type == type_ and r.name == name:
            values = {**r.inputs[field], **data}
            values = {k: v for k, v in values.items() if v is not None}
            r = dataclasses.replace(r, inputs={**r.inputs, field: values})
        resources.append(r)
    return dataclasses.replace(run, resources=resources)


def to_tier2() -> StackRun:
    return run_stack("tier1", moved_config("tier1", "tier2"))


def test_the_move_lists_what_changes_by_key_and_never_a_secrets_value(
    stack_run: StackRunner,
) -> None:
    lower, higher = stack_run("tier1"), to_tier2()
    changes = changed_keys(lower, higher)
    config = next(c for c in changes if c.startswith("workloads-config:"))
    assert "QUEUE_BACKEND postgres->sqs" in config
    assert "+EVENTS_QUEUE_URL" in config and "+QUEUE_DRAIN_POSTGRES" in config
    # The database Secrets name the proxy now: the key is listed, its value (a password) not.
    assert "workloads-api-db: DATABASE_READ_URL, DATABASE_URL" in changes
    assert not any("mock-" in c or "postgresql://" in c for c in changes)
    assert not any(c.startswith("workloads-secret") for c in changes)  # the pepper stays
    regenerated = edited(higher, SECRET, "workloads-secret", "stringData", API_KEY_PEPPER="x" * 48)
    assert "workloads-secret: API_KEY_PEPPER" in changed_keys(lower, regenerated)


def test_what_was_lost_is_named_per_table() -> None:
    before = {"students": Kept(600, "a"), "audit rows": Kept(93, "b"), "events": Kept(4, "c")}
    after = {"students": Kept(600, "a"), "audit rows": Kept(90, "b"), "events": Kept(4, "d")}
    assert lost(before, after) == [
        "audit rows: 93 rows -> 90",
        "events: 4 rows -> 4 (their content changed)",
    ]
    assert lost(before, before) == []


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--grow", "tier4"], "tier4 (tier4) has no higher tier to move to"),
        (["--grow", "tier2", "tier1"], "tier1 is not a move up"),
        (["--grow", "nowhere"], "unknown stack 'nowhere'"),
        (["--grow", "global"], "global (no tier) has no higher tier"),
        (["--grow", "tier1", "tier2", "tier3"], "--grow takes a stack and, optionally"),
        (["--grow", "tier1", "tier3"], "a stack moves one tier at a time; move to tier2 first"),
        (["--grow-all", "--jobs", "0"], "--jobs 0: at least 1"),
    ],
)
def test_a_move_that_cannot_be_rehearsed_is_refused_by_name(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert problem in capsys.readouterr().err


# Broken moves, rehearsed in full: embedded PostgreSQL, moto's SQS, real `python -m app`.


def failed_move(lower: StackRun, higher: StackRun) -> tuple[StepFailed, list[str]]:
    lines: list[str] = []
    with pytest.raises(StepFailed) as failed:
        rehearse_move(lower, higher, lines.append)
    return failed.value, lines


def passed(lines: list[str], step: str) -> bool:
    return any(line.startswith(f"  {step}") and "FAILED" not in line for line in lines)


def test_a_regenerated_pepper_fails_the_move_at_the_old_key(stack_run: StackRunner) -> None:
    """The pepper of the higher tier's Secret is new: every key created before the move is
    refused, although the API itself comes up fine."""
    higher = edited(to_tier2(), SECRET, "workloads-secret", "stringData", API_KEY_PEPPER="r" * 48)
    failure, lines = failed_move(stack_run("tier1"), higher)
    assert failure.step == SAME_KEY_STEP
    assert "the key created before the move is refused" in failure.message
    assert "answered 401 (API_KEY_PEPPER changed with the move?)" in failure.message
    assert passed(lines, NEW_API_STEP)


def test_a_queue_switched_without_the_drain_fails_the_move(
    stack_run: StackRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The higher tier's workers read SQS only: the events accepted on the table queue before
    the move are never processed (however long one waits: 2 s, not the rehearsal's 30)."""
    monkeypatch.setattr(rehearse_growth, "PROCESS_TIMEOUT", 2.0)
    higher: Any = edited(
        to_tier2(), CONFIG_MAP, "workloads-config", "data", QUEUE_DRAIN_POSTGRES=None
    )
    failure, lines = failed_move(stack_run("tier1"), higher)
    assert failure.step == DRAIN_STEP
    assert failure.message.startswith(
        f"{PENDING_BATCH} of the {PENDING_BATCH} events accepted before the move are still in"
        " the PostgreSQL table queue after 2 s"
    )
    assert failure.message.endswith("(QUEUE_DRAIN_POSTGRES unset?)")
    assert passed(lines, SAME_KEY_STEP)
