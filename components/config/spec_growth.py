"""A stack moving between tiers, validated for ``components.config.spec``: the edge phase of a
move to CloudFront, and the moves a stack may make from the tier its last ``up`` deployed.

A stack moves up one tier at a time, in place (docs/growth.md): each adjacent move is a tested
property of the program (tests/growth). It never moves down in place: a lower tier takes away
what holds data or serves clients (the read replicas and their reader endpoint, the SQS queue
and its pending events, the third availability zone's subnets that nodes and the database
use, the Multi-AZ standby, CloudFront and its clients' name), and RDS cannot pin a Multi-AZ
primary back to the zone it may have failed over from without replacing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.config.catalog import TIERS
from components.config.tier import Tier

EDGE_PHASES = ("both", "cdn-only")
TIER_ORDER = tuple(TIERS)
"""The tiers from the smallest up, as the catalog lists them."""

MOVING_DOWN = (
    "a stack does not move down in place: the lower tier would delete what holds data or "
    "serves clients (replicas, the events queue with its pending events, the third zone's "
    "subnets, CloudFront) and pin a Multi-AZ primary to one zone. To cut costs, lower single "
    "sizes with overrides (node_groups.app.max_size, api.max_replicas...) within the tier; to "
    "run smaller, deploy a new stack at {tier} and move the district's data to it "
    '(docs/growth.md, "Moving down")'
)


def edge_phase(values: Mapping[str, Any], tier: Tier, problems: list[str]) -> str:
    """``edgePhase``: ``both`` (CloudFront and the load balancer's own entry with its WAF,
    while the clients move) or ``cdn-only``; ``both`` on an edge tier only."""
    phase = str(values["edgePhase"]).strip()
    if phase not in EDGE_PHASES:
        problems.append(f"edgePhase={phase!r}: allowed {', '.join(EDGE_PHASES)}")
        return "cdn-only"
    if phase == "both" and not tier.edge.enabled:
        problems.append(f"edgePhase=both: tier {tier.name} has no CloudFront; remove it")
    return phase


def move_problems(deployed: Mapping[str, Any], tier: Tier, phase: str) -> list[str]:
    """What is wrong with running ``tier`` (in edge ``phase``) on a stack whose last ``up``
    exported ``deployed`` (its outputs; empty for a stack never brought up)."""
    was = deployed.get("tier")
    if was not in TIERS or was == tier.name:
        return []
    step = TIER_ORDER.index(tier.name) - TIER_ORDER.index(was)
    if step < 0:
        return [
            f"tier={tier.name}: below the deployed {was}; " + MOVING_DOWN.format(tier=tier.name)
        ]
    if step > 1:
        following = TIER_ORDER[TIER_ORDER.index(was) + 1]
        return [
            f"tier={tier.name}: {was} moves one tier at a time ({following} first): each "
            "adjacent move is reviewed and rehearsed on its own (docs/growth.md)"
        ]
    if tier.edge.enabled and "cdn_url" not in deployed and phase != "both":
        return [
            f"edgePhase: the move from {was} to {tier.name} puts CloudFront in front of the "
            "load balancer; set edgePhase: both for this up (the load balancer keeps its WAF "
            "and its clients), point the clients at edgeDomainName, then set edgePhase: "
            '"cdn-only" (docs/growth.md, "tier2 to tier3")'
        ]
    return []
