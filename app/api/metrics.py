"""The API's Prometheus metrics, served by GET /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("ssp_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "ssp_http_request_duration_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5),
)
PREDICTIONS = Counter("ssp_predictions_total", "Rows scored", ["endpoint"])
GENERATION = Gauge("ssp_model_generation", "Generation of the model pointer being served")
SHED = Counter("ssp_http_requests_shed_total", "Requests refused with 503: too many in flight")
