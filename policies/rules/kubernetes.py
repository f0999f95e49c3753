"""Kubernetes workloads: non-root, limited, probed, unprivileged, no hostPath, pinned images,
Secrets as files.

Applies to the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs,
CronJobs (``spec.jobTemplate.spec.template``) and bare Pods. Helm releases are opaque to a
policy pack (their manifests are rendered by the provider), so they are not checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs

from ._util import as_list, get, known, num, rule

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
REPLICA_SET = "kubernetes:apps/v1:ReplicaSet"
JOB = "kubernetes:batch/v1:Job"
CRON_JOB = "kubernetes:batch/v1:CronJob"
POD = "kubernetes:core/v1:Pod"

POD_SPEC_PATHS = {
    DEPLOYMENT: "spec.template.spec",
    STATEFUL_SET: "spec.template.spec",
    DAEMON_SET: "spec.template.spec",
    REPLICA_SET: "spec.template.spec",
    JOB: "spec.template.spec",
    CRON_JOB: "spec.jobTemplate.spec.template.spec",
    POD: "spec",
}
WORKLOADS = tuple(POD_SPEC_PATHS)
# Batch pods run to completion: readiness/liveness probes do not apply to them.
LONG_RUNNING = (DEPLOYMENT, STATEFUL_SET, DAEMON_SET, REPLICA_SET)


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = get(props, POD_SPEC_PATHS.get(resource_type, "spec"))
    return spec if isinstance(spec, Mapping) else {}


def containers(spec: Mapping[str, Any], init: bool = True) -> Iterator[Mapping[str, Any]]:
    kinds = ("initContainers", "containers") if init else ("containers",)
    for kind in kinds:
        for container in as_list(spec.get(kind)):
            if isinstance(container, Mapping):
                yield container


def _workload(args: ResourceValidationArgs) -> str:
    kind = args.resource_type.rsplit(":", 1)[-1]
    return f"{kind} '{args.name}'"


def _non_root(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = pod_spec(args.resource_type, args.props)
    pod_ctx = spec.get("securityContext") or {}
    for c in containers(spec):
        ctx = c.get("securityContext") or {}
        non_root = get(ctx, "runAsNonRoot", get(pod_ctx, "runAsNonRoot"))
        uid = num(get(ctx, "runAsUser", get(pod_ctx, "runAsUser")))
        if uid == 0 or (non_root is not True and not (uid and uid > 0)):
            report(
                f"{_workload(args)} container '{c.get('name')}' may run as root; set "
                "security_context.run_as_non_root=True (and run_as_user to the image's non-root "
                "UID) on the pod or the container.",
                None,
            )


def _limits(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for c in containers(pod_spec(args.resource_type, args.props)):
        missing = [
            f"{kind}.{res}"
            for kind in ("requests", "limits")
            for res in ("cpu", "memory")
            if not get(c, f"resources.{kind}.{res}")
        ]
        if missing:
            report(
                f"{_workload(args)} container '{c.get('name')}' has no {', '.join(missing)}; set "
                "resources from the catalog (api_cpu_request/limit, api_memory_request/limit) so "
                "the scheduler and the HPA can reason about it.",
                None,
            )


def _probes(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in LONG_RUNNING:
        return
    for c in containers(pod_spec(args.resource_type, args.props), init=False):
        missing = [p for p in ("readinessProbe", "livenessProbe") if not c.get(p)]
        if missing:
            report(
                f"{_workload(args)} container '{c.get('name')}' has no {' or '.join(missing)}; "
                "add HTTP probes on the API's health endpoint so rollouts and restarts wait "
                "for a healthy pod.",
                None,
            )


def _unprivileged(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = pod_spec(args.resource_type, args.props)
    shared = [f for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f) is True]
    if shared:
        report(
            f"{_workload(args)} shares the node's {', '.join(shared)}; remove it.",
            None,
        )
    for c in containers(spec):
        ctx = c.get("securityContext") or {}
        if ctx.get("privileged") is True or ctx.get("allowPrivilegeEscalation") is True:
            report(
                f"{_workload(args)} container '{c.get('name')}' is privileged or may escalate "
                "privileges; set privileged=False and allow_privilege_escalation=False.",
                None,
            )


def _no_host_path(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for volume in as_list(pod_spec(args.resource_type, args.props).get("volumes")):
        if get(volume, "hostPath"):
            report(
                f"{_workload(args)} mounts the node's {get(volume, 'hostPath.path')} through "
                f"hostPath volume '{get(volume, 'name')}'; use an emptyDir, a ConfigMap/Secret "
                "or a PersistentVolumeClaim.",
                None,
            )


def image_tag(image: str) -> str | None:
    """The tag of an image reference; None when pinned by digest; "latest" when absent."""
    if "@" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def _pinned_image(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for c in containers(pod_spec(args.resource_type, args.props)):
        # An image built from the registry's URL is unknown during a first preview.
        image = str(known(partial(c.get, "image"), "") or "")
        if image and image_tag(image) == "latest":
            report(
                f"{_workload(args)} container '{c.get('name')}' runs '{image}', an implicit or "
                "explicit :latest; pin an immutable version tag (config appImageTag) or a digest.",
                None,
            )


def _read_only_root(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for c in containers(pod_spec(args.resource_type, args.props)):
        if get(c, "securityContext.readOnlyRootFilesystem") is not True:
            report(
                f"{_workload(args)} container '{c.get('name')}' has a writable root filesystem; "
                "set security_context.read_only_root_filesystem=True and mount an emptyDir for "
                "scratch space.",
                None,
            )


def _secrets_as_files(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for c in containers(pod_spec(args.resource_type, args.props)):
        from_secret = [e for e in as_list(c.get("envFrom")) if get(e, "secretRef") is not None]
        from_secret += [
            e for e in as_list(c.get("env")) if get(e, "valueFrom.secretKeyRef") is not None
        ]
        if from_secret:
            report(
                f"{_workload(args)} container '{c.get('name')}' takes a Secret into its "
                "environment (envFrom secretRef or env secretKeyRef), where /proc/<pid>/environ, "
                "child processes and crash dumps expose it; mount it read-only as files instead "
                "(components.shared.k8s_manifests.secret_volume).",
                None,
            )


M, A = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY

POLICIES = [
    rule(
        "k8s-run-as-non-root",
        "Pods run as a non-root user.",
        WORKLOADS,
        _non_root,
        M,
    ),
    rule(
        "k8s-resource-limits",
        "Containers declare CPU/memory requests and limits.",
        WORKLOADS,
        _limits,
        M,
    ),
    rule(
        "k8s-probes",
        "Long-running containers declare readiness and liveness probes.",
        WORKLOADS,
        _probes,
        M,
    ),
    rule(
        "k8s-no-privileged",
        "Pods are not privileged, cannot escalate, and do not share host namespaces.",
        WORKLOADS,
        _unprivileged,
        M,
    ),
    rule(
        "k8s-no-host-path",
        "Pods do not mount hostPath volumes.",
        WORKLOADS,
        _no_host_path,
        M,
    ),
    rule(
        "k8s-image-not-latest",
        "Container images are pinned to a version tag or digest, never :latest.",
        WORKLOADS,
        _pinned_image,
        M,
    ),
    rule(
        "k8s-secrets-as-files",
        "Containers read Secrets from mounted files, never from environment variables.",
        WORKLOADS,
        _secrets_as_files,
        M,
    ),
    rule(
        "k8s-read-only-root-filesystem",
        "Containers run with a read-only root filesystem.",
        WORKLOADS,
        _read_only_root,
        A,
    ),
]
