"""What the cache costs a request: one Redis round trip (the rate limit, the revocation counter
when due and the cached answer, one script call), the answer of a miss written after the
response (with the others' of a few milliseconds, one script call);
an answer waiting to be written is already served by its process, a restamp makes it stale
all the same, and a Redis that dies with answers waiting costs no request an error. A hit's
audit row shares its statement with the other hits' of the moment, and its failure."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
import redis.asyncio.connection
from fastapi.testclient import TestClient

from app.api import queries
from app.api.audit_rows import AuditRows
from app.api.main import create_app
from app.core.cache import ADMIT_SCRIPT, WRITE_SCRIPT, Admission, Cache, scores_stamp
from app.core.db import Tenant
from tests.app.conftest import District, start_redis
from tests.app.helpers import auth, free_port, run_async, scalar

# What a new connection sends once (redis-py's handshake), not a request's round trip.
HANDSHAKE = {"CLIENT", "HELLO", "AUTH", "SELECT", "PING"}
# The cache's two scripts, as command_names names their calls.
SCRIPTS = {
    hashlib.sha1(ADMIT_SCRIPT.encode()).hexdigest(): "admit",
    hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest(): "write",
}
# A request's one round trip: its rate limit and the lookups.
ADMIT = ["EVALSHA admit"]
WRITE = "EVALSHA write"


def commands(packed: Any) -> list[list[bytes]]:
    """The commands in what one send writes to the socket (RESP arrays), each its arguments."""
    if isinstance(packed, (bytes, bytearray, memoryview, str)):
        packed = [packed]
    data = b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in packed)
    found, i = [], 0
    while i < len(data):
        end = data.index(b"\r\n", i)
        count, i, command = int(data[i + 1 : end]), end + 2, []
        for _ in range(count):
            end = data.index(b"\r\n", i)
            length, i = int(data[i + 1 : end]), end + 2
            command.append(data[i : i + length])
            i += length + 2
        found.append(command)
    return found


def command_names(packed: Any) -> list[str]:
    """The command names in one send; a script call named by its script."""
    names = []
    for name, *args in commands(packed):
        text = name.decode().upper()
        if text == "EVALSHA":
            text += " " + SCRIPTS.get(args[0].decode(), "other")
        names.append(text)
    return names


class RoundTrips:
    """Every send of the asyncio Redis client (one send, one round trip: a pipeline sends all
    its commands at once), by command names. The background writes can be held at a gate."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[list[str]] = []
        self.keys: list[bytes] = []  # every argument of the admissions
        self.writes_open = threading.Event()
        self.writes_open.set()
        real = redis.asyncio.connection.AbstractConnection.send_packed_command
        trips = self

        async def send(conn: Any, command: Any, check_health: bool = True) -> None:
            names = command_names(command)
            if not HANDSHAKE.issuperset(names):
                trips.sent.append(names)
            if names == ADMIT:
                trips.keys += commands(command)[0]
            if WRITE in names:
                await asyncio.to_thread(trips.writes_open.wait, 30)
            await real(conn, command, check_health)

        monkeypatch.setattr(
            redis.asyncio.connection.AbstractConnection, "send_packed_command", send
        )

    def take(self) -> list[list[str]]:
        sent, self.sent = self.sent, []
        return sent


