"""A district's own features: their declarations (`district_features.csv`) and their values,
extra columns of `students.csv`.

Each extra column of students.csv must be declared for the student's district, in the bundle
or by an earlier import. Its cells are checked against the declaration (a number within
`low`..`high`, or one of `allowed_values`) and for text PostgreSQL cannot store, every problem
named by file, row and column like the layout's own; an empty cell is an explicitly missing
value (stored as null; the model imputes it and says so). A declaration names a feature once
per district; a feature declared `protected`, or named as a protected attribute, is refused:
protected attributes go to demographics.csv, never into a model.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql

from app.core.text import NOT_UTF8_PROBLEM, NUL_PROBLEM
from app.jobs.importer.layout import BY_NAME
from app.jobs.importer.source import NOT_UTF8_MARK, NUL_MARK
from app.model.features import FEATURE_NAME
from app.model.inputs import PROTECTED_NAMES, RESERVED_NAMES

STAGED_PREFIX = "feature__"  # a feature's column in imp_students (never a layout column)
MAX_ALLOWED = 100  # categories of one feature
MAX_CATEGORY = 64  # characters of one category
RESERVED = frozenset(
    {*RESERVED_NAMES, "file", "row", *(c.name for c in BY_NAME["students"].columns)}
)
NUMBER = (
    "pg_input_is_valid({v}, 'numeric')"
    " AND lower(btrim({v})) NOT IN ('nan', 'infinity', '+infinity', '-infinity')"
)


def staged(name: str) -> str:
    return STAGED_PREFIX + name


def is_candidate(column: str) -> bool:
    """A students.csv column that may be a declared feature (checked once all is staged)."""
    return bool(re.fullmatch(FEATURE_NAME, column)) and column not in RESERVED


def stage(conn: psycopg.Connection[Any], names: list[str]) -> None:
    for name in names:
        conn.execute(
            sql.SQL("ALTER TABLE imp_students ADD COLUMN IF NOT EXISTS {} text").format(
                sql.Identifier(staged(name))
            )
        )


def check_declarations(conn: psycopg.Connection[Any]) -> None:
    """The checks of district_features.csv beyond the layout's types: a feature's name, that
    it is not protected, and what its kind needs."""
    protected = ", ".join(f"'{n}'" for n in sorted(PROTECTED_NAMES))
    reserved = ", ".join(f"'{n}'" for n in sorted(RESERVED))
    checks = (
        ("name", "s.name !~ '" + FEATURE_NAME + "'",
         "'not a feature name (a lower-case letter, then letters, digits or _, at most 63)'"),
        ("name", f"s.name IN ({reserved})", "'the name of a standard column or feature'"),
        ("name", f"s.name IN ({protected})",
         "'a protected attribute: never a model input (send it in demographics.csv)'"),
        ("protected", "lower(s.protected) IN ('true', 't', 'yes', 'y', '1', 'on')",
         "'declared protected: a protected attribute is never a model input (send it in"
         " demographics.csv)'"),
        ("low", "s.kind = 'numeric' AND (s.low IS NULL OR s.high IS NULL)",
         "'a numeric feature needs low and high'"),
        ("high", f"s.kind = 'numeric' AND CASE WHEN {NUMBER.format(v='s.low')}"
         f" AND {NUMBER.format(v='s.high')} THEN s.low::numeric >= s.high::numeric END",
         "'must be above low'"),
        ("allowed_values", "s.kind = 'numeric' AND s.allowed_values IS NOT NULL",
         "'only for a categorical feature'"),
        ("low", "s.kind = 'categorical' AND (s.low IS NOT NULL OR s.high IS NOT NULL)",
         "'only for a numeric feature'"),
        ("allowed_values", "s.kind = 'categorical' AND s.allowed_values IS NULL",
         "'a categorical feature needs its allowed values (separated by |)'"),
        ("allowed_values", "s.kind = 'categorical' AND (SELECT count(*) <> count(DISTINCT v)"
         f" OR bool_or(v = '' OR length(v) > {MAX_CATEGORY}) OR count(*) > {MAX_ALLOWED}"
         " FROM unnest(string_to_array(s.allowed_values, '|')) v)",
         f"'values must be distinct, not empty, at most {MAX_CATEGORY} characters, at most"
         f" {MAX_ALLOWED}'"),
    )  # fmt: skip
    for column, condition, why in checks:
        conn.execute(
            f"INSERT INTO imp_problems SELECT s.file, s.row, '{column}', s.{column}, {why}"
            f" FROM imp_district_features s WHERE {condition}"
        )


# The declarations in force per district's sourced id: the bundle's (valid) ones, else the
# stored ones.
DECLARED = (
    "SELECT d.district_sourced_id AS district, d.name, d.kind, d.low, d.high,"
    " d.allowed_values FROM imp_district_features d"
    " WHERE NOT EXISTS (SELECT 1 FROM imp_problems x WHERE x.file = d.file AND x.row = d.row)"
    " UNION ALL SELECT x.sourced_id, f.name, f.kind, f.low::text, f.high::text,"
    " f.allowed_values FROM district_features f JOIN districts x ON x.id = f.district_id"
    " WHERE NOT EXISTS (SELECT 1 FROM imp_district_features d"
    "                   WHERE d.district_sourced_id = x.sourced_id AND d.name = f.name)"
)
# Each staged student's district's sourced id (its school in the bundle, else stored).
STUDENT_DISTRICT = (
    "SELECT s.*, coalesce(bs.district_sourced_id, dd.sourced_id) AS district"
    " FROM imp_students s LEFT JOIN imp_schools bs ON bs.sourced_id = s.school_sourced_id"
    " LEFT JOIN schools sc ON sc.sourced_id = s.school_sourced_id"
    " LEFT JOIN districts dd ON dd.id = sc.district_id"
)


def check_values(conn: psycopg.Connection[Any], names: list[str]) -> None:
    """Every feature column of students.csv: declared (by some district: else the header is
    refused), and each value valid for the declaration of its student's district."""
    conn.execute(f"CREATE TEMP TABLE imp_declared AS {DECLARED}")
    for name in names:
        found = conn.execute("SELECT 1 FROM imp_declared WHERE name = %s", (name,)).fetchone()
        if found is None:
            conn.execute(
                "INSERT INTO imp_problems VALUES ('students.csv', 1, %s, NULL, %s)",
                (name, "unknown column (not in the layout, nor a declared district feature)"),
            )
            continue
        v = f"s.{staged(name)}"
        conn.execute(
            f"INSERT INTO imp_problems SELECT file, row, %s, val, why FROM ("
            f" SELECT s.file, s.row, {v} AS val, CASE"
            f" WHEN {v} IS NULL THEN NULL"
            f" WHEN strpos({v}, chr({ord(NUL_MARK)})) > 0 THEN %s"
            f" WHEN strpos({v}, chr({ord(NOT_UTF8_MARK)})) > 0 THEN %s"
            " WHEN d.name IS NULL THEN 'not a feature declared for this student''s district'"
            f" WHEN d.kind = 'numeric' AND lower(btrim({v})) IN ('nan', '+nan', '-nan')"
            " THEN 'NaN'"
            f" WHEN d.kind = 'numeric' AND lower(btrim({v})) ~ '^[+-]?inf(inity)?$'"
            " THEN 'infinite'"
            f" WHEN d.kind = 'numeric' AND NOT pg_input_is_valid({v}, 'numeric')"
            " THEN 'not a number'"
            f" WHEN d.kind = 'numeric' AND {v}::numeric NOT BETWEEN d.low::numeric"
            " AND d.high::numeric THEN 'out of range (' || d.low || ' to ' || d.high || ')'"
            f" WHEN d.kind = 'categorical' AND NOT {v} = ANY (string_to_array("
            " d.allowed_values, '|')) THEN 'not one of ' || replace(d.allowed_values, '|', ', ')"
            f" END AS why FROM ({STUDENT_DISTRICT}) s"
            " LEFT JOIN imp_declared d ON d.district = s.district AND d.name = %s"
            ") p WHERE why IS NOT NULL",
            (name, NUL_PROBLEM, NOT_UTF8_PROBLEM, name),
        )


def values_sql(names: list[str]) -> str:
    """SQL of a staged student's features as a JSON object ({"name": "value" | null})."""
    parts = []
    for i in range(0, len(names), 50):  # jsonb_build_object takes at most 100 arguments
        # Names match FEATURE_NAME (checked before staging): safe to quote as they are.
        pairs = ", ".join(f"'{n}', s.{staged(n)}" for n in names[i : i + 50])
        parts.append(f"jsonb_build_object({pairs})")
    return " || ".join(parts)
