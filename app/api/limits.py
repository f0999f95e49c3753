"""Limits applied to every request before any route code runs: the size of its body (before
it is parsed and before the API key is checked) and the number of requests in flight in this
worker (admission control: beyond it, 503 at once rather than a queue that grows until every
request times out). Plain ASGI, so a refusal costs microseconds."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException

from app.api.metrics import SHED

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
# Cheap and answered even under overload: a probe that failed then would restart or unlist a
# pod that is merely busy.
UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics", "/ping"})
SHED_RETRY_AFTER_SECONDS = 1


async def send_error(send: Any, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuses a body over its route's limit with 413: at once from Content-Length, or as
    soon as a streamed (chunked) body passes it, so no more than the limit is ever held."""

    def __init__(self, app: ASGIApp, default_limit: int, limits: dict[str, int]) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits  # per path, where a route takes larger bodies

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default_limit)
        message = f"request body exceeds the limit of {limit} bytes"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await send_error(send, 413, message, {"Connection": "close"})
            return
        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            msg: dict[str, Any] = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    # Raised inside the route's body read: FastAPI and Starlette answer it.
                    raise HTTPException(413, message)
            return msg

        await self.app(scope, limited_receive, send)


class AdmissionMiddleware:
    """At most `limit` requests in flight in this worker (one event loop: a plain counter);
    the next ones get 503 with Retry-After at once."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            SHED.inc()
            await send_error(
                send,
                503,
                "server busy, retry later",
                {"Retry-After": str(SHED_RETRY_AFTER_SECONDS)},
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
