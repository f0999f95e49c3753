"""The SQL the prediction API runs, in one place. Plain strings and parameter builders, no web
imports, so benchmarks and jobs can run (and time) exactly the API's statements.

Every statement runs in a tenant transaction (Database.tx), so row-level security applies."""

from __future__ import annotations

from typing import Any

from app.features import FEATURES

# /ready: the database answers.
PING = "SELECT 1"

# FERPA: one row per read of student data, written before the data is returned.
# Parameters: client id, school id, student id (or NULL), action, detail (JSON text).
INSERT_AUDIT = (
    "INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
    " VALUES (%s, %s, %s, %s, %s)"
)

# A school the tenant can see (row-level security hides the others). Parameter: school id.
SCHOOL_VISIBLE = "SELECT 1 FROM schools WHERE id = %s"

# One student's features, if the tenant can see the student. Parameter: student id.
STUDENT_FEATURES = (
    f"SELECT student_id, school_id, {', '.join(FEATURES)}"
    " FROM student_features_visible WHERE student_id = %s"
)

# Model versions that can serve a school (its own and the district's), newest first.
# Parameter: school id.
SCHOOL_MODEL_VERSIONS = (
    "SELECT version, scope, school_id, promoted, created_at, metrics, reason"
    " FROM model_versions WHERE school_id = %s OR school_id IS NULL"
    " ORDER BY created_at DESC, scope LIMIT 50"
)


def at_risk_query(
    gen: int, school_id: int, floor: float, limit: int, after: tuple[float, int] | None = None
) -> tuple[str, list[Any]]:
    """SQL and parameters of one at-risk page: one row more than `limit`, to tell whether a next
    page exists; `after` is the decoded keyset cursor. Also timed by benchmarks/queries.py."""
    # The floor is compared exactly, as a double (an index condition all the same: real and
    # double share btree operators), so a floor such as 1e-50 is no `real` underflow; the
    # cursor's risk was read from a `real` and is compared as one.
    where = "r.generation = %s AND r.school_id = %s AND r.risk >= %s::double precision"
    params: list[Any] = [gen, school_id, floor]
    if after is not None:
        where += " AND (r.risk, r.student_id) < (%s::real, %s)"
        params += list(after)
    # The page is cut from risk_scores before students are joined: under row-level security
    # PostgreSQL 16 cannot walk the index in order (the policy's school_id = ANY(...) sits on
    # its second column), so it sorts every qualifying score; joining only the page's rows
    # keeps a school with thousands of students over the floor cheap. A LEFT JOIN keeps the
    # page's length (and so the next cursor) right when a student is no longer visible (moved
    # school since scoring): such rows come back with a NULL name for the caller to drop.
    return (
        "SELECT r.student_id, s.first_name, s.last_name, s.grade, r.risk, r.model_version"
        " FROM (SELECT r.student_id, r.risk, r.model_version FROM risk_scores r"
        f" WHERE {where} ORDER BY r.risk DESC, r.student_id DESC LIMIT %s) r"
        " LEFT JOIN students s ON s.id = r.student_id"
        " ORDER BY r.risk DESC, r.student_id DESC",
        [*params, limit + 1],
    )


# A school's alerts in one status, newest first. Parameters: school id, status, limit.
SCHOOL_ALERTS = (
    "SELECT id, student_id, status, risk, model_version, raised_at FROM alerts"
    " WHERE school_id = %s AND status = %s ORDER BY raised_at DESC, id DESC LIMIT %s"
)
