"""The SQL the prediction API runs, in one place. Plain strings and parameter builders, no web
imports, so benchmarks and jobs can run (and time) exactly the API's statements.

Every statement runs under its tenant's settings (Database.fetch), so row-level security
applies. A read of student data writes its own FERPA audit row (a data-modifying CTE inserting
from the rows it returns): one statement, so the rows come back only once their audit row is
in, and a student the tenant cannot see is neither returned nor audited as seen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.model.features import STANDARD_FEATURES

# /ready: the database answers.
PING = "SELECT 1"

# FERPA: one row per read of student data, written before the data is returned.
# Parameters: client id, school id, student id (or NULL), action, detail (JSON text).
INSERT_AUDIT = (
    "INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
    " VALUES (%s, %s, %s, %s, %s)"
)

# The same for many rows in one statement (app.api.audit_rows). Parameters: the five columns,
# each as an array.
# Rows naming a student who no longer exists (purged since the answer was cached: a late
# cache fill, or another replica's in-process cache) are not written; the statement returns
# the students whose rows were, so a request whose student is missing serves nothing (404).
# (RETURNING would need SELECT on the audit log, which the API has not.)
INSERT_AUDIT_ROWS = (
    "WITH n AS (SELECT * FROM unnest(%s::integer[], %s::integer[], %s::bigint[], %s::text[],"
    " %s::jsonb[]) AS n(client_id, school_id, student_id, action, detail)"
    " WHERE n.student_id IS NULL OR EXISTS (SELECT 1 FROM students s WHERE s.id = n.student_id)),"
    " written AS (INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
    " SELECT * FROM n)"
    " SELECT DISTINCT student_id FROM n"
)

# A school the tenant can see (row-level security hides the others). Parameter: school id.
SCHOOL_VISIBLE = "SELECT 1 FROM schools WHERE id = %s"

# A student's row of the filtered views, as a LATERAL subquery of a row `{id}`: a plain join
# to a security_barrier view is not pushed into it (the view is read whole, every visible row),
# the lateral's equality on the key is (a leakproof operator), and becomes an index condition.
# LIMIT 1 (one row per student anyway) keeps the planner from flattening it into a join.
FEATURES_OF = "SELECT * FROM student_features_visible v WHERE v.student_id = {id} LIMIT 1"
INDICATORS_OF = (
    "SELECT * FROM student_indicators_visible v WHERE v.student_id = {id} AND v.is_current LIMIT 1"
)
# One student's features (the current school year's, the prior year's, the district's own),
# if the tenant can see the student. Parameter: student id.
STUDENT_FEATURES = (
    "SELECT f.student_id, f.school_id, f.school_year,"
    f" {', '.join('f.' + c for c in STANDARD_FEATURES)}, f.district_features,"
    " i.school_year AS indicator_year, i.enrolled_days, i.absent_days, i.subject_marks,"
    " i.incidents AS indicator_incidents, i.incident_categories"
    " FROM student_features_visible f"
    f" LEFT JOIN LATERAL ({INDICATORS_OF.format(id='f.student_id')}) i ON true"
    " WHERE f.student_id = %s"
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


# The 30-day change: the risk minus the student's risk 30 days before the day of scoring (the
# latest snapshot on or before that day, else the first after it; NULL: no snapshot), stored
# with the score (migration 0022), else looked up by risk_30_days_before() for that row: a
# function call, so that planning the page (prepared or not) does not expand the history's
# monthly partitions.
RISK_CHANGE = (
    "r.risk - coalesce(r.risk_30_days_ago,"
    " risk_30_days_before(r.student_id, (now() AT TIME ZONE 'UTC')::date))"
)
OPEN_INTERVENTION = (
    "EXISTS (SELECT 1 FROM interventions v WHERE v.student_id = r.student_id"
    " AND v.status IN ('open', 'in_progress'))"
)
INDICATOR_COLUMNS = (
    "i.school_year AS indicator_year, i.enrolled_days, i.absent_days, i.subject_marks,"
    " i.incidents AS indicator_incidents, i.incident_categories"
)  # as STUDENT_FEATURES names them (app.core.indicators.from_row reads them)


@dataclass(frozen=True)
class ListFilters:
    """The at-risk list's optional filters and order: SQL conditions on the page's score row
    `r` and its current indicators `i` (app/core/indicators.py filter_sql), their parameters,
    a least 30-day change, whether an open intervention is required (True) or excluded
    (False), and the order: by risk, or by the 30-day change ("rising")."""

    indicators: tuple[str, ...] = ()
    params: tuple[Any, ...] = ()
    min_change: float | None = None
    open_intervention: bool | None = None
    sort: Literal["risk", "change"] = "risk"

    @property
    def trend_inside(self) -> bool:
        return self.sort == "change" or self.min_change is not None


def _page_source(
    where: str, where_params: list[Any], school_id: int, f: ListFilters
) -> tuple[str, list[Any]]:
    """The page's score rows before their limit: risk_scores (with the current indicators
    when a filter needs them, and the 30-day change when the order or a filter does), and
    the parameters in order."""
    params: list[Any] = []
    conditions = [where]
    join = ""
    if f.indicators:
        # The school's current indicators in one index range (0022), joined to its scores:
        # a filter reads them for every score over the floor, not only the page's.
        join = (
            " JOIN (SELECT * FROM student_indicators_visible v WHERE v.school_id = %s"
            " AND v.is_current) i ON i.student_id = r.student_id"
        )
        params.append(school_id)
    params += where_params
    if f.indicators:
        conditions += list(f.indicators)
        params += list(f.params)
    if f.open_intervention is not None:
        conditions.append(OPEN_INTERVENTION if f.open_intervention else f"NOT {OPEN_INTERVENTION}")
    change = f", {RISK_CHANGE} AS risk_change" if f.trend_inside else ", r.risk_30_days_ago"
    inner = (
        f"SELECT r.student_id, r.risk, r.model_version{change} FROM risk_scores r{join}"
        f" WHERE {' AND '.join(conditions)}"
    )
    return inner, params


def at_risk_query(
    gen: int,
    school_id: int,
    floor: float,
    limit: int,
    after: tuple[float, int] | None = None,
    audit: tuple[int, int] | None = None,
    filters: ListFilters = ListFilters(),
) -> tuple[str, list[Any]]:
    """SQL and parameters of one at-risk page: one row more than `limit`, to tell whether a next
    page exists; `after` is the decoded keyset cursor (risk, or 30-day change when sorted by
    it, and student id). Also timed by benchmarks/queries.py.

    Every item carries its current indicators' figures, its 30-day change and whether it has
    an open intervention. With `audit` (the client's id, how many reasons each item shows), what
    the API runs: the page with school_visible on every row (see _WITH_VISIBILITY) and, when
    the school is visible, the page's audit row in that client's name listing the students
    shown (the first `limit`, still visible) and the reasons' count. Without it, the same page
    alone (what benchmarks/queries.py times)."""
    # The floor is compared exactly, as a double (an index condition all the same: real and
    # double share btree operators), so a floor such as 1e-50 is no `real` underflow; the
    # cursor's risk was read from a `real` and is compared as one.
    where = "r.generation = %s AND r.school_id = %s AND r.risk >= %s::double precision"
    source, params = _page_source(where, [gen, school_id, floor], school_id, filters)
    # The order's key, of a row aliased {a} (no history: no change, ordered as none).
    key = "coalesce({a}.risk_change, 0)" if filters.sort == "change" else "{a}.risk"
    outer: list[str] = []
    if filters.min_change is not None:
        outer.append("c.risk_change >= %s::double precision")
        params.append(filters.min_change)
    if after is not None:
        # As `real`, as the scores and changes are (PostgreSQL prints them shortest).
        outer.append(f"({key.format(a='c')}, c.student_id) < (%s::real, %s)")
        params += list(after)
    cut = (
        f"SELECT * FROM ({source}) c{' WHERE ' + ' AND '.join(outer) if outer else ''}"
        f" ORDER BY {key.format(a='c')} DESC, c.student_id DESC LIMIT %s"
    )
    # The page is cut from risk_scores before students are joined: under row-level security
    # PostgreSQL 16 cannot walk the index in order (the policy's school_id = ANY(...) sits on
    # its second column), so it sorts every qualifying score; joining only the page's rows
    # keeps a school with thousands of students over the floor cheap. A LEFT JOIN keeps the
    # page's length (and so the next cursor) right when a student is no longer visible (moved
    # school since scoring): such rows come back with a NULL name for the caller to drop.
    # The page's students' features come along for their reasons, their indicators' figures,
    # the 30-day change (computed for the page only, unless the order or a filter needs it)
    # and the open-intervention flag: views and tables that row-level security filters.
    features = ", ".join(f"f.{c}" for c in STANDARD_FEATURES)
    change = "r.risk_change" if filters.trend_inside else RISK_CHANGE
    order = f"{key.format(a='r')} DESC, r.student_id DESC"
    page = (
        "SELECT r.student_id, s.first_name, s.last_name, s.grade, r.risk, r.model_version,"
        f" {features}, f.school_year, f.district_features, {INDICATOR_COLUMNS},"
        f" {change} AS risk_change, {OPEN_INTERVENTION} AS open_intervention"
        f" FROM ({cut}) r"
        " LEFT JOIN students s ON s.id = r.student_id"
        f" LEFT JOIN LATERAL ({FEATURES_OF.format(id='r.student_id')}) f ON true"
        f" LEFT JOIN LATERAL ({INDICATORS_OF.format(id='r.student_id')}) i ON true"
        f" ORDER BY {order}"
    )
    if audit is None:
        return page, [*params, limit + 1]
    client_id, reasons = audit
    shown = (
        "SELECT coalesce(jsonb_agg(student_id ORDER BY k DESC, student_id DESC), '[]')"
        f" FROM (SELECT *, {key.format(a='page')} AS k FROM page"
        " ORDER BY k DESC, student_id DESC LIMIT %s) p WHERE first_name IS NOT NULL"
    )
    audit_row = (
        "INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
        " SELECT %s, %s, NULL, 'read_at_risk_list',"
        f" jsonb_build_object('student_ids', ({shown}), 'reasons', %s::integer)"
        " WHERE EXISTS (SELECT 1 FROM schools WHERE id = %s)"
    )
    result = _WITH_VISIBILITY.format(
        query="SELECT * FROM page", order=f"{key.format(a='q')} DESC, q.student_id DESC"
    )
    return (
        f"WITH page AS ({page}), audit AS ({audit_row}) {result}",
        [*params, limit + 1, client_id, school_id, limit, reasons, school_id, school_id],
    )


# A school's alerts in one status (or, overdue: open and raised more than the given days
# ago), newest first, with the read's audit row (one round trip). Parameters: school id,
# status, overdue (bool), overdue days, limit, client id, school id, status, overdue.
ALERT_COLUMNS = (
    "id, student_id, status, risk, model_version, raised_at, assigned_to, acknowledged_at,"
    " acknowledged_by, assigned_at, assigned_by, resolved_at, resolved_by, resolution"
)
SCHOOL_ALERTS_AUDITED = (
    f"WITH a AS (SELECT {ALERT_COLUMNS}, status = 'open' AND raised_at"
    " < now() - make_interval(days => %(days)s) AS overdue FROM alerts"
    " WHERE school_id = %(school)s AND status = %(status)s AND (NOT %(overdue)s"
    " OR raised_at < now() - make_interval(days => %(days)s))"
    " ORDER BY raised_at DESC, id DESC LIMIT %(limit)s),"
    " audit AS (INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
    " SELECT %(client)s, %(school)s, NULL, 'read_school_alerts',"
    " jsonb_build_object('status', %(status)s::text, 'overdue', %(overdue)s,"
    " 'rows', (SELECT count(*) FROM a)))"
    " SELECT * FROM a ORDER BY raised_at DESC, id DESC"
)

# Overdue alerts per school, counts only (no tenant: every school's). Parameter: days.
OVERDUE_ALERT_COUNTS = "SELECT school_id, overdue FROM overdue_alert_counts(%s)"

# One alert, locked for its change (row-level security: none when the tenant cannot see it).
ALERT_FOR_UPDATE = f"SELECT school_id, {ALERT_COLUMNS} FROM alerts WHERE id = %s FOR UPDATE"

# An active staff member of a school (an assignee or an intervention's owner).
STAFF_OF_SCHOOL = "SELECT 1 FROM staff WHERE id = %s AND school_id = %s AND is_active"

# A student's snapshots, newest first, with the read's audit row. Parameters: student id,
# since (date), limit, client id, detail (JSON text).
STUDENT_HISTORY_AUDITED = (
    "WITH s AS (SELECT id, school_id FROM students WHERE id = %(student)s),"
    " h AS (SELECT h.day, h.risk, h.generation, h.model_version, h.reasons, h.school_year,"
    " h.indicators FROM risk_history h JOIN s ON s.id = h.student_id"
    " WHERE h.student_id = %(student)s AND h.day >= %(since)s"
    " ORDER BY h.day DESC LIMIT %(limit)s),"
    " audit AS (INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
    " SELECT %(client)s, s.school_id, s.id, 'read_risk_history',"
    " jsonb_build_object('rows', (SELECT count(*) FROM h)) FROM s)"
    " SELECT s.school_id, h.* FROM s LEFT JOIN h ON true ORDER BY h.day DESC"
)

INTERVENTION_COLUMNS = (
    "id, student_id, school_id, type, assigned_to, status, started_on, ended_on, notes,"
    " outcome, created_at, created_by, updated_at, updated_by"
)
# A student's interventions, newest first, with the read's audit row. Parameters: student id,
# limit, client id.
STUDENT_INTERVENTIONS_AUDITED = (
    "WITH s AS (SELECT id, school_id FROM students WHERE id = %(student)s),"
    f" v AS (SELECT {INTERVENTION_COLUMNS} FROM interventions"
    " WHERE student_id = %(student)s ORDER BY created_at DESC, id DESC LIMIT %(limit)s),"
    " audit AS (INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
    " SELECT %(client)s, s.school_id, s.id, 'read_interventions',"
    " jsonb_build_object('rows', (SELECT count(*) FROM v)) FROM s)"
    " SELECT s.school_id AS student_school_id, v.* FROM s LEFT JOIN v ON true"
    " ORDER BY v.created_at DESC, v.id DESC"
)
STUDENT_SCHOOL = "SELECT school_id FROM students WHERE id = %s"
INTERVENTION_FOR_UPDATE = (
    f"SELECT {INTERVENTION_COLUMNS} FROM interventions WHERE id = %s AND student_id = %s FOR UPDATE"
)
