"""What is computed from a tier row, and the instance tables it is computed with: the
memory and vCPUs of each instance class, PostgreSQL's memory settings, an API pod's pool and
the connection budget every tier must fit in. Pure functions: tests call them directly."""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.config.tier import ApiSize, InferenceSize, Tier

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
# sessions of an operator and the monitoring agent: max_connections must exceed every pool
# the application may open together.
RESERVED_DB_CONNECTIONS = 10

# The suspended CronJobs of a student's data lifecycle that an operator starts (purge,
# offboarding, access report: components/workloads/on_demand.py). Each command holds one
# connection at a time; the budget counts one of each running at once (docs/operate.md).
ON_DEMAND_JOBS = 3
ON_DEMAND_JOB_CONNECTIONS = 1


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

    The district scaling guide sets 512MB / 2GB / 256MB for a 4 GiB server and 2GB / 8GB /
    1GB for a 16 GiB one: shared_buffers = 1/8, effective_cache_size = 1/2 and
    maintenance_work_mem = 1/16 of memory (capped at 2 GiB, beyond which VACUUM gains
    nothing). work_mem is per sort/hash node per connection, so it is bounded by a quarter
    of memory shared by every connection, rounded down to a power of two (16 MiB on
    tier 1, as the guide sets; its 32 MiB on tier 2 could exhaust memory at 200
    connections, so tier 2 also gets 16 MiB).
    """
    memory = DB_INSTANCE_MEMORY_MIB[instance_class]
    return PgMemorySettings(
        shared_buffers_mib=memory // 8,
        effective_cache_size_mib=memory // 2,
        work_mem_mib=min(64, max(4, _floor_pow2(memory / 4 / max_connections))),
        maintenance_work_mem_mib=min(2 * GIB, memory // 16),
    )


# The capacity model of a SageMaker instance, until a load test of the endpoint measures it
# (``InferenceSize.measured_max_rps``). POST /invocations is CPU-bound in the HTTP stack (the
# prediction itself takes ~10 us): 460 us of server CPU per request, the upper end measured
# (benchmarks/notes/serving.md). The image runs one worker per vCPU, so an instance serves
# vCPUs / 460 us at full load; it is planned at 60 % of that, the headroom for the instance's
# own request handling in front of the container, logging and garbage collection, which the
# in-process benchmark did not carry, and for queueing at the p95 latency target.
SAGEMAKER_CPU_SECONDS_PER_REQUEST = 460e-6
SAGEMAKER_PLANNED_UTILISATION = 0.6


def sagemaker_max_rps_per_instance(inference: InferenceSize) -> float:
    """Peak POST /invocations per second of one instance of the tier's type within the
    latency target: measured when the tier says so, else the capacity model above."""
    if inference.measured_max_rps is not None:
        return float(inference.measured_max_rps)
    vcpus = SAGEMAKER_INSTANCE_VCPUS[inference.instance_type]
    return vcpus * SAGEMAKER_PLANNED_UTILISATION / SAGEMAKER_CPU_SECONDS_PER_REQUEST


def pod_pool(api: ApiSize) -> tuple[int, int]:
    """Pool size and max overflow of ONE API pod.

    The tier's pool is sized for the whole application on one server (tier 1: 15 + 25
    against max_connections 50, i.e. 10 left in reserve). With the API scaled out by the
    HPA, that budget is shared by up to ``api.max_replicas`` pods.
    """
    pods = api.max_replicas
    return max(1, api.pool_size // pods), max(0, api.pool_max_overflow // pods)


@dataclass(frozen=True)
class ConnectionCapacity:
    """The connection budget: (pool + overflow) x servers, with the trainer, the archive job,
    the workers and the on-demand Jobs, must fit in max_connections (less the reserve, or the
    proxy's share)."""

    pool_per_pod: int
    overflow_per_pod: int
    max_pods: int
    trainer: int
    archiver: int
    workers: int
    on_demand: int
    max_connections: int
    reserved: int
    via_proxy: bool
    proxy_percent: int
    replicas: int

    @property
    def demand(self) -> int:
        """Connections the API (at its HPA maximum), the trainer, the archive job, the event
        workers (at their maximum) and the on-demand Jobs may open to the primary: every
        workload the policy pack's connection-capacity rule counts."""
        return (
            (self.pool_per_pod + self.overflow_per_pod) * self.max_pods
            + self.trainer
            + self.archiver
            + self.workers
            + self.on_demand
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
                f"connection capacity: {pool} + {self.trainer} trainer + {self.archiver} "
                f"archiver + {self.workers} workers + {self.on_demand} on-demand Jobs = "
                f"{self.demand} > "
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
        # The archive job shares the trainer's per-pod budget (TrainingSize).
        archiver=tier.training.db_connections,
        workers=tier.events.max_workers * tier.events.worker_db_connections,
        on_demand=ON_DEMAND_JOBS * ON_DEMAND_JOB_CONNECTIONS,
        max_connections=tier.db.max_connections,
        reserved=RESERVED_DB_CONNECTIONS,
        via_proxy=tier.db.proxy,
        proxy_percent=tier.db.proxy_max_connections_percent,
        replicas=tier.db.replica_count,
    )
