"""The program of a tier's regional stack, one function per concern, called in the order
their resources build on each other: the stack's context (its alarm topic), network and
data, the cluster, inference, the workloads, the edge, monitoring, and the outputs."""

from __future__ import annotations

import dataclasses
from typing import Any

from components.alarm_topic import AlarmTopic, AlarmTopicArgs
from components.config.spec import SpecError, StackSpec
from components.config.spec_growth import move_problems
from components.shared.stack import StackContext
from stacks.compute import cluster, inference
from stacks.data import network_and_data
from stacks.exports import exports
from stacks.monitoring import monitoring
from stacks.preconditions import check_cluster_admin, hosted_zone, warn_without_identity_center
from stacks.references import GlobalStack, deployed_outputs
from stacks.serving import edge, workloads


def regional_program(spec: StackSpec) -> dict[str, Any]:
    """Every resource of the stack; returns its outputs."""
    refuse_wrong_move(spec)
    check_cluster_admin(spec)
    warn_without_identity_center(spec)
    # Tier 4: the global stack's zone, district directory and image registry.
    global_stack = GlobalStack.read(spec.global_stack, spec.region)
    zone_id = global_stack.zone_id() if global_stack else hosted_zone(spec)
    stack = stack_context(spec)
    data = network_and_data(spec, stack)
    compute = cluster(spec, stack, data, global_stack)
    endpoint = inference(spec, stack, data, compute)
    serving = workloads(spec, stack, data, compute, endpoint, global_stack, zone_id)
    cdn = edge(spec, stack, data, serving, global_stack, zone_id)
    observing = monitoring(spec, stack, data, compute, serving, endpoint, cdn)
    return exports(spec, stack, data, compute, endpoint, serving, cdn, observing)


def refuse_wrong_move(spec: StackSpec) -> None:
    """Fail the preview when the stack's config moves it down, skips a tier, or puts
    CloudFront in front without the edge's two phases (``spec_growth.move_problems``)."""

    def check(deployed: dict[str, Any]) -> None:
        problems = move_problems(deployed or {}, spec.tier, spec.edge_phase)
        if problems:
            raise SpecError(spec.stack, problems)

    deployed_outputs().apply(check)


def stack_context(spec: StackSpec) -> StackContext:
    """What every component takes from the stack, with the topic its alarms notify."""
    stack = StackContext(
        # AWS names of the stack's resources start with it (ssp-tier3-db, ssp-tier3-redis).
        name_prefix=f"ssp-{spec.stack}",
        region=spec.region,
        tags=spec.tags(),
        protect=spec.protect,
        log_retention_days=spec.tier.log_retention_days,
    )
    alarms = AlarmTopic(
        "alarms",
        AlarmTopicArgs(
            stack=stack,
            email=spec.alarm_email,
            # Prometheus' alert manager publishes the app's alerts to it too.
            service_publishers=("aps.amazonaws.com",) if spec.tier.monitoring.prometheus else (),
        ),
    )
    return dataclasses.replace(stack, alarm_topic_arn=alarms.topic_arn)
