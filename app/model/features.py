"""The model's features: their order (also the CSV column order of /invocations) and bounds."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Columns of the student_features view, in model input order.
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


def to_matrix(rows: list[dict[str, Any]]) -> np.ndarray:
    """Rows of feature dicts to the model's input matrix (float64, FEATURES order)."""
    return np.array([[float(r[f]) for f in FEATURES] for r in rows], dtype=np.float64)
