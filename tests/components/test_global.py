"""Tier 4 across regions: the global stack (zone, the shared origin's latency records and
health checks, district directory, registry replication) and the regional stacks that read it
by StackReference. The shared name's distribution: tests/components/test_global_edge.py."""

from __future__ import annotations

import ipaddress
import itertools
import json
import re

import pytest
import yaml

from components.config.spec import SpecError, build_spec
from components.config.spec_global import (
    GlobalSpec,
    api_host,
    build_global_spec,
    region_entry,
    shared_origin_host,
)
from components.directory import replica_arn
from components.shared.iam import api_role_policy
from tests.shared import DNS_RECORD, KMS_KEY, ROLE_POLICY, StackRunner
from tools.harness import ROOT, referenced_stacks, stacks
from tools.mock_account import STACK_OUTPUTS
from tools.plan import outputs_text
from tools.stack_config import project_defaults

HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
TABLE = "aws:dynamodb/table:Table"
KEY_SIGNING_KEY = "aws:route53/keySigningKey:KeySigningKey"
ZONE_DNSSEC = "aws:route53/hostedZoneDnsSec:HostedZoneDnsSec"
TABLE_ITEM = "aws:dynamodb/tableItem:TableItem"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PREFIX = "student-success:"


def _config(stack: str) -> dict[str, object]:
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {k.removeprefix(PREFIX): v for k, v in data.items() if not k.startswith("aws:")}


def _region(stack: str) -> str:
    return str(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["aws:region"])


def _global_spec(stack: str = "global") -> GlobalSpec:
    return build_global_spec(_config(stack), stack=stack, region=_region(stack))


GLOBAL_STACKS = [s for s in stacks() if _config(s).get("stackRole") == "global"]


def test_there_is_a_global_stack_with_two_regions() -> None:
    assert GLOBAL_STACKS == ["global"]
    assert [(r.name, r.stack) for r in _global_spec().regions] == [
        ("us-east-1", "tier4-east"),
        ("us-west-2", "tier4-west"),
    ]


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_the_regions_vpc_cidrs_do_not_overlap(stack: str) -> None:
    cidrs = {
        r.stack: ipaddress.ip_network(str(_config(r.stack)["vpcCidr"]))
        for r in _global_spec(stack).regions
    }
    for (a, net_a), (b, net_b) in itertools.combinations(cidrs.items(), 2):
        assert not net_a.overlaps(net_b), f"{a} {net_a} overlaps {b} {net_b}"


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_every_regional_stack_is_where_the_global_stack_says(stack: str) -> None:
    g = _global_spec(stack)
    for r in g.regions:
        config = _config(r.stack)
        assert _region(r.stack) == r.name, r.stack
        assert config["globalStack"] == stack, r.stack
        # The name the health check probes and the 307 sends districts to.
        assert config["edgeDomainName"] == api_host(r.name, g.domain_name), r.stack


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_every_district_is_in_exactly_one_region(stack_run: StackRunner, stack: str) -> None:
    g = _global_spec(stack)
    homed = [d for r in g.regions for d in r.districts]
    assert homed and len(homed) == len(set(homed))
    lines = _config(stack)["districts"]
    assert isinstance(lines, list) and len(lines) == len(homed)
    # The directory starts with exactly those entries.
    items = {
        json.loads(i.inputs["item"])["district_id"]["S"]: json.loads(i.inputs["item"])[
            "home_region"
        ]["S"]
        for i in stack_run(stack).of_type(TABLE_ITEM)
    }
    assert items == g.district_regions
    assert all(i.options.ignore_changes == ("item",) for i in stack_run(stack).of_type(TABLE_ITEM))


