"""The weekly archive job: it exports the audit log's closed months to the audit archive
(``archive``), then applies the tier's retention (app/jobs/lifecycle/retention.py): the
expired students purged as the purge login, the expired archived months destroyed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.config.tier import RetentionSize
from components.shared import k8s_manifests as m
from components.workloads.settings import ARCHIVER, RETENTION, retention_env


def archive_cron_job(
    name: str,
    *,
    image: pulumi.Input[str],
    retention: RetentionSize,
    schedule: str,
    time_zone: str,
    namespace: pulumi.Input[str],
    config_map: pulumi.Input[str],
    app_secret: pulumi.Input[str],
    database_secrets: Mapping[str, pulumi.Input[str]],
    env: Sequence[k8s.core.v1.EnvVarArgsDict],
    resources: m.Resources,
    placement: m.Placement,
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.CronJob:
    """The archive CronJob, ``<name>-archiver``, at ``schedule`` in ``time_zone``, as the
    archiver's login; with the purge login's Secret (``database_secrets[RETENTION]``) where
    the tier keeps student records for a set time. The retention is its own env: a change
    updates this CronJob only, not every workload's ConfigMap."""
    labels = m.labels(ARCHIVER)
    container = m.app_container(
        name=ARCHIVER,
        image=image,
        args=["archive"],
        resources=resources,
        config_map=config_map,
        serve=False,
    )
    secrets = [app_secret, database_secrets[ARCHIVER]]
    if RETENTION in database_secrets:
        secrets.append(database_secrets[RETENTION])
    archive_env = list(env)
    archive_env += [{"name": e["name"], "value": e["value"]} for e in retention_env(retention)]
    container["env"] = archive_env
    return k8s.batch.v1.CronJob(
        f"{name}-{ARCHIVER}",
        metadata={"name": ARCHIVER, "namespace": namespace, "labels": labels},
        spec=m.cron_job_spec(
            schedule=schedule,
            time_zone=time_zone,
            pod_labels=labels,
            pod=m.pod_spec(
                container=container,
                service_account=ARCHIVER,
                placement=placement,
                restart_policy="Never",
                secret_volumes=[m.secret_volume(ARCHIVER, secrets)],
            ),
            deadline_seconds=m.ARCHIVE_DEADLINE_SECONDS,
            backoff_limit=1,
        ),
        opts=opts,
    )
