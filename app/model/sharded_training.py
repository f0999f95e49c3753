"""Sharded training: `python -m app train --shard i/N` trains the schools whose id is i modulo
N, so N processes (a Kubernetes Indexed Job's pods) share a nightly run and each holds only
its schools in memory.

A run is one row of training_runs (0012), opened by shard 0: it refreshes the features, fits
the district model (on a bounded sample, so its memory does not grow with the district) and
names the run's version; the other shards wait for that row. Each shard then fits and stores
its schools' models, and records its decisions in one transaction with its training_shards
row: a retried shard that finds its row redoes nothing. The shard that completes the set
takes the training lock alone and publishes once: the district model's decision, one
manifest, one pointer update, the scores. The shards hold the lock shared, so a rollback
waits for the run (and a run waits for a rollback) as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row
from threadpoolctl import threadpool_limits

from app.core.db import connect_as, refresh_features
from app.core.indicators import CutPoints
from app.core.logins import TRAINER_LOGIN
from app.core.settings import Settings
from app.model.artifacts import HOLDOUT_FILE, ModelStore
from app.model.training_lock import training_lock

if TYPE_CHECKING:
    from app.model.training import TrainResult

# The model libraries (scikit-learn, LightGBM: seconds to import) are imported where a shard
# fits or publishes: a shard with no school records itself without them.

log = logging.getLogger("app.shards")

EMPTY_DIGEST = hashlib.sha256().hexdigest()  # the data digest of a shard with no school
# A shard's row: what it recorded of its training data, and the statement writing it.
SHARD_DATA = (
    "rows", "positives", "schools", "sha256",
    "attendance_missing", "marks_missing", "prior_year_missing",
)  # fmt: skip
RECORD_SHARD = (
    "INSERT INTO training_shards (run_id, shard, result) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
)
WAIT_POLL_SECONDS = 2.0  # how often a shard looks for its run's row
PUBLISH_WAIT_SECONDS = 600  # the last shard waits this long for the others to let go


class StaleRunError(RuntimeError):
    """The served models changed while the run trained: its decisions compared against
    models that no longer serve."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``i/N`` with 0 <= i < N; a ValueError that says what was wrong."""
        index, slash, count = text.partition("/")
        if not slash or not index.strip().isdigit() or not count.strip().isdigit():
            raise ValueError(f"--shard {text!r}: expected i/N, e.g. 0/4")
        shard = cls(int(index), int(count))
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise ValueError(f"--shard {text!r}: need N >= 1 and 0 <= i < N")
        return shard


@dataclass(frozen=True)
class Run:
    run_id: str
    shards: int
    version: str
    base_generation: int
    district: dict[str, Any]
    published: bool


@dataclass(frozen=True)
class ShardResult:
    run_id: str
    shard: str
    version: str
    schools: int  # schools this invocation trained (0 when the shard was already done)
    students: int
    seconds: float
    open_seconds: float  # of which opening the run (shard 0: features, district model)
    published: TrainResult | None  # set by the shard that completed the run


def run_shard(settings: Settings, shard: Shard, run_id: str) -> ShardResult:
    """Train one shard of run ``run_id``; publish the run if this shard completes it. Raises
    TrainingLockedError when a rollback or a publication holds the lock."""
    started = time.perf_counter()
    store = ModelStore(settings.model_store_url)
    busy = "a rollback or another run's publication holds the training lock; exiting"
    schools = students = 0
    with (
        training_lock(settings, busy, shared=True),
        connect_as(settings, TRAINER_LOGIN, autocommit=True) as conn,
        threadpool_limits(limits=1, user_api="blas"),  # see run_training
    ):
        run = open_run(conn, store, settings, shard, run_id)
        opened = time.perf_counter() - started
        if not run.published and not _shard_done(conn, run_id, shard.index):
            if _has_schools(conn, shard):
                schools, students = _train_shard(conn, store, settings, shard, run)
            else:
                _record_empty_shard(conn, store, shard, run)
        complete = _done_count(conn, run_id) == run.shards and not run.published
    published = publish_run(settings, run_id) if complete else None
    return ShardResult(
        run_id,
        f"{shard.index}/{shard.count}",
        run.version,
        schools,
        students,
        round(time.perf_counter() - started, 2),
        round(opened, 2),
        published,
    )


