"""What the program registers for a workload, read as Kubernetes (and SageMaker) would run it:
a container's command, its environment from ``envFrom`` sources and ``env``, the Secrets its
volumes mount as files, its readiness probe and deadline. Used by the first-day rehearsal
(``tools.rehearse``)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from tools.harness import Resource, StackRun

CRON_JOB = "kubernetes:batch/v1:CronJob"
CONFIG_MAP, SECRET = "kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:Secret"
BOOTSTRAP = ("kubernetes:batch/v1:Job", "workloads-bootstrap")
API = ("kubernetes:apps/v1:Deployment", "workloads-api")
WORKER = ("kubernetes:apps/v1:Deployment", "workloads-worker")
TRAINER, ARCHIVER = (CRON_JOB, "workloads-trainer"), (CRON_JOB, "workloads-archiver")
PURGER = (CRON_JOB, "workloads-purger")  # a suspended CronJob: an operator's on-demand Job
SAGEMAKER_MODEL = "aws:sagemaker/model:Model"
SECRET_FILES = "(secret files)"
"""Not a variable name: the key under which ``container_env`` lists the settings the container
reads from its mounted Secrets (comma-separated); they are in the mapping too, by their own
names, so that the endpoints in them are mapped like the rest. ``rehearsal_env.app_process``
turns them back into files."""


class Container(NamedTuple):  # one workload's container, as its manifest describes it
    resource: Resource
    args: list[str]
    env: dict[str, str]
    readiness_path: str | None
    deadline_seconds: int | None
    init: list[tuple[list[str], dict[str, str]]]  # its init containers' args and env, in order


def source_data(resource: Resource) -> dict[str, str]:
    """A ConfigMap's ``data``; a Secret's ``data`` (base64) overlaid by its ``stringData``."""
    data = {k: str(v) for k, v in (resource.get("data") or {}).items()}
    if resource.type == CONFIG_MAP:
        return data
    decoded = {k: base64.b64decode(v).decode() for k, v in data.items()}
    return {**decoded, **{k: str(v) for k, v in (resource.get("stringData") or {}).items()}}


def _source(run: StackRun, type_: str, name: str) -> Resource:
    """The ConfigMap or Secret a pod names; Pulumi autonames each <resource name>-<8 hex>."""
    found = [r for r in run.of_type(type_) if name.rpartition("-")[0] == r.name]
    if not found:
        raise LookupError(f"no {type_.rsplit(':')[-1]} {name}: the pod would not start")
    return found[0]


def mounted_secrets(
    run: StackRun, container: Mapping[str, Any], volumes: list[Mapping[str, Any]]
) -> dict[str, str]:
    """The files of the Secrets the container mounts (secret or projected volumes of its pod's
    ``volumes``), by file name."""
    by_name = {v.get("name"): v for v in volumes}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = by_name.get(mount.get("name"))
        if volume is None:
            raise LookupError(f"volume {mount.get('name')}: not in the pod, it would not start")
        sources = (volume.get("projected") or {}).get("sources") or []
        names = [(volume.get("secret") or {}).get("secretName")]
        names += [(source.get("secret") or {}).get("name") for source in sources]
        for name in filter(None, names):
            files.update(source_data(_source(run, SECRET, name)))
    return files


def container_env(
    run: StackRun, container: Mapping[str, Any], volumes: list[Mapping[str, Any]] | None = None
) -> dict[str, str]:
    """The environment Kubernetes gives a container: each ``envFrom`` source in order (later
    keys win), then its ``env`` list, which wins over them; with the files of the Secrets it
    mounts (``volumes``: its pod's), listed under ``SECRET_FILES``."""
    env: dict[str, str] = {}
    for entry in container.get("envFrom") or []:
        type_ = CONFIG_MAP if "configMapRef" in entry else SECRET
        name = (entry.get("configMapRef") or entry.get("secretRef") or {}).get("name", "")
        data = source_data(_source(run, type_, name))
        env.update({entry.get("prefix", "") + k: v for k, v in data.items()})
    if files := mounted_secrets(run, container, volumes or []):
        env.update(files)
        env[SECRET_FILES] = ",".join(sorted(files))
    for var in container.get("env") or []:
        if "value" not in var:
            raise LookupError(f"env {var['name']}: only literal values are rehearsed")
        env[var["name"]] = str(var["value"])
    return env


def find_container(run: StackRun, workload: tuple[str, str], after: str = "") -> Container:
    """The container of a registered Job, CronJob or Deployment. It must depend on the URN
    ``after`` (``dependsOn``), else Pulumi could create it first."""
    type_, name = workload
    found = [r for r in run.of_type(type_) if r.name == name]
    if not found:
        raise LookupError(f"no {type_.rsplit(':')[-1]} named {name} is registered")
    if after and after not in found[0].options.depends_on:
        raise LookupError(f"{name} does not depend on {after.rpartition('::')[2]}")
    job = "spec.jobTemplate.spec" if type_ == CRON_JOB else "spec"
    (container,) = found[0].get(f"{job}.template.spec.containers")
    probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
    deadline = found[0].get(f"{job}.activeDeadlineSeconds")
    volumes = found[0].get(f"{job}.template.spec.volumes") or []
    args = [str(a) for a in container.get("args") or []]
    env = container_env(run, container, volumes)
    init = [([str(a) for a in c.get("args") or []], container_env(run, c, volumes))
            for c in found[0].get(f"{job}.template.spec.initContainers") or []]  # fmt: skip
    return Container(
        found[0], args, env, probe.get("path"), int(deadline) if deadline else None, init
    )


def cache_token(run: StackRun) -> str | None:
    """The auth token of the stack's cache, where a Secret (or ConfigMap) has REDIS_URL."""
    for resource in (*run.of_type(SECRET), *run.of_type(CONFIG_MAP)):
        if url := source_data(resource).get("REDIS_URL"):
            return unquote(urlsplit(url).password or "")
    return None


def sagemaker_container(run: StackRun) -> Container | None:
    """The SageMaker model's container, as the endpoint runs it: the image's default command
    (``serve``) with the model's environment; None where the stack has no endpoint."""
    models = run.of_type(SAGEMAKER_MODEL)
    if not models:
        return None
    (model,) = models
    env = {k: str(v) for k, v in (model.get("primaryContainer.environment") or {}).items()}
    return Container(model, ["serve"], env, "/ping", None, [])
