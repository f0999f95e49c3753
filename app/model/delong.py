"""DeLong's test of two AUCs measured on the same students (paired).

DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two or more correlated
receiver operating characteristic curves: a nonparametric approach", Biometrics 44(3):837-845,
computed with midranks as in Sun & Xu (2014), "Fast implementation of DeLong's algorithm for
comparing the areas under correlated receiver operating characteristic curves", IEEE Signal
Processing Letters 21(11):1389-1393. Deterministic (no resampling); R's pROC uses it by default
for paired curves. A test checks it against a stratified paired bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata


@dataclass(frozen=True)
class AucComparison:
    auc_a: float
    auc_b: float
    gain: float  # auc_a - auc_b
    se: float  # standard error of the gain
    low: float  # the gain's two-sided interval at `confidence`
    high: float
    confidence: float

    def supports_gain(self) -> bool:
        """The whole interval lies above zero: a gain the held-out students support."""
        return self.low > 0

    def describe(self) -> str:
        return (
            f"AUC gain {self.gain:+.3f}, {self.confidence:.0%} interval"
            f" [{self.low:+.3f}, {self.high:+.3f}]"
        )


def compare_aucs(
    y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, confidence: float = 0.95
) -> AucComparison:
    """AUC of scores a minus AUC of scores b on the same students (labels y, 0/1), with
    DeLong's standard error. Needs at least one student of each label."""
    y = np.asarray(y).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong needs at least one dropout and one stayer")
    scores = np.vstack([p_a, p_b]).astype(np.float64)
    aucs, v10, v01 = [], [], []
    for s in scores:
        pos, neg = s[y], s[~y]
        tx, ty = rankdata(pos), rankdata(neg)
        tz = rankdata(np.concatenate([pos, neg]))
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((tz[:m] - tx) / n)  # per dropout: share of stayers ranked below
        v01.append(1.0 - (tz[m:] - ty) / m)  # per stayer: share of dropouts ranked above
    s10 = np.cov(np.array(v10)) if m > 1 else np.zeros((2, 2))
    s01 = np.cov(np.array(v01)) if n > 1 else np.zeros((2, 2))
    cov = s10 / m + s01 / n
    se = float(np.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0)))
    gain = float(aucs[0] - aucs[1])
    z = float(norm.ppf(0.5 + confidence / 2))
    return AucComparison(
        float(aucs[0]), float(aucs[1]), gain, se, gain - z * se, gain + z * se, confidence
    )
