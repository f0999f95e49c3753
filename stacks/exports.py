"""The regional stack's outputs: what operators, the CLI's scripts and other stacks (by
StackReference) read. Credentials never: they stay in Secrets Manager and the app's
Kubernetes Secrets."""

from __future__ import annotations

from typing import Any

from components.config.spec import StackSpec
from components.edge import Edge
from components.inference import Inference
from components.shared.stack import StackContext
from stacks.compute import Compute
from stacks.data import Data
from stacks.monitoring import Observing
from stacks.serving import Serving


def exports(
    spec: StackSpec,
    stack: StackContext,
    data: Data,
    compute: Compute,
    endpoint: Inference | None,
    serving: Serving,
    cdn: Edge | None,
    observing: Observing,
) -> dict[str, Any]:
    network, database, cache = data.network, data.database, data.cache
    out: dict[str, Any] = {
        "tier": spec.tier.name,
        "alarm_topic_arn": stack.alarm_topic,
        "dashboard_name": observing.dashboard.dashboard_name,
        # network
        "vpc_id": network.vpc_id,
        "availability_zones": network.availability_zones,
        "public_subnet_ids": network.public_subnet_ids,
        "private_subnet_ids": network.private_subnet_ids,
        "isolated_subnet_ids": network.isolated_subnet_ids,
        "app_security_group_id": network.app_security_group_id,
        # data
        "db_writer_endpoint": database.writer_endpoint,
        "db_reader_endpoint": database.reader_endpoint,
        "db_primary_identifier": database.primary_identifier,
        "db_replica_identifiers": database.replica_identifiers,
        "db_credentials_secret_arn": database.credentials_secret_arn,
    }
    if database.reporting_address is not None:
        out["db_reporting_endpoint"] = database.reporting_address
    if database.proxy_name is not None:
        out["db_proxy_name"] = database.proxy_name
    if cache is not None:
        out["cache_primary_endpoint"] = cache.primary_endpoint
        out["cache_reader_endpoint"] = cache.reader_endpoint
        out["cache_replication_group_id"] = cache.replication_group_id
    # compute and serving
    api = serving.load_balancer
    out |= {
        "cluster_name": compute.cluster.cluster_name,
        "ecr_repository_url": compute.image_repository.url,
        "models_bucket": data.models.bucket_name,
        "audit_archive_bucket": data.audit_archive.bucket_name,
        "district_drop_bucket": data.district_drop.bucket_name,
        "district_drop_key_arn": data.district_drop.kms_key_arn,
        "api_load_balancer_dns_name": api.dns_name,
    }
    if spec.api_domain_name:
        out["api_url"] = f"https://{spec.api_domain_name}"
    if api.web_acl_arn is not None:
        out["waf_web_acl_arn"] = api.web_acl_arn
    out["app_namespace"] = serving.workloads.namespace
    if serving.events is not None:
        out["events_queue_url"] = serving.events.queue_url
        out["events_dead_letter_queue_url"] = serving.events.dead_letter_queue_url
    # inference, monitoring and edge
    if endpoint is not None:
        out["sagemaker_endpoint_name"] = endpoint.endpoint_name
        out["sagemaker_endpoint_arn"] = endpoint.endpoint_arn
    prometheus = observing.monitoring
    if prometheus is not None:
        out["prometheus_workspace_arn"] = prometheus.workspace_arn
        out["prometheus_query_endpoint"] = prometheus.query_endpoint
        if prometheus.grafana_url is not None:
            out["grafana_url"] = prometheus.grafana_url
    if cdn is not None:
        out["cdn_domain_name"] = cdn.distribution_domain_name
        out["cdn_distribution_id"] = cdn.distribution_id
        out["cdn_url"] = f"https://{spec.edge_domain_name}"
        out["waf_web_acl_arn"] = cdn.web_acl_arn
    return out
