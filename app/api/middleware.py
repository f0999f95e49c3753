"""ObservabilityMiddleware: Prometheus metrics and the JSON access log."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.api.metrics import LATENCY, REQUESTS

log = logging.getLogger("app.api")  # the whole API logs as one logger, as before the split


class ObservabilityMiddleware:
    """Prometheus metrics and one JSON access-log line per request (plain ASGI, low overhead)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = (scope.get("state") or {}).get("extra_headers")
                if extra:
                    message = {
                        **message,
                        "headers": [
                            *message.get("headers", []),
                            *((k.lower().encode(), v.encode()) for k, v in extra.items()),
                        ],
                    }
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            REQUESTS.labels(scope["method"], path, str(status["code"])).inc()
            LATENCY.labels(path).observe(elapsed)
            if path not in ("/invocations", "/ping", "/metrics", "/health"):
                state = scope.get("state") or {}
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": path,
                        "status": status["code"],
                        "ms": round(elapsed * 1000, 2),
                        "client_id": state.get("client_id"),
                    },
                )
