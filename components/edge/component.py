"""The edge: CloudFront in front of the API's load balancer and the public assets, with WAF.

API paths are never cached and reach the ALB with every viewer header but Host; public
assets (``/static/*``) come from the models bucket through Origin Access Control. The WAF
web ACL blocks the image's internal paths, rate-limits per IP and per API key and runs AWS's
managed common and known-bad-inputs rules. CloudFront and its web ACL are global: the ACL
and everything CloudFront delivers logs through live in us-east-1, whatever the stack's
region.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.config.tier import EdgeSize, WafSize
from components.edge.parts import (
    ALL_METHODS,
    API_ORIGIN_ID,
    ASSETS_ORIGIN_ID,
    ASSETS_PREFIX,
    EDGE_REGION,
    ORIGIN_GATE_PRIORITY,
    ORIGIN_VERIFY_HEADER,
    AssetsGrant,
    security_headers,
    viewer_certificate,
)
from components.shared.certificates import TlsName, alias_record, tls_certificate
from components.shared.contract import owned
from components.shared.log_groups import encrypted_logs
from components.shared.stack import StackContext
from components.shared.waf import LOG_GROUP_PREFIX, waf_logging, waf_rules, web_acl_visibility


@dataclass
class EdgeArgs:
    stack: StackContext
    """The stack: the prefix of account-wide names (the us-east-1 log groups), unique per
    stack, the retention of the CloudFront and WAF logs, and tags."""
    api_origin_domain_name: pulumi.Input[str]
    """Name CloudFront reaches the API's load balancer by: the load balancer's DNS name, or
    with ``api_origin_https`` a name its certificate covers."""
    api_origin_https: bool
    """HTTPS to the origin (the load balancer has a certificate), else HTTP."""
    size: EdgeSize
    """The tier's edge slice: CloudFront price class."""
    waf: WafSize
    """Limits of the web ACL."""
    tls: TlsName
    """The distribution's domain (alias) and its us-east-1 certificate or hosted zone."""
    api_listener_arn: pulumi.Input[str] | None = None
    """The load balancer's listener; the Edge adds the rule forwarding its own requests. None:
    the origins are other stacks' load balancers, which admit this Edge's secret themselves
    (tier 4's shared name: ``accepted_origin_secrets`` there)."""
    api_target_group_arn: pulumi.Input[str] | None = None
    """Target group of the API pods, where that rule forwards."""
    accepted_origin_secrets: Sequence[pulumi.Input[str]] = ()
    """Other distributions' origin-verify secrets the rule forwards too (tier 4: the global
    stack's distribution of the shared name, whose origin is every region's load balancer)."""
    assets_bucket_regional_domain_name: pulumi.Input[str] | None = None
    """Regional domain name of the models bucket, whose ``static/`` prefix is served; None:
    the distribution serves the API only."""
    assets_bucket_arn: pulumi.Input[str] | None = None
    """ARN of the models bucket."""
    assets_grant: AssetsGrant | None = None
    """The deferred OAC statement already given to the models bucket's policy."""


