"""The inputs of ``Workloads``."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.config.tier import ApiSize, EventsSize, NodeGroupSize, TrainingSize
from components.shared.contract import (
    BucketRef,
    DatabaseConnection,
    DistrictDirectory,
    EventQueue,
    QueueAutoscaler,
    SageMakerEndpoint,
    SubnetCidrs,
)
from components.workloads.settings import ARCHIVE_SCHEDULE, NAMESPACE, TRAINING_SCHEDULE


@dataclass
class WorkloadsArgs:
    api: ApiSize
    """The tier's API slice: replicas, resources, the database pool."""
    training: TrainingSize
    """The tier's training slice: the batch jobs' database connections, a shard's pod."""
    events: EventsSize
    """The tier's events slice: the queue backend and the worker's scaling."""
    node_groups: tuple[NodeGroupSize, ...]
    """The cluster's node groups: where the API and the jobs are placed."""
    region: str
    """AWS region of the stack."""
    subnets: SubnetCidrs
    """The VPC's subnet CIDRs: the load balancer's (public) and the data stores' (isolated)."""
    k8s_provider: k8s.Provider
    """The cluster's provider; every Kubernetes object uses it."""
    cluster_name: str
    """EKS cluster name; names the namespace of the app's custom metrics."""
    oidc_provider_arn: pulumi.Input[str]
    """IRSA OIDC provider of the cluster."""
    oidc_issuer: pulumi.Input[str]
    """OIDC issuer without ``https://``."""
    application_log_group_name: pulumi.Input[str]
    """Container Insights application log group (training-failure metric filter)."""
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
    alarm_topic_arn: pulumi.Input[str]
    """Topic every alarm notifies."""
    protect: bool
    """``protect`` on the API key pepper."""
    redis_url: pulumi.Input[str] | None = None
    """``rediss://`` URL of the cache (secret), where the tier has one."""
    sagemaker: SageMakerEndpoint | None = None
    """SageMaker endpoint the API may invoke and the trainer rolls, where the tier has one."""
    directory: DistrictDirectory | None = None
    """Tier 4: the district directory the API reads to send a district to its home region."""
    events_queue: EventQueue | None = None
    """The SQS queue the API sends events to and the worker receives from (SQS tiers)."""
    queue_autoscaler: QueueAutoscaler | None = None
    """KEDA in the cluster (SQS tiers): the worker scales on the queue's depth."""
    namespace: str = NAMESPACE
    """Namespace of every object."""
    training_schedule: str = TRAINING_SCHEDULE
    """Cron schedule of the nightly training (seed 001: 02:00)."""
    archive_schedule: str = ARCHIVE_SCHEDULE
    """Cron schedule of the weekly audit-log archival."""
    training_shards: int = 1
    """N of the nightly training's Indexed Job (``TrainingSize.shards`` of the tier's expected
    schools)."""
    time_zone: str = "America/New_York"
    """IANA zone the schedules are in (school-district local time)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for every AWS resource of the component."""
