"""Compute: the app's image (the stack's registry, or tier 4's replica of the global one), the
EKS cluster, and the SageMaker endpoint on the tiers that score there."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.cluster import Cluster, ClusterArgs
from components.config.spec import StackSpec
from components.inference import Inference, InferenceArgs
from components.registry import ImageRepository, Registry, RegistryArgs
from components.shared.stack import StackContext
from stacks.data import Data
from stacks.references import GlobalStack


@dataclass(frozen=True)
class Compute:
    image_repository: ImageRepository
    app_image: pulumi.Output[str]
    """``<repository url>:<appImageTag>``: one image for the endpoint and the workloads."""
    cluster: Cluster


def cluster(
    spec: StackSpec, stack: StackContext, data: Data, global_stack: GlobalStack | None
) -> Compute:
    tier = spec.tier
    if global_stack is None:
        registry = Registry(
            "registry",
            RegistryArgs(stack=stack, repository_name=f"{spec.project}/{spec.stack}/app"),
        )
        image_repository = ImageRepository(registry.repository_url, registry.repository_arn)
    else:
        image_repository = global_stack.image_repository()
    eks = Cluster(
        "cluster",
        ClusterArgs(
            stack=stack,
            network=data.network.ref,
            cluster_name=f"{spec.project}-{spec.stack}",
            node_groups=tier.node_groups,
            alarms=tier.alarms,
            public_access_cidrs=spec.cluster_public_access_cidrs,
            api_access_cidrs=spec.cluster_api_access_cidrs,
            api_access_security_group_ids=spec.cluster_api_access_security_group_ids,
            admin_role_arn=spec.cluster_admin_role_arn,
            queue_autoscaler=tier.events.queue == "sqs",
            node_kubernetes_version=spec.node_kubernetes_version,
        ),
    )
    app_image = image_repository.url.apply(lambda url: f"{url}:{spec.app_image_tag}")
    return Compute(image_repository, app_image, eks)


def inference(
    spec: StackSpec, stack: StackContext, data: Data, compute: Compute
) -> Inference | None:
    """The SageMaker endpoint, once its model archive exists: it starts from the archive of
    trained models, which the first training run publishes (docs/deploy.md, "The first
    deployment of a stack")."""
    tier = spec.tier
    if not (tier.inference.enabled and spec.sagemaker_model_published):
        return None
    return Inference(
        "inference",
        InferenceArgs(
            # It serves (and captures) student records.
            stack=stack.classified("ferpa"),
            network=data.network.ref,
            endpoint_name=f"{stack.name_prefix}-predict",
            image_uri=compute.app_image,
            repository_arn=compute.image_repository.arn,
            models_bucket=data.models.ref,
            size=tier.inference,
            alarms=tier.alarms,
        ),
    )
