"""`python -m app import <dir | s3://bucket/prefix> [--dry-run]`: a district's own data.

1. Stage: every CSV of the bundle streams through COPY into a temporary table of text
   columns (a progress bar per file; memory does not grow with file size).
2. Validate: types, ranges, NaN and infinities, dates, enums, duplicate keys, references
   (to the bundle or to rows imported before), marks within their exam's maximum. Every
   problem is collected with its file, row, column, value and reason.
3. Write: only when there is no problem, in one transaction, parents first, upserting by the
   district's ids. `--dry-run` runs the same write and rolls it back, so its counts (new,
   updated, unchanged, rejected per table) are exactly what the import would do.

Runs as the importer's login (ssp_importer, migration 0009), one import at a time.

This module runs the import; `layout.py` defines the native layout, `source.py` reads a
directory or an S3 prefix, `oneroster.py` maps OneRoster 1.2 onto the layout, `validate.py`
stages and checks, `apply.py` writes.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from tqdm import tqdm

from app.core.db import connect_as
from app.core.logins import IMPORTER_LOGIN
from app.core.settings import Settings
from app.jobs.importer import district_features, oneroster
from app.jobs.importer.apply import Counts, count_staged, write
from app.jobs.importer.layout import BY_NAME, ENTITIES, Entity
from app.jobs.importer.source import (
    NOT_UTF8_MARK,
    NUL_MARK,
    HeaderError,
    Source,
    source_for,
    split_header,
)
from app.jobs.importer.tombstones import skip_purged
from app.jobs.importer.validate import create_staging, stage_table, validate

log = logging.getLogger("app.importer")

IMPORT_LOCK_KEY = 0x5350_0004  # beside app.core.db's keys: one import at a time
COPY_OPTIONS = "FORMAT csv, HEADER true, ENCODING 'UTF8'"


class ImportLockedError(RuntimeError):
    pass


@dataclass(frozen=True)
class Problem:
    file: str
    row: int  # 1 is the header; data rows start at 2
    column: str
    value: str | None
    why: str

    def __str__(self) -> str:
        where = f"{self.file} row {self.row}" + (f" column {self.column}" if self.column else "")
        shown = "" if self.value is None else f" value {self.value!r}"
        return f"{where}{shown}: {self.why}"


@dataclass
class ImportResult:
    source: str
    dry_run: bool
    written: bool
    tables: dict[str, Counts]
    problems: list[Problem]
    ignored_files: list[str] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # stage, validate, write: seconds
    skipped_purged: dict[str, int] = field(default_factory=dict)  # rows of purged students

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "written": self.written,
            "tables": {k: v.__dict__ for k, v in self.tables.items()},
            "problems": len(self.problems),
            "ignored_files": self.ignored_files,
            "rows": self.rows,
            "seconds": round(self.seconds, 2),
            "phases": {k: round(v, 2) for k, v in self.phases.items()},
            "skipped_purged": self.skipped_purged,
        }


def run_import(
    settings: Settings,
    url: str,
    dry_run: bool = False,
    progress: bool = True,
    readmit_purged: bool = False,
) -> ImportResult:
    """Import the bundle at `url`. Writes nothing when any problem is found (or on dry run).
    Purged students' rows are left out unless `readmit_purged` (importer/tombstones.py)."""
    started = time.perf_counter()
    source = source_for(url)
    with connect_as(settings, IMPORTER_LOGIN, autocommit=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (IMPORT_LOCK_KEY,)).fetchone()
        if not row or not row[0]:
            raise ImportLockedError("another import holds the lock; exiting")
        try:
            pepper = None if readmit_purged else settings.api_key_pepper
            result = _import(
                conn, source, url, dry_run, progress, pepper, settings.import_skip_unchanged
            )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (IMPORT_LOCK_KEY,))
    result.seconds = time.perf_counter() - started
    log.info("import finished", extra=result.summary())
    return result


def _import(
    conn: psycopg.Connection[Any],
    source: Source,
    url: str,
    dry_run: bool,
    progress: bool,
    pepper: str | None,
    skip_unchanged: bool = True,
) -> ImportResult:
    """`pepper`: leave out the purged students' rows (None: readmit them); `skip_unchanged`:
    see apply.upsert_sql."""
    started = time.perf_counter()
    phases: dict[str, float] = {}
    create_staging(conn)
    provided: dict[str, set[str]] = {}
    staged_or: set[str] = set()
    ignored: list[str] = []
    features: list[str] = []  # the district feature columns of students.csv
    for name in source.names():
        entity = BY_NAME.get(name.removesuffix(".csv"))
        try:
            header, stream = split_header(source.chunks(name))
        except HeaderError as exc:
            _problem(conn, name, 1, "", None, str(exc))
            continue
        if name in oneroster.FILES and ("sourcedId" in header or entity is None):
            columns = _oneroster_columns(conn, name, header)
            table = oneroster.table(name)
            if columns and _copy(conn, table, columns, stream, source.size(name), name, progress):
                staged_or.add(name)
        elif entity is not None:
            columns, extra = _native_columns(conn, entity, name, header)
            table = stage_table(entity)
            district_features.stage(conn, extra)
            staged = [district_features.staged(c) if c in extra else c for c in columns]
            if columns and _copy(conn, table, staged, stream, source.size(name), name, progress):
                provided.setdefault(entity.name, set()).update(set(columns) - set(extra))
                features += extra
        else:
            ignored.append(name)  # e.g. another part of OneRoster (courses, demographics)
    for entity_name, cols in oneroster.map_staged(conn, staged_or).items():
        provided.setdefault(entity_name, set()).update(cols)
    phases["stage"] = time.perf_counter() - started
    validate(conn, features)
    problems = _problems(conn, staged_or)
    skipped = skip_purged(conn, pepper) if pepper is not None and not problems else {}
    phases["validate"] = time.perf_counter() - started - phases["stage"]
    written = not dry_run and not problems
    counts: dict[str, Counts] = {}
    if problems and not dry_run:
        counts = _rejected_only(conn)
    else:
        with conn.transaction():
            counts = write(conn, provided, features, skip_unchanged)
            if not written:
                raise psycopg.Rollback()  # a dry run: the same write, undone (and swallowed)
    rows = sum(c.staged for c in counts.values())
    phases["write"] = time.perf_counter() - started - phases["stage"] - phases["validate"]
    return ImportResult(
        url, dry_run, written, counts, problems, ignored, rows, 0.0, phases, skipped
    )


