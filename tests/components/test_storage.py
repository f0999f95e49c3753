"""The buckets: TLS-only policies, KMS encryption, versioning and lifecycle rules."""

from __future__ import annotations

import json

import pytest

from components.config.catalog import TIERS
from components.storage import Transition, bucket_policy, lifecycle_rules
from tests.shared import BUCKET, BUCKET_POLICY, STACKS, StackRunner, tier_of

# -- pure functions ------------------------------------------------------------------------


def test_bucket_policy_is_tls_only_plus_extras() -> None:
    extra = {"Sid": "CloudFront", "Effect": "Allow", "Action": "s3:GetObject"}
    doc = json.loads(bucket_policy("arn:aws:s3:::b", [extra]))
    deny = doc["Statement"][0]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]
    assert doc["Statement"][1] == extra


def test_lifecycle_rules_models_and_archive() -> None:
    models = lifecycle_rules(noncurrent_versions_kept=5, noncurrent_days=30, transitions=())
    expire = next(r for r in models if "noncurrent_version_expiration" in r)
    assert expire["noncurrent_version_expiration"] == {
        "newer_noncurrent_versions": 5,
        "noncurrent_days": 30,
    }
    archive = lifecycle_rules(
        noncurrent_versions_kept=None,
        noncurrent_days=30,
        transitions=(Transition(30, "GLACIER_IR"), Transition(365, "DEEP_ARCHIVE")),
    )
    assert not any("expiration" in r for r in archive), "FERPA archives never expire"
    with pytest.raises(ValueError, match="ascending"):
        lifecycle_rules(
            noncurrent_versions_kept=None,
            noncurrent_days=30,
            transitions=(Transition(365, "DEEP_ARCHIVE"), Transition(30, "GLACIER_IR")),
        )


# -- the whole program, per stack ----------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_registry_and_buckets(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    protect = TIERS[tier_of(run)].deletion_protection
    # Tier 4's regional stacks pull the global registry's replica (tests/components/test_global.py).
    if "student-success:globalStack" not in run.config:
        repo = run.one("aws:ecr/repository:Repository")
        assert repo.get("imageTagMutability") == "IMMUTABLE"
        assert repo.get("imageScanningConfiguration.scanOnPush") is True
        assert repo.get("encryptionConfigurations.0.encryptionType") == "KMS"
        assert repo.options.protect is protect
        assert run.count("aws:ecr/lifecyclePolicy:LifecyclePolicy") == 1
    # The hardened buckets; the access-log bucket is tests/components/test_log_bucket.py's.
    buckets = [b for b in run.of_type(BUCKET) if b.name != "access-logs-bucket"]
    # Models, audit archive, and the drop of the district's exports.
    assert sorted(b.name for b in buckets) == [
        "audit-archive-bucket",
        "district-drop-bucket",
        "models-bucket",
    ]
    assert run.count(BUCKET) == 4
    for bucket in buckets:
        assert bucket.options.protect is protect, bucket.name
        assert bucket.get("forceDestroy") is (not protect), bucket.name
        assert bucket.get("tags.data-classification") == "ferpa"
        assert "bucket" not in bucket.inputs, "auto-named through bucket_prefix"
        children = {c.type: c for c in run.attached_to(bucket, "bucket")}
        block = children["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"]
        assert all(
            block.get(k) is True
            for k in (
                "blockPublicAcls",
                "blockPublicPolicy",
                "ignorePublicAcls",
                "restrictPublicBuckets",
            )
        )
        ownership = children["aws:s3/bucketOwnershipControls:BucketOwnershipControls"]
        assert ownership.get("rule.objectOwnership") == "BucketOwnerEnforced"
        assert (
            children["aws:s3/bucketVersioning:BucketVersioning"].get(
                "versioningConfiguration.status"
            )
            == "Enabled"
        )
        sse = children[
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        ].get("rules.0")
        assert sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
        assert sse["bucketKeyEnabled"] is True
        policy = json.loads(children[BUCKET_POLICY].get("policy"))
        assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rules = [
        r.get("rules")
        for r in run.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    ]
    flat = [rule for group in rules for rule in group]
    assert any(
        rule.get("noncurrentVersionExpiration", {}).get("newerNoncurrentVersions") == 5
        for rule in flat
    )
    assert any(
        [t["storageClass"] for t in rule.get("transitions", [])] == ["GLACIER_IR", "DEEP_ARCHIVE"]
        for rule in flat
    )
