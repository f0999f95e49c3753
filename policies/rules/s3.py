"""S3: no public access, KMS encryption, TLS-only bucket policies, versioned model buckets.

These rules judge each configuration resource; the ``s3-bucket-controls-present`` stack rule
(policies/rules/stack_consistency.py) checks that every bucket actually has them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
)

from ._util import as_list, get, num, rule, setting, statements

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ACLS = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
VERSIONING = (
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketVersioningV2:BucketVersioningV2",
)
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
OBJECT_LOCK = (
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
    "aws:s3/bucketObjectLockConfigurationV2:BucketObjectLockConfigurationV2",
)
LOCK_MODES = frozenset({"GOVERNANCE", "COMPLIANCE"})

AUDIT_BUCKET_SCHEMA = PolicyConfigSchema(
    properties={
        "auditBucketPattern": {
            "type": "string",
            "default": r"^audit-archive",
            "description": "Regex matched against a bucket's resource name to recognise the "
            "audit archive, which must be write-once (S3 Object Lock).",
        },
    }
)

PAB_FLAGS = {
    "blockPublicAcls": "block_public_acls",
    "blockPublicPolicy": "block_public_policy",
    "ignorePublicAcls": "ignore_public_acls",
    "restrictPublicBuckets": "restrict_public_buckets",
}
PUBLIC_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read"})
KMS_ALGORITHMS = frozenset({"aws:kms", "aws:kms:dsse"})

MODEL_BUCKET_SCHEMA = PolicyConfigSchema(
    properties={
        "modelBucketPattern": {
            "type": "string",
            "default": "model",
            "description": "Regex matched against a bucket's resource name or bucket name to "
            "recognise the buckets holding model artifacts (they must be versioned).",
        },
    }
)


def is_model_bucket(name: str, props: Mapping[str, Any], pattern: str) -> bool:
    names = [name, str(props.get("bucket") or ""), str(props.get("bucketPrefix") or "")]
    return any(re.search(pattern, n, re.IGNORECASE) for n in names if n)


def sse_algorithms(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """The default encryption algorithms a bucket or SSE configuration resource sets."""
    if resource_type in BUCKETS:
        rules = as_list(get(props, "serverSideEncryptionConfiguration.rule"))
    else:
        rules = as_list(props.get("rules"))
    return [str(get(r, "applyServerSideEncryptionByDefault.sseAlgorithm") or "") for r in rules]


def denies_insecure_transport(document: Any) -> bool:
    """True when a bucket policy denies every request made without TLS."""
    for statement in statements(document):
        if statement.get("Effect") != "Deny":
            continue
        condition = statement.get("Condition")
        if not isinstance(condition, Mapping):
            continue
        for operator in ("Bool", "BoolIfExists"):
            value = get(condition, f"{operator}.aws:SecureTransport")
            if any(str(v).lower() == "false" for v in as_list(value)):
                return True
    return False


def _public_access_block(args: ResourceValidationArgs, report: ReportViolation) -> None:
    off = [snake for wire, snake in PAB_FLAGS.items() if args.props.get(wire) is not True]
    if off:
        report(
            f"S3 public access block '{args.name}' leaves {', '.join(off)} off; set all four "
            "flags to True.",
            None,
        )


def _no_public_acl(args: ResourceValidationArgs, report: ReportViolation) -> None:
    acl = str(args.props.get("acl") or "")
    if acl in PUBLIC_ACLS:
        report(
            f"S3 resource '{args.name}' grants the canned ACL '{acl}'; remove it (buckets stay "
            "private; serve public content through CloudFront with origin access control).",
            None,
        )


def _versioning(args: ResourceValidationArgs, report: ReportViolation) -> None:
    pattern = str(setting(args, MODEL_BUCKET_SCHEMA, "modelBucketPattern"))
    if args.resource_type in BUCKETS:
        if not is_model_bucket(args.name, args.props, pattern):
            return
        if get(args.props, "versioning.enabled") is False:
            report(
                f"S3 model bucket '{args.name}' disables versioning; model artifacts need "
                "versions to roll back: enable it with an aws.s3.BucketVersioning resource.",
                None,
            )
        return
    status = str(get(args.props, "versioningConfiguration.status") or "")
    if status != "Enabled":
        report(
            f"S3 versioning '{args.name}' has status '{status}'; set "
            "versioning_configuration.status='Enabled' (model rollbacks read old versions).",
            None,
        )


ACCESS_LOG_SCHEMA = PolicyConfigSchema(
    properties={
        "accessLogBucketPattern": {
            "type": "string",
            "default": r"^access-logs-",
            "description": "Logical names of the access-log bucket and its configuration, which "
            "may use SSE-S3: Elastic Load Balancing delivers access logs to SSE-S3 buckets only.",
        },
    }
)


def _sse_kms(args: ResourceValidationArgs, report: ReportViolation) -> None:
    algorithms = sse_algorithms(args.resource_type, args.props)
    if not algorithms and args.resource_type in BUCKETS:
        return  # configured by a separate resource; the stack rule checks it exists
    allowed = KMS_ALGORITHMS
    if re.search(str(setting(args, ACCESS_LOG_SCHEMA, "accessLogBucketPattern")), args.name):
        allowed = KMS_ALGORITHMS | {"AES256"}
    weak = [a or "(none)" for a in algorithms or [""] if a not in allowed]
    if weak:
        report(
            f"S3 encryption of '{args.name}' uses {', '.join(weak)}; set "
            "apply_server_side_encryption_by_default.sse_algorithm='aws:kms' with a "
            "customer-managed kms_master_key_id (and bucket_key_enabled=True).",
            None,
        )


def _tls_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    document = args.props.get("policy")
    if args.resource_type in BUCKETS and not document:
        return  # policy attached by an aws.s3.BucketPolicy; the stack rule checks it exists
    if not denies_insecure_transport(document):
        report(
            f"S3 bucket policy '{args.name}' does not deny plain-HTTP access; add a Deny "
            "statement for s3:* on the bucket and its objects with Condition "
            '{"Bool": {"aws:SecureTransport": "false"}}.',
            None,
        )


def lock_problem(lock: Any) -> str | None:
    """What is wrong with an Object Lock configuration's props (None: a default retention in
    governance or compliance mode for at least a day)."""
    if str(get(lock, "objectLockEnabled") or "Enabled") != "Enabled":
        return "does not enable Object Lock (object_lock_enabled='Enabled')"
    retention = get(lock, "rule.defaultRetention")
    if not isinstance(retention, Mapping):
        return "sets no default retention (rule.default_retention)"
    mode = str(retention.get("mode") or "")
    if mode not in LOCK_MODES:
        return f"has retention mode '{mode}' (GOVERNANCE or COMPLIANCE)"
    # Numbers arrive as floats from the engine.
    days, years = num(retention.get("days"), 0.0) or 0.0, num(retention.get("years"), 0.0) or 0.0
    if days < 1 and years < 1:
        return "keeps objects for no time (days or years of at least 1)"
    return None


def _object_lock(args: ResourceValidationArgs, report: ReportViolation) -> None:
    problem = lock_problem(args.props)
    if problem:
        report(
            f"S3 Object Lock configuration '{args.name}' {problem}: archived audit months "
            "must be write-once.",
            None,
        )


M = EnforcementLevel.MANDATORY

POLICIES = [
    rule(
        "s3-public-access-block",
        "S3 public access blocks turn on all four flags.",
        [PUBLIC_ACCESS_BLOCK],
        _public_access_block,
        M,
    ),
    rule(
        "s3-no-public-acl",
        "S3 buckets never carry a public canned ACL.",
        [*BUCKETS, *ACLS],
        _no_public_acl,
        M,
    ),
    rule(
        "s3-model-bucket-versioning",
        "S3 versioning is enabled (model buckets must be versioned).",
        [*BUCKETS, *VERSIONING],
        _versioning,
        M,
        MODEL_BUCKET_SCHEMA,
    ),
    rule(
        "s3-sse-kms",
        "S3 default encryption uses SSE-KMS (SSE-S3 on the access-log bucket, as ELB needs).",
        [*BUCKETS, *ENCRYPTION],
        _sse_kms,
        M,
        ACCESS_LOG_SCHEMA,
    ),
    rule(
        "s3-object-lock-retention",
        "S3 Object Lock configurations lock every new object for a while, in governance or "
        "compliance mode.",
        list(OBJECT_LOCK),
        _object_lock,
        M,
    ),
    rule(
        "s3-tls-only-policy",
        "S3 bucket policies deny requests made without TLS.",
        [*BUCKETS, BUCKET_POLICY],
        _tls_only,
        M,
    ),
]
