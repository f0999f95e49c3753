"""SageMaker container contract: GET /ping, POST /invocations (JSON and CSV), `serve` on 8080."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.settings import Settings
from app.model.artifacts import ModelStore
from app.model.features import FEATURES
from tests.app.conftest import District
from tests.app.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
ROW = {
    "grade": 9,
    "attendance_rate": 0.7,
    "absences": 18,
    "lates": 4,
    "avg_mark": 48.0,
    "min_mark": 22.0,
    "failed_exams": 2,
    "incidents": 3,
    "severe_incidents": 1,
}
CSV_ROW = ",".join(str(ROW[f]) for f in FEATURES)


def test_ping(client: TestClient, district: District) -> None:
    resp = client.get("/ping")
    assert resp.status_code == 200
    pointer = ModelStore(district.settings.model_store_url).pointer()
    assert resp.json() == {
        "status": "ok",
        "detail": {
            "generation": 1,
            "district_version": pointer.scopes["district"],
            "district_feature_set": 3,
        },
    }


def test_invocations_json(client: TestClient, district: District) -> None:
    resp = client.post("/invocations", json={"instances": [{**ROW, "school_id": 1}, ROW]})
    assert resp.status_code == 200
    preds = resp.json()["predictions"]
    assert [p["model_scope"] for p in preds] == ["school-1", "district"]
    for p in preds:
        assert 0 < p["risk"] < 1
        assert p["at_risk"] == (p["risk"] >= 0.3)
        assert len(p["model_version"]) == 22


def test_invocations_csv(client: TestClient) -> None:
    headers = {"Content-Type": "text/csv"}
    plain = client.post("/invocations", content=CSV_ROW + "\n" + CSV_ROW, headers=headers)
    assert plain.status_code == 200
    assert len(plain.json()["predictions"]) == 2
    with_school = "school_id," + ",".join(FEATURES) + "\n1," + CSV_ROW
    by_school = client.post("/invocations", content=with_school, headers=headers)
    assert by_school.json()["predictions"][0]["model_scope"] == "school-1"
    as_csv = client.post("/invocations", content=CSV_ROW, headers={**headers, "Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert float(as_csv.text.strip()) == plain.json()["predictions"][0]["risk"]


def test_invocations_bad_input_is_a_clear_4xx(client: TestClient) -> None:
    csv = {"Content-Type": "text/csv"}
    short = client.post("/invocations", content="1,2,3", headers=csv)
    assert short.status_code == 400
    assert short.json()["detail"].startswith("row 1: expected 9 columns (grade, attendance_rate")
    words = client.post(
        "/invocations", content=CSV_ROW + "\n" + CSV_ROW.replace("9", "x", 1), headers=csv
    )
    assert words.json()["detail"] == "row 2: grade: 'x' is not a number"
    rate = CSV_ROW.replace("0.7", "1.7")
    assert client.post("/invocations", content=rate, headers=csv).json()["detail"] == (
        "row 1: attendance_rate: Input should be less than or equal to 1"
    )
    assert client.post("/invocations", content="", headers=csv).status_code == 400
    missing = {k: v for k, v in ROW.items() if k != "avg_mark"}
    bad_json = client.post("/invocations", json={"instances": [missing]})
    assert bad_json.status_code == 400
    assert bad_json.json()["detail"][0]["loc"] == ["instances", 0, "avg_mark"]
    assert (
        client.post(
            "/invocations", content=b"{", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    wrong_type = client.post("/invocations", content="hi", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415


def test_no_model_yet_is_503(district: District, tmp_path: Path) -> None:
    settings = district.settings_with(model_store_url=str(tmp_path / "empty"))
    with TestClient(create_app(settings)) as api:
        ping = api.get("/ping")
        assert ping.status_code == 503
        assert ping.json() == {"detail": "no model has been trained and promoted yet"}
        assert api.post("/invocations", json={"instances": [ROW]}).status_code == 503


@contextmanager
def serving(env: dict[str, str], cwd: Path = ROOT) -> Iterator[str]:
    """`python -m app serve` with `env` in `cwd`, until /ping answers; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        cwd=cwd,
        env={**env, "PORT": str(port), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        # Graceful shutdown; uvicorn re-raises the SIGTERM it handled once it has stopped.
        assert proc.wait(15) in (0, -signal.SIGTERM)


def test_serve_command_listens_and_answers(district: District) -> None:
    assert Settings().port == 8080  # SageMaker's port is the default
    env = {
        **os.environ,
        "DATABASE_URL": district.settings.database_url or "",
        "MODEL_STORE_URL": district.settings.model_store_url,
        "API_KEY_PEPPER": district.settings.api_key_pepper,
        "SAGEMAKER_DIR": "/nonexistent",
    }
    with serving(env) as url:
        assert httpx.get(f"{url}/ping").status_code == 200
        inv = httpx.post(
            f"{url}/invocations", content=CSV_ROW, headers={"Content-Type": "text/csv"}
        )
        assert inv.status_code == 200


def test_serve_with_workers_keeps_the_sagemaker_contract(
    district: District, tmp_path: Path
) -> None:
    """The SageMaker model's environment (SERVE_MODE=inference, WORKERS > 1, no database, no
    pepper): every worker process resolves its settings as the parent does, so the models come
    from <SAGEMAKER_DIR>/model with no MODEL_STORE_URL, and none opens a database."""
    shutil.copytree(district.settings.model_store_url, tmp_path / "ml" / "model")
    unset = {"MODEL_STORE_URL", "DATABASE_URL", "DATABASE_READ_URL", "API_KEY_PEPPER"}
    env = {
        **{k: v for k, v in os.environ.items() if k not in unset},
        "ENVIRONMENT": "production",
        "SERVE_MODE": "inference",
        "SAGEMAKER_DIR": str(tmp_path / "ml"),
        "EMBEDDED_PG_DIR": str(tmp_path / "pg"),
        "WORKERS": "2",
    }
    # Run from an empty directory: the default store (.data/models) must not be what answers.
    with serving(env, cwd=tmp_path) as url:
        answers = {httpx.get(f"{url}/ping").status_code for _ in range(6)}
        assert answers == {200}  # whichever worker answers has the models
        inv = httpx.post(
            f"{url}/invocations", content=CSV_ROW, headers={"Content-Type": "text/csv"}
        )
        assert inv.status_code == 200
        assert httpx.get(f"{url}/ready").status_code == 404  # the API's routes are not served
    assert not (tmp_path / "pg").exists()  # no embedded PostgreSQL was started


def test_inference_mode_serves_sagemaker_routes_without_a_database(
    district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_database(*_: object) -> None:
        pytest.fail("the inference app opened a database")

    monkeypatch.setattr("app.api.deps.Database", no_database)
    monkeypatch.setattr("app.core.db.embedded_url", no_database)
    settings = Settings(
        environment="production",
        serve_mode="inference",
        model_store_url=district.settings.model_store_url,
        sagemaker_dir=Path("/nonexistent"),
    )
    with TestClient(create_app(settings)) as api:
        assert set(api.app.openapi()["paths"]) == {"/ping", "/invocations"}  # type: ignore[attr-defined]
        assert api.get("/ping").status_code == 200
        scored = api.post("/invocations", json={"instances": [{**ROW, "school_id": 1}]})
        assert scored.json()["predictions"][0]["model_scope"] == "school-1"
        assert api.get("/v1/students/1/risk").status_code == 404  # no API routes, no keys


def test_the_api_mode_still_needs_its_database_and_pepper_outside_development() -> None:
    with pytest.raises(ValueError, match="API_KEY_PEPPER"):
        Settings(environment="production", database_url="postgresql://h/db")
    with pytest.raises(ValueError, match="DATABASE_URL"):
        Settings(environment="production", api_key_pepper="x" * 32)


@pytest.mark.parametrize("school_id", ["nan", "inf", "-inf", "1e400", "5.7", "0", "2147483648"])
def test_csv_bad_school_id_is_a_400_naming_it(client: TestClient, school_id: str) -> None:
    resp = client.post(
        "/invocations", content=f"{school_id},{CSV_ROW}", headers={"Content-Type": "text/csv"}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["detail"].startswith("row 1: school_id must be an integer")


def test_csv_integral_float_school_id_is_accepted(client: TestClient) -> None:
    resp = client.post(
        "/invocations", content=f"1.0,{CSV_ROW}", headers={"Content-Type": "text/csv"}
    )
    assert resp.status_code == 200
    assert resp.json()["predictions"][0]["model_scope"] == "school-1"


def test_invocations_body_over_the_limit_is_413(district: District) -> None:
    settings = district.settings_with(max_invocation_bytes=2048)
    rows = "\n".join([CSV_ROW] * 200)  # well over 2 KiB
    csv = {"Content-Type": "text/csv"}
    with TestClient(create_app(settings)) as api:
        resp = api.post("/invocations", content=rows, headers=csv)
        assert resp.status_code == 413
        assert "2048 bytes" in resp.json()["detail"]

        def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to check up front
            for _ in range(200):
                yield (CSV_ROW + "\n").encode()

        chunked = api.post("/invocations", content=chunks(), headers=csv)
        assert chunked.status_code == 413
        small = api.post("/invocations", content=CSV_ROW, headers=csv)
        assert small.status_code == 200


def record_loops(monkeypatch: pytest.MonkeyPatch, registry: Any) -> list[bool]:
    """Spy on the registry's scoring (predict: CSV answers; explain: JSON answers, with their
    reasons): one entry per call, True when it ran on the event loop, False in a worker
    thread."""
    loops: list[bool] = []

    def spying(real: Any) -> Any:
        def spy(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                loops.append(True)
            except RuntimeError:  # no running loop: a worker thread
                loops.append(False)
            return real(*args, **kwargs)

        return spy

    for name in ("predict", "explain"):
        monkeypatch.setattr(registry, name, spying(getattr(registry, name)))
    return loops


def test_invocations_score_off_the_event_loop(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    loops = record_loops(monkeypatch, client.app.state.services.registry)  # type: ignore[attr-defined]
    # The client's registry re-reads the store on every call (refresh 0): never on the loop.
    assert client.post("/invocations", json={"instances": [ROW]}).status_code == 200
    assert loops == [False]


def test_small_invocations_are_scored_on_the_loop_once_models_are_fresh(
    district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fresh models in memory: a small body is scored on the event loop without a store read;
    a large one still goes to the thread pool. Both paths answer the same."""
    settings = district.settings_with(model_refresh_seconds=3600)
    with TestClient(create_app(settings)) as api:
        registry = api.app.state.services.registry  # type: ignore[attr-defined]
        assert api.get("/ping").status_code == 200  # loads the models
        assert registry.fresh
        loops = record_loops(monkeypatch, registry)
        with monkeypatch.context() as no_store:
            no_store.setattr(
                registry.store, "pointer", lambda: pytest.fail("store read on the event loop")
            )
            small = {"instances": [{**ROW, "school_id": 1}]}
            on_loop = api.post("/invocations", json=small)
            csv = api.post(
                "/invocations", content=f"1,{CSV_ROW}", headers={"Content-Type": "text/csv"}
            )
            bad = api.post("/invocations", json={"instances": [{**ROW, "grade": 99}]})
        # Over INLINE_INVOCATION_BYTES: off the loop, where a refresh may read the store.
        large = {"instances": [{**ROW, "school_id": 1}] * 200}
        off_loop = api.post("/invocations", json=large)
        assert (on_loop.status_code, csv.status_code, bad.status_code) == (200, 200, 400)
        assert off_loop.status_code == 200
        assert loops == [True, True, False]
        first = on_loop.json()["predictions"][0]
        assert csv.json()["predictions"][0] == first
        assert off_loop.json()["predictions"] == [first] * 200


def test_published_archive_is_served_as_the_endpoint_would(
    district: District, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli.main import main
    from app.core.settings import get_settings

    monkeypatch.setenv("MODEL_STORE_URL", district.settings.model_store_url)
    monkeypatch.setenv("SAGEMAKER_DIR", str(tmp_path / "no-sagemaker-here"))
    get_settings.cache_clear()
    try:
        assert main(["publish-sagemaker", str(tmp_path / "sagemaker")]) == 0
    finally:
        get_settings.cache_clear()
    archive = tmp_path / "sagemaker" / "model.tar.gz"
    # SageMaker extracts model data into /opt/ml/model; the image serves it as its store.
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "opt-ml-model", filter="data")
    served = ModelStore(district.settings.model_store_url).pointer()
    assert "current.json" in names
    for scope, version in served.scopes.items():
        assert f"versions/{version}/{scope}.joblib" in names
    extracted = ModelStore(str(tmp_path / "opt-ml-model")).pointer()
    assert (extracted.generation, extracted.scopes, extracted.history) == (
        served.generation,
        served.scopes,
        [],
    )
    body = {"instances": [{**ROW, "school_id": 1}]}
    with TestClient(create_app(district.settings)) as original:
        expected = original.post("/invocations", json=body).json()
    endpoint = district.settings_with(model_store_url=str(tmp_path / "opt-ml-model"))
    with TestClient(create_app(endpoint)) as api:
        assert api.get("/ping").status_code == 200
        assert api.post("/invocations", json=body).json() == expected


def test_publishing_before_any_promotion_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no model has been promoted yet"):
        ModelStore(str(tmp_path / "empty")).export_archive()


@pytest.mark.parametrize(
    "body",
    [b"'\xf3\x90\x90\xb6bw\x02\r\xc3\x8cO", b'"unterminated' + b"x" * 200_000],
)
def test_a_malformed_csv_body_is_a_400_naming_the_line(body: bytes) -> None:
    from fastapi import HTTPException

    from app.api.invocations_csv import parse_csv

    with pytest.raises(HTTPException) as raised:
        parse_csv(body)
    assert raised.value.status_code == 400
    assert "line" in raised.value.detail or "row" in raised.value.detail
