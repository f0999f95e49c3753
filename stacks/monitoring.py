"""Monitoring: Prometheus (and Grafana) on the tiers that have them, and every stack's
CloudWatch dashboard of the metrics behind its scaling triggers."""

from __future__ import annotations

from dataclasses import dataclass

from components.config.spec import StackSpec
from components.dashboard import Dashboard, DashboardArgs
from components.edge import Edge
from components.inference import Inference
from components.monitoring import Monitoring, MonitoringArgs
from components.shared.stack import StackContext
from stacks.compute import Compute
from stacks.data import Data
from stacks.serving import Serving


@dataclass(frozen=True)
class Observing:
    monitoring: Monitoring | None
    dashboard: Dashboard


def monitoring(
    spec: StackSpec,
    stack: StackContext,
    data: Data,
    compute: Compute,
    serving: Serving,
    endpoint: Inference | None,
    cdn: Edge | None,
) -> Observing:
    tier = spec.tier
    prometheus = None
    if tier.monitoring.prometheus:
        prometheus = Monitoring(
            "monitoring",
            MonitoringArgs(
                stack=stack,
                cluster=compute.cluster.ref,
                network=data.network.ref,
                size=tier.monitoring,
                alarms=tier.alarms,
                min_model_auc=tier.training.min_promotion_auc,
                namespace=serving.workloads.namespace,
                grafana_admin_group_ids=spec.grafana_admin_group_ids,
            ),
        )
    api, cache = serving.load_balancer, data.cache
    dashboard = Dashboard(
        "dashboard",
        DashboardArgs(
            stack=stack,
            dashboard_name=stack.name_prefix,
            alarms=tier.alarms,
            db=tier.db,
            load_balancer_arn_suffix=api.arn_suffix,
            target_group_arn_suffix=api.target_group_arn_suffix,
            cluster_name=compute.cluster.cluster_name,
            db_primary_identifier=data.database.primary_identifier,
            db_replica_identifiers=data.database.replica_identifiers,
            cache_replication_group_id=cache.replication_group_id if cache is not None else None,
            sagemaker_endpoint_name=endpoint.endpoint_name if endpoint is not None else None,
            sagemaker_variant_name=endpoint.variant_name if endpoint is not None else None,
            distribution_id=cdn.distribution_id if cdn is not None else None,
        ),
    )
    return Observing(prometheus, dashboard)
