"""Training job: per-school models with a district fallback (seed 001), evaluated on a
held-out split, versioned in the model store, promoted only past the gate (app/promotion.py),
one run at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, brier_score_loss, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from app import __version__
from app.config import Settings
from app.db import TRAIN_LOCK_KEY, TRAINER_LOGIN, connect_as, refresh_features
from app.features import FEATURES
from app.model_registry import DISTRICT, school_scope, scope_school_id
from app.promotion import DISTRICT_MODEL, NEW, Decision, auc_on, decide
from app.scoring import score_students
from app.store import HOLDOUT_FILE, ModelStore, Pointer

log = logging.getLogger(__name__)

EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock; try again later
MIN_CLASS_COUNT = 10  # each class needs this many rows for a calibrated split


class TrainingLockedError(RuntimeError):
    pass


@dataclass(frozen=True)
class TrainResult:
    version: str
    generation: int
    promoted: list[str]
    kept: list[str]
    fallback_schools: list[int]
    metrics: dict[str, dict[str, float]]
    seconds: float
    decisions: dict[str, dict[str, Any]]


def build_model(seed: int) -> CalibratedClassifierCV:
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000, C=1.0))]
    )
    return CalibratedClassifierCV(pipeline, method="sigmoid", cv=3)


def evaluate(model: Any, x: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    proba = model.predict_proba(x)[:, 1]
    pred = proba >= threshold
    return {
        "auc": round(float(roc_auc_score(y, proba)), 4),
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "brier": round(float(brier_score_loss(y, proba)), 4),
        "recall_at_threshold": round(float(recall_score(y, pred, zero_division=0)), 4),
        "threshold": threshold,
        "n_test": len(y),
        "positives_test": int(y.sum()),
        "negatives_test": int(len(y) - y.sum()),
    }


class BadTrainingDataError(ValueError):
    """Features that no model can learn from (NaN, infinite): names the students."""


def load_training_data(
    conn: psycopg.Connection[Any], shard: tuple[int, int] = (0, 1)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Schools, features and labels of every labelled student (of the schools whose id is
    ``index`` modulo ``count`` when ``shard`` is (index, count)). Raises BadTrainingDataError
    naming the students whose features are not finite: the schema and the import refuse NaN
    and infinities, so one that got through is a bug to fix, not a row to guess at."""
    cols = ", ".join(FEATURES)
    rows = conn.execute(
        f"SELECT student_id, school_id, {cols}, dropped_out,"
        " attendance_missing, marks_missing FROM student_features"
        " WHERE dropped_out IS NOT NULL AND school_id %% %s = %s ORDER BY student_id",
        (shard[1], shard[0]),
    ).fetchall()
    data = np.array([r[1:-2] for r in rows], dtype=np.float64).reshape(-1, len(FEATURES) + 2)
    bad = ~np.isfinite(data).all(axis=1)
    if bad.any():
        ids = [int(rows[i][0]) for i in np.flatnonzero(bad)]
        shown = ", ".join(map(str, ids[:20])) + (
            f" and {len(ids) - 20} more" if len(ids) > 20 else ""
        )
        raise BadTrainingDataError(
            f"student_features is not finite (NaN or infinite) for {len(ids)} students:"
            f" {shown}; fix their records (import refuses such values)"
        )
    schools = data[:, 0].astype(np.int64)
    x = data[:, 1:-1]
    y = data[:, -1].astype(np.int64)
    snapshot = {
        "rows": len(y),
        "positives": int(y.sum()),
        "schools": len(np.unique(schools)),
        "attendance_missing": sum(1 for r in rows if r[-2]),
        "marks_missing": sum(1 for r in rows if r[-1]),
        "sha256": hashlib.sha256(data.tobytes()).hexdigest(),
        "taken_at": datetime.now(UTC).isoformat(),
    }
    return schools, x, y, snapshot


def holdout_mask(schools: np.ndarray, y: np.ndarray, settings: Settings) -> np.ndarray:
    """Which students are held out: TEST_FRACTION of each school, stratified by outcome.
    Every model of the run trains only on the rest, so the district model and a school's own
    model are compared on students neither has seen."""
    test = np.zeros(len(y), dtype=bool)
    for sid in np.unique(schools).tolist():
        idx = np.flatnonzero(schools == sid)
        if len(idx) < 4:
            continue  # too few to split: all train
        counts = np.bincount(y[idx], minlength=2)
        stratify = y[idx] if counts.min() >= 2 else None
        _, held = train_test_split(
            idx,
            test_size=settings.test_fraction,
            stratify=stratify,
            random_state=settings.random_seed,
        )
        test[held] = True
    return test


