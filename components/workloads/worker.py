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

from components.shared import k8s_manifests as m
from components.shared.contract import WORKER_METRICS_PORT, owned
from components.shared.iam import queue_scaler_policy
from components.workloads.args import WorkloadsArgs
from components.workloads.role_policies import irsa_role, worker_policy
from components.workloads.settings import WORKER

# How often KEDA reads the queue's depth: a burst of events gets workers within seconds.
KEDA_POLLING_SECONDS = 15
HEALTH_PATH = "/healthz"


def worker_container(
    args: WorkloadsArgs,
    resources: m.Resources,
    config_map: pulumi.Input[str],
    secrets: Sequence[pulumi.Input[str]],
) -> k8s.core.v1.ContainerArgsDict:
    """The app image running ``worker``: its pool, the endpoint it rescores through, and its
    metrics and liveness port."""
    container = m.app_container(
        name=WORKER,
        image=args.image,
        args=["worker"],
        resources=resources,
        config_map=config_map,
        secrets=secrets,
        serve=False,
    )
    events = args.events
    env: list[k8s.core.v1.EnvVarArgsDict] = [
        {"name": "DB_POOL_MIN", "value": "1"},
        {"name": "DB_POOL_MAX", "value": str(events.worker_db_connections)},
        # The queue's own numbers (SQS: its visibility timeout and redrive policy), so the
        # worker's table queue and its dead-lettering count the same way.
        {"name": "WORKER_VISIBILITY_SECONDS", "value": str(events.visibility_timeout_seconds)},
        {"name": "WORKER_MAX_RECEIVES", "value": str(events.max_receive_count)},
    ]
    if args.sagemaker is not None:
        env.append({"name": "SAGEMAKER_ENDPOINT_NAME", "value": args.sagemaker.name})
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


def scaled_object_spec(args: WorkloadsArgs, queue_url: pulumi.Input[str]) -> dict[str, object]:
    """KEDA's ScaledObject: the worker Deployment between the tier's minimum and maximum,
    one pod per ``messages_per_worker`` messages (waiting and in flight)."""
    events = args.events
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
                    "awsRegion": args.region,
                    "scaleOnInFlight": "true",
                },
            }
        ],
    }


def event_worker(
    parent: pulumi.Resource,
    name: str,
    args: WorkloadsArgs,
    *,
    namespace: pulumi.Input[str],
    resources: m.Resources,
    placement: m.Placement,
    config_map: pulumi.Input[str],
    secrets: Sequence[pulumi.Input[str]],
    depends_on: Sequence[pulumi.Resource],
) -> k8s.apps.v1.Deployment:
    """The worker's role, service account, Deployment, PDB and autoscaling. ``depends_on``:
    the namespace, its ConfigMap and Secrets, and the bootstrap Job that creates its login."""

    def on_cluster(*after: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=parent, provider=args.k8s_provider, depends_on=list(after)
        )

    role = irsa_role(parent, name, args, WORKER, worker_policy(args))
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
        container=worker_container(args, resources, config_map, secrets),
        service_account=WORKER,
        placement=placement,
        restart_policy="Always",
        topology_labels=labels,
        # SIGTERM stops receiving; the batch in hand finishes (or its messages reappear
        # after the visibility timeout and another worker takes them).
        grace_seconds=args.events.batch_seconds + 15,
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
    _autoscaling(parent, name, args, namespace, deployment)
    return deployment


def _autoscaling(
    parent: pulumi.Resource,
    name: str,
    args: WorkloadsArgs,
    namespace: pulumi.Input[str],
    deployment: k8s.apps.v1.Deployment,
) -> None:
    """KEDA's ScaledObject on SQS tiers (it owns the HPA it makes), an HPA elsewhere."""
    labels, events = m.labels(WORKER), args.events
    queue, keda = args.events_queue, args.queue_autoscaler

    def on_cluster(*after: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=parent, provider=args.k8s_provider, depends_on=list(after)
        )

    if queue is None or keda is None:
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-{WORKER}-hpa",
            metadata={"name": WORKER, "namespace": namespace, "labels": labels},
            spec=m.hpa_spec(
                deployment=deployment.metadata.apply(lambda meta: meta.name or WORKER),
                min_replicas=events.min_workers,
                max_replicas=events.max_workers,
                cpu_percent=args.api.cpu_target_percent,
                memory_percent=args.api.memory_target_percent,
            ),
            opts=on_cluster(deployment),
        )
        return
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
        spec=scaled_object_spec(args, queue.url),
        opts=on_cluster(keda.release, auth, deployment),
    )
