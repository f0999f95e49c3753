"""Fitting and judging the models of a run, per scope: the district model, each trainable
school's model, their figures and fairness audit on held-out students, and the evidence the
promotion gate weighs (`promotion.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from app.core.settings import Settings
from app.model.artifacts import ModelStore, Pointer
from app.model.delong import AucComparison, compare_aucs
from app.model.fairness import audit
from app.model.features import FEATURE_SET_NAMES, FEATURE_SET_STANDARD
from app.model.figures import figures
from app.model.inputs import DistrictFeature
from app.model.promotion import (
    Decision,
    SchoolEvidence,
    auc_of,
    district_decision,
    school_decision,
)
from app.model.risk_model import RiskModel, as_risk_model
from app.model.served_models import DISTRICT, school_scope, scope_school_id
from app.model.training_data import Dataset

MIN_CLASS_COUNT = 10  # each class needs this many rows for a calibrated split


@dataclass
class Fitted:
    """A run's models and what was measured of them, by scope."""

    models: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    holdout: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    fairness: dict[str, dict[str, Any]] = field(default_factory=dict)
    fallback: list[int] = field(default_factory=list)


def evaluate(
    model: Any,
    x: np.ndarray,
    extras: list[dict[str, Any]],
    y: np.ndarray,
    schools: np.ndarray,
    settings: Settings,
) -> dict[str, Any]:
    p = model.predict_proba(x, extras)[:, 1]
    return figures(y, p, schools, settings.alert_threshold, settings.caseload_share)


def indicator_cuts(settings: Settings) -> tuple[float, float, float] | None:
    """The cut points a model of feature set 3 derives its indicator features with (None:
    MODEL_INDICATOR_FEATURES is off)."""
    if not settings.model_indicator_features:
        return None
    return (
        settings.indicator_chronic_absence_share,
        float(settings.indicator_chronic_min_enrolled_days),
        settings.indicator_failing_mark,
    )


def fit_scope(
    data: Dataset,
    rows: np.ndarray,
    test: np.ndarray,
    declarations: list[DistrictFeature],
    settings: Settings,
) -> tuple[RiskModel, dict[str, Any], np.ndarray]:
    """A model fitted on `rows` & ~test and its figures and risks on `rows` & test."""
    train, held = rows & ~test, rows & test
    model = RiskModel.fit(
        data.x[train], data.take(train), data.y[train], declarations, indicator_cuts(settings)
    )
    extras = data.take(held)
    metrics = evaluate(model, data.x[held], extras, data.y[held], data.schools[held], settings)
    metrics["n_train"] = int(train.sum())
    return model, metrics, model.predict_proba(data.x[held], extras)[:, 1]


def trainable(y: np.ndarray, settings: Settings) -> bool:
    positives = int(y.sum())
    return len(y) >= settings.min_school_students and min(positives, len(y) - positives) >= (
        MIN_CLASS_COUNT
    )


def audit_scope(
    y: np.ndarray, p: np.ndarray, groups: dict[str, np.ndarray], mask: np.ndarray, s: Settings
) -> dict[str, Any]:
    subset = {a: g[mask] for a, g in groups.items()}
    return audit(y, p, subset, s.alert_threshold, s.fairness_min_group_size, s.fairness_min_ratio)


