"""The SQL the prediction API runs, in one place. Plain strings and parameter builders, no web
imports, so benchmarks and jobs can run (and time) exactly the API's statements.

Every statement runs under its tenant's settings (Database.fetch), so row-level security
applies. A read of student data writes its own FERPA audit row (a data-modifying CTE inserting
from the rows it returns): one statement, so the rows come back only once their audit row is
in, and a student the tenant cannot see is neither returned nor audited as seen."""

from __future__ import annotations

from typing import Any

from app.model.features import STANDARD_FEATURES

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

# One student's features (the current school year's, the prior year's, the district's own),
# if the tenant can see the student. Parameter: student id.
STUDENT_FEATURES = (
    f"SELECT student_id, school_id, school_year, {', '.join(STANDARD_FEATURES)},"
    " district_features FROM student_features_visible WHERE student_id = %s"
)

# The same, with the read's audit row (GET /v1/students/{id}/risk, uncached). Parameters:
# student id, client id, detail (JSON text: the cache, and how many reasons the answer shows).
STUDENT_FEATURES_AUDITED = (
    f"WITH f AS ({STUDENT_FEATURES}),"
    " audit AS (INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
    " SELECT %s, f.school_id, f.student_id, 'read_student_risk', %s::jsonb FROM f)"
    " SELECT f.* FROM f"
)

# The audit row of an at-risk page served from the cache, written only if the tenant sees the
# school (no row back: it does not, a 403). Parameters: client id, school id, detail (JSON
# text), school id.
AT_RISK_CACHED_AUDIT = (
    "INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
    " SELECT %s, %s, NULL, 'read_at_risk_list', %s::jsonb"
    " WHERE EXISTS (SELECT 1 FROM schools WHERE id = %s) RETURNING true AS school_visible"
)

# Model versions that can serve a school (its own and the district's), newest first, and
# whether each is promoted as of the pointer generation the API serves (migration 0014).
# Parameters: generation, school id.
SCHOOL_MODEL_VERSIONS = (
    "SELECT version, scope, school_id, coalesce(promoted_generation <= %s, false) AS promoted,"
    " created_at, metrics, reason FROM model_versions WHERE school_id = %s OR school_id IS NULL"
    " ORDER BY created_at DESC, scope LIMIT 50"
)

# Whether the tenant sees the school (school_visible), beside each of the statement's rows (or
# one row of NULLs when there is none), so a district key's check costs no round trip.
_WITH_VISIBILITY = (
    "SELECT v.school_visible, q.* FROM"
    " (SELECT EXISTS (SELECT 1 FROM schools WHERE id = %s) AS school_visible) v"
    " LEFT JOIN ({query}) q ON true ORDER BY {order}"
)

# SCHOOL_MODEL_VERSIONS with school_visible. Parameters: school id, generation, school id.
SCHOOL_MODEL_VERSIONS_CHECKED = _WITH_VISIBILITY.format(
    query=SCHOOL_MODEL_VERSIONS, order="q.created_at DESC, q.scope"
)


def at_risk_query(
    gen: int,
    school_id: int,
    floor: float,
    limit: int,
    after: tuple[float, int] | None = None,
    audit_client_id: int | None = None,
    reasons: int = 0,
) -> tuple[str, list[Any]]:
    """SQL and parameters of one at-risk page: one row more than `limit`, to tell whether a next
    page exists; `after` is the decoded keyset cursor. Also timed by benchmarks/queries.py.

    With `audit_client_id`, what the API runs: the page with school_visible on every row (see
    _WITH_VISIBILITY) and, when the school is visible, the page's audit row in that client's
    name listing the students shown (the first `limit`, still visible) and how many reasons
    each item shows."""
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
    # The page's students' features come along for their reasons (a view that row-level
    # security filters like the students).
    features = ", ".join(f"f.{c}" for c in STANDARD_FEATURES)
    page = (
        "SELECT r.student_id, s.first_name, s.last_name, s.grade, r.risk, r.model_version,"
        f" {features}, f.district_features"
        " FROM (SELECT r.student_id, r.risk, r.model_version FROM risk_scores r"
        f" WHERE {where} ORDER BY r.risk DESC, r.student_id DESC LIMIT %s) r"
        " LEFT JOIN students s ON s.id = r.student_id"
        " LEFT JOIN student_features_visible f ON f.student_id = r.student_id"
        " ORDER BY r.risk DESC, r.student_id DESC"
    )
    if audit_client_id is None:
        return page, [*params, limit + 1]
    shown = (
        "SELECT coalesce(jsonb_agg(student_id ORDER BY risk DESC, student_id DESC), '[]')"
        " FROM (SELECT * FROM page ORDER BY risk DESC, student_id DESC LIMIT %s) p"
        " WHERE first_name IS NOT NULL"
    )
    audit = (
        "INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
        " SELECT %s, %s, NULL, 'read_at_risk_list',"
        f" jsonb_build_object('student_ids', ({shown}), 'reasons', %s::integer)"
        " WHERE EXISTS (SELECT 1 FROM schools WHERE id = %s)"
    )
    result = _WITH_VISIBILITY.format(
        query="SELECT * FROM page", order="q.risk DESC, q.student_id DESC"
    )
    return (
        f"WITH page AS ({page}), audit AS ({audit}) {result}",
        [*params, limit + 1, audit_client_id, school_id, limit, reasons, school_id, school_id],
    )


# A school's alerts in one status, newest first, with the read's audit row (one round trip).
# Parameters: school id, status, limit, client id, school id, status.
SCHOOL_ALERTS_AUDITED = (
    "WITH a AS (SELECT id, student_id, status, risk, model_version, raised_at FROM alerts"
    " WHERE school_id = %s AND status = %s ORDER BY raised_at DESC, id DESC LIMIT %s),"
    " audit AS (INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
    " SELECT %s, %s, NULL, 'read_school_alerts',"
    " jsonb_build_object('status', %s::text, 'rows', (SELECT count(*) FROM a)))"
    " SELECT * FROM a ORDER BY raised_at DESC, id DESC"
)
