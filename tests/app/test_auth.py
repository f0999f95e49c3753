"""API-key authentication: bounded client and failed-key caches, failed attempts limited per IP
(Redis shared by replicas, in-process without Redis or while it is down)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core import auth as auth_module
from app.core.auth import (
    FAILED_CACHE_SECONDS,
    FAILED_CACHE_SIZE,
    Authenticator,
    Client,
    FailureLimiter,
    TooManyFailuresError,
    hash_key,
)
from app.core.cache import Cache
from app.core.db import Tenant
from app.core.settings import Settings
from tests.app.conftest import District
from tests.app.helpers import PEPPER, auth, count_lookups, free_port, run_async, served

VALID_KEY = "ssp_00000000_valid"


class FakeDB:
    """Stands in for the API's transactions: one valid key, every query counted."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.row = {"id": 7, "name": "school 1", "school_id": 1, "district_id": None}
        self.row["key_class"] = "interactive"
        self.row["key_hash"] = hash_key(VALID_KEY, PEPPER)

    async def fetch(
        self, tenant: Tenant | None, query: str, params: Sequence[Any]
    ) -> list[dict[str, Any]]:
        assert tenant is None
        self.queries.append(params[0])
        if "key_prefix FROM" in query:  # the active keys' prefixes
            return [{"key_prefix": VALID_KEY.split("_")[1]}]
        return [self.row] if params[0] == self.row["key_hash"] else []

    def key_lookups(self) -> list[Any]:
        return [q for q in self.queries if q is not True]


def bad_key() -> str:
    return f"ssp_deadbeef_{secrets.token_urlsafe(16)}"


def test_valid_client_stays_cached_after_a_flood_of_distinct_bad_keys() -> None:
    db = FakeDB()
    authenticator = Authenticator(db.fetch, PEPPER)
    authenticator.revocations_read(0)  # revocations watched: valid clients cached 30 s
    assert run_async(authenticator.authenticate(VALID_KEY)) == Client(7, "school 1", 1, None)
    flood = [bad_key() for _ in range(10_050)]
    for key in flood:
        assert run_async(authenticator.authenticate(key)) is None
    assert len(db.queries) == 1 + len(flood)
    assert run_async(authenticator.authenticate(VALID_KEY)) == Client(7, "school 1", 1, None)
    assert len(db.queries) == 1 + len(flood)  # no query: the flood did not evict it
    assert len(authenticator._failed) == FAILED_CACHE_SIZE
    assert len(authenticator._clients) == 1


def test_a_bad_key_is_queried_once_until_its_60_seconds_are_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: now[0])
    db = FakeDB()
    authenticator = Authenticator(db.fetch, PEPPER)
    key = bad_key()
    for _ in range(5):
        assert run_async(authenticator.authenticate(key)) is None
    assert len(db.queries) == 1
    now[0] += 59.9
    assert run_async(authenticator.authenticate(key)) is None
    assert len(db.queries) == 1
    now[0] += 0.1  # FAILED_CACHE_SECONDS: expired, asked again (the key may exist by now)
    assert run_async(authenticator.authenticate(key)) is None
    assert len(db.queries) == 2
    now[0] += FAILED_CACHE_SECONDS + 1
    assert run_async(authenticator.authenticate(key)) is None
    assert len(db.queries) == 3


def test_client_cache_is_lru_and_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(auth_module, "CLIENT_CACHE_SIZE", 1)
    db = FakeDB()
    authenticator = Authenticator(db.fetch, PEPPER)
    authenticator.revocations_read(0)  # revocations watched: valid clients cached 30 s
    run_async(authenticator.authenticate(VALID_KEY))
    now[0] += auth_module.CLIENT_CACHE_SECONDS - 1
    run_async(authenticator.authenticate(VALID_KEY))
    assert len(db.queries) == 1
    now[0] += 2
    run_async(authenticator.authenticate(VALID_KEY))
    assert len(db.queries) == 2  # a revoked key stops working within CLIENT_CACHE_SECONDS
    assert len(authenticator._clients) == 1


