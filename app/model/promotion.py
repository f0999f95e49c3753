"""The promotion gate: which model serves each scope after a training run, and why.

A school's new model is promoted only if, on that school's own held-out students (which no
model of this run trained on), it beats the district model AND the school's current model by
more than PROMOTION_TOLERANCE in AUC, reaches MIN_PROMOTION_AUC, and the held-out set has at
least MIN_HOLDOUT_POSITIVES dropouts and MIN_HOLDOUT_NEGATIVES stayers (fewer, and one
student's label moves the AUC by more than the tolerance). Otherwise the school keeps its
current model if that one still passes the same gate on the same students, and is served by
the district model if not. The district model, everyone's fallback, is promoted when it is not
worse than the current one beyond the tolerance (AUC and Brier).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from app.core.settings import Settings
from app.model.artifacts import ModelStore, Pointer
from app.model.served_models import DISTRICT, scope_school_id

NEW, CURRENT, DISTRICT_MODEL = "new", "current", "district"


@dataclass(frozen=True)
class Decision:
    promoted: bool
    serves: str  # NEW, CURRENT or DISTRICT_MODEL: what serves the scope after this run
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def not_worse(new: dict[str, float], current: dict[str, float] | None, tol: float) -> bool:
    if current is None:
        return True
    return new["auc"] >= current["auc"] - tol and new["brier"] <= current["brier"] + tol


def district_decision(
    new: dict[str, float], current: dict[str, float] | None, settings: Settings
) -> Decision:
    tol = settings.promotion_tolerance
    if current is None:
        return Decision(True, NEW, f"first district model (AUC {new['auc']:.3f})")
    if not_worse(new, current, tol):
        return Decision(
            True,
            NEW,
            f"AUC {new['auc']:.3f} / Brier {new['brier']:.3f} not worse than the current"
            f" {current['auc']:.3f} / {current['brier']:.3f} beyond {tol:g}",
        )
    return Decision(
        False,
        CURRENT,
        f"AUC {new['auc']:.3f} / Brier {new['brier']:.3f} worse than the current"
        f" {current['auc']:.3f} / {current['brier']:.3f} beyond {tol:g}",
    )


def _refusal(auc: float, holdout: dict[str, float], district_auc: float, s: Settings) -> str:
    """Why a school model with this held-out AUC may not serve (empty: it may)."""
    positives, negatives = int(holdout["positives_test"]), int(holdout["negatives_test"])
    if positives < s.min_holdout_positives:
        return (
            f"held-out set too small to judge: {positives} dropouts"
            f" (minimum {s.min_holdout_positives})"
        )
    if negatives < s.min_holdout_negatives:
        return (
            f"held-out set too small to judge: {negatives} stayers"
            f" (minimum {s.min_holdout_negatives})"
        )
    if auc < s.min_promotion_auc:
        return f"AUC {auc:.3f} below the minimum {s.min_promotion_auc:.2f}"
    if auc <= district_auc + s.promotion_tolerance:
        return (
            f"AUC {auc:.3f} does not beat the district model's {district_auc:.3f} on this"
            f" school's held-out students by more than {s.promotion_tolerance:g}"
        )
    return ""


def school_decision(
    new: dict[str, float],
    district_auc: float,
    current_auc: float | None,
    settings: Settings,
) -> Decision:
    """`new` holds the new model's held-out metrics; `district_auc` and `current_auc` are the
    district model's and the current school model's AUC on the same held-out students."""
    tol = settings.promotion_tolerance
    refusal = _refusal(new["auc"], new, district_auc, settings)
    if not refusal and current_auc is not None and new["auc"] <= current_auc + tol:
        refusal = (
            f"AUC {new['auc']:.3f} does not beat the current model's {current_auc:.3f} on this"
            f" school's held-out students by more than {tol:g}"
        )
    if not refusal:
        versus = f"the district model's {district_auc:.3f}"
        if current_auc is not None:
            versus += f" and the current model's {current_auc:.3f}"
        return Decision(True, NEW, f"AUC {new['auc']:.3f} beats {versus} by more than {tol:g}")
    if current_auc is not None and not _refusal(current_auc, new, district_auc, settings):
        return Decision(False, CURRENT, f"{refusal}; the current school model still passes")
    return Decision(False, DISTRICT_MODEL, f"{refusal}; served by the district model")


def auc_on(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    return round(float(roc_auc_score(y, model.predict_proba(x)[:, 1])), 4)


def decide(
    store: ModelStore,
    current: Pointer,
    metrics: dict[str, dict[str, float]],
    x: np.ndarray,
    y: np.ndarray,
    schools: np.ndarray,
    test: np.ndarray,
    settings: Settings,
) -> dict[str, Decision]:
    """The gate's decision for every trained scope. A school's current model is scored on
    the school's held-out students of this run."""
    decisions: dict[str, Decision] = {}
    for scope, m in metrics.items():
        cur_version = current.scopes.get(scope)
        if scope == DISTRICT:
            cur_manifest = store.manifest(cur_version) if cur_version else None
            cur_metrics = cur_manifest["metrics"].get(scope) if cur_manifest else None
            decisions[scope] = district_decision(m, cur_metrics, settings)
            continue
        held = (schools == scope_school_id(scope)) & test
        current_auc = None
        if cur_version is not None:
            current_model = store.load_model(cur_version, scope)
            current_auc = auc_on(current_model, x[held], y[held])
            m["current_auc"] = current_auc
        decisions[scope] = school_decision(m, m["district_auc"], current_auc, settings)
    return decisions
