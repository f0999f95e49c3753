"""The fault suite: Redis and PostgreSQL killed and restarted under load, the trainer killed at
each step and run twice at once, the archive killed halfway and read from while it runs, a
model store that refuses writes. Each time: no 500, no stall, nothing lost or half-written,
and a re-run completes."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pgserver
import psycopg
import pytest
from fastapi.testclient import TestClient
from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

import app.jobs.archive
import app.model.artifacts
import app.model.publication
import app.model.training
from app.api.main import create_app
from app.cli import main as cli
from app.cli.exit_codes import EXIT_FAILED
from app.core import db
from app.core.auth import create_key
from app.core.settings import Settings
from app.jobs.archive import run_archive
from app.jobs.generate import generate
from app.model.artifacts import ModelStore, Pointer
from app.model.training import run_training
from app.model.training_lock import EXIT_LOCKED, TrainingLockedError
from tests.app.conftest import District, start_pgserver, start_redis
from tests.app.helpers import PEPPER, auth, free_port, scalar, served
from tests.app.test_archive import TODAY, partitions, read_export, seed_audit
from tests.app.test_training import ROOT, cli_env

# "About 2 s" of the issue, with room for a loaded 2-core machine: without a bounded backoff
# the same outage took 6 s to recover from here (the pool's wait doubles each attempt).
RECOVERY_BOUND_SECONDS = 2.5


class Killed(BaseException):
    """Stands for the process dying at that point: not an Exception, so no handler of the
    code under test can take it for an error it knows how to handle."""


# -- Redis ------------------------------------------------------------------------------------


def hammer(url: str, key: str, stop: threading.Event, results: list[int | str]) -> None:
    """Requests in a loop until `stop`: the status codes, or the error of a failed request."""
    paths = ["/v1/students/1/risk", "/v1/schools/1/models", "/v1/schools/1/at-risk?limit=5"]
    with httpx.Client(base_url=url, headers=auth(key), timeout=10) as http:
        i = 0
        while not stop.is_set():
            try:
                results.append(http.get(paths[i % len(paths)]).status_code)
            except httpx.HTTPError as exc:
                results.append(repr(exc))
            i += 1


def test_redis_killed_and_restarted_under_load(district: District) -> None:
    port = free_port()
    proc = start_redis(port)
    settings = district.settings_with(
        redis_url=f"redis://127.0.0.1:{port}/0", cache_prefix="fault-redis"
    )
    results: list[int | str] = []
    stop = threading.Event()
    try:
        with served(settings) as url:
            workers = [
                threading.Thread(target=hammer, args=(url, district.keys["school1"], stop, results))
                for _ in range(3)
            ]
            for w in workers:
                w.start()
            time.sleep(1.0)
            proc.kill()  # SIGKILL under load
            proc.wait(10)
            time.sleep(1.5)
            proc = start_redis(port)  # back on the same port
            time.sleep(1.5)
            stop.set()
            for w in workers:
                w.join(30)
    finally:
        proc.kill()
        proc.wait(10)
    assert len(results) > 30
    assert set(results) == {200}, sorted({str(r) for r in results})


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[pgserver.PostgresServer]:
    server = start_pgserver()
    yield server
    server.cleanup()


def test_postgres_killed_is_a_503_at_once_and_recovery_is_quick(
    own_postgres: pgserver.PostgresServer, tmp_path: Path
) -> None:
    settings = Settings(
        environment="test",
        database_url=str(own_postgres.get_uri()),
        model_store_url=str(tmp_path / "models"),
        api_key_pepper=PEPPER,
        db_pool_timeout=1.0,
        model_refresh_seconds=0,
        # One connection: its reconnect attempts alone decide when the API serves again
        # (more slots only add attempts at other moments of the same doubling backoff).
        db_pool_min=1,
        db_pool_max=1,
    )
    db.migrate(settings)
    with db.connect_owner(settings) as conn:
        generate(conn, schools=1, students_per_school=40, days=5, progress=False)
        _, key = create_key(conn, PEPPER, "school 1", school_id=1)
    floors = iter(range(1, 1_000_000))

    def at_risk(api: TestClient) -> tuple[int, float]:
        # A distinct min_risk each time: a cache miss, so every call reaches the database.
        started = time.monotonic()
        resp = api.get(
            "/v1/schools/1/at-risk",
            params={"min_risk": next(floors) / 1_000_000},
            headers=auth(key),
        )
        return resp.status_code, time.monotonic() - started

    with TestClient(create_app(settings)) as api:
        assert at_risk(api)[0] == 200
        pg_ctl(
            ["-w", "stop", "-m", "immediate"],  # as a crash: no shutdown checkpoint
            pgdata=own_postgres.pgdata,
            user=own_postgres.system_user,
        )
        # Attempts of an unbounded backoff come about 1, 3, 7 and 15 s after the first
        # failure: back after 8 s, the database would wait about 7 s for the next one.
        outage_ends = time.monotonic() + 7.5
        while time.monotonic() < outage_ends:
            status, took = at_risk(api)
            assert status == 503
            assert took < settings.db_pool_timeout + 1.0  # never queued for long
            time.sleep(0.2)
        own_postgres.ensure_postgres_running()
        back = time.monotonic()
        while (status := at_risk(api)[0]) != 200 and time.monotonic() - back < 30:
            assert status == 503
            time.sleep(0.1)
        recovered = time.monotonic() - back
    assert status == 200
    assert recovered < RECOVERY_BOUND_SECONDS, f"recovered {recovered:.1f}s after the database"


# -- the trainer ------------------------------------------------------------------------------


def store_files(store_url: str) -> list[str]:
    root = Path(store_url)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def assert_consistent(d: District, api: TestClient) -> Pointer:
    """The served pointer's models load, the API answers with them, every version in the
    store is complete, no temp file is left, and the record of promotions says the same."""
    store = ModelStore(d.settings.model_store_url)
    pointer = store.pointer()
    for scope, version in pointer.scopes.items():
        store.load_model(version, scope)
    resp = api.get("/v1/students/1/risk", headers=auth(d.keys["school1"]))
    assert resp.status_code == 200
    assert resp.json()["model_version"] == pointer.scopes["school-1"]
    assert resp.json()["generation"] == pointer.generation
    assert all(store.manifest(v) is not None for v in store.backend.list_versions())
    assert not [f for f in store_files(d.settings.model_store_url) if "/." in f or f[0] == "."]
    return pointer


def promoted_pairs(d: District) -> set[tuple[str, str]]:
    """The (scope, version) pairs the database records as promoted: recorded for a pointer
    generation the store has reached (migration 0014)."""
    generation = ModelStore(d.settings.model_store_url).pointer().generation
    rows = scalar(
        d.url,
        "SELECT coalesce(array_agg(ARRAY[scope, version]), '{}') FROM model_versions"
        " WHERE promoted_generation <= %s",
        (generation,),
    )
    return {(scope, version) for scope, version in rows}


def kill_at(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """Makes the next training run die at `step`."""
    publishing = ("score_students", "record_promotions")
    owner = app.model.publication if step in publishing else ModelStore
    real_step = getattr(owner, step)
    calls = []

    def die(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        if step != "write_model" or len(calls) == 3:  # a model or two written already
            raise Killed(step)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(owner, step, die)


STEPS = [
    "write_model", "write_manifest", "score_students", "record_promotions", "write_pointer",
    "prune",
]  # fmt: skip


def test_trainer_killed_at_each_step_stays_consistent(
    fresh_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = fresh_district
    with TestClient(create_app(d.settings)) as api:
        for step in STEPS:
            before = assert_consistent(d, api)
            kill_at(monkeypatch, step)
            with pytest.raises(Killed):
                run_training(d.trainer)
            monkeypatch.undo()
            after = assert_consistent(d, api)
            flipped = step == "prune"
            assert after.generation == before.generation + flipped, step
            assert set(after.scopes.items()) <= promoted_pairs(d), step  # at once
            again = run_training(d.trainer)  # the lock was released; a re-run succeeds
            final = assert_consistent(d, api)
            assert final.generation == again.generation
            served = set(final.scopes.items())
            assert served <= promoted_pairs(d), step  # promoted as recorded, after any crash


# Run as `python -c KILL_AFTER_FLIP <command>`: the command, SIGKILLed the moment its pointer
# flip has been written (no handler, no `finally` runs).
KILL_AFTER_FLIP = """
import os, signal, sys
from app.cli import main as cli
from app.model.artifacts import ModelStore
flip = ModelStore.write_pointer
def flip_then_die(self, pointer):
    flip(self, pointer)
    os.kill(os.getpid(), signal.SIGKILL)
