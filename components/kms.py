"""Customer-managed KMS keys, made one way everywhere."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

# The longest window AWS allows: a key deleted by mistake stays recoverable for 30 days,
# and everything it encrypted with it.
DELETION_WINDOW_DAYS = 30


def customer_key(
    name: str,
    *,
    description: str,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    policy: pulumi.Input[str] | None = None,
) -> aws.kms.Key:
    """A symmetric customer-managed key with automatic yearly rotation. ``policy`` replaces
    the default key policy (account root administers) where a service needs a grant."""
    return aws.kms.Key(
        name,
        description=description,
        policy=policy,
        enable_key_rotation=True,
        deletion_window_in_days=DELETION_WINDOW_DAYS,
        tags=tags,
        opts=opts,
    )
