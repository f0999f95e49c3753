"""The ``Monitoring`` component: an Amazon Managed Service for Prometheus workspace, the
managed scraper that reads the API pods' /metrics (with the cluster access and the
NetworkPolicy that admit it), and alert rules for the seeds' triggers, routed to the stack's
alarm topic."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import yaml

from components import k8s_manifests as m
from components.contract import API_PORT
from components.kms import customer_key, key_policy, logs_statement
from components.tier import AlarmThresholds, MonitoringSize

SCRAPE_JOB = "student-success-api"
# The cluster user the service maps the managed scraper's role to.
SCRAPER_USER = "aps-collector-user"
RULES_NAMESPACE = "student-success"
# Routes whose latency is not the users' (probes and the scraper itself).
UNTIMED_ROUTES = "/metrics|/health|/ready|/ping"


def scrape_configuration(namespace: str, interval_seconds: int) -> str:
    """The scraper's Prometheus configuration: every API pod of the namespace, on its port."""
    api = m.labels("api")["app.kubernetes.io/component"]
    config = {
        "global": {"scrape_interval": f"{interval_seconds}s"},
        "scrape_configs": [
            {
                "job_name": SCRAPE_JOB,
                "metrics_path": "/metrics",
                "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
                "relabel_configs": [
                    {
                        "source_labels": [
                            "__meta_kubernetes_pod_label_app_kubernetes_io_component"
                        ],
                        "regex": api,
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                        "regex": str(API_PORT),
                        "action": "keep",
                    },
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                ],
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def alert_rules(thresholds: AlarmThresholds) -> dict[str, Any]:
    """Alerting rules (Prometheus rule-file format) for the seeds' triggers that only the
    app's own metrics show; CPU, memory, replica lag and storage are CloudWatch alarms."""
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
                "name": "student-success-models",
                "rules": [
                    rule(
                        "DistrictModelBelowMinimumAuc",
                        f'min(ssp_model_auc{{scope="district"}}) < {t.model_auc_min}',
                        "30m",
                        f"The served district model's held-out AUC is below {t.model_auc_min}",
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


@dataclass
class MonitoringArgs:
    name_prefix: str
    """Prefix of the AWS names (``ssp-tier3`` -> workspace alias ``ssp-tier3``)."""
    size: MonitoringSize
    """The tier's monitoring slice."""
    alarms: AlarmThresholds
    """The tier's thresholds, which the alert rules use."""
    region: str
    """Region of the stack (the alert manager signs its SNS calls for it)."""
    cluster_arn: pulumi.Input[str]
    """The EKS cluster the scraper reads."""
    cluster_name: pulumi.Input[str]
    """Its name (for the scraper's access entry)."""
    cluster_security_group_id: pulumi.Input[str]
    """The cluster security group: the scraper's ENIs join it, so they reach the API server
    and the pods on the nodes, which carry it too."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """Private subnets (two AZs at least) for the scraper's ENIs."""
    scraper_cidrs: Sequence[str]
    """Their CIDRs: the NetworkPolicy admits the API port from there."""
    namespace: pulumi.Input[str]
    """Namespace of the API pods."""
    k8s_provider: k8s.Provider
    """Provider of the cluster."""
    alarm_topic_arn: pulumi.Input[str]
    """SNS topic the alert manager notifies (it must admit aps.amazonaws.com)."""
    log_retention_days: int
    """Retention of the workspace's rule and alert manager logs."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for every AWS resource of the component."""


class Monitoring(pulumi.ComponentResource):
    workspace_arn: pulumi.Output[str]
    """The Prometheus workspace."""
    query_endpoint: pulumi.Output[str]
    """Its Prometheus-compatible endpoint (``<endpoint>api/v1/query``, SigV4-signed)."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output().account_id
        log_group_name = f"/aws/vendedlogs/prometheus/{args.name_prefix}"
        key = customer_key(
            f"{name}-key",
            description=f"Encrypts the metrics and logs of {args.name_prefix}'s Prometheus",
            policy=account.apply(
                lambda a: key_policy(a, [logs_statement(args.region, a, log_group_name)])
            ),
            tags=args.tags,
            opts=child,
        )
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=log_group_name,
            retention_in_days=args.log_retention_days,
            kms_key_id=key.arn,
            tags=args.tags,
            opts=child,
        )
        workspace = aws.amp.Workspace(
            f"{name}-workspace",
            alias=args.name_prefix,
            kms_key_arn=key.arn,
            logging_configuration={"log_group_arn": logs.arn.apply(lambda arn: f"{arn}:*")},
            # The scraper tags its destination so; stated here, so no update removes it again.
            tags={**args.tags, "AMPAgentlessScraper": ""},
            opts=child,
        )
        rules = aws.amp.RuleGroupNamespace(
            f"{name}-rules",
            workspace_id=workspace.id,
            name=RULES_NAMESPACE,
            data=yaml.safe_dump(alert_rules(args.alarms), sort_keys=False),
            tags=args.tags,
            opts=child,
        )
        aws.amp.AlertManagerDefinition(
            f"{name}-alerts",
            workspace_id=workspace.id,
            definition=pulumi.Output.from_input(args.alarm_topic_arn).apply(
                lambda arn: alertmanager_definition(arn, args.region)
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[rules]),
        )
        self._scraper(name, args, workspace)
        self.workspace_arn = workspace.arn
        self.query_endpoint = workspace.prometheus_endpoint
        self.register_outputs(
            {"workspace_arn": self.workspace_arn, "query_endpoint": self.query_endpoint}
        )

    def _scraper(self, name: str, args: MonitoringArgs, workspace: aws.amp.Workspace) -> None:
        """The managed scraper, what it may do in the cluster and the NetworkPolicy admitting
        it. The service creates the scraper's access entry itself (the cluster authenticates
        through access entries), as the user SCRAPER_USER; the Role bound to that user lets it
        discover the namespace's pods and nothing else."""
        child = pulumi.ResourceOptions(parent=self)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)
        namespace = pulumi.Output.from_input(args.namespace)
        role = k8s.rbac.v1.Role(
            f"{name}-scraper-role",
            metadata={"namespace": namespace, "labels": m.labels("monitoring")},
            rules=[
                {
                    "api_groups": [""],
                    "resources": ["pods", "endpoints", "services"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
            opts=k8s_opts,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-scraper-binding",
            metadata={"namespace": namespace, "labels": m.labels("monitoring")},
            role_ref={
                "api_group": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": role.metadata.name,
            },
            subjects=[
                {"api_group": "rbac.authorization.k8s.io", "kind": "User", "name": SCRAPER_USER}
            ],
            opts=k8s_opts,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-scrape",
            metadata={"namespace": namespace, "labels": m.labels("monitoring")},
            spec={
                "pod_selector": {"match_labels": m.labels("api")},
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        "from_": [{"ip_block": {"cidr": cidr}} for cidr in args.scraper_cidrs],
                        "ports": [{"protocol": "TCP", "port": API_PORT}],
                    }
                ],
            },
            opts=k8s_opts,
        )
        aws.amp.Scraper(
            f"{name}-scraper",
            alias=f"{args.name_prefix}-api",
            scrape_configuration=namespace.apply(
                lambda ns: scrape_configuration(ns, args.size.scrape_interval_seconds)
            ),
            source={
                "eks": {
                    "cluster_arn": args.cluster_arn,
                    "subnet_ids": list(args.subnet_ids),
                    "security_group_ids": [args.cluster_security_group_id],
                }
            },
            destination={"amp": {"workspace_arn": workspace.arn}},
            tags=args.tags,
            opts=child,
        )
