"""Prediction API: every endpoint's success and failure paths, audit log, caching, paging."""

from __future__ import annotations

import base64
import gc
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.api.main import create_app
from app.core.settings import Settings
from app.model.artifacts import ModelStore
from app.model.features import STANDARD_FEATURES
from tests.app.conftest import District
from tests.app.helpers import auth, scalar

FEATURES_OK = {
    "grade": 9, "attendance_rate": 0.7, "absences": 18, "lates": 4, "avg_mark": 48.0,
    "min_mark": 22.0, "failed_exams": 2, "incidents": 3, "severe_incidents": 1,
}  # fmt: skip


def first_student(d: District, school_id: int) -> int:
    return int(scalar(d.url, "SELECT min(id) FROM students WHERE school_id = %s", (school_id,)))


def audit_count(d: District, student_id: int) -> int:
    return int(scalar(d.url, "SELECT count(*) FROM audit_log WHERE student_id = %s", (student_id,)))


def test_health_ready_metrics_docs(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "detail": {}}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "detail": {"cache": "redis", "database": "ok", "model_generation": 1},
    }
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "ssp_http_requests_total" in metrics.text
    assert "ssp_model_generation 1.0" in metrics.text
    spec = client.get("/openapi.json").json()
    assert "/v1/students/{student_id}/risk" in spec["paths"]
    assert "/invocations" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_risk_requires_a_valid_key(client: TestClient) -> None:
    missing = client.get("/v1/students/1/risk")
    assert missing.status_code == 401
    assert missing.json() == {"detail": "missing API key (X-API-Key header)"}
    assert missing.headers["WWW-Authenticate"] == "ApiKey"
    wrong = client.get("/v1/students/1/risk", headers=auth("ssp_deadbeef_not-a-real-key"))
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "invalid API key"}


def test_failed_keys_are_limited_per_address_with_a_429_that_says_when_to_retry(
    district: District,
) -> None:
    settings = district.settings_with(
        auth_failures_per_minute=2, redis_url=None, cache_prefix="failures-per-address"
    )
    bad = auth("ssp_deadbeef_not-a-key")
    with TestClient(create_app(settings), client=("192.0.2.1", 40000)) as one:
        assert [one.get("/v1/schools/1/models", headers=bad).status_code for _ in range(2)] == [
            401, 401
        ]  # fmt: skip
        refused = one.get("/v1/schools/1/models", headers=bad)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        other = TestClient(one.app, client=("192.0.2.2", 40000))  # shares the open app
        assert other.get("/v1/schools/1/models", headers=bad).status_code == 401


def test_risk_of_own_student_is_returned_and_audited(
    client: TestClient, district: District
) -> None:
    sid = first_student(district, 1)
    before = audit_count(district, sid)
    first = client.get(f"/v1/students/{sid}/risk", headers=auth(district.keys["school1"]))
    assert first.status_code == 200
    body = first.json()
    pointer = ModelStore(district.settings.model_store_url).pointer()
    assert body["student_id"] == sid
    assert body["school_id"] == 1
    assert 0 < body["risk"] < 1
    assert body["threshold"] == 0.3
    assert body["at_risk"] == (body["risk"] >= 0.3)
    assert body["model_scope"] == "school-1"
    assert body["model_version"] == pointer.scopes["school-1"]
    assert body["generation"] == 1
    assert list(body["features"]) == list(STANDARD_FEATURES)
    assert len(body["reasons"]) == 3  # test_reasons.py: what they say
    stored = scalar(
        district.url, "SELECT attendance_rate FROM student_features WHERE student_id = %s", (sid,)
    )
    assert body["features"]["attendance_rate"] == pytest.approx(stored)
    assert first.headers["X-Cache"] == "miss"
    assert int(first.headers["X-RateLimit-Remaining"]) < 10_000
    second = client.get(f"/v1/students/{sid}/risk", headers=auth(district.keys["school1"]))
    assert second.headers["X-Cache"] == "hit"
    assert second.json() == body
    # FERPA: both reads are in the audit log, the cached one too, with who read it.
    assert audit_count(district, sid) == before + 2
    client_id = scalar(district.url, "SELECT id FROM api_clients WHERE name = 'school 1'")
    last = scalar(
        district.url,
        "SELECT array[client_id::text, school_id::text, action, detail->>'cache']"
        " FROM audit_log WHERE student_id = %s ORDER BY id DESC LIMIT 1",
        (sid,),
    )
    assert last == [str(client_id), "1", "read_student_risk", "hit"]


def test_risk_of_other_schools_student_is_not_found(client: TestClient, district: District) -> None:
    other = first_student(district, 2)
    resp = client.get(f"/v1/students/{other}/risk", headers=auth(district.keys["school1"]))
    assert resp.status_code == 404
    assert resp.json() == {"detail": f"student {other} not found"}
    # The district key sees school 2, but not school 5 of the other district.
    assert (
        client.get(
            f"/v1/students/{other}/risk", headers=auth(district.keys["district1"])
        ).status_code
        == 200
    )
    far = first_student(district, 5)
    assert (
        client.get(f"/v1/students/{far}/risk", headers=auth(district.keys["district1"])).status_code
        == 404
    )
    fallback = client.get(f"/v1/students/{far}/risk", headers=auth(district.keys["district2"]))
    assert fallback.json()["model_scope"] == "district"
    assert (
        client.get("/v1/students/999999/risk", headers=auth(district.keys["school1"])).status_code
        == 404
    )


