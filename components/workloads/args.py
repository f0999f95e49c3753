"""The inputs of ``Workloads``."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components.config.tier import (
    ApiSize,
    EventsSize,
    NodeGroupSize,
    RetentionSize,
    TrainingSize,
)
from components.shared.contract import (
    BucketRef,
    ClusterRef,
    DatabaseConnection,
    DistrictDirectory,
    EventQueue,
    SageMakerEndpoint,
    SubnetCidrs,
)
from components.shared.stack import StackContext
from components.workloads.settings import ARCHIVE_SCHEDULE, NAMESPACE, TRAINING_SCHEDULE


@dataclass
class WorkloadsArgs:
    stack: StackContext
    """The stack: its region, tags, the alarm topic, and ``protect`` on the API key pepper."""
    cluster: ClusterRef
    """The cluster: its provider (every Kubernetes object uses it), IRSA's OIDC provider, the
    application log group (training-failure metric filter), KEDA where the tier has it, and
    its name (the namespace of the app's custom metrics)."""
    subnets: SubnetCidrs
    """The VPC's subnet CIDRs: the load balancer's (public) and the data stores' (isolated)."""
    api: ApiSize
    """The tier's API slice: replicas, resources, the database pool."""
    training: TrainingSize
    """The tier's training slice: the batch jobs' database connections, a shard's pod."""
    events: EventsSize
    """The tier's events slice: the queue backend and the worker's scaling."""
    node_groups: tuple[NodeGroupSize, ...]
    """The cluster's node groups: where the API and the jobs are placed."""
    image: pulumi.Input[str]
    """``<repository_url>:<tag>`` of the app image."""
    target_group_arn: pulumi.Input[str]
    """Target group of the API's load balancer; the API's Service is bound to it."""
    models_bucket: BucketRef
    """Versioned model store (read by the API, written by the trainer)."""
    archive_bucket: BucketRef
    """Archive of old audit-log partitions (written by the archive job)."""
    drop_bucket: BucketRef
    """Where the district's system drops its nightly exports (read by the import)."""
    database: DatabaseConnection
    """Endpoints and logins of the database; each workload's Secret holds only its own."""
    release: str
    """Release id (``StackSpec.release``): names the bootstrap Job that migrates for it."""
    redis_url: pulumi.Input[str] | None = None
    """``rediss://`` URL of the cache (secret), where the tier has one."""
    sagemaker: SageMakerEndpoint | None = None
    """SageMaker endpoint the API may invoke and the trainer rolls, where the tier has one."""
    directory: DistrictDirectory | None = None
    """Tier 4: the district directory the API reads to send a district to its home region."""
    events_queue: EventQueue | None = None
    """The SQS queue the API sends events to and the worker receives from (SQS tiers)."""
    namespace: str = NAMESPACE
    """Namespace of every object."""
    training_schedule: str = TRAINING_SCHEDULE
    """Cron schedule of the nightly pipeline (02:00, outside school hours)."""
    archive_schedule: str = ARCHIVE_SCHEDULE
    """Cron schedule of the weekly audit-log archival."""
    training_shards: int = 1
    """N of the nightly training's Indexed Job (``TrainingSize.shards`` of the tier's expected
    schools)."""
    retention: RetentionSize = field(default_factory=RetentionSize)
    """How long student records and archived audit months are kept (the archive job applies
    it: the purge login's Secret and the archive's delete rights only where it is set)."""
    time_zone: str = "America/New_York"
    """IANA zone the schedules are in (school-district local time)."""
