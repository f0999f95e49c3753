"""API keys: random 256-bit keys, stored only as an HMAC-SHA256 hash (peppered with a
server secret), compared in constant time, each scoped to one school or one district."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import psycopg

from app.db import Tenant

KEY_PREFIX = "ssp"
CLIENT_CACHE_SECONDS = 30.0  # a revoked key stops working within this time


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    school_id: int | None
    district_id: int | None

    @property
    def tenant(self) -> Tenant:
        return Tenant(self.school_id, self.district_id)


def hash_key(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def new_key() -> tuple[str, str]:
    """(full key, public prefix). The prefix identifies the key in logs without revealing it."""
    prefix = secrets.token_hex(4)
    return f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def create_key(
    conn: psycopg.Connection[Any],
    pepper: str,
    name: str,
    school_id: int | None = None,
    district_id: int | None = None,
) -> tuple[int, str]:
    """Register a client; returns (client id, key). The key is shown once, never stored."""
    if (school_id is None) == (district_id is None):
        raise ValueError("a key is scoped to exactly one of school_id or district_id")
    key, prefix = new_key()
    row = conn.execute(
        "INSERT INTO api_clients (name, key_prefix, key_hash, school_id, district_id)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (name, prefix, hash_key(key, pepper), school_id, district_id),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0]), key


TransactionFactory = Callable[[Tenant | None], AbstractContextManager[psycopg.Cursor[Any]]]


class Authenticator:
    def __init__(self, tx: TransactionFactory, pepper: str) -> None:
        self.tx = tx  # the API's fail-fast transactions: a DB outage is a 503, not a 500
        self.pepper = pepper
        self._cache: dict[str, tuple[float, Client | None]] = {}
        self._lock = threading.Lock()

    def authenticate(self, key: str) -> Client | None:
        digest = hash_key(key, self.pepper)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.tx(None) as cur:
            # The lookup is by hash, so its timing says nothing about the key itself.
            cur.execute(
                "SELECT id, name, key_hash, school_id, district_id FROM api_clients"
                " WHERE key_hash = %s AND is_active",
                (digest,),
            )
            row = cur.fetchone()
        client = None
        if row is not None and hmac.compare_digest(row["key_hash"], digest):
            client = Client(row["id"], row["name"], row["school_id"], row["district_id"])
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + CLIENT_CACHE_SECONDS, client)
        return client