def test_limiter_refuses_before_the_query_and_lets_cached_clients_in() -> None:
    db = FakeDB()
    authenticator = Authenticator(db.fetch, PEPPER, FailureLimiter(Cache(None, "unit"), 3))
    assert run_async(authenticator.authenticate(VALID_KEY, "10.0.0.1")) is not None
    for _ in range(3):
        assert run_async(authenticator.authenticate(bad_key(), "10.0.0.1")) is None
    lookups = len(db.key_lookups())
    with pytest.raises(TooManyFailuresError) as refused:
        run_async(authenticator.authenticate(bad_key(), "10.0.0.1"))
    assert 1 <= refused.value.retry_after <= 60
    assert len(db.key_lookups()) == lookups
    # A cached valid client behind the same address still gets in; other addresses too.
    assert run_async(authenticator.authenticate(VALID_KEY, "10.0.0.1")) is not None
    assert run_async(authenticator.authenticate(bad_key(), "10.0.0.2")) is None


def test_a_valid_key_gets_in_from_a_blocked_address() -> None:
    """One abuser behind a school's NAT address must not lock the school out: a key with an
    active key's prefix is still looked up, guessed keys (other prefixes) are not."""
    db = FakeDB()
    authenticator = Authenticator(db.fetch, PEPPER, FailureLimiter(Cache(None, "unit"), 3))
    for _ in range(3):
        assert run_async(authenticator.authenticate(bad_key(), "10.0.0.1")) is None
    with pytest.raises(TooManyFailuresError):
        run_async(authenticator.authenticate(bad_key(), "10.0.0.1"))
    lookups = len(db.key_lookups())
    found = run_async(authenticator.authenticate(VALID_KEY, "10.0.0.1"))
    assert found == Client(7, "school 1", 1, None)
    assert len(db.key_lookups()) == lookups + 1
    # A wrong key with a known prefix is looked up but refused as the address is blocked.
    with pytest.raises(TooManyFailuresError):
        run_async(authenticator.authenticate(VALID_KEY + "x", "10.0.0.1"))
    for _ in range(50):
        with pytest.raises(TooManyFailuresError):
            run_async(authenticator.authenticate(bad_key(), "10.0.0.1"))
    assert len(db.key_lookups()) == lookups + 2
    assert db.queries.count(True) == 1  # the prefixes were read once


