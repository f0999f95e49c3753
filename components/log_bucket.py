"""The stack's access-log bucket: the load balancer's access logs and the S3 server access
logs of the FERPA buckets.

Encrypted with SSE-S3, not a KMS key: Elastic Load Balancing delivers access logs only to
buckets with SSE-S3 (the policy pack allows it for this bucket alone). Logs expire after the
tier's log retention. The bucket policy admits exactly the two delivery services, each to
its own prefix, for this account only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.shared.bucket_controls import block_public_access
from components.shared.contract import owned
from components.shared.iam import tls_only_statement
from components.shared.stack import StackContext

ALB_PREFIX = "alb"
"""Prefix of the load balancer's access logs (ELB adds ``AWSLogs/<account>/...``)."""
S3_PREFIX = "s3"
"""Prefix of the S3 server access logs (``s3/<bucket>/``)."""
ELB_LOG_DELIVERY = "logdelivery.elasticloadbalancing.amazonaws.com"


def log_bucket_policy(bucket_arn: str, account_id: str, elb_account_arn: str) -> str:
    """TLS only; ELB writes under ``alb/AWSLogs/<account>/`` (the region's ELB account in
    regions older than August 2022, the log delivery service in newer ones); S3 server
    access logging writes under ``s3/`` for this account's buckets."""
    alb_logs = f"{bucket_arn}/{ALB_PREFIX}/AWSLogs/{account_id}/*"
    statements: list[dict[str, Any]] = [
        tls_only_statement(bucket_arn),
        {
            "Sid": "ElbAccountWritesAccessLogs",
            "Effect": "Allow",
            "Principal": {"AWS": elb_account_arn},
            "Action": "s3:PutObject",
            "Resource": alb_logs,
        },
        {
            "Sid": "ElbLogDeliveryWritesAccessLogs",
            "Effect": "Allow",
            "Principal": {"Service": ELB_LOG_DELIVERY},
            "Action": "s3:PutObject",
            "Resource": alb_logs,
        },
        {
            "Sid": "S3ServerAccessLogs",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/{S3_PREFIX}/*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


@dataclass
class LogBucketArgs:
    stack: StackContext
    """The stack: its log retention (days a log object is kept), tags, and ``protect`` on the
    bucket (False on dev only)."""


class LogBucket(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    """Name of the bucket, resolved once its policy admits the delivery services (a load
    balancer checks it can write when access logging is turned on)."""

    def __init__(self, name: str, args: LogBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:log_bucket:LogBucket", name, None, opts)
        stack = args.stack
        if stack.log_retention_days < 1:
            raise ValueError(f"retention_days={stack.log_retention_days}: must be at least 1")
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=f"{name}-"[:37],
            force_destroy=not stack.protect,
            tags=stack.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=stack.protect),
        )
        in_bucket = owned(self, was=bucket, protect=stack.protect)
        public_block = block_public_access(name, bucket, in_bucket)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            # ELB access logs: SSE-S3 only.
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=in_bucket,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire-logs",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "expiration": {"days": stack.log_retention_days},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=in_bucket,
        )
        account = aws.get_caller_identity_output().account_id
        elb_account = aws.elb.get_service_account_output().arn
        policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, account, elb_account).apply(
                lambda v: log_bucket_policy(v[0], v[1], v[2])
            ),
            opts=owned(self, was=bucket, protect=stack.protect, depends_on=[public_block]),
        )

        self.bucket_name = policy.bucket
        self.register_outputs({"bucket_name": self.bucket_name})
