"""One synthetic school's rows (`generate.py` loads a district of them): classrooms, staff,
students, their attendance, marks and incidents per school year, open cases, and their
protected attributes.

A latent risk z per student drives absences, low marks, incidents and dropping out. The
generator `rng` is drawn from in a fixed order, so the same seed gives the same district; what
came later (protected attributes, several years, a planted disparity) draws from a generator of
its own, so one school year without a disparity is the district it always was."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import psycopg

from app.jobs.generate_people import (
    Demographics,
    cohorts,
    draw_demographics,
    load_demographics,
    people_rng,
    plant_absences,
    plant_low_marks,
)

FIRST_NAMES = ("Ava", "Liam", "Maya", "Noah", "Zoe", "Omar", "Iris", "Leo", "Nia", "Kai", "Ana",
               "Eli")  # fmt: skip
LAST_NAMES = ("Garcia", "Smith", "Nguyen", "Okafor", "Kim", "Patel", "Rossi", "Cohen", "Silva",
              "Haddad")  # fmt: skip
SUBJECTS = ("maths", "reading", "science", "history", "writing", "languages")
INCIDENT_CATEGORIES = ("disruption", "tardiness", "conflict", "truancy")
TERM_START = date(2025, 9, 1)  # the current school year's first day
YEAR_DRIFT = 0.5  # how much a student's latent risk moves from one school year to the next


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def dropout_per_grade(school_contrast: float, grading: float) -> float:
    """How much a school's dropout (in log-odds) rises per grade. `school_contrast` > 1 makes
    it differ per school: in some dropping out concentrates in the upper grades, in others in
    the lower ones. A district model averages that away; a school's own model learns its
    school's: the case where per-school models beat the district model. 1 (the default)
    gives 0 everywhere and the same rows per seed as before the setting existed."""
    return (school_contrast - 1) * grading / 10


@dataclass(frozen=True)
class School:
    """One school to load: its id, its sizes, the district's seed and school days."""

    id: int
    students: int
    exams: int
    seed: int
    terms: list[list[date]]  # each school year's days, the current one last
    disparity: float = 0.0

    @property
    def days(self) -> list[date]:
        return self.terms[-1]


def load_school(
    cur: psycopg.Cursor[Any],
    rng: np.random.Generator,
    school: School,
    ids: dict[str, int],
    school_contrast: float,
) -> dict[str, int]:
    """Load one school's rows; advances `ids` past them. The rows of attendance, marks and
    incidents."""
    n = school.students
    shift = rng.normal(0, 0.3)  # some schools are harder places to stay in
    grading = rng.normal(0, 5)  # and grade harder, unrelated to risk
    by_grade = dropout_per_grade(school_contrast, grading)
    z = rng.normal(shift, 1.0, n)
    grade = rng.integers(6, 13, n)
    dropped = rng.random(n) < sigmoid(-2.3 + 1.7 * z + by_grade * (grade - 9))

    classroom0, student0, staff0 = ids["classrooms"], ids["students"], ids["staff"]
    ids["classrooms"] += 7
    ids["students"] += n
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
    people = people_rng(school.seed, sid)
    years = len(school.terms)
    last = cohorts(people, n, years) if years > 1 else np.zeros(n, dtype=np.int64)
    with cur.copy(
        "COPY students (id, school_id, classroom_id, first_name, last_name, grade,"
        " enrolled_on, is_active, dropped_out) FROM STDIN"
    ) as cp:
        for k in range(n):
            g = int(grade[k])
            name = (FIRST_NAMES[firsts[k]], LAST_NAMES[lasts[k]])
            first_year = max(0, int(last[k]) - 1)
            enrolled = school.terms[first_year][0] if years > 1 else TERM_START
            if years == 1:  # every outcome known; those who stayed are enrolled
                active, outcome = not dropped[k], bool(dropped[k])
            elif last[k] == years - 1:  # the current year: enrolled, outcome open
                active, outcome = True, None
            else:  # left in an earlier year, outcome known
                active, outcome = False, bool(dropped[k])
            cp.write_row(
                (student0 + k, sid, classroom0 + g - 6, *name, g, enrolled, active, outcome)
            )
    student_ids = np.arange(student0, student0 + n)
    demographics = draw_demographics(people, z)
    load_demographics(cur, sid, student_ids.tolist(), demographics)
    totals = {"attendance": 0, "marks": 0, "incidents": 0}
    # A student's risk in the year before their last drifts from the last year's.
    drift = people.normal(0, YEAR_DRIFT, n) if years > 1 else np.zeros(n)
    for t, days in enumerate(school.terms):
        here = (last == t) | (last == t + 1)  # a student's last year and the one before
        z_t = np.where(last == t, z, z + drift)
        year = _Year(sid, days, ids["exams"], school.exams)
        ids["exams"] += school.exams
        year_rows = _load_year(
            cur, rng, year, student_ids[here], z_t[here], grading,
            _Bias(people, demographics, here, school.disparity),
        )  # fmt: skip
        for table, rows in year_rows.items():
            totals[table] += rows
    current = last == years - 1
    _load_open_cases(cur, (sid, student_ids[current]), staff0, z[current], school.days)
    return totals


@dataclass(frozen=True)
class _Year:
    school_id: int
    days: list[date]
    exam0: int
    exams: int


