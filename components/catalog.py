"""The tier catalog: one row of sizes per school-district tier (the row's shape is in
``components.tier``), and the pure functions that derive everything computable from a row.

Rows are data, not code branches: a stack picks a tier and may override single values
(see ``components.spec``). Numbers come from the scaling guides the product grew from;
where a guide's number was sized for a single server, the comment says how it is
translated to a horizontally scaled deployment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.tier import (
    ApiSize,
    CacheSize,
    CapacityType,
    DatabaseSize,
    EdgeSize,
    EventsSize,
    InferenceSize,
    MonitoringSize,
    NetworkSize,
    NodeGroupSize,
    Tier,
    TrainingSize,
)

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

# Connections PostgreSQL keeps out of the application's reach: superuser_reserved_connections
# (3) and rds.rds_superuser_reserved_connections (2), plus headroom for migrations, psql
# sessions of an operator and the monitoring agent (seed 004: "set max_connections > total").
RESERVED_DB_CONNECTIONS = 10


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


# What the nodes and pods call on every request or image pull, through interface endpoints
# from tier2 on: image pulls (ECR; its layers come from S3's gateway endpoint), IRSA's
# credentials (STS), container logs (CloudWatch Logs) and the proxy's credentials (Secrets
# Manager). Each costs about $7.30 a month per AZ; below tier2 the NAT carries them.
CORE_ENDPOINTS = ("ecr.api", "ecr.dkr", "sts", "logs", "secretsmanager")
# And on SageMaker tiers: the API invoking the endpoint, the trainer rolling it.
SAGEMAKER_ENDPOINTS = ("sagemaker.runtime", "sagemaker.api")

TIERS: dict[str, Tier] = {
    "dev": Tier(
        name="dev",
        description="Smallest deployable copy for development: one NAT, one small database.",
        expected_students=50,
        expected_schools=1,
        deletion_protection=False,
        log_retention_days=7,
        network=NetworkSize(az_count=2, nat_mode="single"),  # EKS and RDS need two AZs
        db=DatabaseSize(
            instance_class="db.t4g.micro",
            storage_gib=20,
            max_storage_gib=50,
            multi_az=False,
            replica_count=0,
            max_replica_count=1,
            max_connections=40,
            proxy=False,
            backup_retention_days=1,
        ),
        api=ApiSize(
            min_replicas=1,
            max_replicas=2,
            cpu_request="250m",
            memory_request="512Mi",
            cpu_limit="500m",
            memory_limit="1Gi",
            pool_size=4,
            pool_max_overflow=6,
        ),
        node_groups=(_node("app", ("t3.large",), 1, 3, 2),),
        events=EventsSize(queue="postgres", min_workers=1, max_workers=2),
    ),
    "tier1": Tier(
        name="tier1",
        description="Small district: 100-1,000 students in 1-5 schools.",
        expected_students=1_000,
        expected_schools=5,
        deletion_protection=True,
        log_retention_days=30,
        network=NetworkSize(az_count=2, nat_mode="single"),
        db=DatabaseSize(
            # 4 GiB: seed 000's 512MB shared_buffers / 2GB effective_cache_size are exactly
            # the 1/8 and 1/2 of memory that pg_memory_settings() derives.
            instance_class="db.t4g.medium",
            storage_gib=100,
            max_storage_gib=500,
            multi_az=False,
            replica_count=0,
            max_replica_count=1,
            max_connections=50,
            proxy=False,
            backup_retention_days=7,
        ),
        api=ApiSize(
            min_replicas=2,
            max_replicas=4,
            cpu_request="250m",
            memory_request="512Mi",
            cpu_limit="1",
            memory_limit="1Gi",
            pool_size=15,
            # Seed 000's 25 less 4 (one per pod): at 25 the API, the trainer and the
            # archiver took all 40 connections the primary gives (50 - 10 reserved), leaving
            # none for the event workers. Now (3 + 5) x 4 + 2 + 2 + 2 workers = 38.
            pool_max_overflow=21,
        ),
        node_groups=(
            _node("system", ("t3.medium",), 2, 3, 2),
            _node("app", ("m6i.large",), 2, 4, 2),
        ),
        events=EventsSize(queue="postgres", min_workers=1, max_workers=2, worker_db_connections=1),
    ),
    "tier2": Tier(
        name="tier2",
        description="Medium district: 1,000-10,000 students; replicas and a pooling proxy.",
        expected_students=10_000,
        expected_schools=25,
        deletion_protection=True,
        log_retention_days=90,
        network=NetworkSize(az_count=3, nat_mode="per_az", interface_endpoints=CORE_ENDPOINTS),
        db=DatabaseSize(
            instance_class="db.m6g.xlarge",  # 16 GiB: seed 000's 2GB / 8GB settings
            storage_gib=500,
            max_storage_gib=1_000,
            multi_az=False,
            replica_count=1,
            max_replica_count=3,
            max_connections=200,
            proxy=True,  # seed 000: connection pooling (PgBouncer) from tier 2
            backup_retention_days=14,
        ),
        api=ApiSize(
            min_replicas=2,
            max_replicas=8,
            cpu_request="500m",
            memory_request="1Gi",
            cpu_limit="1",
            memory_limit="2Gi",
            pool_size=25,
            pool_max_overflow=50,
        ),
        node_groups=(
            _node("system", ("t3.medium",), 2, 3, 2),
            _node("app", ("m6i.large",), 2, 8, 3),
        ),
        # Tier 2 on: SQS between the API and the workers (seed 000: message queues).
        events=EventsSize(queue="sqs", min_workers=1, max_workers=4),
    ),
    "tier3": Tier(
        name="tier3",
        description="Large district or state: 10,000-100,000 students; HA, cache, CDN, SageMaker.",
        expected_students=100_000,
        expected_schools=200,
        deletion_protection=True,
        log_retention_days=365,
        network=NetworkSize(
            az_count=3,
            nat_mode="per_az",
            interface_endpoints=CORE_ENDPOINTS + SAGEMAKER_ENDPOINTS,
        ),
        db=DatabaseSize(
            instance_class="db.r6g.2xlarge",  # 64 GiB, 8 vCPU
            storage_gib=1_000,
            max_storage_gib=4_000,
            multi_az=True,
            replica_count=2,
            max_replica_count=5,
            max_connections=500,
            proxy=True,
            backup_retention_days=35,
            # Seed 000 tier 3+: a district that size cannot lose its data with a region.
            cross_region_backups=True,
        ),
        api=ApiSize(
            min_replicas=2,
            max_replicas=20,  # seed 001: HPA 2-20
            cpu_request="1",  # seed 001: requests 1 CPU / 2Gi, limits 2 CPU / 4Gi
            memory_request="2Gi",
            cpu_limit="2",
            memory_limit="4Gi",
            pool_size=50,
            pool_max_overflow=100,
        ),
        # Spot nodes: smaller shards lose less to an interruption (and retry alone).
        training=TrainingSize(db_connections=2, schools_per_shard=100),
        cache=CacheSize(enabled=True, node_type="cache.r7g.large", num_nodes=3),
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
        edge=EdgeSize(enabled=True),
        inference=InferenceSize(enabled=True, max_instances=4),
        monitoring=MonitoringSize(prometheus=True),
        events=EventsSize(queue="sqs", min_workers=2, max_workers=10),
    ),
    # Tier 4 is one stack per region ("sharding by region", seed 000): each regional stack
    # is a tier3 deployment scaled up, holding the districts of its region only.
    "tier4": Tier(
        name="tier4",
        description="Enterprise/national: 100,000+ students; one such stack per region.",
        expected_students=10_000_000,
        # Seed 001's enterprise phase: 10,000+ schools (training: 40 shards of 250).
        expected_schools=10_000,
        deletion_protection=True,
        log_retention_days=365,
        network=NetworkSize(
            az_count=3,
            nat_mode="per_az",
            interface_endpoints=CORE_ENDPOINTS + SAGEMAKER_ENDPOINTS,
        ),
        db=DatabaseSize(
            instance_class="db.r6g.4xlarge",  # 128 GiB, 16 vCPU
            storage_gib=2_000,
            max_storage_gib=8_000,
            multi_az=True,
            replica_count=3,
            max_replica_count=5,
            max_connections=1_000,
            proxy=True,
            backup_retention_days=35,
            cross_region_backups=True,
        ),
        api=ApiSize(
            min_replicas=4,
            max_replicas=40,
            cpu_request="1",
            memory_request="2Gi",
            cpu_limit="2",
            memory_limit="4Gi",
            pool_size=100,
            pool_max_overflow=200,
        ),
        training=TrainingSize(db_connections=2, schools_per_shard=250),
        cache=CacheSize(enabled=True, node_type="cache.r7g.xlarge", num_nodes=3),
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
        edge=EdgeSize(enabled=True, price_class="PriceClass_All"),
        inference=InferenceSize(
            enabled=True, instance_type="ml.c5.xlarge", min_instances=2, max_instances=8
        ),
        monitoring=MonitoringSize(prometheus=True, scrape_interval_seconds=15, grafana=True),
        events=EventsSize(queue="sqs", min_workers=2, max_workers=20),
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


def sagemaker_max_rps_per_instance(inference: InferenceSize) -> int:
    """Sustained POST /invocations per second of one instance of the tier's type."""
    return inference.max_rps_per_vcpu * SAGEMAKER_INSTANCE_VCPUS[inference.instance_type]