def open_run(
    conn: psycopg.Connection[Any], store: ModelStore, settings: Settings, shard: Shard, run_id: str
) -> Run:
    """The run's row: opened by shard 0 (features refreshed, district model fitted), waited
    for by the others."""
    run = _read_run(conn, run_id)
    if run is None and shard.index == 0:
        from app.model.sharded_district import open_district
        from app.model.training import new_version

        current = store.pointer()
        refresh_features(conn, settings.school_year_start_month)
        version = new_version()
        district = open_district(conn, store, settings, version)
        conn.execute(
            "INSERT INTO training_runs (run_id, shards, version, base_generation, district)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING",
            (run_id, shard.count, version, current.generation, json.dumps(district)),
        )
        run = _read_run(conn, run_id)
    deadline = time.monotonic() + settings.shard_wait_seconds
    while run is None:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"run {run_id!r} was not opened by shard 0 within SHARD_WAIT_SECONDS"
                f" ({settings.shard_wait_seconds:g} s); did shard 0 fail?"
            )
        time.sleep(WAIT_POLL_SECONDS)
        run = _read_run(conn, run_id)
    if run.shards != shard.count:
        raise ValueError(f"run {run_id!r} has {run.shards} shards, not {shard.count} (--shard)")
    return run


def _train_shard(
    conn: psycopg.Connection[Any], store: ModelStore, settings: Settings, shard: Shard, run: Run
) -> tuple[int, int]:
    """Fit, store and decide this shard's schools; record them with the shard's row."""
    from app.model.manifest import insert_versions
    from app.model.scopes import decide, fit_schools
    from app.model.served_models import DISTRICT
    from app.model.sharded_district import holdout_part, split_of
    from app.model.training_data import (
        holdout_mask,
        load_declarations,
        load_demographics,
        load_training_data,
    )

    current = _check_current(store, run)
    data = load_training_data(conn, (shard.index, shard.count), CutPoints.from_settings(settings))
    split = split_of(run.district)
    test = holdout_mask(data.schools, data.y, data.years, split, settings)
    district = store.load_model(run.version, DISTRICT)
    groups = load_demographics(conn, data.student_ids)
    fitted = fit_schools(data, test, district, load_declarations(conn), groups, settings)
    decisions = decide(store, current, fitted, data, test, settings)
    for scope, model in fitted.models.items():
        store.write_model(run.version, scope, model)
    store.write_file(run.version, holdout_part(shard.index), json.dumps(fitted.holdout).encode())
    snapshot = data.snapshot
    result = {
        "metrics": fitted.metrics,
        "fairness": fitted.fairness,
        "decisions": {scope: d.to_json() for scope, d in decisions.items()},
        "fallback": fitted.fallback,
        "data": {k: snapshot[k] for k in SHARD_DATA},
    }
    metrics = fitted.metrics
    with conn.transaction():
        insert_versions(conn, run.version, metrics, decisions, split.kind)
        conn.execute(RECORD_SHARD, (run.run_id, shard.index, json.dumps(result)))
    log.info(
        "training shard finished",
        extra={"run": run.run_id, "shard": shard.index, "schools": int(snapshot["schools"])},
    )
    return int(snapshot["schools"]), int(snapshot["rows"])


def _has_schools(conn: psycopg.Connection[Any], shard: Shard) -> bool:
    """Whether any school of the feature view falls to this shard (refreshed by shard 0
    before the run was opened). A district with fewer schools than the Job's shards leaves
    some empty."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM student_features WHERE school_id %% %s = %s)",
        (shard.count, shard.index),
    ).fetchone()
    return bool(row and row[0])


def _record_empty_shard(
    conn: psycopg.Connection[Any], store: ModelStore, shard: Shard, run: Run
) -> None:
    """The shard's row with nothing trained, as a shard fitting no school records it."""
    _check_current(store, run)
    data = dict.fromkeys(SHARD_DATA, 0) | {"sha256": EMPTY_DIGEST}
    result = {"metrics": {}, "fairness": {}, "decisions": {}, "fallback": [], "data": data}
    conn.execute(RECORD_SHARD, (run.run_id, shard.index, json.dumps(result)))
    log.info("training shard empty", extra={"run": run.run_id, "shard": shard.index})


