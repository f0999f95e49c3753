"""The shape of a tier row: one slice per concern (network, database, API, cache, edge,
inference, alarms...). Each component receives only its slice; the rows themselves are in
``components.config.catalog``, and stack overrides follow the nesting (``db.replica_count``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NatMode = Literal["single", "per_az"]
CapacityType = Literal["ON_DEMAND", "SPOT"]
QueueBackend = Literal["postgres", "sqs"]


@dataclass(frozen=True)
class NodeGroupSize:
    """One EKS managed node group of a tier."""

    name: str
    """Role of the group: ``system`` (cluster add-ons), ``app`` (the API) or ``training``."""
    instance_types: tuple[str, ...]
    """EC2 instance types the group may launch (several spread Spot capacity)."""
    min_size: int
    """Fewest nodes the cluster autoscaler keeps."""
    max_size: int
    """Most nodes the cluster autoscaler may add."""
    desired_size: int
    """Nodes at creation; the autoscaler owns the number afterwards."""
    capacity_type: CapacityType = "ON_DEMAND"
    """``ON_DEMAND`` or ``SPOT``."""
    disk_gib: int = 50
    """Root volume of each node."""
    dedicated: bool = False
    """Tainted so that only pods tolerating ``workload=<name>:NoSchedule`` land there."""


@dataclass(frozen=True)
class NetworkSize:
    """The VPC's shape."""

    az_count: int
    """Availability zones the subnets span (2-4)."""
    nat_mode: NatMode
    """``single`` NAT gateway, or one ``per_az`` (no cross-AZ dependency)."""
    interface_endpoints: tuple[str, ...] = ()
    """AWS services reached through interface VPC endpoints in the private subnets (private
    DNS) instead of through the NAT: ``ecr.api``, ``sts``..."""


@dataclass(frozen=True)
class DatabaseSize:
    """RDS PostgreSQL: the primary, its replicas and the pooling proxy."""

    instance_class: str
    """Instance class of the primary and the replicas; PG memory settings follow from it."""
    storage_gib: int
    """Allocated storage at creation."""
    max_storage_gib: int
    """Ceiling of storage autoscaling."""
    multi_az: bool
    """A synchronous standby in a second AZ."""
    replica_count: int
    """Read replicas behind the reader DNS name."""
    max_replica_count: int
    """The most read replicas this tier allows; the spec rejects a larger override."""
    max_connections: int
    """PostgreSQL ``max_connections`` (a static parameter)."""
    proxy: bool
    """RDS Proxy in front of the primary: it pools the connections of every API pod and job,
    which from tier 2 on would exceed max_connections."""
    backup_retention_days: int
    """Days of automated backups (point-in-time recovery window)."""
    proxy_max_connections_percent: int = 75
    """Share of ``max_connections`` the proxy may open."""
    cross_region_backups: bool = False
    """Replicate the automated backups (snapshots and transaction logs) to the stack's
    ``dbBackupRegion``, kept as long as ``backup_retention_days``: a regional outage or a
    lost account region still leaves a point-in-time restore."""


@dataclass(frozen=True)
class CacheSize:
    """ElastiCache Redis."""

    enabled: bool = False
    """Whether the tier has a cache at all."""
    node_type: str = "cache.t4g.micro"
    """Node type of every node of the replication group."""
    num_nodes: int = 0
    """Nodes of the replication group (a primary and replicas)."""
    snapshot_retention_days: int = 7
    """Daily Redis snapshots kept (0 turns snapshots off)."""


@dataclass(frozen=True)
class ApiSize:
    """The prediction API on Kubernetes, and its share of the database's connections."""

    min_replicas: int
    """HPA minimum."""
    max_replicas: int
    """HPA maximum; the connection-capacity check assumes every replica runs."""
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str
    pool_size: int
    """The pool of the whole application tier, as if on one server; per pod it is divided
    by ``max_replicas`` (see ``pod_pool``)."""
    pool_max_overflow: int
    """The overflow connections of the whole tier, divided likewise."""
    cpu_target_percent: int = 70
    """HPA CPU target: scale up at CPU over 70 %, with headroom for a burst while new pods
    start."""
    memory_target_percent: int = 80
    """HPA memory target: scale up at memory over 80 %, before the limit kills a pod."""


