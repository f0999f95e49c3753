"""The access-log bucket: what may write into it, and who writes there (the load balancer,
the FERPA buckets' server access logging); the app tier's egress."""

from __future__ import annotations

import json

import pytest

from components.log_bucket import ALB_PREFIX, S3_PREFIX, log_bucket_policy
from components.network import app_egress
from tests.shared import BUCKET_POLICY, STACKS, StackRunner

ACCOUNT = "123456789012"
ELB_ACCOUNT = "arn:aws:iam::127311923021:root"  # us-east-1's Elastic Load Balancing account


def test_policy_admits_each_delivery_service_to_its_own_prefix_only() -> None:
    doc = json.loads(log_bucket_policy("arn:aws:s3:::logs-x", ACCOUNT, ELB_ACCOUNT))
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["DenyInsecureTransport"]["Effect"] == "Deny"
    alb = f"arn:aws:s3:::logs-x/{ALB_PREFIX}/AWSLogs/{ACCOUNT}/*"
    assert by_sid["ElbAccountWritesAccessLogs"]["Principal"] == {"AWS": ELB_ACCOUNT}
    assert by_sid["ElbLogDeliveryWritesAccessLogs"]["Principal"] == {
        "Service": "logdelivery.elasticloadbalancing.amazonaws.com"
    }
    for sid in ("ElbAccountWritesAccessLogs", "ElbLogDeliveryWritesAccessLogs"):
        assert (by_sid[sid]["Action"], by_sid[sid]["Resource"]) == ("s3:PutObject", alb)
    s3 = by_sid["S3ServerAccessLogs"]
    assert s3["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert s3["Resource"] == f"arn:aws:s3:::logs-x/{S3_PREFIX}/*"
    assert s3["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert {s["Action"] for s in doc["Statement"] if s["Effect"] == "Allow"} == {"s3:PutObject"}


@pytest.mark.parametrize("stack", STACKS)
def test_load_balancer_and_ferpa_buckets_log_into_it(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    bucket = run.one("aws:s3/bucket:Bucket", "access-logs-bucket")
    sse = run.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "access-logs-encryption",
    )
    # ELB delivers access logs to SSE-S3 buckets only.
    assert sse.get("rules.0.applyServerSideEncryptionByDefault.sseAlgorithm") == "AES256"
    lifecycle = run.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "access-logs-lifecycle"
    )
    assert lifecycle.get("rules.0.expiration.days") >= 7
    policy = next(p for p in run.of_type(BUCKET_POLICY) if p.name == "access-logs-policy")
    assert "ElbAccountWritesAccessLogs" in policy.get("policy")
    alb = run.one("aws:lb/loadBalancer:LoadBalancer")
    assert alb.get("accessLogs") == {
        "bucket": bucket.get("bucket", bucket.id),
        "prefix": ALB_PREFIX,
        "enabled": True,
    }
    logged = {
        r.name: r.get("targetPrefix")
        for r in run.of_type("aws:s3/bucketLogging:BucketLogging")
        if r.get("targetBucket") == alb.get("accessLogs.bucket")
    }
    assert logged == {
        "models-access-logging": f"{S3_PREFIX}/models/",
        "audit-archive-access-logging": f"{S3_PREFIX}/audit-archive/",
        "district-drop-access-logging": f"{S3_PREFIX}/district-drop/",
    }


def test_app_egress_is_the_vpc_and_https_only() -> None:
    rules = app_egress("10.20.0.0/16")
    assert [(r["protocol"], r["from_port"], r["to_port"], r["cidr_blocks"]) for r in rules] == [
        ("-1", 0, 0, ["10.20.0.0/16"]),
        ("tcp", 443, 443, ["0.0.0.0/0"]),
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_no_security_group_lets_everything_out(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    app = run.one("aws:ec2/securityGroup:SecurityGroup", "network-app-sg")
    assert app.get("egress.0.cidrBlocks") == [run.one("aws:ec2/vpc:Vpc").get("cidrBlock")]
    for group in run.of_type("aws:ec2/securityGroup:SecurityGroup"):
        for egress in group.get("egress") or []:
            everything = egress.get("protocol") == "-1"
            assert not (everything and "0.0.0.0/0" in egress.get("cidrBlocks", [])), group.name
