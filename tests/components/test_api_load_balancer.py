"""The API load balancer: the ALB, its listeners (HTTP, or HTTPS with a certificate), the
target group and the security group rules in front of the pods."""

from __future__ import annotations

import pytest

from components.config.catalog import TIERS
from components.shared import k8s_manifests as m
from components.shared.certificates import TlsName
from tests.shared import (
    ACM_CERTIFICATE,
    ACM_VALIDATION,
    DISTRIBUTION,
    DNS_RECORD,
    INGRESS_RULE,
    LISTENER,
    LISTENER_RULE,
    STACKS,
    WEB_ACL,
    WEB_ACL_ASSOCIATION,
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
    # Dev alone serves plain HTTP; every other stack HTTPS with TLS 1.2+, HTTP redirecting
    # (no public HTTP listener at all behind CloudFront, which speaks HTTPS to it).
    listeners = {r.get("port"): r for r in run.of_type(LISTENER)}
    if stack == "dev":
        assert set(listeners) == {80}
        listener = listeners[80]
        assert listener.get("protocol") == "HTTP"
    else:
        assert set(listeners) == ({443} if tier.edge.enabled else {80, 443})
        listener = listeners[443]
        assert listener.get("protocol") == "HTTPS"
        assert listener.get("sslPolicy") == "ELBSecurityPolicy-TLS13-1-2-2021-06"
        issued = run.one(ACM_VALIDATION, "workloads-alb-cert-issued")
        # The listener takes the validated ARN: a first up waits for DNS validation.
        assert listener.get("certificateArn") == issued.get("certificateArn")
        cert = run.one(ACM_CERTIFICATE, "workloads-alb-cert")
        assert cert.get("domainName") == run.config["student-success:apiDomainName"]
        assert cert.get("validationMethod") == "DNS"
        assert cert.provider_name == ""  # the stack's region
        validation = run.one(DNS_RECORD, "workloads-alb-cert-validation")
        assert validation.get("type") == "CNAME"
        assert issued.get("validationRecordFqdns") == [validation.get("name")]
        alias = run.one(DNS_RECORD, "workloads-alb-dns")
        assert alias.get("name") == cert.get("domainName")
        assert alias.get("aliases.0.zoneId") == "Z35SXDOTRQ7X7K"  # the load balancer's zone
        if not tier.edge.enabled:
            assert listeners[80].get("defaultActions.0.redirect.protocol") == "HTTPS"
    # Behind CloudFront the listener forwards only what carries the Edge's secret header.
    expected_default = "fixed-response" if tier.edge.enabled else "forward"
    assert listener.get("defaultActions.0.type") == expected_default
    # A WAF on every internet-facing entry: on the load balancer unless CloudFront guards it.
    acls = run.of_type(WEB_ACL)
    assert [a.get("scope") for a in acls] == ["CLOUDFRONT" if tier.edge.enabled else "REGIONAL"]
    associations = run.of_type(WEB_ACL_ASSOCIATION)
    if tier.edge.enabled:
        assert associations == []
    else:
        (association,) = associations
        assert association.get("resourceArn").endswith(alb.id)
        assert association.get("webAclArn").endswith(acls[0].id)
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
    ports = [80] if stack == "dev" else [443] if tier.edge.enabled else [80, 443]
    assert sorted(r.get("fromPort") for r in alb_in) == ports
    for rule in alb_in:
        if tier.edge.enabled:
            assert rule.get("prefixListId") and "cidrIpv4" not in rule.inputs
        else:
            assert rule.get("cidrIpv4") == "0.0.0.0/0"
    to_pods = run.one(INGRESS_RULE, "workloads-alb-pods-in")
    assert to_pods.get("fromPort") == 8080 and to_pods.get("referencedSecurityGroupId")
    region = run.config["aws:region"]
    assert run.outputs["api_load_balancer_dns_name"].endswith(f".elb.{region}.amazonaws.com")


CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-000011112222"


def test_a_certificate_arn_is_used_as_given_and_dns_left_to_the_operator() -> None:
    run = run_stack("tier1", extra_config={"apiCertificateArn": CERT, "hostedZoneId": ""})
    listeners = {r.get("port"): r for r in run.of_type(LISTENER)}
    assert listeners[443].get("certificateArn") == CERT
    assert run.count(ACM_CERTIFICATE) == 0 and run.count(DNS_RECORD) == 0
    assert run.outputs["api_url"] == "https://api.tier1.ssp.example.org"


def test_behind_cloudfront_the_edge_gate_forwards_its_own_requests() -> None:
    run = run_stack("tier3")
    (listener,) = run.of_type(LISTENER)
    origin = run.one(DISTRIBUTION).get("origins.0")
    gate = run.one(LISTENER_RULE, "edge-origin-gate")
    assert gate.get("listenerArn").endswith(listener.id)
    assert gate.get("conditions.0.httpHeader.httpHeaderName") == "X-Origin-Verify"
    assert gate.get("conditions.0.httpHeader.values.0") == origin["customHeaders"][0]["value"]
    assert "conditions.0.httpHeader.values.0" in gate.secret_paths
    assert gate.get("actions.0.type") == "forward"


def test_a_tls_name_needs_a_zone_or_a_certificate() -> None:
    with pytest.raises(ValueError, match="give a hosted zone or a certificate ARN"):
        TlsName("api.example.org")
