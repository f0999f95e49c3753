"""IAM trust policies every component uses, as pure functions tests can call."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

# The prefix of the drop bucket the district's system writes its nightly exports under.
DROP_PREFIX = "exports"
# The model store's and the audit archive's prefixes in their buckets (MODEL_STORE_URL,
# ARCHIVE_STORE_URL); the archived audit months are under audit_log/ of the archive
# (app/jobs/archive.py), the model store's pointer is current.json (app/model/artifacts.py).
MODELS_PREFIX = "models"
ARCHIVE_PREFIX = "audit"
AUDIT_MONTHS_PREFIX = f"{ARCHIVE_PREFIX}/audit_log"
MODEL_POINTER = f"{MODELS_PREFIX}/current.json"


def service_trust_policy(service: str, *, tag_session: bool = False) -> str:
    """Trust policy letting one AWS service (``rds.amazonaws.com``...) assume a role.
    EKS also tags its sessions, so its cluster role needs ``sts:TagSession`` too."""
    actions: str | list[str] = (
        ["sts:AssumeRole", "sts:TagSession"] if tag_session else "sts:AssumeRole"
    )
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}
            ],
        }
    )


def irsa_trust_policy(
    oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str
) -> str:
    """IRSA: only the service account ``namespace/service_account`` of this cluster, with
    the STS audience, may assume the role. ``oidc_issuer`` is without ``https://``."""
    issuer = oidc_issuer.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": oidc_provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }
    )


def service_account_role(
    name: str,
    *,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    namespace: str,
    service_account: str,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """An IAM role that one Kubernetes service account assumes through IRSA."""
    trust = pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
        lambda v: irsa_trust_policy(v[0], v[1], namespace, service_account)
    )
    return aws.iam.Role(name, assume_role_policy=trust, tags=tags, opts=opts)


def api_role_policy(
    models_bucket_arn: str,
    models_key_arn: str,
    sagemaker_endpoint_arn: str | None,
    directory_table_arn: str | None = None,
    queue: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The API reads models, may invoke the SageMaker endpoint, on tier 4 reads a district's
    home region from its region's directory replica and, where events go through SQS, sends
    them (``queue``: ``queue_sender_statements``); nothing else."""
    statements: list[dict[str, Any]] = [
        {"Sid": "ListModels", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": models_bucket_arn},
        {"Sid": "ReadModels", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"{models_bucket_arn}/*"},
        {"Sid": "DecryptModels", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": models_key_arn},
    ]  # fmt: skip
    if sagemaker_endpoint_arn:
        statements.append(
            {
                "Sid": "InvokeModel",
                "Effect": "Allow",
                "Action": "sagemaker:InvokeEndpoint",
                "Resource": sagemaker_endpoint_arn,
            }
        )
    if directory_table_arn:
        statements.append(
            {
                "Sid": "ReadDistrictDirectory",
                "Effect": "Allow",
                "Action": "dynamodb:GetItem",
                "Resource": directory_table_arn,
            }
        )
    statements.extend(dict(s) for s in queue)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def queue_sender_statements(queue_arn: str, key_arn: str) -> list[dict[str, Any]]:
    """Send to the events queue. SQS encrypts each message with a data key it asks KMS for
    on the sender's behalf: the sender needs GenerateDataKey and Decrypt on the queue's key."""
    return [
        {"Sid": "SendEvents", "Effect": "Allow", "Action": "sqs:SendMessage",
         "Resource": queue_arn},
        {"Sid": "EncryptEvents", "Effect": "Allow",
         "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": key_arn},
    ]  # fmt: skip


def worker_role_policy(
    models_bucket_arn: str,
    models_key_arn: str,
    *,
    queue_arn: str | None,
    queue_key_arn: str | None,
    sagemaker_endpoint_arn: str | None,
) -> str:
    """The event worker: receives, deletes and delays (a retry's back-off) the events of the
    SQS queue where the tier has one; rescores through the SageMaker endpoint where the tier
    has one, in process (reading the served models) otherwise."""
    statements: list[dict[str, Any]] = [
        {"Sid": "ListModels", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": models_bucket_arn},
        {"Sid": "ReadModels", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"{models_bucket_arn}/*"},
        {"Sid": "DecryptModels", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": models_key_arn},
    ]  # fmt: skip
    if queue_arn and queue_key_arn:
        statements += [
            {
                "Sid": "ConsumeEvents",
                "Effect": "Allow",
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                "Resource": queue_arn,
            },
            {"Sid": "DecryptEvents", "Effect": "Allow", "Action": "kms:Decrypt",
             "Resource": queue_key_arn},
        ]  # fmt: skip
    if sagemaker_endpoint_arn:
        statements.append(
            {
                "Sid": "InvokeModel",
                "Effect": "Allow",
                "Action": "sagemaker:InvokeEndpoint",
                "Resource": sagemaker_endpoint_arn,
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def queue_scaler_policy(queue_arn: str) -> str:
    """KEDA's operator reads the queue's depth (its attributes) to scale the worker; it
    neither receives nor decrypts messages."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadQueueDepth",
                    "Effect": "Allow",
                    "Action": "sqs:GetQueueAttributes",
                    "Resource": queue_arn,
                }
            ],
        }
    )


