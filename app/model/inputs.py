"""What a model takes as input: the standard features (the current school year's and the prior
year's), the indicator features (feature set 3: derived from the indicators' figures with the
cut points the model was trained with, kept in its spec) and the district's own features,
turned into the columns the fitted model sees.

- A standard feature is one column; one that may be missing (the prior year's, an indicator
  feature) gets a second, its missing indicator, and a missing value is replaced by the
  training students' mean.
- A district's numeric feature likewise: its value (the mean when missing) and its indicator.
- A district's categorical feature: one column per allowed value (one-hot); missing is all 0.

Each column names its source feature, so a student's contributions (`risk_model.py`) add up
per feature. Protected attributes never reach this: the declarations refuse them by name, and
the training data never holds them (they are stored apart, `training_data.py`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from app.model.features import (
    FEATURE_SET_INDICATORS,
    FEATURE_SET_STANDARD,
    FEATURES,
    INDICATOR_FEATURES,
    INDICATOR_FIGURES,
    PRIOR_FEATURES,
    RAW_FEATURES,
    STANDARD_FEATURES,
    derive_indicators,
    pad_raw,
)

# Names no district feature may take: every raw input and derived feature.
RESERVED_NAMES = frozenset({*RAW_FEATURES, *INDICATOR_FEATURES})

MISSING = ":missing"  # suffix of a missing-value indicator column
# The protected attributes the audit reads (student_demographics) and common names of the same
# things: never a model input, whatever a district declares.
PROTECTED_ATTRIBUTES = (
    "sex",
    "race_ethnicity",
    "economically_disadvantaged",
    "english_learner",
    "disability",
)
PROTECTED_NAMES = frozenset(
    {
        *PROTECTED_ATTRIBUTES,
        *("gender", "race", "ethnicity", "hispanic_or_latino", "national_origin"),
        *("free_lunch", "reduced_lunch", "free_reduced_lunch", "frl", "lunch_status"),
        *("ell", "english_language_learner", "limited_english", "iep", "section_504"),
        *("special_education", "sped", "disabled", "religion", "sexual_orientation"),
    }
)


class DistrictFeatureError(ValueError):
    """A posted district feature the model does not take, or a value it refuses."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name, self.problem = name, problem


@dataclass(frozen=True)
class DistrictFeature:
    """One declared feature of a district (`district_features` table)."""

    name: str
    kind: Literal["numeric", "categorical"]
    low: float | None = None
    high: float | None = None
    allowed: tuple[str, ...] = ()

    def parse(self, value: Any) -> float | str | None:
        """A posted or stored value as this feature takes it (None: missing); raises
        DistrictFeatureError naming what is wrong."""
        if value is None:
            return None
        if self.kind == "numeric":
            number = _number(value)
            if number is None or not math.isfinite(number):
                raise DistrictFeatureError(self.name, "must be a finite number or null")
            assert self.low is not None and self.high is not None
            if not self.low <= number <= self.high:
                raise DistrictFeatureError(
                    self.name, f"out of range ({self.low:g} to {self.high:g})"
                )
            return number
        text = _category(value)
        if text not in self.allowed:
            raise DistrictFeatureError(self.name, f"not one of {', '.join(self.allowed)}")
        return text


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):  # stored values are the import's text
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _stored(feature: DistrictFeature, value: Any) -> float | str | None:
    """A value as stored or posted, missing when the declaration no longer admits it (a
    district narrowed a feature's bounds after importing values outside them)."""
    try:
        return feature.parse(value)
    except DistrictFeatureError:
        return None


