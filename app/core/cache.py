"""Response cache and rate limiter: Redis when REDIS_URL is set (shared by all replicas),
otherwise in-process. A Redis outage degrades to uncached serving and a per-process limit,
never to errors.

Answers that another process makes stale (a school's at-risk page, when the worker or a
training run rescores its students) are cached against a stamp: the process that changes the
data puts a new random stamp under the school's name after its commit, and a cached answer is
served only while the stamp it was cached with is still the school's. Both are read in one
round trip. Only Redis can carry the stamp between processes: without it such answers are not
cached at all.

The API's requests (on the event loop) pay at most one Redis round trip each: `admit` counts
the request against its rate limit and reads the cached answer (its stamp, the counters asked
for) in one script call, and an answer made on a miss is cached by `set_later`, which queues it
for a background task that writes what has queued within a few milliseconds in one script call,
after the response. They use Redis's asyncio client, so no request waits for a thread or blocks
the loop; the jobs and the CLI (restamp, bump) use the blocking one.

Why scripts rather than pipelines: the client's cost is per command (building it, parsing its
reply), and on a miss it was a fifth of the request's CPU; a script is one command, however many
keys it reads or writes. Redis runs each atomically; after a restart or failover empties its
script cache, the client loads a script again on its first NOSCRIPT."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import redis
import redis.asyncio
from prometheus_client import Counter
from redis.commands.core import AsyncScript

log = logging.getLogger("app.cache")

CACHE_EVENTS = Counter("ssp_cache_events_total", "Cache lookups and errors", ["result"])
# After a Redis error, skip Redis for this long instead of paying a timeout per request.
REDIS_BACKOFF_SECONDS = 5.0


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after: int


# `admit`: KEYS[1] the rate-limit window's counter (its TTL, ARGV[1], set by the window's first
# request), KEYS[2..] the lookups; the count, then the lookups' values (nil: absent).
ADMIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if #KEYS == 1 then return {count, {}} end
return {count, redis.call('MGET', unpack(KEYS, 2))}
"""
# The background write: KEYS[i] set to ARGV[2i - 1] for ARGV[2i] seconds.
WRITE_SCRIPT = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[2 * i - 1], 'EX', ARGV[2 * i])
end
return #KEYS
"""
# The background write waits this long for more answers to write in the same call (each
# request of a busy API would otherwise pay a write call of its own); this process serves the
# answers waiting meanwhile, other replicas miss them for as long.
WRITE_GATHER_SECONDS = 0.005

MAX_ENTRIES = 10_000
# Answers waiting for the background write (set_later); beyond, new ones are not cached (a
# later request computes them again): Redis slower than the API must not grow memory.
MAX_PENDING_WRITES = 1_000


@dataclass(frozen=True)
class Admission:
    """What `Cache.admit` read in its one round trip."""

    rate: RateDecision
    cached: bytes | None = None
    """The answer cached under the lookup key."""
    counters: Mapping[str, int | None] | None = None
    """The shared counters asked for (0 until first bumped; None while Redis is unknown)."""


@dataclass(frozen=True)
class AsyncRedis:
    """The asyncio client of one event loop and its scripts."""

    loop: asyncio.AbstractEventLoop
    client: redis.asyncio.Redis
    admit: AsyncScript
    write: AsyncScript


def scores_stamp(school_id: int) -> str:
    """The name of the stamp of a school's risk scores (Cache.restamp, Cache.admit, Cache.read)."""
    return f"scores:{school_id}"


