"""One CloudWatch dashboard per stack with the metrics behind its alarms and scaling triggers.

API latency and errors (ALB), node CPU/memory (Container Insights), the database's CPU,
connections, storage and replica lag, and, where the tier has them, Redis, SageMaker and
CloudFront. Lines mark the catalog's alarm thresholds, so a graph shows how close a
trigger is. The body is built by a pure function from plain identifiers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.config.tier import AlarmThresholds, DatabaseSize
from components.shared.stack import StackContext

WIDTH = 12  # two widgets per row of CloudWatch's 24-unit grid
HEIGHT = 6
PERIOD = 60
GIB_BYTES = 1024**3
# CloudFront publishes its metrics in us-east-1 only, with the dimension Region=Global.
CLOUDFRONT_REGION = "us-east-1"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


@dataclass(frozen=True)
class DashboardIds:
    """The resolved identifiers the widgets need; None leaves a section out."""

    load_balancer_arn_suffix: str
    target_group_arn_suffix: str
    cluster_name: str
    db_primary_identifier: str
    db_replica_identifiers: tuple[str, ...] = ()
    cache_replication_group_id: str | None = None
    sagemaker_endpoint_name: str | None = None
    sagemaker_variant_name: str | None = None
    distribution_id: str | None = None


def _widget(
    title: str,
    region: str,
    metrics: list[list[Any]],
    *,
    stat: str = "Average",
    threshold: tuple[str, float] | None = None,
    y_label: str | None = None,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": title,
        "region": region,
        "view": "timeSeries",
        "stacked": False,
        "stat": stat,
        "period": PERIOD,
        "metrics": metrics,
    }
    if threshold is not None:
        label, value = threshold
        properties["annotations"] = {"horizontal": [{"label": label, "value": value}]}
    if y_label is not None:
        properties["yAxis"] = {"left": {"label": y_label, "showUnits": False}}
    return {"type": "metric", "width": WIDTH, "height": HEIGHT, "properties": properties}


def _per_instance(metric: str, ids: DashboardIds) -> list[list[Any]]:
    instances = (ids.db_primary_identifier, *ids.db_replica_identifiers)
    return [["AWS/RDS", metric, "DBInstanceIdentifier", i, {"label": i}] for i in instances]


def _api_widgets(ids: DashboardIds, region: str, alarms: AlarmThresholds) -> list[dict[str, Any]]:
    """API latency, 5xx rate and requests, from the load balancer."""
    lb = ["LoadBalancer", ids.load_balancer_arn_suffix]
    alb = "AWS/ApplicationELB"
    return [
        _widget(
            "API p95 latency (s)",
            region,
            [[alb, "TargetResponseTime", *lb, {"label": "p95"}]],
            stat="p95",
            threshold=("alarm", alarms.latency_p95_ms / 1000),
        ),
        _widget(
            "API 5xx rate (%)",
            region,
            [
                [{"expression": "100 * (t5xx + e5xx) / requests", "label": "5xx %", "id": "rate"}],
                [alb, "HTTPCode_Target_5XX_Count", *lb, {"id": "t5xx", "visible": False}],
                [alb, "HTTPCode_ELB_5XX_Count", *lb, {"id": "e5xx", "visible": False}],
                [alb, "RequestCount", *lb, {"id": "requests", "visible": False}],
            ],
            stat="Sum",
            threshold=("alarm", alarms.error_rate_percent),
        ),
        _widget(
            "API requests",
            region,
            [
                [alb, "RequestCount", *lb, {"label": "requests"}],
                [
                    alb,
                    "RequestCountPerTarget",
                    "TargetGroup",
                    ids.target_group_arn_suffix,
                    {"label": "per target"},
                ],
            ],
            stat="Sum",
        ),
    ]


def _node_widgets(ids: DashboardIds, region: str, alarms: AlarmThresholds) -> list[dict[str, Any]]:
    """EKS node CPU and memory, from Container Insights."""
    return [
        _widget(
            "EKS node CPU / memory (%)",
            region,
            [
                ["ContainerInsights", "node_cpu_utilization", "ClusterName", ids.cluster_name],
                ["ContainerInsights", "node_memory_utilization", "ClusterName", ids.cluster_name],
            ],
            threshold=("CPU alarm", alarms.cpu_percent),
        ),
    ]


def _database_widgets(
    ids: DashboardIds, region: str, alarms: AlarmThresholds, db: DatabaseSize
) -> list[dict[str, Any]]:
    """The database's CPU, connections, free storage and, with replicas, replica lag."""
    widgets = [
        _widget(
            "DB CPU (%)",
            region,
            _per_instance("CPUUtilization", ids),
            threshold=("alarm", alarms.cpu_percent),
        ),
        _widget(
            "DB connections",
            region,
            _per_instance("DatabaseConnections", ids),
            stat="Maximum",
            threshold=(
                "alarm",
                db.max_connections * alarms.db_connections_percent / 100,
            ),
        ),
        _widget(
            "DB free storage (bytes)",
            region,
            _per_instance("FreeStorageSpace", ids),
            stat="Minimum",
            threshold=(
                "alarm (of initial storage)",
                db.storage_gib * GIB_BYTES * alarms.free_storage_percent / 100,
            ),
        ),
    ]
    if ids.db_replica_identifiers:
        widgets.append(
            _widget(
                "DB replica lag (s)",
                region,
                [
                    ["AWS/RDS", "ReplicaLag", "DBInstanceIdentifier", r, {"label": r}]
                    for r in ids.db_replica_identifiers
                ],
                stat="Maximum",
                threshold=("alarm", alarms.replica_lag_seconds),
            )
        )
    return widgets