def _problem(
    conn: psycopg.Connection[Any], file: str, row: int, col: str, val: str | None, why: str
) -> None:
    conn.execute("INSERT INTO imp_problems VALUES (%s, %s, %s, %s, %s)", (file, row, col, val, why))


def _native_columns(
    conn: psycopg.Connection[Any], entity: Entity, name: str, header: list[str]
) -> tuple[list[str], list[str]]:
    """The header's columns and, of students.csv, those that may be the district's features
    (validated once everything is staged); ([], []) and the problems when it is not the
    layout's."""
    known = [c.name for c in entity.columns]
    extra = [c for c in header if entity.name == "students" and district_features.is_candidate(c)]
    bad = False
    for col in header:
        if col not in known and col not in extra:
            _problem(conn, name, 1, col, None, f"unknown column (expected {', '.join(known)})")
            bad = True
    if len(set(header)) != len(header):
        _problem(conn, name, 1, "", None, "a column appears twice in the header")
        bad = True
    for c in entity.columns:
        if c.required and c.name not in header:
            _problem(conn, name, 1, c.name, None, "missing column")
            bad = True
    return ([], []) if bad else (header, extra)


def _oneroster_columns(conn: psycopg.Connection[Any], name: str, header: list[str]) -> list[str]:
    """Stage a OneRoster file with whatever columns it has; those the mapping needs must be
    there."""
    missing = [c for c in oneroster.REQUIRED[name] if c not in header]
    for col in missing:
        _problem(conn, name, 1, col, None, "missing column")
    if missing or len(set(header)) != len(header) or not all(header):
        if not missing:
            _problem(conn, name, 1, "", None, "empty or repeated column names in the header")
        return []
    cols = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in header)
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {} (row bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 2), {})"
        ).format(sql.Identifier(oneroster.table(name)), cols)
    )
    return header


def _copy(
    conn: psycopg.Connection[Any],
    table: str,
    columns: list[str],
    stream: Any,
    size: int,
    name: str,
    progress: bool,
) -> bool:
    """Stream one file into its staging table; False (and the problem) if COPY refuses it.
    Empty cells, quoted or not, are NULL (FORCE_NULL)."""
    ident = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    conn.execute(
        sql.SQL("ALTER TABLE {} ALTER COLUMN row RESTART WITH 2").format(sql.Identifier(table))
    )
    statement = sql.SQL("COPY {} ({}) FROM STDIN ({}, FORCE_NULL ({}))").format(
        sql.Identifier(table), ident, sql.SQL(COPY_OPTIONS), ident
    )
    bar = tqdm(total=size, desc=name, unit="B", unit_scale=True, disable=not progress)
    try:
        with conn.transaction(), conn.cursor().copy(statement) as cp:
            for chunk in stream:
                cp.write(chunk)
                bar.update(len(chunk))
    except psycopg.Error as exc:
        context = exc.diag.context or ""
        line = re.search(r"line (\d+)", context)
        column = re.search(r"column (\w+)", context)
        _problem(
            conn,
            name,
            int(line.group(1)) if line else 1,
            column.group(1) if column else "",
            None,
            f"not readable as CSV: {exc.diag.message_primary or exc}",
        )
        return False
    finally:
        bar.close()
    return True


def _problems(conn: psycopg.Connection[Any], oneroster_files: set[str]) -> list[Problem]:
    """Every problem, its column named as in its file (OneRoster's names for OneRoster's)."""
    rows = conn.execute(
        "SELECT DISTINCT file, row, col, val, why FROM imp_problems ORDER BY file, row, col, why"
    ).fetchall()
    aliases = {k: v for k, v in oneroster.ALIASES.items() if k[0] in oneroster_files}
    return [Problem(f, int(r), aliases.get((f, c), c), _shown(v), w) for f, r, c, v, w in rows]


def _shown(value: str | None) -> str | None:
    """A refused value as the file had it, its NUL bytes and undecodable bytes as U+FFFD."""
    if value is None:
        return None
    return value.replace(NUL_MARK, "\ufffd").replace(NOT_UTF8_MARK, "\ufffd")


def _rejected_only(conn: psycopg.Connection[Any]) -> dict[str, Counts]:
    """Counts without the write: staged and rejected only (the bundle has problems)."""
    counts = {}
    for entity in ENTITIES:
        c = count_staged(conn, entity)
        if c.staged:
            counts[entity.name] = c
    return counts