class MemoryCache:
    """TTL cache and fixed-window counters in this process."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, bytes]] = {}
        self._counts: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None or hit[0] < time.monotonic():
                self._data.pop(key, None)
                return None
            return hit[1]

    def set(self, key: str, value: bytes, ttl: int) -> None:
        with self._lock:
            if len(self._data) > MAX_ENTRIES:  # bound memory: drop expired, then everything
                now = time.monotonic()
                self._data = {k: v for k, v in self._data.items() if v[0] >= now}
                if len(self._data) > MAX_ENTRIES:
                    self._data.clear()
            self._data[key] = (time.monotonic() + ttl, value)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def hit(self, key: str, window: int) -> tuple[int, int]:
        """Count one request in the window; returns (count, seconds left in the window)."""
        now = time.time()
        with self._lock:
            if len(self._counts) > MAX_ENTRIES:
                # Counters are keyed by client IP too: drop the finished windows so that a
                # stream of new addresses cannot grow this without bound.
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
            end, count = self._counts.get(key, (0.0, 0))
            if end <= now:
                end, count = now + window, 0
            count += 1
            self._counts[key] = (end, count)
            return count, max(1, int(end - now + 0.999))


class Cache:
    def __init__(self, redis_url: str | None, prefix: str = "ssp") -> None:
        self.prefix = prefix
        self.local = MemoryCache()
        self.redis: redis.Redis | None = None
        self._url = redis_url
        if redis_url:
            self.redis = redis.Redis.from_url(
                redis_url,
                socket_timeout=0.25,
                socket_connect_timeout=0.25,
                health_check_interval=30,
            )
        self._down_until = 0.0
        # The asyncio client, made on first use in the running event loop (its connections
        # belong to that loop), and the answers queued for the background write: keyed by
        # Redis key until written, and read in their place meanwhile, so this process finds an
        # answer it made even before the write lands.
        self._aredis: AsyncRedis | None = None
        self._pending: dict[str, tuple[bytes, int]] = {}
        self._writer: asyncio.Task[None] | None = None

    @property
    def backend(self) -> str:
        return "redis" if self.redis is not None else "memory"

    def _usable(self) -> redis.Redis | None:
        if self.redis is None or time.monotonic() < self._down_until:
            return None
        return self.redis

    def _failed(self, exc: Exception) -> None:
        CACHE_EVENTS.labels("error").inc()
        log.warning("redis unavailable, serving uncached", extra={"error": str(exc)})
        self._down_until = time.monotonic() + REDIS_BACKOFF_SECONDS

    def bump(self, name: str) -> bool:
        """Increments the shared counter; False without Redis or when it failed."""
        client = self._usable()
        if client is None:
            return False
        try:
            client.incr(f"{self.prefix}:{name}")
        except redis.RedisError as exc:
            self._failed(exc)
            return False
        return True

    def restamp(self, stamps: Iterable[str]) -> bool:
        """Gives each stamp a new random value (after the commit of what made their answers
        stale); False without Redis or when it failed (they stay cached until their TTL)."""
        names = sorted(set(stamps))
        client = self._usable()
        if client is None or not names:
            return client is not None
        try:
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.set(f"{self.prefix}:{name}", secrets.token_hex(8))
            pipe.execute()
        except redis.RedisError as exc:
            self._failed(exc)
            return False
        return True

    # ---- the API's side, on the event loop --------------------------------------------------

    def _async_client(self) -> AsyncRedis | None:
        """The asyncio client of the running loop, or None without Redis or while it is down."""
        if self._usable() is None or self.redis is None:
            return None
        loop = asyncio.get_running_loop()
        if self._aredis is None or self._aredis.loop is not loop:
            client = redis.asyncio.Redis.from_url(
                self._url or "",
                socket_timeout=0.25,
                socket_connect_timeout=0.25,
                health_check_interval=30,
            )
            self._aredis = AsyncRedis(
                loop,
                client,
                client.register_script(ADMIT_SCRIPT),
                client.register_script(WRITE_SCRIPT),
            )
        return self._aredis

    async def admit(
        self,
        subject: str,
        limit: int,
        window: int,
        lookup: str | None = None,
        counters: Iterable[str] = (),
    ) -> Admission:
        """Counts a request of `subject`: at most `limit` in each fixed window of `window`
        seconds. Reads the answer cached under `lookup` and the shared `counters`: ONE round
        trip to Redis. Without Redis, or while it is down: the in-process limit (per process),
        the in-process cache only without Redis (while it is down another replica may have
        made an answer stale), the counters None."""
        names = list(counters)
        now = int(time.time())
        start = now - now % window
        client = self._async_client()
        if client is not None:
            keys = [f"{self.prefix}:{k}" for k in ([lookup] if lookup else []) + names]
            rl = f"{self.prefix}:rl:{subject}:{start}"
            waiting = self._pending.get(keys[0]) if lookup else None
            try:
                replies = await client.admit(keys=[rl, *keys], args=[window + 1])
            except (redis.RedisError, OSError) as exc:
                self._failed(exc)
            else:
                count, left = int(replies[0]), max(1, start + window - now)
                values: list[bytes | None] = list(replies[1])
                cached = None
                if lookup:
                    answer = values.pop(0)
                    cached = self._current(self._unwritten(keys[0], answer, waiting), None)
                found = {
                    n: int(v) if v is not None else 0 for n, v in zip(names, values, strict=True)
                }
                return Admission(
                    RateDecision(count <= limit, max(0, limit - count), left), cached, found
                )
        count, left = self.local.hit(f"rl:{subject}", window)
        cached = None
        if lookup and self.redis is None:
            cached = self._current(self.local.get(f"{self.prefix}:{lookup}"), None)
        rate = RateDecision(count <= limit, max(0, limit - count), left)
        return Admission(rate, cached, dict.fromkeys(names))

    @staticmethod
    def _current(cached: bytes | None, stamp: bytes | None) -> bytes | None:
        """The answer of a lookup, if any; stamped (a `stamp` value given), only if cached with
        it. Counts the hit or miss."""
        if cached is not None and stamp is not None:
            cached_stamp, _, cached = cached.partition(b"\n")
            if cached_stamp != stamp:
                cached = None
        CACHE_EVENTS.labels("hit" if cached is not None else "miss").inc()
        return cached

    def set_later(self, key: str, value: bytes, ttl: int, stamp: bytes | None = None) -> None:
        """Caches `value` under `key` for `ttl` seconds, with Redis after the response: queued,
        then written by one background task in one pipeline with whatever else has queued
        (MAX_PENDING_WRITES at most; beyond, or while Redis is down, it is not cached). With a
        `stamp` value (read by `admit` before the answer was made) it is current only until the
        stamp changes. Without Redis: in process, now (never for a stamped answer)."""
        if self.redis is None:
            if stamp is None:
                self.local.set(f"{self.prefix}:{key}", value, ttl)
            return
        if self._usable() is None or len(self._pending) >= MAX_PENDING_WRITES:
            return
        if stamp is not None:
            value = stamp + b"\n" + value
        self._pending[f"{self.prefix}:{key}"] = (value, ttl)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_pending())

    async def forget(self, key: str) -> None:
        """Drops the answer cached under `key`: in this process, queued, and in Redis."""
        name = f"{self.prefix}:{key}"
        self.local.delete(name)
        self._pending.pop(name, None)
        client = self._async_client()
        if client is not None:
            try:
                await client.client.delete(name)
            except (redis.RedisError, OSError) as exc:
                self._failed(exc)

    async def _write_pending(self) -> None:
        """Writes the queued answers, in one call per batch (what queued within
        WRITE_GATHER_SECONDS), until none is left; a batch that fails is dropped (those answers
        are computed again)."""
        while self._pending:
            await asyncio.sleep(WRITE_GATHER_SECONDS)
            batch = dict(self._pending)
            client = self._async_client()
            if client is not None:
                try:
                    await client.write(
                        keys=list(batch), args=[a for entry in batch.values() for a in entry]
                    )
                except (redis.RedisError, OSError) as exc:
                    self._failed(exc)
            for key, entry in batch.items():
                if self._pending.get(key) is entry:  # not replaced meanwhile
                    del self._pending[key]

    def _unwritten(
        self, key: str, found: bytes | None, waiting: tuple[bytes, int] | None
    ) -> bytes | None:
        """This process's answer for `key` waiting to be written when Redis was asked
        (`waiting`) or queued since, else what Redis answered. The one seen before the call
        counts although its write may have landed and left the queue during the call, after
        Redis was read."""
        entry = waiting or self._pending.get(key)
        return entry[0] if entry is not None else found

    async def read(self, key: str, stamp: str | None = None) -> tuple[bytes | None, bytes | None]:
        """The answer cached under `key` and, for a `stamp`, the stamp's current value (the
        answer only if cached with it): one round trip, for a route that reads the cache after
        its rate limit. Without Redis: in process, never a stamped answer; while it is down,
        nothing."""
        client = self._async_client()
        if client is None:
            if self.redis is not None or stamp is not None:
                return None, None
            cached = self.local.get(f"{self.prefix}:{key}")
            CACHE_EVENTS.labels("hit" if cached is not None else "miss").inc()
            return cached, None
        names = [f"{self.prefix}:{key}"] + ([f"{self.prefix}:{stamp}"] if stamp else [])
        waiting = self._pending.get(names[0])
        try:
            # Bytes: the client does not decode responses.
            values = cast("list[bytes | None]", await client.client.mget(names))
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return None, None
        current = (values[1] or b"-") if stamp is not None else None
        return self._current(self._unwritten(names[0], values[0], waiting), current), current

    async def arate_limit(self, subject: str, limit: int, window: int) -> RateDecision:
        """The rate limit alone (`admit` with nothing to read)."""
        return (await self.admit(subject, limit, window)).rate

    async def aclose(self) -> None:
        """Writes what is queued, then closes the asyncio client (the API's shutdown)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._aredis is not None and self._aredis.loop is asyncio.get_running_loop():
            await self._aredis.client.aclose()
        self._aredis = None

    def ping(self) -> bool:
        if self.redis is None:
            return True
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False
