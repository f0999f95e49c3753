"""Trust policies shared by the components."""

import json

from components.iam import service_trust_policy


def test_service_trust_policy_admits_only_that_service() -> None:
    (statement,) = json.loads(service_trust_policy("rds.amazonaws.com"))["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"Service": "rds.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }


def test_eks_sessions_may_be_tagged() -> None:
    (statement,) = json.loads(service_trust_policy("eks.amazonaws.com", tag_session=True))[
        "Statement"
    ]
    assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"]
