"""Latency of the form-master screens' read queries at the scaling guide's seed scale.

Measures five queries on a district of 50 schools x 1,000 students (generated and trained, so
risk scores exist) plus a year of history loaded server-side: about 25,000 intervention cases,
50,000 alerts, 200 API clients and 1,000,000 audit-log rows over the last 180 days:

1. dashboard  - the dashboard of one school, in one statement: active students, students at
                risk in the served generation, open alerts (and those of the last 7 days),
                open and in-progress cases, and students / at-risk students per grade;
                dashboard_join: the same as first written (each student joined to its
                score), timed for comparison, with no target;
2. cases      - a staff member's open and in-progress intervention cases, newest first, with
                the student's name, grade and current risk (limit 100);
3. alerts     - a staff member's open and acknowledged alerts, newest and riskiest first, with
                the student's name, grade and current risk (limit 100);
4. at_risk    - the first page (100) of GET /v1/schools/{id}/at-risk, with the API's own SQL
                (app.api.queries.at_risk_query: each student's indicators, 30-day change of
                the risk and open-case flag); at_risk_plain: the page without those three, as
                it was before them, timed beside it for comparison; at_risk_rising: ordered
                by the 30-day rise (at least 0.05); at_risk_attendance: over risk 0, only the
                students whose attendance is at risk; at_risk_all: the page over risk 0, every
                scored student of the school qualifying (the page's worst case);
5. audit      - one API client's audit log of the last 30 days, newest first (limit 100), with
                the student's name.

Queries 1-4 run as the API runs them: a connection that did SET ROLE ssp_app, each query in
its own transaction that first sets the tenant with set_config('app.school_id', ..., true), so
row-level security applies. Query 5 runs as the owner (the app role cannot read the audit
log; an auditor or compliance job does). Parameters rotate over schools, staff members (form
masters and counsellors, who own the queues) and clients; each query is warmed up with one
pass over its parameters, then timed on the client (execute + fetchall, psycopg's default
auto-prepare like the API's pool) and reported as p50/p95/p99 in ms.

Then, in one owner transaction that is rolled back at the end, the secondary indexes of the
tables the queries read (migrations 0002, 0003 and any later ones; not primary keys or
constraints) are dropped and the same queries are timed again, as the same role and tenants.
EXPLAIN (ANALYZE, BUFFERS) of each query is recorded with and without the indexes.

The data is VACUUM ANALYZEd after the load (what autovacuum does after a bulk insert), all of
it fits in memory, and client and server share the machine: these are warm-cache, loopback,
single-client numbers, not latencies under concurrent load.

    venv/bin/python -m benchmarks.queries [--runs 300] [--runs-without 30]

Prints the result and records it in benchmarks/results/queries.json. Needs ~2 GB of disk in a
temp directory and takes about 3-4 minutes on 2 cores (most of it generating and training).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from app.api.queries import FEATURES_OF, ListFilters, at_risk_query
from app.core import db
from app.core.indicators import CutPoints, filter_sql
from app.core.settings import Settings
from app.model.artifacts import ModelStore
from app.model.features import STANDARD_FEATURES
from benchmarks.common import bench_settings, load_district, workdir, write_result

SCHOOLS = 50
STUDENTS_PER_SCHOOL = 1000
CASES = 25_000
ALERTS = 50_000
CLIENTS = 200
AUDIT_ROWS = 1_000_000
AUDIT_DAYS = 180
PAGE = 100  # list screens show 100 rows; the at-risk API's largest page
TARGET_P95_MS = 10.0

# ---- the history the generator does not create -------------------------------------------

# Each served score's risk 30 days before today, as the scoring stores it (migration 0022): as
# the owner, row security lifted inside the transaction as `generate` does.
BASELINE_SQL = [
    "ALTER TABLE risk_scores NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE risk_history NO FORCE ROW LEVEL SECURITY",
    "UPDATE risk_scores SET risk_30_days_ago = coalesce(risk_30_days_before(student_id,"
    " (now() AT TIME ZONE 'UTC')::date), risk)"
    " WHERE generation = (SELECT max(generation) FROM risk_scores)"
    " AND risk_30_days_ago IS NULL",
    "ALTER TABLE risk_scores FORCE ROW LEVEL SECURITY",
    "ALTER TABLE risk_history FORCE ROW LEVEL SECURITY",
]

# Run as the owner in one transaction. setseed makes the history the same on every run.
HISTORY_SQL = [
    "SELECT setseed(0.42)",
    # API clients, each scoped to one school (4 per school at 200 clients and 50 schools).
    """
    INSERT INTO api_clients (name, key_prefix, key_hash, school_id)
    SELECT format('bench client %%s', g), format('bench%%s', g),
           md5(format('bench-client-%%s', g)), sc.id
    FROM generate_series(0, %(clients)s - 1) g
    JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM schools) sc
      ON sc.k = g %% (SELECT count(*) FROM schools)
    """,
    # Students numbered 1..size within their school, to pick one at random by number.
    """
    CREATE TEMP TABLE numbered ON COMMIT DROP AS
    SELECT id, school_id, row_number() OVER (PARTITION BY school_id ORDER BY id) AS n,
           count(*) OVER (PARTITION BY school_id) AS size,
           row_number() OVER (ORDER BY id) AS global_n
    FROM students
    """,
    "CREATE INDEX ON numbered (global_n)",
    "CREATE INDEX ON numbered (school_id, n)",
    "ANALYZE numbered",
    # Cases over the last year, 60% with the form master and 40% with the counsellor. Cases
    # older than 120 days are closed; younger ones are still open or in progress 45% of the
    # time, so about 15% are active.
    """
    INSERT INTO interventions (school_id, student_id, assigned_to, status, created_at, notes)
    SELECT s.school_id, s.id, f.id,
           CASE WHEN p.age > 120 OR p.u >= 0.45 THEN 'closed'
                WHEN p.u < 0.2 THEN 'open' ELSE 'in_progress' END,
           now() - p.age * interval '1 day',
           'Attendance and marks review; parent meeting, follow-up in two weeks.'
    FROM (SELECT 1 + floor(random() * (SELECT count(*) FROM numbered))::bigint AS pick,
                 random() * 365 AS age, random() AS u, random() AS v
          FROM generate_series(1, %(cases)s)) p
    JOIN numbered s ON s.global_n = p.pick
    JOIN staff f ON f.school_id = s.school_id
               AND f.role = CASE WHEN p.v < 0.6 THEN 'form_master' ELSE 'counsellor' END
    """,
    # Alerts over the last year, 70% for the form master, 25% for the counsellor, 5% not yet
    # assigned. Alerts of the last 60 days are open 35% and acknowledged 30% of the time;
    # older ones are resolved, a few still acknowledged.
    """
    INSERT INTO alerts (school_id, student_id, assigned_to, status, alert_date, risk,
                        model_version)
    SELECT s.school_id, s.id, f.id,
           CASE WHEN p.age < 60 AND p.u < 0.35 THEN 'open'
                WHEN p.age < 60 AND p.u < 0.65 THEN 'acknowledged'
                WHEN p.age >= 60 AND p.u < 0.05 THEN 'acknowledged'
                ELSE 'resolved' END,
           current_date - p.age, 0.3 + 0.7 * p.w,
           (SELECT max(model_version) FROM risk_scores)
    FROM (SELECT 1 + floor(random() * (SELECT count(*) FROM numbered))::bigint AS pick,
                 floor(random() * 365)::int AS age, random() AS u, random() AS v,
                 random() AS w
          FROM generate_series(1, %(alerts)s)) p
    JOIN numbered s ON s.global_n = p.pick
    LEFT JOIN staff f ON f.school_id = s.school_id
         AND f.role = CASE WHEN p.v < 0.7 THEN 'form_master'
                           WHEN p.v < 0.95 THEN 'counsellor' END
    """,
    # The risk history: every scored student's snapshot of today (if scoring did not write
    # it) and one of 40 days ago, its risk then drawn around today's (mostly lower: risks
    # rise), so the 30-day change has a baseline for everyone; and the indicators' figures.
    """
    INSERT INTO risk_history (student_id, school_id, day, risk, generation, model_version,
                              reasons)
    SELECT r.student_id, r.school_id, d.day,
           CASE WHEN d.k = 0 THEN r.risk
                ELSE greatest(0, least(1, r.risk + (random() - 0.6) * 0.3)) END,
           r.generation, r.model_version, '[]'
    FROM risk_scores r
    CROSS JOIN (VALUES (0, (now() AT TIME ZONE 'UTC')::date),
                       (1, (now() AT TIME ZONE 'UTC')::date - 40)) d (k, day)
    WHERE r.generation = (SELECT max(generation) FROM risk_scores)
    ON CONFLICT (student_id, day) DO NOTHING
    """,
    # What the nightly scoring stores with each score once the history exists (0022).
    *BASELINE_SQL,
    "REFRESH MATERIALIZED VIEW student_indicators",
    # The audit log: monthly partitions first, then rows in time order (as an append-only log
    # is written), each by a client about a student of the client's school: 85% single reads
    # of a student's risk, 15% reads of an at-risk page listing 50 students.
    """
    SELECT audit_log_ensure_partitions((now() - make_interval(days => %(days)s + 1))::date,
                                       now()::date)
    """,
    """
    INSERT INTO audit_log (occurred_at, client_id, school_id, student_id, action, detail)
    SELECT p.at, c.id, s.school_id,
           CASE WHEN p.k < 0.85 THEN s.id END,
           CASE WHEN p.k < 0.85 THEN 'read_student_risk' ELSE 'read_at_risk_list' END,
           CASE WHEN p.k < 0.85
                THEN jsonb_build_object('cache', CASE WHEN p.k < 0.3 THEN 'hit' ELSE 'miss' END)
                ELSE jsonb_build_object('student_ids',
                                        to_jsonb(array(SELECT generate_series(s.id, s.id + 49))))
           END
    FROM (SELECT now() - random() * make_interval(days => %(days)s) AS at,
                 floor(random() * %(clients)s)::int AS client_k, random() AS b, random() AS k
          FROM generate_series(1, %(audit_rows)s)) p
    JOIN (SELECT id, school_id, row_number() OVER (ORDER BY id) - 1 AS k
          FROM api_clients WHERE name LIKE 'bench client %%') c ON c.k = p.client_k
    JOIN (SELECT school_id, max(size) AS size FROM numbered GROUP BY school_id) z
      ON z.school_id = c.school_id
    JOIN numbered s ON s.school_id = c.school_id AND s.n = 1 + floor(p.b * z.size)::bigint
    ORDER BY p.at
    """,
]

TABLES_READ = (
    "students", "risk_scores", "interventions", "alerts", "audit_log", "api_clients",
    "risk_history", "student_indicators",
)  # fmt: skip


HISTORY = {
    "clients": CLIENTS,
    "cases": CASES,
    "alerts": ALERTS,
    "audit_rows": AUDIT_ROWS,
    "days": AUDIT_DAYS,
}


def load_history(settings: Settings, params: dict[str, int] = HISTORY) -> dict[str, Any]:
    """Cases, alerts, clients and the audit log, then VACUUM ANALYZE; returns the counts."""
    with db.connect_owner(settings) as conn:
        conn.execute("SET LOCAL synchronous_commit = off")
        for statement in HISTORY_SQL:
            conn.execute(statement, params if "%(" in statement else None)
        conn.commit()
        conn.autocommit = True
        conn.execute(f"VACUUM (ANALYZE) {', '.join(TABLES_READ)}, staff")
        counts: dict[str, Any] = {}
        for table in ("schools", "students", "staff", "api_clients", "audit_log"):
            counts[table] = scalar(conn, f"SELECT count(*) FROM {table}")
        for table in ("interventions", "alerts"):
            rows = conn.execute(
                f"SELECT status, count(*) FROM {table} GROUP BY status ORDER BY status"
            ).fetchall()
            counts[table] = {status: n for status, n in rows}
        counts["audit_log_partitions"] = scalar(
            conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_log'::regclass"
        )
        counts["risk_scores_served_generation"] = scalar(
            conn,
            "SELECT count(*) FROM risk_scores WHERE generation = %s",
            (ModelStore(settings.model_store_url).pointer().generation,),
        )
    return counts


def scalar(conn: psycopg.Connection[Any], query: str, params: Sequence[Any] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


# ---- the five queries ----------------------------------------------------------------------

# The dashboard's counts of alerts and cases, and its result row, after its per-grade CTEs.
DASHBOARD_COUNTS = """
alert_counts AS (
    SELECT count(*) AS open_alerts,
           count(*) FILTER (WHERE alert_date >= current_date - 7) AS open_alerts_last_7_days
    FROM alerts WHERE school_id = %(school)s AND status = 'open'
), case_counts AS (
    SELECT count(*) FILTER (WHERE status = 'open') AS open_cases,
           count(*) FILTER (WHERE status = 'in_progress') AS cases_in_progress
    FROM interventions WHERE school_id = %(school)s AND status <> 'closed'
)
SELECT (SELECT sum(students) FROM by_grade) AS active_students,
       (SELECT sum(at_risk) FROM by_grade) AS at_risk,
       alert_counts.*, case_counts.*,
       (SELECT json_agg(by_grade ORDER BY grade) FROM by_grade) AS by_grade
