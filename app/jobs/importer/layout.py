"""The native import layout: one CSV per entity, its columns, types, ranges, keys and references.

This table is the one place the layout is defined: validation SQL is generated from it, and
app/README.md documents it (a test checks they agree). Each entity is staged in a temporary
table of text columns, then checked column by column, for duplicate keys and for references.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ATTENDANCE_STATUSES = ("present", "absent", "late", "excused")
FEATURE_KINDS = ("numeric", "categorical")
# Protected attributes (migration 0015): OneRoster 1.2's sex values; the federal race and
# ethnicity categories (Hispanic or Latino of any race; two or more races).
SEXES = ("female", "male", "other", "unspecified")
RACES_ETHNICITIES = (
    "american_indian_or_alaska_native",
    "asian",
    "black_or_african_american",
    "hispanic_or_latino",
    "native_hawaiian_or_other_pacific_islander",
    "white",
    "two_or_more_races",
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # text | int | decimal | date | timestamp | bool | enum
    required: bool = True
    low: float | None = None  # inclusive bounds of int / decimal columns
    high: float | None = None
    choices: tuple[str, ...] = ()  # enum values
    ref: str | None = None  # the entity whose sourced_id this column names
    target: str | None = None  # the target table's column (None: not stored, or resolved)
    default: str | None = None  # what an empty optional cell means (None: NULL)

    def describe(self) -> str:
        """What the column accepts, for the README and error messages."""
        if self.kind in ("int", "decimal") and self.low is not None:
            return f"{self.kind} {self.low:g}..{self.high:g}"
        if self.kind == "enum":
            return " / ".join(self.choices)
        if self.ref:
            return f"sourced_id of {self.ref}"
        return self.kind


@dataclass(frozen=True)
class Entity:
    name: str  # also the CSV file name without .csv
    table: str  # the target table
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # the columns that identify a row of the district's export
    doc: str = ""
    derived: dict[str, str] = field(default_factory=dict)  # target column <- SQL of the row

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _sid(required: bool = True) -> Column:
    return Column("sourced_id", "text", required, target="sourced_id")


ENTITIES: tuple[Entity, ...] = (
    Entity(
        "districts",
        "districts",
        (_sid(), Column("name", "text", target="name")),
        key=("sourced_id",),
        doc="the district (OneRoster org of type district)",
    ),
    Entity(
        "district_features",
        "district_features",
        (
            Column("district_sourced_id", "text", ref="districts"),
            Column("name", "text", target="name"),
            Column("kind", "enum", choices=FEATURE_KINDS, target="kind"),
            Column("low", "decimal", required=False, low=-1e12, high=1e12, target="low"),
            Column("high", "decimal", required=False, low=-1e12, high=1e12, target="high"),
            Column("allowed_values", "text", required=False, target="allowed_values"),
            Column("protected", "bool", required=False),
            Column("description", "text", required=False, target="description"),
        ),
        key=("district_sourced_id", "name"),
        doc="the district's own features, sent as extra columns of students.csv: numeric"
        " (`low`, `high`) or categorical (`allowed_values`, separated by `|`); a feature"
        " declared `protected` is refused",
    ),
    Entity(
        "schools",
        "schools",
        (
            _sid(),
            Column("district_sourced_id", "text", ref="districts"),
            Column("name", "text", target="name"),
        ),
        key=("sourced_id",),
        doc="one row per school",
    ),
    Entity(
        "students",
        "students",
        (
            _sid(),
            Column("school_sourced_id", "text", ref="schools"),
            Column("first_name", "text", target="first_name"),
            Column("last_name", "text", target="last_name"),
            Column("grade", "int", low=1, high=12, target="grade"),
            Column("enrolled_on", "date", target="enrolled_on"),
            Column("is_active", "bool", required=False, target="is_active", default="true"),
            Column("dropped_out", "bool", required=False, target="dropped_out"),
        ),
        key=("sourced_id",),
        doc="one row per student; `dropped_out` is the outcome label (empty: still open)",
    ),
    Entity(
        "demographics",
        "student_demographics",
        (
            Column("student_sourced_id", "text", ref="students"),
            Column("sex", "enum", required=False, choices=SEXES, target="sex"),
            Column(
                "race_ethnicity",
                "enum",
                required=False,
                choices=RACES_ETHNICITIES,
                target="race_ethnicity",
            ),
            Column(
                "economically_disadvantaged",
                "bool",
                required=False,
                target="economically_disadvantaged",
            ),
            Column("english_learner", "bool", required=False, target="english_learner"),
            Column("disability", "bool", required=False, target="disability"),
        ),
        key=("student_sourced_id",),
        doc="protected attributes, for the fairness audit only: stored apart, never a model"
        " input, not readable by the API (empty: not recorded)",
    ),
    Entity(
        "exams",
        "exams",
        (
            _sid(),
            Column("school_sourced_id", "text", ref="schools"),
            Column("subject", "text", target="subject"),
            Column("held_on", "date", target="held_on"),
            Column("max_marks", "decimal", low=0.01, high=9999.99, target="max_marks"),
        ),
        key=("sourced_id",),
        doc="one row per exam (OneRoster lineItem)",
    ),
    Entity(
        "results",
        "marks",
        (
            Column("student_sourced_id", "text", ref="students"),
            Column("exam_sourced_id", "text", ref="exams"),
            Column("marks_obtained", "decimal", low=0, high=9999.99, target="marks_obtained"),
        ),
        key=("student_sourced_id", "exam_sourced_id"),
        doc="one mark per student and exam, at most the exam's max_marks",
    ),
    Entity(
        "attendance",
        "attendance",
        (
            Column("student_sourced_id", "text", ref="students"),
            Column("date", "date", target="date"),
            Column("status", "enum", choices=ATTENDANCE_STATUSES, target="status"),
        ),
        key=("student_sourced_id", "date"),
        doc="one row per student and school day",
    ),
    Entity(
        "incidents",
        "behaviour_incidents",
        (
            _sid(),
            Column("student_sourced_id", "text", ref="students"),
            Column("occurred_at", "timestamp", target="occurred_at"),
            Column("severity", "int", low=1, high=3, target="severity"),
            Column("category", "text", target="category"),
        ),
        key=("sourced_id",),
        doc="one row per behaviour incident; severity 3 is severe",
    ),
)

BY_NAME = {e.name: e for e in ENTITIES}
# Dates outside this range are refused as typos (a year 0205, a 1900 default of a blank cell).
DATE_RANGE = ("1990-01-01", "2100-12-31")
MAX_TEXT = 255