def test_a_blocked_address_costs_one_read_of_the_active_prefixes_every_five_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The prefixes of active keys are read again after PREFIX_REFRESH_SECONDS (a key created
    meanwhile then gets in from the blocked address), never more often during a flood."""
    now = [1000.0]
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: now[0])
    db = FakeDB()
    authenticator = Authenticator(db.fetch, PEPPER, FailureLimiter(Cache(None, "unit"), 1))
    assert run_async(authenticator.authenticate(bad_key(), "10.0.0.1")) is None  # now blocked
    for elapsed in (0.0, 4.9):
        now[0] = 1000.0 + elapsed
        with pytest.raises(TooManyFailuresError):
            run_async(authenticator.authenticate(bad_key(), "10.0.0.1"))
    prefix_reads = len(db.queries) - len(db.key_lookups())
    assert prefix_reads == 1
    now[0] = 1005.0
    with pytest.raises(TooManyFailuresError):
        run_async(authenticator.authenticate(bad_key(), "10.0.0.1"))
    assert len(db.queries) - len(db.key_lookups()) == 2


def test_an_address_that_used_up_its_failures_is_refused_until_the_minute_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: now[0])
    limiter = FailureLimiter(Cache(None, "unit"), 2)
    run_async(limiter.failed("10.0.0.1"))
    limiter.check("10.0.0.1")  # one failure of two: not blocked
    run_async(limiter.failed("10.0.0.1"))  # the second, within the minute: blocked
    with pytest.raises(TooManyFailuresError) as refused:
        limiter.check("10.0.0.1")
    assert refused.value.retry_after == 60
    now[0] += 59.5
    with pytest.raises(TooManyFailuresError) as refused:
        limiter.check("10.0.0.1")
    assert refused.value.retry_after == 1  # rounded up
    now[0] += 0.4995
    with pytest.raises(TooManyFailuresError) as refused:
        limiter.check("10.0.0.1")
    assert refused.value.retry_after == 1  # never "retry in 0 seconds"
    now[0] += 0.0005
    limiter.check("10.0.0.1")


def test_the_addresses_blocked_last_are_remembered_over_older_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth_module, "BLOCKED_IPS_SIZE", 2)
    limiter = FailureLimiter(Cache(None, "unit"), 1)
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        run_async(limiter.failed(ip))  # its one failure a minute used up: blocked
    limiter.check("10.0.0.1")  # the oldest forgotten (its next failure blocks it again)
    for ip in ("10.0.0.2", "10.0.0.3"):
        with pytest.raises(TooManyFailuresError):
            limiter.check(ip)


def test_a_process_remembers_the_last_10_000_blocked_addresses() -> None:
    limiter = FailureLimiter(Cache(None, "unit"), 1)
    addresses = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(10_001)]

    async def block_all() -> None:
        for ip in addresses:
            await limiter.failed(ip)  # its one failure a minute used up: blocked

    run_async(block_all())
    limiter.check(addresses[0])  # the 10,001st pushed out the first
    for ip in (addresses[1], addresses[-1]):
        with pytest.raises(TooManyFailuresError):
            limiter.check(ip)


def test_a_process_keeps_the_10_000_clients_used_last() -> None:
    keys = [f"ssp_{i:08x}_secret" for i in range(10_001)]
    rows = {hash_key(key, PEPPER): i for i, key in enumerate(keys)}
    lookups: list[str] = []

    async def fetch(tenant: Tenant | None, query: str, params: Sequence[Any]) -> list[Any]:
        lookups.append(params[0])
        i = rows[params[0]]
        return [{"id": i, "name": keys[i], "key_hash": params[0], "school_id": 1,
                 "district_id": None, "key_class": "interactive"}]  # fmt: skip

    authenticator = Authenticator(fetch, PEPPER)
    authenticator.revocations_read(0)  # revocations watched: clients cached 30 s

    async def use(*used: str) -> None:
        for key in used:
            assert await authenticator.authenticate(key) is not None

    run_async(use(*keys))
    run_async(use(keys[1], keys[-1]))
    assert len(lookups) == len(keys)  # both kept
    run_async(use(keys[0]))
    assert len(lookups) == len(keys) + 1  # the 10,001st pushed out the first


def test_a_process_remembers_the_last_4_096_keys_that_failed() -> None:
    db = FakeDB()
    authenticator = Authenticator(db.fetch, PEPPER)
    keys = [bad_key() for _ in range(4_097)]

    async def refused(*tried: str) -> None:
        for key in tried:
            assert await authenticator.authenticate(key) is None

    run_async(refused(*keys, keys[1], keys[-1]))
    assert len(db.queries) == len(keys)  # both remembered
    run_async(refused(keys[0]))
    assert len(db.queries) == len(keys) + 1  # the 4,097th pushed out the first


def test_the_keys_that_failed_last_are_remembered_over_older_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth_module, "FAILED_CACHE_SIZE", 2)
    db = FakeDB()
    authenticator = Authenticator(db.fetch, PEPPER)
    first, second, third = bad_key(), bad_key(), bad_key()
    for key in (first, second, third, third, second):
        assert run_async(authenticator.authenticate(key)) is None
    assert len(db.queries) == 3  # the last two were answered without a query
    assert run_async(authenticator.authenticate(first)) is None
    assert len(db.queries) == 4  # the first was forgotten


def wait_for_fresh_minute() -> None:
    """Redis counts in fixed windows aligned to the minute: don't start a test at its end."""
    left = 60 - time.time() % 60
    if left < 8:
        time.sleep(left + 0.1)


