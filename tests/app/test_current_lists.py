"""The at-risk list stays current while it is cached: a rescoring by the worker (the same
generation) restamps the school's scores in Redis, and a page cached before it is read again.
Without Redis no process could tell the API's cache, so the page is not cached at all."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.logins import WORKER_LOGIN
from app.jobs.events.queue import PostgresQueue
from app.jobs.events.rescoring import InProcessScorer
from app.jobs.events.worker import Worker
from tests.app.conftest import District
from tests.app.helpers import auth, scalar

SCHOOL = 1


def worker_of(d: District) -> Worker:
    """The worker as `python -m app worker` builds it, with the API's Redis."""
    settings = d.settings.model_copy(update={"database_url": d.login_url(WORKER_LOGIN)})
    url = settings.database_url or ""
    return Worker(
        settings,
        PostgresQueue(lambda: psycopg.connect(url, autocommit=True), settings),
        InProcessScorer(settings),
        lambda: psycopg.connect(url, autocommit=True),
    )


def absences(student: int, days: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "attendance_marked",
            "idempotency_key": f"current-{student}-{day}",
            "student_id": student,
            "date": f"2026-11-{day:02d}",
            "status": "absent",
        }
        for day in range(1, days + 1)
    ]


def test_the_at_risk_list_is_current_after_the_worker_rescores(fresh_district: District) -> None:
    d = fresh_district
    assert d.settings.redis_url  # the deployed setup: one Redis for the API and the worker
    key = auth(d.keys["school1"])
    worker = worker_of(d)
    with TestClient(create_app(d.settings)) as api:
        params = {"min_risk": 0, "limit": 5}
        first = api.get(f"/v1/schools/{SCHOOL}/at-risk", params=params, headers=key)
        assert first.status_code == 200
        assert api.get(f"/v1/schools/{SCHOOL}/at-risk", params=params, headers=key).headers[
            "X-Cache"
        ] == "hit"  # fmt: skip
        top = first.json()["items"][0]
        posted = api.post(
            "/v1/events", json={"events": absences(top["student_id"], 25)}, headers=key
        )
        assert posted.status_code == 202 and not posted.json()["rejected"]
        assert worker.process(worker.queue.receive(50)).processed == 1
        rescored = scalar(
            d.url,
            "SELECT risk FROM risk_scores WHERE student_id = %s AND generation = %s",
            (top["student_id"], first.json()["generation"]),
        )
        assert rescored != pytest.approx(top["risk"], abs=1e-6)  # the worker changed it

        after = api.get(f"/v1/schools/{SCHOOL}/at-risk", params=params, headers=key)
        again = api.get(f"/v1/schools/{SCHOOL}/at-risk", params=params, headers=key)
    worker.close()
    assert after.headers["X-Cache"] == "miss"
    item = next(i for i in after.json()["items"] if i["student_id"] == top["student_id"])
    assert item["risk"] == pytest.approx(rescored, abs=1e-6)
    assert again.headers["X-Cache"] == "hit" and again.json() == after.json()


def test_without_redis_the_at_risk_list_is_not_cached(district: District) -> None:
    settings = district.settings_with(redis_url=None)
    key = auth(district.keys["school1"])
    with TestClient(create_app(settings)) as api:
        pages = [api.get(f"/v1/schools/{SCHOOL}/at-risk", headers=key) for _ in range(2)]
    assert [p.status_code for p in pages] == [200, 200]
    assert [p.headers["X-Cache"] for p in pages] == ["miss", "miss"]
