"""The worker's Prometheus metrics and its small HTTP server: /metrics and /healthz on
WORKER_METRICS_PORT (9102), which the Deployment's probes and Prometheus's scrape use."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

REGISTRY = CollectorRegistry()  # the worker's own: none of the API's metrics
PROCESSED = Counter(
    "ssp_worker_messages_processed_total", "Messages processed and acknowledged", registry=REGISTRY
)
FAILED = Counter(
    "ssp_worker_messages_failed_total",
    "Messages whose processing failed (retried)",
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "ssp_worker_messages_dead_lettered_total",
    "Messages given up on: their last allowed receive failed",
    registry=REGISTRY,
)
ALERTS = Counter("ssp_worker_alerts_raised_total", "Threshold crossings alerted", registry=REGISTRY)
DEPTH = Gauge("ssp_worker_queue_depth", "Messages in the queue", ["state"], registry=REGISTRY)
OLDEST = Gauge(
    "ssp_worker_oldest_message_age_seconds",
    "Age of the oldest message not yet processed (PostgreSQL queue; SQS: CloudWatch's)",
    registry=REGISTRY,
)
# The drain of the table queue onto SQS (QUEUE_DRAIN_POSTGRES): what is left, what was done.
DRAIN_REMAINING = Gauge(
    "ssp_worker_postgres_drain_remaining",
    "Messages left in the PostgreSQL table queue being drained (waiting or leased; 0: drained)",
    registry=REGISTRY,
)
DRAINED = Counter(
    "ssp_worker_postgres_drained_total",
    "Messages of the PostgreSQL table queue processed and acknowledged by this worker's drain",
    registry=REGISTRY,
)
LAG = Histogram(
    "ssp_worker_lag_seconds",
    "From POST /v1/events to the updated risk",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 s is no news


def serve_metrics(
    port: int,
    healthy: Callable[[], bool],
    host: str = "0.0.0.0",  # every interface of the pod: the probes and the scrape come from afar
) -> WSGIServer:
    """/metrics and /healthz (200 while `healthy()`, else 503) in a daemon thread."""
    metrics = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok = healthy()
            start("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"stalled\n"]
        if environ.get("PATH_INFO") == "/metrics":
            result: Iterable[bytes] = metrics(environ, start)
            return result
        start("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="worker-metrics").start()
    return server


class Heartbeat:
    """When the worker's loop last came round; /healthz fails after `stall_seconds` without."""

    def __init__(self, stall_seconds: float) -> None:
        self.stall_seconds = stall_seconds
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def healthy(self) -> bool:
        return time.monotonic() - self.last < self.stall_seconds
