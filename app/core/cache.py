"""Response cache and rate limiter: Redis when REDIS_URL is set (shared by all replicas),
otherwise in-process. A Redis outage degrades to uncached serving and a per-process limit,
never to errors.

Answers that another process makes stale (a school's at-risk page, when the worker or a
training run rescores its students) are cached against a stamp: the process that changes the
data puts a new random stamp under the school's name after its commit, and a cached answer is
served only while the stamp it was cached with is still the school's. Both are read in one
round trip. Only Redis can carry the stamp between processes: without it such answers are not
cached at all."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import redis
from prometheus_client import Counter

log = logging.getLogger("app.cache")

CACHE_EVENTS = Counter("ssp_cache_events_total", "Cache lookups and errors", ["result"])
# After a Redis error, skip Redis for this long instead of paying a timeout per request.
REDIS_BACKOFF_SECONDS = 5.0


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after: int


MAX_ENTRIES = 10_000


def scores_stamp(school_id: int) -> str:
    """The name of the stamp of a school's risk scores (Cache.restamp, Cache.get_stamped)."""
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
        if redis_url:
            self.redis = redis.Redis.from_url(
                redis_url,
                socket_timeout=0.25,
                socket_connect_timeout=0.25,
                health_check_interval=30,
            )
        self._down_until = 0.0

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

    def get(self, key: str) -> bytes | None:
        key = f"{self.prefix}:{key}"
        client = self._usable()
        if self.redis is not None and client is None:
            return None  # Redis is down: uncached, not stale local data from another replica
        try:
            value = client.get(key) if client is not None else self.local.get(key)
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        CACHE_EVENTS.labels("hit" if value is not None else "miss").inc()
        return value  # type: ignore[return-value]

    def set(self, key: str, value: bytes, ttl: int) -> None:
        key = f"{self.prefix}:{key}"
        client = self._usable()
        if self.redis is not None and client is None:
            return
        try:
            if client is not None:
                client.set(key, value, ex=ttl)
            else:
                self.local.set(key, value, ttl)
        except redis.RedisError as exc:
            self._failed(exc)

    def rate_limit(self, subject: str, limit: int, window: int) -> RateDecision:
        """At most `limit` requests per subject in each fixed window of `window` seconds."""
        now = int(time.time())
        start = now - now % window
        count, left = 0, window
        client = self._usable()
        if client is not None:
            key = f"{self.prefix}:rl:{subject}:{start}"
            try:
                pipe = client.pipeline()
                pipe.incr(key)
                pipe.expire(key, window + 1)
                count = int(pipe.execute()[0])
                left = max(1, start + window - now)
            except redis.RedisError as exc:
                self._failed(exc)
                client = None
        if client is None:
            count, left = self.local.hit(f"rl:{subject}", window)
        return RateDecision(count <= limit, max(0, limit - count), left)

    def counter(self, name: str) -> int | None:
        """A counter shared by the replicas through Redis (0 until first bumped); None without
        Redis or while it is unavailable."""
        client = self._usable()
        if client is None:
            return None
        try:
            value = client.get(f"{self.prefix}:{name}")
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        return int(value) if value is not None else 0

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

    def get_stamped(self, key: str, stamp: str) -> tuple[bytes | None, bytes | None]:
        """(the value cached under `key` if it was cached with the current value of `stamp`,
        else None; that current value, to cache a fresh answer with). One round trip. Without
        Redis, or while it is down: (None, None), nothing is cached."""
        client = self._usable()
        if client is None:
            return None, None
        try:
            # Bytes: the client does not decode responses.
            cached, current = cast(
                "list[bytes | None]",
                client.mget(f"{self.prefix}:{key}", f"{self.prefix}:{stamp}"),
            )
        except redis.RedisError as exc:
            self._failed(exc)
            return None, None
        current = current or b"-"  # never restamped yet
        if cached is not None:
            cached_stamp, _, value = cached.partition(b"\n")
            if cached_stamp == current:
                CACHE_EVENTS.labels("hit").inc()
                return value, current
        CACHE_EVENTS.labels("miss").inc()
        return None, current

    def set_stamped(self, key: str, value: bytes, stamp_value: bytes, ttl: int) -> None:
        """Caches `value` with the stamp's value read before the answer was made (get_stamped):
        a restamp since then makes it stale at once."""
        self.set(key, stamp_value + b"\n" + value, ttl)

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

    # For the API's routes on the event loop: the in-process cache answers in microseconds and
    # is used inline; Redis is a network round trip made by this blocking client, so it runs
    # in a thread and other requests keep flowing meanwhile.
    async def aget(self, key: str) -> bytes | None:
        return self.get(key) if self.redis is None else await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, value: bytes, ttl: int) -> None:
        if self.redis is None:
            self.set(key, value, ttl)
        else:
            await asyncio.to_thread(self.set, key, value, ttl)

    async def aget_stamped(self, key: str, stamp: str) -> tuple[bytes | None, bytes | None]:
        if self.redis is None:
            return None, None
        return await asyncio.to_thread(self.get_stamped, key, stamp)

    async def aset_stamped(self, key: str, value: bytes, stamp_value: bytes, ttl: int) -> None:
        await asyncio.to_thread(self.set_stamped, key, value, stamp_value, ttl)

    async def arate_limit(self, subject: str, limit: int, window: int) -> RateDecision:
        if self.redis is None:
            return self.rate_limit(subject, limit, window)
        return await asyncio.to_thread(self.rate_limit, subject, limit, window)

    def ping(self) -> bool:
        if self.redis is None:
            return True
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False
