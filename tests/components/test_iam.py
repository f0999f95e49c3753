"""The IAM policy documents of components/shared/iam.py: service and IRSA trust policies, the
workloads' role policies."""

from __future__ import annotations

import json

from components.shared.iam import (
    api_role_policy,
    archiver_role_policy,
    irsa_trust_policy,
    service_trust_policy,
    trainer_role_policy,
)


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


def test_irsa_trust_policy_pins_service_account_and_audience() -> None:
    doc = json.loads(
        irsa_trust_policy(
            "arn:aws:iam::1:oidc-provider/oidc.eks.x/id/A", "https://oidc.eks.x/id/A", "ns", "sa"
        )
    )
    (statement,) = doc["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"]["StringEquals"] == {
        "oidc.eks.x/id/A:sub": "system:serviceaccount:ns:sa",
        "oidc.eks.x/id/A:aud": "sts.amazonaws.com",
    }


def test_role_policies() -> None:
    api = json.loads(api_role_policy("arn:aws:s3:::m", "arn:k", "arn:aws:sagemaker:e"))
    actions = {s["Action"] for s in api["Statement"]}
    assert actions == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt", "sagemaker:InvokeEndpoint"}
    no_sm = json.loads(api_role_policy("arn:aws:s3:::m", "arn:k", None))
    assert "sagemaker:InvokeEndpoint" not in {s["Action"] for s in no_sm["Statement"]}
    trainer = json.loads(trainer_role_policy("arn:aws:s3:::m", "arn:k", "arn:aws:s3:::d", "arn:j"))
    by_sid = {s["Sid"]: s for s in trainer["Statement"]}
    # The district's exports: read under exports/ only, never written or deleted.
    assert by_sid["ReadExports"] == {
        "Sid": "ReadExports",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::d/exports/*",
    }
    assert by_sid["ListExports"]["Condition"] == {"StringLike": {"s3:prefix": ["exports/*"]}}
    assert by_sid["DecryptExports"]["Action"] == "kms:Decrypt"
    assert "arn:aws:s3:::d/*" not in json.dumps(trainer)
    assert "WriteArchives" not in by_sid
    archiver = json.loads(archiver_role_policy("arn:aws:s3:::a", "arn:j"))
    writes = next(s for s in archiver["Statement"] if s["Sid"] == "WriteArchives")
    assert writes["Resource"] == "arn:aws:s3:::a/*"
    assert "arn:aws:s3:::m" not in json.dumps(archiver)
