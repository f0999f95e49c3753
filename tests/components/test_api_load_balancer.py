"""The API load balancer: the ALB, its listeners (HTTP, or HTTPS with a certificate), the
target group and the security group rules in front of the pods."""

from __future__ import annotations

import pytest

from components import k8s_manifests as m
from components.catalog import TIERS
from tests.shared import (
    DISTRIBUTION,
    INGRESS_RULE,
    LISTENER,
    LISTENER_RULE,
    STACKS,
    StackRunner,
    tier_of,
)
from tools.harness import run_stack


@pytest.mark.parametrize("stack", STACKS)
def test_load_balancer(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    alb = run.one("aws:lb/loadBalancer:LoadBalancer")
    assert alb.get("internal") is False and alb.get("dropInvalidHeaderFields") is True
    assert alb.get("enableDeletionProtection") is tier.deletion_protection
    tg = run.one("aws:lb/targetGroup:TargetGroup")
    assert tg.get("targetType") == "ip" and tg.get("port") == 8080
    assert tg.get("healthCheck.path") == m.READINESS_PATH
    # No stack file names a certificate: plain HTTP on port 80 only.
    listener = run.one(LISTENER)
    assert listener.get("port") == 80 and listener.get("protocol") == "HTTP"
    # Behind CloudFront the listener forwards only what carries the Edge's secret header.
    expected_default = "fixed-response" if tier.edge.enabled else "forward"
    assert listener.get("defaultActions.0.type") == expected_default
    internal = run.one(LISTENER_RULE, "workloads-alb-internal-paths")
    assert internal.get("listenerArn").endswith(f"/{listener.id}")
    assert set(internal.get("conditions.0.pathPattern.values")) == {
        "/invocations",
        "/ping",
        "/metrics",
    }
    assert internal.get("actions.0.fixedResponse.statusCode") == "404"
    rules = run.of_type(INGRESS_RULE)
    alb_in = [r for r in rules if r.name.startswith("workloads-alb-in-")]
    assert [r.get("fromPort") for r in alb_in] == [80]
    for rule in alb_in:
        if tier.edge.enabled:
            assert rule.get("prefixListId") and "cidrIpv4" not in rule.inputs
        else:
            assert rule.get("cidrIpv4") == "0.0.0.0/0"
    to_pods = run.one(INGRESS_RULE, "workloads-alb-pods-in")
    assert to_pods.get("fromPort") == 8080 and to_pods.get("referencedSecurityGroupId")
    assert run.outputs["api_load_balancer_dns_name"].endswith(".elb.us-east-1.amazonaws.com")


CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-000011112222"


def test_a_certificate_gives_https_and_redirects_http() -> None:
    run = run_stack("tier1", extra_config={"apiCertificateArn": CERT})
    listeners = {r.get("port"): r for r in run.of_type(LISTENER)}
    https, http = listeners[443], listeners[80]
    assert https.get("protocol") == "HTTPS" and https.get("certificateArn") == CERT
    assert https.get("sslPolicy") == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https.get("defaultActions.0.type") == "forward"
    assert http.get("defaultActions.0.redirect") == {
        "port": "443",
        "protocol": "HTTPS",
        "statusCode": "HTTP_301",
    }
    internal = run.one(LISTENER_RULE, "workloads-alb-internal-paths")
    assert internal.get("listenerArn").endswith(f"/{https.id}")
    rules = run.of_type(INGRESS_RULE)
    assert sorted(r.get("fromPort") for r in rules if r.name.startswith("workloads-alb-in-")) == [
        80,
        443,
    ]


def test_behind_cloudfront_https_uses_one_prefix_list_rule() -> None:
    run = run_stack(
        "tier3", extra_config={"apiCertificateArn": CERT, "apiDomainName": "api.ssp.example.org"}
    )
    (listener,) = run.of_type(LISTENER)  # no public HTTP listener
    assert listener.get("port") == 443
    rules = run.of_type(INGRESS_RULE)
    alb_in = [r for r in rules if r.name.startswith("workloads-alb-in-")]
    assert [(r.get("fromPort"), bool(r.get("prefixListId"))) for r in alb_in] == [(443, True)]
    origin = run.one(DISTRIBUTION).get("origins.0")
    assert origin["domainName"] == "api.ssp.example.org"
    assert origin["customOriginConfig"]["originProtocolPolicy"] == "https-only"
    gate = run.one(LISTENER_RULE, "edge-origin-gate")
    assert gate.get("listenerArn").endswith(listener.id)
    assert gate.get("conditions.0.httpHeader.httpHeaderName") == "X-Origin-Verify"
    assert gate.get("conditions.0.httpHeader.values.0") == origin["customHeaders"][0]["value"]
    assert "conditions.0.httpHeader.values.0" in gate.secret_paths
    assert gate.get("actions.0.type") == "forward"