@pytest.mark.parametrize("backend", ["redis", "memory", "redis-down"])
def test_flood_of_bad_keys_from_one_ip_gets_401_then_429(
    district: District, redis_url: str, backend: str
) -> None:
    prefix = f"authfail-{backend}-{secrets.token_hex(4)}"
    url = {
        "redis": redis_url,
        "memory": None,
        "redis-down": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    }[backend]
    settings = district.settings_with(
        auth_failures_per_minute=10, redis_url=url, cache_prefix=prefix
    )
    wait_for_fresh_minute()
    app = create_app(settings)
    with TestClient(app) as api:
        authenticator: Authenticator = app.state.services.auth
        queries = count_lookups(authenticator)
        valid = auth(district.keys["school1"])
        assert api.get("/v1/schools/1/models", headers=valid).status_code == 200
        assert len(queries) == 1

        repeated = [bad_key() for _ in range(3)]
        for key in repeated * 2:
            resp = api.get("/v1/schools/1/models", headers=auth(key))
            assert resp.status_code == 401
        assert len(queries) == 1 + 3  # once per distinct bad key

        for _ in range(4):  # failures 7-10: still 401
            assert api.get("/v1/schools/1/models", headers=auth(bad_key())).status_code == 401
        assert len(queries) == 1 + 3 + 4
        for key in [bad_key() for _ in range(20)] + repeated:
            limited = api.get("/v1/schools/1/models", headers=auth(key))
            assert limited.status_code == 429
            assert 1 <= int(limited.headers["Retry-After"]) <= 60
            assert "too many failed authentications" in limited.json()["detail"]
        # Refused before any key is looked up: one read of the active keys' prefixes (the
        # guessed keys have none of them) is all the 23 cost.
        assert len(queries) == 1 + 3 + 4 + 1

        # The valid client still gets in (from the cache, or looked up: its prefix is an
        # active key's); another address is not blocked.
        assert api.get("/v1/schools/1/models", headers=valid).status_code == 200
        assert len(queries) <= 1 + 3 + 4 + 1 + 1
        other = TestClient(app, client=("198.51.100.7", 40000))  # shares the open app
        assert other.get("/v1/schools/1/models", headers=auth(bad_key())).status_code == 401

    if backend == "redis":
        # The count lives in Redis: another replica refuses the same address at once.
        assert redis.Redis.from_url(redis_url).keys(f"{prefix}:rl:authfail:testclient:*")
        with TestClient(create_app(settings)) as replica:
            resp = replica.get("/v1/schools/1/models", headers=auth(bad_key()))
            assert resp.status_code == 429
            assert 1 <= int(resp.headers["Retry-After"]) <= 60


def test_memory_counters_drop_finished_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.core import cache as cache_module

    memory = cache_module.MemoryCache()
    monkeypatch.setattr(cache_module, "MAX_ENTRIES", 100)
    clock = [1_000.0]
    monkeypatch.setattr(cache_module.time, "time", lambda: clock[0])
    for i in range(150):
        memory.hit(f"authfail:10.0.{i // 256}.{i % 256}", 60)
    clock[0] += 61  # every window has ended
    memory.hit("authfail:192.0.2.1", 60)
    assert len(memory._counts) <= 101
    assert memory.hit("authfail:192.0.2.1", 60)[0] == 2


@pytest.mark.parametrize("proxies", ["", "10.0.0.0/8", "127.0.0.1/32"])
def test_forwarded_for_is_trusted_only_from_configured_proxies(
    district: District, proxies: str
) -> None:
    """From an untrusted peer, rotating X-Forwarded-For does not reset the per-IP failure
    limit (uvicorn's default trusts 127.0.0.1); from a configured proxy it names the client."""
    settings = district.settings_with(
        auth_failures_per_minute=3,
        forwarded_allow_ips=proxies,
        cache_prefix=f"xff-{secrets.token_hex(4)}",
    )
    wait_for_fresh_minute()
    with served(settings) as url:
        statuses = [
            httpx.get(
                f"{url}/v1/schools/1/models",
                headers={**auth(bad_key()), "X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(6)
        ]
    if proxies == "127.0.0.1/32":
        assert statuses == [401] * 6  # six clients, one failure each
    else:
        assert statuses == [401, 401, 401, 429, 429, 429]  # one client: the peer


def test_forwarded_allow_ips_must_be_networks() -> None:
    with pytest.raises(ValueError, match="FORWARDED_ALLOW_IPS: 'the-alb' is not an IP network"):
        Settings(forwarded_allow_ips="10.0.0.0/16, the-alb")
    assert Settings(forwarded_allow_ips=" 10.0.0.0/16 ,::1").forwarded_allow_ips