def fit_scope(
    x: np.ndarray, y: np.ndarray, test: np.ndarray, settings: Settings
) -> tuple[Any, dict[str, float]]:
    model = build_model(settings.random_seed).fit(x[~test], y[~test])
    metrics = evaluate(model, x[test], y[test], settings.alert_threshold)
    metrics["n_train"] = int((~test).sum())
    return model, metrics


def trainable(y: np.ndarray, settings: Settings) -> bool:
    positives = int(y.sum())
    return len(y) >= settings.min_school_students and min(positives, len(y) - positives) >= (
        MIN_CLASS_COUNT
    )


def new_version() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def run_training(settings: Settings) -> TrainResult:
    """Train, store, promote. Raises TrainingLockedError when another run holds the lock."""
    started = time.perf_counter()
    with (
        training_lock(settings, "another training run holds the lock; exiting"),
        connect_as(settings, TRAINER_LOGIN) as conn,
    ):
        conn.autocommit = True
        # A run killed between its pointer flip and recording it left the record behind.
        record_promotions(conn, ModelStore(settings.model_store_url).pointer())
        refresh_features(conn)
        conn.autocommit = False
        # One BLAS thread: the fits are many small problems (9 features) on which OpenBLAS's
        # threads cost more than they save: twice the time on 2 cores (benchmarks/training.py).
        with threadpool_limits(limits=1, user_api="blas"):
            result = _train(conn, settings)
    return TrainResult(**{**result.__dict__, "seconds": round(time.perf_counter() - started, 2)})


@contextmanager
def training_lock(
    settings: Settings, busy_message: str, *, shared: bool = False, wait_seconds: float = 0
) -> Iterator[None]:
    """One training or rollback at a time across replicas: a session-level advisory lock,
    which PostgreSQL also drops if the process dies. Released explicitly on the way out, so
    the next run never races the server noticing a closed connection. The shards of a run
    hold it shared (app/shards.py); publishing and rolling back hold it alone. With
    ``wait_seconds``, waits that long for it (lock_timeout) instead of giving up at once."""
    mode = "_shared" if shared else ""
    with connect_as(settings, TRAINER_LOGIN, autocommit=True) as lock_conn:
        if wait_seconds:
            lock_conn.execute("SELECT set_config('lock_timeout', %s, false)",
                              (f"{int(wait_seconds * 1000)}ms",))  # fmt: skip
            try:
                lock_conn.execute(f"SELECT pg_advisory_lock{mode}(%s)", (TRAIN_LOCK_KEY,))
            except psycopg.errors.LockNotAvailable as exc:
                raise TrainingLockedError(busy_message) from exc
        else:
            row = lock_conn.execute(
                f"SELECT pg_try_advisory_lock{mode}(%s)", (TRAIN_LOCK_KEY,)
            ).fetchone()
            if not row or not row[0]:
                raise TrainingLockedError(busy_message)
        try:
            yield
        finally:
            lock_conn.execute(f"SELECT pg_advisory_unlock{mode}(%s)", (TRAIN_LOCK_KEY,))


def _train(conn: psycopg.Connection[Any], settings: Settings) -> TrainResult:
    store = ModelStore(settings.model_store_url)
    version = new_version()
    schools, x, y, snapshot = load_training_data(conn)
    if len(y) == 0:
        raise RuntimeError("no labelled students to train on; run `import` (or `generate`)")

    test = holdout_mask(schools, y, settings)
    district, district_metrics = fit_scope(x, y, test, settings)
    models, metrics, holdout, fallback = fit_schools(schools, x, y, test, district, settings)
    models[DISTRICT], metrics[DISTRICT] = district, district_metrics
    holdout[DISTRICT] = _holdout(district, x[test], y[test])

    try:
        pointer, promoted, kept, decisions = _store_and_publish(
            conn, store, settings, version, models, metrics, holdout, fallback, snapshot,
            (x, y, schools, test),
        )  # fmt: skip
    except BaseException:
        discard_unpublished(store, version)
        raise
    store.prune(settings.keep_versions)
    _report(store, version)
    log.info(
        "training finished",
        extra={
            "version": version,
            "promoted": len(promoted),
            "kept": len(kept),
            "fallback_schools": len(fallback),
            "generation": pointer.generation,
        },
    )
    return TrainResult(
        version,
        pointer.generation,
        promoted,
        kept,
        fallback,
        metrics,
        0.0,
        {scope: d.to_json() for scope, d in decisions.items()},
    )


