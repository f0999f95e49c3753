"""Risk scores of every active student under a pointer generation, written before the pointer
flips (publication.py: publish), so the at-risk list always matches the models being served."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg

from app.core.settings import Settings
from app.model.artifacts import ModelStore, Pointer
from app.model.features import STANDARD_FEATURES
from app.model.served_models import ModelRegistry

SCORE_BATCH_ROWS = 50_000  # students read, scored and inserted at a time: bounded memory


def score_students(
    conn: psycopg.Connection[Any], store: ModelStore, settings: Settings, pointer: Pointer
) -> int:
    """Write risk_scores for `pointer.generation`; drop those of generations retired long
    enough ago (retired_generations)."""
    registry = ModelRegistry(store, refresh_seconds=0)
    registry.use(pointer)
    cols = ", ".join(STANDARD_FEATURES)
    gen, scored = pointer.generation, 0
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
            students.execute(
                f"SELECT student_id, school_id, {cols}, district_features FROM student_features"
                " WHERE is_active ORDER BY student_id"
            )
            while rows := students.fetchmany(SCORE_BATCH_ROWS):
                scored += _insert_scores(conn, registry, gen, rows)
    conn.execute("SELECT analyze_risk_scores()")  # ANALYZE needs the owner: its function
    conn.commit()
    return scored


def _insert_scores(
    conn: psycopg.Connection[Any], registry: ModelRegistry, gen: int, rows: list[Any]
) -> int:
    data = np.array([r[:-1] for r in rows], dtype=np.float64)  # NULL: NaN (missing)
    school_ids: list[int | None] = [int(s) for s in data[:, 1]]
    predictions = registry.predict(school_ids, data[:, 2:], extras=[r[-1] for r in rows])
    # One INSERT of arrays, not COPY: PostgreSQL refuses COPY FROM into a table whose
    # row-level security applies to the user, as it does to the trainer's login (0007).
    conn.execute(
        "INSERT INTO risk_scores (generation, student_id, school_id, risk, model_version)"
        " SELECT %s, * FROM unnest(%s::bigint[], %s::integer[], %s::real[], %s::text[])",
        (
            gen,
            [row[0] for row in rows],
            [row[1] for row in rows],
            [p.risk for p in predictions],
            [p.version for p in predictions],
        ),
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
