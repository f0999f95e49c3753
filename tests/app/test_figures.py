"""The figures schools act on: PPV, false-alarm rate, precision and recall at a caseload of k,
calibration; per scope in the manifest, model_versions and /metrics."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.model.artifacts import ModelStore
from app.model.figures import caseload, figures, top_k_mask
from tests.app.conftest import District
from tests.app.helpers import scalar
from tests.app.test_metrics import samples


def test_figures_of_a_hand_counted_case() -> None:
    # School 1: ten students, three dropouts. School 2: ten students, one dropout.
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.2, 0.5, 0.35, 0.1, 0.1, 0.1, 0.1, 0.1,
                  0.2, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])  # fmt: skip
    schools = np.array([1] * 10 + [2] * 10)
    f = figures(y, p, schools, threshold=0.3, share=0.2)
    # Flagged (>= 0.3): 0.9, 0.4 (dropouts), 0.5, 0.35, 0.6 (stayers).
    assert (f["flagged"], f["ppv"], f["recall_at_threshold"]) == (5, 0.4, 0.5)
    assert f["false_alarm_rate"] == round(3 / 16, 4)
    # k = floor(10 x 0.2) = 2 per school: school 1's 0.9 and 0.5, school 2's 0.6 and 0.2.
    assert f["caseload_k"] == 4
    assert (f["precision_at_k"], f["recall_at_k"]) == (0.5, 0.5)
    assert f["brier"] == pytest.approx(float(np.mean((p - y) ** 2)), abs=1e-4)
    assert sum(b["n"] for b in f["reliability"]) == 20
    nobody = figures(y, np.full(20, 0.05), schools, threshold=0.3, share=0.2)
    assert nobody["ppv"] is None and nobody["flagged"] == 0  # undefined, not 0


def test_caseload_rounds_down_with_at_least_one_and_breaks_ties_by_order() -> None:
    assert [caseload(n, 0.1) for n in (0, 5, 10, 19, 20)] == [0, 1, 1, 1, 2]
    top = top_k_mask(np.array([0.5, 0.7, 0.5, 0.5]), np.array([1, 1, 1, 1]), 0.5)
    assert top.tolist() == [True, True, False, False]  # the tie: the earlier row


def test_figures_are_recorded_per_scope_and_exported(district: District) -> None:
    store = ModelStore(district.settings.model_store_url)
    pointer = store.pointer()
    manifest = store.manifest(pointer.scopes["district"])
    assert manifest is not None
    m = manifest["metrics"]["district"]
    assert 0 < m["ppv"] <= 1 and 0 <= m["false_alarm_rate"] < 1
    assert m["caseload_k"] >= 1 and 0 < m["precision_at_k"] <= 1
    row = scalar(
        district.url,
        "SELECT ARRAY[ppv, false_alarm_rate, precision_at_k, recall_at_k, brier, auc]"
        " FROM model_versions WHERE version = %s AND scope = 'district'",
        (pointer.scopes["district"],),
    )
    for got, name in zip(
        row,
        ("ppv", "false_alarm_rate", "precision_at_k", "recall_at_k", "brier", "auc"),
        strict=True,
    ):
        assert got == pytest.approx(m[name], abs=1e-6), name  # real: 6 digits
    split, curve = scalar(
        district.url,
        "SELECT ARRAY[split, reliability::text] FROM model_versions"
        " WHERE version = %s AND scope = 'district'",
        (pointer.scopes["district"],),
    )
    assert split == "random" and '"observed"' in curve
    with TestClient(create_app(district.settings)) as api:
        found = samples(api.get("/metrics").text)
    for name in ("ppv", "false_alarm_rate", "precision_at_k", "recall_at_k", "brier"):
        assert found[(f"ssp_model_{name}", (("scope", "district"),))] == pytest.approx(m[name])
    report = store.read_file(pointer.scopes["district"], "report.html")
    assert report is not None
    assert b"precision at k" in report and b"false-alarm rate" in report
