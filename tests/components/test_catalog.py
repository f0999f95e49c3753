"""The tier catalog's rows and the pure functions derived from them: Postgres memory
settings, pod pools and the connection capacity check."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from components.config import capacity
from components.config.capacity import (
    DB_INSTANCE_MEMORY_MIB,
    RESERVED_DB_CONNECTIONS,
    ConnectionCapacity,
    connection_capacity,
    pg_memory_settings,
    pod_pool,
    sagemaker_max_rps_per_instance,
)
from components.config.catalog import TIERS
from components.config.overrides import with_overrides
from components.config.tier import InferenceSize
from tools.costs import DB_INSTANCE_VCPUS


def test_every_tier_of_the_design_is_a_row() -> None:
    assert list(TIERS) == ["dev", "tier1", "tier2", "tier3", "tier4"]
    assert all(name == tier.name for name, tier in TIERS.items())


def test_tiers_grow_monotonically() -> None:
    rows = list(TIERS.values())
    for smaller, larger in itertools.pairwise(rows):
        assert larger.expected_students > smaller.expected_students
        assert (
            DB_INSTANCE_MEMORY_MIB[larger.db.instance_class]
            >= DB_INSTANCE_MEMORY_MIB[smaller.db.instance_class]
        )
        assert larger.api.max_replicas >= smaller.api.max_replicas
        assert larger.db.max_connections >= smaller.db.max_connections


def test_memory_table_and_vcpu_table_agree() -> None:
    assert set(DB_INSTANCE_MEMORY_MIB) == set(DB_INSTANCE_VCPUS)


def test_tier1_postgres_settings_are_a_4_gib_servers() -> None:
    # The tier-1 server of the district scaling guide: shared_buffers 512MB,
    # effective_cache_size 2GB, work_mem 16MB, maintenance_work_mem 256MB, max_connections 50.
    tier1 = TIERS["tier1"]
    settings = pg_memory_settings(tier1.db.instance_class, tier1.db.max_connections)
    assert settings.shared_buffers_mib == 512
    assert settings.effective_cache_size_mib == 2048
    assert settings.work_mem_mib == 16
    assert settings.maintenance_work_mem_mib == 256
    assert tier1.db.max_connections == 50


def test_tier2_postgres_settings_follow_the_seed_where_safe() -> None:
    tier2 = TIERS["tier2"]
    settings = pg_memory_settings(tier2.db.instance_class, tier2.db.max_connections)
    assert (settings.shared_buffers_mib, settings.effective_cache_size_mib) == (2048, 8192)
    assert settings.maintenance_work_mem_mib == 1024
    # 200 connections x 16 MiB stays within a quarter of the 16 GiB instance.
    assert settings.work_mem_mib * tier2.db.max_connections <= 16 * 1024 // 4


@pytest.mark.parametrize(
    ("instance_class", "connections", "work_mem"),
    [
        ("db.t4g.micro", 40, 4),
        ("db.t4g.micro", 200, 4),  # a quarter of 1 GiB over 200 is 1.3 MiB: the 4 MiB floor
        ("db.r6g.2xlarge", 500, 32),
        ("db.r6g.8xlarge", 100, 64),
    ],
)
def test_work_mem_is_bounded_and_a_power_of_two(
    instance_class: str, connections: int, work_mem: int
) -> None:
    settings = pg_memory_settings(instance_class, connections)
    assert settings.work_mem_mib == work_mem
    assert settings.work_mem_mib & (settings.work_mem_mib - 1) == 0


def test_maintenance_work_mem_is_capped_at_2_gib() -> None:
    assert pg_memory_settings("db.r6g.8xlarge", 1000).maintenance_work_mem_mib == 2048


def test_pod_pool_divides_the_tier_pool_over_the_hpa_maximum() -> None:
    # 15 + 25 for the whole app (overflow 16 here, room for the event workers and the
    # on-demand Jobs), HPA up to 4 pods
    tier1 = TIERS["tier1"]
    assert pod_pool(tier1.api) == (3, 4)
    assert pod_pool(TIERS["tier3"].api) == (2, 5)  # 50 + 100 for the whole app, over 20 pods


def test_every_tier_fits_its_connection_budget() -> None:
    for tier in TIERS.values():
        assert connection_capacity(tier).problems() == [], tier.name


def test_training_shards_cover_the_tiers_expected_schools() -> None:
    # N = ceil(expected schools / schools per shard); tier4 is sized for 10,000 schools.
    shards = {name: t.training.shards(t.expected_schools) for name, t in TIERS.items()}
    assert shards == {"dev": 1, "tier1": 1, "tier2": 1, "tier3": 2, "tier4": 40}
    size = TIERS["tier4"].training
    assert [size.shards(n) for n in (0, 1, 250, 251, 10_000)] == [1, 1, 1, 2, 40]


def test_capacity_counts_every_training_shards_connections() -> None:
    tier = TIERS["tier4"]
    shards = tier.training.shards(tier.expected_schools)
    assert connection_capacity(tier).trainer == tier.training.db_connections * shards == 80


def test_capacity_without_proxy_reserves_superuser_connections() -> None:
    capacity = connection_capacity(TIERS["tier1"])
    assert capacity.budget == 50 - RESERVED_DB_CONNECTIONS
    # The API at its maximum, the trainer, the archive job, two event workers of one
    # connection each and the three on-demand Jobs of one each.
    assert capacity.demand == (3 + 4) * 4 + 2 + 2 + 2 + 3


def test_each_on_demand_job_counts_with_every_connection_it_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert connection_capacity(TIERS["tier1"]).on_demand == 3
    # Were each of the three Jobs to hold two connections, the budget would count six.
    monkeypatch.setattr(capacity, "ON_DEMAND_JOB_CONNECTIONS", 2)
    assert connection_capacity(TIERS["tier1"]).on_demand == 6


def test_capacity_through_the_proxy_uses_its_share() -> None:
    capacity = connection_capacity(TIERS["tier3"])
    assert capacity.via_proxy
    assert capacity.budget == 500 * 75 // 100


def test_capacity_problem_shows_the_arithmetic() -> None:
    tier = with_overrides(TIERS["tier1"], "api.pool_max_overflow=200")
    (problem,) = connection_capacity(tier).problems()
    assert (
        "(3 pool + 50 overflow) x 4 pods + 2 trainer + 2 archiver + 2 workers + 3 on-demand "
        "Jobs = 221 > max_connections 50 - 10 reserved = 40" in problem
    )


def test_capacity_flags_a_proxy_that_leaves_no_reserve() -> None:
    tier = with_overrides(TIERS["tier2"], "db.proxy_max_connections_percent=99")
    problems = connection_capacity(tier).problems()
    assert any("leaving fewer than the 10 reserved" in p for p in problems)


def test_capacity_flags_replicas_that_cannot_take_the_read_pools() -> None:
    tier = with_overrides(
        TIERS["tier2"], "db.max_connections=40", "db.proxy_max_connections_percent=50"
    )
    problems = connection_capacity(tier).problems()
    assert any("per replica" in p for p in problems)


def test_capacity_without_proxy_spells_out_the_arithmetic() -> None:
    tier = with_overrides(TIERS["tier1"], "api.pool_max_overflow=200")
    cap = connection_capacity(tier)
    assert not cap.via_proxy
    assert cap.demand == (3 + 50) * 4 + 2 + 2 + 2 + 3
    assert cap.budget == 50 - 10
    (problem,) = cap.problems()
    assert (
        "(3 pool + 50 overflow) x 4 pods + 2 trainer + 2 archiver + 2 workers + 3 on-demand "
        "Jobs = 221" in problem
    )
    assert "max_connections 50 - 10 reserved = 40" in problem
    assert connection_capacity(TIERS["tier1"]).problems() == []


def test_capacity_through_proxy_uses_its_share_of_max_connections() -> None:
    assert connection_capacity(TIERS["tier3"]).problems() == []
    squeezed = with_overrides(TIERS["tier3"], "db.proxy_max_connections_percent=20")
    cap = connection_capacity(squeezed)
    assert cap.via_proxy and cap.budget == 500 * 20 // 100
    problems = cap.problems()
    assert any(
        "(2 pool + 5 overflow) x 20 pods + 4 trainer + 2 archiver + 20 workers + 3 on-demand "
        "Jobs = 169 > 20% of "
        "max_connections 500 "
        "through the proxy = 100" in p
        for p in problems
    ), problems
    greedy = connection_capacity(
        with_overrides(TIERS["tier3"], "db.proxy_max_connections_percent=100")
    )
    assert any("leaving fewer than the 10 reserved" in p for p in greedy.problems())


def _capacity(**changes: Any) -> ConnectionCapacity:
    """A budget that fits exactly: the API's 50 connections (5 x 10 pods), the trainer's 2, the
    archive job's 2, the workers' 3 and the on-demand Jobs' 3 are 60 = max_connections 70 - 10
    reserved; the read pools, 50, over two replicas are 25 each = 35 - 10 reserved."""
    values: dict[str, Any] = {
        "pool_per_pod": 2,
        "overflow_per_pod": 3,
        "max_pods": 10,
        "trainer": 2,
        "archiver": 2,
        "workers": 3,
        "on_demand": 3,
        "max_connections": 70,
        "reserved": 10,
        "via_proxy": False,
        "proxy_percent": 90,
        "replicas": 2,
    }
    return ConnectionCapacity(**{**values, **changes})


def test_a_budget_used_to_its_last_connection_fits() -> None:
    capacity = _capacity()
    assert (capacity.demand, capacity.budget) == (60, 60)
    assert capacity.problems() == []


def test_one_connection_over_the_budget_is_reported_with_the_arithmetic() -> None:
    [problem] = _capacity(workers=4).problems()
    assert problem == (
        "connection capacity: (2 pool + 3 overflow) x 10 pods + 2 trainer + 2 archiver + 4 "
        "workers + 3 on-demand Jobs = 61 > max_connections 70 - 10 reserved = 60; lower "
        "api.pool_size/api.pool_max_overflow or "
        "api.max_replicas, or raise db.max_connections"
    )


def _replica_problems(capacity: ConnectionCapacity) -> list[str]:
    # Replicas share the primary's max_connections, so a replica short of connections comes
    # with a primary short of them too: only the replicas' problem is looked at here.
    return [p for p in capacity.problems() if "per replica" in p]


def test_the_read_pools_are_shared_by_every_replica_up_to_each_ones_reserve() -> None:
    # Two replicas each take 25 of the 50 read connections: 35 - 10 reserved fits exactly.
    assert _capacity(max_connections=35).reader_demand_per_replica == 25
    assert _replica_problems(_capacity(max_connections=35)) == []
    # Three replicas: 50 / 3, rounded up.
    assert _capacity(replicas=3).reader_demand_per_replica == 17
    assert _replica_problems(_capacity(max_connections=27, replicas=3)) == []
    assert _capacity(replicas=0).reader_demand_per_replica == 0


def test_a_replica_one_connection_short_of_its_share_of_the_read_pools_is_reported() -> None:
    assert _replica_problems(_capacity(max_connections=34)) == [
        "connection capacity: (2 pool + 3 overflow) x 10 pods read pools over 2 replicas = 25 "
        "per replica > max_connections 34 - 10 reserved = 24; add replicas"
    ]
    assert len(_replica_problems(_capacity(max_connections=26, replicas=3))) == 1


def test_a_proxy_may_take_all_but_the_reserve_and_not_one_connection_more() -> None:
    assert _capacity(via_proxy=True, max_connections=100, proxy_percent=90).problems() == []
    [problem] = _capacity(via_proxy=True, max_connections=100, proxy_percent=91).problems()
    assert problem == (
        "connection capacity: the proxy may take 91% of max_connections 100, leaving fewer "
        "than the 10 reserved for superusers and operators; lower "
        "db.proxy_max_connections_percent"
    )
    # 330 x 3 % is 9.9 connections: 9 whole ones, one short of the reserve.
    [short] = _capacity(via_proxy=True, max_connections=330, proxy_percent=97).problems()
    assert "leaving fewer than the 10 reserved" in short
    # Through the proxy the budget is its share, not max_connections less the reserve.
    assert _capacity(via_proxy=True, max_connections=100, proxy_percent=55).budget == 55


def test_a_sagemaker_instance_is_planned_at_60_percent_of_its_vcpus_at_460_us_a_request() -> None:
    planned = sagemaker_max_rps_per_instance(InferenceSize(instance_type="ml.c5.xlarge"))
    assert planned == pytest.approx(4 * 0.6 / 460e-6)  # 5,217 requests/s


def test_a_measured_sagemaker_capacity_replaces_the_model() -> None:
    measured = InferenceSize(instance_type="ml.c5.xlarge", measured_max_rps=900)
    assert sagemaker_max_rps_per_instance(measured) == 900.0


def test_a_pod_gets_at_least_one_pooled_connection_and_never_a_negative_overflow() -> None:
    tier = with_overrides(TIERS["dev"], "api.pool_size=1", "api.pool_max_overflow=1")
    assert tier.api.max_replicas == 2
    assert pod_pool(tier.api) == (1, 0)
    negative = with_overrides(TIERS["dev"], "api.pool_max_overflow=-2")
    assert pod_pool(negative.api)[1] == 0


def test_memory_settings_are_whole_mebibytes_and_fixed_once_computed() -> None:
    # RDS takes the parameters as whole numbers in their units.
    for instance_class in ("db.t4g.micro", "db.r6g.xlarge"):
        whole = dataclasses.astuple(pg_memory_settings(instance_class, 500))
        assert all(type(v) is int for v in whole), (instance_class, whole)
    assert type(connection_capacity(TIERS["tier3"]).budget) is int  # through the proxy
    settings = pg_memory_settings("db.r6g.xlarge", 500)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.work_mem_mib = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        connection_capacity(TIERS["tier1"]).replicas = 9  # type: ignore[misc]


def test_archived_audit_months_are_destroyed_only_after_their_object_lock() -> None:
    # S3 refuses to delete a locked version: a retention shorter than the lock would fail
    # every night instead of destroying anything.
    for tier in TIERS.values():
        years = tier.retention.audit_archive_years
        if years is not None:
            assert years * 365 >= tier.audit_lock.days, tier.name
        assert (tier.retention.student_years is None) == (tier.name == "dev"), tier.name
