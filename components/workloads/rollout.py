"""What the trainer gets to roll the stack's SageMaker endpoint to each new generation of
models (``app/jobs/sagemaker_rollout.py``): its environment and its IAM statements."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.shared.contract import SageMakerEndpoint
from components.shared.iam import sagemaker_rollout_statements


def rollout_env(endpoint: SageMakerEndpoint | None) -> list[k8s.core.v1.EnvVarArgsDict]:
    """The endpoint, the configuration each rollout copies and where archives go; nothing
    without an endpoint."""
    if endpoint is None:
        return []
    return [
        {"name": "SAGEMAKER_ENDPOINT_NAME", "value": endpoint.name},
        {"name": "SAGEMAKER_BASE_CONFIG_NAME", "value": endpoint.base_config_name},
        {"name": "SAGEMAKER_ARCHIVE_URL", "value": endpoint.archive_url},
    ]


def rollout_statements(
    endpoint: SageMakerEndpoint | None, region: str, models_key_arn: pulumi.Input[str]
) -> pulumi.Output[list[dict[str, Any]]]:
    """The trainer's permissions to roll the endpoint; none without one."""
    if endpoint is None:
        return pulumi.Output.from_input([])
    identity = aws.get_caller_identity_output()
    return pulumi.Output.all(
        identity.account_id, endpoint.execution_role_arn, models_key_arn
    ).apply(
        lambda v: sagemaker_rollout_statements(
            region=region,
            account_id=v[0],
            endpoint_name=endpoint.name,
            execution_role_arn=v[1],
            key_arn=v[2],
        )
    )
