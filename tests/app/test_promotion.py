"""The promotion gate: a school's model serves it only when, on its own held-out students, its
AUC gain over the district model is one those students support (DeLong's interval above zero,
and more than the tolerance), it reaches the minimum AUC, and the held-out set is large enough
to tell."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from sklearn.metrics import roc_auc_score

from app.core.settings import Settings
from app.model.artifacts import ModelStore
from app.model.delong import AucComparison, compare_aucs
from app.model.promotion import (
    CURRENT,
    DISTRICT_MODEL,
    NEW,
    SchoolEvidence,
    auc_of,
    district_decision,
    not_worse,
    school_decision,
)
from app.model.training import BadTrainingDataError, run_training
from tests.app.conftest import District
from tests.app.helpers import scalar

SETTINGS = Settings(min_promotion_auc=0.7, min_holdout_positives=20, min_holdout_negatives=20)
SMALL = Settings(min_promotion_auc=0.6, min_holdout_positives=8, min_holdout_negatives=30)


def held_out(auc: float, positives: int = 40, negatives: int = 160) -> dict[str, Any]:
    return {"auc": auc, "positives_test": positives, "negatives_test": negatives}


def scores(y: np.ndarray, separation: float, rng: np.random.Generator) -> np.ndarray:
    """Risks whose AUC grows with `separation` (normal scores shifted for the dropouts)."""
    return np.asarray(1 / (1 + np.exp(-(rng.normal(size=len(y)) + separation * y))))


def evidence(y: np.ndarray, p_new: np.ndarray, p_district: np.ndarray) -> SchoolEvidence:
    new = held_out(float(roc_auc_score(y, p_new)), int(y.sum()), int(len(y) - y.sum()))
    return SchoolEvidence(new, compare_aucs(y, p_new, p_district))


def test_delong_agrees_with_a_hand_computed_case() -> None:
    """Two dropouts, two stayers: AUCs 1 and 0.75; the variance components by hand."""
    y = np.array([1, 1, 0, 0])
    c = compare_aucs(y, np.array([0.9, 0.8, 0.3, 0.1]), np.array([0.9, 0.2, 0.3, 0.1]))
    assert (c.auc_a, c.auc_b, c.gain) == (1.0, 0.75, 0.25)
    # Model b: per dropout V10 = (1, 0.5), per stayer V01 = (1, 0.5); model a: all ones.
    # var = var(V10_a - V10_b)/2 + var(V01_a - V01_b)/2 = 0.125/2 + 0.125/2.
    assert c.se == pytest.approx(np.sqrt(0.125))


def test_delong_agrees_with_a_stratified_paired_bootstrap() -> None:
    rng = np.random.default_rng(7)
    y = (rng.random(400) < 0.25).astype(int)
    a, b = scores(y, 1.6, rng), scores(y, 1.2, rng)
    c = compare_aucs(y, a, b)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    gains = []
    for _ in range(1500):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        gains.append(roc_auc_score(y[idx], a[idx]) - roc_auc_score(y[idx], b[idx]))
    assert c.gain == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)
    assert c.se == pytest.approx(float(np.std(gains)), rel=0.1)


def test_school_model_with_a_gain_inside_its_interval_is_not_promoted() -> None:
    """38 held-out students, 8 dropouts: a gain of a few hundredths is far inside the noise."""
    rng = np.random.default_rng(3)
    y = np.array([1] * 8 + [0] * 30)
    p_district = scores(y, 1.5, rng)
    p_new = np.clip(p_district + rng.normal(0, 0.05, len(y)) + 0.03 * y, 0, 1)
    ev = evidence(y, p_new, p_district)
    assert ev.vs_district is not None
    assert ev.vs_district.gain > SMALL.promotion_tolerance  # the old rule promoted this
    assert ev.vs_district.low < 0 < ev.vs_district.high
    d = school_decision(ev, SMALL)
    assert (d.promoted, d.serves) == (False, DISTRICT_MODEL)
    assert "not a gain they support" in d.reason
    assert ev.vs_district.describe() in d.reason  # the interval is stated


def test_school_model_with_a_clear_gain_is_promoted() -> None:
    rng = np.random.default_rng(4)
    y = np.array([1] * 40 + [0] * 160)
    p_district = scores(y, 0.3, rng)
    p_new = scores(y, 2.5, rng)
    ev = evidence(y, p_new, p_district)
    assert ev.vs_district is not None and ev.vs_district.low > 0
    d = school_decision(ev, SETTINGS)
    assert (d.promoted, d.serves) == (True, NEW), d.reason
    assert ev.vs_district.describe() in d.reason


def test_first_run_with_auc_055_is_served_by_the_district_model() -> None:
    d = school_decision(SchoolEvidence(held_out(0.55), None), SETTINGS)
    assert (d.promoted, d.serves) == (False, DISTRICT_MODEL)
    assert d.reason == "AUC 0.550 below the minimum 0.70; served by the district model"


@pytest.mark.parametrize(
    ("metrics", "reason"),
    [
        (held_out(0.95, positives=12), "12 dropouts (minimum 20)"),
        (held_out(0.95, negatives=5), "5 stayers (minimum 20)"),
    ],
)
def test_school_gate_needs_enough_held_out_students(metrics: dict[str, Any], reason: str) -> None:
    d = school_decision(SchoolEvidence(metrics, None), SETTINGS)
    assert d.serves == DISTRICT_MODEL
    assert reason in d.reason


def test_school_gate_may_require_a_minimum_precision_at_k() -> None:
    rng = np.random.default_rng(4)
    y = np.array([1] * 40 + [0] * 160)
    ev = evidence(y, scores(y, 2.5, rng), scores(y, 0.3, rng))
    ev.new["precision_at_k"] = 0.4
    strict = SETTINGS.model_copy(update={"min_precision_at_k": 0.5})
    d = school_decision(ev, strict)
    assert d.serves == DISTRICT_MODEL
    assert "precision at k 0.400 below the minimum 0.50" in d.reason


def test_a_new_school_model_shown_worse_than_the_current_one_keeps_the_current() -> None:
    rng = np.random.default_rng(5)
    y = np.array([1] * 40 + [0] * 160)
    p_district, p_new, p_cur = scores(y, 0.2, rng), scores(y, 1.5, rng), scores(y, 3.0, rng)
    ev = evidence(y, p_new, p_district)
    ev.current_auc = float(roc_auc_score(y, p_cur))
    ev.vs_current = compare_aucs(y, p_new, p_cur)
    ev.current_vs_district = compare_aucs(y, p_cur, p_district)
    d = school_decision(ev, SETTINGS)
    assert d.serves == CURRENT, d.reason
    assert "over the current school model: worse" in d.reason


def test_a_model_is_not_worse_within_the_tolerance_and_always_without_a_current_one() -> None:
    current = {"auc": 0.80, "brier": 0.10}
    assert not_worse({"auc": 0.795, "brier": 0.105}, current, tol=0.01)
    assert not not_worse({"auc": 0.78, "brier": 0.10}, current, tol=0.01)
    assert not not_worse({"auc": 0.85, "brier": 0.12}, current, tol=0.01)
    assert not_worse({"auc": 0.5, "brier": 0.3}, None, tol=0.01)


def test_district_gate_is_not_worse_than_current() -> None:
    assert district_decision({"auc": 0.6, "brier": 0.2}, None, SETTINGS).serves == NEW
    worse = district_decision({"auc": 0.7, "brier": 0.1}, {"auc": 0.8, "brier": 0.1}, SETTINGS)
    assert (worse.promoted, worse.serves) == (False, CURRENT)


def test_district_gate_holds_on_a_fairness_breach_only_when_told_to() -> None:
    breach = ["sex: male selection rate ratio 1.78"]
    warned = district_decision({"auc": 0.8, "brier": 0.1}, None, SETTINGS, breach)
    assert warned.serves == NEW
    assert "fairness warning (sex: male selection rate ratio 1.78)" in warned.reason
    hold = SETTINGS.model_copy(update={"fairness_action": "hold"})
    held = district_decision({"auc": 0.8, "brier": 0.1}, None, hold, breach)
    assert (held.promoted, held.serves) == (False, CURRENT)
    assert "fairness bound 0.8 breached" in held.reason


def test_gate_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="min_promotion_auc"):
        Settings(min_promotion_auc=0.4)
    with pytest.raises(ValueError, match="min_holdout_positives"):
        Settings(min_holdout_positives=0)
    with pytest.raises(ValueError, match="promotion_confidence"):
        Settings(promotion_confidence=1.0)


def test_first_training_run_with_weak_school_models(
    untrained_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: on a first run every school's model has AUC 0.55 on its held-out students.
    None is promoted; the district model serves every school; the reason is in model_versions
    and in the manifest."""
    real = __import__("app.model.scopes", fromlist=["evaluate"]).evaluate
    calls: list[int] = []

    def weak(*args: Any) -> dict[str, float]:
        calls.append(1)
        metrics = real(*args)
        return metrics if len(calls) == 1 else {**metrics, "auc": 0.55}  # 1st: the district

    monkeypatch.setattr("app.model.scopes.evaluate", weak)
    settings = untrained_district.trainer_with(min_promotion_auc=0.7)
    result = run_training(settings)
    store = ModelStore(settings.model_store_url)
    assert store.pointer().scopes == {"district": result.version}
    assert result.promoted == ["district"]
    reasons = scalar(
        untrained_district.url,
        "SELECT array_agg(DISTINCT reason) FROM model_versions"
        " WHERE scope <> 'district' AND promoted_generation IS NULL",
    )
    assert reasons == ["AUC 0.550 below the minimum 0.70; served by the district model"]
    manifest = store.manifest(result.version)
    assert manifest is not None
    assert manifest["promotion"]["school-1"]["serves"] == "district"
    assert manifest["promotion"]["district"]["promoted"] is True
    assert manifest["settings"]["min_promotion_auc"] == 0.7