FROM alert_counts, case_counts
"""

# `active`: one row per active student of the school, its grade and whether its score in the
# generation is at risk. The at-risk scores are the school's range of
# risk_scores_school_risk_idx, matched to the students by grouping on the student rather than
# by a join: under row-level security the planner expects one student of the school (the
# policy's school_id = ANY (...) and the query's school_id = ... estimated as independent),
# and at 1,000 schools joined by one risk_scores_pkey probe per student (9-14 ms). Only the
# scores filed under the school count: a district tenant's join also counted a student's
# score filed under the school it left since the run (a school tenant never saw that one).
DASHBOARD_SQL = (
    """
WITH active AS (
    SELECT max(grade) AS grade, bool_or(at_risk) AS at_risk
    FROM (
        SELECT id, grade, false AS at_risk
        FROM students WHERE school_id = %(school)s AND is_active
        UNION ALL
        SELECT student_id, NULL, true
        FROM risk_scores
        WHERE generation = %(gen)s AND school_id = %(school)s AND risk >= %(floor)s::real
    ) student
    GROUP BY id
    HAVING count(grade) > 0
), by_grade AS (
    SELECT grade, count(*) AS students, count(*) FILTER (WHERE at_risk) AS at_risk
    FROM active GROUP BY grade
),"""
    + DASHBOARD_COUNTS
)

# The dashboard as first written, each active student joined to its score: the answer
# DASHBOARD_SQL must give (tests/app/test_dashboard_query.py), timed beside it for comparison.
DASHBOARD_JOIN_SQL = (
    """
