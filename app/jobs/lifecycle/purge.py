"""Deletion of students' records (`python -m app purge-student`, and the nightly retention).

In one transaction, as the purge login (ssp_purger, migration 0023: its policies admit every
school, its grants only the key columns and DELETE) or, in development, the tables' owner (for
which FORCE ROW LEVEL SECURITY is lifted for this transaction only: the ALTER locks the tables
until it ends, so no other session sees them unforced); every table the catalog walk finds
(app/core/student_records.py) loses the students' rows, children first; the audit log's rows keep
the fact of each access but no longer name the student (FERPA asks for the record of accesses
to be kept as long as the records are: once they are destroyed, so is the name in it); a
tombstone per student and a destruction record in the audit log are written. After the commit
the feature view is refreshed and the students' cached answers are dropped from Redis.

Audit months already archived (S3 Object Lock, app/jobs/archive.py) cannot be changed by
anyone until their lock ends: they keep the student's id until AUDIT_ARCHIVE_RETENTION_YEARS
destroys them (app/jobs/lifecycle/retention.py)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from app.core.cache import Cache, scores_stamp
from app.core.db import primary_url
from app.core.settings import Settings
from app.core.student_records import DERIVED_VIEWS, StudentTable, student_tables

log = logging.getLogger("app.purge")

LOCK_TIMEOUT = "5s"  # a busy table fails the purge (retry later) instead of queueing readers
RETRAIN_NOTE = (
    "models trained on these students keep serving until the next training run, which"
    " trains every scope again without them and records it on their tombstones"
)


class PurgeError(RuntimeError):
    """Nothing was deleted; the message says why."""


@dataclass
class Student:
    id: int
    school_id: int
    district_id: int
    sourced_id: str | None


@dataclass
class PurgeResult:
    students: int
    rows: dict[str, int]
    tombstones: list[int]
    audit_rows_pseudonymised: int
    models_trained_on_them: list[str] = field(default_factory=list)
    cache_keys_dropped: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "students": self.students,
            "rows_deleted": self.rows,
            "tombstones": self.tombstones,
            "audit_rows_pseudonymised": self.audit_rows_pseudonymised,
            "models": {"trained_on_them": self.models_trained_on_them, "retrain": RETRAIN_NOTE},
            "cache_keys_dropped": self.cache_keys_dropped,
        }


def sourced_digest(pepper: str, sourced_id: str) -> str:
    """What a tombstone keeps of a student's sourced id (migration 0020)."""
    return hashlib.sha256(f"{pepper}:{sourced_id}".encode()).hexdigest()


def find_student(conn: psycopg.Connection[Any], ident: str) -> Student:
    """The student named by an id or a sourced id (as the owner, FORCE lifted or not: the
    students table is read through the owner's bypass-free view of it by the caller)."""
    query = (
        "SELECT s.id, s.school_id, sc.district_id, s.sourced_id FROM students s"
        " JOIN schools sc ON sc.id = s.school_id WHERE s.sourced_id = %s"
    )
    rows = conn.execute(query, (ident,)).fetchall()
    if not rows and ident.isdigit():
        by_id = query.replace("s.sourced_id = %s", "s.id = %s")
        rows = conn.execute(by_id, (int(ident),)).fetchall()
    if not rows:
        raise PurgeError(f"no student has the id or sourced id {ident!r}")
    return Student(*rows[0])


def lift_force(conn: psycopg.Connection[Any], tables: set[str]) -> list[str]:
    """NO FORCE ROW LEVEL SECURITY on those of `tables` that have it and that the session's
    user owns (FORCE filters only the owner; the purger owns none), in the caller's
    transaction; the tables to force again (force_again)."""
    forced = [
        str(r[0])
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relforcerowsecurity"
            " AND relnamespace = 'public'::regnamespace"
            " AND pg_has_role(current_user, relowner, 'USAGE') ORDER BY relname",
            (sorted(tables),),
        ).fetchall()
    ]
    for table in forced:
        conn.execute(
            sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(sql.Identifier(table))
        )
    return forced


def force_again(conn: psycopg.Connection[Any], tables: list[str]) -> None:
    for table in tables:
        conn.execute(
            sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(sql.Identifier(table))
        )


def delete_rows(
    conn: psycopg.Connection[Any], tables: list[StudentTable], ids: list[int]
) -> dict[str, int]:
    """Deletes the students' rows from every table, children first; rows per table."""
    rows: dict[str, int] = {}
    for t in tables:
        cur = conn.execute(
            sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(t.table), t.where),
            {"ids": ids},
        )
        rows[t.table] = rows.get(t.table, 0) + cur.rowcount
    return rows


