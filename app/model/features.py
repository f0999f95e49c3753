"""The model's features: their order (also the CSV column order of /invocations) and bounds.

A student's features are those of their current school year (FEATURES) with the prior year's
beside them (PRIOR_FEATURES, missing when the student has no record that year), and the
district's own features (declared in its import, `inputs.py`). Missing values are NaN in the
matrices here; the model imputes them and says so with an indicator input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
    district_features: dict[FeatureName, DistrictValue] = Field(
        default_factory=dict,
        max_length=MAX_DISTRICT_FEATURES,
        description="The district's own features by name, as declared in its import"
        " (a number, a category, or null: missing)",
        # Names outside the pattern are refused: the schema says so (patternProperties alone
        # would let any other name through).
        json_schema_extra={"additionalProperties": False},
    )


def to_matrix(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Rows of feature dicts to the models' raw input matrix (float64, STANDARD_FEATURES
    order); a feature that is absent or None is NaN (missing)."""
    out = np.full((len(rows), len(STANDARD_FEATURES)), np.nan)
    for i, row in enumerate(rows):
        for j, name in enumerate(STANDARD_FEATURES):
            value = row.get(name)
            if value is not None:
                out[i, j] = float(value)
    return out


def district_values(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each row's district features ({} when it has none)."""
    return [dict(row.get("district_features") or {}) for row in rows]


def pad_standard(x: np.ndarray) -> np.ndarray:
    """A matrix of the current year's FEATURES only, widened to STANDARD_FEATURES (the prior
    year missing)."""
    if x.shape[1] == len(STANDARD_FEATURES):
        return x
    out = np.full((x.shape[0], len(STANDARD_FEATURES)), np.nan)
    out[:, : x.shape[1]] = x
    return out
