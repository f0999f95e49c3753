"""The roster and gradebook parts of OneRoster 1.2 CSV, mapped onto the native staging tables.

    orgs.csv (type district / school)         -> districts, schools
    users.csv + enrollments.csv (role student) -> students (school: the primary enrollment's)
    classes.csv + lineItems.csv               -> exams (school: the line item's class's)
    results.csv                               -> results
    demographics.csv (students only)          -> demographics (sex, race/ethnicity)

Rows whose status is `tobedeleted` are skipped (import never deletes; such a user is imported
inactive), and so are results scored `exempt` or `not submitted`. OneRoster has no outcome
label, no attendance and no incidents: those come as native files of the same bundle (a
OneRoster student keeps the `dropped_out` a native students.csv gave it). Its demographics
have sex and race/ethnicity but no economic disadvantage, English learner or disability: a
native demographics.csv adds them. Demographics rows of anyone but a student (of the bundle or
imported before) are skipped, never stored.
"""

from __future__ import annotations

from typing import Any

import psycopg

# The columns each mapped file must have (OneRoster's CSV binding has every column in every
# file, empty where unused).
REQUIRED: dict[str, tuple[str, ...]] = {
    "orgs.csv": ("sourcedId", "status", "name", "type", "parentSourcedId"),
    "users.csv": ("sourcedId", "status", "enabledUser", "givenName", "familyName", "grades"),
    "enrollments.csv": ("userSourcedId", "schoolSourcedId", "role", "status", "beginDate"),
    "classes.csv": ("sourcedId", "schoolSourcedId"),
    "lineItems.csv": ("sourcedId", "status", "title", "assignDate", "dueDate",
                      "classSourcedId", "resultValueMax"),
    "results.csv": ("status", "lineItemSourcedId", "studentSourcedId", "scoreStatus", "score"),
    "demographics.csv": ("sourcedId", "status", "sex", "americanIndianOrAlaskaNative", "asian",
                         "blackOrAfricanAmerican", "nativeHawaiianOrOtherPacificIslander",
                         "white", "demographicRaceTwoOrMoreRaces", "hispanicOrLatinoEthnicity"),
}  # fmt: skip
FILES = frozenset(REQUIRED)

# What a native column is called in the OneRoster file it came from, for the problem list.
ALIASES: dict[tuple[str, str], str] = {
    ("orgs.csv", "sourced_id"): "sourcedId",
    ("orgs.csv", "district_sourced_id"): "parentSourcedId",
    ("users.csv", "sourced_id"): "sourcedId",
    ("users.csv", "school_sourced_id"): "enrollments.csv schoolSourcedId",
    ("users.csv", "first_name"): "givenName",
    ("users.csv", "last_name"): "familyName",
    ("users.csv", "grade"): "grades",
    ("users.csv", "enrolled_on"): "enrollments.csv beginDate",
    ("lineItems.csv", "sourced_id"): "sourcedId",
    ("lineItems.csv", "school_sourced_id"): "classSourcedId (its class's schoolSourcedId)",
    ("lineItems.csv", "subject"): "title",
    ("lineItems.csv", "held_on"): "dueDate",
    ("lineItems.csv", "max_marks"): "resultValueMax",
    ("results.csv", "student_sourced_id"): "studentSourcedId",
    ("results.csv", "exam_sourced_id"): "lineItemSourcedId",
    ("results.csv", "marks_obtained"): "score",
    ("demographics.csv", "student_sourced_id"): "sourcedId",
    ("demographics.csv", "race_ethnicity"): "the race flags and hispanicOrLatinoEthnicity",
}


def table(name: str) -> str:
    return "or_" + name.removesuffix(".csv").lower()


LIVE = "status IS DISTINCT FROM 'tobedeleted'"
# OneRoster's race flags, as the federal categories: Hispanic or Latino of any race, then two
# or more races (flagged, or more than one flag), then the one race flagged.
RACE_FLAGS = (
    ("americanIndianOrAlaskaNative", "american_indian_or_alaska_native"),
    ("asian", "asian"),
    ("blackOrAfricanAmerican", "black_or_african_american"),
    ("nativeHawaiianOrOtherPacificIslander", "native_hawaiian_or_other_pacific_islander"),
    ("white", "white"),
)
_FLAG = "coalesce(lower(d.\"{}\"), '') IN ('true', '1')"
RACE_SQL = (
    f"CASE WHEN {_FLAG.format('hispanicOrLatinoEthnicity')} THEN 'hispanic_or_latino'"
    f" WHEN {_FLAG.format('demographicRaceTwoOrMoreRaces')}"
    f" OR ({' + '.join(f'({_FLAG.format(f)})::int' for f, _ in RACE_FLAGS)}) > 1"
    " THEN 'two_or_more_races' "
    + " ".join(f"WHEN {_FLAG.format(f)} THEN '{v}'" for f, v in RACE_FLAGS)
    + " END"
)

