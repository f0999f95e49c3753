"""The figures of a model on held-out students, as schools use its risks.

Schools act on the students flagged at the alert threshold, and on the top of each school's
list, as far as a caseload reaches. So besides AUC and Brier:

- PPV (precision): of the students flagged (risk >= ALERT_THRESHOLD), the share who dropped
  out; its complement, the false discovery rate, is "how often a flag is wrong". Undefined
  (None) when nobody is flagged.
- False-alarm rate: of the students who stayed, the share flagged (the false-positive rate,
  FP / (FP + TN)).
- Recall at the threshold: of the students who dropped out, the share flagged.
- Precision and recall at k: each school's top k students by risk, k being a caseload:
  CASELOAD_SHARE of the school's students, rounded down (as the DSSG triage toolkit's
  percentile cut-offs), at least one. Ties in risk are broken by the order the students were
  given in (student id), so the figure is the same on every run. Pooled over the schools of
  the scope: a district model's top k is each school's own top k together.
- Reliability: per tenth of the risk scale, the mean predicted risk against the observed
  dropout rate (and how many students fell in it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss, roc_auc_score

RELIABILITY_BINS = 10


def caseload(n: int, share: float) -> int:
    """The top-k size of a school with n held-out students."""
    return max(1, math.floor(n * share)) if n else 0


def top_k_mask(p: np.ndarray, schools: np.ndarray, share: float) -> np.ndarray:
    """Each school's k highest risks (ties: the earlier row first)."""
    mask = np.zeros(len(p), dtype=bool)
    for sid in np.unique(schools).tolist():
        idx = np.flatnonzero(schools == sid)
        order = idx[np.argsort(-p[idx], kind="stable")]
        mask[order[: caseload(len(idx), share)]] = True
    return mask


def reliability(y: np.ndarray, p: np.ndarray) -> list[dict[str, float]]:
    """Per tenth of the risk scale holding students: mean predicted risk, observed rate, n."""
    bins = np.minimum((p * RELIABILITY_BINS).astype(int), RELIABILITY_BINS - 1)
    out = []
    for b in range(RELIABILITY_BINS):
        inside = bins == b
        if inside.any():
            out.append(
                {
                    "predicted": round(float(p[inside].mean()), 4),
                    "observed": round(float(y[inside].mean()), 4),
                    "n": int(inside.sum()),
                }
            )
    return out


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def figures(
    y: np.ndarray, p: np.ndarray, schools: np.ndarray, threshold: float, share: float
) -> dict[str, Any]:
    """Every figure of one scope's held-out students (labels y, risks p, their schools)."""
    flagged = p >= threshold
    top = top_k_mask(p, schools, share)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    tp, fp = int((flagged & (y == 1)).sum()), int((flagged & (y == 0)).sum())
    top_tp = int((top & (y == 1)).sum())
    auc = round(float(roc_auc_score(y, p)), 4) if 0 < positives < len(y) else None
    return {
        "auc": auc,  # None: the students are all of one outcome
        "brier": round(float(brier_score_loss(y, p)), 4),
        "accuracy": round(float(((p >= threshold) == (y == 1)).mean()), 4),
        "recall_at_threshold": _ratio(tp, positives) or 0.0,
        "ppv": _ratio(tp, tp + fp),
        "false_alarm_rate": _ratio(fp, negatives),
        "flagged": tp + fp,
        "caseload_k": int(top.sum()),
        "precision_at_k": _ratio(top_tp, int(top.sum())),
        "recall_at_k": _ratio(top_tp, positives),
        "threshold": threshold,
        "n_test": len(y),
        "positives_test": positives,
        "negatives_test": negatives,
        "reliability": reliability(y, p),
    }


def flat_metrics(found: dict[str, Any]) -> dict[str, float]:
    """The numbers of `figures` that are defined (model_versions.metrics holds numbers only)."""
    return {
        k: v
        for k, v in found.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
