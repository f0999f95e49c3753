"""The promotion gate: which model serves each scope after a training run, and why.

A school's new model is promoted only if, on that school's own held-out students (which no
model of this run trained on):

- the held-out set has at least MIN_HOLDOUT_POSITIVES dropouts and MIN_HOLDOUT_NEGATIVES
  stayers, and the model reaches MIN_PROMOTION_AUC (and MIN_PRECISION_AT_K when set);
- its AUC gain over the district model is one the students support: the gain's interval
  (DeLong, paired, at PROMOTION_CONFIDENCE: `delong.py`) lies above zero, and the gain is
  more than PROMOTION_TOLERANCE. A gain inside its interval's noise keeps the district model;
- it is not shown worse than the school's current model (the interval of its gain over the
  current one is not wholly below zero): a retrained model replaces its predecessor unless
  the students say it is worse;
- with FAIRNESS_ACTION=hold, its flags breach no fairness bound (`fairness.py`).

Otherwise the school keeps its current model if that one still reaches the minimum AUC on the
same students and is not shown worse than the district model, and is served by the district
model if not. The district model, everyone's fallback, is promoted when it is not worse than
the current one beyond the tolerance (AUC and Brier), reaches MIN_PRECISION_AT_K, and (hold)
breaches no fairness bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from app.core.settings import Settings
from app.model.delong import AucComparison

NEW, CURRENT, DISTRICT_MODEL = "new", "current", "district"


@dataclass(frozen=True)
class Decision:
    promoted: bool
    serves: str  # NEW, CURRENT or DISTRICT_MODEL: what serves the scope after this run
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SchoolEvidence:
    """What the gate weighs for a school, all on its held-out students."""

    new: dict[str, Any]  # the new model's figures (figures.py)
    vs_district: AucComparison | None  # new model against the district model
    current_auc: float | None = None
    vs_current: AucComparison | None = None  # new model against the current school model
    current_vs_district: AucComparison | None = None
    fairness_breaches: list[str] = field(default_factory=list)


def not_worse(new: dict[str, Any], current: dict[str, Any] | None, tol: float) -> bool:
    if current is None:
        return True
    return new["auc"] >= current["auc"] - tol and new["brier"] <= current["brier"] + tol


def _quality_refusal(m: dict[str, Any], breaches: list[str], s: Settings) -> str:
    """Why a model with these figures may not be promoted, besides AUC (empty: it may)."""
    p_at_k = m.get("precision_at_k")
    if s.min_precision_at_k and (p_at_k is None or p_at_k < s.min_precision_at_k):
        shown = "undefined" if p_at_k is None else f"{p_at_k:.3f}"
        return f"precision at k {shown} below the minimum {s.min_precision_at_k:.2f}"
    if breaches and s.fairness_action == "hold":
        return f"fairness bound {s.fairness_min_ratio:g} breached ({'; '.join(breaches)}): held"
    return ""


def district_decision(
    new: dict[str, Any],
    current: dict[str, Any] | None,
    settings: Settings,
    breaches: list[str] | None = None,
) -> Decision:
    tol = settings.promotion_tolerance
    refusal = _quality_refusal(new, breaches or [], settings)
    warning = _warning(breaches or [], settings)
    if refusal:
        return Decision(False, CURRENT, refusal)
    if current is None:
        return Decision(True, NEW, f"first district model (AUC {new['auc']:.3f}){warning}")
    versus = (
        f"AUC {new['auc']:.3f} / Brier {new['brier']:.3f}",
        f"the current {current['auc']:.3f} / {current['brier']:.3f} beyond {tol:g}",
    )
    if not_worse(new, current, tol):
        return Decision(True, NEW, f"{versus[0]} not worse than {versus[1]}{warning}")
    return Decision(False, CURRENT, f"{versus[0]} worse than {versus[1]}")


def _warning(breaches: list[str], s: Settings) -> str:
    if not breaches or s.fairness_action == "hold":
        return ""
    return f"; fairness warning ({'; '.join(breaches)})"


def _size_refusal(auc: float, holdout: dict[str, Any], s: Settings) -> str:
    """Why a school model with this held-out AUC cannot be judged or is too weak."""
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
    return ""


def _gain_refusal(vs: AucComparison | None, s: Settings) -> str:
    if vs is None:
        return "no comparison with the district model on this school's held-out students"
    if not vs.supports_gain() or vs.gain <= s.promotion_tolerance:
        return (
            f"{vs.describe()} over the district model on this school's held-out students: not"
            f" a gain they support (the interval must lie above 0, the gain exceed"
            f" {s.promotion_tolerance:g})"
        )
    return ""


def school_decision(evidence: SchoolEvidence, settings: Settings) -> Decision:
    new = evidence.new
    refusal = (
        _size_refusal(new["auc"] if new["auc"] is not None else 0.0, new, settings)
        or _gain_refusal(evidence.vs_district, settings)
        or _quality_refusal(new, evidence.fairness_breaches, settings)
    )
    vs_current = evidence.vs_current
    if not refusal and vs_current is not None and vs_current.high < 0:
        refusal = f"{vs_current.describe()} over the current school model: worse"
    if not refusal:
        assert evidence.vs_district is not None
        reason = f"{evidence.vs_district.describe()} over the district model"
        if vs_current is not None:
            reason += f"; {vs_current.describe()} over the current school model"
        return Decision(True, NEW, reason + _warning(evidence.fairness_breaches, settings))
    current_auc, current_vs = evidence.current_auc, evidence.current_vs_district
    if (
        current_auc is not None
        and not _size_refusal(current_auc, new, settings)
        and (current_vs is None or current_vs.high >= 0)
    ):
        return Decision(False, CURRENT, f"{refusal}; the current school model still passes")
    return Decision(False, DISTRICT_MODEL, f"{refusal}; served by the district model")


def auc_of(y: np.ndarray, p: np.ndarray) -> float:
    return round(float(roc_auc_score(y, p)), 4)
