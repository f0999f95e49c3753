"""Every move to the next tier is safe by construction, for every stack file and every
adjacent pair on its way up: the program evaluated at both tiers, the reviewer's diff between
them (in process) replaces or deletes nothing that holds data, only what the move list allows
with its reason, and exits 0; secrets and API keys stay; the database moves in place; nodes
roll under PodDisruptionBudgets; the events queue is drained; traffic always has a way in
behind a WAF."""

from __future__ import annotations

import itertools

import pytest

from components.config.catalog import TIERS
from components.config.spec_growth import TIER_ORDER
from tests.shared import DB_INSTANCE, K8S_SECRET, STACKS
from tools import grow, growth
from tools.diff import render

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


@pytest.mark.parametrize("check", sorted(growth.CHECKS))
@pytest.mark.parametrize(("stack", "target"), MOVES)
def test_a_move_keeps_what_it_must(stack: str, target: str, check: str) -> None:
    found = growth.CHECKS[check](move(stack, target))
    assert not found, f"{stack} -> {target}:\n" + "\n".join(found)


@pytest.mark.parametrize(("stack", "target"), MOVES)
def test_the_api_key_pepper_and_the_passwords_are_the_same_after_the_move(
    stack: str, target: str
) -> None:
    # The reviewer's diff once listed API_KEY_PEPPER as changed: the Secret's other keys
    # changed, and the whole secret was compared. The generated values stay (their
    # RandomPasswords are not replaced), and each leaf is compared on its own.
    m = move(stack, target)
    before = m.before.one(K8S_SECRET, "workloads-secret").get("stringData.API_KEY_PEPPER")
    for up in m.ups:
        assert up.run.one(K8S_SECRET, "workloads-secret").get("stringData.API_KEY_PEPPER") == (
            before
        )
        shown = [p.path for c in up.diff.changes for p in c.properties]
        assert not [p for p in shown if "PEPPER" in p or "PASSWORD" in p], shown
        randoms = [c for c in up.diff.changes if c.resource.type.startswith("random:")]
        assert [c for c in randoms if c.kind != "create"] == []


@pytest.mark.parametrize(("stack", "target"), MOVES)
def test_the_primary_database_is_updated_never_replaced(stack: str, target: str) -> None:
    for up in move(stack, target).ups:
        kinds = {c.resource.name: c.kind for c in up.diff.changes if c.resource.type == DB_INSTANCE}
        assert kinds.get("database-primary", "update") == "update", kinds


def test_the_edge_takes_two_ups_only_where_cloudfront_comes_in() -> None:
    pairs = list(itertools.pairwise(TIER_ORDER))
    two = [t for s, t in pairs if len(growth.phases(s, t)) == 2]
    assert two == [t for s, t in pairs if TIERS[t].edge.enabled and not TIERS[s].edge.enabled]
    assert two == ["tier3"]
    first, second = move("tier2", "tier3").ups
    assert first.config["edgePhase"] == "both" and second.config["edgePhase"] == "cdn-only"
    assert growth.internet_entries(first.run) and not growth.internet_entries(second.run)
    # The phase is in the stack file and in the reviewer's diff of each up.
    text, safe = grow.report(move("tier2", "tier3"))
    assert safe
    assert "## up 1 of 2: set tier: tier3, " in text and "edgePhase: both in Pulumi.tier2" in text
    assert "# plan diff of stack tier2: tier2 at tier2 -> tier3 (edgePhase: both)" in text
    assert "# plan diff of stack tier2: tier2 at up 1 -> tier3 (edgePhase: cdn-only)" in text
