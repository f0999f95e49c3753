"""The nightly pipeline's pod: the district's export imported, then the models trained (with
their report), in that order and only when the import succeeded. Kubernetes runs a pod's init
containers one after another before its main container, and fails the pod when one fails: the
order, without another scheduler. The pod is one index of the training Job
(training_job.py): only index 0's import step imports, and its shard refreshes the features.

Each step logs in as its own database role (the import as ssp_importer, the training as
ssp_trainer) through its own Secret; the pod's service account (the trainer's IRSA role) may
read the drop prefix and write the model store, nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.shared import k8s_manifests as m
from components.shared.alarms import Threshold, metric_alarm
from components.shared.contract import ClusterRef, owned
from components.workloads.settings import IMPORTER, TRAINING_FAILURE_PATTERN

# ``import`` exits 65 when the export has problems (nothing written): retrying the same export
# cannot succeed, so the Job fails at once (the alarm tells the district to re-export).
EXIT_DATA = 65


def pipeline_steps(
    *,
    image: pulumi.Input[str],
    resources: m.Resources,
    config_map: pulumi.Input[str],
    app_secret: pulumi.Input[str],
    database_secrets: Mapping[str, pulumi.Input[str]],
    env: Sequence[k8s.core.v1.EnvVarArgsDict],
) -> tuple[list[k8s.core.v1.ContainerArgsDict], list[k8s.core.v1.VolumeArgsDict]]:
    """The init container before training: import (IMPORT_SOURCE_URL), and the volume of its
    Secrets. The features are refreshed by shard 0 of the run, which the other shards wait for
    (app/model/sharded_training.py)."""
    container = m.app_container(
        name=IMPORTER,
        image=image,
        args=["import"],
        resources=resources,
        config_map=config_map,
        serve=False,
    )
    container["env"] = list(env)
    return [container], [m.secret_volume(IMPORTER, [app_secret, database_secrets[IMPORTER]])]


def pipeline_failure_policy() -> k8s.batch.v1.PodFailurePolicyArgsDict:
    """No retry of a refused export; other failures (a node lost, a timeout) retry."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "on_exit_codes": {
                    "container_name": IMPORTER,
                    "operator": "In",
                    "values": [EXIT_DATA],
                },
            }
        ]
    }


def pipeline_alarm(
    parent: pulumi.Resource,
    name: str,
    *,
    cluster: ClusterRef,
    topic_arn: pulumi.Input[str],
    tags: dict[str, str],
) -> None:
    """Container Insights has no per-CronJob failure metric; the pipeline's own failure lines
    in the cluster's application logs (a command that raised, an export refused) are exact
    and arrive within a minute. The names are the training alarm's from before the import
    joined the pipeline."""
    metrics_namespace = f"StudentSuccess/{cluster.name}"
    failures = aws.cloudwatch.LogMetricFilter(
        f"{name}-training-failures",
        log_group_name=cluster.application_log_group_name,
        pattern=TRAINING_FAILURE_PATTERN,
        metric_transformation={
            "name": "TrainingFailures",
            "namespace": metrics_namespace,
            "value": "1",
            "unit": "Count",
        },
        opts=owned(parent),
    )
    metric_alarm(
        f"{name}-training-failed",
        description="The nightly pipeline failed or refused the district's export"
        " (see the importer's and trainer's logs)",
        namespace=metrics_namespace,
        metric="TrainingFailures",
        dimensions={},
        statistic="Sum",
        # No run, no datapoint: that is not a failure.
        threshold=Threshold(0, period_seconds=3600, periods=1, missing_data="notBreaching"),
        topic_arn=topic_arn,
        tags=tags,
        opts=owned(parent, was=failures),
    )
