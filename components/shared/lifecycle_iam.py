"""The IAM policy documents of the audit trail and of a student's data lifecycle, as pure
functions tests can call: the archive job's (archival, and the retention's destruction of
expired months), the on-demand purge, offboarding and access-report Jobs', and the Deny of any
Object Lock bypass each of them carries."""

from __future__ import annotations

import json
from typing import Any

from components.shared.iam import AUDIT_MONTHS_PREFIX, DROP_PREFIX, MODEL_POINTER, MODELS_PREFIX

# Where an offboarding writes: the district's export (drop bucket) for its next vendor, and
# its signed destruction report (audit archive: under Object Lock, so it cannot be altered).
OFFBOARDING_PREFIX = "offboarding"
# Where the access-report Job writes a student's report for the district (its drop bucket).
ACCESS_REPORTS_PREFIX = "access-reports"

# No workload may shorten or bypass the audit archive's Object Lock (governance mode lets a
# holder of s3:BypassGovernanceRetention delete a locked version early).
NO_LOCK_BYPASS: dict[str, Any] = {
    "Sid": "NeverBypassObjectLock",
    "Effect": "Deny",
    "Action": [
        "s3:BypassGovernanceRetention",
        "s3:PutObjectRetention",
        "s3:PutObjectLegalHold",
        "s3:PutBucketObjectLockConfiguration",
    ],
    "Resource": "*",
}


def archiver_role_policy(
    archive_bucket_arn: str, archive_key_arn: str, *, destroy_expired: bool = False
) -> str:
    """The archive job writes (and verifies) audit-log exports. ``destroy_expired`` (the tier
    keeps archived audit months for a set number of years): it also destroys the expired
    months, every version of them (app/jobs/lifecycle/retention.py), under audit_log/ only.
    S3 Object Lock refuses a version whose retention has not ended, whoever asks; the role
    may never bypass a governance-mode lock (the explicit Deny)."""
    destroy: list[dict[str, Any]] = []
    if destroy_expired:
        destroy = [
            {
                "Sid": "ListArchivedMonthVersions",
                "Effect": "Allow",
                "Action": "s3:ListBucketVersions",
                "Resource": archive_bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{AUDIT_MONTHS_PREFIX}/*"]}},
            },
            {
                "Sid": "DestroyExpiredMonths",
                "Effect": "Allow",
                "Action": "s3:DeleteObjectVersion",
                "Resource": f"{archive_bucket_arn}/{AUDIT_MONTHS_PREFIX}/*",
            },
        ]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListArchives",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": archive_bucket_arn,
                },
                {
                    "Sid": "WriteArchives",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:GetObject"],
                    "Resource": f"{archive_bucket_arn}/*",
                },
                {
                    "Sid": "UseBucketKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": archive_key_arn,
                },
                *destroy,
                NO_LOCK_BYPASS,
            ],
        }
    )


def access_report_role_policy(
    archive_bucket_arn: str, archive_key_arn: str, *, drop_bucket_arn: str, drop_key_arn: str
) -> str:
    """The access-report Job (`python -m app access-report`) reads the archived audit months
    (no write, no delete there) and writes its report under access-reports/ of the district's
    drop bucket."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListArchivedMonths",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": archive_bucket_arn,
                    "Condition": {"StringLike": {"s3:prefix": [f"{AUDIT_MONTHS_PREFIX}/*"]}},
                },
                {
                    "Sid": "ReadArchivedMonths",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"{archive_bucket_arn}/{AUDIT_MONTHS_PREFIX}/*",
                },
                {
                    "Sid": "DecryptArchive",
                    "Effect": "Allow",
                    "Action": "kms:Decrypt",
                    "Resource": archive_key_arn,
                },
                {
                    "Sid": "WriteReports",
                    "Effect": "Allow",
                    "Action": "s3:PutObject",
                    "Resource": f"{drop_bucket_arn}/{ACCESS_REPORTS_PREFIX}/*",
                },
                {
                    "Sid": "EncryptReports",
                    "Effect": "Allow",
                    "Action": "kms:GenerateDataKey",
                    "Resource": drop_key_arn,
                },
            ],
        }
    )


def purger_role_policy(models_bucket_arn: str, models_key_arn: str) -> str:
    """The purge Job (`python -m app purge-student`) reads which model versions serve, to
    report that they learnt from the student: the model store's pointer only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadModelPointer",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"{models_bucket_arn}/{MODEL_POINTER}",
                },
                {
                    "Sid": "DecryptModelPointer",
                    "Effect": "Allow",
                    "Action": "kms:Decrypt",
                    "Resource": models_key_arn,
                },
            ],
        }
    )


def _destroy_prefix(sid: str, bucket_arn: str, prefix: str) -> list[dict[str, Any]]:
    """List and delete every object version under ``prefix/`` of one bucket (S3Backend.destroy:
    ListObjectVersions, then DeleteObjects naming each version)."""
    return [
        {
            "Sid": f"List{sid}Versions",
            "Effect": "Allow",
            "Action": "s3:ListBucketVersions",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*"]}},
        },
        {
            "Sid": f"Destroy{sid}",
            "Effect": "Allow",
            "Action": "s3:DeleteObjectVersion",
            "Resource": f"{bucket_arn}/{prefix}/*",
        },
    ]


def offboarder_role_policy(
    *,
    drop_bucket_arn: str,
    drop_key_arn: str,
    models_bucket_arn: str,
    archive_bucket_arn: str,
    archive_key_arn: str,
    directory_table_arn: str | None = None,
) -> str:
    """The offboarding Job (`python -m app offboard-district`): writes the district's export
    under offboarding/ of the drop bucket, destroys every version under the drop prefix and
    the model store (the district's own prefixes there: the app refuses a whole bucket),
    writes the signed report under offboarding/ of the audit archive (Object Lock keeps it),
    and on tier 4 deletes the district's directory entry. It never touches the archived audit
    months: they are every district's, under Object Lock."""
    directory = (
        [
            {
                "Sid": "DeleteDirectoryEntry",
                "Effect": "Allow",
                "Action": "dynamodb:DeleteItem",
                "Resource": directory_table_arn,
            }
        ]
        if directory_table_arn
        else []
    )
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "WriteExport",
                    "Effect": "Allow",
                    "Action": "s3:PutObject",
                    "Resource": f"{drop_bucket_arn}/{OFFBOARDING_PREFIX}/*",
                },
                *_destroy_prefix("Exports", drop_bucket_arn, DROP_PREFIX),
                *_destroy_prefix("Models", models_bucket_arn, MODELS_PREFIX),
                {
                    "Sid": "WriteReport",
                    "Effect": "Allow",
                    "Action": "s3:PutObject",
                    "Resource": f"{archive_bucket_arn}/{OFFBOARDING_PREFIX}/*",
                },
                {
                    # SSE-KMS PutObject: a data key under each bucket's key.
                    "Sid": "EncryptWrites",
                    "Effect": "Allow",
                    "Action": "kms:GenerateDataKey",
                    "Resource": [drop_key_arn, archive_key_arn],
                },
                *directory,
                NO_LOCK_BYPASS,
            ],
        }
    )
