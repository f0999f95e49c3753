"""The model's features: their order (also the CSV column order of /invocations) and bounds.

A student's features are those of their current school year (FEATURES) with the prior year's
beside them (PRIOR_FEATURES, missing when the student has no record that year), the figures of
the ABC early-warning indicators of the same school year (INDICATOR_FIGURES, from the
student_indicators view) and the district's own features (declared in its import,
`inputs.py`). Missing values are NaN in the matrices here; the model imputes them and says so
with an indicator input.

Feature sets: what a stored model reads, declared by the model itself (`inputs.py`), so a model
of any set keeps scoring and a rollback to one works:
  1  FEATURES only (a bare estimator, stored before school years);
  2  STANDARD_FEATURES and the district's features;
  3  set 2 and the indicator features derived from INDICATOR_FIGURES (INDICATOR_FEATURES).
Every raw row is RAW_FEATURES wide; each model takes the columns of its own set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.core.indicators import CutPoints

# Columns of the student_features view, in model input order: the current school year's.
FEATURES: tuple[str, ...] = (
    "grade",
    "attendance_rate",
    "absences",
    "lates",
    "avg_mark",
    "min_mark",
    "failed_exams",
    "incidents",
    "severe_incidents",
)
# The prior school year's figures (NULL in the view when the student has no record that year).
PRIOR_FEATURES: tuple[str, ...] = tuple(f"prior_{f}" for f in FEATURES[1:])
# Every standard feature, in the order of the raw matrices the models take.
STANDARD_FEATURES: tuple[str, ...] = FEATURES + PRIOR_FEATURES
# The indicators' figures of the same school year, as the student_indicators view gives them:
# the raw inputs of feature set 3 (also the last columns of a version 2 CSV row).
INDICATOR_FIGURES: tuple[str, ...] = (
    "enrolled_days",
    "absent_days",
    "suspensions",
    "maths_mark",
    "english_mark",
)
# What a feature set 3 model derives from them with the cut points it was trained with.
INDICATOR_FEATURES: tuple[str, ...] = (
    "chronic_absence",
    "suspensions",
    "maths_mark",
    "english_mark",
    "failing_maths",
    "failing_english",
)
# Every raw input any model reads, in the order of the raw matrices the models take.
RAW_FEATURES: tuple[str, ...] = STANDARD_FEATURES + INDICATOR_FIGURES
FEATURE_SET_LEGACY, FEATURE_SET_STANDARD, FEATURE_SET_INDICATORS = 1, 2, 3
FEATURE_SET_NAMES = {
    FEATURE_SET_LEGACY: "the current year's nine features",
    FEATURE_SET_STANDARD: "this year's and last year's features",
    FEATURE_SET_INDICATORS: "with the early-warning indicators",
}
# The /invocations CSV layouts: version 1, the current year's FEATURES (what clients sent
# before school years; the other inputs missing); version 2, every raw input.
CSV_COLUMNS: dict[int, tuple[str, ...]] = {1: FEATURES, 2: RAW_FEATURES}

# Each feature in plain words, as a reason names it to a counsellor.
CURRENT_LABELS: dict[str, str] = {
    "grade": "grade",
    "attendance_rate": "attendance rate this year",
    "absences": "days absent this year",
    "lates": "days late this year",
    "avg_mark": "average exam mark this year",
    "min_mark": "lowest exam mark this year",
    "failed_exams": "exams failed this year",
    "incidents": "behaviour incidents this year",
    "severe_incidents": "serious behaviour incidents this year",
}
LABELS: dict[str, str] = {
    **CURRENT_LABELS,
    **{f"prior_{f}": CURRENT_LABELS[f].replace("this year", "last year") for f in FEATURES[1:]},
    "chronic_absence": "chronically absent this year",
    "suspensions": "suspensions this year",
    "maths_mark": "maths mark this year",
    "english_mark": "English mark this year",
    "failing_maths": "failing maths this year",
    "failing_english": "failing English this year",
}


def label(feature: str) -> str:
    """A feature in plain words (a district's own feature: its name, underscores as spaces)."""
    return LABELS.get(feature) or feature.replace("_", " ")


# A district feature's name (as declared in its import) and the most a request may post.
FEATURE_NAME = r"^[a-z][a-z0-9_]{0,62}$"
MAX_DISTRICT_FEATURES = 200

FeatureName = Annotated[str, StringConstraints(pattern=FEATURE_NAME)]
DistrictValue = float | Annotated[str, StringConstraints(max_length=64)] | None


class StudentFeatures(BaseModel):
    """One student's features, as posted for batch prediction."""

    # strict: a number is a JSON number, not a boolean (false would be 0) or a string;
    # allow_inf_nan=False: NaN, Infinity and 1e400 (inf once parsed) are refused.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    grade: float = Field(ge=1, le=12, description="School grade, 1-12")
    attendance_rate: float = Field(ge=0, le=1, description="Share of days present or late")
    absences: float = Field(ge=0, le=400, description="Days absent this year")
    lates: float = Field(ge=0, le=400, description="Days late this year")
    avg_mark: float = Field(ge=0, le=100, description="Mean exam mark, percent")
    min_mark: float = Field(ge=0, le=100, description="Lowest exam mark, percent")
    failed_exams: float = Field(ge=0, le=100, description="Exams under 40 percent")
    incidents: float = Field(ge=0, le=1000, description="Behaviour incidents")
    severe_incidents: float = Field(ge=0, le=1000, description="Incidents of severity 3")
    prior_attendance_rate: float | None = Field(default=None, ge=0, le=1)
    prior_absences: float | None = Field(default=None, ge=0, le=400)
    prior_lates: float | None = Field(default=None, ge=0, le=400)
    prior_avg_mark: float | None = Field(default=None, ge=0, le=100)
    prior_min_mark: float | None = Field(default=None, ge=0, le=100)
    prior_failed_exams: float | None = Field(default=None, ge=0, le=100)
    prior_incidents: float | None = Field(default=None, ge=0, le=1000)
    prior_severe_incidents: float | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="The prior_* fields: the prior school year's figures (null or absent:"
        " no record that year)",
    )
    enrolled_days: float | None = Field(
        default=None, ge=0, le=400, description="Days with an attendance record this year"
    )
    absent_days: float | None = Field(
        default=None, ge=0, le=400, description="Of those, absent or excused"
    )
    suspensions: float | None = Field(
        default=None, ge=0, le=1000, description="Incidents in a suspension category this year"
    )
    maths_mark: float | None = Field(
        default=None, ge=0, le=100, description="Mean maths mark this year, percent"
    )
    english_mark: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Mean English mark this year, percent. The indicator figures (enrolled_days"
        " to english_mark; null or absent: not known, imputed by a model that reads them)",
    )
    district_features: dict[FeatureName, DistrictValue] = Field(
        default_factory=dict,
        max_length=MAX_DISTRICT_FEATURES,
        description="The district's own features by name, as declared in its import"
        " (a number, a category, or null: missing)",
        # Names outside the pattern are refused: the schema says so (patternProperties alone
        # would let any other name through).
        json_schema_extra={"additionalProperties": False},
    )

    @model_validator(mode="after")
    def _absent_within_enrolled(self) -> StudentFeatures:
        if (
            self.absent_days is not None
            and self.enrolled_days is not None
            and self.absent_days > self.enrolled_days
        ):
            raise ValueError("absent_days must not exceed enrolled_days")
        return self