@dataclass(frozen=True)
class TrainingSize:
    """The nightly training job (and the archive job, which shares its budget)."""

    db_connections: int = 2
    """Connections a batch job's pod may hold (a training shard: its lock and its work);
    counted once per training shard, and once for the archive job, by the capacity check."""
    schools_per_shard: int = 250
    """Schools one shard of the nightly training trains (about 250,000 students: well under
    ``shard_memory``, benchmarks/training.py); the tier's expected schools over this is N."""
    shard_cpu: str = "1"
    """CPU of a training shard's pod (request and limit): the fits are single-threaded."""
    shard_memory: str = "1536Mi"
    """Memory limit of a training shard's pod (request 1Gi): a shard peaks under 1 GiB at any
    number of schools (BENCHMARKS.md)."""
    min_promotion_auc: float = 0.7
    """The promotion gate's minimum held-out AUC (the app's MIN_PROMOTION_AUC: the product asks
    for a model accuracy over 80 %, which for a rare outcome such as dropping out AUC measures
    better than accuracy); Prometheus alerts when the served district model is under it."""

    def shards(self, expected_schools: int) -> int:
        """N of the nightly training's Indexed Job: enough shards for the tier's schools."""
        return max(1, -(-expected_schools // self.schools_per_shard))


@dataclass(frozen=True)
class EdgeSize:
    """CloudFront (its WAF is sized by ``WafSize``)."""

    enabled: bool = False
    """CloudFront in front of the API (and the WAF on it rather than on the load balancer)."""
    price_class: str = "PriceClass_100"
    """CloudFront price class (edge locations served)."""


@dataclass(frozen=True)
class AuditLockSize:
    """S3 Object Lock on the audit archive: each archived month is written once and cannot be
    overwritten or deleted for ``days``. GOVERNANCE: an operator holding
    s3:BypassGovernanceRetention (no workload does) can still remove a month, e.g. at a
    district's written request; COMPLIANCE: nobody, not even the account's root user, until the
    days have passed."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    days: int = 365
    """Longer than the audit log's live retention (AUDIT_RETENTION_DAYS, 90 by default)."""


@dataclass(frozen=True)
class RetentionSize:
    """How long student records and the archived audit trail are kept (the archive job applies
    both: app/jobs/lifecycle/retention.py); None: until a district asks for their deletion.
    Districts' data-privacy agreements set these; the 2025 COPPA amendments forbid keeping
    children's data indefinitely. The archive's IRSA role may delete archived months only
    where ``audit_archive_years`` is set."""

    student_years: int | None = None
    """Years after a student's last enrolment or recorded activity (inactive students only)."""
    audit_archive_years: int | None = None
    """Years after an archived audit month ended; longer than its Object Lock
    (``AuditLockSize.days``), which S3 enforces whatever the role may do."""


@dataclass(frozen=True)
class WafSize:
    """The WAF on the stack's internet-facing entry (CloudFront, or the load balancer):
    requests per ``window_seconds`` (docs/operate.md, "Limits"). A classic 100 requests / 15 min
    per IP
    is a login page's limit: a whole school sits behind one NAT address, so the per-IP limits
    are sized for a school and the per-key limit sits above the app's own per-class limits."""

    per_ip_limit: int = 6_000
    """Per IP, everything but static assets: 100 teachers of one school at one request every
    10 s is 3,000 per 5 minutes; twice that."""
    anonymous_limit: int = 600
    """Per IP, requests without an API key (health checks, documentation, mistakes)."""
    auth_limit: int = 100
    """Per IP, on the authentication paths (the app also limits failed keys per IP)."""
    per_key_limit: int = 6_000
    """Per API key: twice the app's largest class limit (interactive, 600 per minute), so the
    app's 429 with Retry-After answers first and WAF only stops a runaway client."""
    window_seconds: int = 300
    """WAF evaluation window: 60, 120, 300 or 600 s."""


@dataclass(frozen=True)
class InferenceSize:
    """The SageMaker endpoint."""

    enabled: bool = False
    """Whether the tier runs a SageMaker endpoint."""
    instance_type: str = "ml.m5.large"
    """Hosting instance type."""
    min_instances: int = 1
    """Autoscaling minimum."""
    max_instances: int = 1
    """Autoscaling maximum."""
    data_capture_percent: int = 20
    """Share of requests captured to S3 for model monitoring."""
    measured_max_rps: int | None = None
    """Peak ``POST /invocations`` per second one instance of ``instance_type`` sustained
    within the latency target in a load test of the endpoint (SageMaker Inference
    Recommender, or AWS's procedure for load testing autoscaling); None: the capacity model
    of ``components/config/capacity.py`` (docs/operate.md, "SageMaker autoscaling")."""


@dataclass(frozen=True)
class MonitoringSize:
    """Prometheus and Grafana: the app's own metrics (pools, events, models), which tier 4's
    scale needs beyond CloudWatch's."""

    prometheus: bool = False
    """An Amazon Managed Service for Prometheus workspace, its managed scraper of the API
    pods' /metrics, and alert rules routed to the alarm topic."""
    scrape_interval_seconds: int = 30
    """How often the scraper reads every API pod."""
    grafana: bool = False
    """An Amazon Managed Grafana workspace (sign-in through IAM Identity Center) with the
    repository's dashboards (components/monitoring/dashboards/) over the workspace."""


@dataclass(frozen=True)
class EventsSize:
    """The queue between ``POST /v1/events`` and the rescoring worker, and the worker."""

    queue: QueueBackend = "postgres"
    """``postgres``: the app's table queue (``FOR UPDATE SKIP LOCKED``), nothing new to run;
    ``sqs``: an SQS queue with a dead-letter queue, encrypted with the stack's own key."""
    min_workers: int = 1
    """Fewest worker pods (the autoscaler's minimum)."""
    max_workers: int = 2
    """Most worker pods; the connection-capacity check counts every one."""
    messages_per_worker: int = 500
    """Backlog one worker pod is scaled for (KEDA's ``queueLength`` on SQS tiers): KEDA runs
    ceil(messages waiting and in flight / this) pods, between the minimum and the maximum."""
    worker_db_connections: int = 2
    """Connections one worker pod may hold (its pool)."""
    batch_seconds: int = 30
    """The longest a worker takes over one received batch, retries included."""
    visibility_timeout_seconds: int = 180
    """How long a received SQS message stays hidden from other workers: six batches, so a
    slow batch is not delivered twice while it is still being worked on."""
    max_receive_count: int = 5
    """Deliveries of a message before SQS moves it to the dead-letter queue (a poison
    message fails every time; a transient failure rarely five times in a row)."""
    retention_days: int = 4
    """Days an undelivered message is kept (SQS: 1 minute to 14 days)."""
    dead_letter_retention_days: int = 14
    """Days a dead letter is kept for an operator to inspect and redrive (the SQS maximum)."""
    oldest_message_alarm_seconds: int = 300
    """Alarm when the oldest message has waited longer (the risk is stale by that much)."""


@dataclass(frozen=True)
class AlarmThresholds:
    """When CloudWatch alarms fire: the scaling triggers (CPU, memory, latency, errors,
    connections), each at the level where a tier should grow before users notice."""

    cpu_percent: int = 70
    """CPU of the database, cache and nodes."""
    memory_percent: int = 80
    """Memory of the cache and nodes."""
    latency_p95_ms: int = 200
    """API p95 latency: a teacher's page answers within 200 ms."""
    error_rate_percent: float = 1.0
    """API and endpoint error rate: more than 1 % of requests failing is an incident."""
    db_connections_percent: int = 80
    """Database connections as a share of ``max_connections``: over 80 %, a burst would be
    refused connections."""
    replica_lag_seconds: int = 30
    """Replication lag of a read replica."""
    free_storage_percent: int = 10
    """Free storage left on the primary."""
    model_latency_p95_ms: int = 100
    """SageMaker model latency p95: a prediction within 100 ms, so a page of risk scores
    stays within the API's 200 ms."""
    event_lag_p95_seconds: float = 2.0
    """p95 from ``POST /v1/events`` to the updated risk: a student's score follows an
    event within 2 s."""
    pool_utilization_percent: int = 80
    """API connection-pool utilization, in use / max: over 80 %, requests start to wait for a
    connection."""


@dataclass(frozen=True)
class Tier:
    """Every size the components need for one tier, one slice per concern. Each component
    receives only its slice; override keys follow the nesting (``db.replica_count``)."""

    name: str
    description: str
    expected_students: int
    """Who it is for: the students of the districts the tier is sized for."""
    expected_schools: int
    deletion_protection: bool
    """Deletion protection, final snapshots and Pulumi ``protect`` on stateful resources."""
    log_retention_days: int
    """Retention of every log group the stack creates."""
    network: NetworkSize
    db: DatabaseSize
    api: ApiSize
    node_groups: tuple[NodeGroupSize, ...]
    cache: CacheSize = CacheSize()
    training: TrainingSize = TrainingSize()
    edge: EdgeSize = EdgeSize()
    waf: WafSize = WafSize()
    audit_lock: AuditLockSize = AuditLockSize()
    retention: RetentionSize = RetentionSize()
    inference: InferenceSize = InferenceSize()
    monitoring: MonitoringSize = MonitoringSize()
    events: EventsSize = EventsSize()
    alarms: AlarmThresholds = AlarmThresholds()
