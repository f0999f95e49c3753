"""The events POST /v1/events takes, validated one by one with the import's rules: each field's
type, range and allowed values come from the import layout (app/jobs/importer/layout.py), the one
definition of what a fact may hold. What needs the database (the student is the tenant's, the
exam is the student's school's, a mark at most the exam's maximum) is checked by
app/jobs/events/apply.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from app.core.text import NOT_UTF8_PROBLEM, text_problem
from app.jobs.importer.layout import ATTENDANCE_STATUSES, BY_NAME, DATE_RANGE, MAX_TEXT

MAX_BIGINT = 2**63 - 1
MAX_INT = 2**31 - 1
LOW_DATE, HIGH_DATE = (date.fromisoformat(d) for d in DATE_RANGE)
_MARK = BY_NAME["results"].column("marks_obtained")
_SEVERITY = BY_NAME["incidents"].column("severity")


def _in_range(value: date) -> date:
    if not LOW_DATE <= value <= HIGH_DATE:
        raise ValueError(f"date out of range ({DATE_RANGE[0]} to {DATE_RANGE[1]})")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone (ISO 8601, e.g. 2025-09-01T10:00:00Z)")
    _in_range(value.date())
    return value


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT),
    AfterValidator(_storable),
]
StudentRef = Annotated[int, Field(ge=1, le=MAX_BIGINT, description="The student's id")]


class _Event(BaseModel):
    # strict: a number is a JSON number (not "12" or true); allow_inf_nan=False: no NaN.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    idempotency_key: Text = Field(
        description="Unique per event within its school; a repeated key is applied once"
    )
    student_id: StudentRef


class AttendanceMarked(_Event):
    type: Literal["attendance_marked"]
    date: Annotated[date, Field(strict=False), AfterValidator(_in_range)]
    status: Literal[ATTENDANCE_STATUSES]  # type: ignore[valid-type]


class MarkRecorded(_Event):
    type: Literal["mark_recorded"]
    exam_id: Annotated[int, Field(ge=1, le=MAX_INT, description="The exam's id")]
    marks_obtained: Annotated[
        float,
        Field(strict=False, ge=_MARK.low, le=_MARK.high, description="At most the exam's max"),
    ]


class IncidentLogged(_Event):
    type: Literal["incident_logged"]
    occurred_at: Annotated[datetime, Field(strict=False), AfterValidator(_aware)]
    severity: Annotated[int, Field(ge=_SEVERITY.low, le=_SEVERITY.high, description="3: severe")]
    category: Text


Event = Annotated[AttendanceMarked | MarkRecorded | IncidentLogged, Field(discriminator="type")]
EVENT = TypeAdapter(Event)
KINDS = ("attendance_marked", "mark_recorded", "incident_logged")


def problems_of(errors: list[Any]) -> list[dict[str, str]]:
    """pydantic's errors as {field, problem}, never echoing the refused value."""
    out = []
    for e in errors:
        # A discriminated union puts the event type first in the location: drop it.
        loc = [str(p) for p in e["loc"] if p not in KINDS]
        # A lone surrogate: pydantic refuses it before the field's own check, in its words.
        problem = NOT_UTF8_PROBLEM if e["type"] == "string_unicode" else e["msg"]
        out.append({"field": ".".join(loc) or "event", "problem": problem})
    return out


def parse(raw: Any) -> tuple[Event | None, list[dict[str, str]]]:
    """One posted event: the event, or the problems that refuse it."""
    try:
        return EVENT.validate_python(raw), []
    except ValidationError as exc:
        return None, problems_of(exc.errors())


def key_of(raw: Any) -> str | None:
    """The idempotency key of a posted event, when it has a readable one (for the answer)."""
    key = raw.get("idempotency_key") if isinstance(raw, dict) else None
    if not isinstance(key, str) or len(key) > MAX_TEXT or text_problem(key):
        return None
    return key.strip()