def to_matrix(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Rows of feature dicts to the models' raw input matrix (float64, RAW_FEATURES order); a
    feature that is absent or None is NaN (missing)."""
    out = np.full((len(rows), len(RAW_FEATURES)), np.nan)
    for i, row in enumerate(rows):
        for j, name in enumerate(RAW_FEATURES):
            value = row.get(name)
            if value is not None:
                out[i, j] = float(value)
    return out


def query_matrix(rows: Sequence[Mapping[str, Any]], cuts: CutPoints) -> np.ndarray:
    """to_matrix of the API's query rows, their indicator figures from the columns
    app.api.queries.INDICATOR_COLUMNS names when they are of the features' school year (none,
    or an earlier year's while the live features have moved on to a new one: missing)."""
    out = to_matrix(rows)
    for i, row in enumerate(rows):
        year = row.get("indicator_year")
        found = year is not None and year == row.get("school_year")
        out[i, len(STANDARD_FEATURES) :] = indicator_figures(
            [row[c] for c in ("enrolled_days", "absent_days", "subject_marks",
                              "incident_categories")] if found else [None] * 4,
            cuts,
        )  # fmt: skip
    return out


def district_values(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each row's district features ({} when it has none)."""
    return [dict(row.get("district_features") or {}) for row in rows]


def pad_raw(x: np.ndarray) -> np.ndarray:
    """A matrix of the first columns of RAW_FEATURES only (the current year's FEATURES, or
    STANDARD_FEATURES), widened to RAW_FEATURES (the rest missing)."""
    if x.shape[1] == len(RAW_FEATURES):
        return x
    out = np.full((x.shape[0], len(RAW_FEATURES)), np.nan)
    out[:, : x.shape[1]] = x
    return out


# The student_indicators row of a features row `f` of the same school year (nothing of a
# later year), and its columns that indicator_figures reads.
INDICATORS_JOIN = (
    " LEFT JOIN student_indicators i ON i.student_id = f.student_id"
    " AND i.school_year = f.school_year"
)
INDICATORS_SELECT = "i.enrolled_days, i.absent_days, i.subject_marks, i.incident_categories"


def indicator_figures(row: Sequence[Any], cuts: CutPoints) -> list[float]:
    """INDICATOR_FIGURES of the four INDICATORS_SELECT columns (all None: no indicators row;
    NaN where unknown), with the district's subject lists and suspension categories."""
    enrolled, absent, marks, categories = row
    if enrolled is None:
        return [np.nan] * len(INDICATOR_FIGURES)
    marks = marks or {}
    return [
        float(enrolled),
        float(absent),
        float(sum(int(n) for k, n in (categories or {}).items() if k in cuts.suspensions)),
        _mean_of(marks, cuts.maths),
        _mean_of(marks, cuts.english),
    ]


def raw_rows(rows: Sequence[Sequence[Any]], start: int, cuts: CutPoints) -> np.ndarray:
    """The raw matrix (RAW_FEATURES) of query rows holding STANDARD_FEATURES from column
    `start`, then district_features, then the INDICATORS_SELECT columns (NULL: NaN)."""
    end = start + len(STANDARD_FEATURES)
    out = np.empty((len(rows), len(RAW_FEATURES)))
    out[:, : len(STANDARD_FEATURES)] = np.array(
        [r[start:end] for r in rows], dtype=np.float64
    ).reshape(-1, len(STANDARD_FEATURES))
    for i, r in enumerate(rows):
        out[i, len(STANDARD_FEATURES) :] = indicator_figures(r[end + 1 : end + 5], cuts)
    return out


def derive_indicators(figures: np.ndarray, cuts: tuple[float, float, float]) -> np.ndarray:
    """INDICATOR_FEATURES of rows of INDICATOR_FIGURES (NaN where unknown), with cut points
    (chronic-absence share, its least enrolled days, failing mark) as app.core.indicators
    applies them: chronic absence is unknown under the least enrolled days, a failing flag
    without a mark."""
    share, min_days, failing = cuts
    enrolled, absent, suspensions, maths, english = figures.T
    with np.errstate(invalid="ignore"):
        counted = (enrolled >= min_days) & ~np.isnan(absent)
        chronic = np.where(counted, (absent >= share * enrolled).astype(np.float64), np.nan)
        fail_maths = np.where(np.isnan(maths), np.nan, (maths < failing).astype(np.float64))
        fail_english = np.where(np.isnan(english), np.nan, (english < failing).astype(np.float64))
    return np.column_stack([chronic, suspensions, maths, english, fail_maths, fail_english])


def _mean_of(marks: Mapping[str, Any], subjects: Sequence[str]) -> float:
    found = [float(v) for k, v in marks.items() if k in subjects and v is not None]
    return sum(found) / len(found) if found else np.nan