def held_out(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    return {"y": [int(v) for v in y], "p": [round(float(v), 5) for v in p]}


def fit_district(
    data: Dataset,
    test: np.ndarray,
    declarations: list[DistrictFeature],
    groups: dict[str, np.ndarray],
    settings: Settings,
) -> Fitted:
    everyone = np.ones(len(data.y), dtype=bool)
    model, metrics, p = fit_scope(data, everyone, test, declarations, settings)
    return Fitted(
        {DISTRICT: model},
        {DISTRICT: metrics},
        {DISTRICT: held_out(data.y[test], p)},
        {DISTRICT: audit_scope(data.y[test], p, groups, test, settings)},
    )


def fit_schools(
    data: Dataset,
    test: np.ndarray,
    district: Any,
    declarations: list[DistrictFeature],
    groups: dict[str, np.ndarray],
    settings: Settings,
) -> Fitted:
    """Each trainable school's model, its held-out figures, risks (with the district model's
    on the same students) and audit; and the schools too small for a model of their own."""
    out = Fitted()
    for sid in np.unique(data.schools).tolist():
        mask = data.schools == sid
        if not trainable(data.y[mask], settings):
            out.fallback.append(int(sid))
            continue
        scope = school_scope(sid)
        held = mask & test
        out.models[scope], out.metrics[scope], p = fit_scope(
            data, mask, test, declarations, settings
        )
        p_district = district.predict_proba(data.x[held], data.take(held))[:, 1]
        out.metrics[scope]["district_auc"] = _auc_or_none(data.y[held], p_district)
        out.holdout[scope] = {
            **held_out(data.y[held], p),
            "p_district": [round(float(v), 5) for v in p_district],
        }
        out.fairness[scope] = audit_scope(data.y[held], p, groups, held, settings)
    return out


def _auc_or_none(y: np.ndarray, p: np.ndarray) -> float | None:
    return auc_of(y, p) if 0 < int(y.sum()) < len(y) else None


def _compare(y: np.ndarray, a: np.ndarray, b: np.ndarray, s: Settings) -> AucComparison | None:
    if not 0 < int(y.sum()) < len(y):
        return None
    return compare_aucs(y, a, b, s.promotion_confidence)


def decide(
    store: ModelStore,
    current: Pointer,
    fitted: Fitted,
    data: Dataset,
    test: np.ndarray,
    settings: Settings,
) -> dict[str, Decision]:
    """The gate's decision for every school scope fitted (the district's: `decide_district`).
    A school's current model is scored on the school's held-out students of this run."""
    decisions: dict[str, Decision] = {}
    for scope, m in fitted.metrics.items():
        if scope == DISTRICT:
            continue
        held = (data.schools == scope_school_id(scope)) & test
        y = data.y[held]
        p_new = np.array(fitted.holdout[scope]["p"])
        p_district = np.array(fitted.holdout[scope]["p_district"])
        evidence = SchoolEvidence(
            m,
            _compare(y, p_new, p_district, settings),
            fairness_breaches=fitted.fairness[scope]["breaches"],
        )
        if evidence.vs_district is not None:
            m["auc_gain_vs_district"] = round(evidence.vs_district.gain, 4)
            m["auc_gain_low"] = round(evidence.vs_district.low, 4)
            m["auc_gain_high"] = round(evidence.vs_district.high, 4)
        cur_version = current.scopes.get(scope)
        if cur_version is not None and 0 < int(y.sum()) < len(y):
            cur_model = as_risk_model(store.load_model(cur_version, scope))
            p_cur = cur_model.predict_proba(data.x[held], data.take(held))[:, 1]
            evidence.current_auc = m["current_auc"] = auc_of(y, p_cur)
            evidence.vs_current = _compare(y, p_new, p_cur, settings)
            evidence.current_vs_district = _compare(y, p_cur, p_district, settings)
        decisions[scope] = school_decision(evidence, settings)
    return decisions


def decide_district(
    store: ModelStore, current: Pointer, fitted: Fitted, settings: Settings
) -> Decision:
    cur_version = current.scopes.get(DISTRICT)
    cur_manifest = store.manifest(cur_version) if cur_version else None
    cur_metrics = (cur_manifest or {}).get("metrics", {}).get(DISTRICT)
    breaches = fitted.fairness.get(DISTRICT, {}).get("breaches", [])
    decision = district_decision(fitted.metrics[DISTRICT], cur_metrics, settings, breaches)
    if cur_manifest is None:
        return decision
    # A change of inputs is named in the reason (a manifest before feature sets: set 2).
    new, old = (
        as_risk_model(fitted.models[DISTRICT]).spec.feature_set,
        cur_manifest.get("feature_set", FEATURE_SET_STANDARD),
    )
    if new == old:
        return decision
    change = f"inputs: feature set {new} ({FEATURE_SET_NAMES[new]}) after the current {old}"
    return replace(decision, reason=f"{decision.reason}; {change}")
