"""A hardened S3 bucket: customer-managed KMS key, versioning, no public access, TLS only.

Used for the model artifacts (versioned, so the last models stay restorable for a rollback),
the archived audit-log partitions and the district's exports. Built on pulumi-aws 7's
``aws.s3.Bucket`` and the separate configuration resources, one bucket policy per bucket (S3
allows only one), with a hook for statements other components add (CloudFront's origin
access control).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from components.shared.bucket_controls import block_public_access
from components.shared.contract import BucketRef, owned
from components.shared.iam import tls_only_statement
from components.shared.kms import customer_key, key_policy
from components.shared.stack import StackContext

ArchiveClass = Literal["STANDARD_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"]

# The log bucket's prefix for S3 server access logs (log_bucket.S3_PREFIX admits it).
ACCESS_LOG_PREFIX = "s3"
# Multipart uploads a crashed trainer leaves behind are billed until aborted.
ABORT_INCOMPLETE_UPLOADS_DAYS = 7


@dataclass(frozen=True)
class Transition:
    """Move objects to ``storage_class`` once they are ``days`` old."""

    days: int
    storage_class: ArchiveClass


@dataclass(frozen=True)
class ObjectLock:
    """S3 Object Lock's default retention of every new object version."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: int


def bucket_policy(bucket_arn: str, extra_statements: Sequence[Mapping[str, Any]] = ()) -> str:
    """The bucket's only policy: TLS only, plus statements other components contribute."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [tls_only_statement(bucket_arn), *(dict(s) for s in extra_statements)],
        }
    )


def lifecycle_rules(
    *,
    noncurrent_versions_kept: int | None,
    noncurrent_days: int,
    transitions: Sequence[Transition],
) -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
    """Lifecycle rules for the whole bucket.

    Current versions never expire (model artifacts are pruned by the trainer; audit archives
    are FERPA education records kept for as long as the district requires). Non-current
    versions are kept ``noncurrent_versions_kept`` deep and ``noncurrent_days`` long, or
    archived alongside the current ones when ``noncurrent_versions_kept`` is None.
    """
    if noncurrent_days < 1:
        raise ValueError(f"noncurrent_days={noncurrent_days}: must be at least 1")
    days = [t.days for t in transitions]
    if days != sorted(set(days)):
        raise ValueError(f"transitions {days}: days must be distinct and ascending")
    rules: list[aws.s3.BucketLifecycleConfigurationRuleArgsDict] = [
        {
            "id": "abort-incomplete-uploads",
            "status": "Enabled",
            "filter": {"prefix": ""},
            "abort_incomplete_multipart_upload": {
                "days_after_initiation": ABORT_INCOMPLETE_UPLOADS_DAYS
            },
        }
    ]
    if noncurrent_versions_kept is not None:
        rules.append(
            {
                "id": "expire-noncurrent-versions",
                "status": "Enabled",
                "filter": {"prefix": ""},
                "noncurrent_version_expiration": {
                    "newer_noncurrent_versions": noncurrent_versions_kept,
                    "noncurrent_days": noncurrent_days,
                },
            }
        )
    if transitions:
        rules.append(
            {
                "id": "archive",
                "status": "Enabled",
                "filter": {"prefix": ""},
                "transitions": [
                    {"days": t.days, "storage_class": t.storage_class} for t in transitions
                ],
                "noncurrent_version_transitions": [
                    {"noncurrent_days": t.days, "storage_class": t.storage_class}
                    for t in transitions
                ],
            }
        )
    return rules


@dataclass
class SecureBucketArgs:
    stack: StackContext
    """The stack: tags (data stores' with the ``ferpa`` classification) and ``protect`` on
    the bucket and its key (False on dev only)."""
    purpose: str
    """What the bucket holds; the KMS key's description."""
    force_destroy: bool = False
    """Let ``pulumi destroy`` empty the bucket; dev only."""
    noncurrent_versions_kept: int | None = None
    """Non-current versions kept per object (the models bucket: the last 5, enough to roll
    back a bad week of training); None keeps all."""
    noncurrent_days: int = 30
    """Days a non-current version is kept beyond ``noncurrent_versions_kept``."""
    transitions: Sequence[Transition] = ()
    """Storage-class transitions for archives, ascending by days."""
    extra_policy_statements: Sequence[pulumi.Input[Mapping[str, Any]]] = ()
    """Statements merged into the bucket's one policy (e.g. CloudFront OAC read access)."""
    extra_key_policy_statements: Sequence[pulumi.Input[Mapping[str, Any]]] = ()
    """Statements added to the KMS key's policy (e.g. CloudFront OAC kms:Decrypt)."""
    access_log_bucket: pulumi.Input[str] | None = None
    """Bucket receiving this bucket's S3 server access logs (under ``s3/<name>/``)."""
    object_lock: ObjectLock | None = None
    """Write-once objects for this long (the audit archive); None: no Object Lock."""


def object_lock(
    name: str, bucket: aws.s3.Bucket, lock: ObjectLock, opts: pulumi.ResourceOptions
) -> aws.s3.BucketObjectLockConfiguration:
    """Object Lock through its own configuration resource, not the bucket's
    ``object_lock_enabled``: that property forces the bucket's replacement, and a live
    stack's audit archive (protected, holding every archived month) cannot be replaced. S3
    enables Object Lock on an existing versioned bucket with PutObjectLockConfiguration
    (since November 2023: docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-configure.html),
    which this resource calls (pulumi-aws 7: aws.s3.BucketObjectLockConfiguration,
    object_lock_enabled "Enabled" and rule.default_retention). Objects written before it keep
    no retention; every new one is locked. Enabling cannot be undone (S3 has no disable)."""
    if lock.days < 1:
        raise ValueError(f"object lock days={lock.days}: must be at least 1")
    return aws.s3.BucketObjectLockConfiguration(
        f"{name}-object-lock",
        bucket=bucket.id,
        object_lock_enabled="Enabled",
        rule={"default_retention": {"mode": lock.mode, "days": lock.days}},
        opts=opts,
    )


def encrypt_with_key(
    name: str, bucket: aws.s3.Bucket, key_arn: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> aws.s3.BucketServerSideEncryptionConfiguration:
    """Every object encrypted with the bucket's customer-managed key."""
    return aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[
            {
                "apply_server_side_encryption_by_default": {
                    "sse_algorithm": "aws:kms",
                    "kms_master_key_id": key_arn,
                },
                # One data key per bucket instead of per object: fewer KMS calls.
                "bucket_key_enabled": True,
            }
        ],
        opts=opts,
    )


class SecureBucket(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    """Physical name of the bucket (auto-named from the logical name's prefix)."""
    bucket_arn: pulumi.Output[str]
    """ARN of the bucket."""
    bucket_regional_domain_name: pulumi.Output[str]
    """Regional domain name, for CloudFront origins."""
    kms_key_arn: pulumi.Output[str]
    """Customer-managed key encrypting the objects; readers need kms:Decrypt on it."""

    def __init__(
        self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ssp:storage:SecureBucket", name, None, opts)
        protect, tags = args.stack.protect, args.stack.tags
        stateful = pulumi.ResourceOptions(parent=self, protect=protect)
        rules = lifecycle_rules(
            noncurrent_versions_kept=args.noncurrent_versions_kept,
            noncurrent_days=args.noncurrent_days,
            transitions=args.transitions,
        )

        account = aws.get_caller_identity_output().account_id
        key = customer_key(
            f"{name}-key",
            description=f"Encrypts the {args.purpose} bucket",
            policy=pulumi.Output.all(account, *args.extra_key_policy_statements).apply(
                lambda values: key_policy(values[0], values[1:])
            ),
            tags=tags,
            opts=stateful,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name_prefix=f"alias/{name}-",
            target_key_id=key.key_id,
            opts=owned(self, was=key, protect=protect),
        )
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            # Physical names are global: a prefix plus the random suffix S3 adds.
            bucket_prefix=f"{name}-"[:37],
            force_destroy=args.force_destroy,
            tags=tags,
            opts=stateful,
        )
        in_bucket = owned(self, was=bucket, protect=protect)
        # Block public access first: the policy must never land on a bucket that allows it.
        public_block = block_public_access(name, bucket, in_bucket)
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=in_bucket,
        )
        encrypt_with_key(name, bucket, key.arn, in_bucket)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=rules,
            # Non-current version rules need versioning in place.
            opts=owned(self, was=bucket, protect=protect, depends_on=[versioning]),
        )
        if args.object_lock is not None:
            object_lock(
                name,
                bucket,
                args.object_lock,
                owned(self, was=bucket, protect=protect, depends_on=[versioning]),
            )
        if args.access_log_bucket is not None:
            # Who read or wrote which object, when: the audit trail of a FERPA bucket.
            aws.s3.BucketLogging(
                f"{name}-access-logging",
                bucket=bucket.id,
                target_bucket=args.access_log_bucket,
                target_prefix=f"{ACCESS_LOG_PREFIX}/{name}/",
                opts=in_bucket,
            )
        policy = pulumi.Output.all(bucket.arn, *args.extra_policy_statements).apply(
            lambda values: bucket_policy(values[0], values[1:])
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=policy,
            opts=owned(self, was=bucket, protect=protect, depends_on=[public_block]),
        )

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.bucket_regional_domain_name = bucket.bucket_regional_domain_name
        self.kms_key_arn = key.arn
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "bucket_regional_domain_name": self.bucket_regional_domain_name,
                "kms_key_arn": self.kms_key_arn,
            }
        )

    @property
    def ref(self) -> BucketRef:
        """Name, ARN and key of the bucket, as one bundle for its users."""
        return BucketRef(name=self.bucket_name, arn=self.bucket_arn, kms_key_arn=self.kms_key_arn)