def wait_until(done: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    return RoundTrips(monkeypatch)


@pytest.fixture
def stored(district: District) -> redis.Redis:
    """The district's Redis, holding the cache's scripts (as after the API's first calls: a
    test run alone would otherwise see each first call refused and made again)."""
    client = redis.Redis.from_url(district.settings.redis_url or "")
    for script in (ADMIT_SCRIPT, WRITE_SCRIPT):
        client.script_load(script)
    return client


@pytest.fixture
def api(district: District, stored: redis.Redis) -> Iterator[tuple[TestClient, str]]:
    """The API, on the district's Redis with the cache's scripts."""
    prefix = f"trips-{secrets.token_hex(4)}"
    with TestClient(create_app(district.settings_with(cache_prefix=prefix))) as client:
        yield client, prefix


def students(d: District, count: int) -> list[int]:
    found = scalar(d.url, "SELECT array_agg(id ORDER BY id) FROM students WHERE school_id = 1")
    return list(found)[-count:]


def test_a_miss_makes_one_round_trip_and_is_answered_before_its_answer_is_written(
    api: tuple[TestClient, str], district: District, trips: RoundTrips, stored: redis.Redis
) -> None:
    client, prefix = api
    key = auth(district.keys["school1"])
    warm, student = students(district, 2)
    assert client.get(f"/v1/students/{warm}/risk", headers=key).status_code == 200
    time.sleep(1.1)  # the revocation counter is due again: read in the same round trip
    trips.take()
    trips.writes_open.clear()  # the answer's write waits at the gate
    try:
        miss = client.get(f"/v1/students/{student}/risk", headers=key)
        assert miss.status_code == 200 and miss.headers["X-Cache"] == "miss"
        sent = trips.take()
        # One round trip before the answer: the rate limit and the lookups, one script call;
        # the write, if begun at all, is still held at the gate.
        assert sent[0] == ADMIT
        assert sent[1:] in ([], [[WRITE]])
        # Not written yet, and already served by this process: a hit, one round trip.
        assert not stored.keys(f"{prefix}:risk:*:{student}")
        hit = client.get(f"/v1/students/{student}/risk", headers=key)
        assert hit.headers["X-Cache"] == "hit" and hit.content == miss.content
        assert [s for s in trips.take() if s != [WRITE]] == [ADMIT]
    finally:
        trips.writes_open.set()
    wait_until(lambda: stored.keys(f"{prefix}:risk:*:{student}"), "the answer is written")
    trips.take()
    again = client.get(f"/v1/students/{student}/risk", headers=key)
    assert again.headers["X-Cache"] == "hit" and again.content == miss.content
    assert trips.take() == [ADMIT]  # a hit: one round trip, no write


def test_the_revocation_counter_rides_in_the_requests_round_trip(
    api: tuple[TestClient, str], district: District, trips: RoundTrips
) -> None:
    client, prefix = api
    key = auth(district.keys["school1"])
    counter = f"{prefix}:keys:revocations".encode()
    time.sleep(1.1)
    trips.take()
    assert (
        client.get(f"/v1/students/{students(district, 1)[0]}/risk", headers=key).status_code == 200
    )
    assert [s for s in trips.take() if s != [WRITE]] == [ADMIT]
    assert trips.keys.count(counter) == 1
    assert client.get("/v1/schools/1/models", headers=key).status_code == 200
    assert trips.keys.count(counter) == 1  # within the second: not read again


def test_an_answer_waiting_to_be_written_is_stale_once_its_school_is_restamped(
    api: tuple[TestClient, str], district: District, trips: RoundTrips
) -> None:
    client, prefix = api
    key = auth(district.keys["school1"])
    page = "/v1/schools/1/at-risk"
    cache = Cache(district.settings.redis_url, prefix)
    assert cache.restamp([scores_stamp(1)])
    trips.writes_open.clear()
    try:
        assert client.get(page, headers=key).headers["X-Cache"] == "miss"
        assert client.get(page, headers=key).headers["X-Cache"] == "hit"  # not yet written
        assert cache.restamp([scores_stamp(1)])  # the worker rescored the school
        assert client.get(page, headers=key).headers["X-Cache"] == "miss"
    finally:
        trips.writes_open.set()
    assert client.get(page, headers=key).headers["X-Cache"] == "hit"  # the new page's answer


def test_answers_waiting_when_redis_dies_are_dropped_and_requests_still_served(
    district: District, trips: RoundTrips
) -> None:
    port = free_port()
    proc = start_redis(port)
    settings = district.settings_with(redis_url=f"redis://127.0.0.1:{port}/0")
    key = auth(district.keys["school1"])
    first, second = students(district, 2)
    try:
        with TestClient(create_app(settings)) as client:
            cache: Cache = client.app.state.services.cache  # type: ignore[attr-defined]
            trips.writes_open.clear()
            assert client.get(f"/v1/students/{first}/risk", headers=key).status_code == 200
            proc.terminate()
            proc.wait(10)
            trips.writes_open.set()  # the write now meets a dead Redis
            wait_until(lambda: not cache._pending, "the waiting answer is dropped")
            for student in (first, second, first):
                resp = client.get(f"/v1/students/{student}/risk", headers=key)
                assert resp.status_code == 200 and resp.headers["X-Cache"] == "miss"
    finally:
        proc.kill()


def test_answers_made_within_the_gather_time_are_written_in_one_call(
    district: District, trips: RoundTrips, stored: redis.Redis
) -> None:
    prefix = f"gather-{secrets.token_hex(4)}"
    cache = Cache(district.settings.redis_url, prefix)

    async def answers() -> None:
        for n in range(3):
            cache.set_later(f"a{n}", f"answer {n}".encode(), 60)
        assert cache._writer is not None
        await cache._writer
        await cache.aclose()

    run_async(answers())
    assert trips.take() == [[WRITE]]
    for n in range(3):
        assert stored.get(f"{prefix}:a{n}") == f"answer {n}".encode()
        assert 0 < stored.ttl(f"{prefix}:a{n}") <= 60


def test_an_answer_written_while_a_lookup_is_under_way_is_still_found(
    district: District, stored: redis.Redis
) -> None:
    """The lookup reads Redis before the answer's write lands, and the write completes (the
    answer leaves the queue) before the lookup's reply is read: still a hit, for the
    request's lookup and for a page's (`read`)."""
    cache = Cache(district.settings.redis_url, f"race-{secrets.token_hex(4)}")

    async def lookups() -> list[bytes | None]:
        client = cache._async_client()
        assert client is not None
        real = client.client.execute_command

        async def answered_then_written(*args: Any, **kwargs: Any) -> Any:
            reply = await real(*args, **kwargs)
            if asyncio.current_task() is not cache._writer:  # a lookup: Redis read, unwritten
                assert cache._writer is not None
                await cache._writer  # now written, and gone from the queue
            return reply

        client.client.execute_command = answered_then_written  # type: ignore[method-assign]
        found = []
        for lookup in (
            lambda: cache.admit("client:1", 100, 60, "a"),
            lambda: cache.read("a"),
        ):
            await real("DEL", f"{cache.prefix}:a")
            cache.set_later("a", b"answer", 60)
            result = await lookup()
            found.append(result.cached if isinstance(result, Admission) else result[0])
        await cache.aclose()
        return found

    assert run_async(lookups()) == [b"answer", b"answer"]


def test_the_scripts_are_loaded_again_after_redis_forgets_them(
    api: tuple[TestClient, str], district: District, trips: RoundTrips, stored: redis.Redis
) -> None:
    """A restarted or failed-over Redis has no scripts: the first call of each loads it again
    (NOSCRIPT), and the request is answered and its answer cached as before."""
    client, prefix = api
    key = auth(district.keys["school1"])
    student = students(district, 3)[0]
    stored.script_flush()
    trips.take()
    miss = client.get(f"/v1/students/{student}/risk", headers=key)
    assert miss.status_code == 200 and miss.headers["X-Cache"] == "miss"
    wait_until(lambda: stored.keys(f"{prefix}:risk:*:{student}"), "the answer is written")
    sent = [name for names in trips.take() for name in names]
    assert sent.count("EVALSHA admit") == 2 and sent.count(WRITE) == 2  # refused, then again
    assert sent.count("SCRIPT") == 2  # each script loaded once
    hit = client.get(f"/v1/students/{student}/risk", headers=key)
    assert hit.headers["X-Cache"] == "hit" and hit.content == miss.content
    assert trips.take() == [ADMIT]
    # The rate-limit window's counter expires (its TTL set by the window's first request).
    windows = stored.keys(f"{prefix}:rl:*")
    assert windows
    for window in windows:
        assert 0 < stored.ttl(window) <= district.settings.rate_limit_window_seconds + 1


def test_audit_rows_of_concurrent_hits_share_one_statement_and_its_failure() -> None:
    statements: list[tuple[Tenant | None, list[list[Any]]]] = []
    fail = [False]

    async def fetch(
        tenant: Tenant | None, query: str, params: Any, write: bool = False
    ) -> list[dict[str, Any]]:
        assert query == queries.INSERT_AUDIT_ROWS and write
        statements.append((tenant, params))
        await asyncio.sleep(0.01)  # the round trip: rows that arrive meanwhile wait for the next
        if fail[0]:
            raise psycopg.OperationalError("no partition for this month")
        # The students whose rows were written: student 12 was purged since its answer was cached.
        return [{"student_id": s} for s in sorted(set(params[2]) - {12})]

    rows = AuditRows(fetch)
    district, school = Tenant(None, 1), Tenant(2, None)

    async def hits() -> list[Any]:
        first = asyncio.ensure_future(rows.write(district, (1, 1, 10, "read", "{}")))
        await asyncio.sleep(0)  # the first statement is on its way
        rest = [rows.write(district, (1, 1, s, "read", "{}")) for s in (11, 12, 13)]
        rest.append(rows.write(school, (2, 2, 20, "read", "{}")))
        return await asyncio.gather(first, *rest, return_exceptions=True)

    assert run_async(hits()) == [True, True, False, True, True]  # 12: no row, no answer
    assert statements == [
        (district, [[1], [1], [10], ["read"], ["{}"]]),
        (district, [[1, 1, 1], [1, 1, 1], [11, 12, 13], ["read"] * 3, ["{}"] * 3]),
        (school, [[2], [2], [20], ["read"], ["{}"]]),
    ]
    fail[0] = True
    failed = run_async(hits())
    assert all(isinstance(f, psycopg.OperationalError) for f in failed)  # no row, no answer
