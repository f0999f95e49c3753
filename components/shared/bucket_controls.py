"""What every bucket of the stack has, made one way: no public access, and objects owned by the
bucket's owner (ACLs disabled)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def block_public_access(
    name: str, bucket: aws.s3.Bucket, opts: pulumi.ResourceOptions
) -> aws.s3.BucketPublicAccessBlock:
    """The public-access block and the ownership controls of ``bucket``; the block, which a
    bucket policy must wait for (it must never land on a bucket that allows public access)."""
    public_block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership",
        bucket=bucket.id,
        rule={"object_ownership": "BucketOwnerEnforced"},
        opts=opts,
    )
    return public_block
