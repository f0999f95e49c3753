"""Purged students stay purged: the staged rows of a student with a tombstone (migration 0020,
app/jobs/lifecycle/purge.py), and their records, are left out of the write, unless the import
is run with --readmit-purged (the district has asked for the student to be taken back)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from app.jobs.importer.layout import ENTITIES
from app.jobs.importer.validate import stage_table

# The staged student's digest, as sourced_digest() in app/jobs/lifecycle/purge.py makes it.
DIGEST = "encode(sha256(convert_to(%(pepper)s || ':' || {}, 'UTF8')), 'hex')"


def skip_purged(conn: psycopg.Connection[Any], pepper: str) -> dict[str, int]:
    """Deletes the tombstoned students' staged rows, from every entity that names a student;
    the rows left out per file."""
    skipped: dict[str, int] = {}
    for entity in ENTITIES:
        if entity.name == "students":
            column = "sourced_id"
        else:
            refs = [c.name for c in entity.columns if c.ref == "students"]
            if not refs:
                continue
            column = refs[0]
        digest = sql.SQL(DIGEST).format(sql.Identifier(column))
        cur = conn.execute(
            sql.SQL(
                "DELETE FROM {} s WHERE {} IS NOT NULL AND {} IN"
                " (SELECT sourced_digest FROM student_tombstones WHERE sourced_digest IS NOT NULL)"
            ).format(sql.Identifier(stage_table(entity)), sql.Identifier(column), digest),
            {"pepper": pepper},
        )
        if cur.rowcount:
            skipped[f"{entity.name}.csv"] = cur.rowcount
    return skipped
