"""What components share: ports, paths, naming rules, the bundles a producer hands its
consumers, and how a child is owned by its component.

Components import this module (and the catalog, the spec and the builder modules:
``alarms``, ``iam``, ``kms``, ``k8s_manifests``, ``security_groups``), never each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

# The database login of each workload: one list, the app's (its migrations create them). Only
# the bootstrap Job holds the master login; each other workload holds its own.

POSTGRES_PORT = 5432
REDIS_PORT = 6379
API_PORT = 8080
"""Port of the app's HTTP server in its container (SageMaker's contract needs 8080)."""
WORKER_METRICS_PORT = 9102
"""Port of the event worker's /metrics and /healthz (``python -m app worker``)."""

# Seconds the load balancer keeps sending in-flight requests to a deregistered pod; a pod
# outlives it (preStop delay + grace period) so that no request is dropped in a rollout.
DEREGISTRATION_DELAY_SECONDS = 30

# Paths of the app that the public entry points answer with 404: SageMaker's unauthenticated
# contract and Prometheus metrics are for the endpoint and the cluster, never the internet.
INTERNAL_PATHS = ("/invocations", "/ping", "/metrics")

# POST routes whose bodies the app limits itself (a batch of at most 1,000 students): the
# WAF lets their large bodies through; it refuses bodies over 8 KB everywhere else.
API_BODY_ROUTES = ("/v1/predict",)
# The header an API key travels in (the WAF limits per key on it).
API_KEY_HEADER = "X-API-Key"

_IDENTIFIER = re.compile(r"^[a-z](?:[a-z0-9]|-(?!-))*[a-z0-9]$")


def check_identifier(identifier: str, max_length: int) -> str:
    """RDS/ElastiCache naming: lowercase letters, digits, single hyphens, a letter first."""
    if len(identifier) > max_length or not _IDENTIFIER.match(identifier):
        raise ValueError(
            f"identifier {identifier!r}: use lowercase letters, digits and single hyphens, "
            f"starting with a letter, at most {max_length} characters"
        )
    return identifier


# PostgreSQL majors the program can run, with their RDS parameter group family. A major
# upgrade needs the new family's parameter group before the instance switches to it.
POSTGRES_PARAMETER_FAMILIES = {"16": "postgres16", "17": "postgres17"}


@dataclass(frozen=True)
class DatabaseRestore:
    """A restore of the primary into a new instance (the stack's ``dbRestore*`` settings):
    RDS restores always create a new instance, named ``<identifier>-<name>``."""

    name: str
    """Suffix of the restored instance's identifier (``r20261201``); it names the Pulumi
    resource too, so each restore is a new primary and the old one is deleted last."""
    point_in_time: str | None = None
    """RFC 3339 time to restore to, or ``latest`` (the latest restorable time)."""
    snapshot: str | None = None
    """Identifier or ARN of the DB snapshot to restore instead."""
    source: str | None = None
    """DB instance identifier a point-in-time restore reads the backups of; None: the
    original primary. After an earlier restore, that restore's instance."""


@dataclass(frozen=True)
class ReportingReplicaTarget:
    """Where a stack's cross-region read replica for reporting runs (``dbReportingReplica``):
    another region, in the network of the regional stack deployed there."""

    region: str
    """The replica's region (``us-west-2``)."""
    stack: str
    """The stack whose VPC, isolated subnets, app security group and alarm topic it uses."""


@dataclass(frozen=True)
class DatabaseLogin:
    """A PostgreSQL login and its password (a secret Output)."""

    username: str
    password: pulumi.Input[str]


@dataclass(frozen=True)
class DatabaseConnection:
    """How workloads reach the database: what ``Database`` exposes."""

    writer_endpoint: pulumi.Input[str]
    """Host the app writes to (the proxy on proxied tiers)."""
    reader_endpoint: pulumi.Input[str]
    """Host for reads (the replicas' DNS name, or the writer)."""
    primary_endpoint: pulumi.Input[str]
    """The primary itself: migrations run there, never through the proxy (DDL pins)."""
    port: int
    database_name: str
    master: DatabaseLogin
    """The master login: for the bootstrap Job (migrations) only."""
    logins: Mapping[str, DatabaseLogin]
    """The login of each workload (``api``, ``trainer``, ``archiver``)."""
    via_proxy: bool = False
    """Whether ``writer_endpoint`` is an RDS Proxy (it pins connections that hold session
    state, such as server-side prepared statements)."""


@dataclass(frozen=True)
class BucketRef:
    """An S3 bucket and the KMS key its objects are encrypted with: what ``SecureBucket``
    exposes."""

    name: pulumi.Input[str]
    arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]