def test_training_names_the_students_with_bad_features(untrained_district: District) -> None:
    """The schema now refuses NaN marks, so plant one past it (as an older schema let in)."""
    with psycopg.connect(untrained_district.url, autocommit=True) as admin:
        admin.execute("ALTER TABLE marks DROP CONSTRAINT marks_marks_obtained_finite")
        admin.execute("UPDATE marks SET marks_obtained = 'NaN' WHERE student_id IN (3, 7)")
    with pytest.raises(BadTrainingDataError, match=r"for 2 students: 3, 7;"):
        run_training(untrained_district.trainer)


def test_schema_refuses_nan_and_infinity(untrained_district: District) -> None:
    with psycopg.connect(untrained_district.url, autocommit=True) as admin:
        for statement in (
            "UPDATE marks SET marks_obtained = 'NaN' WHERE id = 1",
            "UPDATE exams SET max_marks = 'NaN' WHERE id = 1",
            "INSERT INTO risk_scores (generation, student_id, school_id, risk, model_version)"
            " VALUES (99, 1, 1, 'NaN', 'x')",
        ):
            with pytest.raises(psycopg.errors.CheckViolation):
                admin.execute(statement)


def comparison(gain: float, low: float, high: float) -> AucComparison:
    """A gain over another model with its interval, as DeLong would give it."""
    return AucComparison(0.8, round(0.8 - gain, 6), gain, 0.02, low, high, 0.95)


