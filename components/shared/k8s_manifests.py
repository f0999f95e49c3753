"""Pure builders of the Kubernetes specs of the app, typed with pulumi-kubernetes'
``...ArgsDict`` TypedDicts so that mypy checks every field name.

The workloads component passes these to the typed resources; tests call them directly.
Labels are built in one place (``labels``) so selectors cannot drift from pod labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.shared.contract import API_PORT, DEREGISTRATION_DELAY_SECONDS

APP = "student-success"
SERVICE_PORT = 80
# The app's probe routes: /health answers while the process is up, /ready only while the
# database answers.
LIVENESS_PATH = "/health"
READINESS_PATH = "/ready"
RUN_AS_USER = 10001
# Seconds the HPA waits before scaling down: a burst that ends does not shed pods at once,
# so the next burst (a school's bell) finds them still warm instead of flapping.
SCALE_DOWN_STABILIZATION_SECONDS = 300
# A training run that takes longer than this is stuck; the next night retries.
TRAINING_DEADLINE_SECONDS = 1800
TRAINING_BACKOFF_LIMIT = 2
ARCHIVE_DEADLINE_SECONDS = 3600
# Migrations of one release; a failure fails `pulumi up` with the Job's reason.
BOOTSTRAP_DEADLINE_SECONDS = 900
BOOTSTRAP_BACKOFF_LIMIT = 2
# A terminating API pod keeps serving while the load balancer deregisters it (the controller
# removes it from the target group when termination starts), then drains its requests.
PRE_STOP_SECONDS = 15
API_GRACE_SECONDS = DEREGISTRATION_DELAY_SECONDS + PRE_STOP_SECONDS + 15
# The app's credentials are files here (SECRETS_DIR in the ConfigMap; pydantic-settings reads
# one file per setting), never environment variables: the environment of a process is readable
# in /proc/<pid>/environ, inherited by every child and written into crash dumps.
SECRETS_DIR = "/var/run/secrets/ssp"
# Owner root, group the pod's fsGroup (the app's group): the app reads them, nobody writes.
SECRET_FILE_MODE = 0o440
JOB_HISTORY_SUCCESSFUL = 3
JOB_HISTORY_FAILED = 3


def labels(component: str) -> dict[str, str]:
    """Labels of every object of a component; selectors use exactly these."""
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container (Kubernetes quantities)."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def spec(self) -> k8s.core.v1.ResourceRequirementsArgsDict:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


def pod_security_context() -> k8s.core.v1.PodSecurityContextArgsDict:
    """Pod-level settings the ``restricted`` Pod Security Standard requires."""
    return {
        "run_as_non_root": True,
        "run_as_user": RUN_AS_USER,
        "run_as_group": RUN_AS_USER,
        "fs_group": RUN_AS_USER,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> k8s.core.v1.SecurityContextArgsDict:
    return {
        "allow_privilege_escalation": False,
        "read_only_root_filesystem": True,
        "run_as_non_root": True,
        "run_as_user": RUN_AS_USER,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def secret_volume(
    container: str, secrets: Sequence[pulumi.Input[str]]
) -> k8s.core.v1.VolumeArgsDict:
    """The Secrets of the ``container`` (its name) as one directory of files, one per key,
    which ``app_container`` mounts read-only at ``SECRETS_DIR``."""
    return {
        "name": _secrets_volume_name(container),
        "projected": {
            "default_mode": SECRET_FILE_MODE,
            "sources": [{"secret": {"name": secret}} for secret in secrets],
        },
    }


def _secrets_volume_name(container: str) -> str:
    return f"{container}-secrets"


@dataclass(frozen=True)
class Placement:
    """Where a pod runs: a node group's label and, for dedicated groups, its taint."""

    node_group: str | None
    dedicated: bool = False

    def node_selector(self) -> dict[str, str] | None:
        return {"workload": self.node_group} if self.node_group else None

    def tolerations(self) -> list[k8s.core.v1.TolerationArgsDict] | None:
        if not (self.node_group and self.dedicated):
            return None
        return [
            {
                "key": "workload",
                "operator": "Equal",
                "value": self.node_group,
                "effect": "NoSchedule",
            }
        ]