@pytest.mark.parametrize("bad", ["0", "-4", "abc", "9223372036854775808"])
def test_risk_rejects_bad_ids_naming_the_field(
    client: TestClient, district: District, bad: str
) -> None:
    resp = client.get(f"/v1/students/{bad}/risk", headers=auth(district.keys["school1"]))
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["path", "student_id"]


def test_at_risk_pages_cover_the_school_in_order(client: TestClient, district: District) -> None:
    key = auth(district.keys["school1"])
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 7, "min_risk": 0.2}
        if cursor:
            params["cursor"] = cursor
        resp = client.get("/v1/schools/1/at-risk", params=params, headers=key)
        assert resp.status_code == 200
        page = resp.json()
        assert page["school_id"] == 1
        assert page["min_risk"] == 0.2
        assert page["limit"] == 7
        assert page["generation"] == 1
        assert len(page["items"]) <= 7
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = scalar(
        district.url,
        "SELECT array_agg(student_id ORDER BY risk DESC, student_id DESC) FROM risk_scores"
        " WHERE generation = 1 AND school_id = 1 AND risk >= 0.2",
    )
    assert [i["student_id"] for i in seen] == expected
    assert pages == max(1, -(-len(expected) // 7))
    risks = [i["risk"] for i in seen]
    assert risks == sorted(risks, reverse=True)
    item = seen[0]
    assert set(item) == {
        *("student_id", "first_name", "last_name", "grade", "risk", "model_version", "reasons"),
        *("indicators", "risk_change_30d", "open_intervention"),
    }
    assert (
        item["model_version"]
        == ModelStore(district.settings.model_store_url).pointer().scopes["school-1"]
    )
    # The page read is audited with the students it showed.
    logged_school = scalar(
        district.url,
        "SELECT school_id FROM audit_log WHERE action = 'read_at_risk_list'"
        " ORDER BY id DESC LIMIT 1",
    )
    assert logged_school == 1
    logged = scalar(
        district.url,
        "SELECT detail->'student_ids' FROM audit_log"
        " WHERE action = 'read_at_risk_list' ORDER BY id DESC LIMIT 1",
    )
    assert logged == [i["student_id"] for i in seen[-len(page["items"]) :]]


def test_at_risk_paging_survives_a_student_hidden_since_scoring(fresh_district: District) -> None:
    """A student who moved school after scoring is no longer visible to the old school: the
    page leaves them out but the cursor still leads through every other scored student."""
    ranked = scalar(
        fresh_district.url,
        "SELECT array_agg(student_id ORDER BY risk DESC, student_id DESC) FROM risk_scores"
        " WHERE generation = 1 AND school_id = 1 AND risk >= 0.2",
    )
    moved = ranked[1]
    with fresh_district.connect() as conn:
        conn.execute("UPDATE students SET school_id = 2 WHERE id = %s", (moved,))
    key = auth(fresh_district.keys["school1"])
    seen: list[int] = []
    first_page: list[int] = []
    cursor = None
    with TestClient(create_app(fresh_district.settings)) as api:
        while True:
            params: dict[str, object] = {"limit": 3, "min_risk": 0.2}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/v1/schools/1/at-risk", params=params, headers=key).json()
            ids = [i["student_id"] for i in page["items"]]
            first_page = first_page or ids
            seen += ids
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert first_page == [ranked[0], ranked[2]]  # a short page, not an early end
    assert seen == [s for s in ranked if s != moved]


def test_at_risk_default_threshold_and_limits(client: TestClient, district: District) -> None:
    key = auth(district.keys["school1"])
    page = client.get("/v1/schools/1/at-risk", headers=key).json()
    assert page["min_risk"] == 0.3
    assert page["limit"] == 50
    assert all(i["risk"] >= 0.3 for i in page["items"])
    everyone = client.get(
        "/v1/schools/1/at-risk", params={"min_risk": 0, "limit": 100}, headers=key
    ).json()
    assert len(everyone["items"]) == 100
    assert everyone["next_cursor"] is not None
    too_big = client.get("/v1/schools/1/at-risk", params={"limit": 101}, headers=key)
    assert too_big.status_code == 422
    assert too_big.json()["detail"][0]["loc"] == ["query", "limit"]
    for bad in ("not-base64!", base64.urlsafe_b64encode(b'{"r": 2, "i": 1}').decode()):
        resp = client.get("/v1/schools/1/at-risk", params={"cursor": bad}, headers=key)
        assert resp.status_code == 422
        assert resp.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_at_risk_of_another_school_is_forbidden(client: TestClient, district: District) -> None:
    resp = client.get("/v1/schools/2/at-risk", headers=auth(district.keys["school1"]))
    assert resp.status_code == 403
    assert resp.json() == {"detail": "this key is scoped to school 1"}
    resp = client.get("/v1/schools/5/at-risk", headers=auth(district.keys["district1"]))
    assert resp.status_code == 403
    assert resp.json() == {"detail": "school 5 is not in this key's district"}
    assert (
        client.get("/v1/schools/2/at-risk", headers=auth(district.keys["district1"])).status_code
        == 200
    )


def test_batch_predict(client: TestClient, district: District) -> None:
    key = auth(district.keys["school1"])
    low = {
        **FEATURES_OK,
        "attendance_rate": 1.0,
        "absences": 0,
        "avg_mark": 95,
        "min_mark": 90,
        "failed_exams": 0,
        "incidents": 0,
        "severe_incidents": 0,
    }
    resp = client.post(
        "/v1/predict", json={"school_id": 1, "instances": [FEATURES_OK, low]}, headers=key
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["threshold"] == 0.3
    high_p, low_p = body["predictions"]
    assert high_p["risk"] > low_p["risk"]
    assert high_p["at_risk"] is True
    assert high_p["model_scope"] == "school-1"
    district_pred = client.post("/v1/predict", json={"instances": [FEATURES_OK]}, headers=key)
    assert district_pred.json()["predictions"][0]["model_scope"] == "district"


def test_batch_predict_errors_name_the_field(client: TestClient, district: District) -> None:
    key = auth(district.keys["school1"])
    missing = {k: v for k, v in FEATURES_OK.items() if k != "attendance_rate"}
    resp = client.post("/v1/predict", json={"instances": [missing]}, headers=key)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "instances", 0, "attendance_rate"]
    out_of_range = {**FEATURES_OK, "attendance_rate": 1.5}
    resp = client.post("/v1/predict", json={"instances": [out_of_range]}, headers=key)
    assert resp.json()["detail"][0]["loc"] == ["body", "instances", 0, "attendance_rate"]
    extra = {**FEATURES_OK, "shoe_size": 9}
    resp = client.post("/v1/predict", json={"instances": [extra]}, headers=key)
    assert resp.json()["detail"][0]["loc"] == ["body", "instances", 0, "shoe_size"]
    assert client.post("/v1/predict", json={"instances": []}, headers=key).status_code == 422
    assert (
        client.post(
            "/v1/predict", content=b"{not json", headers={**key, "Content-Type": "application/json"}
        ).status_code
        == 422
    )
    other = client.post(
        "/v1/predict", json={"school_id": 2, "instances": [FEATURES_OK]}, headers=key
    )
    assert other.status_code == 403


def test_a_district_feature_the_model_does_not_take_is_refused_naming_it(
    client: TestClient, district: District
) -> None:
    key = auth(district.keys["school1"])
    posted = {**FEATURES_OK, "district_features": {"shoe_size": 9}}
    resp = client.post("/v1/predict", json={"instances": [FEATURES_OK, posted]}, headers=key)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == [
        "body", "instances", 1, "district_features", "shoe_size"
    ]  # fmt: skip


def test_model_versions_of_a_school(client: TestClient, district: District) -> None:
    pointer = ModelStore(district.settings.model_store_url).pointer()
    resp = client.get("/v1/schools/1/models", headers=auth(district.keys["school1"]))
    assert resp.status_code == 200
    body = resp.json()
    assert body["school_id"] == 1
    assert body["current_scope"] == "school-1"
    assert body["current_version"] == pointer.scopes["school-1"]
    assert {v["scope"] for v in body["versions"]} == {"school-1", "district"}
    for v in body["versions"]:
        assert v["is_current"] is True
        assert v["promoted"] is True
        assert v["version"] == pointer.scopes[v["scope"]]
        assert set(v["metrics"]) >= {"auc", "brier", "accuracy", "recall_at_threshold"}
    small = client.get("/v1/schools/5/models", headers=auth(district.keys["district2"])).json()
    assert small["current_scope"] == "district"
    assert [v["scope"] for v in small["versions"]] == ["district"]
    assert (
        client.get("/v1/schools/3/models", headers=auth(district.keys["school2"])).status_code
        == 403
    )
    assert (
        client.get("/v1/schools/0/models", headers=auth(district.keys["school2"])).status_code
        == 422
    )


@pytest.fixture
def gc_as_python_starts() -> Any:
    """Python's own collector settings before the test, and again after it."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_startup_freezes_the_heap_and_raises_the_young_threshold(
    district: District, gc_as_python_starts: None
) -> None:
    with TestClient(create_app(district.settings)) as api:
        assert api.get("/health").status_code == 200
        # The models, modules and pools built at startup are out of every later collection.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (10_000, 10, 10)


def test_startup_gc_tuning_follows_the_settings(
    district: District, gc_as_python_starts: None
) -> None:
    settings = district.settings_with(gc_freeze=False, gc_young_threshold=2_000)
    with TestClient(create_app(settings)):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == (2_000, 10, 10)


def test_gc_young_threshold_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GC_YOUNG_THRESHOLD", "0")
    with pytest.raises(ValidationError, match="gc_young_threshold"):
        Settings()