def pseudonymise_audit(conn: psycopg.Connection[Any], ids: list[int]) -> int:
    """The students' audit rows no longer name them: single reads lose the student id, list
    reads the students' entries in detail.student_ids (each found through its index)."""
    cur = conn.execute(
        'UPDATE audit_log SET student_id = NULL, detail = detail || \'{"student": "purged"}\''
        " WHERE student_id = ANY(%s::bigint[])",
        (ids,),
    )
    n = cur.rowcount
    for student in ids:
        cur = conn.execute(
            "UPDATE audit_log SET detail = jsonb_set(detail, '{student_ids}', (SELECT"
            " coalesce(jsonb_agg(e), '[]'::jsonb) FROM jsonb_array_elements(detail ->"
            " 'student_ids') e WHERE e <> to_jsonb(%s::bigint)))"
            " WHERE detail -> 'student_ids' @> jsonb_build_array(%s::bigint)",
            (student, student),
        )
        n += cur.rowcount
    return n


def purge_students(
    conn: psycopg.Connection[Any],
    students: list[Student],
    requested_by: str,
    reason: str,
    pepper: str,
) -> PurgeResult:
    """Deletes `students` (module docstring) in the caller's transaction, opened by
    owner_transaction; then call after_purge."""
    if not students:
        return PurgeResult(0, {}, [], 0)
    ids = [s.id for s in students]
    tables = student_tables(conn)
    rows = delete_rows(conn, tables, ids)
    audited = pseudonymise_audit(conn, ids)
    tombstones = [
        int(
            conn.execute(
                "INSERT INTO student_tombstones (district_id, sourced_digest, requested_by,"
                " reason, rows_deleted) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sourced_digest)"
                " DO UPDATE SET purged_at = now(), models_retrained_in = NULL RETURNING id",
                (
                    s.district_id,
                    sourced_digest(pepper, s.sourced_id) if s.sourced_id else None,
                    requested_by,
                    reason,
                    json.dumps(rows),
                ),
            ).fetchone()[0]  # type: ignore[index]
        )
        for s in students
    ]
    schools = sorted({s.school_id for s in students})
    detail = {
        "requested_by": requested_by,
        "reason": reason,
        "tombstones": tombstones,
        "rows_deleted": rows,
        "audit_rows_pseudonymised": audited,
        "models": RETRAIN_NOTE,
    }
    conn.execute(
        "INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
        " VALUES (NULL, %s, NULL, %s, %s)",
        (schools[0] if len(schools) == 1 else None, f"purge_{reason}", json.dumps(detail)),
    )
    return PurgeResult(len(ids), rows, tombstones, audited)


@contextmanager
def owner_transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """A transaction of the owner in which the tables of student records, the audit log and
    the schools (to find a student's district) are not forced: forced again before commit."""
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        tables = {t.table for t in student_tables(conn)} | {"audit_log", "schools"}
        forced = lift_force(conn, tables)
        yield
        force_again(conn, forced)


def purge_on_request(
    settings: Settings, ident: str, requested_by: str, models_in_use: list[str]
) -> PurgeResult:
    """`purge-student`: one student, named by id or sourced id, as the purge login."""
    with psycopg.connect(purge_url(settings), connect_timeout=settings.db_connect_timeout) as conn:
        with owner_transaction(conn):
            student = find_student(conn, ident)
            result = purge_students(
                conn, [student], requested_by, "request", settings.api_key_pepper
            )
        result.models_trained_on_them = models_in_use
        conn.autocommit = True
        after_purge(conn, settings, [student], result)
    log.info("student purged", extra=result.summary())
    return result


def purge_url(settings: Settings) -> str:
    """PURGE_DATABASE_URL, else DATABASE_URL (the purge Job's, which is the purger's)."""
    if settings.purge_database_url is not None:
        return settings.purge_database_url.get_secret_value()
    return primary_url(settings)


def after_purge(
    conn: psycopg.Connection[Any], settings: Settings, students: list[Student], result: PurgeResult
) -> None:
    """After the commit (`conn` in autocommit): the feature view forgets the students, Redis
    their answers."""
    for refresh in DERIVED_VIEWS.values():
        conn.execute(sql.SQL("SELECT {}()").format(sql.Identifier(refresh)))
    result.cache_keys_dropped = drop_cached(settings, students)


def drop_cached(settings: Settings, students: list[Student]) -> int:
    """Deletes the students' cached risk answers (every generation and tenant) and restamps
    their schools' at-risk pages. An answer cached again by a fill that was queued before the
    purge, or held by an API replica's own cache (without Redis), is never served: a cache
    hit's audit row must find its student (app/api/queries.py, INSERT_AUDIT_ROWS)."""
    cache = Cache(settings.redis_url, settings.cache_prefix)
    if cache.redis is None:
        return 0
    dropped = 0
    for s in students:
        keys = list(cache.redis.scan_iter(match=f"{settings.cache_prefix}:risk:*:{s.id}"))
        if keys:
            dropped += int(cache.redis.delete(*keys))
    cache.restamp(scores_stamp(s.school_id) for s in students)
    return dropped
