"""The training run in one process (`python -m app train`): a model per school, because one
model for every school ignores how differently their students' records relate to dropping out,
with the district model serving the schools too small to train alone (or whose own model does
not pass the gate). Every model is evaluated on the same held-out students (the latest school
year's when the outcomes span several: `training_data.py`), versioned in the model store,
decided by the promotion gate (`promotion.py`) and published (`publication.py`), one run at a
time.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from threadpoolctl import threadpool_limits

from app.core.db import connect_as, refresh_features
from app.core.indicators import CutPoints
from app.core.logins import TRAINER_LOGIN
from app.core.settings import Settings
from app.model.artifacts import HOLDOUT_FILE, MEDIANS_FILE, ModelStore, Pointer
from app.model.figures import flat_metrics
from app.model.manifest import RunRecord, insert_versions, model_inputs, write_manifest
from app.model.outcomes import intervention_outcomes
from app.model.promotion import Decision
from app.model.publication import publish_decisions
from app.model.scopes import (
    Fitted,
    decide,
    decide_district,
    fit_district,
    fit_schools,
    fit_scope,
)
from app.model.served_models import DISTRICT
from app.model.training_data import (
    TEMPORAL,
    BadTrainingDataError,
    Dataset,
    choose_split,
    holdout_mask,
    load_declarations,
    load_demographics,
    load_training_data,
    random_mask,
    school_medians,
)
from app.model.training_lock import training_lock

log = logging.getLogger("app.train")

__all__ = ["BadTrainingDataError", "TrainResult", "run_training"]


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
        refresh_features(conn, settings.school_year_start_month)
        conn.autocommit = False
        # One BLAS thread: the fits are many small problems (a few dozen inputs) on which
        # OpenBLAS's threads cost more than they save: twice the time on 2 cores
        # (benchmarks/training.py).
        with threadpool_limits(limits=1, user_api="blas"):
            result = _train(conn, settings)
    return TrainResult(**{**result.__dict__, "seconds": round(time.perf_counter() - started, 2)})


def random_split_figures(
    data: Dataset, declarations: list[Any], settings: Settings
) -> dict[str, Any]:
    """The district model's figures on a random stratified split of the same students,
    whatever their school year: beside a temporal split's, how much a random split flatters."""
    test = random_mask(data.schools, data.y, settings.test_fraction, settings.random_seed)
    everyone = np.ones(len(data.y), dtype=bool)
    _, metrics, _ = fit_scope(data, everyone, test, declarations, settings)
    return metrics


def _train(conn: psycopg.Connection[Any], settings: Settings) -> TrainResult:
    started = datetime.now(UTC)  # students purged before this were not in the run's data
    store = ModelStore(settings.model_store_url)
    version = new_version()
    data = load_training_data(conn, cuts=CutPoints.from_settings(settings))
    if len(data.y) == 0:
        raise RuntimeError("no labelled students to train on; run `import` (or `generate`)")
    declarations = load_declarations(conn)
    split = choose_split(conn)
    test = holdout_mask(data.schools, data.y, data.years, split, settings)
    # Protected attributes: read apart, for the audit of the held-out students' flags only.
    groups = load_demographics(conn, data.student_ids)
    fitted = fit_district(data, test, declarations, groups, settings)
    schools = fit_schools(data, test, fitted.models[DISTRICT], declarations, groups, settings)
    for part in ("models", "metrics", "holdout", "fairness"):
        getattr(fitted, part).update(getattr(schools, part))
    fitted.fallback = schools.fallback
    record = RunRecord(
        split=split,
        snapshot=data.snapshot,
        declarations=declarations,
        fairness=fitted.fairness,
        random_split={DISTRICT: random_split_figures(data, declarations, settings)}
        if split.kind == TEMPORAL
        else {},
        interventions=intervention_outcomes(conn),
        inputs=model_inputs(fitted.models[DISTRICT]),
    )
    try:
        pointer, promoted, kept, decisions = _store_and_publish(
            conn, store, settings, version, fitted, record, (data, test)
        )
    except BaseException:
        discard_unpublished(store, version)
        raise
    store.prune(settings.keep_versions)
    retrained_without_purged(conn, version, kept, started)
    write_report(store, version)
    log.info(
        "training finished",
        extra={
            "version": version,
            "promoted": len(promoted),
            "kept": len(kept),
            "fallback_schools": len(fitted.fallback),
            "generation": pointer.generation,
            "split": split.kind,
        },
    )
    return TrainResult(
        version,
        pointer.generation,
        promoted,
        kept,
        fitted.fallback,
        {scope: flat_metrics(m) for scope, m in fitted.metrics.items()},
        0.0,
        {scope: d.to_json() for scope, d in decisions.items()},
    )


def _store_and_publish(
    conn: psycopg.Connection[Any],
    store: ModelStore,
    settings: Settings,
    version: str,
    fitted: Fitted,
    record: RunRecord,
    held: tuple[Dataset, np.ndarray],
) -> tuple[Pointer, list[str], list[str], dict[str, Decision]]:
    """Decide, write the version, record it and publish the scopes the gate lets through:
    (pointer, promoted scopes, kept scopes, decisions)."""
    data, test = held
    # 1. Decide per scope (the gate: promotion.py), reading the current models.
    current = store.pointer()
    decisions = {DISTRICT: decide_district(store, current, fitted, settings)}
    decisions.update(decide(store, current, fitted, data, test, settings))

    # 2. Artifacts, held-out predictions (the report's curves), medians and manifest: nothing
    # served changes yet.
    for scope, model in fitted.models.items():
        store.write_model(version, scope, model)
    store.write_file(version, HOLDOUT_FILE, json.dumps(fitted.holdout).encode())
    medians = school_medians(conn, record.declarations, CutPoints.from_settings(settings))
    store.write_file(version, MEDIANS_FILE, json.dumps(medians).encode())
    write_manifest(store, settings, version, fitted.metrics, decisions, fitted.fallback, record)
    insert_versions(conn, version, fitted.metrics, decisions, record.split.kind)
    pointer, promoted, kept = publish_decisions(
        conn, store, settings, current, version, decisions, fitted.fallback
    )
    return pointer, promoted, kept, decisions


def retrained_without_purged(
    conn: psycopg.Connection[Any], version: str, kept: list[str], started: datetime
) -> None:
    """Students purged before this run (tombstones, migration 0020) were not in its data. When
    every scope now serves this run's model, no served model learnt from them: their
    tombstones say so. A scope the gate kept still serves a model that may have: they stay
    pending, and the next run tries again."""
    with conn.transaction():
        pending = conn.execute(
            "SELECT count(*) FROM student_tombstones WHERE models_retrained_in IS NULL"
            " AND purged_at < %s",
            (started,),
        ).fetchone()
        if not pending or not pending[0]:
            return
        if kept:
            log.warning(
                "models trained on purged students still serve (kept by the gate)",
                extra={"purged_students": int(pending[0]), "kept_scopes": len(kept)},
            )
            return
        conn.execute(
            "UPDATE student_tombstones SET models_retrained_in = %s"
            " WHERE models_retrained_in IS NULL AND purged_at < %s",
            (version, started),
        )
    log.info("models retrained without purged students", extra={"purged": int(pending[0])})


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
