"""Issue 5: the edge (CloudFront + WAF), inference (SageMaker) and the dashboard.

Pure functions first (WAF rules, OAC statements, the autoscaling target value, latency
units, IAM policy, dashboard body), then the whole program per stack under mocks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from components import dashboard, edge, inference
from components.catalog import TIERS
from tools.harness import StackRun, run_stack

StackRunner = Callable[[str], StackRun]

# ---------------------------------------------------------------------------------------
# WAF rules


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


def test_catalog_waf_translation_of_seed_003() -> None:
    # 100 requests / 15 min per IP, counted over WAF's longest window (600 s).
    for name in ("tier3", "tier4"):
        tier = TIERS[name]
        assert tier.edge.waf_window_seconds == 600
        assert tier.edge.waf_api_rate_limit == round(100 * 600 / 900)
        assert tier.edge.waf_auth_rate_limit == 10  # 5 / 15 min scaled is below WAF's minimum


# ---------------------------------------------------------------------------------------
# Edge: OAC statements and the viewer certificate

DIST = "arn:aws:cloudfront::123456789012:distribution/E123"
BUCKET = "arn:aws:s3:::models-abc"


def test_oac_bucket_statement_grants_only_the_public_prefix_to_this_distribution() -> None:
    s = edge.oac_bucket_statement(BUCKET, DIST)
    assert s["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert s["Action"] == "s3:GetObject"
    assert s["Resource"] == f"{BUCKET}/static/*"
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


# ---------------------------------------------------------------------------------------
# Inference arithmetic and policy


def test_invocations_target_follows_aws_guidance() -> None:
    # max RPS x 0.5 safety x 60 s = invocations per minute per instance.
    assert inference.invocations_per_instance_target(20) == 600.0
    assert inference.invocations_per_instance_target(7) == 210.0
    assert inference.invocations_per_instance_target(0.5) == 15.0
    with pytest.raises(ValueError):
        inference.invocations_per_instance_target(0)


def test_model_latency_threshold_is_in_microseconds() -> None:
    assert inference.model_latency_threshold_us(100) == 100_000.0
    assert inference.model_latency_threshold_us(TIERS["tier3"].alarms.model_latency_p95_ms) == (
        TIERS["tier3"].alarms.model_latency_p95_ms * 1000
    )
    with pytest.raises(ValueError):
        inference.model_latency_threshold_us(-1)


def test_scaling_resource_id_and_model_url() -> None:
    assert inference.scalable_resource_id("ssp-tier3") == "endpoint/ssp-tier3/variant/primary"
    assert inference.model_data_url("b") == "s3://b/sagemaker/model.tar.gz"


def test_execution_policy_is_least_privilege() -> None:
    doc = json.loads(
        inference.execution_policy(
            repository_arn="arn:aws:ecr:us-east-1:1:repository/app",
            bucket_arn=BUCKET,
            kms_key_arn="arn:aws:kms:us-east-1:1:key/k",
            region="us-east-1",
            account_id="1",
            endpoint_name="ep",
        )
    )
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["PullAppImage"]["Resource"] == "arn:aws:ecr:us-east-1:1:repository/app"
    assert by_sid["EcrLogin"]["Action"] == "ecr:GetAuthorizationToken"
    assert by_sid["ReadModelArchive"]["Resource"] == f"{BUCKET}/sagemaker/*"
    assert by_sid["WriteDataCapture"]["Resource"] == f"{BUCKET}/data-capture/*"
    assert by_sid["UseBucketKey"]["Resource"] == "arn:aws:kms:us-east-1:1:key/k"
    assert all(
        r.startswith("arn:aws:logs:us-east-1:1:log-group:/aws/sagemaker/Endpoints/ep")
        for r in by_sid["EndpointLogs"]["Resource"]
    )
    wildcard = {s["Sid"] for s in doc["Statement"] if s["Resource"] == "*"}
    assert wildcard == {"EcrLogin", "VpcNetworkInterfaces"}
    assert not any(a.endswith("*") for s in doc["Statement"] for a in _actions(s))


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


# ---------------------------------------------------------------------------------------
# Dashboard body

IDS = dashboard.DashboardIds(
    load_balancer_arn_suffix="app/api/1",
    target_group_arn_suffix="targetgroup/api/2",
    cluster_name="c",
    db_primary_identifier="db",
)


def _titles(body: str) -> list[str]:
    return [w["properties"]["title"] for w in json.loads(body)["widgets"]]


def test_dashboard_core_widgets_on_every_tier() -> None:
    body = dashboard.dashboard_body(IDS, "eu-west-1", TIERS["dev"].alarms, TIERS["dev"].db)
    titles = _titles(body)
    assert titles == [
        "API p95 latency (s)",
        "API 5xx rate (%)",
        "API requests",
        "EKS node CPU / memory (%)",
        "DB CPU (%)",
        "DB connections",
        "DB free storage (bytes)",
    ]
    widgets = json.loads(body)["widgets"]
    latency = widgets[0]["properties"]
    assert latency["stat"] == "p95" and latency["region"] == "eu-west-1"
    # ALB latency is in seconds: the 200 ms trigger is drawn at 0.2.
    assert latency["annotations"]["horizontal"][0]["value"] == 0.2
    connections = widgets[5]["properties"]["annotations"]["horizontal"][0]["value"]
    assert connections == TIERS["dev"].db.max_connections * 0.8
    # Two per row, no overlap.
    positions = {(w["x"], w["y"]) for w in widgets}
    assert len(positions) == len(widgets)
    assert all(w["x"] + w["width"] <= 24 for w in widgets)


def test_dashboard_optional_sections() -> None:
    ids = dashboard.DashboardIds(
        **{
            **IDS.__dict__,
            "db_replica_identifiers": ("r1", "r2"),
            "cache_replication_group_id": "rg",
            "sagemaker_endpoint_name": "ep",
            "sagemaker_variant_name": "primary",
            "distribution_id": "E1",
        }
    )
    body = json.loads(
        dashboard.dashboard_body(ids, "us-west-2", TIERS["tier3"].alarms, TIERS["tier3"].db)
    )
    by_title = {w["properties"]["title"]: w["properties"] for w in body["widgets"]}
    lag = by_title["DB replica lag (s)"]
    assert [m[3] for m in lag["metrics"]] == ["r1", "r2"]
    assert [m[3] for m in by_title["DB CPU (%)"]["metrics"]] == ["db", "r1", "r2"]
    assert "rg" in by_title["Redis evictions"]["metrics"][0][0]["expression"]
    latency = by_title["SageMaker p95 model latency (µs)"]
    assert latency["annotations"]["horizontal"][0]["value"] == 100_000
    assert latency["metrics"][0][:6] == [
        "AWS/SageMaker",
        "ModelLatency",
        "EndpointName",
        "ep",
        "VariantName",
        "primary",
    ]
    cdn = by_title["CloudFront requests"]
    assert cdn["region"] == "us-east-1"
    assert cdn["metrics"][0][2:] == ["DistributionId", "E1", "Region", "Global"]


# ---------------------------------------------------------------------------------------
# The whole program per stack

WAF = "aws:wafv2/webAcl:WebAcl"
CDN = "aws:cloudfront/distribution:Distribution"
SM_ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
SM_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
SM_MODEL = "aws:sagemaker/model:Model"
SCALING_TARGET = "aws:appautoscaling/target:Target"
SCALING_POLICY = "aws:appautoscaling/policy:Policy"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


@pytest.mark.parametrize("stack", ["dev", "tier1"])
def test_small_stacks_have_no_edge_or_inference(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    for type_ in (CDN, WAF, SM_ENDPOINT, SM_MODEL, SCALING_TARGET):
        assert run.count(type_) == 0, f"{stack} should not create {type_}"
    assert run.count(DASHBOARD) == 1
    assert "cdn_domain_name" not in run.outputs
    assert "sagemaker_endpoint_name" not in run.outputs


def _alarm_metrics(alarm: Any) -> set[str]:
    """Metric names an alarm watches, directly or through metric math."""
    names = {alarm.inputs.get("metricName")}
    for query in alarm.inputs.get("metricQueries") or []:
        names.add((query.get("metric") or {}).get("metricName"))
    return names - {None}


def test_tier3_edge_waf_on_us_east_1(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    tier = TIERS["tier3"]
    waf = run.one(WAF)
    assert waf.inputs["scope"] == "CLOUDFRONT"
    assert waf.provider_name == "edge-us-east-1", waf.options.provider
    provider = run.one("pulumi:providers:aws", waf.provider_name)
    assert provider.inputs["region"] == "us-east-1"
    rules = {r["name"]: r for r in waf.inputs["rules"]}
    api = rules["rate-limit-api"]["statement"]["rateBasedStatement"]
    assert api["limit"] == tier.edge.waf_api_rate_limit
    assert api["evaluationWindowSec"] == tier.edge.waf_window_seconds
    auth = rules["rate-limit-auth"]["statement"]["rateBasedStatement"]
    assert auth["limit"] == tier.edge.waf_auth_rate_limit

    cdn = run.one(CDN)
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
    cdn = run.one(CDN)
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
    for policy in run.of_type("aws:s3/bucketPolicy:BucketPolicy"):
        statements = json.loads(policy.inputs["policy"])["Statement"]
        granting += [s for s in statements if s.get("Sid") == "CloudFrontReadsPublicAssets"]
    assert len(granting) == 1, "exactly one bucket (models) lets CloudFront read"
    source = granting[0]["Condition"]["StringEquals"]["AWS:SourceArn"]
    assert re.fullmatch(r"arn:aws:cloudfront::\d{12}:distribution/edge-cdn-\w+", source), source
    assert granting[0]["Resource"].endswith("/static/*")


def test_tier3_models_key_lets_only_this_distribution_decrypt(stack_run: StackRunner) -> None:
    # OAC reads SSE-KMS objects only when the bucket key's policy admits CloudFront too.
    run = stack_run("tier3")
    distribution = run.one("aws:cloudfront/distribution:Distribution")
    for key in run.of_type("aws:kms/key:Key"):
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


def test_tier3_sagemaker_endpoint_scaling_and_rollback(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    tier = TIERS["tier3"]
    model = run.one(SM_MODEL)
    image = model.get("primaryContainer.image")
    assert re.fullmatch(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/.+:0\.1\.0", image), image
    assert model.get("primaryContainer.modelDataUrl").endswith("/sagemaker/model.tar.gz")
    assert model.get("vpcConfig.subnets") and model.get("vpcConfig.securityGroupIds")
    # One API worker per vCPU of the instance (ml.m5.large: 2).
    assert model.get("primaryContainer.environment")["WORKERS"] == "2"

    config = run.one(SM_CONFIG)
    assert config.inputs["namePrefix"].endswith("-") and "name" not in config.inputs
    variant = config.inputs["productionVariants"][0]
    assert variant["instanceType"] == tier.inference.instance_type
    assert variant["initialInstanceCount"] == tier.inference.min_instances
    capture = config.inputs["dataCaptureConfig"]
    assert capture["initialSamplingPercentage"] == tier.inference.data_capture_percent
    assert capture["destinationS3Uri"].endswith("/data-capture")
    assert config.inputs["kmsKeyArn"].startswith("arn:aws:kms:")

    endpoint = run.one(SM_ENDPOINT)
    routing = endpoint.get("deploymentConfig.blueGreenUpdatePolicy.trafficRoutingConfiguration")
    assert routing["type"] == "CANARY" and routing["canarySize"]["value"] == 10
    rollback = [
        a["alarmName"] for a in endpoint.get("deploymentConfig.autoRollbackConfiguration.alarms")
    ]
    watched = set()
    for name in rollback:
        alarm = next(a for a in run.of_type(ALARM) if name.startswith(a.name + "-"))
        watched |= _alarm_metrics(alarm)
    assert {"ModelLatency", "Invocation5XXErrors"} <= watched

    target = run.one(SCALING_TARGET)
    assert target.inputs["serviceNamespace"] == "sagemaker"
    assert target.inputs["resourceId"] == f"endpoint/{endpoint.inputs['name']}/variant/primary"
    assert target.inputs["scalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == (
        tier.inference.min_instances,
        tier.inference.max_instances,
    )
    scaling = run.one(SCALING_POLICY).inputs["targetTrackingScalingPolicyConfiguration"]
    assert scaling["predefinedMetricSpecification"]["predefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )
    # ml.m5.large: 2 vCPUs x 2,000 requests/s, half of it, per minute.
    assert scaling["targetValue"] == 2 * 2_000 * 0.5 * 60
    assert (scaling["scaleInCooldown"], scaling["scaleOutCooldown"]) == (600, 120)


@pytest.mark.parametrize("stack", ["tier3", "tier4"])
def test_edge_and_inference_outputs(stack_run: StackRunner, stack: str) -> None:
    outputs = stack_run(stack).outputs
    assert outputs["cdn_domain_name"].endswith(".cloudfront.net")
    assert outputs["sagemaker_endpoint_name"] == f"ssp-{stack}-predict"
    assert outputs["dashboard_name"] == f"ssp-{stack}"


def _expected_alarms(stack: str, run: StackRun) -> dict[tuple[str, str], tuple[float, int]]:
    """(namespace-ish key, metric) -> (threshold, how many alarms) the catalog asks for."""
    from components.spec import build_spec

    config = {
        k.split(":", 1)[1]: v for k, v in run.config.items() if k.startswith("student-success:")
    }
    tier = build_spec(config, stack=stack, region=run.config.get("aws:region")).tier
    expected: dict[tuple[str, str], tuple[float, int]] = {
        ("ALB", "TargetResponseTime"): (tier.alarms.latency_p95_ms / 1000, 1),
        ("ALB", "HTTPCode_Target_5XX_Count"): (tier.alarms.error_rate_percent, 1),
        ("EKS", "node_cpu_utilization"): (tier.alarms.cpu_percent, 1),
        ("EKS", "node_memory_utilization"): (tier.alarms.memory_percent, 1),
        ("RDS", "CPUUtilization"): (tier.alarms.cpu_percent, 1 + tier.db.replica_count),
        ("RDS", "DatabaseConnections"): (
            tier.db.max_connections * tier.alarms.db_connections_percent // 100,
            1,
        ),
        ("RDS", "FreeStorageSpace"): (
            tier.db.storage_gib * 1024**3 * tier.alarms.free_storage_percent // 100,
            1,
        ),
        ("App", "TrainingFailures"): (0, 1),
    }
    if tier.db.replica_count:
        expected[("RDS", "ReplicaLag")] = (tier.alarms.replica_lag_seconds, tier.db.replica_count)
    if tier.cache.enabled:
        nodes = tier.cache.num_nodes
        expected[("Redis", "EngineCPUUtilization")] = (tier.alarms.cpu_percent, nodes)
        expected[("Redis", "DatabaseMemoryUsagePercentage")] = (tier.alarms.memory_percent, nodes)
        expected[("Redis", "Evictions")] = (0, nodes)
    if tier.inference.enabled:
        expected[("SageMaker", "ModelLatency")] = (tier.alarms.model_latency_p95_ms * 1000, 1)
        expected[("SageMaker", "Invocation5XXErrors")] = (tier.alarms.error_rate_percent, 1)
    return expected


_NAMESPACES = {
    "AWS/ApplicationELB": "ALB",
    "ContainerInsights": "EKS",
    "AWS/RDS": "RDS",
    "AWS/ElastiCache": "Redis",
    "AWS/SageMaker": "SageMaker",
}


def _alarm_keys(alarm: Any) -> set[tuple[str, str]]:
    pairs = {(alarm.inputs.get("namespace"), alarm.inputs.get("metricName"))}
    for query in alarm.inputs.get("metricQueries") or []:
        metric = query.get("metric") or {}
        pairs.add((metric.get("namespace"), metric.get("metricName")))
    return {(_NAMESPACES.get(ns or "", "App"), m) for ns, m in pairs if m}


@pytest.mark.parametrize("stack", ["dev", "tier1", "tier2", "tier3", "tier4"])
def test_every_stack_has_the_catalog_alarms(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    alarms = run.of_type(ALARM)
    problems = []
    for key, (threshold, count) in _expected_alarms(stack, run).items():
        found = [a for a in alarms if key in _alarm_keys(a)]
        if len(found) != count:
            problems.append(f"{key}: {count} alarm(s) expected, found {[a.name for a in found]}")
        for a in found:
            if a.inputs["threshold"] != pytest.approx(threshold):
                problems.append(f"{a.name}: threshold {a.inputs['threshold']} != {threshold}")
            if not a.inputs.get("alarmActions"):
                problems.append(f"{a.name}: notifies nobody")
    assert not problems, f"{stack}:\n" + "\n".join(problems)


@pytest.mark.parametrize("stack", ["dev", "tier1", "tier2", "tier3", "tier4"])
def test_dashboard_covers_the_stack(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    board = run.one(DASHBOARD)
    assert board.inputs["dashboardName"] == f"ssp-{stack}"
    titles = _titles(board.inputs["dashboardBody"])
    spec_tier = TIERS[run.config["student-success:tier"]]
    assert ("Redis evictions" in titles) == spec_tier.cache.enabled
    assert ("SageMaker p95 model latency (µs)" in titles) == spec_tier.inference.enabled
    assert ("CloudFront requests" in titles) == spec_tier.edge.enabled
    replicas = run.outputs.get("db_replica_identifiers") or []
    assert ("DB replica lag (s)" in titles) == bool(replicas)


@pytest.mark.parametrize("stack", ["tier1", "tier3"])
def test_api_may_invoke_the_endpoint_only_where_it_exists(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    invoke = [
        s
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        for s in json.loads(p.inputs["policy"])["Statement"]
        if "sagemaker:InvokeEndpoint" in _actions(s)
    ]
    if run.count(SM_ENDPOINT) == 0:
        assert invoke == []
    else:
        assert len(invoke) == 1
        assert re.fullmatch(
            rf"arn:aws:sagemaker:[a-z0-9-]+:\d{{12}}:endpoint/ssp-{stack}-predict",
            invoke[0]["Resource"],
        )


def test_edge_stays_in_us_east_1_whatever_the_stack_region() -> None:
    run = run_stack("tier3", {"aws:region": "eu-west-1"})
    waf = run.one(WAF)
    assert run.one("pulumi:providers:aws", waf.provider_name).inputs["region"] == "us-east-1"
    assert run.one(SM_ENDPOINT).provider_name == ""  # the stack's region
    board = json.loads(run.one(DASHBOARD).inputs["dashboardBody"])
    regions = {w["properties"]["title"]: w["properties"]["region"] for w in board["widgets"]}
    assert regions["CloudFront requests"] == "us-east-1"
    assert regions["API p95 latency (s)"] == "eu-west-1"
