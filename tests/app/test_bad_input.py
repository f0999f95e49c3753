"""Bad input at the edge: every number finite and in range, booleans are not numbers, forged
cursors, CSV bodies that never lose a row, and body limits checked before parsing and before
the API key. Always a 4xx naming the problem, never a 500 or a silently shorter answer."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.model.features import FEATURES
from tests.app.conftest import District
from tests.app.helpers import auth

ROW = {
    "grade": 9, "attendance_rate": 0.7, "absences": 18, "lates": 4, "avg_mark": 48.0,
    "min_mark": 22.0, "failed_exams": 2, "incidents": 3, "severe_incidents": 1,
}  # fmt: skip
CSV_ROW = ",".join(str(ROW[f]) for f in FEATURES)
CSV = {"Content-Type": "text/csv"}


def cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


@pytest.mark.parametrize("floor", ["1e-50", "1e-320", "5e-324", "0"])
def test_tiny_min_risk_is_answered(client: TestClient, district: District, floor: str) -> None:
    resp = client.get(
        "/v1/schools/1/at-risk",
        params={"min_risk": floor, "limit": 3},
        headers=auth(district.keys["school1"]),
    )
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["items"]) == 3  # every scored student is at or above such a floor


@pytest.mark.parametrize("floor", ["nan", "inf", "-1", "1.5", "x"])
def test_bad_min_risk_is_a_422_naming_it(
    client: TestClient, district: District, floor: str
) -> None:
    resp = client.get(
        "/v1/schools/1/at-risk", params={"min_risk": floor}, headers=auth(district.keys["school1"])
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["query", "min_risk"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"r": 0.5, "i": 1e400}',
        '{"r": 0.5, "i": Infinity}',
        '{"r": NaN, "i": 5}',
        '{"r": 0.5, "i": 5.5}',
        '{"r": 0.5, "i": true}',
        '{"r": true, "i": 5}',
        '{"r": "0.5", "i": 5}',
        '{"r": 0.5, "i": 99999999999999999999999}',
        '[1, 2]',
        '"x"',
        '[' * 100 + ']' * 100,
    ],
)  # fmt: skip
def test_forged_cursor_is_a_422(client: TestClient, district: District, raw: str) -> None:
    resp = client.get(
        "/v1/schools/1/at-risk",
        params={"cursor": cursor(raw)},
        headers=auth(district.keys["school1"]),
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_cursor_with_a_tiny_risk_is_answered(client: TestClient, district: District) -> None:
    resp = client.get(
        "/v1/schools/1/at-risk",
        params={"cursor": cursor('{"r": 1e-50, "i": 5}'), "min_risk": 0},
        headers=auth(district.keys["school1"]),
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["items"] == []  # nothing ranks below (0, 5) but risk-0 students 1-4


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_feature_is_a_422_naming_it(
    client: TestClient, district: District, value: str
) -> None:
    body = json.dumps({"instances": [ROW]}).replace('"absences": 18', f'"absences": {value}')
    resp = client.post(
        "/v1/predict",
        content=body,
        headers={**auth(district.keys["school1"]), "Content-Type": "application/json"},
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "instances", 0, "absences"]
    assert "input" not in resp.json()["detail"][0]  # the refused value is not echoed


@pytest.mark.parametrize("value", [False, True, "1"])
def test_a_boolean_or_string_is_not_a_number(
    client: TestClient, district: District, value: object
) -> None:
    resp = client.post(
        "/v1/predict",
        json={"instances": [{**ROW, "severe_incidents": value}]},
        headers=auth(district.keys["school1"]),
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "instances", 0, "severe_incidents"]
    invocation = client.post("/invocations", json={"instances": [{**ROW, "school_id": True}]})
    assert invocation.status_code == 400
    assert invocation.json()["detail"][0]["loc"] == ["instances", 0, "school_id"]


@pytest.mark.parametrize(
    "body",
    [
        "\ufeff" + CSV_ROW + "\n" + CSV_ROW,  # a byte-order mark before the first row
        CSV_ROW + "\n" + CSV_ROW,
        "school_id," + ",".join(FEATURES) + "\n1," + CSV_ROW + "\n2," + CSV_ROW,
        "\ufeff" + ",".join(FEATURES) + "\r\n" + CSV_ROW + "\r\n" + CSV_ROW + "\r\n",
    ],
)
def test_csv_scores_every_row(client: TestClient, body: str) -> None:
    resp = client.post("/invocations", content=body.encode(), headers=CSV)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["predictions"]) == 2


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("x," + CSV_ROW[2:] + "\n" + CSV_ROW, "row 1: grade: 'x' is not a number"),
        ("," + CSV_ROW[2:] + "\n" + CSV_ROW, "row 1: grade: '' is not a number"),
        ("\ufeffx," + CSV_ROW[2:], "row 1: grade: 'x' is not a number"),
        ("grade,absences\n" + CSV_ROW, "row 1: expected 9 columns"),
        (CSV_ROW + "\n" + ",".join(FEATURES), "row 2: grade: 'grade' is not a number"),
        (CSV_ROW + "\n" + CSV_ROW.replace("18", "nan"), "row 2: absences: Input should be"),
    ],
)
def test_csv_bad_row_is_a_400_naming_row_and_field(
    client: TestClient, body: str, detail: str
) -> None:
    resp = client.post("/invocations", content=body.encode(), headers=CSV)
    assert resp.status_code == 400, resp.text
    assert resp.json()["detail"].startswith(detail)


def test_csv_of_many_short_rows_stops_at_the_first(client: TestClient) -> None:
    body = b"1\n" * 3_000_000  # 6 MB of one-cell rows
    started = time.process_time()
    resp = client.post("/invocations", content=body, headers=CSV)
    assert resp.status_code == 400
    assert resp.json()["detail"].startswith("row 1: expected 9 columns")
    assert time.process_time() - started < 1.0  # on main: seconds, every row read first


def test_csv_rows_over_the_maximum_are_refused(client: TestClient) -> None:
    body = "\n".join([CSV_ROW] * 10_001).encode()
    resp = client.post("/invocations", content=body, headers=CSV)
    assert resp.status_code == 400
    assert resp.json()["detail"] == "at most 10000 rows per request"


@pytest.fixture(scope="module")
def small_limits(district: District) -> Iterator[TestClient]:
    settings = district.settings_with(max_body_bytes=4096, max_invocation_bytes=8192)
    with TestClient(create_app(settings)) as api:
        yield api


def big_predict_body(rows: int) -> bytes:
    return json.dumps({"instances": [ROW] * rows}).encode()


@pytest.mark.parametrize("key", [None, "bad-key"])
def test_large_body_is_refused_before_authentication(
    small_limits: TestClient, key: str | None
) -> None:
    headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
    body = big_predict_body(100)  # about 17 KB
    resp = small_limits.post("/v1/predict", content=body, headers=headers)
    assert resp.status_code == 413
    assert resp.json() == {"detail": "request body exceeds the limit of 4096 bytes"}

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to check up front
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    chunked = small_limits.post("/v1/predict", content=chunks(), headers=headers)
    assert chunked.status_code == 413


def test_bodies_within_the_limits_pass(small_limits: TestClient, district: District) -> None:
    key = auth(district.keys["school1"])
    json_key = {**key, "Content-Type": "application/json"}
    resp = small_limits.post("/v1/predict", content=big_predict_body(10), headers=json_key)
    assert resp.status_code == 200
    # /invocations has a limit of its own.
    rows = "\n".join([CSV_ROW] * 150).encode()  # about 4.2 KB: over 4096, under 8192
    assert small_limits.post("/invocations", content=rows, headers=CSV).status_code == 200
    assert small_limits.post("/invocations", content=rows * 3, headers=CSV).status_code == 413
    # Routes without a body are limited too (a GET with a body is refused the same way).
    get = small_limits.request("GET", "/v1/schools/1/models", content=b"x" * 5000, headers=key)
    assert get.status_code == 413


def test_over_the_in_flight_limit_is_a_fast_503(district: District) -> None:
    """Admission control: requests beyond MAX_IN_FLIGHT are refused at once with Retry-After,
    while those admitted complete (the limit counts per worker, here one app)."""
    app = create_app(district.settings_with(max_in_flight=2, cache_prefix="admission"))
    services = app.state.services
    release = asyncio.Event()
    real_fetch = services.db.fetch

    async def run() -> tuple[list[httpx.Response], list[float]]:
        await services.db.open()

        async def slow_fetch(*args: Any, **kwargs: Any) -> Any:
            # Holds the two admitted requests in flight until the test lets them go.
            await release.wait()
            return await real_fetch(*args, **kwargs)

        services.db.fetch = slow_fetch
        transport = httpx.ASGITransport(app=app)
        key = auth(district.keys["district1"])
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
            held = [
                asyncio.create_task(api.get("/v1/schools/1/models", headers=key)) for _ in range(2)
            ]
            await asyncio.sleep(0.2)  # both admitted and waiting
            shed, took = [], []
            for _ in range(5):
                started = time.perf_counter()
                shed.append(await api.get("/v1/schools/1/models", headers=key))
                took.append(time.perf_counter() - started)
            assert (await api.get("/health")).status_code == 200  # probes are never shed
            release.set()
            done = await asyncio.gather(*held)
            after = await api.get("/v1/schools/1/models", headers=key)
        await services.db.close()
        return [*shed, *done, after], took

    # A loop of its own, never set as the thread's: asyncio.run would leave the main thread
    # without one, which later tests (Pulumi's mocks) expect to find.
    loop = asyncio.new_event_loop()
    try:
        responses, took = loop.run_until_complete(run())
    finally:
        loop.close()
    shed, admitted = responses[:5], responses[5:]
    assert [r.status_code for r in shed] == [503] * 5
    assert all(r.headers["Retry-After"] == "1" for r in shed)
    assert shed[0].json() == {"detail": "server busy, retry later"}
    assert [r.status_code for r in admitted] == [200] * 3
    assert min(took) < 0.05  # refused without waiting (timed properly by benchmarks/)
