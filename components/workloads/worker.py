"""The event worker (``python -m app worker``): a Deployment that drains the events queue,
refreshes each student's features and rescores them (through the SageMaker endpoint where the
stack has one), with its own login (ssp_worker), IRSA role and autoscaling.

Autoscaling, by queue:
- SQS: KEDA's ``aws-sqs-queue`` trigger, one pod per ``events.messages_per_worker`` messages
  waiting or in flight; KEDA's operator reads the depth with its own role.
- PostgreSQL (dev, tier1): a CPU/memory HPA. KEDA's ``postgresql`` trigger would need a
  database login of its own and a cluster operator for a queue of at most a few schools'
  events, which one worker drains; the worker's CPU rises with the backlog it works on.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.config.tier import EventsSize
from components.shared import k8s_manifests as m
from components.shared.contract import (
    WORKER_METRICS_PORT,
    BucketRef,
    ClusterRef,
    EventQueue,
    QueueAutoscaler,
    SageMakerEndpoint,
    owned,
)
from components.shared.iam import queue_scaler_policy
from components.workloads.role_policies import irsa_role, worker_policy
from components.workloads.settings import WORKER

# How often KEDA reads the queue's depth: a burst of events gets workers within seconds.
KEDA_POLLING_SECONDS = 15
HEALTH_PATH = "/healthz"


def worker_container(
    image: pulumi.Input[str],
    events: EventsSize,
    endpoint: SageMakerEndpoint | None,
    resources: m.Resources,
    config_map: pulumi.Input[str],
) -> k8s.core.v1.ContainerArgsDict:
    """The app image running ``worker``: its pool, the endpoint it rescores through, and its
    metrics and liveness port."""
    container = m.app_container(
        name=WORKER,
        image=image,
        args=["worker"],
        resources=resources,
        config_map=config_map,
        serve=False,
    )
    env: list[k8s.core.v1.EnvVarArgsDict] = [
        {"name": "DB_POOL_MIN", "value": "1"},
        {"name": "DB_POOL_MAX", "value": str(events.worker_db_connections)},
        # The queue's own numbers (SQS: its visibility timeout and redrive policy), so the
        # worker's table queue and its dead-lettering count the same way.
        {"name": "WORKER_VISIBILITY_SECONDS", "value": str(events.visibility_timeout_seconds)},
        {"name": "WORKER_MAX_RECEIVES", "value": str(events.max_receive_count)},
    ]
    if endpoint is not None:
        env.append({"name": "SAGEMAKER_ENDPOINT_NAME", "value": endpoint.name})
    container["env"] = env
    container["ports"] = [
        {"name": "metrics", "container_port": WORKER_METRICS_PORT, "protocol": "TCP"}
    ]
    # /healthz answers while the worker's loop runs: a stuck loop is restarted; a pod is
    # ready (and a rollout moves on) once its loop has started.
    probe: k8s.core.v1.ProbeArgsDict = {
        "http_get": {"path": HEALTH_PATH, "port": "metrics"},
        "period_seconds": 10,
        "timeout_seconds": 2,
        "failure_threshold": 3,
    }
    container["liveness_probe"] = {**probe, "initial_delay_seconds": 10}
    container["readiness_probe"] = probe
    return container


def scaled_object_spec(
    events: EventsSize, queue_url: pulumi.Input[str], region: str
) -> dict[str, object]:
    """KEDA's ScaledObject: the worker Deployment between the tier's minimum and maximum,
    one pod per ``messages_per_worker`` messages (waiting and in flight) in the queue."""
    return {
        "scaleTargetRef": {"name": WORKER},
        "minReplicaCount": events.min_workers,
        "maxReplicaCount": events.max_workers,
        "pollingInterval": KEDA_POLLING_SECONDS,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    "scaleDown": {"stabilizationWindowSeconds": m.SCALE_DOWN_STABILIZATION_SECONDS}
                }
            }
        },
        "triggers": [
            {
                "type": "aws-sqs-queue",
                "authenticationRef": {"name": WORKER},
                "metadata": {
                    "queueURL": queue_url,
                    "queueLength": str(events.messages_per_worker),
                    "awsRegion": region,
                    "scaleOnInFlight": "true",
                },
            }
        ],
    }


def event_worker(
    parent: pulumi.Resource,
    name: str,
    *,
    cluster: ClusterRef,
    namespace: pulumi.Input[str],
    account_namespace: str,
    tags: dict[str, str],
    region: str,
    image: pulumi.Input[str],
    events: EventsSize,
    hpa_targets: tuple[int, int],
    models: BucketRef,
    queue: EventQueue | None,
    endpoint: SageMakerEndpoint | None,
    resources: m.Resources,
    placement: m.Placement,
    config_map: pulumi.Input[str],
    secrets: Sequence[pulumi.Input[str]],
    depends_on: Sequence[pulumi.Resource],
) -> k8s.apps.v1.Deployment:
    """The worker's role (trusted for its service account in ``account_namespace``), service
    account, Deployment, PDB and autoscaling (``hpa_targets``: CPU and memory percent where
    an HPA scales it). ``depends_on``: the namespace, its ConfigMap and Secrets, and the
    bootstrap Job that creates its login."""

    def on_cluster(*after: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=parent, provider=cluster.k8s_provider, depends_on=list(after)
        )

    policy = worker_policy(models, queue, endpoint)
    role = irsa_role(
        parent, name, WORKER, policy, cluster=cluster, namespace=account_namespace, tags=tags
    )
    labels = m.labels(WORKER)
    account = k8s.core.v1.ServiceAccount(
        f"{name}-{WORKER}-sa",
        metadata={
            "name": WORKER,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"eks.amazonaws.com/role-arn": role.arn},
        },
        automount_service_account_token=False,
        opts=on_cluster(*depends_on[:1]),
    )
    pod = m.pod_spec(
        container=worker_container(image, events, endpoint, resources, config_map),
        service_account=WORKER,
        placement=placement,
        restart_policy="Always",
        topology_labels=labels,
        # SIGTERM stops receiving; the batch in hand finishes (or its messages reappear
        # after the visibility timeout and another worker takes them).
        grace_seconds=events.batch_seconds + 15,
        secret_volumes=[m.secret_volume(WORKER, secrets)],
    )
    deployment = k8s.apps.v1.Deployment(
        f"{name}-{WORKER}",
        metadata={"name": WORKER, "namespace": namespace, "labels": labels},
        spec=m.deployment_spec(pod_labels=labels, pod=pod),
        opts=on_cluster(account, *depends_on),
    )
    k8s.policy.v1.PodDisruptionBudget(
        f"{name}-{WORKER}-pdb",
        metadata={"name": WORKER, "namespace": namespace, "labels": labels},
        spec=m.pdb_spec(labels),
        opts=on_cluster(*depends_on[:1]),
    )
    if queue is None or cluster.queue_autoscaler is None:
        _hpa(name, namespace, deployment, events, hpa_targets, on_cluster(deployment))
    else:
        _queue_scaling(
            parent,
            name,
            namespace,
            deployment,
            events,
            region,
            queue,
            cluster.queue_autoscaler,
            provider=cluster.k8s_provider,
        )
    return deployment


def _hpa(
    name: str,
    namespace: pulumi.Input[str],
    deployment: k8s.apps.v1.Deployment,
    events: EventsSize,
    targets: tuple[int, int],
    opts: pulumi.ResourceOptions,
) -> None:
    """A CPU/memory HPA between the tier's minimum and maximum workers (the table queue)."""
    cpu_percent, memory_percent = targets
    k8s.autoscaling.v2.HorizontalPodAutoscaler(
        f"{name}-{WORKER}-hpa",
        metadata={"name": WORKER, "namespace": namespace, "labels": m.labels(WORKER)},
        spec=m.hpa_spec(
            deployment=deployment.metadata.apply(lambda meta: meta.name or WORKER),
            min_replicas=events.min_workers,
            max_replicas=events.max_workers,
            cpu_percent=cpu_percent,
            memory_percent=memory_percent,
        ),
        opts=opts,
    )


