"""A stack moves up one tier at a time and never down in place; CloudFront comes in over two
ups. The program reads the tier its last up deployed (its own outputs) and refuses the rest,
with what to do instead."""

from __future__ import annotations

import pytest

from components.config.catalog import TIERS
from components.config.spec import SpecError, build_spec
from components.config.spec_growth import move_problems
from tools import moves
from tools.harness import run_stack


def test_a_new_stack_or_the_same_tier_is_no_move() -> None:
    assert move_problems({}, TIERS["tier4"], "cdn-only") == []
    assert move_problems({"tier": "tier3"}, TIERS["tier3"], "cdn-only") == []


def test_the_next_tier_is_a_move() -> None:
    assert move_problems({"tier": "tier1"}, TIERS["tier2"], "cdn-only") == []
    assert move_problems({"tier": "tier3", "cdn_url": "x"}, TIERS["tier4"], "cdn-only") == []


def test_moving_down_is_refused_with_what_to_do_instead() -> None:
    [problem] = move_problems({"tier": "tier2"}, TIERS["tier1"], "cdn-only")
    assert "tier=tier1: below the deployed tier2" in problem
    assert "does not move down in place" in problem and "overrides" in problem
    assert "new stack at tier1" in problem and "Moving down" in problem


def test_skipping_a_tier_is_refused() -> None:
    [problem] = move_problems({"tier": "tier1"}, TIERS["tier3"], "both")
    assert "one tier at a time (tier2 first)" in problem


def test_cloudfront_comes_in_over_two_ups() -> None:
    [problem] = move_problems({"tier": "tier2"}, TIERS["tier3"], "cdn-only")
    assert "set edgePhase: both for this up" in problem
    assert move_problems({"tier": "tier2"}, TIERS["tier3"], "both") == []


def spec(**config: object) -> object:
    return build_spec(config, stack="s", region="us-east-1")


def test_edge_phase_is_validated() -> None:
    with pytest.raises(SpecError, match="edgePhase='sideways': allowed both, cdn-only"):
        spec(tier="dev", edgePhase="sideways")
    with pytest.raises(SpecError, match="edgePhase=both: tier dev has no CloudFront"):
        spec(tier="dev", edgePhase="both")


def test_the_program_refuses_a_move_down_from_its_deployed_tier() -> None:
    deployed = run_stack("tier1").outputs
    assert deployed["tier"] == "tier1"
    with pytest.raises(SpecError, match="below the deployed tier1"):
        run_stack("tier1", {"tier": "dev"}, deployed=deployed)


def test_the_program_refuses_cloudfront_in_one_up() -> None:
    deployed = run_stack("tier2").outputs
    config = moves.config_at("tier2", "tier3")
    with pytest.raises(SpecError, match="set edgePhase: both"):
        run_stack("tier2", config, deployed=deployed)
