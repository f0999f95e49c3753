"""Reasons: each risk's contributions per feature are exact for the served model (they add up
to its log-odds minus the reference student's), and every risk answer carries the main ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from app.model.features import FEATURES, INDICATOR_FEATURES, LABELS, STANDARD_FEATURES
from app.model.inputs import DistrictFeature
from app.model.risk_model import FastRiskModel, RiskModel
from tests.app.conftest import District
from tests.app.helpers import auth, scalar

DECLARED = (
    DistrictFeature("admission_grade", "numeric", 0.0, 200.0),
    DistrictFeature("course", "categorical", allowed=("9119", "9254", "9500")),
)
FEATURES_OK = {
    "grade": 9, "attendance_rate": 0.7, "absences": 18, "lates": 4, "avg_mark": 48.0,
    "min_mark": 22.0, "failed_exams": 2, "incidents": 3, "severe_incidents": 1,
}  # fmt: skip


def synthetic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Raw rows (STANDARD_FEATURES, a third without a prior year) and district values (some
    missing)."""
    current = np.column_stack([
        rng.integers(6, 13, n), rng.random(n), rng.integers(0, 30, n), rng.integers(0, 10, n),
        rng.random(n) * 100, rng.random(n) * 60, rng.integers(0, 6, n), rng.integers(0, 5, n),
        rng.integers(0, 3, n),
    ]).astype(np.float64)  # fmt: skip
    prior = current[:, 1:] * rng.uniform(0.5, 1.5, (n, len(FEATURES) - 1))
    prior[rng.random(n) < 0.3] = np.nan
    extras = [
        {
            "admission_grade": None if rng.random() < 0.1 else float(rng.uniform(90, 190)),
            "course": None if rng.random() < 0.1 else str(rng.choice(DECLARED[1].allowed)),
        }
        for _ in range(n)
    ]
    return np.hstack([current, prior]), extras