@dataclass(frozen=True)
class SageMakerEndpoint:
    """The stack's SageMaker endpoint, what ``Inference`` exposes: the API invokes it, the
    trainer rolls it to new models (``app/jobs/sagemaker_rollout.py``)."""

    name: str
    arn: pulumi.Input[str]
    base_config_name: pulumi.Input[str]
    """The program's endpoint configuration, which every rollout copies."""
    execution_role_arn: pulumi.Input[str]
    """The containers' role, passed to the models a rollout creates."""
    archive_url: pulumi.Input[str]
    """``s3://<models bucket>/sagemaker``: a rollout publishes ``g<generation>/model.tar.gz``."""


@dataclass(frozen=True)
class DistrictDirectory:
    """Where a tier 4 regional API finds each district's home region: the global stack's
    directory (its replica in this region) and every region's API hostname."""

    table_name: pulumi.Input[str]
    """``DISTRICT_DIRECTORY_TABLE``: the global table, the same name in every region."""
    table_arn: pulumi.Input[str]
    """The replica in this stack's region: the API's only ``dynamodb:GetItem`` resource."""
    region_api_hosts: pulumi.Input[str]
    """``REGION_API_HOSTS``: JSON object, region -> ``api.<region>.<domain>``."""


@dataclass(frozen=True)
class EventQueue:
    """The stack's SQS events queue, what ``EventsQueue`` exposes: the API sends to it, the
    worker receives from it (``EVENTS_QUEUE_URL``)."""

    url: pulumi.Input[str]
    arn: pulumi.Input[str]
    name: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    """The customer-managed key its messages are encrypted with."""


@dataclass(frozen=True)
class QueueAutoscaler:
    """KEDA in the cluster, what ``Cluster`` exposes where the tier has it: the worker's
    ScaledObject waits for its release (CRDs), and the queue's owner grants its role."""

    release: pulumi.Resource
    role_name: pulumi.Input[str]
    """The operator's IRSA role: the workloads attach its read of the queue's depth."""


@dataclass(frozen=True)
class SubnetCidrs:
    """The CIDRs of a VPC's subnet tiers, in AZ order: what ``Network`` exposes."""

    public: tuple[str, ...]
    private: tuple[str, ...]
    isolated: tuple[str, ...]


@dataclass(frozen=True)
class NetworkRef:
    """The VPC, its subnet tiers and the app tier's security group: what ``Network`` hands
    the components placed in it. Data stores take the isolated subnets, the cluster and
    SageMaker the private ones, the load balancer the public ones."""

    vpc_id: pulumi.Input[str]
    availability_zones: Sequence[pulumi.Input[str]]
    """AZ names, in subnet order."""
    public_subnet_ids: Sequence[pulumi.Input[str]]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    isolated_subnet_ids: Sequence[pulumi.Input[str]]
    subnet_cidrs: SubnetCidrs
    """The subnets' CIDRs, known at preview (NetworkPolicies and the scraper use them)."""
    app_security_group_id: pulumi.Input[str]
    """The application tier's group (EKS nodes and pods): the only one data stores admit."""


@dataclass(frozen=True)
class ClusterRef:
    """The EKS cluster, what ``Cluster`` hands what runs in it (as pulumi-eks hands its
    node groups the cluster's ``CoreData``)."""

    name: str
    """The cluster's name, known at preview (it names metric namespaces)."""
    arn: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    """The security group EKS made for the control plane and the nodes."""
    k8s_provider: pulumi.ProviderResource
    """The provider every Kubernetes object of the stack uses."""
    oidc_provider_arn: pulumi.Input[str]
    """IRSA's OIDC provider."""
    oidc_issuer: pulumi.Input[str]
    """The OIDC issuer without ``https://``, the prefix of IRSA's condition keys."""
    application_log_group_name: pulumi.Input[str]
    """Container Insights' log group of the containers' stdout and stderr."""
    queue_autoscaler: QueueAutoscaler | None = None
    """KEDA, where the tier has it."""


def owned(
    component: pulumi.Resource,
    *,
    was: pulumi.Resource | None = None,
    protect: bool | None = None,
    provider: pulumi.ProviderResource | None = None,
    depends_on: Sequence[pulumi.Resource] = (),
) -> pulumi.ResourceOptions:
    """Options of a child owned by ``component``. ``was`` is the resource it used to be
    parented to: the alias keeps a deployed stack from replacing it after the move. Protection
    and providers are inherited from a parent, so a moved child states its own."""
    return pulumi.ResourceOptions(
        parent=component,
        aliases=[pulumi.Alias(parent=was)] if was is not None else None,
        protect=protect,
        provider=provider,
        depends_on=list(depends_on) or None,
    )