def _category(value: Any) -> str:
    """A category as declared: numbers posted for coded categories (3 or 3.0) read as "3"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Column:
    name: str  # the model's input name, e.g. "prior_absences:missing" or "course=9119"
    source: str  # the feature it comes from


# What a spec stored before feature set 3 lacks reads as the class defaults below (unpickling
# sets only the attributes stored): feature set 2, no indicator cut points.
@dataclass
class InputSpec:
    """The columns of a model's input, built from its training data (`fit`), and the feature
    set they come from (the model's contract: `features.py`)."""

    district: tuple[DistrictFeature, ...] = ()
    # Training means of the columns that may be missing (prior year, indicator and district
    # numeric features).
    fill: dict[str, float] = field(default_factory=dict)
    columns: tuple[Column, ...] = ()
    feature_set: int = FEATURE_SET_STANDARD
    # Set 3: (chronic-absence share, its least enrolled days, failing mark) at training.
    indicator_cuts: tuple[float, float, float] | None = None

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        extras: Sequence[Mapping[str, Any]],
        district: Sequence[DistrictFeature] = (),
        indicator_cuts: tuple[float, float, float] | None = None,
    ) -> InputSpec:
        """The spec for training rows `x` (RAW_FEATURES, NaN missing; or STANDARD_FEATURES)
        and their district values `extras`; refuses a protected attribute as an input. With
        `indicator_cuts`, and indicator figures known for any training row, feature set 3."""
        for feature in district:
            if feature.name in PROTECTED_NAMES or feature.name in RESERVED_NAMES:
                raise ValueError(f"{feature.name!r} cannot be a model input")
        fill = {}
        for j, name in enumerate(STANDARD_FEATURES):
            if name in PRIOR_FEATURES:
                column = x[:, j]
                known = column[~np.isnan(column)]
                fill[name] = float(known.mean()) if len(known) else 0.0
        derived = _indicators(x, indicator_cuts)
        if derived is not None and np.isnan(_figures(x)).all():
            derived = None  # no indicator data at all (a district without attendance, marks
            # or incidents): their inputs would be constant, so the model is of set 2
        if derived is not None:
            for j, name in enumerate(INDICATOR_FEATURES):
                known = derived[:, j][~np.isnan(derived[:, j])]
                fill[name] = float(known.mean()) if len(known) else 0.0
        for feature in district:
            if feature.kind == "numeric":
                values = [feature.parse(e.get(feature.name)) for e in extras]
                known_values = [float(v) for v in values if v is not None]
                fill[feature.name] = (
                    float(np.mean(known_values)) if known_values else float(feature.low or 0)
                )
        columns: list[Column] = [Column(f, f) for f in FEATURES]
        for f in PRIOR_FEATURES:
            columns += [Column(f, f), Column(f + MISSING, f)]
        if derived is not None:
            for f in INDICATOR_FEATURES:
                columns += [Column(f, f), Column(f + MISSING, f)]
        for feature in district:
            if feature.kind == "numeric":
                columns += [Column(feature.name, feature.name)]
                columns += [Column(feature.name + MISSING, feature.name)]
            else:
                columns += [Column(f"{feature.name}={v}", feature.name) for v in feature.allowed]
        if derived is None:
            return cls(tuple(district), fill, tuple(columns))
        return cls(tuple(district), fill, tuple(columns), FEATURE_SET_INDICATORS, indicator_cuts)

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def sources(self) -> list[str]:
        """The features, in the order their columns first appear."""
        return list(dict.fromkeys(c.source for c in self.columns))

    def by_name(self) -> dict[str, DistrictFeature]:
        return {f.name: f for f in self.district}

    def check(self, extras: Mapping[str, Any]) -> None:
        """Raises DistrictFeatureError for a posted district feature this model does not take
        or a value it refuses."""
        known = self.by_name()
        for name, value in extras.items():
            if name not in known:
                raise DistrictFeatureError(name, "not a feature of this district's model")
            known[name].parse(value)

    def design(self, x: np.ndarray, extras: Sequence[Mapping[str, Any]] | None) -> np.ndarray:
        """The model's input matrix of raw rows `x` (RAW_FEATURES, NaN missing; a model of
        feature set 2 reads only their STANDARD_FEATURES) and their district values (values
        a stored row holds are valid by the import's checks)."""
        x, n = pad_raw(x), x.shape[0]
        # The features that may be missing (prior year, then set 3's indicators), each as two
        # columns: its value (the training mean where missing), then its missing indicator.
        # Assembled in one matrix with a few whole-array operations: the API scores one row
        # at a time, where each numpy call's fixed cost is what counts.
        names, maybe = PRIOR_FEATURES, x[:, len(FEATURES) : len(STANDARD_FEATURES)]
        if self.feature_set >= FEATURE_SET_INDICATORS:
            derived = _indicators(x, self.indicator_cuts)
            assert derived is not None, "a feature set 3 spec keeps its cut points"
            names, maybe = names + INDICATOR_FEATURES, np.hstack((maybe, derived))
        start, end = len(FEATURES), len(FEATURES) + 2 * len(names)
        district = self._district_part(n, extras) if self.district else None
        out = np.empty((n, end + (district.shape[1] if district is not None else 0)))
        out[:, :start] = x[:, :start]
        missing = np.isnan(maybe)
        out[:, start:end:2] = np.where(missing, [self.fill[name] for name in names], maybe)
        out[:, start + 1 : end : 2] = missing
        if district is not None:
            out[:, end:] = district
        return out

    def _district_part(self, n: int, extras: Sequence[Mapping[str, Any]] | None) -> np.ndarray:
        width = sum(2 if f.kind == "numeric" else len(f.allowed) for f in self.district)
        out = np.zeros((n, width))
        rows = extras if extras is not None else [{}] * n
        at = 0
        for feature in self.district:
            if feature.kind == "numeric":
                for i, row in enumerate(rows):
                    value = _stored(feature, row.get(feature.name))
                    if value is None:
                        out[i, at], out[i, at + 1] = self.fill[feature.name], 1.0
                    else:
                        out[i, at] = float(value)
                at += 2
            else:
                index = {v: k for k, v in enumerate(feature.allowed)}
                for i, row in enumerate(rows):
                    value = row.get(feature.name)
                    k = None if value is None else index.get(_category(value))
                    if k is not None:
                        out[i, at + k] = 1.0
                at += len(feature.allowed)
        return out

    def raw_values(
        self, x_row: np.ndarray, extras: Mapping[str, Any], sources: Sequence[str]
    ) -> list[Any]:
        """A student's values of features, as shown beside their contributions (None:
        missing); a yes/no indicator feature as 1.0 or 0.0. The indicators are derived once."""
        derived: np.ndarray | None = None
        out = []
        for source in sources:
            if source in STANDARD_FEATURES:
                value = float(x_row[STANDARD_FEATURES.index(source)])
            elif source in INDICATOR_FEATURES:
                if derived is None:
                    derived = _indicators(x_row[None, :], self.indicator_cuts)
                    assert derived is not None
                value = float(derived[0, INDICATOR_FEATURES.index(source)])
            else:
                out.append(_stored(self.by_name()[source], extras.get(source)))
                continue
            out.append(None if math.isnan(value) else value)
        return out


def _indicators(x: np.ndarray, cuts: tuple[float, float, float] | None) -> np.ndarray | None:
    """INDICATOR_FEATURES of raw rows (None: no cut points, or rows without the indicators'
    figures)."""
    if cuts is None or x.shape[1] < len(RAW_FEATURES):
        return None
    return derive_indicators(_figures(x), cuts)


def _figures(x: np.ndarray) -> np.ndarray:
    start = len(STANDARD_FEATURES)
    return x[:, start : start + len(INDICATOR_FIGURES)]
