"""The edge: CloudFront and its WAF (rules, us-east-1), origin access to the models bucket
and key, the viewer certificate."""

from __future__ import annotations

import json
import re

import pytest

from components import edge
from components.config.catalog import TIERS
from tests.shared import (
    ACM_CERTIFICATE,
    ACM_VALIDATION,
    AWS_PROVIDER,
    BUCKET_POLICY,
    DASHBOARD,
    DISTRIBUTION,
    DNS_RECORD,
    KMS_KEY,
    LOG_GROUP,
    RESPONSE_HEADERS_POLICY,
    SAGEMAKER_ENDPOINT,
    SAGEMAKER_MODEL,
    SCALING_TARGET,
    WAF_LOGGING,
    WEB_ACL,
    StackRunner,
)
from tools.harness import run_stack

# -- OAC statements and the viewer certificate ---------------------------------------------


DIST = "arn:aws:cloudfront::123456789012:distribution/E123"


BUCKET_ARN = "arn:aws:s3:::models-abc"


def test_oac_bucket_statement_grants_only_the_public_prefix_to_this_distribution() -> None:
    s = edge.oac_bucket_statement(BUCKET_ARN, DIST)
    assert s["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert s["Action"] == "s3:GetObject"
    assert s["Resource"] == f"{BUCKET_ARN}/static/*"
    assert s["Condition"] == {"StringEquals": {"AWS:SourceArn": DIST}}


def test_oac_key_statement_lets_cloudfront_decrypt_for_this_distribution_only() -> None:
    s = edge.oac_key_statement(DIST)
    assert s["Action"] == "kms:Decrypt"
    assert s["Condition"] == {"StringEquals": {"AWS:SourceArn": DIST}}


def test_viewer_certificate_is_the_distributions_own_with_tls12() -> None:
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    assert edge.viewer_certificate(cert) == {
        "acm_certificate_arn": cert,
        "ssl_support_method": "sni-only",
        "minimum_protocol_version": "TLSv1.2_2021",
    }


# -- the whole program, per stack ----------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "tier1"])
def test_small_stacks_have_no_edge_or_inference(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    for type_ in (DISTRIBUTION, SAGEMAKER_ENDPOINT, SAGEMAKER_MODEL, SCALING_TARGET):
        assert run.count(type_) == 0, f"{stack} should not create {type_}"
    # The WAF guards the load balancer itself.
    assert run.one(WEB_ACL).inputs["scope"] == "REGIONAL"
    assert run.count(DASHBOARD) == 1
    assert "cdn_domain_name" not in run.outputs
    assert "sagemaker_endpoint_name" not in run.outputs


def test_tier3_edge_waf_on_us_east_1(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    tier = TIERS["tier3"]
    waf = run.one(WEB_ACL)
    assert waf.inputs["scope"] == "CLOUDFRONT"
    assert waf.provider_name == "edge-us-east-1", waf.options.provider
    provider = run.one(AWS_PROVIDER, waf.provider_name)
    assert provider.inputs["region"] == "us-east-1"
    rules = {r["name"]: r for r in waf.inputs["rules"]}
    per_key = rules["rate-limit-key"]["statement"]["rateBasedStatement"]
    assert per_key["limit"] == tier.waf.per_key_limit
    assert per_key["evaluationWindowSec"] == tier.waf.window_seconds
    assert per_key["customKeys"] == [
        {"header": {"name": "x-api-key", "textTransformations": [{"priority": 0, "type": "NONE"}]}}
    ]
    assert rules["rate-limit-ip"]["statement"]["rateBasedStatement"]["limit"] == (
        tier.waf.per_ip_limit
    )

    cdn = run.one(DISTRIBUTION)
    assert cdn.inputs["webAclId"].startswith("arn:aws:wafv2:")
    assert cdn.inputs["priceClass"] == tier.edge.price_class
    assert cdn.inputs["httpVersion"] == "http2and3"
    assert cdn.inputs["isIpv6Enabled"] is True
    # The stack file's name, with a certificate requested and DNS-validated in us-east-1.
    assert cdn.inputs["aliases"] == ["tier3.ssp.example.org"]
    cert = run.one(ACM_CERTIFICATE, "edge-cert")
    assert cert.inputs["domainName"] == "tier3.ssp.example.org"
    assert cert.inputs["validationMethod"] == "DNS"
    assert cert.provider_name == waf.provider_name
    issued = run.one(ACM_VALIDATION, "edge-cert-issued")
    assert issued.provider_name == waf.provider_name
    assert cdn.inputs["viewerCertificate"] == {
        "acmCertificateArn": issued.inputs["certificateArn"],
        "sslSupportMethod": "sni-only",
        "minimumProtocolVersion": "TLSv1.2_2021",
    }
    alias = run.one(DNS_RECORD, "edge-dns")
    assert alias.inputs["name"] == "tier3.ssp.example.org"
    assert alias.inputs["aliases"][0]["zoneId"] == "Z2FDTNDATAQYW2"
    headers = run.one(RESPONSE_HEADERS_POLICY)
    security = headers.inputs["securityHeadersConfig"]
    assert security["strictTransportSecurity"]["accessControlMaxAgeSec"] >= 31_536_000
    assert security["strictTransportSecurity"]["includeSubdomains"] is True
    assert security["contentTypeOptions"] == {"override": True}
    assert security["frameOptions"] == {"frameOption": "DENY", "override": True}
    default = cdn.inputs["defaultCacheBehavior"]
    assert default["responseHeadersPolicyId"] == headers.id
    assert default["viewerProtocolPolicy"] == "redirect-to-https"
    assert default["cachePolicyId"] == "cache-Managed-CachingDisabled"
    assert default["originRequestPolicyId"] == "orp-Managed-AllViewerExceptHostHeader"
    assert sorted(default["allowedMethods"]) == sorted(edge.ALL_METHODS)
    assets = cdn.inputs["orderedCacheBehaviors"][0]
    assert assets["pathPattern"] == "/static/*"
    assert assets["viewerProtocolPolicy"] == "redirect-to-https"
    assert assets["cachePolicyId"] == "cache-Managed-CachingOptimized"
    assert assets["responseHeadersPolicyId"] == headers.id
    origins = {o["originId"]: o for o in cdn.inputs["origins"]}
    api_origin = origins[edge.API_ORIGIN_ID]
    # HTTPS to the load balancer, by the name its certificate covers.
    assert api_origin["customOriginConfig"]["originProtocolPolicy"] == "https-only"
    assert api_origin["customOriginConfig"]["originSslProtocols"] == ["TLSv1.2"]
    assert api_origin["domainName"] == "api.tier3.ssp.example.org"
    assert api_origin["customHeaders"][0]["name"] == "X-Origin-Verify"
    assert "origins.0.customHeaders.0.value" in cdn.secret_paths
    assert origins[edge.ASSETS_ORIGIN_ID]["originAccessControlId"]
    oac = run.one("aws:cloudfront/originAccessControl:OriginAccessControl")
    assert oac.inputs["signingBehavior"] == "always"
    assert oac.inputs["signingProtocol"] == "sigv4"
    assert oac.inputs["originAccessControlOriginType"] == "s3"
    # Standard logging v2, delivered from us-east-1.
    for type_ in ("logDeliverySource:LogDeliverySource", "logDelivery:LogDelivery"):
        assert run.one(f"aws:cloudwatch/{type_}").provider_name == waf.provider_name
    assert run.one("aws:cloudwatch/logDeliverySource:LogDeliverySource").inputs["logType"] == (
        "ACCESS_LOGS"
    )
    assert cdn.options.retain_on_delete is False
    # Both log groups in us-east-1 under a us-east-1 key (a key serves its own region only);
    # the web ACL logs there too, the API key redacted.
    key = run.one(KMS_KEY, "edge-logs-key")
    assert key.provider_name == waf.provider_name
    for group in ("edge-access-logs", "edge-waf-logs"):
        log_group = run.one(LOG_GROUP, group)
        assert log_group.provider_name == waf.provider_name
        assert log_group.get("kmsKeyId").endswith(f"/{key.id}")
    assert run.one(LOG_GROUP, "edge-waf-logs").get("name") == "aws-waf-logs-ssp-tier3"
    logging = run.one(WAF_LOGGING, "edge-waf-logging")
    assert logging.provider_name == waf.provider_name
    assert logging.get("resourceArn").endswith(waf.id)
    assert run.one(RESPONSE_HEADERS_POLICY).get("name") == "ssp-tier3-security-headers"


def test_tier3_certificate_arn_is_used_as_given() -> None:
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc-123"
    run = run_stack("tier3", {"edgeDomainName": "cdn.ssp.example.org", "edgeCertificateArn": cert})
    cdn = run.one(DISTRIBUTION)
    assert cdn.inputs["aliases"] == ["cdn.ssp.example.org"]
    assert [c.name for c in run.of_type(ACM_CERTIFICATE)] == ["workloads-alb-cert"]
    assert cdn.inputs["viewerCertificate"] == {
        "acmCertificateArn": cert,
        "sslSupportMethod": "sni-only",
        "minimumProtocolVersion": "TLSv1.2_2021",
    }


def test_tier3_models_bucket_policy_admits_only_this_distribution(
    stack_run: StackRunner,
) -> None:
    run = stack_run("tier3")
    granting = []
    for policy in run.of_type(BUCKET_POLICY):
        statements = json.loads(policy.inputs["policy"])["Statement"]
        granting += [s for s in statements if s.get("Sid") == "CloudFrontReadsPublicAssets"]
    assert len(granting) == 1, "exactly one bucket (models) lets CloudFront read"
    source = granting[0]["Condition"]["StringEquals"]["AWS:SourceArn"]
    assert re.fullmatch(r"arn:aws:cloudfront::\d{12}:distribution/edge-cdn-\w+", source), source
    assert granting[0]["Resource"].endswith("/static/*")


def test_tier3_models_key_lets_only_this_distribution_decrypt(stack_run: StackRunner) -> None:
    # OAC reads SSE-KMS objects only when the bucket key's policy admits CloudFront too.
    run = stack_run("tier3")
    distribution = run.one(DISTRIBUTION)
    for key in run.of_type(KMS_KEY):
        statements = json.loads(key.inputs.get("policy", "{}")).get("Statement", [])
        grants = [
            s for s in statements if s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}
        ]
        if key.name == "models-key":
            assert len(grants) == 1 and grants[0]["Action"] == "kms:Decrypt"
            source = grants[0]["Condition"]["StringEquals"]["AWS:SourceArn"]
            assert source.endswith(f"distribution/{distribution.id}")
        else:
            assert not grants, key.name


@pytest.mark.parametrize("stack", ["tier3", "tier4"])
def test_edge_and_inference_outputs(stack_run: StackRunner, stack: str) -> None:
    outputs = stack_run(stack).outputs
    assert outputs["cdn_domain_name"].endswith(".cloudfront.net")
    assert outputs["sagemaker_endpoint_name"] == f"ssp-{stack}-predict"
    assert outputs["dashboard_name"] == f"ssp-{stack}"


def test_edge_stays_in_us_east_1_whatever_the_stack_region() -> None:
    run = run_stack("tier3", {"aws:region": "eu-west-1"})
    waf = run.one(WEB_ACL)
    assert run.one(AWS_PROVIDER, waf.provider_name).inputs["region"] == "us-east-1"
    assert run.one(SAGEMAKER_ENDPOINT).provider_name == ""  # the stack's region
    board = json.loads(run.one(DASHBOARD).inputs["dashboardBody"])
    regions = {w["properties"]["title"]: w["properties"]["region"] for w in board["widgets"]}
    assert regions["CloudFront requests"] == "us-east-1"
    assert regions["API p95 latency (s)"] == "eu-west-1"
