"""The risk model and its exact explanation.

`RiskModel` is what training fits and the store keeps: an input spec (`inputs.py`) and a
StandardScaler + LogisticRegression, sigmoid-calibrated over 3 folds (sklearn's
CalibratedClassifierCV: the served risk is the mean of the three folds' calibrated
probabilities).

`FastRiskModel` is its numpy twin on the serving path (sklearn's per-call validation costs
milliseconds on one row; this costs microseconds), and it explains each risk exactly. Each
fold k is linear in the inputs d once its scaler and calibration are folded in: its log-odds
are  l_k(d) = w_k . d + c_k.  The model's log-odds are their mean over the folds,
L(d) = w . d + c  with  w = mean_k w_k,  c = mean_k c_k, so for a reference student r (the
training students' mean inputs):

    L(d) = L(r) + sum_j w_j (d_j - r_j)

Input j's contribution is w_j (d_j - r_j); a feature's is the sum over its inputs (a
one-hot feature's values, a value and its missing indicator). They add up exactly to the
student's log-odds minus the reference's. Stated in probability points, each is scaled by
(p - p(r)) / (L(d) - L(r)), where p is the served risk: the points add up to the student's
risk minus the reference student's. The served risk is the folds' mean probability, not the
sigmoid of their mean log-odds, so very near the reference the two can move in opposite
directions (a difference of a fraction of a point); there, and when L(d) = L(r), each is scaled
by p (1 - p), the slope at p, keeping every contribution's sign.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from app.model.features import FEATURE_SET_LEGACY, FEATURES, RAW_FEATURES
from app.model.inputs import DistrictFeature, InputSpec

CALIBRATION_FOLDS = 3


def build_estimator() -> CalibratedClassifierCV:
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000, C=1.0))]
    )
    return CalibratedClassifierCV(pipeline, method="sigmoid", cv=CALIBRATION_FOLDS)


class RiskModel:
    """A fitted model: its input spec and the calibrated estimator over the spec's inputs."""

    def __init__(self, spec: InputSpec, estimator: Any) -> None:
        self.spec = spec
        self.estimator = estimator

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        extras: Sequence[Mapping[str, Any]],
        y: np.ndarray,
        district: Sequence[DistrictFeature] = (),
        indicator_cuts: tuple[float, float, float] | None = None,
    ) -> RiskModel:
        spec = InputSpec.fit(x, extras, district, indicator_cuts)
        return cls(spec, build_estimator().fit(spec.design(x, extras), y))

    @property
    def input_names(self) -> list[str]:
        """The fitted model's inputs, in order (what the estimator was fitted on)."""
        return self.spec.input_names

    def predict_proba(
        self, x: np.ndarray, extras: Sequence[Mapping[str, Any]] | None = None
    ) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(self.spec.design(x, extras)))

    def log_odds(
        self, x: np.ndarray, extras: Sequence[Mapping[str, Any]] | None = None
    ) -> np.ndarray:
        """The model's log-odds: the mean over its calibration folds of each fold's calibrated
        log-odds (computed by sklearn, independently of the twin)."""
        d = self.spec.design(x, extras)
        folds = []
        for fold in self.estimator.calibrated_classifiers_:
            (calibrator,) = fold.calibrators
            decision = fold.estimator.decision_function(d)
            folds.append(-(calibrator.a_ * decision + calibrator.b_))
        return np.asarray(np.mean(folds, axis=0))


class LegacySpec(InputSpec):
    """The spec of a model stored before school years: the current year's nine features."""

    def __init__(self) -> None:
        from app.model.inputs import Column

        super().__init__((), {}, tuple(Column(f, f) for f in FEATURES), FEATURE_SET_LEGACY)

    def design(self, x: np.ndarray, extras: Sequence[Mapping[str, Any]] | None) -> np.ndarray:
        return x[:, : len(FEATURES)]


def as_risk_model(model: Any) -> RiskModel:
    """A stored model as a RiskModel (a bare estimator is a model stored before school years)."""
    return model if isinstance(model, RiskModel) else RiskModel(LegacySpec(), model)


class Contribution(NamedTuple):
    feature: str
    log_odds: float  # signed: positive raises the risk
    points: float  # the same in probability points