WITH active AS (
    SELECT s.grade, r.risk
    FROM students s
    LEFT JOIN risk_scores r ON r.generation = %(gen)s AND r.student_id = s.id
    WHERE s.school_id = %(school)s AND s.is_active
), by_grade AS (
    SELECT grade, count(*) AS students,
           count(*) FILTER (WHERE risk >= %(floor)s::real) AS at_risk
    FROM active GROUP BY grade
),"""
    + DASHBOARD_COUNTS
)

CASES_SQL = """
SELECT i.id, i.status, i.created_at, i.notes,
       s.id AS student_id, s.first_name, s.last_name, s.grade, r.risk
FROM interventions i
JOIN students s ON s.id = i.student_id
LEFT JOIN risk_scores r ON r.generation = %(gen)s AND r.student_id = i.student_id
WHERE i.assigned_to = %(staff)s AND i.status IN ('open', 'in_progress')
ORDER BY i.created_at DESC
LIMIT 100
"""

ALERTS_SQL = """
SELECT a.id, a.status, a.alert_date, a.risk AS alert_risk,
       s.id AS student_id, s.first_name, s.last_name, s.grade, r.risk
FROM alerts a
JOIN students s ON s.id = a.student_id
LEFT JOIN risk_scores r ON r.generation = %(gen)s AND r.student_id = a.student_id
WHERE a.assigned_to = %(staff)s AND a.status IN ('open', 'acknowledged')
ORDER BY a.alert_date DESC, a.risk DESC
LIMIT 100
"""

AUDIT_SQL = """
SELECT a.id, a.occurred_at, a.action, a.school_id, a.student_id, s.first_name, s.last_name,
       a.detail
