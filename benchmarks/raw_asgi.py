"""The reference for GET /v1/students/{id}/risk: a bare ASGI app, no framework, that does what
no server of this endpoint can skip, and nothing more.

Per request it finds the API key's client in a dict (loaded once at startup), then runs the
API's own statement (app.api.queries.STUDENT_FEATURES_AUDITED: the student's features under
row-level security, with the audit row written by the same statement) after the same tenant
settings, pipelined in one round trip, through the same driver (psycopg 3's
AsyncConnectionPool, the same login, pool size and prepare_threshold), then scores the row
with the same model, with its RISK_REASONS main reasons as the API gives them, and writes the
JSON. No validation, metrics, rate limit, admission control
or cache: what it serves is the practical limit of this machine for the endpoint.

    uvicorn --factory benchmarks.raw_asgi:create_app --loop uvloop --http httptools
    (with the API's environment: DATABASE_URL, DB_POOL_MAX, DB_PREPARE_THRESHOLD, ...)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.api import queries
from app.core.auth import hash_key
from app.core.db import SET_TENANT, primary_url
from app.core.indicators import CutPoints
from app.core.logins import API_LOGIN
from app.core.settings import Settings
from app.model.artifacts import ModelStore
from app.model.features import STANDARD_FEATURES, district_values, query_matrix
from app.model.served_models import ModelRegistry

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
PREFIX = "/v1/students/"


class RawRisk:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cuts = CutPoints.from_settings(settings)
        self.detail = json.dumps({"cache": "miss", "reasons": settings.risk_reasons})
        self.pool = AsyncConnectionPool(
            primary_url(settings, API_LOGIN),
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            kwargs={"autocommit": True, "prepare_threshold": settings.db_prepare_threshold},
            open=False,
        )
        self.registry = ModelRegistry(ModelStore(settings.model_store_url), float("inf"))
        self.clients: dict[str, tuple[int, int | None, int | None]] = {}

    async def startup(self) -> None:
        await self.pool.open(wait=True)
        self.registry.pointer()
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT key_hash, id, school_id, district_id FROM api_clients WHERE is_active"
            )
            self.clients = {h: (i, s, d) for h, i, s, d in await cur.fetchall()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            await self.startup()
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await self.pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        path: str = scope["path"]
        if path == "/ping":
            return await respond(send, 200, b'{"status":"ok"}')
        key = dict(scope["headers"]).get(b"x-api-key", b"").decode()
        client = self.clients.get(hash_key(key, self.settings.api_key_pepper))
        if client is None:
            return await respond(send, 401, b'{"detail":"invalid API key"}')
        student_id = int(path.removeprefix(PREFIX).removesuffix("/risk"))
        client_id, school, district = client
        tenant = ("" if school is None else str(school), "" if district is None else str(district))
        async with self.pool.connection() as conn:
            async with conn.pipeline():
                await conn.execute(SET_TENANT, tenant)
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(
                    queries.STUDENT_FEATURES_AUDITED, (student_id, client_id, self.detail)
                )
            row = await cur.fetchone()
        if row is None:
            return await respond(send, 404, b'{"detail":"student not found"}')
        extras = district_values([row])
        top = self.settings.risk_reasons
        ((pred, reasons),) = self.registry.explain(
            [row["school_id"]], query_matrix([row], self.cuts), extras, top
        )
        body = {
            "student_id": row["student_id"],
            "school_id": row["school_id"],
            "risk": pred.risk,
            "model_version": pred.version,
            "features": {f: row[f] for f in STANDARD_FEATURES},
            "district_features": extras[0],
            "reasons": [r._asdict() for r in reasons],
        }
        await respond(send, 200, json.dumps(body).encode())


async def respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app() -> RawRisk:
    return RawRisk(Settings())