def _cache_widgets(ids: DashboardIds, region: str, alarms: AlarmThresholds) -> list[dict[str, Any]]:
    """Redis engine CPU, memory and evictions, where the tier has a cache."""
    if not ids.cache_replication_group_id:
        return []

    # Node-level metrics are per cache cluster (<group>-001, -002...): search them all.
    def nodes(metric: str, stat: str) -> list[list[Any]]:
        query = (
            f'SEARCH(\'{{AWS/ElastiCache,CacheClusterId}} MetricName="{metric}" '
            f"{ids.cache_replication_group_id}', '{stat}', {PERIOD})"
        )
        return [[{"expression": query, "label": metric, "id": "nodes"}]]

    return [
        _widget(
            "Redis engine CPU (%)",
            region,
            nodes("EngineCPUUtilization", "Average"),
            threshold=("alarm", alarms.cpu_percent),
        ),
        _widget(
            "Redis memory used (%)",
            region,
            nodes("DatabaseMemoryUsagePercentage", "Average"),
            threshold=("alarm", alarms.memory_percent),
        ),
        _widget("Redis evictions", region, nodes("Evictions", "Sum"), stat="Sum"),
    ]


def _sagemaker_widgets(
    ids: DashboardIds, region: str, alarms: AlarmThresholds
) -> list[dict[str, Any]]:
    """SageMaker invocations and model latency, where the tier has inference."""
    if not ids.sagemaker_endpoint_name:
        return []
    variant = [
        "EndpointName",
        ids.sagemaker_endpoint_name,
        "VariantName",
        ids.sagemaker_variant_name or "",
    ]
    return [
        _widget(
            "SageMaker invocations",
            region,
            [
                ["AWS/SageMaker", "Invocations", *variant, {"label": "invocations"}],
                [
                    "AWS/SageMaker",
                    "InvocationsPerInstance",
                    *variant,
                    {"label": "per instance"},
                ],
                ["AWS/SageMaker", "Invocation5XXErrors", *variant, {"label": "5xx"}],
            ],
            stat="Sum",
        ),
        _widget(
            "SageMaker p95 model latency (µs)",
            region,
            [["AWS/SageMaker", "ModelLatency", *variant, {"label": "p95"}]],
            stat="p95",
            threshold=("alarm", alarms.model_latency_p95_ms * 1000),
        ),
    ]


def _cloudfront_widgets(ids: DashboardIds, alarms: AlarmThresholds) -> list[dict[str, Any]]:
    """CloudFront requests and error rates (in CLOUDFRONT_REGION), where the tier has an
    edge."""
    if not ids.distribution_id:
        return []
    dist = ["DistributionId", ids.distribution_id, "Region", "Global"]
    return [
        _widget(
            "CloudFront requests",
            CLOUDFRONT_REGION,
            [["AWS/CloudFront", "Requests", *dist]],
            stat="Sum",
        ),
        _widget(
            "CloudFront error rate (%)",
            CLOUDFRONT_REGION,
            [
                ["AWS/CloudFront", "5xxErrorRate", *dist],
                ["AWS/CloudFront", "4xxErrorRate", *dist],
            ],
            threshold=("API alarm", alarms.error_rate_percent),
        ),
    ]