def _queue_scaling(
    parent: pulumi.Resource,
    name: str,
    namespace: pulumi.Input[str],
    deployment: k8s.apps.v1.Deployment,
    events: EventsSize,
    region: str,
    queue: EventQueue,
    keda: QueueAutoscaler,
    *,
    provider: pulumi.ProviderResource,
) -> None:
    """KEDA's ScaledObject on the SQS queue's depth (it owns the HPA it makes), and the
    operator's role's read of that queue."""
    labels = m.labels(WORKER)

    def on_cluster(*after: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(after))

    aws.iam.RolePolicy(
        f"{name}-queue-scaler-policy",
        role=keda.role_name,
        policy=pulumi.Output.from_input(queue.arn).apply(queue_scaler_policy),
        opts=owned(parent),
    )
    auth = k8s.apiextensions.CustomResource(
        f"{name}-{WORKER}-trigger-auth",
        api_version="keda.sh/v1alpha1",
        kind="TriggerAuthentication",
        metadata={"name": WORKER, "namespace": namespace, "labels": labels},
        # The operator's own IRSA role (identityOwner keda, the default).
        spec={"podIdentity": {"provider": "aws"}},
        # KEDA's release installs the CRDs.
        opts=on_cluster(keda.release),
    )
    k8s.apiextensions.CustomResource(
        f"{name}-{WORKER}-scaler",
        api_version="keda.sh/v1alpha1",
        kind="ScaledObject",
        metadata={"name": WORKER, "namespace": namespace, "labels": labels},
        spec=scaled_object_spec(events, queue.url, region),
        opts=on_cluster(keda.release, auth, deployment),
    )
