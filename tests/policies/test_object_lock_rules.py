"""The audit archive is write-once: an Object Lock configuration locks every new object in
governance or compliance mode, and the audit archive bucket has one."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import resource_messages, stack_messages, stack_resource

LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
BUCKET = "aws:s3/bucket:Bucket"


def lock(mode: str = "COMPLIANCE", days: int | None = 365, **extra: Any) -> dict[str, Any]:
    retention: dict[str, Any] = {"mode": mode}
    if days is not None:
        retention["days"] = days
    return {
        "bucket": "audit-x",
        "objectLockEnabled": "Enabled",
        "rule": {"defaultRetention": retention},
        **extra,
    }


@pytest.mark.parametrize("mode", ["COMPLIANCE", "GOVERNANCE"])
def test_a_lock_in_either_mode_for_a_year_passes(mode: str) -> None:
    assert resource_messages("s3-object-lock-retention", LOCK, lock(mode)) == []


@pytest.mark.parametrize(
    ("props", "problem"),
    [
        (lock("NONE"), "mode 'NONE'"),
        (lock(days=0), "no time"),
        (lock(days=None), "no time"),
        ({"bucket": "audit-x", "objectLockEnabled": "Enabled"}, "no default retention"),
        (lock(objectLockEnabled="Disabled"), "does not enable"),
    ],
)
def test_a_lock_that_locks_nothing_is_refused(props: dict[str, Any], problem: str) -> None:
    (message,) = resource_messages("s3-object-lock-retention", LOCK, props, resource_name="l")
    assert problem in message and "'l'" in message


def test_the_audit_archive_bucket_needs_an_object_lock() -> None:
    bucket = stack_resource(BUCKET, "audit-archive-bucket", {"id": "audit-x"})
    locked = stack_resource(LOCK, "audit-archive-object-lock", lock())
    assert stack_messages("s3-audit-archive-object-lock", [bucket, locked]) == []
    ((message, urn),) = stack_messages("s3-audit-archive-object-lock", [bucket])
    assert "'audit-archive-bucket' archives the audit log without Object Lock" in message
    assert urn == bucket.urn
    elsewhere = stack_resource(LOCK, "other-lock", {**lock(), "bucket": "models-x"})
    assert stack_messages("s3-audit-archive-object-lock", [bucket, elsewhere])
    # Other buckets need none.
    models = stack_resource(BUCKET, "models-bucket", {"id": "models-x"})
    assert stack_messages("s3-audit-archive-object-lock", [models]) == []


@pytest.mark.parametrize(
    "retention",
    [{"days": 1.0}, {"years": 1.0}],
    ids=["one day", "one year"],
)
def test_a_lock_of_one_day_or_one_year_is_long_enough(retention: dict[str, float]) -> None:
    props = lock(days=None)
    props["rule"]["defaultRetention"].update(retention)
    assert resource_messages("s3-object-lock-retention", LOCK, props) == []
