"""School years: features by school year with the prior year's beside them; training on the
earlier years and evaluating on the latest (temporal), with the random split's figures beside;
no held-out year's rows reach a model's training."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pytest

from app.core.db import connect_as
from app.core.logins import TRAINER_LOGIN
from app.model import scopes
from app.model.artifacts import ModelStore
from app.model.risk_model import RiskModel
from app.model.served_models import DISTRICT
from app.model.training import random_split_figures
from app.model.training_data import (
    TEMPORAL,
    choose_split,
    holdout_mask,
    load_declarations,
    load_demographics,
    load_training_data,
    school_year,
)
from tests.app.conftest import MULTI_YEAR_AUDIT, District
from tests.app.helpers import scalar


@pytest.mark.parametrize(
    ("day", "start", "year"),
    [
        (date(2025, 6, 30), 7, 2025),
        (date(2025, 7, 1), 7, 2026),
        (date(2025, 9, 1), 9, 2026),
        (date(2025, 8, 31), 9, 2025),
        (date(2025, 1, 1), 1, 2025),
        (date(2025, 12, 31), 1, 2025),
    ],
)
def test_school_year_is_named_by_its_end(
    multi_year_district: District, day: date, start: int, year: int
) -> None:
    """Python's and the database's school_year() agree (named by the year it ends in)."""
    assert school_year(day, start) == year
    assert scalar(multi_year_district.url, "SELECT school_year(%s, %s)", (day, start)) == year


def test_features_are_the_current_years_with_the_prior_years_beside(
    multi_year_district: District,
) -> None:
    url = multi_year_district.url
    # A student whose last year is 2025 and who had records in 2024: both years' absences.
    sid, year, absences, prior = scalar(
        url,
        "SELECT ARRAY[student_id, school_year, absences, prior_absences] FROM student_features"
        " WHERE school_id = 1 AND school_year = 2025 AND prior_absences IS NOT NULL"
        " ORDER BY student_id LIMIT 1",
    )
    counted = {
        y: scalar(
            url,
            "SELECT count(*) FROM attendance WHERE student_id = %s AND status = 'absent'"
            " AND school_year(date, 7) = %s",
            (int(sid), y),
        )
        for y in (2025, 2024)
    }
    assert (year, absences, prior) == (2025, counted[2025], counted[2024])
    # The first cohort has no prior year: missing, not zero.
    assert scalar(url, "SELECT bool_and(prior_absences IS NULL) FROM student_features"
                  " WHERE school_id = 1 AND school_year = 2024")  # fmt: skip


def test_temporal_and_random_figures_both_in_the_report(multi_year_district: District) -> None:
    store = ModelStore(multi_year_district.trainer.model_store_url)
    version = store.pointer().scopes[DISTRICT]
    manifest = store.manifest(version)
    assert manifest is not None
    assert manifest["split"]["kind"] == TEMPORAL
    # District 1's latest year with outcomes; district 2 has one (2026), split at random.
    assert manifest["split"]["test_year"] == 2025
    assert manifest["split"]["train_years"] == [2024, 2026]
    temporal, rand = manifest["metrics"][DISTRICT], manifest["random_split"][DISTRICT]
    assert temporal["n_test"] != rand["n_test"]
    raw = store.read_file(version, "report.html")
    assert raw is not None
    page = raw.decode()
    assert f"<tr><td>temporal</td><td>{temporal['auc']:.3f}</td>" in page
    assert f"<tr><td>random</td><td>{rand['auc']:.3f}</td>" in page
    assert "Model card" in page and "Training window" in page


def test_no_held_out_years_rows_reach_training(
    multi_year_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every fit of the run is watched: none sees a row of a school's held-out (latest) year;
    the random split's, fitted for comparison only, does (so the check can fail)."""
    settings = multi_year_district.trainer_with(**MULTI_YEAR_AUDIT)
    fits: list[np.ndarray] = []
    real = RiskModel.fit

    def watched(cls: type[RiskModel], x: np.ndarray, *args: Any) -> RiskModel:
        fits.append(x.copy())
        return real(x, *args)

    monkeypatch.setattr(RiskModel, "fit", classmethod(watched))
    with connect_as(settings, TRAINER_LOGIN) as conn:
        data = load_training_data(conn)
        split = choose_split(conn)
        declarations = load_declarations(conn)
        test = holdout_mask(data.schools, data.y, data.years, split, settings)
        groups = load_demographics(conn, data.student_ids)
    # District 1's schools hold out exactly their latest year with outcomes, 2025.
    for sid in (1, 2, 3, 4):
        mine = data.schools == sid
        assert set(data.years[mine & test].tolist()) == {2025}
        assert (data.years[mine & ~test] < 2025).all()
    fitted = scopes.fit_district(data, test, declarations, groups, settings)
    scopes.fit_schools(data, test, fitted.models[DISTRICT], declarations, groups, settings)
    assert len(fits) == 5  # the district model and four schools' (school 5 is too small)
    held = {row.tobytes() for row in data.x[test & (data.years == 2025)]}
    assert len(held) > 100
    for x in fits:
        assert not held & {row.tobytes() for row in x}
    random_split_figures(data, declarations, settings)
    assert held & {row.tobytes() for row in fits[-1]}
