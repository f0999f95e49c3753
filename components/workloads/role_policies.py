"""Each workload's IRSA role, the IAM policy document it holds (built from what the workloads
are given) and its service account. The pure documents are in ``components.shared.iam``, the
archive job's and the on-demand lifecycle Jobs' in ``components.shared.lifecycle_iam``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.shared import k8s_manifests as m
from components.shared.contract import (
    BucketRef,
    ClusterRef,
    DistrictDirectory,
    EventQueue,
    SageMakerEndpoint,
    owned,
)
from components.shared.iam import (
    api_role_policy,
    queue_sender_statements,
    service_account_role,
    trainer_role_policy,
    worker_role_policy,
)
from components.shared.lifecycle_iam import (
    access_report_role_policy,
    archiver_role_policy,
    offboarder_role_policy,
    purger_role_policy,
)
from components.workloads.rollout import rollout_statements
from components.workloads.settings import BOOTSTRAP


def irsa_role(
    parent: pulumi.Resource,
    name: str,
    component: str,
    policy: pulumi.Input[str],
    *,
    cluster: ClusterRef,
    namespace: str,
    tags: dict[str, str],
    policy_was_under_role: bool = False,
) -> aws.iam.Role:
    """The role `component`'s service account (in ``namespace``) assumes through the
    cluster's OIDC provider, holding `policy` inline. ``policy_was_under_role``: deployed
    stacks have the policy as the role's child (the API's, the trainer's, the archiver's);
    the alias keeps them from replacing it."""
    role = service_account_role(
        f"{name}-{component}-role",
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer=cluster.oidc_issuer,
        namespace=namespace,
        service_account=component,
        tags=tags,
        opts=owned(parent),
    )
    aws.iam.RolePolicy(
        f"{name}-{component}-policy",
        role=role.id,
        policy=policy,
        opts=owned(parent, was=role if policy_was_under_role else None),
    )
    return role


def service_accounts(
    name: str,
    roles: Mapping[str, aws.iam.Role],
    *,
    namespace: pulumi.Input[str],
    opts: Callable[[], pulumi.ResourceOptions],
) -> dict[str, k8s.core.v1.ServiceAccount]:
    """Each workload's service account, annotated with its IRSA role, and the bootstrap Job's,
    which has none: migrations need no AWS access."""
    accounts = {
        component: k8s.core.v1.ServiceAccount(
            f"{name}-{component}-sa",
            metadata={
                "name": component,
                "namespace": namespace,
                "labels": m.labels(component),
                "annotations": {"eks.amazonaws.com/role-arn": role.arn},
            },
            automount_service_account_token=False,
            opts=opts(),
        )
        for component, role in roles.items()
    }
    accounts[BOOTSTRAP] = k8s.core.v1.ServiceAccount(
        f"{name}-{BOOTSTRAP}-sa",
        metadata={"name": BOOTSTRAP, "namespace": namespace, "labels": m.labels(BOOTSTRAP)},
        automount_service_account_token=False,
        opts=opts(),
    )
    return accounts


def api_policy(
    models: BucketRef,
    endpoint: SageMakerEndpoint | None,
    queue: EventQueue | None,
    directory: DistrictDirectory | None,
) -> pulumi.Output[str]:
    """Models read, the endpoint invoked, events sent where the tier has an SQS queue, the
    district directory read on tier 4."""
    return pulumi.Output.all(
        models.arn,
        models.kms_key_arn,
        endpoint.arn if endpoint else None,
        queue.arn if queue else None,
        queue.kms_key_arn if queue else None,
        directory.table_arn if directory else None,
    ).apply(
        lambda v: api_role_policy(
            v[0],
            v[1],
            v[2],
            directory_table_arn=v[5],
            queue=queue_sender_statements(v[3], v[4]) if v[3] else (),
        )
    )


def trainer_policy(
    models: BucketRef, drop: BucketRef, endpoint: SageMakerEndpoint | None, region: str
) -> pulumi.Output[str]:
    """Models written, the district's exports read, the endpoint rolled where there is one."""
    return pulumi.Output.all(
        models.arn,
        models.kms_key_arn,
        drop.arn,
        drop.kms_key_arn,
        rollout_statements(endpoint, region, models.kms_key_arn),
    ).apply(lambda v: trainer_role_policy(v[0], v[1], v[2], v[3], v[4]))


def archiver_policy(archive: BucketRef, *, destroy_expired: bool) -> pulumi.Output[str]:
    """Archives written; expired archived months destroyed where the tier sets a retention."""
    return pulumi.Output.all(archive.arn, archive.kms_key_arn).apply(
        lambda v: archiver_role_policy(v[0], v[1], destroy_expired=destroy_expired)
    )


def purger_policy(models: BucketRef) -> pulumi.Output[str]:
    return pulumi.Output.all(models.arn, models.kms_key_arn).apply(
        lambda v: purger_role_policy(v[0], v[1])
    )


def access_report_policy(archive: BucketRef, drop: BucketRef) -> pulumi.Output[str]:
    """Archived months read; the report written to the district's drop bucket."""
    return pulumi.Output.all(archive.arn, archive.kms_key_arn, drop.arn, drop.kms_key_arn).apply(
        lambda v: access_report_role_policy(v[0], v[1], drop_bucket_arn=v[2], drop_key_arn=v[3])
    )


def offboarder_policy(
    models: BucketRef, archive: BucketRef, drop: BucketRef, directory: DistrictDirectory | None
) -> pulumi.Output[str]:
    return pulumi.Output.all(
        drop.arn,
        drop.kms_key_arn,
        models.arn,
        archive.arn,
        archive.kms_key_arn,
        directory.table_arn if directory else None,
    ).apply(
        lambda v: offboarder_role_policy(
            drop_bucket_arn=v[0],
            drop_key_arn=v[1],
            models_bucket_arn=v[2],
            archive_bucket_arn=v[3],
            archive_key_arn=v[4],
            directory_table_arn=v[5],
        )
    )


def worker_policy(
    models: BucketRef, queue: EventQueue | None, endpoint: SageMakerEndpoint | None
) -> pulumi.Output[str]:
    """Models read; the queue consumed where the tier has SQS; the endpoint invoked."""
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