class Edge(pulumi.ComponentResource):
    distribution_domain_name: pulumi.Output[str]
    """``dxxxx.cloudfront.net`` name of the distribution (the alias target for DNS)."""
    distribution_id: pulumi.Output[str]
    """ID of the distribution (the ``DistributionId`` dimension of its metrics)."""
    distribution_arn: pulumi.Output[str]
    """ARN of the distribution (the ``AWS:SourceArn`` of the OAC bucket statement)."""
    web_acl_arn: pulumi.Output[str]
    """ARN of the WAF web ACL (scope CLOUDFRONT, in us-east-1)."""
    origin_verify_secret: pulumi.Output[str]
    """Secret value CloudFront sends to the ALB as ``X-Origin-Verify``; the ALB forwards
    only requests that carry it."""

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:edge:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # An explicit provider does not read the stack's aws:* config as the default one
        # does: hand it the stack's profile so both act in the same account. (Stacks that
        # use aws:assumeRoles should set it through AWS_PROFILE / the environment instead.)
        edge_provider = aws.Provider(
            f"{name}-{EDGE_REGION}",
            region=EDGE_REGION,
            profile=aws.config.profile,
            opts=child,
        )
        at_edge = pulumi.ResourceOptions(parent=self, provider=edge_provider)

        tags = args.stack.tags
        web_acl = self._waf(name, args.waf, tags, at_edge)
        self.origin_verify_secret = self._origin_gate(
            name,
            args.api_listener_arn,
            args.api_target_group_arn,
            args.accepted_origin_secrets,
            tags,
            child,
        )
        # CloudFront takes certificates from us-east-1 only.
        certificate_arn = tls_certificate(name, args.tls, tags=tags, opts=at_edge)
        distribution = self._distribution(name, args, web_acl, certificate_arn, child)
        alias_record(
            name,
            args.tls,
            target_dns_name=distribution.domain_name,
            target_zone_id=distribution.hosted_zone_id,
            opts=child,
        )
        self._logging(name, args.stack, distribution, web_acl, edge_provider)

        if args.assets_grant is not None and args.assets_bucket_arn is not None:
            args.assets_grant.resolve(args.assets_bucket_arn, distribution.arn)

        self.distribution_domain_name = distribution.domain_name
        self.distribution_id = distribution.id
        self.distribution_arn = distribution.arn
        self.web_acl_arn = web_acl.arn
        self.register_outputs(
            {
                "distribution_domain_name": self.distribution_domain_name,
                "distribution_id": self.distribution_id,
                "distribution_arn": self.distribution_arn,
                "web_acl_arn": self.web_acl_arn,
                "origin_verify_secret": self.origin_verify_secret,
            }
        )

    def _waf(
        self, name: str, size: WafSize, tags: dict[str, str], at_edge: pulumi.ResourceOptions
    ) -> aws.wafv2.WebAcl:
        """The web ACL (scope CLOUDFRONT, so through the us-east-1 provider)."""
        return aws.wafv2.WebAcl(
            f"{name}-waf",
            scope="CLOUDFRONT",
            description="Per-IP rate limits and AWS managed rules in front of the API",
            default_action={"allow": {}},
            rules=waf_rules(size, metric_prefix=name),
            visibility_config=web_acl_visibility(f"{name}-waf"),
            tags=tags,
            opts=at_edge,
        )

    def _origin_gate(
        self,
        name: str,
        listener_arn: pulumi.Input[str] | None,
        target_group_arn: pulumi.Input[str] | None,
        accepted_secrets: Sequence[pulumi.Input[str]],
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        """The origin-verify secret and, on the load balancer's listener, the rule forwarding
        only requests that carry it (or one of ``accepted_secrets``) to the target group;
        returns the secret."""
        # The ALB's security group admits only CloudFront's origin-facing prefix list, which
        # every CloudFront distribution shares; this secret header is the second lock: the
        # listener forwards only requests that carry it (the rule below).
        origin_secret = random.RandomPassword(
            f"{name}-origin-verify", length=32, special=False, opts=child
        )
        secret: pulumi.Output[str] = pulumi.Output.secret(origin_secret.result)
        if listener_arn is None or target_group_arn is None:
            return secret
        aws.lb.ListenerRule(
            f"{name}-origin-gate",
            listener_arn=listener_arn,
            priority=ORIGIN_GATE_PRIORITY,
            conditions=[
                {
                    "http_header": {
                        "http_header_name": ORIGIN_VERIFY_HEADER,
                        "values": [secret, *accepted_secrets],
                    }
                }
            ],
            actions=[{"type": "forward", "target_group_arn": target_group_arn}],
            tags=tags,
            opts=child,
        )
        return secret

    def _distribution(
        self,
        name: str,
        args: EdgeArgs,
        web_acl: aws.wafv2.WebAcl,
        certificate_arn: pulumi.Input[str],
        child: pulumi.ResourceOptions,
    ) -> aws.cloudfront.Distribution:
        """The distribution in front of the ALB and, with the assets' Origin Access Control,
        the public assets."""
        caching_disabled = aws.cloudfront.get_cache_policy_output(name="Managed-CachingDisabled")
        # Every viewer header but Host (the ALB gets its own name). A custom origin request
        # policy may not forward Authorization; the managed AllViewer* policies do, but only
        # with caching disabled, as here, so no cached response can leak between users.
        all_viewer_except_host = aws.cloudfront.get_origin_request_policy_output(
            name="Managed-AllViewerExceptHostHeader"
        )
        headers = security_headers(name, f"{args.stack.name_prefix}-security-headers", child)
        assets = self._assets(name, args.assets_bucket_regional_domain_name, headers, child)

        # Retention decision: no retain_on_delete. A retained distribution would keep
        # serving (and billing) against a deleted ALB, and its association would block the
        # web ACL's deletion; the provider disables then deletes it (~15 min) instead.
        return aws.cloudfront.Distribution(
            f"{name}-cdn",
            enabled=True,
            comment=f"{name}: API and public assets" if assets else f"{name}: API",
            aliases=[args.tls.domain_name],
            price_class=args.size.price_class,
            http_version="http2and3",
            is_ipv6_enabled=True,
            web_acl_id=web_acl.arn,
            origins=[
                {
                    "origin_id": API_ORIGIN_ID,
                    "domain_name": args.api_origin_domain_name,
                    "custom_origin_config": {
                        "http_port": 80,
                        "https_port": 443,
                        "origin_protocol_policy": (
                            "https-only" if args.api_origin_https else "http-only"
                        ),
                        "origin_ssl_protocols": ["TLSv1.2"],
                        "origin_read_timeout": 30,
                        "origin_keepalive_timeout": 5,
                    },
                    "custom_headers": [
                        {"name": ORIGIN_VERIFY_HEADER, "value": self.origin_verify_secret}
                    ],
                },
                *([assets[0]] if assets else []),
            ],
            default_cache_behavior={
                "target_origin_id": API_ORIGIN_ID,
                "viewer_protocol_policy": "redirect-to-https",
                "allowed_methods": ALL_METHODS,
                "cached_methods": ["GET", "HEAD"],
                "cache_policy_id": caching_disabled.id,
                "origin_request_policy_id": all_viewer_except_host.id,
                "response_headers_policy_id": headers.id,
                "compress": True,
            },
            ordered_cache_behaviors=[assets[1]] if assets else None,
            restrictions={"geo_restriction": {"restriction_type": "none"}},
            viewer_certificate=viewer_certificate(certificate_arn),
            tags=args.stack.tags,
            opts=child,
        )

    def _assets(
        self,
        name: str,
        bucket_regional_domain_name: pulumi.Input[str] | None,
        headers: aws.cloudfront.ResponseHeadersPolicy,
        child: pulumi.ResourceOptions,
    ) -> (
        tuple[
            aws.cloudfront.DistributionOriginArgsDict,
            aws.cloudfront.DistributionOrderedCacheBehaviorArgsDict,
        ]
        | None
    ):
        """The public assets' origin (through Origin Access Control) and their cached path,
        or None for a distribution of the API alone (no bucket)."""
        if bucket_regional_domain_name is None:
            return None
        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            description="CloudFront reads the public assets of the models bucket",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=child,
        )
        caching_optimized = aws.cloudfront.get_cache_policy_output(name="Managed-CachingOptimized")
        return (
            {
                "origin_id": ASSETS_ORIGIN_ID,
                "domain_name": bucket_regional_domain_name,
                "origin_access_control_id": oac.id,
            },
            {
                "path_pattern": f"/{ASSETS_PREFIX}/*",
                "target_origin_id": ASSETS_ORIGIN_ID,
                "viewer_protocol_policy": "redirect-to-https",
                "allowed_methods": ["GET", "HEAD", "OPTIONS"],
                "cached_methods": ["GET", "HEAD"],
                "cache_policy_id": caching_optimized.id,
                "response_headers_policy_id": headers.id,
                "compress": True,
            },
        )

    def _logging(
        self,
        name: str,
        stack: StackContext,
        distribution: aws.cloudfront.Distribution,
        web_acl: aws.wafv2.WebAcl,
        edge_provider: aws.Provider,
    ) -> None:
        """The distribution's access logs and its web ACL's logs, delivered to us-east-1
        log groups encrypted with a us-east-1 key (a key serves its own region only)."""
        # Access logs through CloudFront's standard logging v2 (CloudWatch vended logs):
        # the legacy logging_config needs an S3 bucket with ACLs enabled (log-delivery ACL),
        # which hardened buckets (BucketOwnerEnforced) refuse. CloudFront's delivery sources
        # live in us-east-1, so the log group does too.
        tags = stack.tags
        in_cdn = owned(self, was=distribution, provider=edge_provider)
        at_edge = owned(self, provider=edge_provider)
        access_logs_name = f"/aws/vendedlogs/cloudfront/{stack.name_prefix}"
        waf_logs_name = f"{LOG_GROUP_PREFIX}{stack.name_prefix}"
        logs = encrypted_logs(
            f"{name}-logs-key",
            log_group_prefixes=[access_logs_name, waf_logs_name],
            description="Encrypts CloudFront's access logs and its WAF's logs",
            region=EDGE_REGION,
            retention_days=stack.log_retention_days,
            tags=tags,
            opts=at_edge,
        )
        log_group = logs.group(f"{name}-access-logs", name=access_logs_name, opts=in_cdn)
        waf_logs = logs.group(f"{name}-waf-logs", name=waf_logs_name)
        waf_logging(name, web_acl=web_acl, log_group=waf_logs, opts=at_edge)
        source = aws.cloudwatch.LogDeliverySource(
            f"{name}-log-source",
            log_type="ACCESS_LOGS",
            resource_arn=distribution.arn,
            tags=tags,
            opts=in_cdn,
        )
        destination = aws.cloudwatch.LogDeliveryDestination(
            f"{name}-log-destination",
            output_format="json",
            delivery_destination_configuration={"destination_resource_arn": log_group.arn},
            tags=tags,
            opts=in_cdn,
        )
        aws.cloudwatch.LogDelivery(
            f"{name}-log-delivery",
            delivery_source_name=source.name,
            delivery_destination_arn=destination.arn,
            tags=tags,
            opts=in_cdn,
        )
