"""`python -m app report`: one HTML page per training run beside its manifest, with its plots,
linked from the models endpoint."""

from __future__ import annotations

import argparse
import base64
import json
import re

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.cli.exit_codes import EXIT_OK, EXIT_USAGE
from app.cli.main import run
from app.model.artifacts import ModelStore
from app.model.report import write_reports
from tests.app.conftest import District
from tests.app.helpers import auth


def test_report_renders_with_its_plots(
    fresh_district: District, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ModelStore(fresh_district.trainer.model_store_url)
    (version,) = store.versions()
    # Training drew its run's report; `report` draws those missing (none), or one again.
    assert store.read_file(version, "report.html") is not None
    assert write_reports(store) == []
    code = run(argparse.Namespace(command="report", version=version), fresh_district.trainer)
    assert code == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"written": [version]}
    missing = argparse.Namespace(command="report", version="20200101T000000000000Z")
    assert run(missing, fresh_district.trainer) == EXIT_USAGE

    raw = store.read_file(version, "report.html")
    assert raw is not None
    page = raw.decode()
    manifest = store.manifest(version)
    assert manifest is not None
    scopes = list(manifest["metrics"])
    # ROC and calibration curves per scope, as embedded PNGs.
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(scopes) == 5
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    for scope in scopes:
        assert f"ROC and calibration curves of {scope}" in page
        auc = manifest["metrics"][scope]["auc"]
        assert f"<td>{scope}</td><td>{auc:.3f}</td>" in page
        assert manifest["promotion"][scope]["reason"].replace("'", "&#x27;") in page
    assert "Brier" in page and "recall" in page
    assert manifest["data"]["sha256"] in page  # the data snapshot


def test_report_draws_the_weakest_schools_only_past_the_cap(
    district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A national district's page draws the district model and the schools of lowest AUC
    (MAX_SCHOOL_PLOTS); the table still lists every scope."""
    from app.model import report

    store = ModelStore(district.trainer.model_store_url)
    version = store.pointer().scopes["district"]
    manifest = store.manifest(version)
    assert manifest is not None
    holdout = json.loads(store.read_file(version, "holdout.json") or b"{}")
    monkeypatch.setattr(report, "MAX_SCHOOL_PLOTS", 2)
    page = report.render(manifest, holdout)
    schools = sorted(
        (s for s in manifest["metrics"] if s != "district"),
        key=lambda s: manifest["metrics"][s]["auc"],
    )
    drawn = re.findall(r'alt="ROC and calibration curves of ([^"]+)"', page)
    assert sorted(drawn) == sorted(["district", *schools[:2]])
    assert f"the other {len(schools) - 2} schools are in the table" in page
    for scope in manifest["metrics"]:
        assert f"<td>{scope}</td>" in page


def test_models_endpoint_links_the_report(fresh_district: District) -> None:
    key = auth(fresh_district.keys["school1"])
    with TestClient(create_app(fresh_district.settings)) as api:
        models = api.get("/v1/schools/1/models", headers=key).json()
        version = models["versions"][0]
        assert version["reason"]
        page = api.get(version["report_url"], headers=key)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "Model quality" in page.text
        missing = api.get("/v1/schools/1/models/20200101T000000000000Z/report", headers=key)
        assert missing.status_code == 404
        assert api.get("/v1/schools/1/models/not-a-version/report", headers=key).status_code == 422
        other = api.get(version["report_url"].replace("/1/", "/2/"), headers=key)
        assert other.status_code == 403
