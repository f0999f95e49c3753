"""Synthetic district: N schools x M students whose records correlate with dropout.

A latent risk per student drives absences, low marks, incidents and the dropout label, so a
model can learn real signal. The same seed gives the same district. Rows are bulk-loaded with
COPY in one transaction, as the schema owner.

With `years` > 1 the district spans several school years (terms from 1 September): each
student's last year is drawn, their records cover it and the year before; the students of
past years have left with their outcome known (dropped out, or not), those of the current
year are enrolled with their outcome open. Every student has protected attributes
(`generate_people.py`), and `disparity` plants a measurement bias against one group.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from tqdm import tqdm

from app.core.db import refresh_features
from app.jobs.generate_records import TERM_START, School, load_school

log = logging.getLogger("app.generate")


@dataclass(frozen=True)
class GenerateResult:
    district_id: int
    schools: int
    students: int
    attendance_rows: int
    marks_rows: int
    incidents: int
    seconds: float


def _school_days(n: int, start: date = TERM_START) -> list[date]:
    days: list[date] = []
    d = start
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days


def _next_id(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _sync_sequence(conn: psycopg.Connection[Any], table: str) -> None:
    conn.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
        f" (SELECT coalesce(max(id), 1) FROM {table}))"
    )


# The tables loaded here. Each has FORCE ROW LEVEL SECURITY (migration 0007), under which the
# owner is filtered like a tenant and COPY FROM is refused.
LOADED_TABLES = (
    "schools",
    "classrooms",
    "staff",
    "students",
    "exams",
    "marks",
    "attendance",
    "behaviour_incidents",
    "interventions",
    "alerts",
    "student_demographics",
)


def _force_row_security(conn: psycopg.Connection[Any], force: bool) -> None:
    """Lift (or restore) FORCE ROW LEVEL SECURITY on the loaded tables. Done inside the load's
    own transaction: DDL is transactional, so no other session ever sees the tables unforced
    (it waits on their locks meanwhile), and a failed load restores them with its rollback.
    Only the owner may; FORCE guards against a workload using the owner's login by mistake,
    not against the owner itself."""
    clause = sql.SQL("FORCE" if force else "NO FORCE")
    for table in LOADED_TABLES:
        conn.execute(
            sql.SQL("ALTER TABLE {} {} ROW LEVEL SECURITY").format(sql.Identifier(table), clause)
        )


def _skip_fk_triggers(conn: psycopg.Connection[Any]) -> None:
    """Skip per-row foreign-key triggers for this transaction: generated ids are consistent by
    construction, and the checks triple the load time. Needs superuser; else checks stay on."""
    try:
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        log.warning("cannot skip foreign-key checks during the load; it will be slower")


def _new_district(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("INSERT INTO districts (name) VALUES (%s) RETURNING id", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def generate(
    conn: psycopg.Connection[Any],
    schools: int = 50,
    students_per_school: int = 1000,
    seed: int = 7,
    days: int = 60,
    exams_per_school: int = 6,
    progress: bool = True,
    school_contrast: float = 1.0,
    years: int = 1,
    disparity: float = 0.0,
) -> GenerateResult:
    """Create one district and load it (`conn`: an owner's, not autocommit). `years` school
    years (the last the current one); `disparity`: the share of one group's present days
    recorded as absences, and their marks recorded that share of 40 points lower
    (generate_people.py)."""
    if years < 1 or not 0 <= disparity < 1:
        raise ValueError("years must be at least 1 and disparity from 0 to under 1")
    started = time.perf_counter()
    _force_row_security(conn, False)  # first: max(id) below must see every school's rows
    rng = np.random.default_rng(seed)
    terms = [
        _school_days(days, TERM_START.replace(year=TERM_START.year - (years - 1 - t)))
        for t in range(years)
    ]
    tables = ("schools", "classrooms", "staff", "students", "exams", "marks", "attendance")
    ids = {
        t: _next_id(conn, t) for t in (*tables, "behaviour_incidents", "interventions", "alerts")
    }
    district_id = _new_district(conn, f"District seed {seed}")
    totals = {"attendance": 0, "marks": 0, "incidents": 0}
    school_ids = list(range(ids["schools"], ids["schools"] + schools))
    conn.execute("SET LOCAL synchronous_commit = off")  # bulk load; one commit at the end
    _skip_fk_triggers(conn)
    with conn.cursor().copy("COPY schools (id, district_id, name) FROM STDIN") as cp:
        for i, sid in enumerate(school_ids):
            cp.write_row((sid, district_id, f"School {i + 1:03d} (seed {seed})"))

    bar = tqdm(school_ids, desc="generating schools", unit="school", disable=not progress)
    for sid in bar:
        school = School(sid, students_per_school, exams_per_school, seed, terms, disparity)
        loaded = load_school(conn.cursor(), rng, school, ids, school_contrast)
        for table, rows in loaded.items():
            totals[table] += rows
        bar.set_postfix(students=students_per_school)

    for t in (*tables, "behaviour_incidents", "interventions", "alerts"):
        _sync_sequence(conn, t)
    _force_row_security(conn, True)
    conn.commit()
    result = GenerateResult(
        district_id=district_id,
        schools=schools,
        students=schools * students_per_school,
        attendance_rows=totals["attendance"],
        marks_rows=totals["marks"],
        incidents=totals["incidents"],
        seconds=0.0,
    )
    conn.autocommit = True
    conn.execute("ANALYZE")
    refresh_features(conn, None)  # the calendar as migrated or last set by `train`
    conn.autocommit = False
    seconds = time.perf_counter() - started
    log.info("district generated", extra={**result.__dict__, "seconds": round(seconds, 2)})
    return GenerateResult(**{**result.__dict__, "seconds": seconds})
