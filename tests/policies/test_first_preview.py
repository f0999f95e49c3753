"""A brand-new stack's first preview: every computed value is unknown, and the pack must not
read unknown as missing (that would block the first `pulumi preview --policy-pack` of every
stack). Stack rules treat an unknown as decided at apply time; a rule that cannot run is a
note, as the engine reports it, not a violation."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN
from pulumi_policy import PolicyResource
from pulumi_policy.proxy import unknown_checking_proxy

from tests.policies.helpers import TAGS, stack_messages, stack_resource
from tools.harness import run_stack, stacks
from tools.policy import PREVIEW, check_run

BUCKET = "aws:s3/bucket:Bucket"
CDN = "aws:cloudfront/distribution:Distribution"


def unknown_props(resource: PolicyResource) -> PolicyResource:
    """As the engine hands it to a rule: unknown values raise when read."""
    resource.props = unknown_checking_proxy(dict(resource.props))
    return resource


def bucket_with(policy: Any, bucket_id: Any = UNKNOWN) -> list[PolicyResource]:
    component = stack_resource("ssp:storage:SecureBucket", "models", {})
    bucket = stack_resource(BUCKET, "models-bucket", {"id": bucket_id, "tags": TAGS}, component)
    companions = [
        stack_resource(type_, f"models-{role}", {"bucket": UNKNOWN, **extra}, component)
        for type_, role, extra in (
            ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "pab", {}),
            (
                "aws:s3/bucketServerSideEncryptionConfiguration:"
                "BucketServerSideEncryptionConfiguration",
                "sse",
                {},
            ),
            ("aws:s3/bucketPolicy:BucketPolicy", "policy", {"policy": policy}),
            (
                "aws:s3/bucketVersioning:BucketVersioning",
                "versioning",
                {"versioningConfiguration": {"status": "Enabled"}},
            ),
        )
    ]
    return [unknown_props(r) for r in (bucket, *companions)]


def test_a_bucket_policy_unknown_at_preview_is_decided_at_apply_time() -> None:
    assert stack_messages("s3-bucket-controls-present", bucket_with(UNKNOWN)) == []


def test_a_bucket_without_a_tls_policy_is_still_reported_at_preview() -> None:
    no_tls = '{"Statement": []}'
    ((message, _),) = stack_messages("s3-bucket-controls-present", bucket_with(no_tls))
    assert "aws:SecureTransport=false" in message


def test_a_waf_made_in_the_same_update_is_unknown_not_missing() -> None:
    cdn = unknown_props(stack_resource(CDN, "edge-cdn", {"webAclId": UNKNOWN, "tags": TAGS}))
    messages = [m for m, _ in stack_messages("tier-consistency", [cdn])]
    assert not any("has no WAF" in m for m in messages)
    bare = unknown_props(stack_resource(CDN, "edge-cdn", {"tags": TAGS}))
    messages = [m for m, _ in stack_messages("tier-consistency", [bare])]
    assert any("'edge-cdn' has no WAF" in m for m in messages)


@pytest.mark.parametrize("stack", stacks())
def test_every_stack_passes_every_mandatory_rule_on_its_first_preview(stack: str) -> None:
    violations = check_run(run_stack(stack, preview=True))
    assert [v for v in violations if v.level == "mandatory"] == []


def test_a_rule_that_reads_an_unknown_is_noted_not_violated() -> None:
    violations = check_run(run_stack("tier3", preview=True))
    notes = [v for v in violations if v.level == PREVIEW]
    assert notes, "a first preview leaves some rules to apply time"
    assert all("during preview" in v.message for v in notes)