ModelStore.write_pointer = flip_then_die
sys.exit(cli.main(sys.argv[1:]))
"""


def killed_after_flip(d: District, command: list[str]) -> None:
    """Runs `command` (train, rollback) in a process killed right after its pointer flip.
    The killed run's training lock goes when PostgreSQL notices its session is gone: a
    command refused for it (exit 75) is run again."""
    env = cli_env(d, MIN_HOLDOUT_POSITIVES="3", MIN_HOLDOUT_NEGATIVES="3")
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MODEL_STORE_URL")}
    for _ in range(20):
        proc = subprocess.run(
            [sys.executable, "-c", KILL_AFTER_FLIP, *command],
            cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if proc.returncode != EXIT_LOCKED:
            break
        time.sleep(0.5)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def test_a_trainer_killed_right_after_the_flip_leaves_pointer_and_record_agreeing(
    fresh_district: District,
) -> None:
    """Every time: what the pointer serves is recorded as promoted, at once, and nothing
    else is, both in the database and in what GET /v1/schools/{id}/models answers."""
    d = fresh_district
    store = ModelStore(d.settings.model_store_url)
    served = set(store.pointer().scopes.items())  # every (scope, version) ever served
    with TestClient(create_app(d.settings)) as api:
        for command in (["train"], ["train"], ["rollback"], ["train"]):
            before = store.pointer()
            killed_after_flip(d, command)
            pointer = store.pointer()
            assert pointer.generation == before.generation + 1, command  # it did flip
            served |= set(pointer.scopes.items())
            models = api.get("/v1/schools/1/models", headers=auth(d.keys["school1"]))
            assert models.status_code == 200
            for v in models.json()["versions"]:
                assert v["promoted"] == ((v["scope"], v["version"]) in served), (command, v)
            current = [v for v in models.json()["versions"] if v["is_current"]]
            assert current and all(v["promoted"] for v in current), command
            assert promoted_pairs(d) == served, command


def test_two_trainers_exactly_one_runs(
    fresh_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_started, second_done = threading.Event(), threading.Event()
    real_refresh = app.model.training.refresh_features

    def held_refresh(conn: Any, *args: Any) -> None:  # the first run waits here, holding the lock
        first_started.set()
        assert second_done.wait(30)
        real_refresh(conn, *args)

    monkeypatch.setattr(app.model.training, "refresh_features", held_refresh)
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(run_training(fresh_district.trainer)))
    first.start()
    assert first_started.wait(30)
    try:
        with pytest.raises(TrainingLockedError):
            run_training(fresh_district.trainer)
    finally:
        second_done.set()
        first.join(120)
    assert len(results) == 1
    assert ModelStore(fresh_district.settings.model_store_url).pointer().generation == (
        results[0].generation
    )


def test_read_only_store_fails_the_trainer_cleanly(
    fresh_district: District, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store_url = fresh_district.settings.model_store_url
    files = store_files(store_url)
    pointer = ModelStore(store_url).pointer()
    versions = scalar(fresh_district.url, "SELECT count(*) FROM model_versions")

    def read_only(src: str, dst: str) -> None:  # what a read-only mount answers
        raise OSError(errno.EROFS, "Read-only file system", dst)

    monkeypatch.setattr(app.model.artifacts.os, "replace", read_only)
    monkeypatch.setattr(cli, "get_settings", lambda: fresh_district.trainer)
    assert cli.main(["train"]) == EXIT_FAILED
    assert "Read-only file system" in capsys.readouterr().err
    assert store_files(store_url) == files  # no partial version, no temp file
    assert ModelStore(store_url).pointer() == pointer
    assert scalar(fresh_district.url, "SELECT count(*) FROM model_versions") == versions
    monkeypatch.undo()
    assert run_training(fresh_district.trainer).generation == pointer.generation + 1


def test_leftovers_of_a_killed_trainer_are_cleaned_by_the_next_run(
    fresh_district: District,
) -> None:
    """A SIGKILL runs no handler: a half-written version and temp files stay until the next
    run (which holds the training lock, so nothing is being written meanwhile)."""
    root = Path(fresh_district.settings.model_store_url)
    partial = root / "versions" / "20260101T000000000000Z"
    partial.mkdir(parents=True)
    (partial / "district.joblib").write_bytes(b"half")
    (partial / ".school-1.joblib.tmp123").write_bytes(b"half")
    run_training(fresh_district.trainer)
    assert not partial.exists()


# -- the archive ------------------------------------------------------------------------------


def test_archive_killed_halfway_loses_nothing_and_the_rerun_completes(
    untrained_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = untrained_district
    seed_audit(d.master_url)
    total = scalar(d.url, "SELECT count(*) FROM audit_log")
    real_drop = app.jobs.archive.drop_partition

    def die_after_first(conn: Any, name: str, rows: int, *trail: Any) -> None:
        if name == "audit_log_p2026_07":  # June archived, July exported but not dropped
            raise Killed(name)
        real_drop(conn, name, rows, *trail)

    monkeypatch.setattr(app.jobs.archive, "drop_partition", die_after_first)
    with pytest.raises(Killed):
        run_archive(d.archiver, today=TODAY)
    monkeypatch.undo()
    assert "audit_log_p2026_07" in partitions(d.url)
    assert scalar(d.url, "SELECT count(*) FROM audit_log") == total - 7
    done = run_archive(d.archiver, today=TODAY)  # the advisory lock died with the session
    assert [(a.partition, a.rows) for a in done] == [("audit_log_p2026_07", 5)]
    archive = Path(d.archiver.archive_store_url)
    assert len(read_export((archive / done[0].key).read_bytes())) == 5
    assert scalar(d.url, "SELECT count(*) FROM audit_log") == total - 12


def test_audited_reads_never_wait_for_the_archive(
    fresh_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paused in the middle of its second export (the first partition already detached), the
    archive holds no lock an audited read waits for: the reads answer (within a generous
    bound; on a blocked lock they would wait until the archive ends) and PostgreSQL shows no
    lock waiting."""
    d = fresh_district
    seed_audit(d.master_url)
    paused, resume = threading.Event(), threading.Event()
    real_write = app.model.artifacts.LocalBackend.write
    writes: list[str] = []

    def pausing_write(self: app.model.artifacts.LocalBackend, key: str, data: bytes) -> None:
        writes.append(key)
        if len(writes) == 2:
            paused.set()
            assert resume.wait(60)
        real_write(self, key, data)

    monkeypatch.setattr(app.model.artifacts.LocalBackend, "write", pausing_write)
    outcome: list[Any] = []

    def archive() -> None:
        try:
            outcome.append(run_archive(d.archiver, today=TODAY))
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=archive)
    waiting = -1
    with served(d.settings) as url:
        runner.start()
        try:
            assert paused.wait(60)
            key = auth(d.keys["school1"])
            with httpx.Client(base_url=url, headers=key, timeout=5) as http:
                for path in ["/v1/students/1/risk", "/v1/schools/1/at-risk"] * 5:
                    assert http.get(path).status_code == 200
            waiting = scalar(d.url, "SELECT count(*) FROM pg_locks WHERE NOT granted")
        finally:
            resume.set()
            runner.join(60)
    assert waiting == 0
    assert [a.partition for a in outcome[0]] == ["audit_log_p2026_06", "audit_log_p2026_07"]


def test_archive_gives_way_to_a_long_reader_and_completes_later(
    untrained_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The detach waits at most lock_timeout behind a reader of audit_log (and so queues
    audit inserts only that long), retries, and leaves the partition intact if it never got
    the lock."""
    d = untrained_district
    seed_audit(d.master_url)
    monkeypatch.setattr(app.jobs.archive, "DETACH_ATTEMPTS", 2)
    monkeypatch.setattr(app.jobs.archive, "DETACH_RETRY_SECONDS", 0.1)
    with psycopg.connect(d.url) as reader:
        reader.execute("SELECT count(*) FROM audit_log")  # holds its lock until rollback
        with pytest.raises(psycopg.errors.LockNotAvailable):
            run_archive(d.archiver, today=TODAY)
        reader.rollback()
    assert scalar(d.url, "SELECT count(*) FROM audit_log_p2026_06") == 7
    done = run_archive(d.archiver, today=TODAY)
    assert [a.partition for a in done] == ["audit_log_p2026_06", "audit_log_p2026_07"]