def trainer_role_policy(
    models_bucket_arn: str,
    models_key_arn: str,
    drop_bucket_arn: str,
    drop_key_arn: str,
    rollout: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The nightly pipeline (import, features, training): reads the district's exports under
    ``exports/`` of the drop bucket (never writes or deletes them), versions models (read,
    write, prune) and, where the stack has an endpoint, rolls it (``rollout``:
    ``sagemaker_rollout_statements``)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListModels",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": models_bucket_arn,
                },
                {
                    "Sid": "ReadWriteModels",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": f"{models_bucket_arn}/*",
                },
                {
                    "Sid": "ListExports",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": drop_bucket_arn,
                    "Condition": {"StringLike": {"s3:prefix": [f"{DROP_PREFIX}/*"]}},
                },
                {
                    "Sid": "ReadExports",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"{drop_bucket_arn}/{DROP_PREFIX}/*",
                },
                {
                    "Sid": "UseBucketKeys",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": models_key_arn,
                },
                {
                    "Sid": "DecryptExports",
                    "Effect": "Allow",
                    "Action": "kms:Decrypt",
                    "Resource": drop_key_arn,
                },
                *rollout,
            ],
        }
    )


def sagemaker_rollout_statements(
    *, region: str, account_id: str, endpoint_name: str, execution_role_arn: str, key_arn: str
) -> list[dict[str, Any]]:
    """What the trainer needs to roll the endpoint (app/jobs/sagemaker_rollout.py): read the base
    configuration and model, make and delete its own ``<endpoint>-g*`` ones, update the one
    endpoint, pass the containers' role to SageMaker only, and let SageMaker use the models key
    for the configurations' volumes and captures."""
    arn = f"arn:aws:sagemaker:{region}:{account_id}"
    ours = [f"{arn}:endpoint-config/{endpoint_name}-g*", f"{arn}:model/{endpoint_name}-g*"]
    endpoint = f"{arn}:endpoint/{endpoint_name}"
    return [
        {
            "Sid": "ReadEndpoint",
            "Effect": "Allow",
            "Action": "sagemaker:DescribeEndpoint",
            "Resource": endpoint,
        },
        {
            # UpdateEndpoint is authorized on the endpoint and on the configuration it moves
            # to (Service Authorization Reference: both resource types are required).
            "Sid": "RollEndpoint",
            "Effect": "Allow",
            "Action": "sagemaker:UpdateEndpoint",
            "Resource": [endpoint, ours[0]],
        },
        {
            "Sid": "ReadConfigurations",
            "Effect": "Allow",
            "Action": "sagemaker:DescribeEndpointConfig",
            "Resource": f"{arn}:endpoint-config/{endpoint_name}-*",
        },
        {
            # The program's model is named by Pulumi, not after the endpoint.
            "Sid": "ReadModels",
            "Effect": "Allow",
            "Action": "sagemaker:DescribeModel",
            "Resource": f"{arn}:model/*",
        },
        {
            "Sid": "ManageOwnGenerations",
            "Effect": "Allow",
            "Action": [
                "sagemaker:CreateModel",
                "sagemaker:DeleteModel",
                "sagemaker:CreateEndpointConfig",
                "sagemaker:DeleteEndpointConfig",
                "sagemaker:AddTags",
            ],
            "Resource": ours,
        },
        {
            # List calls take no resource ARNs.
            "Sid": "ListConfigurations",
            "Effect": "Allow",
            "Action": "sagemaker:ListEndpointConfigs",
            "Resource": "*",
        },
        {
            "Sid": "PassContainerRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": execution_role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
        {
            # Grants for SageMaker only: kms:GrantIsForAWSResource is set on grant requests
            # an AWS service makes for the caller.
            "Sid": "GrantModelsKeyToSageMaker",
            "Effect": "Allow",
            "Action": "kms:CreateGrant",
            "Resource": key_arn,
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
        {
            # DescribeKey requests never carry kms:GrantIsForAWSResource: under that condition
            # it would never be granted.
            "Sid": "DescribeModelsKey",
            "Effect": "Allow",
            "Action": "kms:DescribeKey",
            "Resource": key_arn,
        },
    ]


def tls_only_statement(bucket_arn: str) -> dict[str, Any]:
    """Bucket policy statement denying every request that does not use TLS
    (aws:SecureTransport false)."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
