"""The IAM policy document of each workload's IRSA role, from what the workloads are given
(the pure documents are in ``components.iam``)."""

from __future__ import annotations

import pulumi

from components.iam import (
    api_role_policy,
    archiver_role_policy,
    queue_sender_statements,
    trainer_role_policy,
    worker_role_policy,
)
from components.workloads.args import WorkloadsArgs
from components.workloads.rollout import rollout_statements


def api_policy(args: WorkloadsArgs) -> pulumi.Output[str]:
    """Models read, the endpoint invoked, events sent where the tier has an SQS queue, the
    district directory read on tier 4."""
    models, endpoint, queue = args.models_bucket, args.sagemaker, args.events_queue
    return pulumi.Output.all(
        models.arn,
        models.kms_key_arn,
        endpoint.arn if endpoint else None,
        queue.arn if queue else None,
        queue.kms_key_arn if queue else None,
        args.directory.table_arn if args.directory else None,
    ).apply(
        lambda v: api_role_policy(
            v[0],
            v[1],
            v[2],
            directory_table_arn=v[5],
            queue=queue_sender_statements(v[3], v[4]) if v[3] else (),
        )
    )


def trainer_policy(args: WorkloadsArgs) -> pulumi.Output[str]:
    models, drop = args.models_bucket, args.drop_bucket
    return pulumi.Output.all(
        models.arn,
        models.kms_key_arn,
        drop.arn,
        drop.kms_key_arn,
        rollout_statements(args.sagemaker, args.region, models.kms_key_arn),
    ).apply(lambda v: trainer_role_policy(v[0], v[1], v[2], v[3], v[4]))


def archiver_policy(args: WorkloadsArgs) -> pulumi.Output[str]:
    archive = args.archive_bucket
    return pulumi.Output.all(archive.arn, archive.kms_key_arn).apply(
        lambda v: archiver_role_policy(v[0], v[1])
    )


def worker_policy(args: WorkloadsArgs) -> pulumi.Output[str]:
    """Models read; the queue consumed where the tier has SQS; the endpoint invoked."""
    queue, endpoint, models = args.events_queue, args.sagemaker, args.models_bucket
    return pulumi.Output.all(
        models.arn,
        models.kms_key_arn,
        queue.arn if queue else None,
        queue.kms_key_arn if queue else None,
        endpoint.arn if endpoint else None,
    ).apply(
        lambda v: worker_role_policy(
            v[0], v[1], queue_arn=v[2], queue_key_arn=v[3], sagemaker_endpoint_arn=v[4]
        )
    )