def fit_schools(
    schools: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    test: np.ndarray,
    district: Any,
    settings: Settings,
) -> tuple[dict[str, Any], dict[str, dict[str, float]], dict[str, Any], list[int]]:
    """Each trainable school's model, its held-out metrics (with the district model's AUC on
    the same students) and predictions; and the schools too small for a model of their own."""
    models: dict[str, Any] = {}
    metrics: dict[str, dict[str, float]] = {}
    holdout: dict[str, dict[str, list[float]]] = {}
    fallback: list[int] = []
    for sid in np.unique(schools).tolist():
        mask = schools == sid
        if not trainable(y[mask], settings):
            fallback.append(int(sid))
            continue
        scope = school_scope(sid)
        models[scope], metrics[scope] = fit_scope(x[mask], y[mask], test[mask], settings)
        held = mask & test
        metrics[scope]["district_auc"] = auc_on(district, x[held], y[held])
        holdout[scope] = _holdout(models[scope], x[held], y[held])
    return models, metrics, holdout, fallback


def _store_and_publish(
    conn: psycopg.Connection[Any],
    store: ModelStore,
    settings: Settings,
    version: str,
    models: dict[str, Any],
    metrics: dict[str, dict[str, float]],
    holdout: dict[str, dict[str, list[float]]],
    fallback: list[int],
    snapshot: dict[str, Any],
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[Pointer, list[str], list[str], dict[str, Decision]]:
    """Decide, write the version, record it and publish the scopes the gate lets through:
    (pointer, promoted scopes, kept scopes, decisions). ``data`` is (x, y, schools, test)."""
    x, y, schools, test = data
    # 1. Decide per scope (the gate: app/promotion.py), reading the current models.
    current = store.pointer()
    decisions = decide(store, current, metrics, x, y, schools, test, settings)

    # 2. Artifacts, held-out predictions (the report's curves) and manifest: nothing served
    # changes yet.
    for scope, model in models.items():
        store.write_model(version, scope, model)
    store.write_file(version, HOLDOUT_FILE, json.dumps(holdout).encode())
    write_manifest(store, settings, version, metrics, decisions, fallback, snapshot)
    insert_versions(conn, version, metrics, decisions)
    pointer, promoted, kept = publish_decisions(
        conn, store, settings, current, version, decisions, fallback
    )
    return pointer, promoted, kept, decisions


def write_manifest(
    store: ModelStore,
    settings: Settings,
    version: str,
    metrics: dict[str, dict[str, float]],
    decisions: dict[str, Decision],
    fallback: list[int],
    snapshot: dict[str, Any],
) -> None:
    manifest = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "features": list(FEATURES),
        "model": "StandardScaler+LogisticRegression, sigmoid-calibrated (3-fold)",
        "metrics": metrics,
        "promotion": {scope: d.to_json() for scope, d in decisions.items()},
        "fallback_schools": fallback,
        "data": snapshot,
        "code_version": f"{__version__}+{os.environ.get('APP_GIT_SHA', 'unknown')}",
        "settings": {
            "min_school_students": settings.min_school_students,
            "alert_threshold": settings.alert_threshold,
            "test_fraction": settings.test_fraction,
            "promotion_tolerance": settings.promotion_tolerance,
            "min_promotion_auc": settings.min_promotion_auc,
            "min_holdout_positives": settings.min_holdout_positives,
            "min_holdout_negatives": settings.min_holdout_negatives,
        },
    }
    store.write_manifest(version, manifest)


def insert_versions(
    conn: psycopg.Connection[Any],
    version: str,
    metrics: dict[str, dict[str, float]],
    decisions: dict[str, Decision],
) -> None:
    """One model_versions row per trained scope, not yet promoted (record_promotions marks
    them after the flip). The caller's transaction, if it has one, holds them."""
    with conn.transaction():
        for scope, m in metrics.items():
            conn.execute(
                "INSERT INTO model_versions (version, scope, school_id, metrics, promoted,"
                " reason) VALUES (%s, %s, %s, %s, false, %s) ON CONFLICT DO NOTHING",
                (version, scope, scope_school_id(scope), json.dumps(m), decisions[scope].reason),
            )