# Each mapping: (the files it needs, the native entity it fills, its INSERT).
MAPPINGS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("orgs.csv",),
        "districts",
        "INSERT INTO imp_districts (file, row, sourced_id, name)"
        f" SELECT 'orgs.csv', row, \"sourcedId\", name FROM or_orgs"
        f" WHERE type = 'district' AND {LIVE}",
    ),
    (
        ("orgs.csv",),
        "schools",
        "INSERT INTO imp_schools (file, row, sourced_id, district_sourced_id, name)"
        ' SELECT \'orgs.csv\', row, "sourcedId", "parentSourcedId", name FROM or_orgs'
        f" WHERE type = 'school' AND {LIVE}",
    ),
    (
        ("users.csv", "enrollments.csv"),
        "students",
        "INSERT INTO imp_students (file, row, sourced_id, school_sourced_id, first_name,"
        " last_name, grade, enrolled_on, is_active)"
        ' SELECT \'users.csv\', u.row, u."sourcedId", e.school, u."givenName", u."familyName",'
        " nullif(split_part(u.grades, ',', 1), ''),"
        ' coalesce(e.began, left(u."dateLastModified", 10)),'
        " CASE WHEN u.status = 'tobedeleted' OR lower(u.\"enabledUser\") = 'false'"
        " THEN 'false' ELSE 'true' END"
        " FROM or_users u JOIN ("
        '   SELECT "userSourcedId" AS uid, min(left("beginDate", 10)) AS began,'
        '   (array_agg("schoolSourcedId" ORDER BY'
        "     coalesce(lower(\"primary\"), 'false') = 'true' DESC, \"beginDate\"))[1] AS school"
        f"   FROM or_enrollments WHERE role = 'student' AND {LIVE} GROUP BY 1"
        ' ) e ON e.uid = u."sourcedId"',
    ),
    (
        ("lineItems.csv", "classes.csv"),
        "exams",
        "INSERT INTO imp_exams (file, row, sourced_id, school_sourced_id, subject, held_on,"
        " max_marks)"
        ' SELECT \'lineItems.csv\', l.row, l."sourcedId", c."schoolSourcedId", l.title,'
        ' left(coalesce(l."dueDate", l."assignDate"), 10), l."resultValueMax"'
        ' FROM or_lineitems l LEFT JOIN or_classes c ON c."sourcedId" = l."classSourcedId"'
        f" WHERE l.{LIVE}",
    ),
    (
        ("results.csv",),
        "results",
        "INSERT INTO imp_results (file, row, student_sourced_id, exam_sourced_id,"
        " marks_obtained)"
        ' SELECT \'results.csv\', row, "studentSourcedId", "lineItemSourcedId", score'
        f" FROM or_results WHERE {LIVE}"
        " AND coalesce(lower(\"scoreStatus\"), '') NOT IN ('exempt', 'not submitted')",
    ),
    (
        ("demographics.csv",),
        "demographics",
        "INSERT INTO imp_demographics (file, row, student_sourced_id, sex, race_ethnicity)"
        f" SELECT 'demographics.csv', d.row, d.\"sourcedId\", nullif(lower(d.sex), ''), {RACE_SQL}"
        f' FROM or_demographics d WHERE d.{LIVE} AND (d."sourcedId" IN'
        " (SELECT sourced_id FROM imp_students)"
        ' OR EXISTS (SELECT 1 FROM students s WHERE s.sourced_id = d."sourcedId"))',
    ),
)
# The native columns each mapping provides (so only they are updated on re-import).
PROVIDES: dict[str, set[str]] = {
    "districts": {"sourced_id", "name"},
    "schools": {"sourced_id", "district_sourced_id", "name"},
    "students": {
        "sourced_id", "school_sourced_id", "first_name", "last_name", "grade", "enrolled_on",
        "is_active",
    },
    "exams": {"sourced_id", "school_sourced_id", "subject", "held_on", "max_marks"},
    "results": {"student_sourced_id", "exam_sourced_id", "marks_obtained"},
    "demographics": {"student_sourced_id", "sex", "race_ethnicity"},
}  # fmt: skip


def map_staged(conn: psycopg.Connection[Any], staged: set[str]) -> dict[str, set[str]]:
    """Fill the native staging tables from the staged OneRoster files; the native columns
    provided per entity. A mapping runs only when all the files it needs were staged."""
    provided: dict[str, set[str]] = {}
    for needs, entity, insert in MAPPINGS:
        if needs[0] not in staged:
            continue
        missing = [n for n in needs if n not in staged]
        if missing:
            conn.execute(
                "INSERT INTO imp_problems VALUES (%s, 1, '', NULL, %s)",
                (needs[0], f"needs {', '.join(missing)} in the same bundle"),
            )
            continue
        conn.execute(insert)
        provided[entity] = PROVIDES[entity]
    return provided
