"""GET /metrics: what an operator's Prometheus scrapes (pool utilization, the served models'
quality, the build), and the same totals whichever of several workers answers."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app import __version__
from app.api.main import create_app
from app.model.artifacts import ModelStore
from tests.app.conftest import District
from tests.app.test_sagemaker import serving


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels (the pid label dropped)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            found[(sample.name, labels)] = found.get((sample.name, labels), 0) + sample.value
    return found


def test_metrics_report_pools_model_quality_and_build(district: District) -> None:
    settings = district.settings_with(db_pool_max=3)
    pointer = ModelStore(settings.model_store_url).pointer()
    manifest = ModelStore(settings.model_store_url).manifest(pointer.scopes["district"]) or {}
    with TestClient(create_app(settings)) as api:
        assert api.get("/ready").status_code == 200  # a connection was used at least once
        found = samples(api.get("/metrics").text)
    assert found[("ssp_build_info", (("version", __version__),))] == 1
    assert found[("ssp_db_pool_max", (("pool", "primary"),))] == 3
    assert found[("ssp_db_pool_in_use", (("pool", "primary"),))] == 0  # all returned
    assert found[("ssp_db_pool_open", (("pool", "primary"),))] >= 1
    assert found[("ssp_db_pool_waiting", (("pool", "primary"),))] == 0
    district_auc = found[("ssp_model_auc", (("scope", "district"),))]
    assert district_auc == manifest["metrics"]["district"]["auc"]
    assert {labels for name, labels in found if name == "ssp_model_auc"} == {
        (("scope", scope),) for scope in pointer.scopes
    }


def test_with_several_workers_every_answer_counts_every_workers_requests(
    district: District, tmp_path: Path
) -> None:
    """Each worker counts what it served; /metrics, whichever worker answers, merges them
    (without the multiprocess mode each answer had only its own worker's share)."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "ENVIRONMENT": "test",
        "DATABASE_URL": district.settings.database_url or "",
        "MODEL_STORE_URL": district.settings.model_store_url,
        "API_KEY_PEPPER": district.settings.api_key_pepper,
        "SAGEMAKER_DIR": "/nonexistent",
        "WORKERS": "2",
        "DB_POOL_MAX": "3",
    }
    with serving(env, cwd=tmp_path) as url, httpx.Client(base_url=url) as http:
        for _ in range(40):  # a new connection each: the workers share them out
            assert httpx.get(f"{url}/health").status_code == 200
        key = (
            "ssp_http_requests_total",
            (("method", "GET"), ("route", "/health"), ("status", "200")),
        )
        totals = {samples(http.get("/metrics").text).get(key) for _ in range(8)}
        pools = samples(http.get("/metrics").text)[("ssp_db_pool_max", (("pool", "primary"),))]
    assert totals == {40}
    assert pools == 2 * 3  # both live workers' pools
