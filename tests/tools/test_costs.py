"""The cost estimate prices what the program registers."""

from __future__ import annotations

import pytest

from tests.shared import StackRunner
from tools import costs
from tools.harness import run_stack


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


def test_every_instance_type_the_spec_accepts_has_a_price() -> None:
    from components.config.capacity import (
        CACHE_NODE_TYPES,
        DB_INSTANCE_MEMORY_MIB,
        SAGEMAKER_INSTANCE_VCPUS,
    )

    assert set(SAGEMAKER_INSTANCE_VCPUS) <= set(costs.SAGEMAKER_HOURLY)
    assert set(DB_INSTANCE_MEMORY_MIB) <= set(costs.RDS_HOURLY) & set(costs.DB_INSTANCE_VCPUS)
    assert set(CACHE_NODE_TYPES) <= set(costs.ELASTICACHE_HOURLY)


def test_sagemaker_c5_2xlarge_is_priced() -> None:
    run = run_stack("tier3", {"overrides": ["inference.instance_type=ml.c5.2xlarge"]})
    [item] = [i for i in costs.estimate(run.resources) if i.what.startswith("SageMaker")]
    assert item.known and item.what.endswith("x ml.c5.2xlarge")
    count = int(item.what.split()[1])
    assert item.monthly_usd == pytest.approx(costs.SAGEMAKER_HOURLY["ml.c5.2xlarge"] * 730 * count)


def test_a_node_type_missing_from_the_price_table_is_shown_unpriced() -> None:
    run = run_stack("tier1", {"overrides": ["node_groups.app.instance_types=x9z.mega"]})
    items = costs.estimate(run.resources)
    [unpriced] = [i for i in items if "x9z.mega" in i.what]
    assert not unpriced.known and unpriced.monthly_usd == 0.0
    assert costs.UNKNOWN in unpriced.what
    assert costs.total(items) == sum(i.monthly_usd for i in items if i.known)