FROM audit_log a
LEFT JOIN students s ON s.id = a.student_id
WHERE a.client_id = %(client)s AND a.occurred_at >= now() - interval '30 days'
ORDER BY a.occurred_at DESC
LIMIT 100
"""

SET_TENANT = "SELECT set_config('app.school_id', %s, true), set_config('app.district_id', '', true)"

# The at-risk page's statement before the indicators, the 30-day change and the open-case flag
# were added to it (app.api.queries.at_risk_query without them), its features looked up per
# student as the page does since then (a plain join to the security_barrier view reads the
# whole view once it holds rows: seconds at 1M students). Parameters: generation, school,
# floor, limit.
PLAIN_AT_RISK_SQL = (
    "SELECT r.student_id, s.first_name, s.last_name, s.grade, r.risk, r.model_version,"
    f" {', '.join('f.' + c for c in STANDARD_FEATURES)}, f.district_features"
    " FROM (SELECT r.student_id, r.risk, r.model_version FROM risk_scores r"
    " WHERE r.generation = %s AND r.school_id = %s AND r.risk >= %s::double precision"
    " ORDER BY r.risk DESC, r.student_id DESC LIMIT %s) r"
    " LEFT JOIN students s ON s.id = r.student_id"
    f" LEFT JOIN LATERAL ({FEATURES_OF.format(id='r.student_id')}) f ON true"
    " ORDER BY r.risk DESC, r.student_id DESC"
)


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    # (school whose tenant the transaction sets, or None to run as the owner; parameters)
    cases: list[tuple[int | None, Any]]
    target: bool = True  # held to TARGET_P95_MS; False: timed for comparison only

    @property
    def as_app(self) -> bool:
        return self.cases[0][0] is not None


def build_queries(settings: Settings) -> list[Query]:
    gen = ModelStore(settings.model_store_url).pointer().generation
    floor = settings.alert_threshold
    with db.connect_owner(settings, autocommit=True) as conn:
        schools = [r[0] for r in conn.execute("SELECT id FROM schools ORDER BY id")]
        # The queue owners, form masters first: the example plan is a form master's.
        staff = conn.execute(
            "SELECT id, school_id FROM staff WHERE role IN ('form_master', 'counsellor')"
            " ORDER BY role DESC, id"
        ).fetchall()
        clients = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM api_clients WHERE name LIKE 'bench client %' ORDER BY id"
            )
        ]
    at_risk_sql = at_risk_query(gen, schools[0], floor, PAGE)[0]
    rising = ListFilters(min_change=0.05, sort="change")
    cuts = CutPoints.from_settings(settings)
    attendance, cut_params = filter_sql("attendance", "at_risk", cuts)
    flagged = ListFilters((attendance,), tuple(cut_params))
    dashboards = [(s, {"school": s, "gen": gen, "floor": floor}) for s in schools]
    return [
        Query("dashboard", DASHBOARD_SQL, dashboards),
        Query("dashboard_join", DASHBOARD_JOIN_SQL, dashboards, target=False),
        Query("cases", CASES_SQL, [(school, {"staff": i, "gen": gen}) for i, school in staff]),
        Query("alerts", ALERTS_SQL, [(school, {"staff": i, "gen": gen}) for i, school in staff]),
        # The page as it was before the indicators, the 30-day change and the open-case flag
        # (for comparison, in the same run), then as the API runs it now, with each of them.
        Query(
            "at_risk_plain",
            PLAIN_AT_RISK_SQL,
            [(s, (gen, s, floor, PAGE + 1)) for s in schools],
            target=False,
        ),
        Query(
            "at_risk",
            at_risk_sql,
            [(s, at_risk_query(gen, s, floor, PAGE)[1]) for s in schools],
        ),
        # Ordered by the rise over 30 days (at least 0.05), and only attendance at risk.
        Query(
            "at_risk_rising",
            at_risk_query(gen, schools[0], floor, PAGE, filters=rising)[0],
            [(s, at_risk_query(gen, s, floor, PAGE, filters=rising)[1]) for s in schools],
        ),
        Query(
            "at_risk_attendance",
            at_risk_query(gen, schools[0], 0.0, PAGE, filters=flagged)[0],
            [(s, at_risk_query(gen, s, 0.0, PAGE, filters=flagged)[1]) for s in schools],
        ),
        # Every scored student over risk 0: the worst case of the page, ~850 rows to order.
        Query(
            "at_risk_all",
            at_risk_sql,
            [(s, at_risk_query(gen, s, 0.0, PAGE)[1]) for s in schools],
        ),
        Query("audit", AUDIT_SQL, [(None, {"client": c}) for c in clients]),
    ]


# ---- measuring -----------------------------------------------------------------------------


def time_query(
    conn: psycopg.Connection[Any], query: Query, runs: int, warmup: int, seed: int = 1
) -> dict[str, Any]:
    """Run `query` warmup + runs times over its parameters (shuffled), each in a transaction
    (a savepoint when `conn` is already in one) that first sets the tenant; time the query."""
    rng = random.Random(seed)
    order = [query.cases[i % len(query.cases)] for i in range(warmup + runs)]
    rng.shuffle(order)
    samples: list[float] = []
    rows = 0
    with conn.cursor() as cur:
        for i, (school, params) in enumerate(order):
            with conn.transaction():
                if school is not None:
                    cur.execute(SET_TENANT, (str(school),))
                started = time.perf_counter()
                cur.execute(query.sql, params)
                fetched = cur.fetchall()
                elapsed = time.perf_counter() - started
            if i >= warmup:
                samples.append(elapsed * 1000)
                rows += len(fetched)
    p50, p95, p99 = np.percentile(samples, [50, 95, 99])
    return {
        "runs": runs,
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(max(samples), 2),
        "mean_rows": round(rows / runs, 1),
    }


def explain(conn: psycopg.Connection[Any], query: Query) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the query with its first parameters, as it is run."""
    school, params = query.cases[0]
    with conn.transaction(), conn.cursor() as cur:
        if school is not None:
            cur.execute(SET_TENANT, (str(school),))
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + query.sql, params)
        return [r[0] for r in cur.fetchall()]


