"""The training run in one process (`python -m app train`): a model per school, because one
model for every school ignores how differently their students' records relate to dropping out,
with the district model serving the schools too small to train alone (or whose own model does
not pass the gate). Every model is evaluated on the same held-out students, versioned in the
model store, decided by the promotion gate (`promotion.py`) and published (`publication.py`),
one run at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
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

from app.core.db import connect_as, refresh_features
from app.core.logins import TRAINER_LOGIN
from app.core.settings import Settings
from app.model.artifacts import HOLDOUT_FILE, ModelStore, Pointer
from app.model.features import FEATURES
from app.model.promotion import Decision, auc_on, decide
from app.model.publication import (
    insert_versions,
    publish_decisions,
    training_lock,
    write_manifest,
)
from app.model.served_models import DISTRICT, school_scope

log = logging.getLogger("app.train")

MIN_CLASS_COUNT = 10  # each class needs this many rows for a calibrated split


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
        refresh_features(conn)
        conn.autocommit = False
        # One BLAS thread: the fits are many small problems (9 features) on which OpenBLAS's
        # threads cost more than they save: twice the time on 2 cores (benchmarks/training.py).
        with threadpool_limits(limits=1, user_api="blas"):
            result = _train(conn, settings)
    return TrainResult(**{**result.__dict__, "seconds": round(time.perf_counter() - started, 2)})


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
    holdout[DISTRICT] = holdout_predictions(district, x[test], y[test])

    try:
        pointer, promoted, kept, decisions = _store_and_publish(
            conn, store, settings, version, models, metrics, holdout, fallback, snapshot,
            (x, y, schools, test),
        )  # fmt: skip
    except BaseException:
        discard_unpublished(store, version)
        raise
    store.prune(settings.keep_versions)
    write_report(store, version)
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
        holdout[scope] = holdout_predictions(models[scope], x[held], y[held])
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
    # 1. Decide per scope (the gate: promotion.py), reading the current models.
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


def discard_unpublished(store: ModelStore, version: str) -> None:
    """After a failed run: delete its version unless the pointer already serves it (the run
    failed after its flip). Best effort: the store may be what failed; `prune` retries."""
    try:
        if version not in store.pointer().versions_in_use():
            store.backend.delete_version(version)
    except Exception as exc:
        log.warning("could not delete the failed run's version", extra={"error": repr(exc)})


def write_report(store: ModelStore, version: str) -> None:
    """The run's model-quality report. A failure to draw it never fails the run (the models
    are promoted by now): it is logged, and `python -m app report` draws it again."""
    from app.model.report import write_reports  # matplotlib: imported only when drawing

    try:
        write_reports(store, version)
    except Exception:
        log.exception("model-quality report failed", extra={"version": version})


def holdout_predictions(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    proba = model.predict_proba(x)[:, 1]
    return {"y": [int(v) for v in y], "p": [round(float(p), 5) for p in proba]}
