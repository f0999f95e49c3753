"""The ABC indicators at their cut points: hand-built students' records on embedded
PostgreSQL, the figures the refresh computes (student_indicators), the flags the API shows
(app.core.indicators.evaluate) and the at-risk list's SQL filters, which must agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.core import db
from app.core.db import Tenant
from app.core.indicators import CutPoints, evaluate, filter_sql
from app.core.settings import Settings
from tests.app.conftest import District
from tests.app.helpers import SyncDatabase

START = date(2025, 9, 1)  # school year 2026 (July start)


def add_student(
    conn: psycopg.Connection[Any],
    days: int,
    absent: int,
    marks: dict[str, float],
    incidents: list[str],
) -> int:
    """A student of school 1 with `days` attendance records (the first `absent` of them
    absent), one exam per subject with its mark in percent, and the incidents' categories."""
    row = conn.execute(
        "INSERT INTO students (school_id, first_name, last_name, grade, enrolled_on)"
        " VALUES (1, 'Fixture', 'Student', 9, %s) RETURNING id",
        (START,),
    ).fetchone()
    assert row is not None
    sid = int(row[0])
    conn.execute(
        "INSERT INTO attendance (school_id, student_id, date, status)"
        " SELECT 1, %s, %s::date + d, CASE WHEN d < %s THEN 'absent' ELSE 'present' END"
        " FROM generate_series(0, %s - 1) d",
        (sid, START, absent, days),
    )
    for subject, mark in marks.items():
        exam = conn.execute(
            "INSERT INTO exams (school_id, subject, held_on, max_marks)"
            " VALUES (1, %s, %s, 100) RETURNING id",
            (subject, START + timedelta(days=30)),
        ).fetchone()
        assert exam is not None
        conn.execute(
            "INSERT INTO marks (school_id, student_id, exam_id, marks_obtained)"
            " VALUES (1, %s, %s, %s)",
            (sid, exam[0], mark),
        )
    for category in incidents:
        conn.execute(
            "INSERT INTO behaviour_incidents (school_id, student_id, occurred_at, severity,"
            " category) VALUES (1, %s, %s, 1, %s)",
            (sid, START + timedelta(days=10), category),
        )
    return sid


FIXTURES = {
    # 18 of 180 days absent: chronic (10 %); 90 % attended, on track (88 %); one maths mark
    # of 60 %: failing maths, course at risk; 3 incidents: behaviour early warning.
    "chronic": dict(days=180, absent=18, marks={"Maths": 60}, incidents=["disruption"] * 3),
    # 17 of 180: not chronic; 90.6 % on track; English at 70: early warning; none: on track.
    "not_chronic": dict(days=180, absent=17, marks={"Reading": 70, "Maths": 80}, incidents=[]),
    # 85 enrolled days: excluded from chronic absence; 20 absent: 76.5 %, attendance at risk;
    # one suspension: behaviour at risk; no maths or English mark: no course level.
    "short_enrolment": dict(days=85, absent=20, marks={"Science": 30}, incidents=["Suspension"]),
    # 87 % attended: early warning; 6 incidents: at risk (more than 5); maths exactly 65: not
    # failing (at risk is under 65) but under 72, early warning; English 72: not under 72.
    "edges": dict(days=100, absent=13, marks={"math": 65, "English": 72}, incidents=["x"] * 6),
}


@pytest.fixture(scope="module")
def own(
    new_district: Callable[[Path, bool], District], tmp_path_factory: pytest.TempPathFactory
) -> District:
    """An untrained district of this module's own: the fixtures add students to school 1."""
    return new_district(tmp_path_factory.mktemp("indicators"), False)


@pytest.fixture(scope="module")
def built(own: District) -> dict[str, int]:
    with db.connect_owner(own.owner) as conn:
        for table in ("students", "attendance", "exams", "marks", "behaviour_incidents"):
            conn.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        ids = {name: add_student(conn, **spec) for name, spec in FIXTURES.items()}  # type: ignore[arg-type]
        for table in ("students", "attendance", "exams", "marks", "behaviour_incidents"):
            conn.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        conn.commit()
        db.refresh_features(conn, None)
        conn.commit()
    return ids