def test_a_district_in_two_regions_is_refused_with_its_name() -> None:
    config = {**_config("global"), "districts": ["az-mesa=us-west-2", "az-mesa=us-east-1"]}
    with pytest.raises(SpecError, match=r"districts: 'az-mesa' is listed 2 times"):
        build_global_spec(config, stack="global", region="us-east-1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"districts": ["az-mesa=eu-west-1"]}, r"'eu-west-1' is not in regions"),
        ({"regions": ["us-east-1=tier4-east", "us-east-1=tier4-west"]}, r"listed twice"),
        ({"regions": ["us-east-1 tier4-east"]}, r"must be <region>=<stack>"),
        ({"domainName": "Not A Domain"}, r"domainName="),
        ({"tier": "tier4"}, r"student-success:tier: not read by the global stack"),
    ],
)
def test_bad_global_config_names_the_key(change: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        build_global_spec({**_config("global"), **change}, stack="global", region="us-east-1")


def test_the_global_stack_takes_the_project_defaults_the_cli_hands_it() -> None:
    # A real preview hands every Pulumi.yaml default the stack file leaves unset to the
    # program: the global stack must take them, as they are not its stack file's.
    defaults = {key.removeprefix(PREFIX): value for key, value in project_defaults().items()}
    g = build_global_spec({**defaults, **_config("global")}, stack="global", region="us-east-1")
    assert g == _global_spec()


def test_the_global_stack_refuses_a_key_its_stack_file_sets_for_a_tier() -> None:
    defaults = {key.removeprefix(PREFIX): value for key, value in project_defaults().items()}
    config = {**defaults, **_config("global"), "vpcCidr": "10.9.0.0/16"}
    with pytest.raises(SpecError) as caught:
        build_global_spec(config, stack="global", region="us-east-1")
    assert caught.value.problems == [
        "student-success:vpcCidr: not read by the global stack; allowed: "
        "districts, domainName, owner, regions, stackRole"
    ]


def test_a_regional_stack_refuses_the_global_keys() -> None:
    config = {**_config("tier4-east"), "regions": ["us-east-1=tier4-east"]}
    with pytest.raises(SpecError, match=r"regions: only the global stack"):
        build_spec(config, stack="tier4-east", region="us-east-1")


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_a_dns_record_and_a_health_check_per_region(stack_run: StackRunner, stack: str) -> None:
    run, g = stack_run(stack), _global_spec(stack)
    checks = {c.get("fqdn"): c for c in run.of_type(HEALTH_CHECK)}
    records = {
        r.get("setIdentifier"): r
        for r in run.of_type(DNS_RECORD)
        if r.get("name") == shared_origin_host(g.domain_name)
    }
    assert set(records) == {r.name for r in g.regions}
    for region in g.regions:
        check = checks[api_host(region.name, g.domain_name)]
        assert check.get("type") == "HTTPS" and check.get("resourcePath") == "/ready"
        record = records[region.name]
        assert record.get("latencyRoutingPolicies") == [{"region": region.name}]
        # Failover: an unhealthy region's record drops out of the answers.
        assert record.get("healthCheckId") == check.id
        # The shared distribution's origin there is the region's load balancer, read from
        # its stack's outputs.
        outputs = json.loads((STACK_OUTPUTS / f"{region.stack}.json").read_text())
        assert record.get("type") == "CNAME"
        assert record.get("records") == [outputs["api_load_balancer_dns_name"]]
    assert len({r.get("records.0") for r in records.values()}) == len(records)


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_the_public_zone_is_signed_with_a_key_only_route53_signs_with(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    # The public zone's id, as its records name it.
    (zone_id,) = {r.get("zoneId") for r in run.of_type(DNS_RECORD) if r.name.startswith("dns-")}
    key = run.one(KMS_KEY, "dns-dnssec-key")
    assert (key.get("customerMasterKeySpec"), key.get("keyUsage")) == (
        "ECC_NIST_P256",
        "SIGN_VERIFY",
    )
    assert key.provider_name == "dns-us-east-1"  # Route 53 signs with us-east-1 keys only
    statements = {s["Sid"]: s for s in json.loads(key.get("policy"))["Statement"]}
    signs, grants = statements["Route53DnssecSigns"], statements["Route53DnssecGrants"]
    assert signs["Principal"] == grants["Principal"] == {"Service": "dnssec-route53.amazonaws.com"}
    assert set(signs["Action"]) == {"kms:DescribeKey", "kms:GetPublicKey", "kms:Sign"}
    # Only for this account's zones (confused deputy), grants only to AWS resources.
    assert signs["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    assert signs["Condition"]["ArnLike"] == {"aws:SourceArn": "arn:aws:route53:::hostedzone/*"}
    assert grants["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    ksk = run.one(KEY_SIGNING_KEY, "dns-ksk")
    assert ksk.get("hostedZoneId") == zone_id
    assert ksk.get("keyManagementServiceArn").startswith("arn:aws:kms:us-east-1:")
    assert ksk.get("status") == "ACTIVE"
    signing = run.one(ZONE_DNSSEC, "dns-dnssec")
    assert signing.get("signingStatus") == "SIGNING"
    # Signing starts once the key-signing key is active, on the first `up` too.
    assert ksk.urn in signing.options.depends_on
    assert signing.get("hostedZoneId") == zone_id
    # Removing any of them with the DS record at the registrar breaks every name.
    assert key.options.protect and ksk.options.protect and signing.options.protect
    # What the registrar takes: key tag, algorithm 13 (ECDSA P-256), digest type 2 (SHA-256).
    assert re.fullmatch(r"\d+ 13 2 [0-9A-F]{64}", run.outputs["dnssec_ds_record"])


def test_a_region_being_built_has_its_health_check_but_no_record() -> None:
    from tools.harness import run_stack

    run = run_stack(
        "global", {"regions": ["us-east-1=tier4-east", "us-west-2=tier4-west (building)"]}
    )
    latency = [r.get("setIdentifier") for r in run.of_type(DNS_RECORD) if r.get("setIdentifier")]
    assert latency == ["us-east-1"]
    assert len(run.of_type(HEALTH_CHECK)) == 2
    # Its first up attaches the origin certificate: issued already.
    assert set(run.outputs["origin_certificate_arns"]) == {"us-east-1", "us-west-2"}


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_directory_and_images_reach_every_other_region(stack_run: StackRunner, stack: str) -> None:
    run, g = stack_run(stack), _global_spec(stack)
    table = run.one(TABLE)
    assert table.get("hashKey") == "district_id"
    assert table.get("attributes") == [{"name": "district_id", "type": "S"}]
    assert [r["regionName"] for r in table.get("replicas")] == list(g.replica_regions)
    assert table.options.protect and table.get("deletionProtectionEnabled") is True
    replication = run.one("aws:ecr/replicationConfiguration:ReplicationConfiguration")
    destinations = replication.get("replicationConfiguration.rules.0.destinations")
    assert [d["region"] for d in destinations] == list(g.replica_regions)
    templates = run.of_type("aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate")
    assert sorted(t.get("region") for t in templates) == sorted(g.replica_regions)
    assert all(t.get("imageTagMutability") == "IMMUTABLE" for t in templates)


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_replica_templates_name_a_role_ecr_assumes_for_their_tags_and_kms(
    stack_run: StackRunner, stack: str
) -> None:
    """A creation template that tags or KMS-encrypts its repositories needs custom_role_arn
    (pulumi-aws RepositoryCreationTemplate), or ECR creates no replica to pull from."""
    run = stack_run(stack)
    role = run.one("aws:iam/role:Role", "registry-replica-creation-role")
    trust = json.loads(role.get("assumeRolePolicy"))["Statement"]
    assert [s["Principal"]["Service"] for s in trust] == ["ecr.amazonaws.com"]
    templates = run.of_type("aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate")
    assert templates and all(t.get("customRoleArn").endswith(f":role/{role.id}") for t in templates)
    policy = json.loads(run.one(ROLE_POLICY, "registry-replica-creation-policy").get("policy"))
    create, encrypt = policy["Statement"]
    assert set(create["Action"]) == {
        "ecr:CreateRepository",
        "ecr:ReplicateImage",
        "ecr:TagResource",
    }
    assert sorted(r.split(":")[3] for r in create["Resource"]) == sorted(
        _global_spec(stack).replica_regions
    )
    prefix = templates[0].get("prefix")
    assert all(r.endswith(f":repository/{prefix}/*") for r in create["Resource"])
    assert encrypt["Condition"]["StringEquals"]["kms:ViaService"] == [
        f"ecr.{r}.amazonaws.com" for r in _global_spec(stack).replica_regions
    ]


@pytest.mark.parametrize("stack", ["tier4-east", "tier4-west"])
def test_a_regional_api_reads_its_own_directory_replica_only(
    stack_run: StackRunner, stack: str
) -> None:
    run, region = stack_run(stack), _region(stack)
    outputs = json.loads((STACK_OUTPUTS / "global.json").read_text())
    policy = json.loads(run.one(ROLE_POLICY, "workloads-api-policy").inputs["policy"])
    reads = [s for s in policy["Statement"] if str(s["Action"]).startswith("dynamodb:")]
    assert reads == [
        {
            "Sid": "ReadDistrictDirectory",
            "Effect": "Allow",
            "Action": "dynamodb:GetItem",
            "Resource": outputs["directory_table_arns"][region],
        }
    ]
    [config] = [c for c in run.of_type(CONFIG_MAP) if "HOME_REGION" in (c.get("data") or {})]
    assert config.get("data.HOME_REGION") == region
    assert config.get("data.DISTRICT_DIRECTORY_TABLE") == outputs["directory_table_name"]
    assert json.loads(config.get("data.REGION_API_HOSTS")) == outputs["region_api_hosts"]
    # Certificates and records in the global stack's zone; images from this region's replica.
    zones = {r.get("zoneId") for r in run.of_type(DNS_RECORD) if r.get("zoneId")}
    assert outputs["zone_id"] in zones
    assert f".dkr.ecr.{region}.amazonaws.com/{outputs['registry_repository_name']}" in str(
        run.outputs["ecr_repository_url"]
    )
    assert not run.of_type("aws:ecr/repository:Repository")


def test_stacks_without_a_global_stack_have_no_directory(stack_run: StackRunner) -> None:
    api_policy = stack_run("tier3").one(ROLE_POLICY, "workloads-api-policy")
    policy = json.loads(api_policy.inputs["policy"])
    assert not [s for s in policy["Statement"] if "dynamodb" in str(s["Action"])]
    assert "dynamodb:GetItem" in api_role_policy("arn:m", "arn:k", None, "arn:t")


def test_replica_arns_name_the_table_in_each_region() -> None:
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/ssp-global-district-directory"
    assert replica_arn(arn, "us-west-2") == (
        "arn:aws:dynamodb:us-west-2:123456789012:table/ssp-global-district-directory"
    )


@pytest.mark.parametrize("stack", referenced_stacks())
def test_the_outputs_stack_references_read_are_current(stack_run: StackRunner, stack: str) -> None:
    path = STACK_OUTPUTS / f"{stack}.json"
    assert path.read_text() == outputs_text(stack_run(stack)), (
        f"{path.name} is stale: run `python -m tools.plan --write-snapshots`"
    )


def test_a_region_the_global_stack_does_not_list_is_refused_by_name() -> None:
    # What the regional program applies to the global stack's per-region outputs.
    hosts = {"us-east-1": "arn:east"}
    assert region_entry(hosts, "us-east-1", "global") == "arn:east"
    with pytest.raises(ValueError, match=r"aws:region='eu-west-1': the global stack 'global'"):
        region_entry(hosts, "eu-west-1", "global")