def pod_spec(
    *,
    container: k8s.core.v1.ContainerArgsDict,
    service_account: pulumi.Input[str],
    placement: Placement,
    restart_policy: str,
    topology_labels: Mapping[str, str] | None = None,
    grace_seconds: int = 30,
    init_containers: Sequence[k8s.core.v1.ContainerArgsDict] = (),
    secret_volumes: Sequence[k8s.core.v1.VolumeArgsDict] = (),
) -> k8s.core.v1.PodSpecArgsDict:
    """A hardened pod: non-root, read-only root with a writable /tmp, IRSA credentials
    from the projected token (no Kubernetes API token: the app never calls the API), each
    container's Secrets (``secret_volumes``, one ``secret_volume`` per container) as files."""
    spec: k8s.core.v1.PodSpecArgsDict = {
        "service_account_name": service_account,
        "automount_service_account_token": False,
        "security_context": pod_security_context(),
        "restart_policy": restart_policy,
        "containers": [container],
        "volumes": [{"name": "tmp", "empty_dir": {"size_limit": "1Gi"}}, *secret_volumes],
        "termination_grace_period_seconds": grace_seconds,
    }
    if init_containers:
        spec["init_containers"] = list(init_containers)
    selector = placement.node_selector()
    if selector:
        spec["node_selector"] = selector
    tolerations = placement.tolerations()
    if tolerations:
        spec["tolerations"] = tolerations
    if topology_labels is not None:
        spec["topology_spread_constraints"] = [
            {
                "max_skew": 1,
                "topology_key": key,
                "when_unsatisfiable": "ScheduleAnyway",
                "label_selector": {"match_labels": dict(topology_labels)},
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ]
    return spec


def app_container(
    *,
    name: str,
    image: pulumi.Input[str],
    args: Sequence[str],
    resources: Resources,
    config_map: pulumi.Input[str],
    serve: bool,
) -> k8s.core.v1.ContainerArgsDict:
    """The app image running one of its commands (``serve``, ``train``, ``archive``,
    ``migrate``), its environment from the ConfigMap, its Secrets as files at
    ``SECRETS_DIR`` (the pod's ``secret_volume(name, ...)``)."""
    container: k8s.core.v1.ContainerArgsDict = {
        "name": name,
        "image": image,
        "image_pull_policy": "IfNotPresent",
        "args": list(args),
        "env_from": [{"config_map_ref": {"name": config_map}}],
        "resources": resources.spec(),
        "security_context": container_security_context(),
        "volume_mounts": [
            {"name": "tmp", "mount_path": "/tmp"},
            {"name": _secrets_volume_name(name), "mount_path": SECRETS_DIR, "read_only": True},
        ],
    }
    if serve:
        container["ports"] = [{"name": "http", "container_port": API_PORT, "protocol": "TCP"}]
        container["liveness_probe"] = {
            "http_get": {"path": LIVENESS_PATH, "port": "http"},
            "initial_delay_seconds": 10,
            "period_seconds": 10,
            "timeout_seconds": 2,
            "failure_threshold": 3,
        }
        container["readiness_probe"] = {
            "http_get": {"path": READINESS_PATH, "port": "http"},
            "period_seconds": 5,
            "timeout_seconds": 2,
            "failure_threshold": 3,
        }
        container["lifecycle"] = {"pre_stop": {"sleep": {"seconds": PRE_STOP_SECONDS}}}
    return container


def deployment_spec(
    *, pod_labels: Mapping[str, str], pod: k8s.core.v1.PodSpecArgsDict
) -> k8s.apps.v1.DeploymentSpecArgsDict:
    """No ``replicas``: the HPA owns the count (an applied value would fight it)."""
    return {
        "selector": {"match_labels": dict(pod_labels)},
        "strategy": {
            "type": "RollingUpdate",
            # Never below the current capacity during a rollout.
            "rolling_update": {"max_unavailable": 0, "max_surge": "25%"},
        },
        "revision_history_limit": 5,
        "template": {"metadata": {"labels": dict(pod_labels)}, "spec": pod},
    }


def service_spec(pod_labels: Mapping[str, str]) -> k8s.core.v1.ServiceSpecArgsDict:
    return {
        "type": "ClusterIP",
        "selector": dict(pod_labels),
        "ports": [{"name": "http", "port": SERVICE_PORT, "target_port": "http", "protocol": "TCP"}],
    }


def hpa_spec(
    *,
    deployment: pulumi.Input[str],
    min_replicas: int,
    max_replicas: int,
    cpu_percent: int,
    memory_percent: int,
) -> k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgsDict:
    """Scale on CPU and memory utilization of the requests: the API's scaling triggers
    (CPU over 70 %, memory over 80 % by the catalog's defaults)."""
    if not 1 <= min_replicas <= max_replicas:
        raise ValueError(f"HPA replicas {min_replicas}-{max_replicas}: need 1 <= min <= max")

    def target(resource: str, percent: int) -> k8s.autoscaling.v2.MetricSpecArgsDict:
        return {
            "type": "Resource",
            "resource": {
                "name": resource,
                "target": {"type": "Utilization", "average_utilization": percent},
            },
        }

    return {
        "scale_target_ref": {"api_version": "apps/v1", "kind": "Deployment", "name": deployment},
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "metrics": [target("cpu", cpu_percent), target("memory", memory_percent)],
        "behavior": {
            "scale_down": {"stabilization_window_seconds": SCALE_DOWN_STABILIZATION_SECONDS}
        },
    }


def pdb_spec(pod_labels: Mapping[str, str]) -> k8s.policy.v1.PodDisruptionBudgetSpecArgsDict:
    """At most one API pod evicted at a time. maxUnavailable (not minAvailable 1) so that
    a single-replica dev API never blocks a node drain."""
    return {"max_unavailable": 1, "selector": {"match_labels": dict(pod_labels)}}


def job_spec(
    *, pod_labels: Mapping[str, str], pod: k8s.core.v1.PodSpecArgsDict
) -> k8s.batch.v1.JobSpecArgsDict:
    """The bootstrap Job of a release: kept after it finishes (no TTL), so that Pulumi does
    not find it gone and run it again; the next release's Job replaces it."""
    return {
        "active_deadline_seconds": BOOTSTRAP_DEADLINE_SECONDS,
        "backoff_limit": BOOTSTRAP_BACKOFF_LIMIT,
        "template": {"metadata": {"labels": dict(pod_labels)}, "spec": pod},
    }


def cron_job_spec(
    *,
    schedule: str,
    time_zone: str,
    pod_labels: Mapping[str, str],
    pod: k8s.core.v1.PodSpecArgsDict,
    deadline_seconds: int,
    backoff_limit: int,
    failure_policy: k8s.batch.v1.PodFailurePolicyArgsDict | None = None,
    indexed: int | None = None,
) -> k8s.batch.v1.CronJobSpecArgsDict:
    """One run at a time (the trainer also takes a database lock, so two runs never train
    the same district at once). ``indexed``: an
    Indexed Job of that many pods at once (JOB_COMPLETION_INDEX 0..N-1), each index retried
    ``backoff_limit`` times on its own, so a failed index never reruns the others."""
    job: k8s.batch.v1.JobSpecArgsDict = {
        "active_deadline_seconds": deadline_seconds,
        "backoff_limit": backoff_limit,
        "ttl_seconds_after_finished": 86_400,
        "template": {"metadata": {"labels": dict(pod_labels)}, "spec": pod},
    }
    if indexed is not None:
        del job["backoff_limit"]
        job |= {
            "completion_mode": "Indexed",
            "completions": indexed,
            "parallelism": indexed,
            "backoff_limit_per_index": backoff_limit,
        }
    if failure_policy is not None:
        job["pod_failure_policy"] = failure_policy
    return {
        "schedule": schedule,
        "time_zone": time_zone,
        "concurrency_policy": "Forbid",
        "starting_deadline_seconds": 600,
        "successful_jobs_history_limit": JOB_HISTORY_SUCCESSFUL,
        "failed_jobs_history_limit": JOB_HISTORY_FAILED,
        "job_template": {"metadata": {"labels": dict(pod_labels)}, "spec": job},
    }


def default_deny_policy() -> k8s.networking.v1.NetworkPolicySpecArgsDict:
    """Every pod of the namespace: no traffic in or out unless another policy allows it."""
    return {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]}


