"""Audit log and risk history archival: every audited read writes an audit row, every change of
a student's risk a history row, so both would grow without bound. Monthly partitions older
than the retention (AUDIT_RETENTION_DAYS; for the history, the start of the previous school
year) are exported to the archive store, the export is read back and counted, and only when
the counts match is the partition detached and dropped. Nothing is deleted that was not
verifiably exported.

Audited reads never wait for the export: it runs in a transaction of its own that locks only
the old partition (against writes, which an ended month does not get). Detaching takes
ACCESS EXCLUSIVE on audit_log, which every audit insert would queue behind, so it runs in a
short transaction of its own that waits at most ARCHIVE_LOCK_TIMEOUT for its lock (then gives
way and retries) and holds it only for the detach and the drop, a few milliseconds.
(`DETACH PARTITION ... CONCURRENTLY` would not need even that, but it cannot run inside a
function and needs the owner of audit_log; the archiver's login must stay unable to change
the audit trail, so the detach goes through audit_log_drop_partition.)

Runs as the archiver's login (ssp_archiver, migration 0007), which may read audit_log but not
change it: locking, detaching and dropping a partition, and creating the next ones, go through
SECURITY DEFINER functions that do only that, on partitions whose month has ended, and drop a
partition only when it holds exactly the rows that were exported.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from app.core.db import ARCHIVE_LOCK_KEY, connect_as
from app.core.logins import ARCHIVER_LOGIN
from app.core.settings import Settings
from app.model.artifacts import Backend, backend_for

log = logging.getLogger("app.archive")

ARCHIVE_LOCK_TIMEOUT = "100ms"  # longest that audit inserts may queue behind a detach
DETACH_ATTEMPTS = 20  # of taking that lock, DETACH_RETRY_SECONDS apart
DETACH_RETRY_SECONDS = 0.5

COLUMNS = ("id", "occurred_at", "client_id", "school_id", "student_id", "action", "detail")


@dataclass(frozen=True)
class Trail:
    """A partitioned table archived this way: its columns (the first `key` of them identify a
    row), its partitions' range column, and its SECURITY DEFINER functions that lock and
    drop one ended partition (migrations 0007, 0017)."""

    table: str
    columns: tuple[str, ...]
    key: int
    range_column: str
    lock: str
    drop: str


AUDIT = Trail("audit_log", COLUMNS, 1, "occurred_at", "audit_log_lock_partition",
              "audit_log_drop_partition")  # fmt: skip
HISTORY = Trail(
    "risk_history",
    ("student_id", "day", "school_id", "risk", "generation", "model_version", "reasons",
     "school_year", "indicators", "recorded_at"),
    2, "day", "risk_history_lock_partition", "risk_history_drop_partition",
)  # fmt: skip


class ArchiveMismatchError(RuntimeError):
    """The export does not hold every row of the partition; the partition is kept."""


@dataclass(frozen=True)
class ArchivedPartition:
    partition: str
    rows: int
    key: str


def old_partitions(
    conn: psycopg.Connection[Any], cutoff: date, trail: Trail = AUDIT
) -> list[tuple[str, date]]:
    """Partitions of the trail's table whose whole month ends on or before `cutoff`."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass"
        " ORDER BY c.relname",
        (trail.table,),
    ).fetchall()
    found = []
    for name, bound in rows:
        lower, upper = (date.fromisoformat(b[:10]) for b in _bounds(bound))
        if upper <= cutoff:
            found.append((name, lower))
    return found


def _bounds(bound: str) -> tuple[str, str]:
    """The (from, to) timestamps of a range partition's bound, as the text PostgreSQL shows:
    FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00')."""
    return bound.split("FROM ('", 1)[1].split("'", 1)[0], bound.split("TO ('", 1)[1].split("'", 1)[
        0
    ]


def export_csv(rows: list[tuple[Any, ...]], columns: tuple[str, ...] = COLUMNS) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    writer.writerows(rows)
    return gzip.compress(buf.getvalue().encode())


def count_export(data: bytes, trail: Trail = AUDIT) -> tuple[int, set[tuple[str, ...]]]:
    """The rows of an export and the keys of its rows (as text)."""
    reader = csv.reader(io.StringIO(gzip.decompress(data).decode()))
    header = next(reader)
    if tuple(header) != trail.columns:
        raise ArchiveMismatchError(f"unexpected export header {header}")
    keys = [tuple(r[: trail.key]) for r in reader]
    return len(keys), set(keys)


def archive_partition(
    conn: psycopg.Connection[Any], backend: Backend, name: str, month: date, trail: Trail = AUDIT
) -> ArchivedPartition:
    """Export, verify, then detach and drop one partition (`conn` in autocommit mode: each
    step below is a transaction of its own)."""
    key = f"{trail.table}/{month:%Y}/{name}.csv.gz"
    n = export_partition(conn, backend, name, key, trail)
    drop_partition(conn, name, n, trail)
    log.info("partition archived", extra={"partition": name, "rows": n, "key": key})
    return ArchivedPartition(name, n, key)


