"""The endpoint's fixed choices and the pure functions derived from them: names and
prefixes in the models bucket, the autoscaling target, the rollback alarms' threshold, and
the execution role's least-privilege policy. Tests call them without Pulumi."""

from __future__ import annotations

import json
import math
import re

VARIANT_NAME = "primary"
"""Blue/green updates require the new configuration to keep the variant's name."""
MODEL_PREFIX = "sagemaker"
MODEL_ARCHIVE = f"{MODEL_PREFIX}/model.tar.gz"
DATA_CAPTURE_PREFIX = "data-capture"
CONTAINER_PORT = "8080"
# AWS's formula for SageMakerVariantInvocationsPerInstance ("Load testing your auto scaling
# configuration"): the peak requests per second of one instance x a safety factor x 60 (the
# metric counts per minute); AWS recommends starting with a safety factor of 0.5.
SAFETY_FACTOR = 0.5
SCALE_OUT_COOLDOWN_SECONDS = 120
# Longer than scale-out: instances take minutes to start, so shed them reluctantly.
SCALE_IN_COOLDOWN_SECONDS = 600
# Canary: 10 % of capacity first, then everything after a bake longer than the alarms'
# evaluation (5 x 1 min), so a bad model trips them while most traffic is still blue.
CANARY_PERCENT = 10
BAKE_SECONDS = 600
ENDPOINT_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# The provider appends a 26-character unique suffix to name_prefix; names max out at 63.
MAX_NAME_PREFIX = 63 - 26


def invocations_per_instance_target(max_rps_per_instance: float) -> float:
    """Target value of SageMakerVariantInvocationsPerInstance (invocations per minute per
    instance) from the peak requests per second of one instance, in whole invocations."""
    if max_rps_per_instance <= 0:
        raise ValueError(f"max_rps_per_instance={max_rps_per_instance}: must be positive")
    return float(math.floor(max_rps_per_instance * SAFETY_FACTOR * 60))


def model_latency_threshold_us(latency_ms: float) -> float:
    """SageMaker reports ModelLatency in microseconds; the catalog holds milliseconds."""
    if latency_ms <= 0:
        raise ValueError(f"latency_ms={latency_ms}: must be positive")
    return float(latency_ms * 1000)


def scalable_resource_id(endpoint_name: str, variant_name: str = VARIANT_NAME) -> str:
    """Application Auto Scaling's id of a SageMaker production variant."""
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


def model_data_url(bucket_name: str) -> str:
    return f"s3://{bucket_name}/{MODEL_ARCHIVE}"


def execution_policy(
    *,
    repository_arn: str,
    bucket_arn: str,
    kms_key_arn: str,
    region: str,
    account_id: str,
    endpoint_name: str,
) -> str:
    """Least privilege for the endpoint's containers: pull the one image, read the model
    archive prefix, write data capture, log to the endpoint's log group, and manage the
    ENIs that the VPC configuration needs."""
    log_group = f"arn:aws:logs:{region}:{account_id}:log-group:/aws/sagemaker/Endpoints/"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PullAppImage",
                    "Effect": "Allow",
                    "Action": [
                        "ecr:BatchCheckLayerAvailability",
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                    ],
                    "Resource": repository_arn,
                },
                {
                    # GetAuthorizationToken has no resource-level permissions.
                    "Sid": "EcrLogin",
                    "Effect": "Allow",
                    "Action": "ecr:GetAuthorizationToken",
                    "Resource": "*",
                },
                {
                    "Sid": "ReadModelArchive",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"{bucket_arn}/{MODEL_PREFIX}/*",
                },
                {
                    "Sid": "WriteDataCapture",
                    "Effect": "Allow",
                    "Action": "s3:PutObject",
                    "Resource": f"{bucket_arn}/{DATA_CAPTURE_PREFIX}/*",
                },
                {
                    "Sid": "UseBucketKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": kms_key_arn,
                },
                {
                    "Sid": "EndpointLogs",
                    "Effect": "Allow",
                    "Action": [
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    "Resource": [
                        f"{log_group}{endpoint_name}",
                        f"{log_group}{endpoint_name}:*",
                    ],
                },
                {
                    # ENI actions and Describe* take no resource ARNs known in advance.
                    "Sid": "VpcNetworkInterfaces",
                    "Effect": "Allow",
                    "Action": [
                        "ec2:CreateNetworkInterface",
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeDhcpOptions",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeSecurityGroups",
                    ],
                    "Resource": "*",
                },
            ],
        }
    )
