"""The SQS rules beyond the table of tests/policies/test_rules.py: which key counts as
customer-managed, and what makes a redrive policy a working dead-letter queue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .helpers import resource_messages

SQS = "aws:sqs/queue:Queue"
KEY = "arn:aws:kms:us-east-1:123456789012:key/abc"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:ssp-tier3-events-dlq"
DLQ = "sqs-dead-letter-queue"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (KEY, None),
        ("alias/ssp-tier3", None),
        (None, "is not encrypted with a customer-managed KMS key; set kms_master_key_id"),
        ("", "is not encrypted with a customer-managed KMS key"),
        ("alias/aws/sqs", "uses the AWS-managed key alias/aws/sqs; set kms_master_key_id"),
    ],
)
def test_a_queue_is_encrypted_with_a_customer_managed_key(key: str | None, problem: str) -> None:
    props = {} if key is None else {"kmsMasterKeyId": key}
    messages = resource_messages("sqs-customer-managed-key", SQS, props, resource_name="events")
    if problem is None:
        assert messages == []
    else:
        (message,) = messages
        assert message.startswith(f"SQS queue 'events' {problem}")


def _redrive(policy: Any) -> list[str]:
    props = {"redrivePolicy": policy if isinstance(policy, str) else json.dumps(policy)}
    return resource_messages(DLQ, SQS, props, resource_name="events")


@pytest.mark.parametrize(
    "policy",
    [
        {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5},
        {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": "1"},
        {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 1},
    ],
)
def test_a_redrive_policy_with_a_target_and_a_count_passes(policy: Any) -> None:
    assert _redrive(policy) == []


@pytest.mark.parametrize(
    "policy",
    [
        {"deadLetterTargetArn": DLQ_ARN},
        {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 0},
        {"maxReceiveCount": 5},
        {"deadLetterTargetArn": "", "maxReceiveCount": 5},
        [DLQ_ARN, 5],
        "not json",
    ],
)
def test_a_redrive_policy_without_a_target_or_count_is_refused(policy: Any) -> None:
    assert _redrive(policy) == [
        "SQS queue 'events' has a redrive_policy without deadLetterTargetArn and a "
        "maxReceiveCount of at least 1."
    ]


def test_a_dead_letter_queue_is_one_by_its_redrive_allow_policy() -> None:
    allow = json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [DLQ_ARN]})
    assert resource_messages(DLQ, SQS, {"redriveAllowPolicy": allow}) == []
    # A queue that both admits sources and redrives is checked as a source queue.
    broken = {"redriveAllowPolicy": allow, "redrivePolicy": json.dumps({"maxReceiveCount": 5})}
    assert resource_messages(DLQ, SQS, broken)
    (message,) = resource_messages(DLQ, SQS, {}, resource_name="events")
    assert message.startswith("SQS queue 'events' has no dead-letter queue")
    assert "redrive_allow_policy if it is itself a dead-letter queue" in message
