"""Synthetic district: reproducible by seed, bulk loaded, signals correlated with dropout."""

from __future__ import annotations

from collections.abc import Callable

from app.core import db
from app.core.settings import Settings
from app.jobs.generate import generate
from tests.app.conftest import District
from tests.app.helpers import PEPPER, scalar

FINGERPRINT = (
    "SELECT md5(string_agg(concat_ws(',', student_id, school_id, attendance_rate, avg_mark,"
    " incidents, dropped_out), ';' ORDER BY student_id)) FROM student_features"
)


def load(url: str, seed: int) -> None:
    settings = Settings(environment="test", database_url=url, api_key_pepper=PEPPER)
    db.migrate(settings)
    with db.connect_owner(settings) as conn:
        result = generate(
            conn, schools=2, students_per_school=40, seed=seed, days=20, progress=False
        )
    assert (result.students, result.attendance_rows, result.marks_rows) == (80, 1600, 480)


def test_same_seed_same_district(
    make_database: Callable[[], str], as_admin: Callable[[str], str]
) -> None:
    a, b, c = make_database(), make_database(), make_database()
    load(a, 3)
    load(b, 3)
    load(c, 4)
    # Looked at as the superuser: with FORCE ROW LEVEL SECURITY the master sees no tenant rows.
    a, b, c = as_admin(a), as_admin(b), as_admin(c)
    assert scalar(a, FINGERPRINT) == scalar(b, FINGERPRINT)
    assert scalar(a, FINGERPRINT) != scalar(c, FINGERPRINT)
    assert scalar(a, "SELECT count(*) FROM students") == 80


def test_district_rows_and_dropout_signals(untrained_district: District) -> None:
    # A district of its own: other tests post events (attendance) to the shared one.
    url = untrained_district.url
    assert scalar(url, "SELECT count(*) FROM schools") == 5
    assert scalar(url, "SELECT count(*) FROM students") == 4 * 150 + 60
    assert scalar(url, "SELECT count(*) FROM attendance") == (4 * 150 + 60) * 30
    rate = scalar(url, "SELECT avg(dropped_out::int)::float FROM students")
    assert 0.05 < rate < 0.35
    # Dropouts were absent more, scored lower and misbehaved more than those who stayed.
    query = (
        "SELECT avg({col}) FILTER (WHERE dropped_out) - avg({col}) FILTER (WHERE NOT dropped_out)"
        " FROM student_features"
    )
    assert scalar(url, query.format(col="absences")) > 1.0
    assert scalar(url, query.format(col="avg_mark")) < -5.0
    assert scalar(url, query.format(col="incidents")) > 0.2
    # The form masters' work queues (open cases and alerts by assignee) have rows.
    assert scalar(url, "SELECT count(*) FROM interventions WHERE status = 'open'") > 0
