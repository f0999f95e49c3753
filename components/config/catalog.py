"""The tier catalog: one row of sizes per school-district tier (the row's shape is in
``components.config.tier``; what is computed from a row is in ``components.config.capacity``).

Rows are data, not code branches: a stack picks a tier and may override single values
(see ``components.config.spec``). Numbers come from the scaling guides the product grew from;
where a guide's number was sized for a single server, the comment says how it is
translated to a horizontally scaled deployment.
"""

from __future__ import annotations

from components.config.tier import (
    ApiSize,
    AuditLockSize,
    CacheSize,
    CapacityType,
    DatabaseSize,
    EdgeSize,
    EventsSize,
    InferenceSize,
    MonitoringSize,
    NetworkSize,
    NodeGroupSize,
    RetentionSize,
    Tier,
    TrainingSize,
)

# Every district tier: inactive students' records 3 years after their last activity; archived
# audit months 7 years after they ended (longer than the student records they name, and than
# the archive's Object Lock). The defaults of the data-privacy agreement; a district's own
# agreement may ask for other periods. The dev tier keeps everything (synthetic data).
RETENTION = RetentionSize(student_years=3, audit_archive_years=7)


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
        # A day, in governance mode: `pulumi destroy` of a dev stack empties the bucket.
        audit_lock=AuditLockSize("GOVERNANCE", 1),
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
        retention=RETENTION,
        network=NetworkSize(az_count=2, nat_mode="single"),
        db=DatabaseSize(
            # 4 GiB: the tier-1 server's 512MB shared_buffers / 2GB effective_cache_size are
            # exactly the 1/8 and 1/2 of memory that pg_memory_settings() derives.
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
            # A single server's 25 less 9: at 25 the API, the trainer and the archive job
            # took all 40 connections the primary gives (50 - 10 reserved), leaving none for
            # the event workers and the on-demand lifecycle Jobs (one each). Now
            # (3 + 4) x 4 + 2 trainer + 2 archiver + 2 workers + 3 on-demand Jobs = 37.
            # max_connections stays the guide's 50: it is a static parameter (a reboot).
            pool_max_overflow=16,
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
        retention=RETENTION,
        network=NetworkSize(az_count=3, nat_mode="per_az", interface_endpoints=CORE_ENDPOINTS),
        db=DatabaseSize(
            instance_class="db.m6g.xlarge",  # 16 GiB: 2GB / 8GB shared_buffers / cache size
            storage_gib=500,
            max_storage_gib=1_000,
            multi_az=False,
            replica_count=1,
            max_replica_count=3,
            max_connections=200,
            proxy=True,  # pooling (PgBouncer's role) from tier 2: pods x pools > 200
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
        # Tier 2 on: SQS between the API and the workers, so a burst of events queues
        # instead of loading the API's database connections.
        events=EventsSize(queue="sqs", min_workers=1, max_workers=4),
    ),
    "tier3": Tier(
        name="tier3",
        description="Large district or state: 10,000-100,000 students; HA, cache, CDN, SageMaker.",
        expected_students=100_000,
        expected_schools=200,
        deletion_protection=True,
        log_retention_days=365,
        retention=RETENTION,
        # Large districts' agreements ask for an audit trail nobody can rewrite: compliance.
        audit_lock=AuditLockSize("COMPLIANCE", 365),
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
            # Tier 3 on: a district that size cannot lose its data with a region.
            cross_region_backups=True,
        ),
        api=ApiSize(
            min_replicas=2,
            max_replicas=20,  # HPA 2-20: a large district's peak on 20 pods
            cpu_request="1",  # requests 1 CPU / 2Gi, limits 2 CPU / 4Gi per API pod
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
    # Tier 4 is one stack per region (districts sharded by region, for data locality): each
    # regional stack is a tier3 deployment scaled up, holding the districts of its region only.
    "tier4": Tier(
        name="tier4",
        description="Enterprise/national: 100,000+ students; one such stack per region.",
        expected_students=10_000_000,
        # The enterprise scale: 10,000+ schools (training: 40 shards of 250).
        expected_schools=10_000,
        deletion_protection=True,
        log_retention_days=365,
        retention=RETENTION,
        # Large districts' agreements ask for an audit trail nobody can rewrite: compliance.
        audit_lock=AuditLockSize("COMPLIANCE", 365),
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