def dashboard_widgets(
    ids: DashboardIds, region: str, alarms: AlarmThresholds, db: DatabaseSize
) -> list[dict[str, Any]]:
    """The widgets, in reading order, without positions."""
    return [
        *_api_widgets(ids, region, alarms),
        *_node_widgets(ids, region, alarms),
        *_database_widgets(ids, region, alarms, db),
        *_cache_widgets(ids, region, alarms),
        *_sagemaker_widgets(ids, region, alarms),
        *_cloudfront_widgets(ids, alarms),
    ]


def dashboard_body(
    ids: DashboardIds, region: str, alarms: AlarmThresholds, db: DatabaseSize
) -> str:
    """The dashboard's JSON: the widgets laid out two per row."""
    widgets = dashboard_widgets(ids, region, alarms, db)
    for index, widget in enumerate(widgets):
        widget["x"] = (index % 2) * WIDTH
        widget["y"] = (index // 2) * HEIGHT
    return json.dumps({"widgets": widgets}, sort_keys=True)


@dataclass
class DashboardArgs:
    stack: StackContext
    """The stack: the region of its metrics."""
    dashboard_name: str
    """Name of the dashboard (letters, digits, ``-`` and ``_``), one per stack."""
    alarms: AlarmThresholds
    """The tier's alarm thresholds, drawn on the graphs."""
    db: DatabaseSize
    """The tier's database slice (connection and storage limits behind the thresholds)."""
    load_balancer_arn_suffix: pulumi.Input[str]
    """``app/<name>/<id>`` of the API's load balancer."""
    target_group_arn_suffix: pulumi.Input[str]
    """``targetgroup/<name>/<id>`` of the API's target group."""
    cluster_name: pulumi.Input[str]
    """EKS cluster (Container Insights' ClusterName)."""
    db_primary_identifier: pulumi.Input[str]
    """RDS identifier of the primary."""
    db_replica_identifiers: Sequence[pulumi.Input[str]] = ()
    """RDS identifiers of the read replicas."""
    cache_replication_group_id: pulumi.Input[str] | None = None
    """ElastiCache replication group, where the tier has a cache."""
    sagemaker_endpoint_name: pulumi.Input[str] | None = None
    """SageMaker endpoint, where the tier has inference."""
    sagemaker_variant_name: pulumi.Input[str] | None = None
    """Its production variant."""
    distribution_id: pulumi.Input[str] | None = None
    """CloudFront distribution, where the tier has an edge."""


class Dashboard(pulumi.ComponentResource):
    dashboard_name: pulumi.Output[str]
    """Name of the CloudWatch dashboard."""

    def __init__(self, name: str, args: DashboardArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:dashboard:Dashboard", name, None, opts)
        if not _NAME.match(args.dashboard_name):
            raise ValueError(
                f"dashboard_name={args.dashboard_name!r}: letters, digits, - and _ only"
            )
        region = args.stack.region
        optional = {
            "cache": args.cache_replication_group_id,
            "endpoint": args.sagemaker_endpoint_name,
            "variant": args.sagemaker_variant_name,
            "distribution": args.distribution_id,
        }
        body = pulumi.Output.all(
            pulumi.Output.all(
                args.load_balancer_arn_suffix,
                args.target_group_arn_suffix,
                args.cluster_name,
                args.db_primary_identifier,
            ),
            pulumi.Output.all(*args.db_replica_identifiers),
            pulumi.Output.all(**optional),
        ).apply(
            lambda v: dashboard_body(
                DashboardIds(
                    load_balancer_arn_suffix=v[0][0],
                    target_group_arn_suffix=v[0][1],
                    cluster_name=v[0][2],
                    db_primary_identifier=v[0][3],
                    db_replica_identifiers=tuple(v[1]),
                    cache_replication_group_id=v[2].get("cache"),
                    sagemaker_endpoint_name=v[2].get("endpoint"),
                    sagemaker_variant_name=v[2].get("variant"),
                    distribution_id=v[2].get("distribution"),
                ),
                region,
                args.alarms,
                args.db,
            )
        )
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=args.dashboard_name,
            dashboard_body=body,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.dashboard_name = dashboard.dashboard_name
        self.register_outputs({"dashboard_name": self.dashboard_name})