@dataclass(frozen=True)
class _Bias:
    """The planted disparity: the share of the affected group's present days recorded absent,
    and their marks recorded lower (plant_low_marks)."""

    rng: np.random.Generator
    demographics: Demographics
    here: np.ndarray
    rate: float

    def affected(self) -> np.ndarray:
        return self.demographics.in_disparity_group()[self.here]


def _load_year(
    cur: psycopg.Cursor[Any],
    rng: np.random.Generator,
    year: _Year,
    students: np.ndarray,
    z: np.ndarray,
    grading: float,
    bias: _Bias,
) -> dict[str, int]:
    return {
        "attendance": _load_attendance(cur, rng, year, students, z, bias),
        "marks": _load_marks(cur, rng, year, students, z, grading, bias),
        "incidents": _load_incidents(cur, rng, year, students, z),
    }


def _load_attendance(
    cur: psycopg.Cursor[Any],
    rng: np.random.Generator,
    year: _Year,
    students: np.ndarray,
    z: np.ndarray,
    bias: _Bias,
) -> int:
    """Attendance: absence and lateness rise with latent risk."""
    n, days = len(z), len(year.days)
    u = rng.random((n, days))
    p_abs = sigmoid(-2.9 + 0.9 * z)[:, None]
    p_late = 0.04 + 0.03 * sigmoid(z)[:, None]
    status = np.where(u < p_abs, 2, np.where(u < p_abs + p_late, 1, 0))
    excused = (rng.random((n, days)) < 0.015) & (status == 2)
    status[excused] = 3
    plant_absences(bias.rng, status, bias.affected(), bias.rate)
    labels = ("present", "late", "absent", "excused")
    with cur.copy("COPY attendance (school_id, student_id, date, status) FROM STDIN") as cp:
        for k, st in enumerate(students.tolist()):
            for d_i, s in enumerate(status[k].tolist()):
                cp.write_row((year.school_id, st, year.days[d_i], labels[s]))
    return n * days


def _load_marks(
    cur: psycopg.Cursor[Any],
    rng: np.random.Generator,
    year: _Year,
    students: np.ndarray,
    z: np.ndarray,
    grading: float,
    bias: _Bias,
) -> int:
    """Marks: lower with risk, plus a school-wide grading offset (and the planted bias)."""
    n, days, exams = len(z), len(year.days), year.exams
    with cur.copy("COPY exams (id, school_id, subject, held_on, max_marks) FROM STDIN") as cp:
        for e in range(exams):
            held = year.days[min(days - 1, (e + 1) * days // (exams + 1))]
            cp.write_row((year.exam0 + e, year.school_id, SUBJECTS[e % len(SUBJECTS)], held, 100))
    marks = np.clip(72 - 11 * z[:, None] + grading + rng.normal(0, 12, (n, exams)), 0, 100)
    marks = plant_low_marks(marks, bias.affected(), bias.rate).round(1)
    with cur.copy("COPY marks (school_id, student_id, exam_id, marks_obtained) FROM STDIN") as cp:
        for k, st in enumerate(students.tolist()):
            for e, m in enumerate(marks[k].tolist()):
                cp.write_row((year.school_id, st, year.exam0 + e, m))
    return n * exams


def _load_incidents(
    cur: psycopg.Cursor[Any],
    rng: np.random.Generator,
    year: _Year,
    students: np.ndarray,
    z: np.ndarray,
) -> int:
    """Behaviour incidents: more and more severe with risk."""
    days = len(year.days)
    counts = rng.poisson(np.exp(-1.3 + 0.9 * z))
    with cur.copy(
        "COPY behaviour_incidents (school_id, student_id, occurred_at, severity, category)"
        " FROM STDIN"
    ) as cp:
        for k in np.nonzero(counts)[0].tolist():
            for _ in range(int(counts[k])):
                day = year.days[int(rng.integers(0, days))]
                severe = rng.random() < sigmoid(np.array(z[k] - 1.5)).item()
                severity = 3 if severe else int(rng.integers(1, 3))
                category = INCIDENT_CATEGORIES[int(rng.integers(0, len(INCIDENT_CATEGORIES)))]
                at = datetime(day.year, day.month, day.day, 10)
                cp.write_row((year.school_id, int(students[k]), at, severity, category))
    return int(counts.sum())


def _load_open_cases(
    cur: psycopg.Cursor[Any],
    first: tuple[int, np.ndarray],
    form_master: int,
    z: np.ndarray,
    school_days: list[date],
) -> None:
    """A few open cases and alerts of the riskiest students, assigned to the school's form
    master: a form master's work queue (cases and alerts by assignee and status, the lists
    the (assigned_to, status, ...) indexes of migration 0002 serve)."""
    sid, students = first
    worst = np.argsort(-z)[: max(1, len(z) // 50)].tolist()
    with cur.copy(
        "COPY interventions (school_id, student_id, assigned_to, status) FROM STDIN"
    ) as cp:
        for k in worst:
            cp.write_row((sid, int(students[k]), form_master, "open"))
    with cur.copy(
        "COPY alerts (school_id, student_id, assigned_to, status, alert_date, risk) FROM STDIN"
    ) as cp:
        for k in worst:
            cp.write_row((sid, int(students[k]), form_master, "open", school_days[-1], 0.9))
