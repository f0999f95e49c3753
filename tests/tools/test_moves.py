"""A move as an operator makes it: the stack file with ``tier:`` changed and the keys the
higher tier requires, for every stack file that can move up."""

from __future__ import annotations

import pytest

from tools.harness import run_stack
from tools.moves import adjacent_moves, moved_config, next_tier, stack_config, tier_of


def test_every_stack_file_below_the_top_tier_has_its_next_move() -> None:
    assert adjacent_moves() == [
        ("dev", "tier1"),
        ("tier1", "tier2"),
        ("tier2", "tier3"),
        ("tier3", "tier4"),
    ]
    assert next_tier("tier4") is None and tier_of("global") is None


def test_a_move_adds_only_the_keys_the_higher_tiers_require_and_the_file_lacks() -> None:
    assert moved_config("tier1", "tier2") == {"tier": "tier2"}
    # Leaving dev: HTTPS needs the API's name and its zone.
    assert moved_config("dev", "tier1") == {
        "tier": "tier1",
        "apiDomainName": "api.dev.ssp.example.org",
        "hostedZoneId": "Z5B669DD3286DFE3E07",
    }
    # tier3's edge name and backups in another region; the tier3 file has its own.
    assert moved_config("tier2", "tier3") == {
        "tier": "tier3",
        "edgeDomainName": "tier2.ssp.example.org",
        "dbBackupRegion": "us-west-2",
    }
    assert "dbBackupRegion" in stack_config("tier3")
    assert moved_config("tier3", "tier4") == {"tier": "tier4"}  # it has them already


@pytest.mark.parametrize(
    ("stack", "tier", "problem"),
    [
        ("tier2", "tier1", "tier2 is on tier2: tier1 is not a move up"),
        ("tier2", "tier2", "not a move up"),
        ("tier1", "tier3", "tier1 is on tier1: a stack moves one tier at a time; move to tier2"),
        ("tier1", "tier9", "unknown tier 'tier9'"),
        ("global", "tier4", "global: picks no tier"),
    ],
)
def test_a_move_down_sideways_two_up_or_nowhere_is_refused(
    stack: str, tier: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        moved_config(stack, tier)


@pytest.mark.parametrize(("stack", "tier"), adjacent_moves())
def test_every_move_evaluates_at_the_higher_tier(stack: str, tier: str) -> None:
    run = run_stack(stack, moved_config(stack, tier))
    assert run.config["student-success:tier"] == tier
    assert run.count("kubernetes:apps/v1:Deployment") >= 2  # the API and the worker