@pytest.fixture(scope="module")
def rows(own: District, built: dict[str, int]) -> dict[str, dict[str, Any]]:
    database = SyncDatabase(own.settings)
    try:
        found = database.fetch(
            Tenant(school_id=1),
            "SELECT * FROM student_indicators_visible WHERE student_id = ANY(%s) AND is_current",
            (list(built.values()),),
        )
    finally:
        database.close()
    by_id = {r["student_id"]: r for r in found}
    return {name: by_id[sid] for name, sid in built.items()}


CUTS = CutPoints.from_settings(Settings())


def test_figures_are_counted_per_school_year(rows: dict[str, dict[str, Any]]) -> None:
    chronic = rows["chronic"]
    assert (chronic["school_year"], chronic["enrolled_days"], chronic["absent_days"]) == (
        2026, 180, 18
    )  # fmt: skip
    assert chronic["subject_marks"] == {"maths": 60}
    assert rows["short_enrolment"]["incident_categories"] == {"suspension": 1}


def test_flags_at_each_cut_point(rows: dict[str, dict[str, Any]]) -> None:
    got = {name: evaluate(row, CUTS) for name, row in rows.items()}
    assert got["chronic"] is not None and got["not_chronic"] is not None
    assert got["short_enrolment"] is not None and got["edges"] is not None
    assert got["chronic"]["attendance"]["chronic_absence"] is True
    assert got["chronic"]["attendance"]["level"] == "on_track"
    assert got["chronic"]["course"] == {
        "level": "at_risk", "maths": 60.0, "english": None,
        "failing_maths": True, "failing_english": None,
    }  # fmt: skip
    assert got["chronic"]["behaviour"]["level"] == "early_warning"
    assert got["not_chronic"]["attendance"]["chronic_absence"] is False
    assert got["not_chronic"]["course"]["level"] == "early_warning"
    assert got["not_chronic"]["behaviour"]["level"] == "on_track"
    short = got["short_enrolment"]
    assert short["attendance"]["chronic_absence"] is None  # 85 days: excluded
    assert short["attendance"]["level"] == "at_risk"
    assert short["behaviour"] == {"level": "at_risk", "incidents": 1, "suspensions": 1}
    assert short["course"]["level"] is None
    edges = got["edges"]
    assert edges["attendance"]["level"] == "early_warning"
    assert edges["behaviour"]["level"] == "at_risk"
    assert edges["course"]["level"] == "early_warning"
    assert (edges["course"]["failing_maths"], edges["course"]["failing_english"]) == (False, False)


@pytest.mark.parametrize("indicator", ["attendance", "behaviour", "course", "chronic_absence"])
@pytest.mark.parametrize("level", ["at_risk", "early_warning"])
def test_sql_filters_keep_exactly_the_flagged_students(
    own: District, built: dict[str, int], rows: dict[str, dict[str, Any]],
    indicator: str, level: str,
) -> None:  # fmt: skip
    condition, params = filter_sql(indicator, level, CUTS)  # type: ignore[arg-type]
    database = SyncDatabase(own.settings)
    try:
        found = database.fetch(
            Tenant(school_id=1),
            f"SELECT i.student_id FROM student_indicators_visible i WHERE i.is_current"
            f" AND i.student_id = ANY(%s) AND {condition}",
            (list(built.values()), *params),
        )
    finally:
        database.close()
    worse = {"at_risk"} if level == "at_risk" else {"at_risk", "early_warning"}
    expected = set()
    for name, row in rows.items():
        flags = evaluate(row, CUTS)
        assert flags is not None
        if indicator == "chronic_absence":
            hit = flags["attendance"]["chronic_absence"] is True
        else:
            hit = flags[indicator]["level"] in worse
        if hit:
            expected.add(built[name])
    assert {r["student_id"] for r in found} == expected


def test_contradicting_cut_points_are_refused() -> None:
    with pytest.raises(ValueError, match="INDICATOR_ATTENDANCE_AT_RISK"):
        Settings(indicator_attendance_at_risk=0.9, indicator_attendance_early_warning=0.8)
    with pytest.raises(ValueError, match="INTERVENTION_TYPES"):
        Settings(intervention_types="Tutoring!")
