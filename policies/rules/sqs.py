"""SQS queues: encrypted with a customer-managed key, and none without a dead-letter queue."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs
from pulumi_policy.proxy import UnknownValueError

from ._util import num, parse_json, present, rule

QUEUE = "aws:sqs/queue:Queue"
# The AWS-managed key: anyone in the account with sqs permissions reads the messages through
# it, and its policy cannot be changed.
AWS_MANAGED_KEY = "alias/aws/sqs"


def _customer_key(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not present(args.props, "kmsMasterKeyId"):
        report(
            f"SQS queue '{args.name}' is not encrypted with a customer-managed KMS key; set "
            "kms_master_key_id to the stack's key (components/events.py), so that only the "
            "roles its key policy and their IAM policies name read the events.",
            None,
        )
        return
    try:
        key = str(args.props.get("kmsMasterKeyId"))
    except UnknownValueError:
        return  # another resource's key ARN, known at `up`
    if key == AWS_MANAGED_KEY:
        report(
            f"SQS queue '{args.name}' uses the AWS-managed key {AWS_MANAGED_KEY}; set "
            "kms_master_key_id to a customer-managed key with an explicit key policy.",
            None,
        )


def _dead_letters(args: ResourceValidationArgs, report: ReportViolation) -> None:
    # A dead-letter queue admits its source queues (redrive_allow_policy) and has none itself.
    if present(args.props, "redriveAllowPolicy") and not present(args.props, "redrivePolicy"):
        return
    if not present(args.props, "redrivePolicy"):
        report(
            f"SQS queue '{args.name}' has no dead-letter queue: a message that fails every "
            "time is retried until retention drops it; set redrive_policy (deadLetterTargetArn, "
            "maxReceiveCount), or redrive_allow_policy if it is itself a dead-letter queue.",
            None,
        )
        return
    try:
        policy = parse_json(args.props.get("redrivePolicy"))
    except UnknownValueError:
        return  # built from the dead-letter queue's ARN, known at `up`
    count = num(policy.get("maxReceiveCount")) if isinstance(policy, dict) else None
    if not (isinstance(policy, dict) and policy.get("deadLetterTargetArn") and count):
        report(
            f"SQS queue '{args.name}' has a redrive_policy without deadLetterTargetArn and a "
            "maxReceiveCount of at least 1.",
            None,
        )


POLICIES = [
    rule(
        "sqs-customer-managed-key",
        "SQS queues are encrypted with a customer-managed KMS key.",
        [QUEUE],
        _customer_key,
        EnforcementLevel.MANDATORY,
    ),
    rule(
        "sqs-dead-letter-queue",
        "Every SQS queue has a dead-letter queue, or is one.",
        [QUEUE],
        _dead_letters,
        EnforcementLevel.MANDATORY,
    ),
]
