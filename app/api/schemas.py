"""Request and response bodies of the API (pydantic), their bounds, and the error responses
every authenticated route documents."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from app.model.features import StudentFeatures

MAX_INT = 2**31 - 1
MAX_BIGINT = 2**63 - 1
MAX_INVOCATION_ROWS = 10_000


def _a_json_number(value: object) -> object:
    # Pydantic's lax mode (needed for 12.0) would also take true (1) and "12".
    if type(value) not in (int, float):
        raise ValueError("must be an integer")
    return value


# A JSON integer (12, or 12.0 as JSON Schema's "integer" allows), never a boolean or string.
SchoolIdIn = Annotated[int, Field(strict=False, ge=1, le=MAX_INT), BeforeValidator(_a_json_number)]


class ReasonOut(BaseModel):
    """One of the main contributions to a risk (app/model/risk_model.py: exact for the served
    model, adding up with the others to the risk minus the average student's)."""

    feature: str = Field(description="A feature of the model (the prior_* are last year's)")
    label: str = Field(description="The feature in plain words")
    value: float | str | None = Field(description="The student's value (null: missing)")
    school_median: float | str | None = Field(
        description="The median of the school's students (a category: the most common one)"
    )
    contribution: float = Field(
        description="Probability points this feature adds to the risk (negative: lowers it)"
    )
    contribution_log_odds: float = Field(description="The same, in log-odds")


def _reasons() -> Any:
    return Field(
        default_factory=list,
        description="The largest contributions to the risk, largest first (RISK_REASONS of them)",
    )


Level = Literal["at_risk", "early_warning", "on_track"]


class AttendanceIndicator(BaseModel):
    level: Level | None = Field(description="null: no attendance recorded that year")
    rate: float | None = Field(description="Share of enrolled days not absent")
    enrolled_days: int
    absent_days: int = Field(description="Absent or excused")
    chronic_absence: bool | None = Field(
        description="Missed the chronic-absence share of enrolled days or more (null: fewer"
        " enrolled days than the minimum counted)"
    )


class BehaviourIndicator(BaseModel):
    level: Level
    incidents: int
    suspensions: int


class CourseIndicator(BaseModel):
    level: Level | None = Field(description="null: no maths or English mark that year")
    maths: float | None = Field(description="Mean maths mark, percent")
    english: float | None = Field(description="Mean English mark, percent")
    failing_maths: bool | None
    failing_english: bool | None


class IndicatorsOut(BaseModel):
    """The ABC early-warning indicators of the student's current school year, by the cut
    points in the settings (INDICATOR_*)."""

    school_year: int
    attendance: AttendanceIndicator
    behaviour: BehaviourIndicator
    course: CourseIndicator


def indicators_out(found: dict[str, Any] | None) -> IndicatorsOut | None:
    """app.core.indicators.evaluate's answer as the response model."""
    return None if found is None else IndicatorsOut.model_validate(found)


class RiskOut(BaseModel):
    student_id: int
    school_id: int
    risk: float = Field(description="Calibrated probability of dropping out")
    at_risk: bool = Field(description="risk >= threshold")
    threshold: float
    model_scope: str = Field(description="'school-<id>' or 'district' (fallback)")
    model_version: str
    generation: int
    school_year: int | None = Field(description="The school year of the features (its end)")
    features: dict[str, float | None] = Field(
        description="The current school year's features and the prior year's (prior_*;"
        " null: no record that year)"
    )
    district_features: dict[str, float | str | None] = Field(
        default_factory=dict, description="The district's own features (null: missing)"
    )
    reasons: list[ReasonOut] = _reasons()
    indicators: IndicatorsOut | None = Field(default=None, description="null: no record")


class AtRiskItem(BaseModel):
    student_id: int
    first_name: str
    last_name: str
    grade: int
    risk: float
    model_version: str
    reasons: list[ReasonOut] = _reasons()
    indicators: IndicatorsOut | None = Field(default=None, description="null: no record")
    risk_change_30d: float | None = Field(
        default=None, description="Risk now minus 30 days ago (null: no history)"
    )
    open_intervention: bool = Field(default=False, description="An open or in-progress case")


class AtRiskPage(BaseModel):
    school_id: int
    min_risk: float
    generation: int
    limit: int
    items: list[AtRiskItem]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page")


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    school_id: SchoolIdIn | None = Field(default=None, description="Model of school")
    instances: list[StudentFeatures] = Field(min_length=1, max_length=1000)


class PredictionOut(BaseModel):
    risk: float
    at_risk: bool
    model_scope: str
    model_version: str
    reasons: list[ReasonOut] = _reasons()


class PredictOut(BaseModel):
    threshold: float
    predictions: list[PredictionOut]


class InvocationInstance(StudentFeatures):
    school_id: SchoolIdIn | None = None


class InvocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: list[InvocationInstance] = Field(min_length=1, max_length=MAX_INVOCATION_ROWS)


# Written out so the OpenAPI document has no dangling $defs reference.
INVOCATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["instances"],
    "additionalProperties": False,
    "properties": {
        "instances": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_INVOCATION_ROWS,
            "items": InvocationInstance.model_json_schema(),
        }
    },
}


