"""The tier catalog: one row of sizes per school-district tier, and the pure functions
that derive everything computable from a row.

Rows are data, not code branches: a stack picks a tier and may override single values
(see ``components.spec``). Numbers come from the scaling guides the product grew from;
where a guide's number was sized for a single server, the comment says how it is
translated to a horizontally scaled deployment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

GIB = 1024  # MiB per GiB

# Memory (MiB) of every instance class a tier may use. PostgreSQL settings are derived
# from it, and the spec rejects any class that is not listed here.
DB_INSTANCE_MEMORY_MIB: dict[str, int] = {
    "db.t4g.micro": 1 * GIB,
    "db.t4g.small": 2 * GIB,
    "db.t4g.medium": 4 * GIB,
    "db.t4g.large": 8 * GIB,
    "db.m6g.large": 8 * GIB,
    "db.m6g.xlarge": 16 * GIB,
    "db.m6g.2xlarge": 32 * GIB,
    "db.r6g.large": 16 * GIB,
    "db.r6g.xlarge": 32 * GIB,
    "db.r6g.2xlarge": 64 * GIB,
    "db.r6g.4xlarge": 128 * GIB,
    "db.r6g.8xlarge": 256 * GIB,
}

# vCPUs per DB instance class: RDS Proxy is billed per vCPU of the instances behind it.
DB_INSTANCE_VCPUS: dict[str, int] = {
    "db.t4g.micro": 2,
    "db.t4g.small": 2,
    "db.t4g.medium": 2,
    "db.t4g.large": 2,
    "db.m6g.large": 2,
    "db.m6g.xlarge": 4,
    "db.m6g.2xlarge": 8,
    "db.r6g.large": 2,
    "db.r6g.xlarge": 4,
    "db.r6g.2xlarge": 8,
    "db.r6g.4xlarge": 16,
    "db.r6g.8xlarge": 32,
}

# vCPUs per SageMaker hosting instance type: the image runs one API worker per vCPU there.
SAGEMAKER_INSTANCE_VCPUS: dict[str, int] = {
    "ml.c5.large": 2,
    "ml.c5.xlarge": 4,
    "ml.c5.2xlarge": 8,
    "ml.c6i.large": 2,
    "ml.c6i.xlarge": 4,
    "ml.c6i.2xlarge": 8,
    "ml.m5.large": 2,
    "ml.m5.xlarge": 4,
    "ml.m5.2xlarge": 8,
}

# Burstable classes cannot run Performance Insights beyond the free tier or enhanced
# features reliably; they are fine for dev and small districts only.
BURSTABLE_DB_CLASSES = frozenset(c for c in DB_INSTANCE_MEMORY_MIB if c.startswith("db.t"))

CACHE_NODE_TYPES = frozenset(
    {
        "cache.t4g.micro",
        "cache.t4g.small",
        "cache.t4g.medium",
        "cache.m7g.large",
        "cache.r7g.large",
        "cache.r7g.xlarge",
        "cache.r7g.2xlarge",
    }
)

NatMode = Literal["single", "per_az"]
CapacityType = Literal["ON_DEMAND", "SPOT"]

# Connections PostgreSQL keeps out of the application's reach: superuser_reserved_connections
# (3) and rds.rds_superuser_reserved_connections (2), plus headroom for migrations, psql
# sessions of an operator and the monitoring agent (seed 004: "set max_connections > total").
RESERVED_DB_CONNECTIONS = 10


@dataclass(frozen=True)
class NodeGroupSize:
    """One EKS managed node group of a tier."""

    name: str
    """Role of the group: ``system`` (cluster add-ons), ``app`` (the API) or ``training``."""
    instance_types: tuple[str, ...]
    min_size: int
    max_size: int
    desired_size: int
    capacity_type: CapacityType = "ON_DEMAND"
    disk_gib: int = 50
    dedicated: bool = False
    """Tainted so that only pods tolerating ``workload=<name>:NoSchedule`` land there."""


@dataclass(frozen=True)
class Tier:
    """Every size the components need for one tier. Field names are the override keys."""

    name: str
    description: str
    # Who it is for (seed 000's tier table).
    expected_students: int
    expected_schools: int
    # Network.
    az_count: int
    nat_mode: NatMode
    # PostgreSQL (RDS).
    db_instance_class: str
    db_storage_gib: int
    db_max_storage_gib: int
    db_multi_az: bool
    db_replica_count: int
    db_max_replica_count: int
    """The most read replicas this tier allows; the spec rejects a larger override."""
    db_max_connections: int
    db_proxy: bool
    db_proxy_max_connections_percent: int
    db_backup_retention_days: int
    deletion_protection: bool
    """Deletion protection, final snapshots and Pulumi ``protect`` on stateful resources."""
    # Application pool. The seeds size the pool for the whole application tier on one
    # server; per pod it is divided by the API's maximum replica count (see pod_pool()).
    app_pool_size: int
    app_pool_max_overflow: int
    trainer_db_connections: int
    # Redis (ElastiCache).
    cache_enabled: bool
    cache_node_type: str
    cache_num_nodes: int
    cache_snapshot_retention_days: int
    """Daily Redis snapshots kept (0 turns snapshots off)."""
    # EKS.
    node_groups: tuple[NodeGroupSize, ...]
    # The prediction API on Kubernetes.
    api_min_replicas: int
    api_max_replicas: int
    api_cpu_target_percent: int
    api_memory_target_percent: int
    api_cpu_request: str
    api_memory_request: str
    api_cpu_limit: str
    api_memory_limit: str
    # Edge (CloudFront + WAF).
    edge_enabled: bool
    edge_price_class: str
    waf_api_rate_limit: int
    """Requests per IP per ``waf_window_seconds`` on API paths (seed 003, translated)."""
    waf_auth_rate_limit: int
    waf_window_seconds: int
    # Inference (SageMaker).
    sagemaker_enabled: bool
    sagemaker_instance_type: str
    sagemaker_min_instances: int
    sagemaker_max_instances: int
    sagemaker_data_capture_percent: int
    sagemaker_max_rps_per_vcpu: int
    """Sustained ``POST /invocations`` per second per vCPU of an instance (the app benchmark)."""
    # Observability.
    log_retention_days: int
    alarm_cpu_percent: int
    alarm_memory_percent: int
    alarm_latency_p95_ms: int
    alarm_error_rate_percent: float
    alarm_db_connections_percent: int
    alarm_replica_lag_seconds: int
    alarm_free_storage_percent: int
    alarm_model_latency_p95_ms: int


# Defaults shared by every row; a row states only what differs.
_COMMON: dict[str, object] = dict(
    db_proxy_max_connections_percent=75,
    trainer_db_connections=2,
    cache_node_type="cache.t4g.micro",
    cache_num_nodes=0,
    cache_snapshot_retention_days=7,
    api_cpu_target_percent=70,  # seed 000/004: scale up at CPU > 70 %
    api_memory_target_percent=80,  # seed 000/004: memory > 80 %
    edge_price_class="PriceClass_100",
    # Seed 003 limits 100 requests / 15 min per IP (5 on auth routes). WAF counts over
    # 60/120/300/600 s windows only, so we use the longest (600 s) and scale the limit:
    # 100 x 600/900 = 67. Auth: 5 x 600/900 = 3.3, below WAF's minimum limit of 10, so 10.
    waf_api_rate_limit=67,
    waf_auth_rate_limit=10,
    waf_window_seconds=600,
    sagemaker_instance_type="ml.m5.large",
    sagemaker_min_instances=1,
    sagemaker_max_instances=1,
    sagemaker_data_capture_percent=20,
    # POST /invocations saturated at ~4,700/s on 2 vCPUs with one worker per vCPU, the load
    # generator sharing the cores (BENCHMARKS.md, serving); rounded down per vCPU. Re-measure
    # on the endpoint with production payloads: SageMaker adds its own per-request overhead.
    sagemaker_max_rps_per_vcpu=2_000,
    alarm_cpu_percent=70,
    alarm_memory_percent=80,
    alarm_latency_p95_ms=200,  # seed 001/004: API p95 < 200 ms
    alarm_error_rate_percent=1.0,  # seed 004: error rate > 1 %
    alarm_db_connections_percent=80,  # seed 000/004: db_connections > 80 %
    alarm_replica_lag_seconds=30,
    alarm_free_storage_percent=10,
    alarm_model_latency_p95_ms=100,  # seed 001: prediction latency < 100 ms
)


def _row(**fields: object) -> Tier:
    return Tier(**{**_COMMON, **fields})  # type: ignore[arg-type]


def _node(
    name: str,
    types: tuple[str, ...],
    lo: int,
    hi: int,
    want: int,
    capacity_type: CapacityType = "ON_DEMAND",
    dedicated: bool = False,
) -> NodeGroupSize:
    return NodeGroupSize(
        name, types, lo, hi, want, capacity_type=capacity_type, dedicated=dedicated
    )


TIERS: dict[str, Tier] = {
    "dev": _row(
        name="dev",
        description="Smallest deployable copy for development: one NAT, one small database.",
        expected_students=50,
        expected_schools=1,
        az_count=2,  # EKS and RDS subnet groups both require two AZs
        nat_mode="single",
        db_instance_class="db.t4g.micro",
        db_storage_gib=20,
        db_max_storage_gib=50,
        db_multi_az=False,
        db_replica_count=0,
        db_max_replica_count=1,
        db_max_connections=40,
        db_proxy=False,
        db_backup_retention_days=1,
        deletion_protection=False,
        app_pool_size=4,
        app_pool_max_overflow=6,
        cache_enabled=False,
        node_groups=(_node("app", ("t3.large",), 1, 3, 2),),
        api_min_replicas=1,
        api_max_replicas=2,
        api_cpu_request="250m",
        api_memory_request="512Mi",
        api_cpu_limit="500m",
        api_memory_limit="1Gi",
        edge_enabled=False,
        sagemaker_enabled=False,
        log_retention_days=7,
    ),
    "tier1": _row(
        name="tier1",
        description="Small district: 100-1,000 students in 1-5 schools.",
        expected_students=1_000,
        expected_schools=5,
        az_count=2,
        nat_mode="single",
        # 4 GiB: seed 000's 512MB shared_buffers / 2GB effective_cache_size are exactly
        # the 1/8 and 1/2 of memory that pg_memory_settings() derives.
        db_instance_class="db.t4g.medium",
        db_storage_gib=100,
        db_max_storage_gib=500,
        db_multi_az=False,
        db_replica_count=0,
        db_max_replica_count=1,
        db_max_connections=50,
        db_proxy=False,
        db_backup_retention_days=7,
        deletion_protection=True,
        app_pool_size=15,
        app_pool_max_overflow=25,
        cache_enabled=False,
        node_groups=(
            _node("system", ("t3.medium",), 2, 3, 2),
            _node("app", ("m6i.large",), 2, 4, 2),
        ),
        api_min_replicas=2,
        api_max_replicas=4,
        api_cpu_request="250m",
        api_memory_request="512Mi",
        api_cpu_limit="1",
        api_memory_limit="1Gi",
        edge_enabled=False,
        sagemaker_enabled=False,
        log_retention_days=30,
    ),
    "tier2": _row(
        name="tier2",
        description="Medium district: 1,000-10,000 students; replicas and a pooling proxy.",
        expected_students=10_000,
        expected_schools=25,
        az_count=3,
        nat_mode="per_az",
        db_instance_class="db.m6g.xlarge",  # 16 GiB: seed 000's 2GB / 8GB settings
        db_storage_gib=500,
        db_max_storage_gib=1_000,
        db_multi_az=False,
        db_replica_count=1,
        db_max_replica_count=3,
        db_max_connections=200,
        db_proxy=True,  # seed 000: connection pooling (PgBouncer) from tier 2
        db_backup_retention_days=14,
        deletion_protection=True,
        app_pool_size=25,
        app_pool_max_overflow=50,
        cache_enabled=False,
        node_groups=(
            _node("system", ("t3.medium",), 2, 3, 2),
            _node("app", ("m6i.large",), 2, 8, 3),
        ),
        api_min_replicas=2,
        api_max_replicas=8,
        api_cpu_request="500m",
        api_memory_request="1Gi",
        api_cpu_limit="1",
        api_memory_limit="2Gi",
        edge_enabled=False,
        sagemaker_enabled=False,
        log_retention_days=90,
    ),
    "tier3": _row(
        name="tier3",
        description="Large district or state: 10,000-100,000 students; HA, cache, CDN, SageMaker.",
        expected_students=100_000,
        expected_schools=200,
        az_count=3,
        nat_mode="per_az",
        db_instance_class="db.r6g.2xlarge",  # 64 GiB, 8 vCPU
        db_storage_gib=1_000,
        db_max_storage_gib=4_000,
        db_multi_az=True,
        db_replica_count=2,
        db_max_replica_count=5,
        db_max_connections=500,
        db_proxy=True,
        db_backup_retention_days=35,
        deletion_protection=True,
        app_pool_size=50,
        app_pool_max_overflow=100,
        trainer_db_connections=4,
        cache_enabled=True,
        cache_node_type="cache.r7g.large",
        cache_num_nodes=3,
        node_groups=(
            _node("system", ("m6i.large",), 3, 4, 3),
            _node("app", ("m6i.2xlarge",), 3, 12, 3),
            _node(
                "training",
                ("c6i.2xlarge", "c6a.2xlarge"),
                0,
                4,
                0,
                capacity_type="SPOT",
                dedicated=True,
            ),
        ),
        api_min_replicas=2,
        api_max_replicas=20,  # seed 001: HPA 2-20
        api_cpu_request="1",  # seed 001: requests 1 CPU / 2Gi, limits 2 CPU / 4Gi
        api_memory_request="2Gi",
        api_cpu_limit="2",
        api_memory_limit="4Gi",
        edge_enabled=True,
        sagemaker_enabled=True,
        sagemaker_max_instances=4,
        log_retention_days=365,
    ),
    # Tier 4 is one stack per region ("sharding by region", seed 000): each regional stack
    # is a tier3 deployment scaled up, holding the districts of its region only.
    "tier4": _row(
        name="tier4",
        description="Enterprise/national: 100,000+ students; one such stack per region.",
        expected_students=500_000,
        expected_schools=1_000,
        az_count=3,
        nat_mode="per_az",
        db_instance_class="db.r6g.4xlarge",  # 128 GiB, 16 vCPU
        db_storage_gib=2_000,
        db_max_storage_gib=8_000,
        db_multi_az=True,
        db_replica_count=3,
        db_max_replica_count=5,
        db_max_connections=1_000,
        db_proxy=True,
        db_backup_retention_days=35,
        deletion_protection=True,
        app_pool_size=100,
        app_pool_max_overflow=200,
        trainer_db_connections=8,
        cache_enabled=True,
        cache_node_type="cache.r7g.xlarge",
        cache_num_nodes=3,
        node_groups=(
            _node("system", ("m6i.large",), 3, 6, 3),
            _node("app", ("m6i.2xlarge",), 4, 24, 6),
            _node(
                "training",
                ("c6i.4xlarge", "c6a.4xlarge"),
                0,
                8,
                0,
                capacity_type="SPOT",
                dedicated=True,
            ),
        ),
        api_min_replicas=4,
        api_max_replicas=40,
        api_cpu_request="1",
        api_memory_request="2Gi",
        api_cpu_limit="2",
        api_memory_limit="4Gi",
        edge_enabled=True,
        edge_price_class="PriceClass_All",
        sagemaker_enabled=True,
        sagemaker_instance_type="ml.c5.xlarge",
        sagemaker_min_instances=2,
        sagemaker_max_instances=8,
        log_retention_days=365,
    ),
}


def _floor_pow2(value: float) -> int:
    return 1 << max(0, math.floor(math.log2(value))) if value >= 1 else 1


@dataclass(frozen=True)
class PgMemorySettings:
    """PostgreSQL memory settings in MiB, before conversion to RDS's units."""

    shared_buffers_mib: int
    effective_cache_size_mib: int
    work_mem_mib: int
    maintenance_work_mem_mib: int


