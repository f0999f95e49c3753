"""The cost estimate prices what the program registers."""

from __future__ import annotations

from tests.shared import StackRunner
from tools import costs


def test_multi_az_doubles_the_instance(stack_run: StackRunner) -> None:
    items = costs.estimate(stack_run("tier3").resources)
    primary = [i for i in items if i.what.startswith("RDS primary")]
    if primary:
        assert "Multi-AZ" in primary[0].what
        assert primary[0].monthly_usd == costs.RDS_HOURLY["db.r6g.2xlarge"] * 730 * 2


def test_nat_gateways_are_priced_per_gateway(stack_run: StackRunner) -> None:
    dev = [i for i in costs.estimate(stack_run("dev").resources) if i.what == "NAT gateway"]
    tier3 = [i for i in costs.estimate(stack_run("tier3").resources) if i.what == "NAT gateway"]
    assert len(dev) == 1 and len(tier3) == 3
    assert dev[0].monthly_usd == costs.NAT_GATEWAY_HOUR * 730


def test_bigger_tiers_cost_more(stack_run: StackRunner) -> None:
    totals = [
        costs.total(costs.estimate(stack_run(s).resources))
        for s in ("dev", "tier1", "tier2", "tier3")
    ]
    assert totals == sorted(totals)