CLEAR_GAIN = comparison(0.1, 0.05, 0.15)


def test_a_district_model_within_the_tolerance_of_the_current_one_is_promoted() -> None:
    """Not worse than the current model beyond the tolerance, on AUC and on Brier alike:
    exactly at the tolerance is promoted, a hundredth beyond is not."""
    tolerant = SETTINGS.model_copy(update={"promotion_tolerance": 0.125})
    current = {"auc": 0.875, "brier": 0.125}
    at_tolerance = district_decision({"auc": 0.75, "brier": 0.25}, current, tolerant)
    assert (at_tolerance.promoted, at_tolerance.serves) == (True, NEW)
    assert at_tolerance.reason == (
        "AUC 0.750 / Brier 0.250 not worse than the current 0.875 / 0.125 beyond 0.125"
    )
    for worse in ({"auc": 0.74, "brier": 0.125}, {"auc": 0.875, "brier": 0.26}):
        refused = district_decision(worse, current, tolerant)
        assert (refused.promoted, refused.serves) == (False, CURRENT)
        assert refused.reason == (
            f"AUC {worse['auc']:.3f} / Brier {worse['brier']:.3f}"
            " worse than the current 0.875 / 0.125 beyond 0.125"
        )


def test_a_first_district_model_is_promoted_with_no_fairness_note_when_nothing_breaches() -> None:
    first = district_decision({"auc": 0.6, "brier": 0.2}, None, SETTINGS)
    assert (first.promoted, first.serves) == (True, NEW)
    assert first.reason == "first district model (AUC 0.600)"
    hold = SETTINGS.model_copy(update={"fairness_action": "hold"})
    held_nothing = district_decision({"auc": 0.6, "brier": 0.2}, None, hold, [])
    assert (held_nothing.serves, held_nothing.reason) == (NEW, first.reason)


