"""Where a student's records are: found from PostgreSQL's catalog, not from a list kept by hand.

Every table with a foreign key to students(id) holds student records, and so does every table
with a foreign key to one of those (an alert's actions name the alert, not the student): the
closure is walked from pg_constraint, so a migration that adds such a table is covered without
a change here. Columns that name a student without a foreign key are listed in NO_FK_COLUMNS;
tests/app/test_lifecycle.py fails when a column named like a student reference is in
neither (a new table cannot be forgotten). The audit log is not deleted from but
pseudonymised (app/jobs/lifecycle/purge.py): it is the record of who accessed what.

The same walk gives the purge login its rights (grant_purger_rights, run by every migrate), so
what the purge deletes and what its login may delete cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

# Columns holding a student's id without a foreign key. event_queue: a message naming no
# student is poison the worker dead-letters, so the key is left out on purpose (0011).
NO_FK_COLUMNS: tuple[tuple[str, str], ...] = (("event_queue", "student_id"),)
# Student references the purge rewrites instead of deleting: the FERPA record of accesses.
AUDIT_COLUMNS: tuple[tuple[str, str], ...] = (("audit_log", "student_id"),)
# Materialized views derived from the tables above, each with the function that refreshes it
# (SECURITY DEFINER: REFRESH needs the view's owner, migration 0007): called after a deletion.
DERIVED_VIEWS = {"student_features": "refresh_student_features"}


@dataclass(frozen=True)
class StudentTable:
    """A table holding student records and how to select a set of students' rows:
    `where` takes the parameter %(ids)s (bigint[]); `depth` 1 for a direct reference;
    `parent` the (table, column) the reference points at, None for the walk's roots."""

    table: str
    column: str
    where: sql.Composable
    depth: int
    parent: tuple[str, str] | None = None

    def rendered(self, conn: psycopg.Connection[Any]) -> str:
        return self.where.as_string(conn)


_FOREIGN_KEYS = """
SELECT c.conrelid::regclass::text AS child, a.attname AS child_column,
       c.confrelid::regclass::text AS parent, pa.attname AS parent_column
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
JOIN pg_class k ON k.oid = c.conrelid
WHERE c.contype = 'f' AND cardinality(c.conkey) = 1
  AND k.relnamespace = 'public'::regnamespace AND NOT k.relispartition
ORDER BY 1, 2
"""


def student_tables(conn: psycopg.Connection[Any]) -> list[StudentTable]:
    """Every table holding student records, students itself last, deepest first: the order
    to delete in. A table reached by two paths (a student id and an alert id) is listed for
    each, the deeper first."""
    edges = conn.execute(_FOREIGN_KEYS).fetchall()
    ids = sql.SQL("= ANY(%(ids)s::bigint[])")
    students = StudentTable("students", "id", sql.SQL("id {}").format(ids), 0)
    found = [students]
    for table, column in NO_FK_COLUMNS:
        found.append(
            StudentTable(table, column, sql.SQL("{} {}").format(sql.Identifier(column), ids), 1)
        )
    seen = {(t.table, t.column) for t in found}
    frontier = list(found)
    while frontier:
        parent = frontier.pop(0)
        for child, child_column, ref_table, ref_column in edges:
            if ref_table != parent.table or (child, child_column) in seen:
                continue
            seen.add((child, child_column))
            if parent.table == "students" and ref_column == "id":
                where: sql.Composable = sql.SQL("{} {}").format(sql.Identifier(child_column), ids)
            else:
                where = sql.SQL("{} IN (SELECT {} FROM {} WHERE {})").format(
                    sql.Identifier(child_column),
                    sql.Identifier(ref_column),
                    sql.Identifier(ref_table),
                    parent.where,
                )
            entry = StudentTable(
                child, child_column, where, parent.depth + 1, (ref_table, ref_column)
            )
            found.append(entry)
            frontier.append(entry)
    return sorted(found, key=lambda t: -t.depth)


def grant_purger_rights(conn: psycopg.Connection[Any]) -> int:
    """The purge login's rights on every table holding student records (migration 0023 says
    what it may do): SELECT of the key columns the purge's WHERE clauses read and DELETE, and
    on a table with row-level security policies admitting every school for both. Run by the
    schema's owner at every migrate; returns the number of tables."""
    tables = student_tables(conn)
    for t in tables:
        conn.execute(
            sql.SQL("GRANT SELECT ({}), DELETE ON {} TO ssp_purger").format(
                sql.Identifier(t.column), sql.Identifier(t.table)
            )
        )
        if t.parent is not None:
            conn.execute(
                sql.SQL("GRANT SELECT ({}) ON {} TO ssp_purger").format(
                    sql.Identifier(t.parent[1]), sql.Identifier(t.parent[0])
                )
            )
    # A table the walk reaches by several columns gets its policies once.
    names = sorted({t.table for t in tables})
    secured = conn.execute(
        "SELECT relname FROM pg_class WHERE oid = ANY(%s::regclass[]) AND relrowsecurity",
        (names,),
    ).fetchall()
    for (name,) in secured:
        table = sql.Identifier(name)
        for policy_name, command in (("purger_read", "SELECT"), ("purger_delete", "DELETE")):
            policy = sql.Identifier(policy_name)
            conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(policy, table))
            conn.execute(
                sql.SQL("CREATE POLICY {} ON {} FOR {} TO ssp_purger USING (true)").format(
                    policy, table, sql.SQL(command)
                )
            )
    return len(names)


def covered_columns(tables: list[StudentTable]) -> set[tuple[str, str]]:
    """(table, column) of every student reference the purge handles."""
    return {(t.table, t.column) for t in tables} | set(AUDIT_COLUMNS)


def student_reference_columns(conn: psycopg.Connection[Any]) -> set[tuple[str, str]]:
    """Columns of the schema's tables named like a student reference (student_id,
    pupil_id...): what the coverage test holds the catalog walk to."""
    rows = conn.execute(
        "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
        " AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped"
        " AND (a.attname ~ 'student' OR a.attname ~ 'pupil')"
    ).fetchall()
    return {(str(t), str(c)) for t, c in rows}