def pod_pool(api: ApiSize) -> tuple[int, int]:
    """Pool size and max overflow of ONE API pod.

    The seeds size the pool for the whole application on one server (tier 1: 15 + 25
    against max_connections 50, i.e. 10 left in reserve). With the API scaled out by the
    HPA, that budget is shared by up to ``api.max_replicas`` pods.
    """
    pods = api.max_replicas
    return max(1, api.pool_size // pods), max(0, api.pool_max_overflow // pods)


@dataclass(frozen=True)
class ConnectionCapacity:
    """Seed 004's arithmetic: (pool + overflow) x servers must fit in max_connections."""

    pool_per_pod: int
    overflow_per_pod: int
    max_pods: int
    trainer: int
    workers: int
    max_connections: int
    reserved: int
    via_proxy: bool
    proxy_percent: int
    replicas: int

    @property
    def demand(self) -> int:
        """Connections the API (at its HPA maximum), the trainer and the event workers (at
        their maximum) may open to the primary."""
        return (
            (self.pool_per_pod + self.overflow_per_pod) * self.max_pods
            + self.trainer
            + self.workers
        )

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
                f"connection capacity: {pool} + {self.trainer} trainer + {self.workers} "
                f"workers = {self.demand} > "
                f"{where} = {self.budget}; lower api.pool_size/api.pool_max_overflow or "
                "api.max_replicas, or raise db.max_connections"
            )
        if (
            self.via_proxy
            and self.max_connections * (100 - self.proxy_percent) // 100 < self.reserved
        ):
            found.append(
                f"connection capacity: the proxy may take {self.proxy_percent}% of "
                f"max_connections {self.max_connections}, leaving fewer than the {self.reserved} "
                "reserved for superusers and operators; lower db.proxy_max_connections_percent"
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
    pool, overflow = pod_pool(tier.api)
    return ConnectionCapacity(
        pool_per_pod=pool,
        overflow_per_pod=overflow,
        max_pods=tier.api.max_replicas,
        trainer=tier.training.db_connections * tier.training.shards(tier.expected_schools),
        workers=tier.events.max_workers * tier.events.worker_db_connections,
        max_connections=tier.db.max_connections,
        reserved=RESERVED_DB_CONNECTIONS,
        via_proxy=tier.db.proxy,
        proxy_percent=tier.db.proxy_max_connections_percent,
        replicas=tier.db.replica_count,
    )
