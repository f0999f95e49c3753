"""The ``Monitoring`` component: an Amazon Managed Service for Prometheus workspace, the
managed scraper that reads the API pods' and the event workers' /metrics (with the cluster
access and the NetworkPolicies that admit it), alert rules on the app's own metrics routed to
the stack's alarm topic, and where the tier asks for it a Managed Grafana workspace with its
dashboards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
from components.shared.contract import API_PORT, WORKER_METRICS_PORT, ClusterRef, NetworkRef
from components.shared.log_groups import encrypted_logs
from components.shared.stack import StackContext


@dataclass
class MonitoringArgs:
    stack: StackContext
    """The stack: the prefix of the AWS names (workspace alias ``ssp-tier3``), its region (the
    alert manager signs its SNS calls for it), the alarm topic the alert manager notifies
    (it must admit aps.amazonaws.com), the retention of the workspace's rule and alert
    manager logs, and tags."""
    cluster: ClusterRef
    """The EKS cluster the scraper reads: its ENIs join the cluster security group, so they
    reach the API server and the pods on the nodes, which carry it too."""
    network: NetworkRef
    """The VPC: the scraper's ENIs take its private subnets (two AZs at least), whose CIDRs
    the NetworkPolicy admits on the scraped ports."""
    size: MonitoringSize
    """The tier's monitoring slice."""
    alarms: AlarmThresholds
    """The tier's thresholds, which the alert rules use."""
    min_model_auc: float
    """The promotion gate's minimum AUC: the district model under it alerts."""
    namespace: pulumi.Input[str]
    """Namespace of the API pods."""
    grafana_admin_group_ids: Sequence[str] = ()
    """IAM Identity Center groups given the Grafana workspace's Admin role: Identity Center
    signs in only those assigned to the workspace."""


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
        log_group_name = f"/aws/vendedlogs/prometheus/{args.stack.name_prefix}"
        encrypted = encrypted_logs(
            f"{name}-key",
            log_group_prefixes=[log_group_name],
            description=f"Encrypts the metrics and logs of {args.stack.name_prefix}'s Prometheus",
            retention_days=args.stack.log_retention_days,
            tags=args.stack.tags,
            opts=child,
        )
        key = encrypted.key
        logs = encrypted.group(f"{name}-logs", name=log_group_name)
        workspace = aws.amp.Workspace(
            f"{name}-workspace",
            alias=args.stack.name_prefix,
            kms_key_arn=key.arn,
            logging_configuration={"log_group_arn": logs.arn.apply(lambda arn: f"{arn}:*")},
            # The scraper tags its destination so; stated here, so no update removes it again.
            tags={**args.stack.tags, "AMPAgentlessScraper": ""},
            opts=child,
        )
        rules = aws.amp.RuleGroupNamespace(
            f"{name}-rules",
            workspace_id=workspace.id,
            name=RULES_NAMESPACE,
            data=yaml.safe_dump(alert_rules(args.alarms, args.min_model_auc), sort_keys=False),
            tags=args.stack.tags,
            opts=child,
        )
        aws.amp.AlertManagerDefinition(
            f"{name}-alerts",
            workspace_id=workspace.id,
            definition=pulumi.Output.from_input(args.stack.alarm_topic).apply(
                lambda arn: alertmanager_definition(arn, args.stack.region)
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[rules]),
        )
        self._scraper(name, args, workspace)
        self.workspace_arn = workspace.arn
        self.query_endpoint = workspace.prometheus_endpoint
        self.grafana_url = None
        if args.size.grafana:
            self.grafana_url = grafana_workspace(
                self,
                name,
                args.stack.name_prefix,
                args.stack.region,
                workspace,
                args.stack.tags,
                admin_group_ids=args.grafana_admin_group_ids,
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
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.cluster.k8s_provider)
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
                            "from_": [
                                {"ip_block": {"cidr": c}} for c in args.network.subnet_cidrs.private
                            ],
                            "ports": [{"protocol": "TCP", "port": port}],
                        }
                    ],
                },
                opts=k8s_opts,
            )
        aws.amp.Scraper(
            f"{name}-scraper",
            alias=f"{args.stack.name_prefix}-api",
            scrape_configuration=namespace.apply(
                lambda ns: scrape_configuration(ns, args.size.scrape_interval_seconds)
            ),
            source={
                "eks": {
                    "cluster_arn": args.cluster.arn,
                    "subnet_ids": list(args.network.private_subnet_ids),
                    "security_group_ids": [args.cluster.security_group_id],
                }
            },
            destination={"amp": {"workspace_arn": workspace.arn}},
            tags=args.stack.tags,
            opts=child,
        )
