"""Synthetic district: N schools x M students whose records correlate with dropout.

A latent risk per student drives absences, low marks, incidents and the dropout label, so a
model can learn real signal. The same seed gives the same district. Rows are bulk-loaded with
COPY in one transaction, as the schema owner.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from tqdm import tqdm

from app.core.db import refresh_features

log = logging.getLogger("app.generate")

FIRST_NAMES = (
    "Ava",
    "Liam",
    "Maya",
    "Noah",
    "Zoe",
    "Omar",
    "Iris",
    "Leo",
    "Nia",
    "Kai",
    "Ana",
    "Eli",
)
LAST_NAMES = (
    "Garcia",
    "Smith",
    "Nguyen",
    "Okafor",
    "Kim",
    "Patel",
    "Rossi",
    "Cohen",
    "Silva",
    "Haddad",
)
SUBJECTS = ("maths", "reading", "science", "history", "writing", "languages")
INCIDENT_CATEGORIES = ("disruption", "tardiness", "conflict", "truancy")
TERM_START = date(2025, 9, 1)


@dataclass(frozen=True)
class GenerateResult:
    district_id: int
    schools: int
    students: int
    attendance_rows: int
    marks_rows: int
    incidents: int
    seconds: float


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _school_days(n: int) -> list[date]:
    days: list[date] = []
    d = TERM_START
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


def _dropout_per_grade(school_contrast: float, grading: float) -> float:
    """How much a school's dropout (in log-odds) rises per grade. `school_contrast` > 1 makes
    it differ per school: in some dropping out concentrates in the upper grades, in others in
    the lower ones. A district model averages that away; a school's own model learns its
    school's: the case where per-school models beat the district model. 1 (the default)
    gives 0 everywhere and the same rows per seed as before the setting existed."""
    return (school_contrast - 1) * grading / 10


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
) -> GenerateResult:
    """Create one district and load it (`conn`: an owner's, not autocommit)."""
    started = time.perf_counter()
    _force_row_security(conn, False)  # first: max(id) below must see every school's rows
    rng = np.random.default_rng(seed)
    school_days = _school_days(days)
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
        school = _School(sid, students_per_school, exams_per_school, seed, school_days)
        loaded = _load_school(conn.cursor(), rng, school, ids, school_contrast)
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
    refresh_features(conn)
    conn.autocommit = False
    seconds = time.perf_counter() - started
    log.info("district generated", extra={**result.__dict__, "seconds": round(seconds, 2)})
    return GenerateResult(**{**result.__dict__, "seconds": seconds})


@dataclass(frozen=True)
class _School:
    """One school to load: its id, its sizes, the district's seed and school days."""

    id: int
    students: int
    exams: int
    seed: int
    days: list[date]


def _load_school(
    cur: psycopg.Cursor[Any],
    rng: np.random.Generator,
    school: _School,
    ids: dict[str, int],
    school_contrast: float,
) -> dict[str, int]:
    """Load one school's rows, drawing from `rng` in a fixed order (the same seed gives the
    same district); advances `ids` past them. The rows of attendance, marks and incidents."""
    n = school.students
    shift = rng.normal(0, 0.3)  # some schools are harder places to stay in
    grading = rng.normal(0, 5)  # and grade harder, unrelated to risk
    by_grade = _dropout_per_grade(school_contrast, grading)
    z = rng.normal(shift, 1.0, n)
    grade = rng.integers(6, 13, n)
    dropped = rng.random(n) < _sigmoid(-2.3 + 1.7 * z + by_grade * (grade - 9))

    classroom0, student0, exam0, staff0 = (
        ids["classrooms"], ids["students"], ids["exams"], ids["staff"]
    )  # fmt: skip
    ids["classrooms"] += 7
    ids["students"] += n
    ids["exams"] += school.exams
    ids["staff"] += 3
    sid = school.id
    with cur.copy("COPY classrooms (id, school_id, name, grade) FROM STDIN") as cp:
        for g in range(6, 13):
            cp.write_row((classroom0 + g - 6, sid, f"Grade {g}", g))
    with cur.copy("COPY staff (id, school_id, name, email, role) FROM STDIN") as cp:
        for k, role in enumerate(("form_master", "counsellor", "teacher")):
            email = f"{role}.{sid}.{school.seed}@example.org"
            cp.write_row((staff0 + k, sid, f"{role} {sid}", email, role))
    firsts = rng.integers(0, len(FIRST_NAMES), n)
    lasts = rng.integers(0, len(LAST_NAMES), n)
    with cur.copy(
        "COPY students (id, school_id, classroom_id, first_name, last_name, grade,"
        " enrolled_on, is_active, dropped_out) FROM STDIN"
    ) as cp:
        for k in range(n):
            g = int(grade[k])
            name = (FIRST_NAMES[firsts[k]], LAST_NAMES[lasts[k]])
            alive = not dropped[k]
            cp.write_row(
                (student0 + k, sid, classroom0 + g - 6, *name, g, TERM_START, alive, not alive)
            )
    first = (sid, student0)
    attendance = _load_attendance(cur, rng, first, z, school.days)
    marks = _load_marks(cur, rng, first, exam0, z, grading, school)
    incidents = _load_incidents(cur, rng, first, z, school.days)
    _load_open_cases(cur, first, staff0, z, school.days)
    return {"attendance": attendance, "marks": marks, "incidents": incidents}


def _load_attendance(
    cur: psycopg.Cursor[Any],
    rng: np.random.Generator,
    first: tuple[int, int],
    z: np.ndarray,
    school_days: list[date],
) -> int:
    """Attendance: absence and lateness rise with latent risk."""
    sid, student0 = first
    n, days = len(z), len(school_days)
    u = rng.random((n, days))
    p_abs = _sigmoid(-2.9 + 0.9 * z)[:, None]
    p_late = 0.04 + 0.03 * _sigmoid(z)[:, None]
    status = np.where(u < p_abs, 2, np.where(u < p_abs + p_late, 1, 0))
    excused = (rng.random((n, days)) < 0.015) & (status == 2)
    status[excused] = 3
    labels = ("present", "late", "absent", "excused")
    with cur.copy("COPY attendance (school_id, student_id, date, status) FROM STDIN") as cp:
        for k in range(n):
            st = student0 + k
            for d_i, s in enumerate(status[k].tolist()):
                cp.write_row((sid, st, school_days[d_i], labels[s]))
    return n * days


def _load_marks(
    cur: psycopg.Cursor[Any],
    rng: np.random.Generator,
    first: tuple[int, int],
    exam0: int,
    z: np.ndarray,
    grading: float,
    school: _School,
) -> int:
    """Marks: lower with risk, plus a school-wide grading offset."""
    sid, student0 = first
    n, days, exams = len(z), len(school.days), school.exams
    with cur.copy("COPY exams (id, school_id, subject, held_on, max_marks) FROM STDIN") as cp:
        for e in range(exams):
            held = school.days[min(days - 1, (e + 1) * days // (exams + 1))]
            cp.write_row((exam0 + e, sid, SUBJECTS[e % len(SUBJECTS)], held, 100))
    marks = np.clip(72 - 11 * z[:, None] + grading + rng.normal(0, 12, (n, exams)), 0, 100).round(1)
    with cur.copy("COPY marks (school_id, student_id, exam_id, marks_obtained) FROM STDIN") as cp:
        for k in range(n):
            for e, m in enumerate(marks[k].tolist()):
                cp.write_row((sid, student0 + k, exam0 + e, m))
    return n * exams


def _load_incidents(
    cur: psycopg.Cursor[Any],
    rng: np.random.Generator,
    first: tuple[int, int],
    z: np.ndarray,
    school_days: list[date],
) -> int:
    """Behaviour incidents: more and more severe with risk."""
    sid, student0 = first
    days = len(school_days)
    counts = rng.poisson(np.exp(-1.3 + 0.9 * z))
    with cur.copy(
        "COPY behaviour_incidents (school_id, student_id, occurred_at, severity, category)"
        " FROM STDIN"
    ) as cp:
        for k in np.nonzero(counts)[0].tolist():
            for _ in range(int(counts[k])):
                day = school_days[int(rng.integers(0, days))]
                severe = rng.random() < _sigmoid(np.array(z[k] - 1.5)).item()
                severity = 3 if severe else int(rng.integers(1, 3))
                category = INCIDENT_CATEGORIES[int(rng.integers(0, len(INCIDENT_CATEGORIES)))]
                at = datetime(day.year, day.month, day.day, 10)
                cp.write_row((sid, student0 + k, at, severity, category))
    return int(counts.sum())


def _load_open_cases(
    cur: psycopg.Cursor[Any],
    first: tuple[int, int],
    form_master: int,
    z: np.ndarray,
    school_days: list[date],
) -> None:
    """A few open cases and alerts of the riskiest students, assigned to the school's form
    master: a form master's work queue (cases and alerts by assignee and status, the lists
    the (assigned_to, status, ...) indexes of migration 0002 serve)."""
    sid, student0 = first
    worst = np.argsort(-z)[: max(1, len(z) // 50)].tolist()
    with cur.copy(
        "COPY interventions (school_id, student_id, assigned_to, status) FROM STDIN"
    ) as cp:
        for k in worst:
            cp.write_row((sid, student0 + k, form_master, "open"))
    with cur.copy(
        "COPY alerts (school_id, student_id, assigned_to, status, alert_date, risk) FROM STDIN"
    ) as cp:
        for k in worst:
            cp.write_row((sid, student0 + k, form_master, "open", school_days[-1], 0.9))
