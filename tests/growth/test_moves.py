"""Every move to the next tier is safe by construction, for every stack file and every
adjacent pair on its way up: the program evaluated at both tiers, the reviewer's diff between
them (in process) replaces or deletes nothing that holds data, only what the move list allows
with its reason, and exits 0; secrets and API keys stay; the events queue is drained; traffic
always has a way in behind a WAF."""

from __future__ import annotations

import itertools

import pytest

from components.config.catalog import TIERS
from components.config.spec_growth import TIER_ORDER
from tests.shared import (
    CONFIG_MAP,
    DB_INSTANCE,
    DB_PARAMETER_GROUP,
    DEPLOYMENT,
    HPA,
    STACKS,
    WEB_ACL_ASSOCIATION,
)
from tools import growth
from tools.diff import render
from tools.harness import StackRun

PDB = "kubernetes:policy/v1:PodDisruptionBudget"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"

MOVES = [
    (stack, target)
    for stack in STACKS
    for target in TIER_ORDER[TIER_ORDER.index(growth.stack_tier(stack)) + 1 :]
]
"""Each stack file, moved up one tier at a time as far as the catalog goes: (stack, the tier
it moves into from the one below)."""
_MOVES: dict[tuple[str, str], growth.Move] = {}


def move(stack: str, target: str) -> growth.Move:
    """The move, evaluated once per session."""
    if (stack, target) not in _MOVES:
        _MOVES[stack, target] = growth.evaluate_move(stack, target)
    return _MOVES[stack, target]


def states(m: growth.Move) -> list[StackRun]:
    return [m.before, *(up.run for up in m.ups)]


def test_every_adjacent_pair_is_covered() -> None:
    sources = {(TIER_ORDER[TIER_ORDER.index(target) - 1], target) for _, target in MOVES}
    assert sources == set(itertools.pairwise(TIER_ORDER))


@pytest.mark.parametrize(("stack", "target"), MOVES)
def test_a_move_replaces_or_deletes_only_what_the_list_allows(stack: str, target: str) -> None:
    m = move(stack, target)
    for n, up in enumerate(m.ups, 1):
        found = growth.problems(up)
        assert not found, f"{stack} {m.source}->{target}, up {n}:\n" + "\n".join(found)
        text, refused = render(up.diff, m.source)
        assert not refused, text


@pytest.mark.parametrize(("stack", "target"), MOVES)
def test_a_move_keeps_every_secret_and_api_key(stack: str, target: str) -> None:
    # The pepper hashes every API key, the passwords are the logins': none may change, nor
    # a Secrets Manager secret's value (its versions).
    for up in move(stack, target).ups:
        for change in up.diff.changes:
            r = change.resource
            if change.kind == "create":
                continue
            if r.type.startswith("random:") or r.type.startswith("aws:secretsmanager/secretV"):
                pytest.fail(f"{change.kind} {r.type} {r.name}: {change.properties}")
            if r.type.startswith("aws:secretsmanager/"):
                # Its value is in its versions (above); tags and settings update in place.
                assert change.kind == "update", change


@pytest.mark.parametrize(("stack", "target"), MOVES)
def test_the_database_moves_in_place(stack: str, target: str) -> None:
    for state in states(move(stack, target)):
        params = state.one(DB_PARAMETER_GROUP)
        classes = {r.get("instanceClass") for r in state.of_type(DB_INSTANCE)}
        assert not any(c in params.get("description") for c in classes), params.get("description")
        primary = state.one(DB_INSTANCE, "database-primary")
        # RDS picks the zones of a Multi-AZ primary; the state keeps the one it was made in.
        assert primary.get("multiAz") is (primary.get("availabilityZone") is None)
    for up in move(stack, target).ups:
        kinds = {c.resource.name: c.kind for c in up.diff.changes if c.resource.type == DB_INSTANCE}
        assert set(kinds.values()) <= {"update", "create"}, kinds


@pytest.mark.parametrize(("stack", "target"), MOVES)
def test_nodes_roll_without_dropping_the_api(stack: str, target: str) -> None:
    for state in states(move(stack, target))[1:]:
        budgets = {r.get("metadata.name") for r in state.of_type(PDB)}
        deployments = {r.get("metadata.name") for r in state.of_type(DEPLOYMENT)}
        assert deployments <= budgets, deployments - budgets
        api = state.one(HPA, "workloads-api-hpa")
        assert api.get("spec.minReplicas") >= 2


def queue_settings(run: StackRun) -> dict[str, str]:
    return run.one(CONFIG_MAP, "workloads-config").get("data")


@pytest.mark.parametrize(("stack", "target"), MOVES)
def test_events_accepted_before_the_move_to_sqs_are_drained(stack: str, target: str) -> None:
    m = move(stack, target)
    for state in states(m):
        data = queue_settings(state)
        if data["QUEUE_BACKEND"] == "sqs":
            # The worker keeps draining the PostgreSQL table queue beside SQS.
            assert data.get("QUEUE_DRAIN_POSTGRES") == "true", data
        else:
            assert "QUEUE_DRAIN_POSTGRES" not in data


def internet_entries(run: StackRun) -> list[str]:
    """Load balancers the internet reaches directly, and whether a WAF guards each."""
    open_rules = [r for r in run.of_type(SG_INGRESS) if r.get("cidrIpv4") == "0.0.0.0/0"]
    alb_groups = {sg for lb in run.of_type(LOAD_BALANCER) for sg in lb.get("securityGroups", [])}
    return [r.name for r in open_rules if r.get("securityGroupId") in alb_groups]


@pytest.mark.parametrize(("stack", "target"), MOVES)
def test_traffic_always_has_a_way_in_behind_a_waf(stack: str, target: str) -> None:
    m = move(stack, target)
    for state in states(m):
        if internet_entries(state):
            assert state.of_type(WEB_ACL_ASSOCIATION), "the load balancer is open without a WAF"
        for distribution in state.of_type(DISTRIBUTION):
            assert distribution.get("webAclId"), "CloudFront without a WAF"
    if len(m.ups) == 2:
        # The first up keeps the clients' way in (and its WAF) while CloudFront comes up.
        first = m.ups[0]
        assert not first.diff.of_kind("delete"), [
            c.resource.name for c in first.diff.changes if c.kind == "delete"
        ]
        assert internet_entries(first.run) and first.run.of_type(DISTRIBUTION)
        listener = first.run.one("aws:lb/listener:Listener", "workloads-alb-https")
        assert listener.get("defaultActions")[0]["type"] == "forward"
        assert not internet_entries(m.ups[1].run)


def test_the_edge_takes_two_ups_only_where_cloudfront_comes_in() -> None:
    pairs = list(itertools.pairwise(TIER_ORDER))
    two = [t for s, t in pairs if len(growth.phases(s, t)) == 2]
    assert two == [t for s, t in pairs if TIERS[t].edge.enabled and not TIERS[s].edge.enabled]
    assert two == ["tier3"]
