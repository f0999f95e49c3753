"""Risk scores of every active student under a pointer generation: written before the pointer
flips (publication.py: publish), so the at-risk list always matches the models being served; or,
after a run that changed no served model, written again in place under the served generation
(rescore_students), so every night's students and features are scored all the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from app.core.indicators import CutPoints
from app.core.settings import Settings
from app.model import history
from app.model.artifacts import ModelStore, Pointer
from app.model.features import (
    INDICATORS_JOIN,
    INDICATORS_SELECT,
    STANDARD_FEATURES,
    raw_rows,
)
from app.model.served_models import ModelRegistry

SCORE_BATCH_ROWS = 50_000  # students read, scored and inserted at a time: bounded memory
# Every active student's raw inputs: features and the same school year's indicator figures.
SELECT_ACTIVE = (
    f"SELECT f.student_id, f.school_id, {', '.join('f.' + c for c in STANDARD_FEATURES)},"
    f" f.district_features, {INDICATORS_SELECT}"
    f" FROM student_features f{INDICATORS_JOIN} WHERE f.is_active"
)
DISTRICT_COLUMN = 2 + len(STANDARD_FEATURES)


def score_students(
    conn: psycopg.Connection[Any], store: ModelStore, settings: Settings, pointer: Pointer
) -> int:
    """Write risk_scores for `pointer.generation`; drop those of generations retired long
    enough ago (retired_generations)."""
    registry = ModelRegistry(store, refresh_seconds=0)
    registry.use(pointer)
    gen, scored = pointer.generation, 0
    cuts = CutPoints.from_settings(settings)
    with conn.transaction():
        # Leftovers of a run that crashed before its pointer flip, and the generations that no
        # replica can serve any more.
        doomed = retired_generations(conn, gen, settings.score_retention_seconds)
        conn.execute(
            "DELETE FROM risk_scores WHERE generation >= %s OR generation = ANY(%s)", (gen, doomed)
        )
        # A server-side cursor, in batches: memory stays bounded at any number of students,
        # and every batch lands in the one transaction (all scored, or none).
        with conn.cursor(name="score-students") as students:
            students.execute(SELECT_ACTIVE + " ORDER BY f.student_id")
            while rows := students.fetchmany(SCORE_BATCH_ROWS):
                scored += _insert_scores(conn, registry, gen, rows, cuts, top=settings.risk_reasons)
    conn.execute("SELECT analyze_risk_scores()")  # ANALYZE needs the owner: its function
    conn.commit()
    return scored


def rescore_students(
    conn: psycopg.Connection[Any],
    store: ModelStore,
    settings: Settings,
    pointer: Pointer,
    rescored: Callable[[set[int]], None],
) -> int:
    """Score every active student again under the generation `pointer` serves, in place, with
    the models it serves; drop the scores of students no longer active and of generations
    retired long enough ago. Batch by batch, each committed on its own, the rows in student
    order as the worker locks them: the worker waits for one batch at most, never deadlocks
    with it, and each row is at every moment a score by the served models. `rescored` gets
    the schools of each committed batch (their cached at-risk pages are stale)."""
    registry = ModelRegistry(store, refresh_seconds=0)
    registry.use(pointer)
    gen, scored, after = pointer.generation, 0, 0
    cuts = CutPoints.from_settings(settings)
    if not conn.autocommit:
        conn.commit()  # the caller's rows (the run's model_versions) first, as score_students
    while True:
        with conn.transaction():
            rows = conn.execute(
                SELECT_ACTIVE + " AND f.student_id > %s ORDER BY f.student_id LIMIT %s",
                (after, SCORE_BATCH_ROWS),
            ).fetchall()
            if rows:
                scored += _insert_scores(
                    conn, registry, gen, rows, cuts, in_place=True, top=settings.risk_reasons
                )
        if not rows:
            break
        after = int(rows[-1][0])
        rescored({int(row[1]) for row in rows})
    with conn.transaction():
        gone = conn.execute(
            "DELETE FROM risk_scores r WHERE r.generation = %s AND NOT EXISTS"
            " (SELECT 1 FROM student_features f WHERE f.student_id = r.student_id"
            " AND f.is_active) RETURNING r.school_id",
            (gen,),
        ).fetchall()
        # As if a next generation were scored now: the served one is kept (it is the last).
        doomed = retired_generations(conn, gen + 1, settings.score_retention_seconds)
        conn.execute("DELETE FROM risk_scores WHERE generation = ANY(%s)", (doomed,))
    rescored({int(row[0]) for row in gone})
    conn.execute("SELECT analyze_risk_scores()")
    if not conn.autocommit:
        conn.commit()
    return scored


def _insert_scores(
    conn: psycopg.Connection[Any],
    registry: ModelRegistry,
    gen: int,
    rows: list[Any],
    cuts: CutPoints,
    in_place: bool = False,
    top: int = 3,
) -> int:
    """Scores of SELECT_ACTIVE's `rows` under `gen`, and the risk history's snapshots of those
    that changed (with their `top` reasons)."""
    x = raw_rows(rows, 2, cuts)  # NULL: NaN (missing)
    school_ids: list[int | None] = [int(r[1]) for r in rows]
    extras = [r[DISTRICT_COLUMN] for r in rows]
    explained = registry.explain(school_ids, x, extras, top)
    predictions = [p for p, _ in explained]
    # One INSERT of arrays, not COPY: PostgreSQL refuses COPY FROM into a table whose
    # row-level security applies to the user, as it does to the trainer's login (0007).
    replace = (
        " ON CONFLICT (generation, student_id) DO UPDATE SET school_id = excluded.school_id,"
        " risk = excluded.risk, model_version = excluded.model_version,"
        " scored_at = excluded.scored_at, risk_30_days_ago = excluded.risk_30_days_ago"
        if in_place
        else ""
    )
    # Each score with the student's risk 30 days before today (migration 0022); none in the
    # history yet: today's snapshot, written below, is the first.
    conn.execute(
        "INSERT INTO risk_scores (generation, student_id, school_id, risk, model_version,"
        " risk_30_days_ago) SELECT %s, n.*, coalesce(risk_30_days_before(n.student_id,"
        " (now() AT TIME ZONE 'UTC')::date), n.risk) FROM unnest(%s::bigint[], %s::integer[],"
        " %s::real[], %s::text[]) AS n(student_id, school_id, risk, model_version)" + replace,
        (
            gen,
            [row[0] for row in rows],
            [row[1] for row in rows],
            [p.risk for p in predictions],
            [p.version for p in predictions],
        ),
    )
    history.record(
        conn,
        gen,
        [row[0] for row in rows],
        [row[1] for row in rows],
        [p.risk for p in predictions],
        [p.version for p in predictions],
        [history.reasons_json(r) for _, r in explained],
    )
    return len(rows)


def retired_generations(
    conn: psycopg.Connection[Any], new_generation: int, retention_seconds: float
) -> list[int]:
    """Generations older than `new_generation` whose scores no replica can serve any more: a
    replica serves a generation until it reads a newer pointer, so generation g is kept until
    SCORE_RETENTION_SECONDS after the next generation was scored (just before it was
    published). Two promotions within a replica's refresh interval thus leave it its scores."""
    rows = conn.execute(
        # One row per generation, each from the primary key's index (a loose index scan);
        # a generation's rows are written by one statement, so they share scored_at.
        "WITH RECURSIVE gens(g) AS ("
        " SELECT min(generation) FROM risk_scores"
        " UNION ALL SELECT (SELECT min(generation) FROM risk_scores WHERE generation > g)"
        " FROM gens WHERE g IS NOT NULL)"
        " SELECT g, (SELECT scored_at FROM risk_scores WHERE generation = g LIMIT 1), now()"
        " FROM gens WHERE g IS NOT NULL AND g < %s ORDER BY g",
        (new_generation,),
    ).fetchall()
    retired = []
    for i, (gen, _, now) in enumerate(rows):
        # The last one is the served generation, replaced by the one being scored now: kept.
        replaced_at = rows[i + 1][1] if i + 1 < len(rows) else now
        if (now - replaced_at).total_seconds() > retention_seconds:
            retired.append(gen)
    return retired
