"""Limits applied to every request before any route code runs: its body, read whole within a
size limit (413) and a time limit (408) before it is parsed and before the API key is checked;
then the number of requests in flight in this worker (admission control: beyond it, 503 at once
rather than a queue that grows until every request times out). Admission counts a request only
once its body has arrived, so a client that sends its body slowly, or never, holds its own
connection and no one else's slot. Plain ASGI, so a refusal costs microseconds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

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


class BodyTooLargeError(Exception):
    pass


class BodyLimitMiddleware:
    """Reads a request's body whole before the app behind it sees the request: refused with
    413 over its route's limit (at once from Content-Length, or as soon as a chunked body
    passes it, so no more than the limit is ever held), and with 408 when it has not arrived
    `timeout` seconds after the request's headers (uvicorn has no such timeout). Both close
    the connection, whose unread body would otherwise be taken for the next request. A request
    without a body (a GET) passes straight through."""

    def __init__(
        self, app: ASGIApp, default_limit: int, limits: dict[str, int], timeout: float
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits  # per path, where a route takes larger bodies
        self.timeout = timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared in (b"", b"0") and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default_limit)
        too_large = f"request body exceeds the limit of {limit} bytes"
        if declared.isdigit() and int(declared) > limit:
            await send_error(send, 413, too_large, {"Connection": "close"})
            return
        try:
            async with asyncio.timeout(self.timeout):
                body = await read_body(receive, limit)
        except TimeoutError:
            detail = f"request body not received within {self.timeout:g} s"
            await send_error(send, 408, detail, {"Connection": "close"})
            return
        except BodyTooLargeError:
            await send_error(send, 413, too_large, {"Connection": "close"})
            return
        if body is None:
            return  # the client went away: no one to answer
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: dict[str, Any] = await receive()  # http.disconnect, when it comes
            return message

        await self.app(scope, replay, send)


async def read_body(receive: Any, limit: int) -> bytes | None:
    """The whole body (None if the client disconnected first); BodyTooLargeError past
    `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class AdmissionMiddleware:
    """At most `limit` requests in flight in this worker (one event loop: a plain counter);
    the next ones get 503 with Retry-After at once. Behind BodyLimitMiddleware: a request is
    counted once its body has arrived."""

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