def publish_run(settings: Settings, run_id: str) -> TrainResult | None:
    """Under the training lock alone: the run's one publication, from every shard's record
    (None when another shard published it first)."""
    from app.model.figures import flat_metrics
    from app.model.manifest import RunRecord, insert_versions, model_inputs, write_manifest
    from app.model.promotion import Decision, district_decision
    from app.model.publication import publish_decisions
    from app.model.served_models import DISTRICT
    from app.model.sharded_district import split_of
    from app.model.training import TrainResult, write_report
    from app.model.training_data import load_declarations

    started = time.perf_counter()
    store = ModelStore(settings.model_store_url)
    busy = f"run {run_id!r}: the training lock stayed busy; retry this shard to publish"
    with (
        training_lock(settings, busy, wait_seconds=PUBLISH_WAIT_SECONDS),
        connect_as(settings, TRAINER_LOGIN, autocommit=True) as conn,
    ):
        run = _read_run(conn, run_id)
        results = conn.execute(
            "SELECT result FROM training_shards WHERE run_id = %s ORDER BY shard", (run_id,)
        ).fetchall()
        if run is None or run.published or len(results) != run.shards:
            return None
        current = _check_current(store, run)
        cur_manifest = (
            store.manifest(current.scopes[DISTRICT]) if DISTRICT in current.scopes else None
        )
        district = run.district
        metrics: dict[str, dict[str, Any]] = {DISTRICT: district["metrics"]}
        fairness: dict[str, Any] = {DISTRICT: district["fairness"]}
        decisions = {
            DISTRICT: district_decision(
                district["metrics"],
                (cur_manifest or {}).get("metrics", {}).get(DISTRICT),
                settings,
                district["fairness"]["breaches"],
            )
        }
        fallback: list[int] = []
        for (result,) in results:
            metrics.update(result["metrics"])
            fairness.update(result["fairness"])
            decisions.update({s: Decision(**d) for s, d in result["decisions"].items()})
            fallback.extend(result["fallback"])
        fallback.sort()
        _merge_holdout(store, run)
        split = split_of(district)
        record = RunRecord(
            split, _snapshot(run, results), load_declarations(conn), fairness,
            district["random_split"],
            inputs=model_inputs(store.load_model(run.version, DISTRICT)),
        )  # fmt: skip
        write_manifest(store, settings, run.version, metrics, decisions, fallback, record)
        insert_versions(conn, run.version, {DISTRICT: metrics[DISTRICT]}, decisions, split.kind)
        pointer, promoted, kept = publish_decisions(
            conn, store, settings, current, run.version, decisions, fallback
        )
        with conn.transaction():
            conn.execute(
                "UPDATE training_runs SET published_at = now(), generation = %s WHERE run_id = %s",
                (pointer.generation, run_id),
            )
    store.prune(settings.keep_versions)
    write_report(store, run.version)
    log.info(
        "training run published",
        extra={"run": run_id, "version": run.version, "generation": pointer.generation},
    )
    return TrainResult(
        run.version,
        pointer.generation,
        promoted,
        kept,
        fallback,
        {scope: flat_metrics(m) for scope, m in metrics.items()},
        round(time.perf_counter() - started, 2),
        {scope: d.to_json() for scope, d in decisions.items()},
    )


def _check_current(store: ModelStore, run: Run) -> Any:
    current = store.pointer()
    if current.generation != run.base_generation:
        raise StaleRunError(
            f"run {run.run_id!r}: the served models changed during the run (generation"
            f" {run.base_generation} -> {current.generation}, a rollback or another run);"
            " start a new run"
        )
    return current


def _snapshot(run: Run, results: list[Any]) -> dict[str, Any]:
    data = [r[0]["data"] for r in results]
    summed = {k: sum(int(d[k]) for d in data) for k in data[0] if k != "sha256"}
    digest = hashlib.sha256("".join(d["sha256"] for d in data).encode()).hexdigest()
    return {**summed, "sha256": digest, "shards": run.shards}


def _merge_holdout(store: ModelStore, run: Run) -> None:
    """The report's held-out predictions of every scope, in the one file it reads."""
    from app.model.served_models import DISTRICT
    from app.model.sharded_district import holdout_part

    merged: dict[str, Any] = {}
    for part in (DISTRICT, *range(run.shards)):
        raw = store.read_file(run.version, holdout_part(part))
        merged.update(json.loads(raw) if raw else {})
    store.write_file(run.version, HOLDOUT_FILE, json.dumps(merged).encode())


def _read_run(conn: psycopg.Connection[Any], run_id: str) -> Run | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT run_id, shards, version, base_generation, district,"
            " published_at IS NOT NULL AS published FROM training_runs WHERE run_id = %s",
            (run_id,),
        ).fetchone()
    return Run(**row) if row else None


def _shard_done(conn: psycopg.Connection[Any], run_id: str, shard: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM training_shards WHERE run_id = %s AND shard = %s", (run_id, shard)
    ).fetchone()
    return row is not None


def _done_count(conn: psycopg.Connection[Any], run_id: str) -> int:
    row = conn.execute("SELECT count(*) FROM training_shards WHERE run_id = %s", (run_id,))
    return int((row.fetchone() or (0,))[0])