def api_ingress_policy(
    pod_labels: Mapping[str, str], load_balancer_cidrs: Sequence[str]
) -> k8s.networking.v1.NetworkPolicySpecArgsDict:
    """The ALB (in the public subnets) reaches the API pods on 8080."""
    return {
        "pod_selector": {"match_labels": dict(pod_labels)},
        "policy_types": ["Ingress"],
        "ingress": [
            {
                "from_": [{"ip_block": {"cidr": cidr}} for cidr in load_balancer_cidrs],
                "ports": [{"protocol": "TCP", "port": API_PORT}],
            }
        ],
    }


def egress_policy(
    data_cidrs: Sequence[str], *, database_port: int, cache_port: int | None
) -> k8s.networking.v1.NetworkPolicySpecArgsDict:
    """App pods may reach: the data stores in the isolated subnets, cluster DNS, and HTTPS
    (S3, STS for IRSA, SageMaker, ECR; through the NAT or VPC endpoints)."""
    data_ports: list[k8s.networking.v1.NetworkPolicyPortArgsDict] = [
        {"protocol": "TCP", "port": database_port}
    ]
    if cache_port is not None:
        data_ports.append({"protocol": "TCP", "port": cache_port})
    return {
        "pod_selector": {"match_labels": {"app.kubernetes.io/name": APP}},
        "policy_types": ["Egress"],
        "egress": [
            {"to": [{"ip_block": {"cidr": cidr}} for cidr in data_cidrs], "ports": data_ports},
            {
                "to": [
                    {
                        "namespace_selector": {
                            "match_labels": {"kubernetes.io/metadata.name": "kube-system"}
                        },
                        "pod_selector": {"match_labels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            },
            {
                "to": [{"ip_block": {"cidr": "0.0.0.0/0"}}],
                "ports": [{"protocol": "TCP", "port": 443}],
            },
        ],
    }
