"""The key lifecycle: `list-keys`, `revoke-key`, and a revocation reaching every replica within
a couple of seconds (through Redis; without it, through a short client cache)."""

from __future__ import annotations

import json
import time
import types

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.cli import main as cli
from app.core import auth as auth_module
from app.core.auth import Authenticator, announce_revocation, create_key
from app.core.cache import Cache
from app.core.db import connect_owner
from app.core.settings import Settings
from tests.app.conftest import District
from tests.app.helpers import PEPPER, auth, count_lookups, scalar

REVOCATION_BOUND_SECONDS = 2.5  # "within a couple of seconds"


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings,
    *argv: str,
) -> tuple[int, str]:  # fmt: skip
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def new_key(district: District, name: str) -> tuple[int, str]:
    with connect_owner(district.owner) as conn:
        return create_key(conn, PEPPER, name, school_id=1)


def seconds_until_refused(replicas: list[TestClient], key: str) -> float:
    started = time.monotonic()
    pending = set(range(len(replicas)))
    while pending and time.monotonic() - started < 10:
        for i in list(pending):
            if replicas[i].get("/v1/schools/1/models", headers=auth(key)).status_code == 401:
                pending.discard(i)
        time.sleep(0.05)
    assert not pending, "a replica still accepts the revoked key"
    return time.monotonic() - started


def test_list_keys_shows_every_key_but_no_secret(
    district: District, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client_id, key = new_key(district, "listed")
    code, out = run_cli(monkeypatch, capsys, district.owner, "list-keys")
    assert code == 0
    listed = {k["id"]: k for k in json.loads(out)}
    assert listed[client_id]["name"] == "listed"
    assert listed[client_id]["key_prefix"] == key.split("_")[1]
    assert listed[client_id]["is_active"] is True
    assert set(listed[client_id]) == {
        "id", "name", "key_prefix", "school_id", "district_id", "is_active", "created_at",
    }  # fmt: skip
    assert key not in out


@pytest.mark.parametrize("shared", ["redis", "none"])
def test_revocation_reaches_every_replica_within_seconds(
    district: District,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    shared: str,
) -> None:
    url = redis_url if shared == "redis" else None
    settings = district.settings_with(redis_url=url, cache_prefix=f"revoke-{shared}")
    client_id, key = new_key(district, f"revoked-{shared}")
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        for replica in (one, two):
            for _ in range(3):  # looked up, then cached
                assert replica.get("/v1/schools/1/models", headers=auth(key)).status_code == 200
        owner = district.owner.model_copy(
            update={"redis_url": url, "cache_prefix": settings.cache_prefix}
        )
        by = ["--prefix", key.split("_")[1]] if shared == "redis" else ["--id", str(client_id)]
        code, out = run_cli(monkeypatch, capsys, owner, "revoke-key", *by)
        assert code == 0
        assert json.loads(out) == {
            "revoked": [{"id": client_id, "name": f"revoked-{shared}", "key_prefix": by[1]}]
            if shared == "redis"
            else [{"id": client_id, "name": f"revoked-{shared}", "key_prefix": key.split("_")[1]}],
            "announced": shared == "redis",
        }
        assert seconds_until_refused([one, two], key) < REVOCATION_BOUND_SECONDS
        # Other keys keep working.
        assert (
            one.get("/v1/schools/1/models", headers=auth(district.keys["school1"])).status_code
            == 200
        )
    again, _ = run_cli(monkeypatch, capsys, owner, "revoke-key", "--id", str(client_id))
    assert again == 2  # no active key matches any more


def test_with_redis_a_client_stays_cached_30_seconds_until_a_revocation_is_read(
    district: District, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The revocation counter is read in the requests' own Redis round trip: while it is seen,
    a client is looked up once per 30 seconds, and at once again after a revocation."""
    clock = [1000.0]
    monkeypatch.setattr(auth_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    settings = district.settings_with(redis_url=redis_url, cache_prefix="revocations-read")
    _, key = new_key(district, "watched")
    with TestClient(create_app(settings)) as api:
        authenticator: Authenticator = api.app.state.services.auth  # type: ignore[attr-defined]
        lookups = count_lookups(authenticator)

        def request(at: float) -> int:
            clock[0] = at
            return api.get("/v1/schools/1/models", headers=auth(key)).status_code

        assert request(1000.0) == 200  # the counter not yet seen: cached a second
        assert request(1002.0) == 200  # looked up again, now cached 30 s
        assert len(lookups) == 2
        assert request(1020.0) == 200
        assert len(lookups) == 2
        assert announce_revocation(Cache(redis_url, settings.cache_prefix))
        assert request(1021.0) == 200  # the counter moved: the cache emptied
        assert len(lookups) == 3


def test_another_keys_revocation_does_not_cost_a_client_its_cached_answers(
    district: District, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A revocation empties every replica's client cache; a key still valid is checked again
    in the same request and keeps the answer cached for it."""
    clock = [1000.0]
    monkeypatch.setattr(auth_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    settings = district.settings_with(redis_url=redis_url, cache_prefix="revocation-keeps-hits")
    key = auth(district.keys["school1"])
    student = scalar(district.url, "SELECT min(id) FROM students WHERE school_id = 1")
    with TestClient(create_app(settings)) as api:
        served = api.get(f"/v1/students/{student}/risk", headers=key)
        for _ in range(50):  # cached after the miss, in the background
            if served.headers["X-Cache"] == "hit":
                break
            time.sleep(0.05)
            served = api.get(f"/v1/students/{student}/risk", headers=key)
        assert served.headers["X-Cache"] == "hit"
        assert announce_revocation(Cache(redis_url, settings.cache_prefix))
        clock[0] += 1.5  # the counter is due again: read, moved, the client cache emptied
        after = api.get(f"/v1/students/{student}/risk", headers=key)
        assert after.status_code == 200 and after.headers["X-Cache"] == "hit"
