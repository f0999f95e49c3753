"""The ABC early-warning indicators (attendance, behaviour, course performance) of a student's
school year: the figures stored in student_indicators (migration 0016) turned into flags by
the cut points in the settings (INDICATOR_*; their defaults and sources are in settings.py).

The flags are computed here for an answer (`evaluate`) and in SQL for a filter of the at-risk
list (`filter_sql`), from the same cut points, so a filter keeps exactly the students whose
answer shows the flag."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.core.settings import Settings, names

Level = Literal["at_risk", "early_warning", "on_track"]
INDICATORS = ("attendance", "behaviour", "course")


@dataclass(frozen=True)
class CutPoints:
    attendance_at_risk: float
    attendance_early_warning: float
    chronic_share: float
    chronic_min_days: int
    incidents_at_risk: int
    incidents_early_warning: int
    suspensions: tuple[str, ...]
    failing_mark: float
    warning_mark: float
    maths: tuple[str, ...]
    english: tuple[str, ...]

    @classmethod
    def from_settings(cls, s: Settings) -> CutPoints:
        return cls(
            s.indicator_attendance_at_risk,
            s.indicator_attendance_early_warning,
            s.indicator_chronic_absence_share,
            s.indicator_chronic_min_enrolled_days,
            s.indicator_incidents_at_risk,
            s.indicator_incidents_early_warning,
            names(s.indicator_suspension_categories),
            s.indicator_failing_mark,
            s.indicator_warning_mark,
            names(s.indicator_maths_subjects),
            names(s.indicator_english_subjects),
        )


def _mean(marks: Mapping[str, Any], subjects: tuple[str, ...]) -> float | None:
    found = [float(v) for k, v in marks.items() if k in subjects and v is not None]
    return sum(found) / len(found) if found else None


def _level(at_risk: bool, warning: bool) -> Level:
    return "at_risk" if at_risk else "early_warning" if warning else "on_track"


def evaluate(row: Mapping[str, Any] | None, c: CutPoints) -> dict[str, Any] | None:
    """The indicators of one student_indicators row (None: the student has no record)."""
    if row is None or row.get("school_year") is None:
        return None
    enrolled, absent = int(row["enrolled_days"]), int(row["absent_days"])
    rate = round((enrolled - absent) / enrolled, 4) if enrolled else None
    chronic = absent >= c.chronic_share * enrolled if enrolled >= c.chronic_min_days else None
    categories = row.get("incident_categories") or {}
    incidents = int(row["incidents"])
    suspensions = sum(int(n) for k, n in categories.items() if k in c.suspensions)
    marks = row.get("subject_marks") or {}
    maths, english = _mean(marks, c.maths), _mean(marks, c.english)
    graded = [m for m in (maths, english) if m is not None]
    return {
        "school_year": row["school_year"],
        "attendance": {
            "level": None
            if rate is None
            else _level(rate < c.attendance_at_risk, rate < c.attendance_early_warning),
            "rate": rate,
            "enrolled_days": enrolled,
            "absent_days": absent,
            "chronic_absence": chronic,
        },
        "behaviour": {
            "level": _level(
                incidents > c.incidents_at_risk or suspensions > 0,
                incidents > c.incidents_early_warning,
            ),
            "incidents": incidents,
            "suspensions": suspensions,
        },
        "course": {
            "level": None
            if not graded
            else _level(
                any(m < c.failing_mark for m in graded), any(m < c.warning_mark for m in graded)
            ),
            "maths": None if maths is None else round(maths, 2),
            "english": None if english is None else round(english, 2),
            "failing_maths": None if maths is None else maths < c.failing_mark,
            "failing_english": None if english is None else english < c.failing_mark,
        },
    }


def from_row(row: Mapping[str, Any], c: CutPoints) -> dict[str, Any] | None:
    """The indicators of a query row carrying app.api.queries.INDICATOR_COLUMNS."""
    if row.get("indicator_year") is None:
        return None
    return evaluate(
        {
            "school_year": row["indicator_year"],
            "enrolled_days": row["enrolled_days"],
            "absent_days": row["absent_days"],
            "subject_marks": row["subject_marks"],
            "incidents": row["indicator_incidents"],
            "incident_categories": row["incident_categories"],
        },
        c,
    )


def _subject_mean(alias: str) -> str:
    return (
        f"(SELECT avg(e.value::numeric) FROM jsonb_each_text({alias}.subject_marks) e"
        " WHERE e.key = ANY (%s::text[]))"
    )


def filter_sql(
    indicator: str, level: Literal["at_risk", "early_warning"], c: CutPoints, alias: str = "i"
) -> tuple[str, list[Any]]:
    """A condition on a student_indicators row (`alias`) true when the indicator is at
    `level` or worse, as `evaluate` decides it; with its parameters."""
    worst = level == "at_risk"
    if indicator == "attendance":
        cut = c.attendance_at_risk if worst else c.attendance_early_warning
        return (
            f"({alias}.enrolled_days > 0 AND ({alias}.enrolled_days - {alias}.absent_days)"
            f" < %s::double precision * {alias}.enrolled_days)",
            [cut],
        )
    if indicator == "chronic_absence":
        return (
            f"({alias}.enrolled_days >= %s AND {alias}.absent_days"
            f" >= %s::double precision * {alias}.enrolled_days)",
            [c.chronic_min_days, c.chronic_share],
        )
    if indicator == "behaviour":
        cut = c.incidents_at_risk if worst else c.incidents_early_warning
        return (
            f"({alias}.incidents > %s OR {alias}.incident_categories ?| %s::text[])",
            [cut, list(c.suspensions)],
        )
    if indicator == "course":
        cut = c.failing_mark if worst else c.warning_mark
        mean = _subject_mean(alias)
        return (
            f"({mean} < %s::numeric OR {mean} < %s::numeric)",
            [list(c.maths), cut, list(c.english), cut],
        )
    raise ValueError(f"unknown indicator {indicator!r}")
