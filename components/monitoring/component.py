"""The ``Monitoring`` component: an Amazon Managed Service for Prometheus workspace, the
managed scraper that reads the API pods' and the event workers' /metrics (with the cluster
access and the NetworkPolicies that admit it), alert rules for the seeds' triggers routed to the
stack's alarm topic, and where the tier asks for it a Managed Grafana workspace with its
dashboards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import yaml

from components.config.tier import AlarmThresholds, MonitoringSize
from components.monitoring.grafana import grafana_workspace
from components.monitoring.rules import (
    RULES_NAMESPACE,
    SCRAPER_USER,
    alert_rules,
    alertmanager_definition,
    scrape_configuration,
)
from components.shared import k8s_manifests as m
from components.shared.contract import API_PORT, WORKER_METRICS_PORT
from components.shared.log_groups import encrypted_logs


@dataclass
class MonitoringArgs:
    name_prefix: str
    """Prefix of the AWS names (``ssp-tier3`` -> workspace alias ``ssp-tier3``)."""
    size: MonitoringSize
    """The tier's monitoring slice."""
    alarms: AlarmThresholds
    """The tier's thresholds, which the alert rules use."""
    min_model_auc: float
    """The promotion gate's minimum AUC: the district model under it alerts."""
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
    grafana_url: pulumi.Output[str] | None
    """The Managed Grafana workspace's URL, where the tier has one."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        log_group_name = f"/aws/vendedlogs/prometheus/{args.name_prefix}"
        encrypted = encrypted_logs(
            f"{name}-key",
            log_group_prefixes=[log_group_name],
            description=f"Encrypts the metrics and logs of {args.name_prefix}'s Prometheus",
            retention_days=args.log_retention_days,
            tags=args.tags,
            opts=child,
        )
        key = encrypted.key
        logs = encrypted.group(f"{name}-logs", name=log_group_name)
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
            data=yaml.safe_dump(alert_rules(args.alarms, args.min_model_auc), sort_keys=False),
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
        self.grafana_url = None
        if args.size.grafana:
            self.grafana_url = grafana_workspace(
                self, name, args.name_prefix, args.region, workspace, args.tags
            )
        self.register_outputs(
            {
                "workspace_arn": self.workspace_arn,
                "query_endpoint": self.query_endpoint,
                "grafana_url": self.grafana_url,
            }
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
        # The API's port on its pods, the metrics port on the workers'.
        scraped = (
            ("allow-scrape", "api", API_PORT),
            ("allow-scrape-worker", "worker", WORKER_METRICS_PORT),
        )
        for policy, component, port in scraped:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy}",
                metadata={"namespace": namespace, "labels": m.labels("monitoring")},
                spec={
                    "pod_selector": {"match_labels": m.labels(component)},
                    "policy_types": ["Ingress"],
                    "ingress": [
                        {
                            "from_": [{"ip_block": {"cidr": c}} for c in args.scraper_cidrs],
                            "ports": [{"protocol": "TCP", "port": port}],
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