def publish_decisions(
    conn: psycopg.Connection[Any],
    store: ModelStore,
    settings: Settings,
    current: Pointer,
    version: str,
    decisions: dict[str, Decision],
    fallback: list[int],
) -> tuple[Pointer, list[str], list[str]]:
    """Apply the gate's decisions to the served scopes and publish them, when they change:
    (pointer, promoted scopes, kept scopes)."""
    scopes = dict(current.scopes)
    for scope, d in decisions.items():
        if d.serves == NEW:
            scopes[scope] = version
        elif d.serves == DISTRICT_MODEL:
            scopes.pop(scope, None)
    # A school that fell back to the district model now uses the district model.
    for sid in fallback:
        scopes.pop(school_scope(sid), None)
    promoted = [scope for scope, d in decisions.items() if d.promoted]
    kept = [scope for scope, d in decisions.items() if not d.promoted]
    if scopes == current.scopes:
        return current, promoted, kept  # nothing better: keep serving (and caching) it
    pointer = store.next_pointer(
        current, scopes, datetime.now(UTC).isoformat(), settings.keep_versions
    )
    publish(conn, store, settings, pointer)
    return pointer, promoted, kept


def discard_unpublished(store: ModelStore, version: str) -> None:
    """After a failed run: delete its version unless the pointer already serves it (the run
    failed after its flip). Best effort: the store may be what failed; `prune` retries."""
    try:
        if version not in store.pointer().versions_in_use():
            store.backend.delete_version(version)
    except Exception as exc:
        log.warning("could not delete the failed run's version", extra={"error": repr(exc)})


def _report(store: ModelStore, version: str) -> None:
    """The run's model-quality report. A failure to draw it never fails the run (the models
    are promoted by now): it is logged, and `python -m app report` draws it again."""
    from app.report import write_reports  # matplotlib: imported only when drawing

    try:
        write_reports(store, version)
    except Exception:
        log.exception("model-quality report failed", extra={"version": version})


def _holdout(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    proba = model.predict_proba(x)[:, 1]
    return {"y": [int(v) for v in y], "p": [round(float(p), 5) for p in proba]}


def publish(
    conn: psycopg.Connection[Any], store: ModelStore, settings: Settings, pointer: Pointer
) -> None:
    """Score every active student under the new pointer, then flip it (the last step)."""
    # Checked before scoring too: scoring replaces risk_scores of generations >= this one.
    store.check_newer(pointer)
    score_students(conn, store, settings, pointer)
    store.write_pointer(pointer)
    record_promotions(conn, pointer)


def record_promotions(conn: psycopg.Connection[Any], pointer: Pointer) -> None:
    """Mark every (scope, version) the pointer serves as promoted in model_versions. The store
    and the database cannot change in one transaction: this runs after each flip and, in case
    a run died between the two, at the start of the next run (the pointer is the truth)."""
    if not pointer.scopes:
        return
    with conn.transaction():
        conn.execute(
            "UPDATE model_versions m SET promoted = true FROM unnest(%s::text[], %s::text[])"
            " AS p(scope, version) WHERE m.scope = p.scope AND m.version = p.version"
            " AND NOT m.promoted",
            (list(pointer.scopes), list(pointer.scopes.values())),
        )


def rollback(settings: Settings, to_version: str | None = None) -> Pointer:
    """Serve the previous pointer state again (or every scope of `to_version`)."""
    store = ModelStore(settings.model_store_url)
    with training_lock(settings, "a training run is in progress; roll back after it ends"):
        # Read under the lock: a pointer read before it could predate a promotion that
        # finished meanwhile, and rolling back from it would erase that promotion.
        current = store.pointer()
        if to_version is not None:
            manifest = store.manifest(to_version)
            if manifest is None:
                raise ValueError(f"version {to_version} is not in the store")
            scopes = dict(current.scopes)
            scopes.update({scope: to_version for scope in manifest["metrics"]})
        elif current.history:
            scopes = dict(current.history[0]["scopes"])
        else:
            raise ValueError("nothing to roll back to: the pointer has no history")
        pointer = store.next_pointer(
            current, scopes, datetime.now(UTC).isoformat(), settings.keep_versions
        )
        if to_version is None:
            # Rolling back consumes the history entry instead of stacking on it.
            pointer.history = current.history[1:]
        with connect_as(settings, TRAINER_LOGIN) as conn:
            record_promotions(conn, current)  # a run died between its flip and its record
            publish(conn, store, settings, pointer)
    log.info("rolled back", extra={"generation": pointer.generation, "scopes": len(scopes)})
    return pointer
