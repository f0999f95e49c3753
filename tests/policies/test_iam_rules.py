"""The IAM rules beyond the table of tests/policies/test_rules.py: which statements count as
administrator access or an Object Lock bypass, and what the Service Authorization Reference
says against a statement."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.rules.iam_actions import arn_of_type, globs_meet, statement_problems

from .helpers import TAGS, resource_messages

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
MANAGED = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
KEY = "arn:aws:kms:us-east-1:123456789012:key/abc"


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(action: Any, resource: Any, **more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


# -- administrator access ----------------------------------------------------------------------


def test_admin_access_is_every_action_on_every_resource_allowed() -> None:
    """A Deny of everything, or every action on named resources, is no administrator access;
    the message names the offending statement by Sid, else by its index."""
    rule = "iam-no-admin-inline-policy"
    deny_all = {"Effect": "Deny", "Action": "*", "Resource": "*"}
    named = _allow("*", "arn:aws:s3:::models/*")
    props = {"role": "r", "policy": _policy(deny_all, named)}
    assert resource_messages(rule, ROLE_POLICY, props) == []
    admin = {"role": "r", "policy": _policy(named, _allow("*", "*", Sid="Everything"))}
    (message,) = resource_messages(rule, ROLE_POLICY, admin, resource_name="worker")
    assert "Inline IAM policy 'worker' of 'worker'" in message
    assert "(statement Everything)" in message
    assert "grant the specific actions on the specific ARNs" in message
    no_sid = {"role": "r", "policy": _policy(named, _allow("*:*", ["*"]))}
    assert "(statement #1)" in resource_messages(rule, ROLE_POLICY, no_sid)[0]
    after_a_deny = {"role": "r", "policy": _policy(deny_all, _allow("*", "*"))}
    assert "(statement #1)" in resource_messages(rule, ROLE_POLICY, after_a_deny)[0]


def test_a_role_inline_policy_without_a_name_is_called_inline() -> None:
    props = {"inlinePolicies": [{"policy": _policy(_allow("*", "*"))}], "tags": TAGS}
    (message,) = resource_messages("iam-no-admin-inline-policy", ROLE, props, resource_name="app")
    assert "Inline IAM policy 'inline' of 'app'" in message


def test_aws_admin_managed_policies_are_refused_but_a_customer_policy_of_that_name_is_not() -> None:
    rule = "iam-no-admin-managed-policy"
    for name in ("AdministratorAccess", "IAMFullAccess", "PowerUserAccess"):
        arn = f"arn:aws:iam::aws:policy/{name}"
        (message,) = resource_messages(
            rule, ATTACHMENT, {"role": "r", "policyArn": arn}, resource_name="attach"
        )
        assert f"IAM 'attach' attaches the AWS managed policy {arn}" in message
    ours = {"role": "r", "policyArn": "arn:aws:iam::123456789012:policy/AdministratorAccess"}
    assert resource_messages(rule, ATTACHMENT, ours) == []
    role = {
        "managedPolicyArns": [
            "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
            "arn:aws:iam::aws:policy/PowerUserAccess",
        ],
        "tags": TAGS,
    }
    (message,) = resource_messages(rule, ROLE, role, resource_name="nodes")
    assert "arn:aws:iam::aws:policy/PowerUserAccess" in message
    assert resource_messages(rule, ROLE, {"tags": TAGS}) == []
    assert resource_messages(rule, ATTACHMENT, {"role": "r"}) == []  # ARN unknown yet
    assert (
        resource_messages(rule, ATTACHMENT, {"role": "r", "policyArn": "AdministratorAccess"}) == []
    )


def test_a_managed_policy_names_its_admin_statement() -> None:
    props = {"policy": _policy(_allow("*", "*", Sid="All")), "tags": TAGS}
    (message,) = resource_messages("iam-no-admin-managed-policy", MANAGED, props, resource_name="p")
    assert message.startswith("Managed IAM policy 'p' allows Action '*' on Resource '*'")
    assert "(statement All)" in message


# -- the Object Lock bypass --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "bypasses"),
    [
        (_allow("s3:BypassGovernanceRetention", "arn:aws:s3:::archive/*"), True),
        (_allow("*", "arn:aws:s3:::archive/*"), True),
        (_allow(["s3:GetObject", "S3:Bypass*"], "arn:aws:s3:::archive/*"), True),
        (_allow("s3:Get*", "arn:aws:s3:::archive/*"), False),
        ({"Effect": "Deny", "Action": "s3:*", "Resource": "*"}, False),
    ],
)
def test_an_allow_whose_actions_match_the_governance_bypass_is_refused(
    statement: dict[str, Any], bypasses: bool
) -> None:
    props = {"role": "r", "policy": _policy(statement)}
    messages = resource_messages("iam-no-object-lock-bypass", ROLE_POLICY, props)
    assert bool(messages) is bypasses, messages


def test_the_lock_bypass_message_names_the_role_policy_and_statement() -> None:
    bypass = _allow("s3:*", "arn:aws:s3:::archive/*")
    props = {
        "inlinePolicies": [
            {"name": "read", "policy": _policy(_allow("s3:GetObject", "arn:aws:s3:::a/*"))},
            {"name": "archive", "policy": _policy(_allow("s3:GetObject", "*"), bypass)},
        ],
        "tags": TAGS,
    }
    (message,) = resource_messages("iam-no-object-lock-bypass", ROLE, props, resource_name="ops")
    assert message.startswith("IAM policy 'ops/archive' allows s3:BypassGovernanceRetention")
    assert "(statement #1)" in message
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    after_a_deny = {"role": "r", "policy": _policy(deny, {**bypass, "Sid": "Archive"})}
    (message,) = resource_messages("iam-no-object-lock-bypass", ROLE_POLICY, after_a_deny)
    assert "(statement Archive)" in message
    assert "grant the S3 actions by name instead" in message


# -- the Service Authorization Reference -------------------------------------------------------


def test_statement_problems_name_the_policy_and_statement() -> None:
    bad = _allow("s3:GetObjects", "*", Sid="Read")
    props = {"inlinePolicies": [{"name": "read", "policy": _policy(bad)}], "tags": TAGS}
    messages = resource_messages("iam-actions-as-authorized", ROLE, props, resource_name="app")
    assert messages == [
        "IAM policy 'app/read', statement Read: s3:GetObjects is not an action of the Service "
        "Authorization Reference."
    ]
    unnamed = {"inlinePolicies": [{"policy": _policy(_allow("kms:Decrypt", KEY), bad)}]}
    (message,) = resource_messages("iam-actions-as-authorized", ROLE, unnamed, resource_name="a")
    assert message.startswith("IAM policy 'a/inline', statement Read:")
    no_sid = {"policy": _policy(_allow("kms:Decrypt", KEY), _allow("kms:Decryptt", KEY))}
    (message,) = resource_messages("iam-actions-as-authorized", MANAGED, no_sid, resource_name="m")
    assert message.startswith("IAM policy 'm', statement #1: kms:Decryptt")


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Deny", "Action": "s3:GetObjects", "Resource": "*"},
        {"Effect": "Allow", "NotAction": "s3:GetObjects", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:GetObjects", "NotResource": "arn:aws:s3:::a"},
        _allow(["*", "not-an-action"], "*"),
        _allow("s3:Get*", "arn:aws:s3:::models/*"),
        _allow("s3:GetObjec?", "arn:aws:s3:::models/*"),
        _allow("ecr:GetAuthorizationToken", "*"),
        _allow("s3:GetObject", "arn:aws:s3:::models/*"),
        _allow("s3:ListBucket", "arn:aws:s3:::models"),
        _allow("s3:GetObject", "*"),
    ],
)
def test_statements_the_reference_has_nothing_against(statement: dict[str, Any]) -> None:
    assert statement_problems(statement) == []


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        (_allow("s3:Fetch*", "*"), "s3:Fetch* matches no action of s3"),
        (_allow("s3:GetObjec??", "*"), "s3:GetObjec?? matches no action of s3"),
        (_allow("nosuchservice:Get", "*"), "nosuchservice:Get is not an action"),
        (
            # S3's resource types are optional (an access point may stand for the bucket).
            _allow("s3:GetObject", "arn:aws:s3:::models"),
            "s3:GetObject: no Resource names a resource type the action acts on",
        ),
        (
            # A bucket's ARN with a key is an object's: no bucket is named.
            _allow("s3:ListBucket", "arn:aws:s3:::models/*"),
            "s3:ListBucket: no Resource names a resource type",
        ),
        (
            _allow("kms:Decrypt", "arn:aws:s3:::models"),
            "kms:Decrypt is authorized on its key resource too, and Resource names none "
            "(arn:*:kms:*:*:key/*)",
        ),
        (_allow("kms:Decrypt", "arn:aws:kms"), "kms:Decrypt is authorized on its key resource"),
    ],
)
def test_statements_the_reference_refuses(statement: dict[str, Any], problem: str) -> None:
    problems = statement_problems(statement)
    assert any(problem in p for p in problems), problems


def test_a_condition_key_the_requests_never_carry_is_refused_unless_absence_holds() -> None:
    never = {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert statement_problems(_allow("kms:DescribeKey", KEY, Condition=never))
    for operator in ("BoolIfExists", "Null"):
        absent = {operator: {"kms:GrantIsForAWSResource": "true"}}
        assert statement_problems(_allow("kms:DescribeKey", KEY, Condition=absent)) == []
    carried = [
        {"Bool": {"kms:GrantIsForAWSResource": "true"}},  # an action key of CreateGrant
        {"StringEquals": {"aws:PrincipalTag/team": "data"}},  # a global key
        {"StringEquals": {"aws:ResourceTag/stack": "tier3"}},  # a resource type's template
        {"StringEquals": {"kms:KeyOrigin": "AWS_KMS"}},  # a key of the key resource type
        "not a mapping",
        {"Bool": "not a mapping either"},
    ]
    for condition in carried:
        statement = _allow("kms:CreateGrant", KEY, Condition=condition)
        assert statement_problems(statement) == [], condition


def test_an_action_with_optional_resource_types_needs_one_of_them() -> None:
    # sqs:ListQueues acts on no resource type; ssm:GetParameters on a parameter.
    problems = statement_problems(_allow("sagemaker:ListTags", "arn:aws:s3:::models"))
    assert problems == [
        "sagemaker:ListTags: no Resource names a resource type the action acts on"
    ], problems


@pytest.mark.parametrize(
    ("a", "b", "meet"),
    [
        ("abc", "abc", True),
        ("abc", "abd", False),
        ("ab", "abc", False),
        ("abc", "ab", False),
        ("a*", "abc", True),
        ("abc", "a*", True),
        ("a*c", "ab*", True),
        ("*", "", True),
        ("", "*", True),
        ("a?c", "abc", True),
        ("abc", "a?c", True),
        ("a*d", "abc", False),
        ("abc", "a*d", False),
        ("x*", "y*", False),
    ],
)
def test_two_arn_patterns_meet_when_some_string_matches_both(a: str, b: str, meet: bool) -> None:
    assert globs_meet(a, b) is meet


def test_an_arn_names_a_resource_type_part_by_part() -> None:
    assert arn_of_type("*", "s3", "bucket")
    assert arn_of_type("arn:aws:s3:::models", "s3", "bucket")
    assert not arn_of_type("arn:aws:s3:::models/key", "s3", "bucket")
    assert arn_of_type("arn:aws:s3:::models/key", "s3", "object")
    assert not arn_of_type("arn:aws:s3:::models", "s3", "object")
    assert not arn_of_type("arn:aws:s3", "s3", "bucket")
    assert arn_of_type(KEY, "kms", "key")
    assert not arn_of_type(KEY.replace(":kms:", ":sqs:"), "kms", "key")


def test_every_action_of_a_statement_is_read_past_a_skipped_or_unknown_one() -> None:
    statement = _allow(
        ["*", "s3:GetObjects", "s3:Get:Object", "s3:Fetch*", "kms:Decrypt"], "arn:aws:s3:::m"
    )
    assert statement_problems(statement) == [
        "s3:GetObjects is not an action of the Service Authorization Reference",
        "s3:Get:Object is not an action of the Service Authorization Reference",
        "s3:Fetch* matches no action of s3",
        "kms:Decrypt is authorized on its key resource too, and Resource names none "
        "(arn:*:kms:*:*:key/*)",
    ]


def test_an_arn_whose_resource_part_holds_colons_is_read_whole() -> None:
    group = "arn:aws:logs:us-east-1:123456789012:log-group:/ssp/app:*"
    assert arn_of_type(group, "logs", "log-group")
    assert statement_problems(_allow("logs:PutRetentionPolicy", group)) == []
