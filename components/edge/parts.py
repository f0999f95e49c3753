"""The edge's fixed choices and parts: origin ids and headers, the public assets' grant to
CloudFront (Origin Access Control, deferred until the distribution exists), the viewer
certificate and the security-headers policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from components.config.spec import EDGE

# CloudFront's edge and WAF's CLOUDFRONT scope are managed from N. Virginia only.
EDGE_REGION = EDGE
API_ORIGIN_ID = "api-alb"
ASSETS_ORIGIN_ID = "assets-s3"
# Only this prefix of the models bucket is public through the CDN. Model artifacts and
# data capture hold (or were trained on) student records and stay private: the bucket
# policy statement below grants CloudFront nothing else.
ASSETS_PREFIX = "static"
ORIGIN_VERIFY_HEADER = "X-Origin-Verify"
ORIGIN_GATE_PRIORITY = 100
ALL_METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
# Browsers remember HTTPS-only for two years (the HSTS preload list's minimum is one).
HSTS_MAX_AGE_SECONDS = 63_072_000


def oac_bucket_statement(bucket_arn: str, distribution_arn: str) -> dict[str, Any]:
    """Bucket policy statement letting this distribution (and no other) read the public
    assets prefix through Origin Access Control."""
    return {
        "Sid": "CloudFrontReadsPublicAssets",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": f"{bucket_arn}/{ASSETS_PREFIX}/*",
        "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
    }


def oac_key_statement(distribution_arn: str) -> dict[str, Any]:
    """Key policy statement the bucket's KMS key needs so that CloudFront can decrypt the
    SSE-KMS objects it reads through OAC."""
    return {
        "Sid": "CloudFrontDecryptsPublicAssets",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
    }


class AssetsGrant:
    """The models bucket's one policy must name the distribution (``AWS:SourceArn``), and
    the distribution needs the bucket as its origin. S3 takes the policy when the bucket is
    built, before the distribution exists, so the statement is a deferred Output: pass
    ``statement`` to the bucket's ``extra_policy_statements``, ``key_statement`` to its
    ``extra_key_policy_statements`` and this grant to ``EdgeArgs``,
    and the Edge resolves it once both ARNs exist. Create one only where an Edge follows,
    or the bucket policy waits forever.
    """

    _resolve_bucket: Callable[[pulumi.Output[str]], None]
    _resolve_distribution: Callable[[pulumi.Output[str]], None]

    def __init__(self) -> None:
        bucket_arn: pulumi.Output[str]
        distribution_arn: pulumi.Output[str]
        bucket_arn, self._resolve_bucket = pulumi.deferred_output()
        distribution_arn, self._resolve_distribution = pulumi.deferred_output()
        self.statement: pulumi.Output[dict[str, Any]] = pulumi.Output.all(
            bucket_arn, distribution_arn
        ).apply(lambda arns: oac_bucket_statement(arns[0], arns[1]))
        """The bucket policy statement, resolved by the Edge."""
        self.key_statement: pulumi.Output[dict[str, Any]] = distribution_arn.apply(
            oac_key_statement
        )
        """The statement for the bucket key's policy, resolved by the Edge."""

    def resolve(self, bucket_arn: pulumi.Input[str], distribution_arn: pulumi.Input[str]) -> None:
        self._resolve_bucket(pulumi.Output.from_input(bucket_arn))
        self._resolve_distribution(pulumi.Output.from_input(distribution_arn))


def viewer_certificate(
    certificate_arn: pulumi.Input[str],
) -> aws.cloudfront.DistributionViewerCertificateArgsDict:
    """The distribution's own certificate, TLS 1.2+ with the 2021 ciphers (SNI only)."""
    return {
        "acm_certificate_arn": certificate_arn,
        "ssl_support_method": "sni-only",
        "minimum_protocol_version": "TLSv1.2_2021",
    }


def security_headers(
    name: str, policy_name: str, opts: pulumi.ResourceOptions
) -> aws.cloudfront.ResponseHeadersPolicy:
    """HSTS, nosniff and frame-deny on every response (overriding the origin's)."""
    return aws.cloudfront.ResponseHeadersPolicy(
        f"{name}-security-headers",
        # Policies are account-wide: one per stack.
        name=policy_name,
        comment="HSTS, nosniff, frame-deny, no referrer",
        security_headers_config={
            "strict_transport_security": {
                "access_control_max_age_sec": HSTS_MAX_AGE_SECONDS,
                "include_subdomains": True,
                "preload": False,
                "override": True,
            },
            "content_type_options": {"override": True},
            "frame_options": {"frame_option": "DENY", "override": True},
            "referrer_policy": {"referrer_policy": "no-referrer", "override": True},
        },
        opts=opts,
    )
