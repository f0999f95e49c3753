"""The customer-managed keys' policy document."""

from __future__ import annotations

import fnmatch
import json

import pytest

from components.shared.kms import key_policy, logs_statement
from tests.shared import KMS_KEY, LOG_GROUP, STACKS, StackRunner
from tools.harness import Resource


def test_key_policy_keeps_account_admin_and_adds_extras() -> None:
    extra = {"Sid": "CloudFrontDecrypts", "Effect": "Allow", "Action": "kms:Decrypt"}
    doc = json.loads(key_policy("123456789012", [extra]))
    assert doc["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert doc["Statement"][1] == extra


def test_logs_statement_admits_logs_for_the_named_groups_only() -> None:
    one = logs_statement("eu-west-1", "123456789012", "/aws/eks/c/")
    assert one["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    condition = one["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert condition == "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/eks/c/*"
    two = logs_statement("us-east-1", "123456789012", "a-", "b-")
    assert two["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == [
        "arn:aws:logs:us-east-1:123456789012:log-group:a-*",
        "arn:aws:logs:us-east-1:123456789012:log-group:b-*",
    ]
    with pytest.raises(ValueError, match="at least one log group prefix"):
        logs_statement("us-east-1", "123456789012")


def _grants_logs(key: Resource, log_group: Resource) -> bool:
    """The key's policy lets CloudWatch Logs of the group's region encrypt that group."""
    region = log_group.get("kmsKeyId", "").split(":")[3]
    # Named, named by a prefix, or autonamed (the logical name and a random suffix).
    name = log_group.get("name") or f"{log_group.get('namePrefix') or log_group.name + '-'}1a2b3c"
    for statement in json.loads(key.get("policy"))["Statement"]:
        if statement.get("Principal") != {"Service": f"logs.{region}.amazonaws.com"}:
            continue
        patterns = statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            arn = f"arn:aws:logs:{region}:123456789012:log-group:{name}"
            if fnmatch.fnmatchcase(arn, pattern):
                return True
    return False


@pytest.mark.parametrize("stack", STACKS)
def test_every_key_has_a_policy_and_every_log_group_a_key_that_admits_it(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    keys = {k.id: k for k in run.of_type(KMS_KEY)}
    for key in keys.values():
        statements = json.loads(key.get("policy") or "{}").get("Statement", [])
        assert statements[0]["Sid"] == "AccountAdministers", key.name
        assert key.get("enableKeyRotation") is True, key.name
    groups = run.of_type(LOG_GROUP)
    assert groups
    for group in groups:
        assert group.get("retentionInDays"), group.name
        key_id = group.get("kmsKeyId", "").rsplit("/", 1)[-1]
        assert key_id in keys, f"{group.name} is not encrypted with one of the stack's keys"
        assert _grants_logs(keys[key_id], group), f"{keys[key_id].name} does not admit {group.name}"
    # WAF logs go to aws-waf-logs-* groups (WAF refuses any other name), API keys redacted.
    for logging in run.of_type("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"):
        assert logging.get("redactedFields") == [{"singleHeader": {"name": "x-api-key"}}]
        (destination,) = logging.get("logDestinationConfigs")
        assert ":log-group:aws-waf-logs-" in destination
