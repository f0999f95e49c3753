"""The write: one upsert per entity from its staging table, parents first, in one transaction.

Rows are matched on the district's keys (sourced_id, or (student, date) for attendance and
(student, exam) for results), and a matched row is only written when a value differs, so a
nightly re-import of an unchanged export writes nothing. Only the columns the bundle gave are
updated: a OneRoster export, which carries no outcome, never erases a dropout label.

Rows equal to the stored ones are left out before the upsert by one anti-join over the whole
table: the upsert would otherwise probe the key's index, lock and compare each of them one at
a time, most of an unchanged nightly re-import's time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from app.jobs.importer import district_features
from app.jobs.importer.layout import ENTITIES, Entity
from app.jobs.importer.validate import stage_table

CASTS = {
    "text": "",
    "enum": "",
    "int": "::integer",
    "decimal": "::numeric",
    "date": "::date",
    "timestamp": "::timestamptz",
    "bool": "::boolean",
}
# A reference to an entity: its table and the columns it gives the referencing row.
REFERENCES = {
    "districts": ("districts", {"district_id": "id"}),
    "schools": ("schools", {"school_id": "id"}),
    "students": ("students", {"student_id": "id", "school_id": "school_id"}),
    "exams": ("exams", {"exam_id": "id"}),
}


@dataclass
class Counts:
    staged: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0


NOT_REJECTED = "NOT EXISTS (SELECT 1 FROM imp_problems x WHERE x.file = s.file AND x.row = s.row)"


def _rows_sql(entity: Entity, provided: set[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """(target column -> SQL of the staged row `s`, the joins to the referenced tables, the
    target columns of the district's key)."""
    values: dict[str, str] = {}  # target column -> SQL of the staged row
    joins: list[str] = []
    key_targets: list[str] = []
    for i, column in enumerate(entity.columns):
        if column.ref is not None:
            table, gives = REFERENCES[column.ref]
            alias = f"r{i}"
            joins.append(f"JOIN {table} {alias} ON {alias}.sourced_id = s.{column.name}")
            for target, source in gives.items():
                values.setdefault(target, f"{alias}.{source}")
            if column.name in entity.key:
                key_targets.append(next(iter(gives)))
        elif column.target is not None and column.name in provided:
            value = f"s.{column.name}"
            if column.default is not None:
                value = f"coalesce({value}, '{column.default}')"
            values[column.target] = f"{value}{CASTS[column.kind]}"
            if column.name in entity.key:
                key_targets.append(column.target)
    return values, joins, key_targets


def upsert_sql(
    entity: Entity,
    provided: set[str],
    features: Sequence[str] = (),
    skip_unchanged: bool = True,
) -> str:
    """INSERT ... ON CONFLICT for the rows of `entity` without problems; returns one row of
    (new, updated) counts. A student's district `features` are merged into the ones it has
    (the bundle's replace theirs, the others stay). `skip_unchanged`: rows equal to the stored
    ones are left out first, set-based (False: the upsert compares every row itself)."""
    values, joins, key_targets = _rows_sql(entity, provided)
    t = entity.table
    if features:
        values["district_features"] = district_features.values_sql(list(features))

    def new_value(c: str, stored: str, given: str) -> str:
        """The value column `c` is written with: the bundle's, or for the district features
        the stored ones merged with the bundle's."""
        return f"{stored}.{c} || {given}" if c == "district_features" else given

    targets = list(values)
    changing = [c for c in targets if c not in key_targets]
    if changing:
        old = ", ".join(f"{t}.{c}" for c in changing)
        new = ", ".join(new_value(c, t, f"EXCLUDED.{c}") for c in changing)
        sets = ", ".join(f"{c} = {new_value(c, t, f'EXCLUDED.{c}')}" for c in changing)
        # ROW(): a single column compares as a row too.
        conflict = f"DO UPDATE SET {sets} WHERE ROW({old}) IS DISTINCT FROM ROW({new})"
    else:
        conflict = "DO NOTHING"
    unchanged = ""
    if skip_unchanged:
        # The same test as the upsert's WHERE, on the stored row (alias u) found by its key.
        same = [f"u.{k} = {values[k]}" for k in key_targets]
        if changing:
            stored = ", ".join(f"u.{c}" for c in changing)
            given = ", ".join(new_value(c, "u", values[c]) for c in changing)
            same.append(f"ROW({stored}) IS NOT DISTINCT FROM ROW({given})")
        unchanged = f" AND NOT EXISTS (SELECT 1 FROM {t} u WHERE {' AND '.join(same)})"
    return (
        f"WITH w AS (INSERT INTO {t} ({', '.join(targets)})"
        f" SELECT {', '.join(values.values())} FROM {stage_table(entity)} s {' '.join(joins)}"
        f" WHERE {NOT_REJECTED}{unchanged}"
        f" ON CONFLICT ({', '.join(key_targets)}) {conflict}"
        f" RETURNING (xmax = 0) AS inserted)"  # xmax 0: the row version was inserted
        f" SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM w"
    )


# How many staged rows, evenly spread, are looked up to tell a first import from a delta.
SAMPLE_ROWS = 1_000


def mostly_stored(
    conn: psycopg.Connection[Any], entity: Entity, provided: set[str], staged: int
) -> bool:
    """Whether most of the `staged` rows of `entity` have their key stored already (a nightly
    delta), from a sample of them. On a first import the anti-join of upsert_sql would only sort or
    hash every new row once more for nothing."""
    values, joins, keys = _rows_sql(entity, provided)
    found = " AND ".join(f"u.{k} = {values[k]}" for k in keys)
    step = max(1, staged // SAMPLE_ROWS)
    row = conn.execute(
        f"SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {entity.table} u WHERE {found})),"
        f" count(*) FROM (SELECT * FROM {stage_table(entity)} s WHERE s.row % {step} = 0"
        f" AND {NOT_REJECTED}"
        f" LIMIT {SAMPLE_ROWS}) s {' '.join(joins)}"
    ).fetchone()
    assert row is not None
    return 2 * int(row[0]) >= int(row[1]) > 0


def count_staged(conn: psycopg.Connection[Any], entity: Entity) -> Counts:
    row = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE NOT {NOT_REJECTED}) FROM {stage_table(entity)} s"
    ).fetchone()
    assert row is not None
    return Counts(staged=int(row[0]), rejected=int(row[1]))


def write(
    conn: psycopg.Connection[Any],
    provided: dict[str, set[str]],
    features: Sequence[str] = (),
    skip_unchanged: bool = True,
) -> dict[str, Counts]:
    """Upsert every entity with staged rows (in the caller's transaction); the counts.
    `features`: the district feature columns of students.csv; `skip_unchanged`: leave the
    unchanged rows out first (upsert_sql) where most of the staged rows are stored already."""
    counts: dict[str, Counts] = {}
    for entity in ENTITIES:
        c = count_staged(conn, entity)
        if c.staged == 0:
            continue
        if c.staged > c.rejected:
            mine = features if entity.name == "students" else ()
            given = provided.get(entity.name, set())
            skip = skip_unchanged and mostly_stored(conn, entity, given, c.staged)
            row = conn.execute(upsert_sql(entity, given, mine, skip)).fetchone()
            assert row is not None
            c.new, c.updated = int(row[0]), int(row[1])
        c.unchanged = c.staged - c.rejected - c.new - c.updated
        counts[entity.name] = c
    return counts
