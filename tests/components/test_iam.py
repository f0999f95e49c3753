"""The IAM policy documents of components/shared/iam.py (service and IRSA trust policies, the
workloads' role policies) and components/shared/lifecycle_iam.py (the archive job's and the
on-demand lifecycle Jobs' role policies)."""

from __future__ import annotations

import json
from typing import Any

from components.shared.iam import (
    api_role_policy,
    irsa_trust_policy,
    service_trust_policy,
    trainer_role_policy,
)
from components.shared.lifecycle_iam import (
    access_report_role_policy,
    archiver_role_policy,
    offboarder_role_policy,
    purger_role_policy,
)

DELETES = ("s3:DeleteObject", "s3:DeleteObjectVersion")


def _by_sid(doc: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(doc)["Statement"]}


def _allowed(doc: str, action: str) -> list[str]:
    """The resources an Allow statement of ``doc`` grants ``action`` on."""
    found: list[str] = []
    for s in json.loads(doc)["Statement"]:
        actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        if s["Effect"] == "Allow" and action in actions:
            found += [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]
    return found


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


def test_the_archive_job_destroys_expired_audit_months_only_where_a_retention_is_set() -> None:
    keeps = archiver_role_policy("arn:aws:s3:::a", "arn:k")
    assert not any(_allowed(keeps, action) for action in (*DELETES, "s3:ListBucketVersions"))
    destroys = archiver_role_policy("arn:aws:s3:::a", "arn:k", destroy_expired=True)
    # Every version of an archived month, under audit/audit_log/ only; never a bypass of the
    # Object Lock (S3 refuses a locked version to whoever asks).
    assert _allowed(destroys, "s3:DeleteObjectVersion") == ["arn:aws:s3:::a/audit/audit_log/*"]
    assert _allowed(destroys, "s3:DeleteObject") == []
    listing = _by_sid(destroys)["ListArchivedMonthVersions"]
    assert listing["Action"] == "s3:ListBucketVersions"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["audit/audit_log/*"]}}
    for doc in (keeps, destroys):
        deny = _by_sid(doc)["NeverBypassObjectLock"]
        assert deny["Effect"] == "Deny" and "s3:BypassGovernanceRetention" in deny["Action"]


def test_the_purge_job_reads_the_model_pointer_only() -> None:
    doc = purger_role_policy("arn:aws:s3:::m", "arn:k")
    assert _allowed(doc, "s3:GetObject") == ["arn:aws:s3:::m/models/current.json"]
    assert {s["Action"] for s in json.loads(doc)["Statement"]} == {"s3:GetObject", "kms:Decrypt"}


def test_the_access_report_job_reads_archived_months_and_writes_to_the_drop_bucket() -> None:
    doc = access_report_role_policy(
        "arn:aws:s3:::a", "arn:ka", drop_bucket_arn="arn:aws:s3:::d", drop_key_arn="arn:kd"
    )
    assert _allowed(doc, "s3:GetObject") == ["arn:aws:s3:::a/audit/audit_log/*"]
    assert _allowed(doc, "s3:PutObject") == ["arn:aws:s3:::d/access-reports/*"]
    assert not any(_allowed(doc, action) for action in DELETES)


def test_the_offboarding_job_destroys_the_districts_prefixes_and_nothing_archived() -> None:
    arns = {
        "drop_bucket_arn": "arn:aws:s3:::d",
        "drop_key_arn": "arn:kd",
        "models_bucket_arn": "arn:aws:s3:::m",
        "archive_bucket_arn": "arn:aws:s3:::a",
        "archive_key_arn": "arn:ka",
    }
    doc = offboarder_role_policy(**arns)
    assert _allowed(doc, "s3:DeleteObjectVersion") == [
        "arn:aws:s3:::d/exports/*",
        "arn:aws:s3:::m/models/*",
    ]
    assert _allowed(doc, "s3:PutObject") == [
        "arn:aws:s3:::d/offboarding/*",  # the export, for the district's next vendor
        "arn:aws:s3:::a/offboarding/*",  # the signed report, under the archive's Object Lock
    ]
    assert sorted(_allowed(doc, "s3:ListBucketVersions")) == ["arn:aws:s3:::d", "arn:aws:s3:::m"]
    assert "audit/" not in doc and "dynamodb" not in doc
    assert _by_sid(doc)["NeverBypassObjectLock"]["Effect"] == "Deny"
    tier4 = offboarder_role_policy(**arns, directory_table_arn="arn:aws:dynamodb:t")
    assert _allowed(tier4, "dynamodb:DeleteItem") == ["arn:aws:dynamodb:t"]
