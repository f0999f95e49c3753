"""The form-master dashboard's statement (benchmarks.queries.DASHBOARD_SQL), which matches the
school's at-risk scores to its students by grouping rather than by a join so that it stays fast
at 1,000 schools, answers exactly what the join it was first written as (DASHBOARD_JOIN_SQL)
answers: under row-level security as ssp_api, on the generated district plus the cases the
generator does not make. The one difference, by design: a district tenant's dashboard of a
school counts only the scores filed under that school."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from app.core.logins import API_LOGIN
from app.model.artifacts import ModelStore
from benchmarks.queries import DASHBOARD_JOIN_SQL, DASHBOARD_SQL
from tests.app.conftest import District

# Run as the superuser before the comparison, in the transaction that is rolled back.
# %(gen)s is the served generation, %(floor)s the alert threshold.
EDGE_CASES = [
    # Active students without a score in the served generation (a student enrolled since).
    "DELETE FROM risk_scores WHERE generation = %(gen)s AND student_id IN"
    " (SELECT id FROM students WHERE is_active ORDER BY id LIMIT 15)",
    # Scores exactly at the threshold, and just under it.
    "UPDATE risk_scores SET risk = %(floor)s::real WHERE generation = %(gen)s AND student_id IN"
    " (SELECT student_id FROM risk_scores WHERE generation = %(gen)s"
    "  ORDER BY student_id LIMIT 10 OFFSET 20)",
    "UPDATE risk_scores SET risk = %(floor)s::real - 0.0001 WHERE generation = %(gen)s"
    " AND student_id IN (SELECT student_id FROM risk_scores WHERE generation = %(gen)s"
    "  ORDER BY student_id LIMIT 10 OFFSET 30)",
    # Students who left with an at-risk score.
    "UPDATE students SET is_active = false WHERE id IN"
    " (SELECT student_id FROM risk_scores WHERE generation = %(gen)s AND risk >= %(floor)s::real"
    "  ORDER BY student_id DESC LIMIT 10)",
    # Another generation's scores (the next run's, not served yet), all at risk.
    "INSERT INTO risk_scores (generation, student_id, school_id, risk, model_version)"
    " SELECT %(gen)s + 1, id, school_id, 0.99, 'next' FROM students",
]


def dashboard(
    conn: psycopg.Connection[Any], query: str, tenant: tuple[str, int], params: dict[str, Any]
) -> Any:
    """The dashboard as ssp_api sees it with `tenant` (('school' | 'district', id)) set."""
    kind, tenant_id = tenant
    conn.execute(
        "SELECT set_config('app.school_id', %s, true), set_config('app.district_id', %s, true)",
        (str(tenant_id) if kind == "school" else "", str(tenant_id) if kind == "district" else ""),
    )
    return conn.execute(query, params).fetchall()


@pytest.fixture
def edited(district: District) -> Iterator[tuple[psycopg.Connection[Any], dict[str, Any]]]:
    """A superuser's transaction over the shared district with EDGE_CASES applied, rolled back
    at the end; and the dashboard's parameters but the school."""
    params = {
        "gen": ModelStore(district.settings.model_store_url).pointer().generation,
        "floor": district.settings.alert_threshold,
    }
    with psycopg.connect(district.url) as conn:
        for statement in EDGE_CASES:
            conn.execute(statement, params)
        yield conn, params
        conn.rollback()


def move_at_risk_student(
    conn: psycopg.Connection[Any], params: dict[str, Any], to_school: int
) -> None:
    """As the superuser: an at-risk student of school 2 moves to `to_school` after scoring."""
    conn.execute("RESET ROLE")
    conn.execute(
        "UPDATE students SET school_id = %(to)s WHERE id ="
        " (SELECT min(student_id) FROM risk_scores WHERE generation = %(gen)s AND school_id = 2"
        "  AND risk >= %(floor)s::real)",
        {**params, "to": to_school},
    )


def compare(
    conn: psycopg.Connection[Any], params: dict[str, Any], cases: list[tuple[tuple[str, int], int]]
) -> list[Any]:
    """Both statements for each (tenant, school) as ssp_api; returns the dashboards."""
    conn.execute(f"SET LOCAL ROLE {API_LOGIN}")
    found = []
    for tenant, school in cases:
        args = {**params, "school": school}
        ours = dashboard(conn, DASHBOARD_SQL, tenant, args)
        assert ours == dashboard(conn, DASHBOARD_JOIN_SQL, tenant, args), (tenant, school)
        found.append(ours[0])
    return found


def test_dashboard_matches_the_join_for_each_school(
    edited: tuple[psycopg.Connection[Any], dict[str, Any]],
) -> None:
    conn, params = edited
    # Row-level security hides the score of a student moved since scoring (still filed under
    # its old school) from the new school's tenant: both count the student as unscored there.
    move_at_risk_student(conn, params, to_school=3)
    boards = compare(conn, params, [(("school", s), s) for s in range(1, 6)])
    for active, at_risk, open_alerts, _, open_cases, _, by_grade in boards:
        assert at_risk < active and open_alerts > 0 and open_cases > 0
        assert sum(g["students"] for g in by_grade) == active
    assert sum(board[1] for board in boards) > 0
    # Another school's dashboard is empty to a school tenant, in both.
    ((active, at_risk, *_, by_grade),) = compare(conn, params, [(("school", 2), 1)])
    assert (active, at_risk, by_grade) == (None, None, None)


def test_dashboard_matches_the_join_for_a_district_tenant(
    edited: tuple[psycopg.Connection[Any], dict[str, Any]],
) -> None:
    conn, params = edited
    cases = [(("district", 1), s) for s in range(1, 5)] + [(("district", 2), 5)]
    assert sum(board[1] for board in compare(conn, params, cases)) > 0
    # By design, not the join's answer: a district tenant's dashboard of a school counts the
    # school's own scores only, not one the served generation filed under another school.
    move_at_risk_student(conn, params, to_school=3)
    conn.execute(f"SET LOCAL ROLE {API_LOGIN}")
    args = {**params, "school": 3}
    ((active, at_risk, *rest),) = dashboard(conn, DASHBOARD_SQL, ("district", 1), args)
    ((join_active, join_at_risk, *join_rest),) = dashboard(
        conn, DASHBOARD_JOIN_SQL, ("district", 1), args
    )
    assert (active, at_risk + 1, rest[:4]) == (join_active, join_at_risk, join_rest[:4])
