"""The indicators as model features (feature set 3): derived from the same school year's
figures with the cut points the model was trained with; each stored model declares its feature
set and serving builds exactly its inputs, so a model stored before them keeps scoring and a
rollback to one works; the /invocations CSV layouts; reasons naming them in plain words."""

from __future__ import annotations

import io
from typing import Any

import joblib
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.indicators import CutPoints, evaluate
from app.core.settings import Settings
from app.model.artifacts import ModelStore
from app.model.features import (
    CSV_COLUMNS,
    FEATURES,
    INDICATOR_FEATURES,
    INDICATOR_FIGURES,
    LABELS,
    RAW_FEATURES,
    STANDARD_FEATURES,
    derive_indicators,
    indicator_figures,
)
from app.model.inputs import DistrictFeature, InputSpec
from app.model.publication import rollback
from app.model.risk_model import FastRiskModel, RiskModel, as_risk_model, fast_model
from app.model.training import run_training
from tests.app.conftest import District
from tests.app.helpers import scalar
from tests.app.test_reasons import standard_rows

CUTS = (0.10, 90.0, 65.0)  # chronic share, its least enrolled days, failing mark (defaults)
ROW = {"grade": 9, "attendance_rate": 0.7, "absences": 18, "lates": 4, "avg_mark": 48.0,
       "min_mark": 22.0, "failed_exams": 2, "incidents": 3, "severe_incidents": 1}  # fmt: skip
FIGURES = {"enrolled_days": 180, "absent_days": 30, "suspensions": 1, "maths_mark": 55.0,
           "english_mark": 80.0}  # fmt: skip


def raw_rows(n: int, rng: np.random.Generator, figures: bool = True) -> np.ndarray:
    """RAW_FEATURES rows: current year, a prior year for two thirds, indicator figures (all
    missing when not `figures`; else a maths or English mark missing now and then)."""
    current, prior = standard_rows(n, rng)
    enrolled = rng.integers(60, 181, n).astype(np.float64)
    absent = np.floor(enrolled * rng.random(n) * 0.3)
    marks = rng.random((n, 2)) * 100
    marks[rng.random((n, 2)) < 0.1] = np.nan
    extra = np.column_stack([enrolled, absent, rng.integers(0, 3, n), marks])
    if not figures:
        extra[:] = np.nan
    return np.hstack([current, prior, extra])