def test_a_school_model_at_every_minimum_is_promoted() -> None:
    """20 dropouts, 20 stayers and an AUC of 0.70 are enough under SETTINGS; the precision at
    k may equal its minimum; a breach-free model passes a gate that holds on breaches."""
    strict = SETTINGS.model_copy(update={"min_precision_at_k": 0.5, "fairness_action": "hold"})
    new = {**held_out(0.7, positives=20, negatives=20), "precision_at_k": 0.5}
    d = school_decision(SchoolEvidence(new, CLEAR_GAIN), strict)
    assert (d.promoted, d.serves) == (True, NEW), d.reason
    assert d.reason == f"{CLEAR_GAIN.describe()} over the district model"


def test_a_school_model_with_an_undefined_precision_at_k_is_refused_when_one_is_required() -> None:
    strict = SETTINGS.model_copy(update={"min_precision_at_k": 0.5})
    new = {**held_out(0.9), "precision_at_k": None}
    d = school_decision(SchoolEvidence(new, CLEAR_GAIN), strict)
    assert d.serves == DISTRICT_MODEL
    assert d.reason.startswith("precision at k undefined below the minimum 0.50")


def test_a_school_model_with_an_undefined_auc_is_served_by_the_district_model() -> None:
    """A held-out set of one class has no AUC: it counts as 0, far below the minimum."""
    d = school_decision(SchoolEvidence({**held_out(0.0), "auc": None}, CLEAR_GAIN), SETTINGS)
    assert (d.serves, d.reason) == (
        DISTRICT_MODEL,
        "AUC 0.000 below the minimum 0.70; served by the district model",
    )


def test_a_gain_of_no_more_than_the_tolerance_keeps_the_district_model() -> None:
    at_tolerance = comparison(SETTINGS.promotion_tolerance, 0.005, 0.015)
    d = school_decision(SchoolEvidence(held_out(0.9), at_tolerance), SETTINGS)
    assert d.serves == DISTRICT_MODEL
    assert "not a gain they support" in d.reason
    unknown = school_decision(SchoolEvidence(held_out(0.9), None), SETTINGS)
    assert unknown.reason == (
        "no comparison with the district model on this school's held-out students;"
        " served by the district model"
    )


def test_a_new_school_model_not_shown_worse_than_the_current_one_replaces_it() -> None:
    """An interval over the current model reaching up to exactly 0 does not show it worse."""
    tie = comparison(-0.02, -0.04, 0.0)
    ev = SchoolEvidence(held_out(0.9), CLEAR_GAIN, current_auc=0.9, vs_current=tie)
    d = school_decision(ev, SETTINGS)
    assert (d.promoted, d.serves) == (True, NEW), d.reason
    assert d.reason == (
        f"{CLEAR_GAIN.describe()} over the district model;"
        f" {tie.describe()} over the current school model"
    )


@pytest.mark.parametrize(
    ("current_auc", "current_vs_district", "serves"),
    [
        (0.8, None, CURRENT),
        (0.7, comparison(-0.02, -0.04, 0.0), CURRENT),  # not shown worse than the district
        (0.8, comparison(-0.05, -0.08, -0.01), DISTRICT_MODEL),  # shown worse
        (0.69, None, DISTRICT_MODEL),  # below the minimum AUC
        (None, None, DISTRICT_MODEL),  # no current school model
    ],
)
def test_a_refused_school_model_leaves_the_current_one_if_it_still_passes(
    current_auc: float | None, current_vs_district: AucComparison | None, serves: str
) -> None:
    ev = SchoolEvidence(
        held_out(0.9), None, current_auc=current_auc, current_vs_district=current_vs_district
    )
    d = school_decision(ev, SETTINGS)
    assert (d.promoted, d.serves) == (False, serves)
    expected = "the current school model still passes" if serves == CURRENT else "served by"
    assert expected in d.reason


def test_an_auc_is_recorded_to_four_places() -> None:
    """Three dropouts and seven stayers, one pair out of order: 20/21 = 0.95238..."""
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.35, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01])
    assert auc_of(y, p) == 0.9524
