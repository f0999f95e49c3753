"""Tier 4's shared name ``api.<domain>``: one CloudFront distribution in the global stack, with
the regional distributions' WAF and headers, whose origin ``origin.<domain>`` is latency-routed
to the regions' load balancers; each region's listener holds a certificate for that origin and
forwards the shared distribution's secret header as well as its own."""

from __future__ import annotations

import json

import pytest

from components.config.spec_global import shared_host, shared_origin_host
from components.edge import ORIGIN_VERIFY_HEADER
from tests.shared import DNS_RECORD, StackRunner
from tools.harness import StackRun, run_stack
from tools.mock_account import STACK_OUTPUTS
from tools.policy import check_run

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
CERTIFICATE = "aws:acm/certificate:Certificate"
CERTIFICATE_VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
LISTENER_CERTIFICATE = "aws:lb/listenerCertificate:ListenerCertificate"
DOMAIN = "ssp.example.org"
GLOBAL = json.loads((STACK_OUTPUTS / "global.json").read_text())


@pytest.fixture(scope="module")
def shared(stack_run: StackRunner) -> StackRun:
    return stack_run("global")


def test_the_shared_name_is_one_distribution_in_front_of_the_regions(shared: StackRun) -> None:
    (cdn,) = shared.of_type(DISTRIBUTION)
    assert cdn.get("aliases") == [shared_host(DOMAIN)]
    assert (
        cdn.get("viewerCertificate.acmCertificateArn") == shared.outputs["shared_certificate_arn"]
    )
    assert cdn.get("viewerCertificate.minimumProtocolVersion") == "TLSv1.2_2021"
    # The API alone: no assets bucket in the global stack.
    (origin,) = cdn.get("origins")
    assert origin["domainName"] == shared_origin_host(DOMAIN)
    assert origin["customOriginConfig"]["originProtocolPolicy"] == "https-only"
    assert origin["customHeaders"] == [
        {"name": ORIGIN_VERIFY_HEADER, "value": shared.outputs["shared_origin_verify_secret"]}
    ]
    assert "shared_origin_verify_secret" in shared.secret_outputs
    assert "orderedCacheBehaviors" not in cdn.inputs
    (acl,) = shared.of_type(WEB_ACL)
    assert acl.get("scope") == "CLOUDFRONT" and cdn.get("webAclId").endswith(acl.id)
    # api.<domain> names the distribution (an alias), nothing else: no latency records.
    named = [r for r in shared.of_type(DNS_RECORD) if r.get("name") == shared_host(DOMAIN)]
    assert [r.get("type") for r in named] == ["A"]
    assert {r.get("aliases.0.name") for r in named} == {shared.outputs["shared_cdn_domain_name"]}
    assert not any(r.get("setIdentifier") for r in named)


def test_every_region_has_an_origin_certificate_of_its_own_region(shared: StackRun) -> None:
    # By name: us-east-1 also holds the shared name's certificate, and registrations run on
    # several threads, so the order of the two there is not fixed.
    certificates = {
        c.provider_name: c for c in shared.of_type(CERTIFICATE) if c.name.endswith("-origin-cert")
    }
    for region in ("us-east-1", "us-west-2"):
        certificate = certificates[f"dns-{region}"]
        assert certificate.get("domainName") == shared_origin_host(DOMAIN)
        assert certificate.get("validationMethod") == "DNS"
        assert shared.outputs["origin_certificate_arns"][region].startswith(
            f"arn:aws:acm:{region}:"
        )
    # ACM asks the same record of one name in every region: one record validates both.
    validation_records = [r for r in shared.of_type(DNS_RECORD) if r.name.startswith("dns-origin")]
    assert len(validation_records) == 1
    validations = [v for v in shared.of_type(CERTIFICATE_VALIDATION) if "origin" in v.name]
    assert len(validations) == 2
    assert len({tuple(v.get("validationRecordFqdns")) for v in validations}) == 1


@pytest.mark.parametrize("stack", ["tier4-east", "tier4-west"])
def test_each_region_admits_the_shared_distribution(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    region = run.config["aws:region"]
    (gate,) = [r for r in run.of_type(LISTENER_RULE) if r.name == "edge-origin-gate"]
    values = gate.get("conditions.0.httpHeader.values")
    # Its own distribution's secret and the shared one's, nothing else.
    assert len(values) == 2 and values[1] == GLOBAL["shared_origin_verify_secret"]
    assert values[0] != values[1]
    assert "conditions.0.httpHeader.values" in {p.rsplit(".", 1)[0] for p in gate.secret_paths}
    (certificate,) = run.of_type(LISTENER_CERTIFICATE)
    assert certificate.get("certificateArn") == GLOBAL["origin_certificate_arns"][region]
    https = run.one("aws:lb/listener:Listener", "workloads-alb-https")
    assert certificate.get("listenerArn").endswith(https.id)


@pytest.mark.parametrize("stack", ["tier3", "tier4"])
def test_a_stack_without_a_global_stack_admits_its_own_distribution_only(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    (gate,) = [r for r in run.of_type(LISTENER_RULE) if r.name == "edge-origin-gate"]
    assert len(gate.get("conditions.0.httpHeader.values")) == 1
    assert run.of_type(LISTENER_CERTIFICATE) == []


@pytest.mark.parametrize("preview", [False, True], ids=["preview", "first-preview"])
def test_the_policy_pack_passes_the_global_stack(preview: bool) -> None:
    run = run_stack("global", preview=preview)
    assert run.of_type(DISTRIBUTION)
    assert [v for v in check_run(run) if v.level == "mandatory"] == []
