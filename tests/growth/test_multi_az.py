"""Multi-AZ in place: the primary converted on its own (an override on the lower tier) before
the move, so that the move's class change costs one failover instead of a restart."""

from __future__ import annotations

from tests.shared import DB_INSTANCE
from tools import grow, growth
from tools.diff import StackDiff, diff_resources, render
from tools.harness import run_stack

MULTI_AZ_FIRST = {"overrides": ["db.replica_count=2", "db.multi_az=true"]}
"""Pulumi.tier2.yaml's overrides, and the conversion."""


def test_converting_to_multi_az_updates_the_primary_and_keeps_its_zone_in_state() -> None:
    before, after = run_stack("tier2"), run_stack("tier2", MULTI_AZ_FIRST)
    assert before.one(DB_INSTANCE, "database-primary").get("availabilityZone") == "us-east-1a"
    assert after.one(DB_INSTANCE, "database-primary").get("availabilityZone") is None
    changes = diff_resources(before.resources, after.resources)
    [primary] = [c for c in changes if c.resource.name == "database-primary"]
    # The provider keeps an Optional+Computed input the program stops setting: no replacement.
    assert primary.kind == "update"
    assert [p.path for p in primary.properties] == ["multiAz"]
    assert [c.resource.name for c in changes if c.kind in ("replace", "delete")] == []
    text, refused = render(StackDiff("tier2", changes, 0, 0), "tier2")
    assert not refused, text


def test_after_multi_az_the_move_costs_one_failover() -> None:
    move = growth.evaluate_move("tier2", "tier3", MULTI_AZ_FIRST)
    assert growth.unsafe(move) == []
    [primary] = [
        s for s in grow.steps(move) if s.what.startswith("database-primary: instance class")
    ]
    assert primary.interruption == grow.FAILOVER
    assert not [s for s in grow.steps(move) if "converted to Multi-AZ" in s.what]
