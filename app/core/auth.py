"""API keys: random 256-bit keys, stored only as an HMAC-SHA256 hash (peppered with a
server secret), compared in constant time, each scoped to one school or one district.

Lookups are cached in two bounded LRUs: valid clients, and (separately, smaller, shorter) key
hashes that just failed, so repeated bad keys cost no query and a flood of them cannot evict
valid clients. Failed authentications are also limited per client IP (FailureLimiter).

Revocation (`revoke-key`) bumps a counter in Redis that every replica reads at most every
REVOCATION_CHECK_SECONDS: a change empties its client cache, so a revoked key stops working
everywhere within about that long. Without Redis (or while it is down) a valid client is
cached for REVOCATION_CHECK_SECONDS only, which bounds the delay the same way. The counter is
read in the request's own Redis round trip (app.api.deps.admit): the authenticator says when a
read is due and is told what was read."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.core.cache import Cache
from app.core.db import Tenant
from app.core.settings import KEY_CLASSES, KeyClass

KEY_PREFIX = "ssp"
DISTRICT_ID = re.compile(r"[0-9]{1,18}")  # as a key names it: a bigint, ASCII digits only
CLIENT_CACHE_SECONDS = 30.0  # a valid client is cached this long while revocations are seen
REVOCATION_CHECK_SECONDS = 1.0  # the revocation counter is read at most this often
REVOCATIONS = "keys:revocations"  # the Redis counter `revoke-key` bumps
PREFIX_REFRESH_SECONDS = 5.0  # the active keys' prefixes are re-read at most this often
CLIENT_CACHE_SIZE = 10_000  # valid clients kept, least recently used dropped first
FAILED_CACHE_SECONDS = 60.0  # a bad key is answered without a query for this long
FAILED_CACHE_SIZE = 4_096  # recently failed key hashes kept (never displaces valid clients)
FAILURE_WINDOW_SECONDS = 60  # AUTH_FAILURES_PER_MINUTE counts failures per minute
BLOCKED_IPS_SIZE = 10_000  # IPs remembered as blocked in this process


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    school_id: int | None
    district_id: int | None
    key_class: KeyClass = "interactive"
    """Which rate limit applies (migration 0010)."""

    @property
    def tenant(self) -> Tenant:
        return Tenant(self.school_id, self.district_id)


def hash_key(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def new_key(district_id: int | None = None) -> tuple[str, str]:
    """(full key, public prefix). The prefix identifies the key in logs without revealing it,
    and names the key's district (`<district>-<hex>`), so a multi-region API routes the
    request to the district's home region before any region checks the key (api/region.py)."""
    prefix = secrets.token_hex(4)
    if district_id is not None:
        prefix = f"{district_id}-{prefix}"
    return f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def create_key(
    conn: psycopg.Connection[Any],
    pepper: str,
    name: str,
    school_id: int | None = None,
    district_id: int | None = None,
    key_class: KeyClass = "interactive",
) -> tuple[int, str]:
    """Register a client; returns (client id, key). The key is shown once, never stored."""
    if (school_id is None) == (district_id is None):
        raise ValueError("a key is scoped to exactly one of school_id or district_id")
    if key_class not in KEY_CLASSES:
        raise ValueError(f"key class {key_class!r}: allowed {', '.join(KEY_CLASSES)}")
    key, prefix = new_key(district_id or _school_district(conn, school_id))
    row = conn.execute(
        "INSERT INTO api_clients (name, key_prefix, key_hash, school_id, district_id, key_class)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (name, prefix, hash_key(key, pepper), school_id, district_id, key_class),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0]), key


def _school_district(conn: psycopg.Connection[Any], school_id: int | None) -> int | None:
    """The district of a school (None if there is no such school: the insert then fails on
    its foreign key). Read as the school's tenant: schools has FORCE ROW LEVEL SECURITY."""
    if school_id is None:
        return None
    with conn.transaction():  # the tenant setting lasts for it, autocommit or not
        conn.execute("SELECT set_config('app.school_id', %s, true)", (str(school_id),))
        row = conn.execute("SELECT district_id FROM schools WHERE id = %s", (school_id,)).fetchone()
    return int(row[0]) if row else None


def list_keys(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every client: id, name, public prefix, scope, whether active, when created."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT id, name, key_prefix, school_id, district_id, is_active, created_at"
        " FROM api_clients ORDER BY id"
    ).fetchall()


def revoke_key(
    conn: psycopg.Connection[Any], client_id: int | None = None, prefix: str | None = None
) -> list[dict[str, Any]]:
    """Deactivates the client with this id or key prefix; returns the clients revoked (none
    when no active one matches). Replicas learn of it through `announce_revocation`."""
    if (client_id is None) == (prefix is None):
        raise ValueError("a key is revoked by exactly one of its id or its prefix")
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        "UPDATE api_clients SET is_active = false"
        " WHERE is_active AND (id = %s OR key_prefix = %s) RETURNING id, name, key_prefix",
        (client_id, prefix),
    ).fetchall()
    conn.commit()
    return rows


