"""Rate limiting, cache invalidation on promotion, Redis down, database down and back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pgserver
import pytest
import redis
from fastapi.testclient import TestClient
from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

from app.api.main import create_app
from app.core import db
from app.core.auth import create_key
from app.core.settings import Settings
from app.jobs.generate import generate
from app.model.training import run_training
from tests.app.conftest import District, start_pgserver, start_redis
from tests.app.helpers import PEPPER, auth, free_port


def test_rate_limit_per_key_with_retry_after(district: District, redis_url: str) -> None:
    settings = district.settings_with(
        rate_limit_interactive_requests=3, rate_limit_window_seconds=3600, cache_prefix="ratelimit"
    )
    with TestClient(create_app(settings)) as api:
        key = auth(district.keys["school1"])
        remaining = [
            api.get("/v1/schools/1/models", headers=key).headers["X-RateLimit-Remaining"]
            for _ in range(3)
        ]
        assert remaining == ["2", "1", "0"]
        limited = api.get("/v1/schools/1/models", headers=key)
        assert limited.status_code == 429
        assert limited.json() == {
            "detail": "rate limit of 3 requests per 3600s for interactive keys exceeded"
        }
        assert 1 <= int(limited.headers["Retry-After"]) <= 3600
        # The count lives in Redis, so every replica shares it; other keys are unaffected.
        assert redis.Redis.from_url(redis_url).keys("ratelimit:rl:*")
        other = api.get("/v1/schools/2/models", headers=auth(district.keys["school2"]))
        assert other.status_code == 200


def test_promotion_invalidates_cached_predictions(fresh_district: District) -> None:
    key = auth(fresh_district.keys["school1"])
    with TestClient(create_app(fresh_district.settings)) as api:
        first = api.get("/v1/students/1/risk", headers=key)
        assert first.headers["X-Cache"] == "miss"
        assert api.get("/v1/students/1/risk", headers=key).headers["X-Cache"] == "hit"
        models = api.get("/v1/schools/1/models", headers=key).json()
        promoted = run_training(fresh_district.trainer)
        after = api.get("/v1/students/1/risk", headers=key)
        assert after.headers["X-Cache"] == "miss"
        assert after.json()["generation"] == first.json()["generation"] + 1
        # A re-run on the same data: the district model is promoted again (not worse), and so
        # is school 1's retrained model (its gain over the district model is still supported,
        # and it is not shown worse than the current one). The new generation made every
        # cached prediction unreachable.
        assert {"district", "school-1"} <= set(promoted.promoted)
        assert first.json()["model_version"] != promoted.version
        assert after.json()["model_version"] == promoted.version
        assert api.get("/v1/students/1/risk", headers=key).headers["X-Cache"] == "hit"
        new_models = api.get("/v1/schools/1/models", headers=key).json()
        assert new_models["current_version"] == promoted.version
        assert len(new_models["versions"]) == len(models["versions"]) + 2


def test_serves_uncached_when_redis_is_down(district: District) -> None:
    port = free_port()
    proc = start_redis(port)
    settings = district.settings_with(
        redis_url=f"redis://127.0.0.1:{port}/0", cache_prefix="redisdown"
    )
    key = auth(district.keys["school1"])
    try:
        with TestClient(create_app(settings)) as api:
            assert api.get("/v1/students/2/risk", headers=key).headers["X-Cache"] == "miss"
            assert api.get("/v1/students/2/risk", headers=key).headers["X-Cache"] == "hit"
            proc.terminate()
            proc.wait(10)
            for _ in range(3):
                started = time.perf_counter()
                resp = api.get("/v1/students/2/risk", headers=key)
                assert resp.status_code == 200
                assert resp.headers["X-Cache"] == "miss"
                assert time.perf_counter() - started < 2.0
            assert api.get("/ready").json()["detail"]["cache"] == "degraded"
    finally:
        proc.kill()


def test_never_started_redis_is_not_an_error(district: District) -> None:
    settings = district.settings_with(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(settings)) as api:
        resp = api.get("/v1/students/3/risk", headers=auth(district.keys["school1"]))
        assert resp.status_code == 200
        assert resp.headers["X-Cache"] == "miss"


@pytest.fixture
def own_postgres() -> Iterator[pgserver.PostgresServer]:
    server = start_pgserver()
    yield server
    server.cleanup()


def test_database_down_gives_fast_503_and_recovers(
    own_postgres: pgserver.PostgresServer, tmp_path: Path, make_database: Callable[[], str]
) -> None:
    settings = Settings(
        environment="test",
        database_url=str(own_postgres.get_uri()),
        model_store_url=str(tmp_path / "models"),
        api_key_pepper=PEPPER,
        db_pool_timeout=1.0,
        db_retry_after_seconds=3,
        model_refresh_seconds=0,
    )
    db.migrate(settings)
    with db.connect_owner(settings) as conn:
        generate(conn, schools=1, students_per_school=40, days=5, progress=False)
        _, key = create_key(conn, PEPPER, "school 1", school_id=1)
        _, unseen_key = create_key(conn, PEPPER, "school 1 unseen", school_id=1)
    with TestClient(create_app(settings)) as api:
        # Each min_risk is a distinct cache key, so every call below reaches the database.
        def at_risk(floor: float) -> httpx.Response:
            return api.get("/v1/schools/1/at-risk", params={"min_risk": floor}, headers=auth(key))

        ok = at_risk(0.11)
        assert ok.status_code == 200
        assert ok.json()["items"] == []
        # With no model yet, predictions say so with a 503 rather than failing.
        assert api.get("/ping").status_code == 503

        pg_ctl(
            ["-w", "stop", "-m", "fast"], pgdata=own_postgres.pgdata, user=own_postgres.system_user
        )
        for floor in (0.12, 0.13, 0.14):
            started = time.perf_counter()
            down = at_risk(floor)
            assert down.status_code == 503
            assert down.json() == {"detail": "database unavailable, retry later"}
            assert down.headers["Retry-After"] == "3"
            assert time.perf_counter() - started < 2.5
        # A key not yet looked up cannot be checked either: still a 503, not a 500.
        unseen = api.get("/v1/schools/1/models", headers=auth(unseen_key))
        assert unseen.status_code == 503
        assert unseen.headers["Retry-After"] == "3"
        ready = api.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["detail"]["database"] == "unavailable"
        assert api.get("/health").status_code == 200  # liveness does not depend on the DB

        own_postgres.ensure_postgres_running()
        deadline = time.monotonic() + 30
        floor = 0.2
        while True:
            floor += 0.001
            resp = at_risk(floor)
            if resp.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert resp.status_code == 200
        assert api.get("/ready").status_code == 200
