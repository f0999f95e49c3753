"""What the monitoring stack is configured with, as pure functions: the scraper's Prometheus
configuration, the alert rules and the alert manager's route to the alarm topic."""

from __future__ import annotations

import textwrap
from typing import Any

import yaml

from components.config.tier import AlarmThresholds
from components.shared import k8s_manifests as m
from components.shared.contract import API_PORT, WORKER_METRICS_PORT

SCRAPE_JOB = "student-success-api"
WORKER_SCRAPE_JOB = "student-success-worker"
# The cluster user the service maps the managed scraper's role to.
SCRAPER_USER = "aps-collector-user"
RULES_NAMESPACE = "student-success"
# Routes whose latency is not the users' (probes and the scraper itself).
UNTIMED_ROUTES = "/metrics|/health|/ready|/ping"


def _pods_job(job: str, namespace: str, component: str, port: int) -> dict[str, Any]:
    """A scrape job of the namespace's pods of one component, on one container port."""
    return {
        "job_name": job,
        "metrics_path": "/metrics",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                "regex": m.labels(component)["app.kubernetes.io/component"],
                "action": "keep",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                "regex": str(port),
                "action": "keep",
            },
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }


def scrape_configuration(namespace: str, interval_seconds: int) -> str:
    """The scraper's Prometheus configuration: every API pod of the namespace on its port,
    every event worker on its metrics port."""
    config = {
        "global": {"scrape_interval": f"{interval_seconds}s"},
        "scrape_configs": [
            _pods_job(SCRAPE_JOB, namespace, "api", API_PORT),
            _pods_job(WORKER_SCRAPE_JOB, namespace, "worker", WORKER_METRICS_PORT),
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def alert_rules(thresholds: AlarmThresholds, min_model_auc: float) -> dict[str, Any]:
    """Alerting rules (Prometheus rule-file format) for the triggers that only the app's own
    metrics show (pool utilization, event lag, the served model's AUC); CPU, memory, replica
    lag and storage are CloudWatch alarms."""
    t = thresholds

    def rule(name: str, expr: str, for_: str, summary: str) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": for_,
            "labels": {"severity": "warning"},
            "annotations": {"summary": summary},
        }

    return {
        "groups": [
            {
                "name": "student-success-api",
                "rules": [
                    rule(
                        "ApiScrapeFailing",
                        f'absent(up{{job="{SCRAPE_JOB}"}} == 1)',
                        "10m",
                        "No API pod has answered the scraper for 10 minutes",
                    ),
                    rule(
                        "ApiLatencyHigh",
                        "histogram_quantile(0.95, sum by (le) (rate("
                        f'ssp_http_request_duration_seconds_bucket{{route!~"{UNTIMED_ROUTES}"}}'
                        f"[5m]))) > {t.latency_p95_ms / 1000}",
                        "10m",
                        f"API p95 latency over {t.latency_p95_ms} ms for 10 minutes",
                    ),
                    rule(
                        "ApiErrorRateHigh",
                        'sum(rate(ssp_http_requests_total{status=~"5.."}[5m]))'
                        " / sum(rate(ssp_http_requests_total[5m]))"
                        f" > {t.error_rate_percent / 100}",
                        "10m",
                        f"Over {t.error_rate_percent} % of API requests fail with 5xx",
                    ),
                    rule(
                        "DatabasePoolSaturated",
                        "sum by (pool) (ssp_db_pool_in_use) / sum by (pool) (ssp_db_pool_max)"
                        f" > {t.pool_utilization_percent / 100}",
                        "10m",
                        f"API connection pools over {t.pool_utilization_percent} % in use",
                    ),
                    rule(
                        "DatabasePoolQueueing",
                        "sum by (pool) (ssp_db_pool_waiting) > 0",
                        "5m",
                        "Requests wait for a database connection (pool too small or DB slow)",
                    ),
                ],
            },
            {
                "name": "student-success-events",
                "rules": [
                    rule(
                        "WorkerScrapeFailing",
                        f'absent(up{{job="{WORKER_SCRAPE_JOB}"}} == 1)',
                        "10m",
                        "No event worker has answered the scraper for 10 minutes",
                    ),
                    rule(
                        "EventLagHigh",
                        "histogram_quantile(0.95, sum by (le) (rate("
                        "ssp_worker_lag_seconds_bucket[5m])))"
                        f" > {t.event_lag_p95_seconds}",
                        "10m",
                        f"Events take over {t.event_lag_p95_seconds} s (p95) from POST /v1/events"
                        " to the updated risk",
                    ),
                ],
            },
            {
                "name": "student-success-models",
                "rules": [
                    rule(
                        "DistrictModelBelowMinimumAuc",
                        f'min(ssp_model_auc{{scope="district"}}) < {min_model_auc}',
                        "30m",
                        f"The served district model's held-out AUC is below {min_model_auc}",
                    ),
                ],
            },
        ]
    }


def alertmanager_definition(topic_arn: str, region: str) -> str:
    """Every alert to the stack's alarm topic, grouped by alert name, repeated every 4 h."""
    config = {
        "route": {"receiver": "alarm-topic", "group_by": ["alertname"], "repeat_interval": "4h"},
        "receivers": [
            {
                "name": "alarm-topic",
                "sns_configs": [
                    {
                        "topic_arn": topic_arn,
                        "sigv4": {"region": region},
                        "subject": "student-success: {{ .CommonLabels.alertname }}",
                    }
                ],
            }
        ],
    }
    # The service wants the Alertmanager configuration as a string under this one key.
    body = yaml.safe_dump(config, sort_keys=False)
    return "alertmanager_config: |\n" + textwrap.indent(body, "  ")
