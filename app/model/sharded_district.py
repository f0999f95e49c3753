"""What shard 0 does to open a sharded run: the run's split, the district model fitted on a
bounded sample of every school's training students and judged on the held-out ones, its
fairness audit, and the schools' medians. The result is the run's `training_runs.district`
row, which the other shards and the publication read."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import psycopg

from app.core.indicators import CutPoints
from app.core.settings import Settings
from app.model.artifacts import MEDIANS_FILE, ModelStore
from app.model.scopes import fit_district
from app.model.served_models import DISTRICT
from app.model.training_data import (
    LABEL_COLUMN,
    SELECT_LABELLED,
    TEMPORAL,
    Dataset,
    Split,
    choose_split,
    dataset_from_rows,
    holdout_mask,
    load_declarations,
    load_demographics,
    school_medians,
)


def holdout_part(part: int | str) -> str:
    return f"holdout-{part}.json"


def split_json(split: Split) -> dict[str, Any]:
    return {"kind": split.kind, "test_year": split.test_year, "train_years": split.train_years}


def split_of(district: dict[str, Any]) -> Split:
    s = district["split"]
    return Split(s["kind"], s["test_year"], tuple(s["train_years"]))


def sample_district(
    conn: psycopg.Connection[Any], split: Split, settings: Settings
) -> tuple[Dataset, np.ndarray]:
    """The labelled students, each school's split as its own model's (holdout_mask of its
    students), up to DISTRICT_SAMPLE_ROWS of them: past that, a seeded uniform sample (memory
    stays bounded). Streams school by school."""
    row = conn.execute("SELECT count(*) FROM student_features WHERE dropped_out IS NOT NULL")
    total = int((row.fetchone() or (0,))[0])
    if total == 0:
        raise RuntimeError("no labelled students to train on; run `import` (or `generate`)")
    rate = min(1.0, settings.district_sample_rows / total)
    rng = np.random.default_rng(settings.random_seed)
    kept: list[Any] = []
    tests: list[np.ndarray] = []
    with conn.transaction(), conn.cursor(name="district-sample") as cur:
        cur.itersize = 20_000
        cur.execute(SELECT_LABELLED + " ORDER BY f.school_id, f.student_id")
        for _, group in itertools.groupby(cur, key=lambda r: r[1]):
            rows = list(group)
            years = np.array([r[2] for r in rows], dtype=np.int64)
            y = np.array([bool(r[LABEL_COLUMN]) for r in rows], dtype=np.int64)
            schools = np.array([r[1] for r in rows], dtype=np.int64)
            test = holdout_mask(schools, y, years, split, settings)
            keep = rng.random(len(rows)) < rate if rate < 1 else np.ones(len(rows), dtype=bool)
            kept += [r for r, k in zip(rows, keep.tolist(), strict=True) if k]
            tests.append(test[keep])
    return dataset_from_rows(kept, CutPoints.from_settings(settings)), np.concatenate(tests)


def open_district(
    conn: psycopg.Connection[Any], store: ModelStore, settings: Settings, version: str
) -> dict[str, Any]:
    """Fit and store the run's district model and medians; the run's district record."""
    from app.model.training import random_split_figures

    split = choose_split(conn)
    declarations = load_declarations(conn)
    data, test = sample_district(conn, split, settings)
    groups = load_demographics(conn, data.student_ids)
    fitted = fit_district(data, test, declarations, groups, settings)
    store.write_model(version, DISTRICT, fitted.models[DISTRICT])
    store.write_file(version, holdout_part(DISTRICT), json.dumps(fitted.holdout).encode())
    medians = school_medians(conn, declarations, CutPoints.from_settings(settings))
    store.write_file(version, MEDIANS_FILE, json.dumps(medians).encode())
    return {
        "metrics": fitted.metrics[DISTRICT],
        "fairness": fitted.fairness[DISTRICT],
        "split": split_json(split),
        "random_split": (
            {DISTRICT: random_split_figures(data, declarations, settings)}
            if split.kind == TEMPORAL
            else {}
        ),
    }