def announce_revocation(cache: Cache) -> bool:
    """Tells every replica to forget its cached clients; False when there is no Redis to
    tell them through (they then notice within REVOCATION_CHECK_SECONDS anyway)."""
    return cache.bump(REVOCATIONS)


def key_prefix(key: str) -> str:
    """The public prefix of a key as new_key makes them (empty for anything else)."""
    parts = key.split("_", 2)
    return parts[1] if len(parts) == 3 and parts[0] == KEY_PREFIX else ""


def key_district(key: str) -> str | None:
    """The district a key names in its prefix; None for keys made before keys named it (and
    for anything else). Not trusted: it only picks the region whose database checks the key,
    and a key naming another district than its own fails there like any bad key."""
    district, named, _ = key_prefix(key).partition("-")
    return district if named and DISTRICT_ID.fullmatch(district) else None


# Database.fetch: (tenant, query, parameters) -> rows, in one round trip.
Fetch = Callable[[Tenant | None, str, Sequence[Any]], Awaitable[list[dict[str, Any]]]]


class TooManyFailuresError(Exception):
    """Too many failed authentications from this IP; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed authentications, retry in {retry_after}s")
        self.retry_after = retry_after


class FailureLimiter:
    """Failed authentications per client IP: `limit` per minute, counted with the app's
    rate limiter (Redis, shared by all replicas, with the in-process fallback when Redis is
    absent or down). An IP that used up its failures is remembered here as blocked until the
    window ends, so it is refused before any DB query; another replica learns of it at its
    own next failure from that IP."""

    def __init__(self, cache: Cache, limit: int, window: int = FAILURE_WINDOW_SECONDS) -> None:
        self.cache = cache
        self.limit = limit
        self.window = window
        self._blocked: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, ip: str) -> None:
        """Raises TooManyFailuresError while `ip` is blocked."""
        now = time.monotonic()
        with self._lock:
            until = self._blocked.get(ip)
            if until is None:
                return
            if until <= now:
                del self._blocked[ip]
                return
        raise TooManyFailuresError(max(1, int(until - now + 0.999)))

    async def failed(self, ip: str) -> None:
        """Counts one failure; once the limit is used up, `ip` is blocked for the window."""
        decision = await self.cache.arate_limit(f"authfail:{ip}", self.limit, self.window)
        if decision.remaining > 0:
            return
        with self._lock:
            self._blocked[ip] = time.monotonic() + decision.retry_after
            self._blocked.move_to_end(ip)
            while len(self._blocked) > BLOCKED_IPS_SIZE:
                self._blocked.popitem(last=False)
        if not decision.allowed:  # over the limit already (e.g. counted by other replicas)
            raise TooManyFailuresError(decision.retry_after)


class Authenticator:
    def __init__(self, fetch: Fetch, pepper: str, limiter: FailureLimiter | None = None) -> None:
        self.fetch = fetch  # Database.fetch, fail-fast: a DB outage is a 503, not a 500
        self.pepper = pepper
        self.limiter = limiter
        self._clients: OrderedDict[str, tuple[float, Client]] = OrderedDict()
        self._failed: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._seen_revocations: int | None = None  # unknown until read
        self._next_revocation_check = 0.0
        self._prefixes: frozenset[str] = frozenset()
        self._prefixes_until = 0.0

    async def authenticate(self, key: str, ip: str | None = None) -> Client | None:
        """The key's client, or None. With a limiter and an `ip`, raises TooManyFailuresError
        (before looking the key up) once that IP has failed too often, unless the key has the
        prefix of an active key: one abuser must not lock out a school behind the same NAT
        address, while guessed keys from a blocked address still cost no lookup."""
        digest = hash_key(key, self.pepper)
        now = time.monotonic()
        with self._lock:
            hit = self._clients.get(digest)
            if hit is not None:
                if hit[0] > now:
                    self._clients.move_to_end(digest)
                    return hit[1]
                del self._clients[digest]
        blocked: TooManyFailuresError | None = None
        if self.limiter is not None and ip is not None:
            try:
                self.limiter.check(ip)
            except TooManyFailuresError as exc:
                if key_prefix(key) not in await self._active_prefixes(now):
                    raise
                blocked = exc
        with self._lock:
            failed_until = self._failed.get(digest)
            known_bad = failed_until is not None and failed_until > now
        if not known_bad:
            client = await self._lookup(digest)
            with self._lock:
                if client is not None:
                    self._failed.pop(digest, None)
                    # Cached long only while revocations are seen (the counter is known).
                    known = self._seen_revocations is not None
                    ttl = CLIENT_CACHE_SECONDS if known else REVOCATION_CHECK_SECONDS
                    self._clients[digest] = (now + ttl, client)
                    self._clients.move_to_end(digest)
                    while len(self._clients) > CLIENT_CACHE_SIZE:
                        self._clients.popitem(last=False)
                    return client
                self._failed[digest] = now + FAILED_CACHE_SECONDS
                self._failed.move_to_end(digest)
                while len(self._failed) > FAILED_CACHE_SIZE:
                    self._failed.popitem(last=False)
        if blocked is not None:
            raise blocked
        if self.limiter is not None and ip is not None:
            await self.limiter.failed(ip)
        return None

    def revocations_due(self) -> bool:
        """Whether the revocation counter is to be read now (at most every
        REVOCATION_CHECK_SECONDS; the caller reads it and calls `revocations_read`)."""
        now = time.monotonic()
        if now < self._next_revocation_check:
            return False
        self._next_revocation_check = now + REVOCATION_CHECK_SECONDS
        return True

    def revocations_read(self, count: int | None) -> bool:
        """Takes the counter's value (None: unknown, no Redis or it is down). Returns True when
        it emptied the client cache: the counter moved (another replica's or the CLI's
        revocation), or became unknown while clients were cached on its word. Clients cached
        while it was unknown expire within REVOCATION_CHECK_SECONDS by themselves."""
        with self._lock:
            seen, self._seen_revocations = self._seen_revocations, count
            if seen is None or count == seen:
                return False
            self._clients.clear()
            return True

    async def _active_prefixes(self, now: float) -> frozenset[str]:
        """Prefixes of the active keys, re-read at most every PREFIX_REFRESH_SECONDS."""
        if now >= self._prefixes_until:
            self._prefixes_until = now + PREFIX_REFRESH_SECONDS
            rows = await self.fetch(
                None, "SELECT key_prefix FROM api_clients WHERE is_active = %s", (True,)
            )
            self._prefixes = frozenset(row["key_prefix"] for row in rows)
        return self._prefixes

    async def _lookup(self, digest: str) -> Client | None:
        # The lookup is by hash, so its timing says nothing about the key itself.
        rows = await self.fetch(
            None,
            "SELECT id, name, key_hash, school_id, district_id, key_class FROM api_clients"
            " WHERE key_hash = %s AND is_active",
            (digest,),
        )
        row = rows[0] if rows else None
        if row is not None and hmac.compare_digest(row["key_hash"], digest):
            return Client(
                row["id"], row["name"], row["school_id"], row["district_id"], row["key_class"]
            )
        return None
