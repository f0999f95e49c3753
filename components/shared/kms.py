"""Customer-managed KMS keys, made one way everywhere."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

# The longest window AWS allows: a key deleted by mistake stays recoverable for 30 days,
# and everything it encrypted with it.
DELETION_WINDOW_DAYS = 30


def customer_key(
    name: str,
    *,
    description: str,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    policy: pulumi.Input[str] | None = None,
) -> aws.kms.Key:
    """A symmetric customer-managed key with automatic yearly rotation. ``policy`` replaces
    the default key policy (account root administers) where a service needs a grant."""
    return aws.kms.Key(
        name,
        description=description,
        policy=policy,
        enable_key_rotation=True,
        deletion_window_in_days=DELETION_WINDOW_DAYS,
        tags=tags,
        opts=opts,
    )


def key_policy(account_id: str, extra_statements: Sequence[Mapping[str, Any]] = ()) -> str:
    """A key policy: the account administers the key through IAM (AWS's default policy),
    plus the grants a service needs (CloudWatch publishing to an encrypted topic, CloudFront
    reading SSE-KMS objects through OAC)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                *(dict(s) for s in extra_statements),
            ],
        }
    )


def logs_statement(region: str, account_id: str, *log_group_prefixes: str) -> dict[str, Any]:
    """Key-policy grant for CloudWatch Logs to encrypt the log groups under these name
    prefixes (and no others)."""
    arns = [
        f"arn:aws:logs:{region}:{account_id}:log-group:{prefix}*" for prefix in log_group_prefixes
    ]
    if not arns:
        raise ValueError("logs_statement: name at least one log group prefix")
    return {
        "Sid": "CloudWatchLogsEncrypts",
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{region}.amazonaws.com"},
        "Action": [
            "kms:Encrypt*",
            "kms:Decrypt*",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:Describe*",
        ],
        "Resource": "*",
        "Condition": {
            "ArnLike": {"kms:EncryptionContext:aws:logs:arn": arns[0] if len(arns) == 1 else arns}
        },
    }


def account_key_policy() -> pulumi.Output[str]:
    """The explicit form of AWS's default key policy (the account administers the key
    through IAM) for keys no service needs a grant on: reviewable, and the same everywhere."""
    return aws.get_caller_identity_output().account_id.apply(key_policy)


def logs_key(
    name: str,
    *,
    log_group_prefixes: Sequence[str],
    description: str,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    region: str | None = None,
) -> aws.kms.Key:
    """A key CloudWatch Logs encrypts the log groups under these prefixes with. ``region``:
    the log groups' region when it is not the stack's (CloudFront's in us-east-1); a key
    serves log groups of its own region only."""
    account = aws.get_caller_identity_output().account_id
    where = pulumi.Output.from_input(region) if region else aws.get_region_output().region
    policy = pulumi.Output.all(account, where).apply(
        lambda v: key_policy(v[0], [logs_statement(v[1], v[0], *log_group_prefixes)])
    )
    return customer_key(name, description=description, tags=tags, opts=opts, policy=policy)
