"""The fairness audit of a model's flags, per protected attribute and group, on the held-out
students of its scope.

Per group: how many students, the selection rate (the share flagged, risk >= the alert
threshold), PPV (of those flagged, the share who dropped out), the false-alarm rate (of those
who stayed, the share flagged) and recall (of those who dropped out, the share flagged); and
each figure's ratio to the largest group's (Aequitas's default reference, "maj"). A group of
fewer than FAIRNESS_MIN_GROUP_SIZE students is suppressed: neither its figures nor its ratios
are kept (they would be noise, and could single students out); the table says how many were.
Students whose attribute is not recorded form a group of their own, shown but never the
reference nor held to the bound.

The bound: a shown group whose ratio on any figure is under FAIRNESS_MIN_RATIO (or over its
inverse) is a breach (the four-fifths rule of thumb, 0.8, by default). FAIRNESS_ACTION says
whether a breach only warns (in the decision's reason and the report) or holds the promotion.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.model.training_data import NOT_RECORDED

FIGURES = ("selection_rate", "ppv", "false_alarm_rate", "recall")


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def group_figures(y: np.ndarray, flagged: np.ndarray) -> dict[str, Any]:
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    positives, n = int((y == 1).sum()), len(y)
    return {
        "n": n,
        "selection_rate": _rate(tp + fp, n),
        "ppv": _rate(tp, tp + fp),
        "false_alarm_rate": _rate(fp, n - positives),
        "recall": _rate(tp, positives),
    }


def attribute_table(
    y: np.ndarray, flagged: np.ndarray, groups: np.ndarray, min_size: int
) -> dict[str, Any]:
    """One attribute's table: its shown groups (largest first) with figures and ratios."""
    shown, suppressed = [], 0
    for group in sorted(set(groups.tolist())):
        inside = groups == group
        if int(inside.sum()) < min_size:
            suppressed += 1
            continue
        shown.append({"group": group, **group_figures(y[inside], flagged[inside])})
    shown.sort(key=lambda g: (-g["n"], g["group"]))
    candidates = [g for g in shown if g["group"] != NOT_RECORDED]
    reference = candidates[0] if candidates else None
    for g in shown:
        g["ratios"] = {
            f: (g[f] / reference[f] if reference and g[f] is not None and reference[f] else None)
            for f in FIGURES
        }
    return {
        "reference": reference["group"] if reference else None,
        "groups": shown,
        "suppressed_groups": suppressed,
    }


def breaches(table: dict[str, Any], bound: float) -> list[str]:
    """Each shown group's figure whose ratio to the reference is outside [bound, 1/bound]."""
    found = []
    for g in table["groups"]:
        if g["group"] == NOT_RECORDED:
            continue
        for f, ratio in g["ratios"].items():
            if ratio is not None and not bound <= ratio <= 1 / bound:
                found.append(f"{g['group']} {f.replace('_', ' ')} ratio {ratio:.2f}")
    return found


def audit(
    y: np.ndarray,
    p: np.ndarray,
    groups: dict[str, np.ndarray],
    threshold: float,
    min_size: int,
    bound: float,
) -> dict[str, Any]:
    """The audit of one scope's held-out students (labels y, risks p), per attribute."""
    flagged = p >= threshold
    tables = {a: attribute_table(y, flagged, g, min_size) for a, g in groups.items()}
    found = [f"{a}: {b}" for a, t in tables.items() for b in breaches(t, bound)]
    recorded = {a: int((g != NOT_RECORDED).sum()) for a, g in groups.items()}
    return {
        "threshold": threshold,
        "min_group_size": min_size,
        "bound": bound,
        "students": len(y),
        "recorded": recorded,
        "attributes": tables,
        "breaches": found,
    }
