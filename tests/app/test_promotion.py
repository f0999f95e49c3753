"""The promotion gate: a school's model serves it only when, on its own held-out students, it
beats the district model and its current model by more than the tolerance, reaches the
minimum AUC, and the held-out set is large enough to tell."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from app.core.settings import Settings
from app.model.artifacts import ModelStore
from app.model.promotion import CURRENT, DISTRICT_MODEL, NEW, district_decision, school_decision
from app.model.training import BadTrainingDataError, run_training
from tests.app.conftest import District
from tests.app.helpers import scalar

SETTINGS = Settings(min_promotion_auc=0.7, min_holdout_positives=20, min_holdout_negatives=20)


def held_out(auc: float, positives: int = 40, negatives: int = 160) -> dict[str, float]:
    return {"auc": auc, "positives_test": positives, "negatives_test": negatives}


def test_first_run_with_auc_055_is_served_by_the_district_model() -> None:
    # No current model, and the district model is no better: the old rule promoted this.
    d = school_decision(held_out(0.55), district_auc=0.52, current_auc=None, settings=SETTINGS)
    assert (d.promoted, d.serves) == (False, DISTRICT_MODEL)
    assert d.reason == "AUC 0.550 below the minimum 0.70; served by the district model"


@pytest.mark.parametrize(
    ("metrics", "district_auc", "current_auc", "serves", "reason"),
    [
        (held_out(0.85), 0.80, None, NEW, "beats the district model's 0.800 by more than"),
        (held_out(0.85), 0.80, 0.82, NEW, "and the current model's 0.820 by more than 0.01"),
        (held_out(0.805), 0.80, None, DISTRICT_MODEL, "does not beat the district model's"),
        (held_out(0.85), 0.80, 0.845, CURRENT, "the current school model still passes"),
        (held_out(0.95, positives=12), 0.6, None, DISTRICT_MODEL, "12 dropouts (minimum 20)"),
        (held_out(0.95, negatives=5), 0.6, None, DISTRICT_MODEL, "5 stayers (minimum 20)"),
    ],
)
def test_school_gate(
    metrics: dict[str, float],
    district_auc: float,
    current_auc: float | None,
    serves: str,
    reason: str,
) -> None:
    d = school_decision(metrics, district_auc, current_auc, SETTINGS)
    assert d.serves == serves, d.reason
    assert d.promoted is (serves == NEW)
    assert reason in d.reason


def test_current_model_that_no_longer_beats_the_district_gives_way() -> None:
    d = school_decision(held_out(0.80), district_auc=0.81, current_auc=0.79, settings=SETTINGS)
    assert d.serves == DISTRICT_MODEL


def test_district_gate_is_not_worse_than_current() -> None:
    assert district_decision({"auc": 0.6, "brier": 0.2}, None, SETTINGS).serves == NEW
    worse = district_decision({"auc": 0.7, "brier": 0.1}, {"auc": 0.8, "brier": 0.1}, SETTINGS)
    assert (worse.promoted, worse.serves) == (False, CURRENT)


def test_gate_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="min_promotion_auc"):
        Settings(min_promotion_auc=0.4)
    with pytest.raises(ValueError, match="min_holdout_positives"):
        Settings(min_holdout_positives=0)


def test_first_training_run_with_weak_school_models(
    untrained_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: on a first run every school's model has AUC 0.55 on its held-out students.
    None is promoted; the district model serves every school; the reason is in model_versions
    and in the manifest."""
    real = __import__("app.model.training", fromlist=["evaluate"]).evaluate
    calls: list[int] = []

    def weak(*args: Any) -> dict[str, float]:
        calls.append(1)
        metrics = real(*args)
        return metrics if len(calls) == 1 else {**metrics, "auc": 0.55}  # 1st: the district

    monkeypatch.setattr("app.model.training.evaluate", weak)
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
