"""The edge: CloudFront and its WAF (rules, us-east-1), origin access to the models bucket
and key, the viewer certificate."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components import edge
from components.catalog import TIERS
from tests.shared import (
    AWS_PROVIDER,
    BUCKET_POLICY,
    DASHBOARD,
    DISTRIBUTION,
    KMS_KEY,
    SAGEMAKER_ENDPOINT,
    SAGEMAKER_MODEL,
    SCALING_TARGET,
    WEB_ACL,
    StackRunner,
)
from tools.harness import run_stack

# -- WAF rules -----------------------------------------------------------------------------


def _rules(**overrides: Any) -> list[Any]:
    kwargs: dict[str, Any] = dict(
        api_limit=67, auth_limit=10, window_seconds=600, metric_prefix="e"
    )
    kwargs.update(overrides)
    return edge.waf_rules(**kwargs)


def test_waf_rules_rate_limit_per_ip_with_the_catalog_window() -> None:
    rules = {r["name"]: r for r in _rules()}
    api = rules["rate-limit-api"]["statement"]["rate_based_statement"]
    auth = rules["rate-limit-auth"]["statement"]["rate_based_statement"]
    assert api["aggregate_key_type"] == auth["aggregate_key_type"] == "IP"
    assert (api["limit"], auth["limit"]) == (67, 10)
    assert api["evaluation_window_sec"] == auth["evaluation_window_sec"] == 600
    assert rules["rate-limit-api"]["action"] == rules["rate-limit-auth"]["action"] == {"block": {}}
    # Everything but the cached static assets counts towards the API limit.
    excluded = api["scope_down_statement"]["not_statement"]["statement"]["byte_match_statement"]
    assert excluded["search_string"] == "/static/"
    assert excluded["positional_constraint"] == "STARTS_WITH"


def _path_matches(statements: list[Any]) -> list[Any]:
    matches = [s["byte_match_statement"] for s in statements]
    for m in matches:
        assert m["positional_constraint"] == "STARTS_WITH"
        assert m["field_to_match"] == {"uri_path": {}}
        assert [t["type"] for t in m["text_transformations"]] == [
            "URL_DECODE",
            "NORMALIZE_PATH",
            "LOWERCASE",
        ]
    return sorted(m["search_string"] for m in matches)


def test_waf_blocks_the_images_internal_paths_first() -> None:
    first = _rules()[0]
    assert first["name"] == "block-internal-paths"
    assert first["action"] == {"block": {}}
    statements = first["statement"]["or_statement"]["statements"]
    assert _path_matches(statements) == ["/invocations", "/metrics", "/ping"]


def test_waf_auth_rule_is_scoped_to_the_auth_paths_before_the_api_rule() -> None:
    names = [r["name"] for r in _rules()]
    assert names.index("rate-limit-auth") < names.index("rate-limit-api")
    auth = next(r for r in _rules() if r["name"] == "rate-limit-auth")
    scope = auth["statement"]["rate_based_statement"]["scope_down_statement"]
    assert _path_matches(scope["or_statement"]["statements"]) == ["/api/v1/auth", "/auth"]


def test_waf_managed_groups_block_and_every_rule_has_metrics() -> None:
    rules = _rules()
    managed = [r for r in rules if "managed_rule_group_statement" in r["statement"]]
    assert [r["statement"]["managed_rule_group_statement"] for r in managed] == [
        {"vendor_name": "AWS", "name": "AWSManagedRulesCommonRuleSet"},
        {"vendor_name": "AWS", "name": "AWSManagedRulesKnownBadInputsRuleSet"},
    ]
    assert all(r["override_action"] == {"none": {}} and "action" not in r for r in managed)
    priorities = [r["priority"] for r in rules]
    assert len(set(priorities)) == len(priorities)
    metric_names = [r["visibility_config"]["metric_name"] for r in rules]
    assert len(set(metric_names)) == len(rules)
    for r in rules:
        assert r["visibility_config"]["cloudwatch_metrics_enabled"] is True
        assert r["visibility_config"]["sampled_requests_enabled"] is True


@pytest.mark.parametrize(
    "bad",
    [{"window_seconds": 900}, {"auth_limit": 3}, {"api_limit": 0}],
)
def test_waf_rules_reject_what_waf_rejects(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        _rules(**bad)


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


def test_viewer_certificate_tls12_with_alias_else_default() -> None:
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    assert edge.viewer_certificate("api.example.org", cert) == {
        "acm_certificate_arn": cert,
        "ssl_support_method": "sni-only",
        "minimum_protocol_version": "TLSv1.2_2021",
    }
    assert edge.viewer_certificate(None, None) == {"cloudfront_default_certificate": True}


# -- the whole program, per stack ----------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "tier1"])
def test_small_stacks_have_no_edge_or_inference(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    for type_ in (DISTRIBUTION, WEB_ACL, SAGEMAKER_ENDPOINT, SAGEMAKER_MODEL, SCALING_TARGET):
        assert run.count(type_) == 0, f"{stack} should not create {type_}"
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
    api = rules["rate-limit-api"]["statement"]["rateBasedStatement"]
    assert api["limit"] == tier.edge.waf_api_rate_limit
    assert api["evaluationWindowSec"] == tier.edge.waf_window_seconds
    auth = rules["rate-limit-auth"]["statement"]["rateBasedStatement"]
    assert auth["limit"] == tier.edge.waf_auth_rate_limit

    cdn = run.one(DISTRIBUTION)
    assert cdn.inputs["webAclId"].startswith("arn:aws:wafv2:")
    assert cdn.inputs["priceClass"] == tier.edge.price_class
    assert cdn.inputs["httpVersion"] == "http2and3"
    assert cdn.inputs["isIpv6Enabled"] is True
    assert cdn.inputs["viewerCertificate"] == {"cloudfrontDefaultCertificate": True}
    default = cdn.inputs["defaultCacheBehavior"]
    assert default["viewerProtocolPolicy"] == "redirect-to-https"
    assert default["cachePolicyId"] == "cache-Managed-CachingDisabled"
    assert default["originRequestPolicyId"] == "orp-Managed-AllViewerExceptHostHeader"
    assert sorted(default["allowedMethods"]) == sorted(edge.ALL_METHODS)
    assets = cdn.inputs["orderedCacheBehaviors"][0]
    assert assets["pathPattern"] == "/static/*"
    assert assets["viewerProtocolPolicy"] == "redirect-to-https"
    assert assets["cachePolicyId"] == "cache-Managed-CachingOptimized"
    origins = {o["originId"]: o for o in cdn.inputs["origins"]}
    api_origin = origins[edge.API_ORIGIN_ID]
    assert api_origin["customOriginConfig"]["originProtocolPolicy"] == "http-only"
    assert api_origin["domainName"].endswith(".elb.us-east-1.amazonaws.com")
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


def test_tier3_custom_domain_gets_tls12_certificate() -> None:
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc-123"
    run = run_stack("tier3", {"edgeDomainName": "api.example.org", "edgeCertificateArn": cert})
    cdn = run.one(DISTRIBUTION)
    assert cdn.inputs["aliases"] == ["api.example.org"]
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
