"""Serving: the events queue, the API's load balancer, the app on Kubernetes (API, jobs, event
worker), and CloudFront in front of it on edge tiers."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.api_load_balancer import ApiLoadBalancer, ApiLoadBalancerArgs
from components.config.spec import StackSpec
from components.edge import Edge, EdgeArgs
from components.events import EventsQueue, EventsQueueArgs
from components.inference import Inference
from components.shared.certificates import TlsName
from components.shared.stack import StackContext
from components.workloads import Workloads, WorkloadsArgs
from stacks.compute import Compute
from stacks.data import Data
from stacks.references import GlobalStack


@dataclass(frozen=True)
class Serving:
    events: EventsQueue | None
    load_balancer: ApiLoadBalancer
    workloads: Workloads


def workloads(
    spec: StackSpec,
    stack: StackContext,
    data: Data,
    compute: Compute,
    endpoint: Inference | None,
    global_stack: GlobalStack | None,
    zone_id: pulumi.Input[str] | None,
) -> Serving:
    tier = spec.tier
    # Between POST /v1/events and the rescoring worker: SQS from tier2 on; below, the app's own
    # PostgreSQL table queue (nothing to create).
    events = None
    if tier.events.queue == "sqs":
        events = EventsQueue(
            "events",
            EventsQueueArgs(
                # Each event names a student.
                stack=stack.classified("ferpa"),
                queue_name=f"{stack.name_prefix}-events",
                size=tier.events,
            ),
        )
    load_balancer = ApiLoadBalancer(
        "workloads-alb",
        ApiLoadBalancerArgs(
            stack=stack,
            network=data.network.ref,
            alarms=tier.alarms,
            behind_cdn=spec.behind_cdn,
            tls=TlsName(spec.api_domain_name, zone_id, spec.api_certificate_arn)
            if spec.api_domain_name
            else None,
            waf=tier.waf,
            shared_origin_certificate_arn=global_stack.origin_certificate_arn()
            if global_stack
            else None,
            access_log_bucket=data.access_logs.bucket_name,
        ),
        # Its resources were children of the workloads component before it existed.
        moved_from=pulumi.create_urn("workloads", "ssp:workloads:Workloads"),
    )
    app = Workloads(
        "workloads",
        WorkloadsArgs(
            stack=stack,
            cluster=compute.cluster.ref,
            subnets=data.network.ref.subnet_cidrs,
            api=tier.api,
            training=tier.training,
            training_shards=tier.training.shards(tier.expected_schools),
            events=tier.events,
            node_groups=tier.node_groups,
            image=compute.app_image,
            target_group_arn=load_balancer.target_group_arn,
            models_bucket=data.models.ref,
            archive_bucket=data.audit_archive.ref,
            drop_bucket=data.district_drop.ref,
            database=data.database.connection,
            release=spec.release,
            redis_url=data.cache.url if data.cache is not None else None,
            sagemaker=endpoint.rollout if endpoint is not None else None,
            events_queue=events.queue if events is not None else None,
            directory=global_stack.directory() if global_stack is not None else None,
            retention=tier.retention,
        ),
        # The controllers (TargetGroupBinding CRD) and node groups must be up first.
        opts=pulumi.ResourceOptions(depends_on=[compute.cluster]),
    )
    return Serving(events, load_balancer, app)


def edge(
    spec: StackSpec,
    stack: StackContext,
    data: Data,
    serving: Serving,
    global_stack: GlobalStack | None,
    zone_id: pulumi.Input[str] | None,
) -> Edge | None:
    """CloudFront on edge tiers with a name to serve: the API from the load balancer, the
    public assets from the models bucket."""
    if data.assets_grant is None or not spec.edge_domain_name:
        return None
    tier, api = spec.tier, serving.load_balancer
    return Edge(
        "edge",
        EdgeArgs(
            stack=stack,
            api_origin_domain_name=api.origin_domain_name,
            api_origin_https=spec.api_domain_name is not None,
            api_listener_arn=api.listener_arn,
            api_target_group_arn=api.target_group_arn,
            # Tier 4: the global stack's distribution of the shared name reaches us too.
            accepted_origin_secrets=[global_stack.shared_origin_secret()] if global_stack else [],
            assets_bucket_regional_domain_name=data.models.bucket_regional_domain_name,
            assets_bucket_arn=data.models.bucket_arn,
            assets_grant=data.assets_grant,
            size=tier.edge,
            waf=tier.waf,
            tls=TlsName(spec.edge_domain_name, zone_id, spec.edge_certificate_arn),
        ),
    )
