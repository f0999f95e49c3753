"""The API's Prometheus metrics, served by GET /metrics.

With several workers (WORKERS > 1) every worker writes its samples into files under
PROMETHEUS_MULTIPROC_DIR, which `serve` creates afresh, and /metrics merges all workers' files
into one answer, whichever worker serves it (prometheus_client's multiprocess mode). Each gauge
says how workers' values merge: generations and model quality are the newest value, pool
figures add up over the live workers."""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app import __version__

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("ssp_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "ssp_http_request_duration_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5),
)
PREDICTIONS = Counter("ssp_predictions_total", "Rows scored", ["endpoint"])
SHED = Counter("ssp_http_requests_shed_total", "Requests refused with 503: too many in flight")
GENERATION = Gauge(
    "ssp_model_generation",
    "Generation of the model pointer being served",
    multiprocess_mode="max",  # generations only grow
)
BUILD = Gauge(
    "ssp_build_info", "The running release (value 1)", ["version"], multiprocess_mode="max"
)
MODEL_AUC = Gauge(
    "ssp_model_auc",
    "Held-out AUC of the served model of each scope, from its training run",
    ["scope"],
    multiprocess_mode="mostrecent",
)
# The figures schools act on, per served scope, from its training run (app/model/figures.py).
MODEL_FIGURES = {
    name: Gauge(f"ssp_model_{name}", text, ["scope"], multiprocess_mode="mostrecent")
    for name, text in (
        ("ppv", "Held-out PPV (precision) at the alert threshold of the served model"),
        ("false_alarm_rate", "Held-out false-alarm rate (FP / stayers) at the alert threshold"),
        ("precision_at_k", "Held-out precision in each school's top k (a caseload)"),
        ("recall_at_k", "Held-out recall in each school's top k (a caseload)"),
        ("brier", "Held-out Brier score of the served model"),
    )
}
# Per pool (primary, replica): summed over the live workers of the pod. Utilization is
# in_use / max (the first sign that the database, not the API, limits throughput); waiting > 0
# means requests queue for a connection.
POOL_MAX = Gauge(
    "ssp_db_pool_max", "Connections a pool may open", ["pool"], multiprocess_mode="livesum"
)
POOL_OPEN = Gauge(
    "ssp_db_pool_open", "Connections a pool holds", ["pool"], multiprocess_mode="livesum"
)
POOL_IN_USE = Gauge(
    "ssp_db_pool_in_use", "Connections lent to requests", ["pool"], multiprocess_mode="livesum"
)
POOL_WAITING = Gauge(
    "ssp_db_pool_waiting",
    "Requests waiting for a connection",
    ["pool"],
    multiprocess_mode="livesum",
)

# Open alerts nobody acknowledged within ALERT_OVERDUE_DAYS, per school (counts only), as of
# the last scrape of any worker.
ALERTS_OVERDUE = Gauge(
    "ssp_alerts_overdue",
    "Open alerts unacknowledged past ALERT_OVERDUE_DAYS",
    ["school"],
    multiprocess_mode="mostrecent",
)

BUILD.labels(__version__).set(1)


def record_overdue(counts: list[dict[str, int]]) -> None:
    """The overdue alerts per school (overdue_alert_counts(), migration 0018); a school that
    has none any more reads 0."""
    seen = {str(r["school_id"]): int(r["overdue"]) for r in counts}
    for labels in list(ALERTS_OVERDUE._metrics):  # schools reported before
        seen.setdefault(labels[0], 0)
    for school, n in seen.items():
        ALERTS_OVERDUE.labels(school).set(n)


def record_pools(stats: dict[str, dict[str, int]]) -> None:
    """This worker's pool figures (``Database.stats()``)."""
    for pool, figures in stats.items():
        POOL_MAX.labels(pool).set(figures["pool_max"])
        POOL_OPEN.labels(pool).set(figures["pool_size"])
        POOL_IN_USE.labels(pool).set(figures["pool_size"] - figures["pool_available"])
        POOL_WAITING.labels(pool).set(figures.get("requests_waiting", 0))


def record_models(generation: int, figures_by_scope: dict[str, dict[str, float]]) -> None:
    """The served generation and its models' held-out figures (a figure a run could not
    measure, such as PPV with nobody flagged, is absent)."""
    GENERATION.set(generation)
    for scope, figures in figures_by_scope.items():
        if "auc" in figures:
            MODEL_AUC.labels(scope).set(figures["auc"])
        for name, gauge in MODEL_FIGURES.items():
            if name in figures:
                gauge.labels(scope).set(figures[name])


def exposition() -> bytes:
    """The text format of every metric: this process's, or every worker's in multiprocess
    mode."""
    if os.environ.get(MULTIPROC_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def worker_exited(pid: int | None = None) -> None:
    """Drop a worker that stopped from the live-summed gauges (multiprocess mode only)."""
    if os.environ.get(MULTIPROC_DIR):
        multiprocess.mark_process_dead(pid or os.getpid())
