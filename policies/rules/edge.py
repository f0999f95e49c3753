"""CloudFront: HTTPS to viewers, a modern TLS floor, a WAF web ACL, HTTPS to origins."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
)

from ._util import as_list, get, label, present, rule, setting, tier_of

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
HTTPS_POLICIES = frozenset({"https-only", "redirect-to-https"})


def _dist(args: ResourceValidationArgs) -> str:
    return label("CloudFront distribution", args.name)


def _https_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    behaviours = [("default_cache_behavior", args.props.get("defaultCacheBehavior"))] + [
        (f"ordered_cache_behaviors[{get(b, 'pathPattern') or i}]", b)
        for i, b in enumerate(as_list(args.props.get("orderedCacheBehaviors")))
    ]
    for where, behaviour in behaviours:
        policy = get(behaviour, "viewerProtocolPolicy")
        if policy not in HTTPS_POLICIES:
            report(
                f"{_dist(args)} serves {where} with viewer_protocol_policy={policy or '(none)'}; "
                "set it to 'redirect-to-https' (or 'https-only').",
                None,
            )


TLS_SCHEMA = PolicyConfigSchema(
    properties={
        "allowedMinimumProtocolVersions": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["TLSv1.2_2019", "TLSv1.2_2021", "TLSv1.2_2025", "TLSv1.3_2025"],
            "description": "Accepted viewer_certificate.minimum_protocol_version values.",
        },
    }
)


def _tls_minimum(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if get(args.props, "viewerCertificate.cloudfrontDefaultCertificate") is True:
        return  # CloudFront fixes TLSv1 for *.cloudfront.net: cloudfront-custom-certificate
    allowed = [str(v) for v in as_list(setting(args, TLS_SCHEMA, "allowedMinimumProtocolVersions"))]
    version = get(args.props, "viewerCertificate.minimumProtocolVersion")
    if version not in allowed:
        report(
            f"{_dist(args)} accepts viewers down to {version or 'TLSv1 (default)'}; set "
            f"viewer_certificate.minimum_protocol_version to one of {', '.join(allowed)}.",
            None,
        )


def _custom_certificate(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if tier_of(args.props) == "dev":
        return
    if get(args.props, "viewerCertificate.cloudfrontDefaultCertificate") is True:
        report(
            f"{_dist(args)} uses the default *.cloudfront.net certificate, whose TLS floor "
            "CloudFront fixes at TLSv1; set edgeDomainName and hostedZoneId (or "
            "edgeCertificateArn, ACM in us-east-1) to serve with TLSv1.2_2021.",
            None,
        )


def _security_headers(args: ResourceValidationArgs, report: ReportViolation) -> None:
    behaviours = [("default_cache_behavior", args.props.get("defaultCacheBehavior"))] + [
        (f"ordered_cache_behaviors[{get(b, 'pathPattern') or i}]", b)
        for i, b in enumerate(as_list(args.props.get("orderedCacheBehaviors")))
    ]
    for where, behaviour in behaviours:
        if not present(behaviour, "responseHeadersPolicyId"):
            report(
                f"{_dist(args)} answers {where} without security headers; set "
                "response_headers_policy_id to an aws.cloudfront.ResponseHeadersPolicy with "
                "HSTS, X-Content-Type-Options nosniff and X-Frame-Options DENY.",
                None,
            )


def _waf(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not present(args.props, "webAclId"):
        report(
            f"{_dist(args)} has no WAF web ACL; set web_acl_id to the edge's aws.wafv2.WebAcl "
            "(scope CLOUDFRONT) with the rate-limit rules.",
            None,
        )


def _origin_https(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if tier_of(args.props) == "dev":
        return
    for origin in as_list(args.props.get("origins")):
        config = get(origin, "customOriginConfig")
        if config is None:
            continue
        policy = get(config, "originProtocolPolicy")
        weak = [p for p in as_list(get(config, "originSslProtocols")) if p != "TLSv1.2"]
        if policy != "https-only" or weak:
            report(
                f"{_dist(args)} reaches origin '{get(origin, 'originId')}' with "
                f"origin_protocol_policy={policy}"
                f"{' and ' + ', '.join(map(str, weak)) if weak else ''}; use 'https-only' with "
                "origin_ssl_protocols=['TLSv1.2'] (needs a certificate on the load balancer).",
                None,
            )


M = EnforcementLevel.MANDATORY

POLICIES = [
    rule(
        "cloudfront-https-only",
        "CloudFront serves viewers over HTTPS only.",
        [DISTRIBUTION],
        _https_only,
        M,
    ),
    rule(
        "cloudfront-tls-minimum",
        "CloudFront custom certificates accept TLS 1.2 or newer only.",
        [DISTRIBUTION],
        _tls_minimum,
        M,
        TLS_SCHEMA,
    ),
    rule(
        "cloudfront-custom-certificate",
        "Outside dev, CloudFront uses its own certificate (the default one allows TLSv1).",
        [DISTRIBUTION],
        _custom_certificate,
        M,
    ),
    rule(
        "cloudfront-security-headers",
        "CloudFront adds HSTS, nosniff and frame-deny headers to every response.",
        [DISTRIBUTION],
        _security_headers,
        M,
    ),
    rule(
        "cloudfront-waf-attached",
        "CloudFront distributions are protected by a WAF web ACL.",
        [DISTRIBUTION],
        _waf,
        M,
    ),
    rule(
        "cloudfront-origin-https",
        "Outside dev, CloudFront reaches custom origins over HTTPS with TLS 1.2.",
        [DISTRIBUTION],
        _origin_https,
        M,
    ),
]