def export_partition(
    conn: psycopg.Connection[Any], backend: Backend, name: str, key: str, trail: Trail = AUDIT
) -> int:
    """Writes the partition's rows to `key`, reads them back and counts them; the row count."""
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{ARCHIVE_LOCK_TIMEOUT}'")
        # Blocks writers of this partition only (readers still work) so the count cannot
        # change under us.
        conn.execute(sql.SQL("SELECT {}(%s)").format(sql.Identifier(trail.lock)), (name,))
        # Read through the parent (the archiver may read audit_log, not its partitions): the
        # partition's own rows (tableoid), its bounds letting the planner scan it alone.
        bound = conn.execute(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE oid = %s::regclass",
            (name,),
        ).fetchone()
        assert bound is not None
        lower, upper = map(sql.Literal, _bounds(bound[0]))
        column, table = sql.Identifier(trail.range_column), sql.Identifier(trail.table)
        where = sql.SQL("tableoid = {}::regclass AND {} >= {} AND {} < {}").format(
            sql.Literal(name), column, lower, column, upper
        )
        rows = conn.execute(
            sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
                sql.SQL(", ").join(map(sql.Identifier, trail.columns)), table, where,
                sql.SQL(", ").join(map(sql.Identifier, trail.columns[: trail.key])),
            )
        ).fetchall()  # fmt: skip
        db_count_row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {}").format(table, where)
        ).fetchone()
        db_count = int(db_count_row[0]) if db_count_row else -1
        backend.write(key, export_csv([_row(r) for r in rows], trail.columns))
        stored = backend.read(key)
        if stored is None:
            raise ArchiveMismatchError(f"{key} was not found after writing it")
        n, ids = count_export(stored, trail)
        if n != db_count or ids != {tuple(str(v) for v in r[: trail.key]) for r in rows}:
            raise ArchiveMismatchError(
                f"{name}: database has {db_count} rows, export {key} has {n}"
            )
    return n


def drop_partition(
    conn: psycopg.Connection[Any], name: str, rows: int, trail: Trail = AUDIT
) -> None:
    """Detaches and drops the partition, in a short transaction that gives way to audited
    reads when it cannot take its lock at once (lock_timeout), retried a few times. The
    function refuses unless the partition still holds exactly the `rows` exported."""
    for attempt in range(1, DETACH_ATTEMPTS + 1):
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{ARCHIVE_LOCK_TIMEOUT}'")
                drop = sql.SQL("SELECT {}(%s, %s)").format(sql.Identifier(trail.drop))
                conn.execute(drop, (name, rows))
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == DETACH_ATTEMPTS:
                raise
            log.info("table busy; detach retried", extra={"partition": name})
            time.sleep(DETACH_RETRY_SECONDS)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as CSV cells: JSON columns as JSON text (None stays an empty cell)."""
    return tuple(_json(v) if isinstance(v, (dict, list)) else v for v in row)


def run_archive(settings: Settings, today: date | None = None) -> list[ArchivedPartition]:
    today = today or datetime.now(UTC).date()
    cutoff = today - timedelta(days=settings.audit_retention_days)
    backend = backend_for(settings.archive_store_url)
    done: list[ArchivedPartition] = []
    with connect_as(settings, ARCHIVER_LOGIN) as conn:
        conn.autocommit = True
        conn.execute("SET TimeZone = 'UTC'")  # partition bounds below are read as UTC text
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (ARCHIVE_LOCK_KEY,)).fetchone()
        if not row or not row[0]:
            raise RuntimeError("another archive run is in progress")
        # Autocommit stays on: every step is its own short transaction (a statement outside
        # one would open a transaction that holds its locks until the job ends).
        ensure_partitions(conn, today)
        for name, month in old_partitions(conn, cutoff):
            done.append(archive_partition(conn, backend, name, month))
        # The risk history keeps the current and the previous school year.
        conn.execute("SELECT risk_history_ensure_current_partitions()")
        kept = conn.execute("SELECT risk_history_kept_from()").fetchone()
        if kept is not None and kept[0] is not None:
            for name, month in old_partitions(conn, kept[0], HISTORY):
                done.append(archive_partition(conn, backend, name, month, HISTORY))
    return done


def ensure_partitions(conn: psycopg.Connection[Any], today: date, months_ahead: int = 2) -> None:
    """Create this month's and the next months' partitions so inserts never lack one."""
    with conn.transaction():
        conn.execute(
            "SELECT audit_log_create_partitions(%s,"
            " (%s::date + make_interval(months => %s))::date)",
            (today, today, months_ahead),
        )