def secondary_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Indexes of the tables the queries read that are neither primary keys nor constraints
    (a partitioned table's index only: dropping it drops those of its partitions)."""
    rows = conn.execute(
        "SELECT i.relname FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE t.relname = ANY(%s) AND t.relnamespace = 'public'::regnamespace"
        " AND NOT x.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        " ORDER BY t.relname, i.relname",
        (list(TABLES_READ),),
    ).fetchall()
    return [r[0] for r in rows]


def measure(settings: Settings, runs: int, runs_without: int) -> dict[str, Any]:
    queries = build_queries(settings)
    url = db.primary_url(settings)
    results: dict[str, Any] = {q.name: {"sql": q.sql.strip()} for q in queries}

    # With the indexes: the API's way, one transaction per query.
    with (
        psycopg.connect(url) as app_conn,
        psycopg.connect(url) as owner_conn,
    ):
        app_conn.execute(f"SET ROLE {settings.db_app_role}")
        app_conn.commit()
        for q in queries:
            conn = app_conn if q.as_app else owner_conn
            results[q.name]["with_indexes"] = time_query(
                conn, q, runs, warmup=min(len(q.cases), 200)
            )
            results[q.name]["plan_with_indexes"] = explain(conn, q)
            print(f"{q.name:14s} with indexes    {results[q.name]['with_indexes']}", flush=True)

    if not runs_without:
        for q in queries:
            if q.target:
                r = results[q.name]
                r["meets_p95_target"] = r["with_indexes"]["p95_ms"] <= TARGET_P95_MS
        return {"queries": results}

    # Without them: dropped in one owner transaction, rolled back at the end.
    with psycopg.connect(url) as conn:
        dropped = secondary_indexes(conn)
        for name in dropped:
            conn.execute(f"DROP INDEX {name}")
        for q in queries:
            role = settings.db_app_role if q.as_app else "NONE"
            conn.execute(f"SET LOCAL ROLE {role}")
            results[q.name]["without_indexes"] = time_query(
                conn, q, runs_without, warmup=min(len(q.cases), 3)
            )
            results[q.name]["plan_without_indexes"] = explain(conn, q)
            print(f"{q.name:14s} without indexes {results[q.name]['without_indexes']}", flush=True)
        conn.rollback()
        assert secondary_indexes(conn) == dropped, "the indexes came back with the rollback"

    for q in queries:
        r = results[q.name]
        r["p95_ratio_without_to_with"] = round(
            r["without_indexes"]["p95_ms"] / r["with_indexes"]["p95_ms"], 1
        )
        if q.target:
            r["meets_p95_target"] = r["with_indexes"]["p95_ms"] <= TARGET_P95_MS
    return {"indexes_dropped_without": dropped, "queries": results}


def main() -> None:
    parser = argparse.ArgumentParser(description="Latency of the form-master screens' queries")
    parser.add_argument("--runs", type=int, default=300, help="timed runs per query")
    parser.add_argument("--runs-without", type=int, default=30, help="runs without indexes")
    args = parser.parse_args()

    with workdir("queries") as work:
        settings = bench_settings(work)
        started = time.perf_counter()
        load_district(settings, SCHOOLS, STUDENTS_PER_SCHOOL)
        district_seconds = time.perf_counter() - started
        print(f"district generated and trained in {district_seconds:.0f} s", flush=True)
        started = time.perf_counter()
        counts = load_history(settings)
        history_seconds = time.perf_counter() - started
        print(f"history loaded and vacuumed in {history_seconds:.0f} s: {counts}", flush=True)
        measured = measure(settings, args.runs, args.runs_without)
        with db.connect_owner(settings, autocommit=True) as conn:
            server = scalar(conn, "SHOW server_version")
            shared_buffers = scalar(conn, "SHOW shared_buffers")

    write_result(
        "queries",
        {
            "postgres": server,
            "shared_buffers": shared_buffers,
            "target_p95_ms": TARGET_P95_MS,
            "setup": {
                "schools": SCHOOLS,
                "students_per_school": STUDENTS_PER_SCHOOL,
                "district_and_training_seconds": round(district_seconds, 1),
                "history_seconds": round(history_seconds, 1),
                "counts": counts,
            },
            "timing": "client side, execute + fetchall, one client, warm cache, loopback",
            **measured,
        },
    )


if __name__ == "__main__":
    main()
