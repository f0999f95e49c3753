"""Retention, applied by the nightly archive job: inactive students past the retention are
purged like a request purges them, and archived audit months past theirs are destroyed; each
destruction is recorded in the audit log."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest
from pydantic import SecretStr

from app.jobs.archive import export_csv
from app.jobs.lifecycle.retention import apply_retention
from app.model.artifacts import backend_for
from tests.app.conftest import District


def _count(url: str, query: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def test_inactive_students_past_the_retention_are_purged_and_recorded(
    untrained_district: District,
) -> None:
    d = untrained_district
    inactive = _count(d.url, "SELECT count(*) FROM students WHERE NOT is_active")
    active = _count(d.url, "SELECT count(*) FROM students WHERE is_active")
    assert inactive > 0 and active > 0
    settings = d.archiver.model_copy(
        update={
            "student_retention_years": 5,
            # The purge login (migration 0023), as the archive CronJob holds it.
            "purge_database_url": SecretStr(d.login_url("ssp_purger")),
        }
    )
    # Nothing has expired yet.
    assert apply_retention(settings).students == 0

    result = apply_retention(settings, today=date(2045, 1, 1))

    assert result.students == inactive and result.rows["students"] == inactive
    assert _count(d.url, "SELECT count(*) FROM students") == active
    assert _count(d.url, "SELECT count(*) FROM students WHERE NOT is_active") == 0
    assert _count(d.url, "SELECT count(*) FROM student_tombstones") == inactive
    records = _count(d.url, "SELECT count(*) FROM audit_log WHERE action = 'purge_retention'")
    assert records >= 1
    assert (
        _count(
            d.url,
            "SELECT sum((detail -> 'rows_deleted' ->> 'students')::int) FROM audit_log"
            " WHERE action = 'purge_retention'",
        )
        == inactive
    )


def test_student_retention_needs_the_purge_logins_url(untrained_district: District) -> None:
    settings = untrained_district.archiver.model_copy(update={"student_retention_years": 5})
    with pytest.raises(ValueError, match="PURGE_DATABASE_URL"):
        apply_retention(settings)


def test_archived_audit_months_past_the_retention_are_destroyed_and_recorded(
    untrained_district: District,
) -> None:
    d = untrained_district
    backend = backend_for(d.archiver.archive_store_url)
    row = (1, "2020-01-15 10:00:00+00", 1, 1, 5, "read_student_risk", "{}")
    backend.write("audit_log/2020/audit_log_p2020_01.csv.gz", export_csv([row]))
    backend.write("audit_log/2026/audit_log_p2026_01.csv.gz", export_csv([row]))
    settings = d.archiver.model_copy(update={"audit_archive_retention_years": 3})

    result = apply_retention(settings, today=date(2026, 12, 7))

    assert result.audit_months_destroyed == ["audit_log/2020/audit_log_p2020_01.csv.gz"]
    assert backend.list_keys("audit_log/") == ["audit_log/2026/audit_log_p2026_01.csv.gz"]
    assert (
        _count(d.url, "SELECT count(*) FROM audit_log WHERE action = 'destroy_audit_archive'") == 1
    )