class FastRiskModel:
    """The same probabilities as a RiskModel from a few numpy operations, and each one's
    exact contributions (the module's docstring)."""

    def __init__(self, model: RiskModel) -> None:
        self.spec = model.spec
        weights, offsets, means = [], [], []
        for fold in model.estimator.calibrated_classifiers_:
            scaler = fold.estimator.named_steps["scale"]
            clf = fold.estimator.named_steps["clf"]
            (calibrator,) = fold.calibrators
            # Fold the scaler into the linear model: w.(x - m)/s + c = (w/s).x + (c - w.m/s),
            # then the sigmoid calibration a.d + b into both, so each fold is one dot product.
            coef = clf.coef_[0] / scaler.scale_
            intercept = clf.intercept_[0] - float(np.dot(coef, scaler.mean_))
            weights.append(calibrator.a_ * coef)
            offsets.append(calibrator.a_ * intercept + calibrator.b_)
            means.append(scaler.mean_)
        # (inputs, folds): one row of input times this gives every fold's a.d + b at once;
        # a fold's calibrated probability is 1 / (1 + exp(a.d + b)), its log-odds -(a.d + b).
        self.weights = np.ascontiguousarray(np.array(weights, dtype=np.float64).T)
        self.offsets = np.array(offsets, dtype=np.float64)
        self.fold_mean = np.full(len(offsets), 1.0 / len(offsets))  # mean as a dot product
        self.logit_weights = -self.weights @ self.fold_mean
        self.logit_offset = -float(self.offsets @ self.fold_mean)
        # The reference student: the training students' mean inputs (each fold's scaler saw
        # two thirds of them).
        self.reference = np.mean(means, axis=0)
        self.reference_log_odds = float(self.reference @ self.logit_weights) + self.logit_offset
        self.reference_risk = float(self._proba(self.reference[None, :])[0])
        # Contiguous runs of inputs per feature: np.add.reduceat sums each run.
        sources = [c.source for c in self.spec.columns]
        self.features = self.spec.sources
        self.starts = np.array([sources.index(f) for f in self.features])

    def _proba(self, d: np.ndarray) -> np.ndarray:
        z = d @ self.weights
        z += self.offsets
        np.exp(z, out=z)
        z += 1.0
        np.reciprocal(z, out=z)
        return np.asarray(z @ self.fold_mean)

    def predict_proba(
        self, x: np.ndarray, extras: Sequence[Mapping[str, Any]] | None = None
    ) -> np.ndarray:
        p = self._proba(self.spec.design(x, extras))
        out = np.empty((len(p), 2))
        out[:, 1] = p
        out[:, 0] = 1.0 - p
        return out

    def explain(
        self,
        x: np.ndarray,
        extras: Sequence[Mapping[str, Any]] | None = None,
        top: int | None = None,
    ) -> tuple[np.ndarray, list[list[Contribution]]]:
        """Each row's risk and its contributions per feature (the `top` largest), largest
        magnitude first (ties: in the features' order)."""
        d = self.spec.design(x, extras)
        risk = self._proba(d)
        per_input = (d - self.reference) * self.logit_weights
        per_feature = np.add.reduceat(per_input, self.starts, axis=1)
        out = []
        for i, p in enumerate(risk.tolist()):
            total = float(per_feature[i].sum())
            scale = (p - self.reference_risk) / total if abs(total) > 1e-9 else 0.0
            if scale <= 0:  # no change in log-odds (or folds disagreeing in sign): the slope
                scale = p * (1.0 - p)
            order = np.argsort(-np.abs(per_feature[i]), kind="stable")[:top]
            out.append(
                [
                    Contribution(
                        self.features[j], float(per_feature[i, j]), float(per_feature[i, j]) * scale
                    )
                    for j in order.tolist()
                ]
            )
        return risk, out


def fast_model(model: Any) -> Any:
    """The numpy twin of a stored model when it has the trained shape, else a RiskModel."""
    risk_model = as_risk_model(model)
    try:
        return FastRiskModel(risk_model)
    except (AttributeError, KeyError, ValueError, TypeError):
        return risk_model


def standard_row(values: Mapping[str, Any]) -> np.ndarray:
    """One student's raw row (RAW_FEATURES, NaN missing)."""
    return np.array([[np.nan if values.get(f) is None else float(values[f]) for f in RAW_FEATURES]])
