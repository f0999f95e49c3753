"""Retention, applied by the nightly archive job (`python -m app archive`):

- students inactive for STUDENT_RETENTION_YEARS after their last enrolment or recorded
  activity (attendance, a mark's exam, an incident) are purged as a request would purge them
  (app/jobs/lifecycle/purge.py: every table, tombstone, destruction record in the audit log,
  cached answers), with the reason 'retention' and 'retention policy' as who asked;
- archived audit months that ended AUDIT_ARCHIVE_RETENTION_YEARS ago are destroyed in the
  archive store, every version, and the destruction recorded in the audit log.

Deleting student records needs the purge login (PURGE_DATABASE_URL); the rest of the archive job
keeps running as the archiver."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg

from app.core.settings import Settings
from app.jobs.lifecycle.purge import (
    PurgeResult,
    Student,
    after_purge,
    owner_transaction,
    purge_students,
)
from app.model.artifacts import Backend

log = logging.getLogger("app.retention")

BATCH = 500  # students purged per transaction: bounded locks, bounded work lost on a failure
REQUESTED_BY = "retention policy"

# Inactive students whose last enrolment or activity is before %(cutoff)s.
EXPIRED = """
SELECT s.id, s.school_id, sc.district_id, s.sourced_id FROM students s
JOIN schools sc ON sc.id = s.school_id
WHERE NOT s.is_active AND s.enrolled_on < %(cutoff)s
  AND NOT EXISTS (SELECT 1 FROM attendance a WHERE a.student_id = s.id AND a.date >= %(cutoff)s)
  AND NOT EXISTS (SELECT 1 FROM marks m JOIN exams e ON e.id = m.exam_id
                  WHERE m.student_id = s.id AND e.held_on >= %(cutoff)s)
  AND NOT EXISTS (SELECT 1 FROM behaviour_incidents i
                  WHERE i.student_id = s.id AND i.occurred_at >= %(cutoff)s)
ORDER BY s.id LIMIT %(batch)s
"""


@dataclass
class RetentionResult:
    students: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    audit_months_destroyed: list[str] = field(default_factory=list)
    audit_versions_destroyed: int = 0


def years_before(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def purge_expired_students(
    settings: Settings, today: date, result: RetentionResult
) -> RetentionResult:
    """Purges the expired students, a batch per transaction, until none is left."""
    assert settings.student_retention_years is not None
    if settings.purge_database_url is None:
        raise ValueError("STUDENT_RETENTION_YEARS is set: PURGE_DATABASE_URL (the purge login) too")
    cutoff = years_before(today, settings.student_retention_years)
    url = settings.purge_database_url.get_secret_value()
    with psycopg.connect(url, connect_timeout=settings.db_connect_timeout) as conn:
        while True:
            with owner_transaction(conn):
                rows = conn.execute(EXPIRED, {"cutoff": cutoff, "batch": BATCH}).fetchall()
                students = [Student(*r) for r in rows]
                done = purge_students(
                    conn, students, REQUESTED_BY, "retention", settings.api_key_pepper
                )
            if not students:
                return result
            conn.autocommit = True
            after_purge(conn, settings, students, done)
            conn.autocommit = False
            _add(result, done)


def _add(result: RetentionResult, done: PurgeResult) -> None:
    result.students += done.students
    for table, n in done.rows.items():
        result.rows[table] = result.rows.get(table, 0) + n


def destroy_expired_archives(
    conn: psycopg.Connection[Any],
    backend: Backend,
    settings: Settings,
    today: date,
    result: RetentionResult,
) -> None:
    """Destroys archived months that ended before the cutoff (`conn`: the archiver's, which
    may append the destruction record to the audit log)."""
    assert settings.audit_archive_retention_years is not None
    cutoff = years_before(today, settings.audit_archive_retention_years)
    for key in backend.list_keys("audit_log/"):
        month = _month_end(key)
        if month is None or month > cutoff:
            continue
        objects, versions = backend.destroy(key)
        result.audit_months_destroyed.append(key)
        result.audit_versions_destroyed += versions
        detail = {"key": key, "objects": objects, "versions": versions, "reason": "retention"}
        with conn.transaction():
            conn.execute(
                "INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
                " VALUES (NULL, NULL, NULL, 'destroy_audit_archive', %s)",
                (json.dumps(detail),),
            )
        log.info("archived audit month destroyed", extra=detail)


def _month_end(key: str) -> date | None:
    """The first day after the month an archive key holds (audit_log_pYYYY_MM.csv.gz)."""
    name = key.rsplit("/", 1)[-1]
    if not name.startswith("audit_log_p") or not name.endswith(".csv.gz"):
        return None
    year, month = int(name[11:15]), int(name[16:18])
    return date(year + month // 12, month % 12 + 1, 1)


def apply_retention(settings: Settings, today: date | None = None) -> RetentionResult:
    """Both retentions that are set (after the night's archival)."""
    from datetime import UTC, datetime

    from app.core.db import connect_as
    from app.core.logins import ARCHIVER_LOGIN
    from app.model.artifacts import backend_for

    today = today or datetime.now(UTC).date()
    result = RetentionResult()
    if settings.student_retention_years is not None:
        purge_expired_students(settings, today, result)
    if settings.audit_archive_retention_years is not None:
        backend = backend_for(settings.archive_store_url)
        with connect_as(settings, ARCHIVER_LOGIN) as conn:
            destroy_expired_archives(conn, backend, settings, today, result)
    if result.students or result.audit_months_destroyed:
        log.info("retention applied", extra=result.__dict__)
    return result
