"""The fairness audit: per protected attribute and group, on the held-out students, the same
figures fairlearn's MetricFrame computes; a planted disparity trips the bound; protected
attributes are never a model input and the API's login cannot read them."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import psycopg
import pytest
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score

from app.core.db import connect_as
from app.core.logins import TRAINER_LOGIN
from app.model.artifacts import ModelStore
from app.model.fairness import audit
from app.model.inputs import PROTECTED_ATTRIBUTES, PROTECTED_NAMES, DistrictFeature, InputSpec
from app.model.promotion import CURRENT
from app.model.risk_model import as_risk_model
from app.model.served_models import DISTRICT
from app.model.training import run_training
from app.model.training_data import (
    NOT_RECORDED,
    choose_split,
    holdout_mask,
    load_demographics,
    load_training_data,
)
from tests.app.conftest import MULTI_YEAR_AUDIT, District

FAIRLEARN = {
    "selection_rate": selection_rate,
    "ppv": partial(precision_score, zero_division=np.nan),
    "false_alarm_rate": false_positive_rate,
    "recall": true_positive_rate,
}


def held_out_audit_inputs(d: District) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """What the trainer audits the district model on: its held-out students' labels, risks
    and groups, read again as the trainer."""
    settings = d.trainer_with(**MULTI_YEAR_AUDIT)
    store = ModelStore(settings.model_store_url)
    version = store.pointer().scopes[DISTRICT]
    model = as_risk_model(store.load_model(version, DISTRICT))
    with connect_as(settings, TRAINER_LOGIN) as conn:
        data = load_training_data(conn)
        test = holdout_mask(data.schools, data.y, data.years, choose_split(conn), settings)
        groups = load_demographics(conn, data.student_ids[test])
    p = model.predict_proba(data.x[test], data.take(test))[:, 1]
    return data.y[test], p, groups


def test_fairness_table_matches_metricframe(multi_year_district: District) -> None:
    d = multi_year_district
    settings = d.trainer_with(**MULTI_YEAR_AUDIT)
    y, p, groups = held_out_audit_inputs(d)
    found = audit(
        y,
        p,
        groups,
        settings.alert_threshold,
        settings.fairness_min_group_size,
        settings.fairness_min_ratio,
    )
    store = ModelStore(settings.model_store_url)
    manifest = store.manifest(store.pointer().scopes[DISTRICT])
    assert manifest is not None
    assert manifest["fairness"][DISTRICT]["attributes"] == found["attributes"]  # what was run
    flagged = (p >= settings.alert_threshold).astype(int)
    compared = 0
    for attribute, table in found["attributes"].items():
        frame = MetricFrame(
            metrics=FAIRLEARN, y_true=y, y_pred=flagged, sensitive_features=groups[attribute]
        )
        by_group = frame.by_group
        reference = table["reference"]
        for g in table["groups"]:
            for figure, expected in by_group.loc[g["group"]].items():
                ours = g[figure]
                if np.isnan(expected):
                    assert ours is None, (attribute, g["group"], figure)
                else:
                    assert ours == pytest.approx(expected, abs=1e-9), (attribute, g, figure)
                    base = by_group.loc[reference, figure]
                    if base:
                        assert g["ratios"][figure] == pytest.approx(expected / base, abs=1e-9)
                compared += 1
        # Suppressed groups: those MetricFrame computes under the minimum size.
        sizes = {k: int((groups[attribute] == k).sum()) for k in by_group.index}
        small = [k for k, n in sizes.items() if n < settings.fairness_min_group_size]
        assert table["suppressed_groups"] == len(small)
        assert not {g["group"] for g in table["groups"]} & set(small)
        # The reference is the largest recorded group, as Aequitas's default.
        recorded = {k: n for k, n in sizes.items() if k != NOT_RECORDED}
        assert reference == max(recorded, key=lambda k: (recorded[k], k))
    assert compared >= 4 * 8


def test_planted_disparity_trips_the_bound(multi_year_district: District) -> None:
    store = ModelStore(multi_year_district.trainer.model_store_url)
    version = store.pointer().scopes[DISTRICT]
    manifest = store.manifest(version)
    assert manifest is not None
    breaches = manifest["fairness"][DISTRICT]["breaches"]
    assert any(b.startswith("race_ethnicity: black_or_african_american selection rate ratio")
               for b in breaches), breaches  # fmt: skip
    race = manifest["fairness"][DISTRICT]["attributes"]["race_ethnicity"]
    black = next(g for g in race["groups"] if g["group"] == "black_or_african_american")
    # The bias is in the training years' records too, so the model learns the group's biased
    # records as the group's normal: which way its flags go is the model's; that they fall
    # outside the bound is what the audit must say.
    assert not 0.8 <= black["ratios"]["selection_rate"] <= 1 / 0.8
    # By default a breach warns: the district model was promoted, the warning in its reason.
    decision = manifest["promotion"][DISTRICT]
    assert decision["promoted"] is True
    assert "fairness warning (" in decision["reason"]
    assert "race_ethnicity: black_or_african_american selection rate" in decision["reason"]
    report = store.read_file(version, "report.html")
    assert report is not None and b"breached" in report


def test_a_breach_holds_the_promotion_when_configured(multi_year_district: District) -> None:
    d = multi_year_district
    store = ModelStore(d.trainer.model_store_url)
    before = store.pointer()
    result = run_training(d.trainer_with(**MULTI_YEAR_AUDIT, fairness_action="hold"))
    decision = result.decisions[DISTRICT]
    assert (decision["promoted"], decision["serves"]) == (False, CURRENT)
    assert "fairness bound 0.8 breached" in decision["reason"]
    assert store.pointer().scopes[DISTRICT] == before.scopes[DISTRICT]


def test_fitted_models_take_no_protected_attribute(multi_year_district: District) -> None:
    """Every model the run fitted (the schools' too, served or not)."""
    store = ModelStore(multi_year_district.trainer.model_store_url)
    version = store.pointer().scopes[DISTRICT]
    fitted = (store.manifest(version) or {})["metrics"]
    assert len(fitted) > 1
    for scope in fitted:
        model = as_risk_model(store.load_model(version, scope))
        names = model.input_names
        assert (
            len(names)
            == model.estimator.calibrated_classifiers_[0].estimator["scale"].n_features_in_
        )
        for name in names:
            stem = name.split(":")[0].split("=")[0]
            assert stem not in PROTECTED_NAMES, (scope, name)
            assert not any(a in name for a in PROTECTED_ATTRIBUTES), (scope, name)


@pytest.mark.parametrize("name", ["sex", "race_ethnicity", "free_reduced_lunch", "iep"])
def test_a_protected_attribute_is_refused_as_an_input(name: str) -> None:
    x = np.zeros((4, 17))
    with pytest.raises(ValueError, match="cannot be a model input"):
        InputSpec.fit(x, [{}] * 4, [DistrictFeature(name, "categorical", allowed=("a", "b"))])


def test_the_apis_login_cannot_read_protected_attributes(multi_year_district: District) -> None:
    d = multi_year_district
    with psycopg.connect(d.url) as admin:
        stored = admin.execute("SELECT count(*) FROM student_demographics").fetchone()
    assert stored is not None and stored[0] > 0
    with psycopg.connect(d.settings.database_url) as api:  # logs in as ssp_api
        assert api.execute("SELECT current_user").fetchone() == ("ssp_api",)
        for statement in (
            "SELECT count(*) FROM student_demographics",
            "SELECT sex FROM student_demographics LIMIT 1",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                api.execute(statement)
            api.rollback()
    # The trainer reads them (for the audit); what the API reads of a student holds none.
    with psycopg.connect(d.trainer.database_url) as trainer:
        row = trainer.execute("SELECT count(*) FROM student_demographics").fetchone()
        assert row == stored
        columns = _columns(trainer, "student_features_visible")
    assert not set(columns) & set(PROTECTED_ATTRIBUTES)


def _columns(conn: psycopg.Connection[Any], view: str) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
        (view,),
    ).fetchall()
    return [r[0] for r in rows]