@pytest.fixture(scope="module")
def fitted() -> tuple[RiskModel, FastRiskModel]:
    rng = np.random.default_rng(11)
    x, extras = synthetic(600, rng)
    admission = np.array([e["admission_grade"] or 140.0 for e in extras])
    logit = -1.5 + 3 * (0.8 - x[:, 1]) + 0.03 * (50 - x[:, 4]) + 0.02 * (140 - admission)
    y = (rng.random(600) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    model = RiskModel.fit(x, extras, y, DECLARED)
    return model, FastRiskModel(model)


finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def students(draw: st.DrawFn) -> tuple[np.ndarray, dict[str, Any]]:
    bounds = [(6, 12), (0, 1), (0, 400), (0, 400), (0, 100), (0, 100), (0, 100), (0, 1000),
              (0, 1000)]  # fmt: skip
    current = [draw(st.floats(lo, hi)) for lo, hi in bounds]
    prior = [draw(st.none() | st.floats(lo, hi)) for lo, hi in bounds[1:]]
    row = np.array([[*current, *(np.nan if v is None else v for v in prior)]])
    extras = {
        "admission_grade": draw(st.none() | st.floats(0, 200)),
        "course": draw(st.none() | st.sampled_from(DECLARED[1].allowed)),
    }
    return row, extras


@settings(max_examples=300, deadline=None)
@given(students())
def test_contributions_add_up_to_each_models_log_odds(
    fitted: tuple[RiskModel, FastRiskModel], student: tuple[np.ndarray, dict[str, Any]]
) -> None:
    """Against sklearn's own log-odds (mean over the calibration folds), computed apart from
    the twin that explains."""
    model, fast = fitted
    x, extras = student
    risk, (contributions,) = fast.explain(x, [extras])
    log_odds = float(model.log_odds(x, [extras])[0])
    total = sum(c.log_odds for c in contributions)
    assert total == pytest.approx(log_odds - fast.reference_log_odds, abs=1e-9)
    p = float(risk[0])
    if (p - fast.reference_risk) * total > 0:
        points = sum(c.points for c in contributions)
        assert points == pytest.approx(p - fast.reference_risk, abs=1e-9)
    else:  # the folds' mean probability and mean log-odds disagree: the slope at p
        for c in contributions:
            assert c.points == pytest.approx(c.log_odds * p * (1 - p), abs=1e-12)
    assert {c.feature for c in contributions} == {*STANDARD_FEATURES, "admission_grade", "course"}
    assert float(risk[0]) == pytest.approx(model.predict_proba(x, [extras])[0, 1], abs=1e-12)


def test_contributions_add_up_for_every_served_model(district: District) -> None:
    """The same sum on the models a training run published (school and district scopes)."""
    from app.model.artifacts import ModelStore
    from app.model.risk_model import fast_model

    store = ModelStore(district.settings.model_store_url)
    x, _ = synthetic(200, np.random.default_rng(5))
    for scope, version in store.pointer().scopes.items():
        model = store.load_model(version, scope)
        fast = fast_model(model)
        _, explained = fast.explain(x)
        sums = np.array([sum(c.log_odds for c in row) for row in explained])
        np.testing.assert_allclose(sums, model.log_odds(x) - fast.reference_log_odds, atol=1e-9)
        assert all(len(row) == len(fast.spec.sources) for row in explained)
        assert {*STANDARD_FEATURES, *INDICATOR_FEATURES} <= set(fast.spec.sources)


def test_top_reasons_are_the_largest_in_magnitude(
    fitted: tuple[RiskModel, FastRiskModel],
) -> None:
    _, fast = fitted
    x, extras = synthetic(50, np.random.default_rng(2))
    _, every = fast.explain(x, extras)
    _, top = fast.explain(x, extras, top=3)
    for all_of_them, three in zip(every, top, strict=True):
        magnitudes = sorted((abs(c.log_odds) for c in all_of_them), reverse=True)
        assert [abs(c.log_odds) for c in three] == magnitudes[:3]


def check_reasons(reasons: list[dict[str, Any]]) -> None:
    assert len(reasons) == 3
    assert set(reasons[0]) == {
        "feature",
        "label",
        "value",
        "school_median",
        "contribution",
        "contribution_log_odds",
    }
    magnitudes = [abs(r["contribution_log_odds"]) for r in reasons]
    assert magnitudes == sorted(magnitudes, reverse=True)
    for r in reasons:
        assert r["feature"] in {*STANDARD_FEATURES, *INDICATOR_FEATURES}
        assert r["label"] == LABELS[r["feature"]]
        # Probability points have the sign of the log-odds they come from.
        assert r["contribution"] * r["contribution_log_odds"] >= 0


def test_reasons_in_the_student_risk_answer_with_the_schools_median(
    client: TestClient, district: District
) -> None:
    sid = int(scalar(district.url, "SELECT min(id) FROM students WHERE school_id = 1"))
    body = client.get(f"/v1/students/{sid}/risk", headers=auth(district.keys["school1"])).json()
    check_reasons(body["reasons"])
    for r in body["reasons"]:
        if r["feature"] in STANDARD_FEATURES:
            assert r["value"] == body["features"][r["feature"]]
        if r["feature"] in FEATURES:  # a feature every student of the school has
            median = scalar(
                district.url,
                f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {r['feature']})"
                " FROM student_features WHERE school_id = 1 AND is_active",
            )
            assert r["school_median"] == pytest.approx(median, abs=1e-4)
    detail = scalar(
        district.url,
        "SELECT detail FROM audit_log WHERE student_id = %s AND action = 'read_student_risk'"
        " ORDER BY id DESC LIMIT 1",
        (sid,),
    )
    assert detail["reasons"] == 3  # the audit row says what the answer showed


def test_reasons_in_at_risk_list_items(client: TestClient, district: District) -> None:
    page = client.get(
        "/v1/schools/1/at-risk?limit=5", headers=auth(district.keys["school1"])
    ).json()
    assert page["items"]
    for item in page["items"]:
        check_reasons(item["reasons"])


def test_reasons_in_predict_answers(client: TestClient, district: District) -> None:
    resp = client.post(
        "/v1/predict",
        json={"school_id": 1, "instances": [FEATURES_OK, {**FEATURES_OK, "absences": 60}]},
        headers=auth(district.keys["school1"]),
    )
    assert resp.status_code == 200, resp.text
    for prediction in resp.json()["predictions"]:
        check_reasons(prediction["reasons"])
        for r in prediction["reasons"]:
            if r["feature"] in FEATURES_OK:
                assert r["value"] == FEATURES_OK[r["feature"]] or r["feature"] == "absences"
