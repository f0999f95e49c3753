"""The nightly training: an Indexed Job of N pods (N from the tier's expected schools and
``TrainingSize.schools_per_shard``), pod i running ``train --shards N`` as shard i of the run
(app/model/sharded_training.py). Every pod carries the import step, which only index 0
performs; shard 0 then
refreshes the features and opens the run, the others wait for it, and the shard that
completes the set publishes once. A failed index is retried on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.config.tier import TrainingSize
from components.shared import k8s_manifests as m
from components.shared.contract import SageMakerEndpoint
from components.workloads.pipeline import pipeline_failure_policy, pipeline_steps
from components.workloads.rollout import rollout_env
from components.workloads.settings import TRAINER


def shard_resources(training: TrainingSize) -> m.Resources:
    return m.Resources(training.shard_cpu, "1Gi", training.shard_cpu, training.shard_memory)


def training_cron_job(
    name: str,
    *,
    image: pulumi.Input[str],
    training: TrainingSize,
    shards: int,
    endpoint: SageMakerEndpoint | None,
    schedule: str,
    time_zone: str,
    namespace: pulumi.Input[str],
    config_map: pulumi.Input[str],
    app_secret: pulumi.Input[str],
    database_secrets: Mapping[str, pulumi.Input[str]],
    env: Sequence[k8s.core.v1.EnvVarArgsDict],
    import_resources: m.Resources,
    placement: m.Placement,
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.CronJob:
    """The nightly pipeline's CronJob, ``<name>-trainer``, at ``schedule`` in ``time_zone``:
    ``shards`` pods of the training slice's size, rolling ``endpoint`` where there is one.
    The import step keeps ``import_resources`` (the export's size, not a shard's, sets its
    needs)."""
    labels = m.labels(TRAINER)
    resources = shard_resources(training)
    container = m.app_container(
        name=TRAINER,
        image=image,
        args=["train", "--shards", str(shards)],
        resources=resources,
        config_map=config_map,
        serve=False,
    )
    container["env"] = list(env) + rollout_env(endpoint)
    steps, step_volumes = pipeline_steps(
        image=image,
        resources=import_resources,
        config_map=config_map,
        app_secret=app_secret,
        database_secrets=database_secrets,
        env=env,
    )
    return k8s.batch.v1.CronJob(
        f"{name}-{TRAINER}",
        metadata={"name": TRAINER, "namespace": namespace, "labels": labels},
        spec=m.cron_job_spec(
            schedule=schedule,
            time_zone=time_zone,
            pod_labels=labels,
            pod=m.pod_spec(
                container=container,
                service_account=TRAINER,
                placement=placement,
                restart_policy="Never",
                init_containers=steps,
                secret_volumes=[
                    m.secret_volume(TRAINER, [app_secret, database_secrets[TRAINER]]),
                    *step_volumes,
                ],
            ),
            deadline_seconds=m.TRAINING_DEADLINE_SECONDS,
            backoff_limit=m.TRAINING_BACKOFF_LIMIT,
            failure_policy=pipeline_failure_policy(),
            indexed=shards,
        ),
        opts=opts,
    )