def pg_memory_settings(instance_class: str, max_connections: int) -> PgMemorySettings:
    """Derive PostgreSQL memory settings from the instance's memory.

    Seed 000 gives 512MB / 2GB / 256MB for a 4 GiB server and 2GB / 8GB / 1GB for a
    16 GiB one: shared_buffers = 1/8, effective_cache_size = 1/2 and
    maintenance_work_mem = 1/16 of memory (capped at 2 GiB, beyond which VACUUM gains
    nothing). work_mem is per sort/hash node per connection, so it is bounded by a quarter
    of memory shared by every connection, rounded down to a power of two (16 MiB on
    tier 1 as in the seed; the seed's 32 MiB on tier 2 could exhaust memory at 200
    connections, so tier 2 also gets 16 MiB).
    """
    memory = DB_INSTANCE_MEMORY_MIB[instance_class]
    return PgMemorySettings(
        shared_buffers_mib=memory // 8,
        effective_cache_size_mib=memory // 2,
        work_mem_mib=min(64, max(4, _floor_pow2(memory / 4 / max_connections))),
        maintenance_work_mem_mib=min(2 * GIB, memory // 16),
    )


def sagemaker_max_rps_per_instance(tier: Tier) -> int:
    """Sustained POST /invocations per second of one instance of the tier's type."""
    return tier.sagemaker_max_rps_per_vcpu * SAGEMAKER_INSTANCE_VCPUS[tier.sagemaker_instance_type]


def pod_pool(tier: Tier) -> tuple[int, int]:
    """Pool size and max overflow of ONE API pod.

    The seeds size the pool for the whole application on one server (tier 1: 15 + 25
    against max_connections 50, i.e. 10 left in reserve). With the API scaled out by the
    HPA, that budget is shared by up to ``api_max_replicas`` pods.
    """
    pods = tier.api_max_replicas
    return max(1, tier.app_pool_size // pods), max(0, tier.app_pool_max_overflow // pods)


@dataclass(frozen=True)
class ConnectionCapacity:
    """Seed 004's arithmetic: (pool + overflow) x servers must fit in max_connections."""

    pool_per_pod: int
    overflow_per_pod: int
    max_pods: int
    trainer: int
    max_connections: int
    reserved: int
    via_proxy: bool
    proxy_percent: int
    replicas: int

    @property
    def demand(self) -> int:
        """Connections the API (at its HPA maximum) and the trainer may open to the primary."""
        return (self.pool_per_pod + self.overflow_per_pod) * self.max_pods + self.trainer

    @property
    def budget(self) -> int:
        """Connections the primary can give them: through the proxy, its share."""
        if self.via_proxy:
            return self.max_connections * self.proxy_percent // 100
        return self.max_connections - self.reserved

    @property
    def reader_demand_per_replica(self) -> int:
        """Read pools are spread over the replicas by the reader DNS name."""
        if not self.replicas:
            return 0
        return math.ceil(
            (self.pool_per_pod + self.overflow_per_pod) * self.max_pods / self.replicas
        )

    def problems(self) -> list[str]:
        pool = (
            f"({self.pool_per_pod} pool + {self.overflow_per_pod} overflow) x {self.max_pods} pods"
        )
        found = []
        if self.demand > self.budget:
            where = (
                f"{self.proxy_percent}% of max_connections {self.max_connections} through the proxy"
                if self.via_proxy
                else f"max_connections {self.max_connections} - {self.reserved} reserved"
            )
            found.append(
                f"connection capacity: {pool} + {self.trainer} trainer = {self.demand} > "
                f"{where} = {self.budget}; lower app_pool_size/app_pool_max_overflow or "
                "api_max_replicas, or raise db_max_connections"
            )
        if (
            self.via_proxy
            and self.max_connections * (100 - self.proxy_percent) // 100 < self.reserved
        ):
            found.append(
                f"connection capacity: the proxy may take {self.proxy_percent}% of "
                f"max_connections {self.max_connections}, leaving fewer than the {self.reserved} "
                "reserved for superusers and operators; lower db_proxy_max_connections_percent"
            )
        per_replica = self.max_connections - self.reserved
        if self.reader_demand_per_replica > per_replica:
            found.append(
                f"connection capacity: {pool} read pools over {self.replicas} replicas = "
                f"{self.reader_demand_per_replica} per replica > max_connections "
                f"{self.max_connections} - {self.reserved} reserved = {per_replica}; add replicas"
            )
        return found


def connection_capacity(tier: Tier) -> ConnectionCapacity:
    pool, overflow = pod_pool(tier)
    return ConnectionCapacity(
        pool_per_pod=pool,
        overflow_per_pod=overflow,
        max_pods=tier.api_max_replicas,
        trainer=tier.trainer_db_connections,
        max_connections=tier.db_max_connections,
        reserved=RESERVED_DB_CONNECTIONS,
        via_proxy=tier.db_proxy,
        proxy_percent=tier.db_proxy_max_connections_percent,
        replicas=tier.db_replica_count,
    )
