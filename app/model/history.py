"""The risk history (migration 0017): whoever writes a student's score also writes the day's
snapshot of it (score, generation, model version, top reasons, the indicators' figures of the
student's current school year), but only when one of them differs from the student's latest
snapshot: one row per student per day it changes. A second change the same day replaces that
day's row."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from app.model.served_models import Reason

# The student's latest snapshot (possibly today's), and their current indicator figures.
RECORD = (
    "INSERT INTO risk_history AS h (student_id, school_id, day, risk, generation, model_version,"
    " reasons, school_year, indicators)"
    " SELECT n.id, n.school, (now() AT TIME ZONE 'UTC')::date, n.risk, %s, n.version,"
    " n.reasons, i.school_year, i.figures"
    " FROM unnest(%s::bigint[], %s::integer[], %s::real[], %s::text[], %s::jsonb[])"
    " AS n(id, school, risk, version, reasons)"
    " LEFT JOIN LATERAL (SELECT i.school_year, to_jsonb(i) - 'student_id' - 'school_id'"
    " - 'school_year' - 'is_current' AS figures FROM student_indicators i"
    " WHERE i.student_id = n.id AND i.is_current) i ON true"
    " LEFT JOIN LATERAL (SELECT p.risk, p.model_version, p.indicators FROM risk_history p"
    " WHERE p.student_id = n.id ORDER BY p.day DESC LIMIT 1) last ON true"
    " WHERE last.risk IS NULL OR last.risk <> n.risk OR last.model_version <> n.version"
    " OR last.indicators IS DISTINCT FROM i.figures"
    " ON CONFLICT (student_id, day) DO UPDATE SET school_id = excluded.school_id,"
    " risk = excluded.risk, generation = excluded.generation,"
    " model_version = excluded.model_version, reasons = excluded.reasons,"
    " school_year = excluded.school_year, indicators = excluded.indicators,"
    " recorded_at = now()"
)


def reasons_json(reasons: Sequence[Reason]) -> str:
    return json.dumps(
        [
            {
                "feature": r.feature,
                "label": r.label,
                "value": r.value,
                "school_median": r.school_median,
                "contribution": round(float(r.contribution), 6),
            }
            for r in reasons
        ]
    )


def record(
    conn: psycopg.Connection[Any],
    generation: int,
    student_ids: Sequence[int],
    school_ids: Sequence[int],
    risks: Sequence[float],
    versions: Sequence[str],
    reasons: Sequence[str | None],
) -> int:
    """Snapshots of the students whose score, model or indicators changed; how many were
    written. In the caller's transaction, beside the scores it writes. `reasons`: each
    student's as JSON text (reasons_json), or None when the scorer gave none."""
    if not student_ids:
        return 0
    # This month's partition (and the next two): cheap when they exist.
    conn.execute("SELECT risk_history_ensure_current_partitions()")
    cur = conn.execute(
        RECORD,
        (generation, list(student_ids), list(school_ids), list(risks), list(versions),
         list(reasons)),
    )  # fmt: skip
    return cur.rowcount