def labels(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dropping out, driven by attendance and failing maths (so the indicators carry signal)."""
    failing = np.nan_to_num(x[:, len(STANDARD_FEATURES) + 3], nan=70.0) < 65
    logit = -1.5 + 3 * (0.8 - x[:, 1]) + 1.5 * failing
    return (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(np.int64)


def old_pickle(model: RiskModel) -> RiskModel:
    """The model as a store holding a pickle written before feature set 3 would load it: its
    spec without the attributes added since."""
    for name in ("feature_set", "indicator_cuts"):
        del model.spec.__dict__[name]
    buf = io.BytesIO()
    joblib.dump(model, buf)
    loaded: RiskModel = joblib.load(io.BytesIO(buf.getvalue()))
    return loaded


# ---- deriving the indicator features ------------------------------------------------------


@pytest.mark.parametrize(
    ("enrolled", "absent", "maths", "english", "chronic", "fail_maths", "fail_english"),
    [
        (180, 18, 60.0, 80.0, 1.0, 1.0, 0.0),  # 10 % of 180 days: chronic; 60 % maths fails
        (180, 17, 65.0, 64.9, 0.0, 0.0, 1.0),  # just under 10 %; 65 passes, 64.9 fails
        (85, 40, np.nan, 70.0, np.nan, np.nan, 0.0),  # under 90 enrolled days: not counted
        (90, 9, np.nan, np.nan, 1.0, np.nan, np.nan),  # exactly 90 days, exactly 10 %
    ],
)
def test_derived_flags_match_the_indicators_at_each_cut_point(
    enrolled: int,
    absent: int,
    maths: float,
    english: float,
    chronic: float,
    fail_maths: float,
    fail_english: float,
) -> None:
    figures = np.array([[enrolled, absent, 0, maths, english]], dtype=np.float64)
    derived = derive_indicators(figures, CUTS)[0]
    np.testing.assert_array_equal(
        derived, [chronic, 0, maths, english, fail_maths, fail_english]
    )  # NaN where unknown, as the answer's null
    cuts = CutPoints.from_settings(Settings())
    subjects = {
        **({} if np.isnan(maths) else {"maths": maths}),
        **({} if np.isnan(english) else {"reading": english}),
    }
    shown = evaluate(
        {"school_year": 2026, "enrolled_days": enrolled, "absent_days": absent,
         "subject_marks": subjects, "incidents": 0, "incident_categories": {}},
        cuts,
    )  # fmt: skip
    assert shown is not None
    as_number = {None: np.nan, True: 1.0, False: 0.0}
    assert as_number[shown["attendance"]["chronic_absence"]] == pytest.approx(chronic, nan_ok=True)
    course = shown["course"]
    assert as_number[course["failing_maths"]] == pytest.approx(fail_maths, nan_ok=True)
    assert as_number[course["failing_english"]] == pytest.approx(fail_english, nan_ok=True)


def test_figures_of_a_student_indicators_row_map_subjects_and_suspensions() -> None:
    cuts = CutPoints.from_settings(Settings())
    row = (180, 20, {"algebra": 50.0, "geometry": 70.0, "writing": 81.0, "science": 10.0},
           {"suspension": 2, "expulsion": 1, "disruption": 7})  # fmt: skip
    assert indicator_figures(row, cuts) == [180.0, 20.0, 3.0, 60.0, 81.0]
    assert np.isnan(indicator_figures((None, None, None, None), cuts)).all()  # no row


# ---- what a model declares and builds -----------------------------------------------------


def test_training_with_indicator_data_makes_a_feature_set_3_model() -> None:
    rng = np.random.default_rng(1)
    x = raw_rows(800, rng)
    model = RiskModel.fit(x, [{}] * len(x), labels(x, rng), indicator_cuts=CUTS)
    assert model.spec.feature_set == 3
    assert model.spec.indicator_cuts == CUTS
    assert model.spec.sources == [*STANDARD_FEATURES, *INDICATOR_FEATURES]
    assert "failing_maths:missing" in model.input_names
    # Failing maths drives the labels: its weight raises the risk.
    fast = FastRiskModel(model)
    failing = x.copy()
    failing[:, len(STANDARD_FEATURES) + 3] = 40.0
    passing = x.copy()
    passing[:, len(STANDARD_FEATURES) + 3] = 90.0
    assert (fast.predict_proba(failing)[:, 1] > fast.predict_proba(passing)[:, 1]).all()


def test_training_without_indicator_data_makes_a_feature_set_2_model() -> None:
    """No attendance, marks or incidents at all (as a district importing outcomes only), or
    MODEL_INDICATOR_FEATURES off: no indicator inputs."""
    rng = np.random.default_rng(2)
    x = raw_rows(600, rng, figures=False)
    model = RiskModel.fit(x, [{}] * len(x), labels(x, rng), indicator_cuts=CUTS)
    assert model.spec.feature_set == 2
    assert model.spec.sources == list(STANDARD_FEATURES)
    x = raw_rows(600, rng)
    off = RiskModel.fit(x, [{}] * len(x), labels(x, rng), indicator_cuts=None)
    assert off.spec.feature_set == 2
    assert not any(name.startswith(INDICATOR_FEATURES) for name in off.input_names)


def test_a_model_stored_before_indicators_scores_raw_rows_as_before() -> None:
    """A set 2 model pickled before feature set 3 loads as set 2 and reads only its inputs:
    the indicator columns of a raw row change nothing, and the numpy twin agrees."""
    rng = np.random.default_rng(3)
    x = raw_rows(500, rng)
    standard = x[:, : len(STANDARD_FEATURES)]
    old = old_pickle(RiskModel.fit(standard, [{}] * len(x), labels(x, rng)))
    assert old.spec.feature_set == 2
    assert old.spec.indicator_cuts is None
    expected = old.predict_proba(standard)
    np.testing.assert_allclose(old.predict_proba(x), expected, atol=1e-12)
    other = x.copy()
    other[:, len(STANDARD_FEATURES) :] = rng.random((len(x), len(INDICATOR_FIGURES))) * 50
    np.testing.assert_allclose(old.predict_proba(other), expected, atol=1e-12)
    twin = fast_model(old)
    assert isinstance(twin, FastRiskModel)
    np.testing.assert_allclose(twin.predict_proba(other), expected, atol=1e-12)
    # A bare estimator (stored before school years) reads the current year's nine only.
    legacy = as_risk_model(old.estimator)
    assert legacy.spec.feature_set == 1
    assert legacy.spec.design(x, None).shape[1] == len(FEATURES)


def test_a_set_3_model_imputes_indicators_a_row_lacks() -> None:
    rng = np.random.default_rng(4)
    x = raw_rows(800, rng)
    model = RiskModel.fit(x, [{}] * len(x), labels(x, rng), indicator_cuts=CUTS)
    nine = x[:3, : len(FEATURES)]  # a version 1 CSV row: everything else missing
    d = model.spec.design(nine, None)
    columns = model.input_names
    for name in INDICATOR_FEATURES:
        assert (d[:, columns.index(name + ":missing")] == 1).all()
        assert (d[:, columns.index(name)] == model.spec.fill[name]).all()
    assert np.isfinite(model.predict_proba(nine)).all()


def test_each_design_column_is_its_named_input() -> None:
    """Column by column, against the spec's own names: a feature's value where known (its
    training mean where missing), its missing flag, a district feature's value or category;
    one row alone (the API's case) as in a batch."""
    rng = np.random.default_rng(6)
    x = raw_rows(400, rng)
    x[rng.random(x.shape) < 0.15] = np.nan  # missing anywhere, also in the current year
    district = (
        DistrictFeature("ell_hours", "numeric", 0, 40),
        DistrictFeature("program", "categorical", allowed=("a", "b")),
    )
    extras = [{"ell_hours": float(i % 7) if i % 3 else None,
               "program": ("a", "b", None)[i % 3]} for i in range(len(x))]  # fmt: skip
    spec = InputSpec.fit(x, extras, district, CUTS)
    d = spec.design(x, extras)
    derived = derive_indicators(x[:, len(STANDARD_FEATURES) :], CUTS)
    district_names = {f.name for f in district}
    for j, column in enumerate(spec.columns):
        name, source = column.name, column.source
        if source in district_names:
            values = [e[source] for e in extras]
            if name == source + ":missing":
                expected = [float(v is None) for v in values]
            elif name == source:
                expected = [spec.fill[name] if v is None else v for v in values]
            else:
                expected = [float(name == f"{source}={v}") for v in values]
        else:
            known = (
                derived[:, INDICATOR_FEATURES.index(source)]
                if source in INDICATOR_FEATURES
                else x[:, RAW_FEATURES.index(source)]
            )
            if name == source + ":missing":
                expected = list(np.isnan(known).astype(float))
            elif source in spec.fill:
                expected = list(np.where(np.isnan(known), spec.fill[source], known))
            else:
                expected = list(known)  # the current year's features are taken as they are
        np.testing.assert_array_equal(d[:, j], expected, err_msg=name)
    np.testing.assert_array_equal(spec.design(x[5:6], extras[5:6]), d[5:6])


def test_reasons_name_an_indicator_feature_in_plain_words() -> None:
    rng = np.random.default_rng(5)
    x = raw_rows(800, rng)
    model = RiskModel.fit(x, [{}] * len(x), labels(x, rng), indicator_cuts=CUTS)
    fast = FastRiskModel(model)
    student = x[:1].copy()
    student[0, len(STANDARD_FEATURES) + 3] = 30.0  # maths 30 %: failing
    _, (contributions,) = fast.explain(student)
    by_feature = {c.feature: c for c in contributions}
    assert by_feature["failing_maths"].log_odds > 0  # failing maths raises the risk
    values = model.spec.raw_values(student[0], {}, ["failing_maths", "maths_mark", "grade"])
    assert values == [1.0, 30.0, float(student[0, 0])]
    student[0, len(STANDARD_FEATURES) + 3] = np.nan  # no maths mark: both missing
    assert model.spec.raw_values(student[0], {}, ["maths_mark", "failing_maths"]) == [None] * 2
    assert LABELS["failing_maths"] == "failing maths this year"
    assert LABELS["chronic_absence"] == "chronically absent this year"


# ---- the /invocations CSV layouts --------------------------------------------------------


def csv_v2(row: dict[str, Any], school: int | None = None) -> str:
    cells = ["" if row.get(c) is None else str(row[c]) for c in CSV_COLUMNS[2]]
    return ",".join(([str(school)] if school else []) + cells)


def test_invocations_csv_version_2_carries_every_raw_input(
    client: TestClient, district: District
) -> None:
    csv = {"Content-Type": "text/csv"}
    v1 = ",".join(str(ROW[f]) for f in FEATURES)
    full = {**ROW, **FIGURES}
    body = "\n".join([
        "school_id," + ",".join(CSV_COLUMNS[2]),  # a header naming version 2's columns
        csv_v2(full, 1),
        csv_v2(ROW, 1),  # prior year and indicator figures empty: missing
        "1," + v1,  # version 1 in the same body
    ])  # fmt: skip
    resp = client.post("/invocations", content=body, headers=csv)
    assert resp.status_code == 200, resp.text
    first, empty, nine = resp.json()["predictions"]
    assert empty["risk"] == nine["risk"]  # empty cells read as the missing columns of v1
    assert first["risk"] != nine["risk"]  # the school's feature set 3 model reads them
    # The JSON contract takes the same fields.
    as_json = client.post("/invocations", json={"instances": [{**full, "school_id": 1}]})
    assert as_json.json()["predictions"][0]["risk"] == first["risk"]


def test_invocations_csv_refuses_a_bad_version_2_row(client: TestClient) -> None:
    csv = {"Content-Type": "text/csv"}
    wrong = client.post("/invocations", content="1,2,3,4,5", headers=csv)
    assert wrong.status_code == 400
    assert "or, in version 2, 22 (grade," in wrong.json()["detail"]
    absent = csv_v2({**ROW, **FIGURES, "absent_days": 200})
    resp = client.post("/invocations", content=absent, headers=csv)
    assert resp.status_code == 400
    assert "absent_days must not exceed enrolled_days" in resp.json()["detail"]
    no_grade = csv_v2({**ROW, "grade": None, **FIGURES})  # a current-year cell is required
    resp = client.post("/invocations", content=no_grade, headers=csv)
    assert resp.json()["detail"] == "row 1: grade: '' is not a number"
    nan = csv_v2({**ROW, **FIGURES, "maths_mark": "nan"})
    assert client.post("/invocations", content=nan, headers=csv).status_code == 400


# ---- the lifecycle: a set 2 generation, an upgrade to set 3, a rollback -------------------


def test_upgrade_to_indicator_features_and_rollback_keep_serving(
    untrained_district: District,
) -> None:
    d = untrained_district
    # Before the change: every scope on feature set 2. The gate's tolerance is wide so that
    # the test is about serving, not about which model wins.
    before = d.trainer_with(model_indicator_features=False, promotion_tolerance=1.0)
    run_training(before)
    store = ModelStore(d.settings.model_store_url)
    old = store.pointer()
    assert {as_risk_model(store.load_model(v, s)).spec.feature_set
            for s, v in old.scopes.items()} == {2}  # fmt: skip
    manifest = store.manifest(old.scopes["district"]) or {}
    assert manifest["feature_set"] == 2

    run_training(before.model_copy(update={"model_indicator_features": True}))
    new = store.pointer()
    assert new.scopes["district"] != old.scopes["district"]
    assert as_risk_model(store.load_model(new.scopes["district"], "district")).spec.feature_set == 3
    manifest = store.manifest(new.scopes["district"]) or {}
    assert manifest["feature_set"] == 3
    assert manifest["indicator_cut_points"]["failing_mark"] == 65.0
    assert manifest["promotion"]["district"]["reason"].endswith(
        "; inputs: feature set 3 (with the early-warning indicators) after the current 2"
    )
    active = scalar(d.url, "SELECT count(*) FROM students WHERE is_active")
    scored = "SELECT count(*) FROM risk_scores WHERE generation = %s"
    assert scalar(d.url, scored, (new.generation,)) == active

    body = "\n".join(
        [csv_v2({**ROW, **FIGURES}, 1), "1," + ",".join(str(ROW[f]) for f in FEATURES)]
    )
    with TestClient(create_app(d.settings)) as api:
        served = api.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
        assert served.status_code == 200, served.text
        assert api.get("/ping").json()["detail"]["district_feature_set"] == 3

        back = rollback(d.trainer)
        assert back.scopes == old.scopes
        assert scalar(d.url, scored, (back.generation,)) == active  # rescored with set 2
        rolled = api.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
        assert rolled.status_code == 200, rolled.text
        risks = [p["risk"] for p in rolled.json()["predictions"]]
        prior_missing = risks[1]
        assert risks[0] == prior_missing  # set 2 ignores the indicator figures
        assert api.get("/ping").json()["detail"]["district_feature_set"] == 2
        for p in rolled.json()["predictions"]:
            assert not {r["feature"] for r in p["reasons"]} & set(INDICATOR_FEATURES)
    assert set(RAW_FEATURES) >= set(CSV_COLUMNS[1])