class InvocationOut(BaseModel):
    predictions: list[PredictionOut]


class ModelVersionOut(BaseModel):
    version: str
    scope: str
    school_id: int | None
    promoted: bool
    is_current: bool
    created_at: datetime
    metrics: dict[str, float]
    reason: str | None = Field(description="The promotion gate's decision for this scope")
    report_url: str = Field(description="The run's model-quality report (HTML)")


class ModelsOut(BaseModel):
    school_id: int
    current_scope: str | None
    current_version: str | None
    versions: list[ModelVersionOut]


class Status(BaseModel):
    status: str
    detail: dict[str, Any] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    detail: Any


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or invalid API key"},
    403: {"model": ErrorOut, "description": "Key not scoped to this school"},
    429: {"model": ErrorOut, "description": "Rate limit exceeded; see Retry-After"},
    503: {"model": ErrorOut, "description": "Database or model unavailable; see Retry-After"},
}

# What a route that takes a body may answer besides: a body that is no JSON (or no UTF-8) and
# one over the size limit (BodyLimitMiddleware).
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Body is not valid JSON"},
    413: {"model": ErrorOut, "description": "Body over the size limit"},
}


class EventsIn(BaseModel):
    """A batch of events (app/jobs/events/validate.py: attendance_marked, mark_recorded,
    incident_logged). Each is checked on its own: a bad one is rejected, the others apply."""

    model_config = ConfigDict(extra="forbid")
    events: list[Any] = Field(
        min_length=1, description="At most EVENTS_MAX_BATCH (1,000 by default) events"
    )


class EventProblem(BaseModel):
    field: str
    problem: str


class EventAccepted(BaseModel):
    index: int = Field(description="Position in the posted batch")
    idempotency_key: str
    duplicate: bool = Field(description="The key was applied before: nothing written again")


class EventRejected(BaseModel):
    index: int
    idempotency_key: str | None
    problems: list[EventProblem]


class EventsOut(BaseModel):
    accepted: list[EventAccepted]
    rejected: list[EventRejected]


class AlertOut(BaseModel):
    id: int
    student_id: int
    status: str
    risk: float
    model_version: str | None
    raised_at: datetime
    overdue: bool = Field(description="Open and unacknowledged past ALERT_OVERDUE_DAYS")
    assigned_to: int | None = Field(description="A staff member's id")
    acknowledged_at: datetime | None
    acknowledged_by: str | None = Field(description="The name of the API key that did it")
    assigned_at: datetime | None
    assigned_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None


class AlertsOut(BaseModel):
    school_id: int
    items: list[AlertOut]


class AcknowledgeAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["acknowledge"]


class AssignAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["assign"]
    assignee_id: Annotated[int, Field(strict=True, ge=1, le=MAX_INT)] = Field(
        description="An active staff member of the alert's school"
    )


class ResolveAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["resolve"]
    resolution: Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")] = Field(
        description="Why the alert is resolved (not blank)"
    )


# What to do with an alert: acknowledge it, assign it to a staff member of its school, or
# resolve it with a reason; `action` says which (and which fields go with it).
AlertChange = AcknowledgeAlert | AssignAlert | ResolveAlert


class HistoryPoint(BaseModel):
    day: date
    risk: float
    generation: int
    model_version: str
    reasons: list[dict[str, Any]] | None = Field(description="null: the scorer gave none")
    indicators: IndicatorsOut | None


class HistoryOut(BaseModel):
    student_id: int
    school_id: int
    items: list[HistoryPoint] = Field(description="One per day the risk changed, newest first")


Status_ = Literal["open", "in_progress", "closed"]
Notes = Annotated[str, Field(max_length=2000)]


class InterventionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="One of INTERVENTION_TYPES", max_length=63)
    owner_id: Annotated[int, Field(strict=True, ge=1, le=MAX_INT)] = Field(
        description="A staff member of the student's school"
    )
    started_on: date
    ended_on: date | None = None
    status: Status_ = "open"
    notes: Notes | None = None
    outcome: Notes | None = Field(default=None, description="Outcome notes")

    @model_validator(mode="after")
    def _dates(self) -> InterventionIn:
        if self.ended_on is not None and self.ended_on < self.started_on:
            raise ValueError("ended_on is before started_on")
        return self


class InterventionChange(BaseModel):
    """The fields to change (absent: unchanged; ended_on, notes and outcome may be null)."""

    model_config = ConfigDict(extra="forbid")
    owner_id: Annotated[int, Field(strict=True, ge=1, le=MAX_INT)] | None = None
    started_on: date | None = None
    ended_on: date | None = None
    status: Status_ | None = None
    notes: Notes | None = None
    outcome: Notes | None = None


class InterventionOut(BaseModel):
    id: int
    student_id: int
    school_id: int
    type: str | None
    owner_id: int
    status: str
    started_on: date | None
    ended_on: date | None
    notes: str | None
    outcome: str | None
    created_at: datetime
    created_by: str | None
    updated_at: datetime | None
    updated_by: str | None


class InterventionsOut(BaseModel):
    student_id: int
    items: list[InterventionOut]
