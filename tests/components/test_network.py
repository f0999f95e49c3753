"""The VPC: a stable CIDR plan, NAT per tier, isolated data subnets."""

from __future__ import annotations

import ipaddress

import pytest

from components.network import SUBNET_TIERS, UNSUPPORTED_ZONE_IDS, plan_subnets
from tests.shared import (
    LOG_GROUP,
    NAT_GATEWAY,
    ROUTE_TABLE,
    SECURITY_GROUP,
    STACKS,
    SUBNET,
    StackRunner,
)
from tools.harness import run_stack
from tools.mock_account import AVAILABILITY_ZONES, Zone


def test_plan_gives_three_subnet_tiers_per_az_without_overlap() -> None:
    plan = plan_subnets("10.20.0.0/16", 3)
    assert len(plan) == 9
    assert {(s.tier, s.az_index) for s in plan} == {(t, a) for t in SUBNET_TIERS for a in range(3)}
    nets = [ipaddress.ip_network(s.cidr) for s in plan]
    vpc = ipaddress.ip_network("10.20.0.0/16")
    assert all(n.subnet_of(vpc) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def test_private_subnets_are_large_enough_for_pods() -> None:
    private = [s for s in plan_subnets("10.20.0.0/16", 2) if s.tier == "private"]
    assert all(ipaddress.ip_network(s.cidr).num_addresses == 8192 for s in private)


@pytest.mark.parametrize("cidr", ["10.20.0.0/16", "10.40.0.0/17", "172.16.0.0/18"])
def test_adding_an_az_never_renumbers_existing_subnets(cidr: str) -> None:
    for count in range(1, 4):
        before = {(s.tier, s.az_index): s.cidr for s in plan_subnets(cidr, count)}
        after = {(s.tier, s.az_index): s.cidr for s in plan_subnets(cidr, count + 1)}
        assert {k: after[k] for k in before} == before


def test_a_future_subnet_tier_has_room_outside_the_plan() -> None:
    used = [ipaddress.ip_network(s.cidr) for s in plan_subnets("10.20.0.0/16", 4)]
    reserved = ipaddress.ip_network("10.20.192.0/18")  # blocks 6-7 of 8
    assert not any(n.overlaps(reserved) for n in used)


def test_plan_rejects_more_azs_than_it_holds() -> None:
    with pytest.raises(ValueError, match="az_count=5"):
        plan_subnets("10.20.0.0/16", 5)


@pytest.mark.parametrize(
    ("stack", "azs", "nats"), [("dev", 2, 1), ("tier1", 2, 1), ("tier2", 3, 3), ("tier3", 3, 3)]
)
def test_nat_gateways_follow_the_tier(
    stack_run: StackRunner, stack: str, azs: int, nats: int
) -> None:
    run = stack_run(stack)
    assert run.count(SUBNET) == 3 * azs
    assert run.count(NAT_GATEWAY) == nats
    assert len(run.outputs["isolated_subnet_ids"]) == azs


def test_isolated_subnets_have_no_route_out(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    isolated = run.one(ROUTE_TABLE, "network-isolated-rt")
    assert not isolated.inputs.get("routes")
    for i in range(3):
        private = run.one(ROUTE_TABLE, f"network-private-{i}-rt")
        assert private.get("routes.0.natGatewayId", "").startswith(f"network-nat-{i}")


def test_vpc_hygiene(stack_run: StackRunner) -> None:
    run = stack_run("tier1")
    vpc = run.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["enableDnsHostnames"] is True
    default_sg = run.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default_sg.inputs.get("ingress", []) == [] and default_sg.inputs.get("egress", []) == []
    flow_log = run.one("aws:ec2/flowLog:FlowLog")
    assert flow_log.inputs["trafficType"] == "ALL"
    assert run.one(LOG_GROUP, "network-flow-logs").inputs["retentionInDays"] == 30
    endpoint = run.one("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint.inputs["serviceName"] == "com.amazonaws.us-east-1.s3"
    assert len(endpoint.inputs["routeTableIds"]) == 2 + 1
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in run.of_type(SUBNET))


@pytest.mark.parametrize("stack", ["tier1", "tier2", "tier3"])
def test_aws_apis_through_interface_endpoints_from_tier2(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    endpoints = {
        e.get("serviceName").split(".", 3)[-1]: e
        for e in run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        if e.get("vpcEndpointType") == "Interface"
    }
    expected = {
        "tier1": set(),
        "tier2": {"ecr.api", "ecr.dkr", "sts", "logs", "secretsmanager"},
        "tier3": {"ecr.api", "ecr.dkr", "sts", "logs", "secretsmanager", "sagemaker.runtime",
                  "sagemaker.api"},
    }[stack]  # fmt: skip
    assert set(endpoints) == expected
    if not expected:
        return
    private = [s.id for s in run.of_type(SUBNET) if "private" in s.name]
    group = run.one(SECURITY_GROUP, "network-endpoints-sg")
    for endpoint in endpoints.values():
        assert endpoint.get("privateDnsEnabled") is True  # the usual names resolve to it
        assert sorted(endpoint.get("subnetIds")) == sorted(private)  # one interface per AZ
        assert endpoint.get("securityGroupIds") == [group.id]
    (ingress,) = group.get("ingress")
    assert (ingress["fromPort"], ingress["toPort"], ingress["protocol"]) == (443, 443, "tcp")
    assert ingress["cidrBlocks"] == [run.one("aws:ec2/vpc:Vpc").get("cidrBlock")]
    assert group.get("egress") == []


# -- Availability Zones ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_zones_are_asked_for_without_unsupported_ids_or_local_zones(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    queries = [a for token, a in run.invokes if token.endswith(":getAvailabilityZones")]
    assert queries, "the network reads the region's zones"
    for query in queries:
        assert set(query.get("excludeZoneIds") or []) >= set(UNSUPPORTED_ZONE_IDS)
        filters = {f["name"]: f["values"] for f in query.get("filters") or []}
        assert filters == {
            "zone-type": ["availability-zone"],
            "opt-in-status": ["opt-in-not-required"],
        }


def test_an_account_whose_early_zone_name_is_use1_az3_never_places_subnets_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Zone names map to zone IDs per account: in this one us-east-1b is use1-az3, where EKS
    refuses cluster subnets and RDS Proxy does not run."""
    account = [
        Zone("us-east-1a", "use1-az1"),
        Zone("us-east-1b", "use1-az3"),
        Zone("us-east-1c", "use1-az4"),
        Zone("us-east-1d", "use1-az6"),
    ]
    monkeypatch.setitem(AVAILABILITY_ZONES, "us-east-1", account)
    run = run_stack("tier3")
    zones = {s.get("availabilityZone") for s in run.of_type(SUBNET)}
    assert zones == {"us-east-1a", "us-east-1c", "us-east-1d"}


def test_an_opted_in_local_zone_is_never_chosen(stack_run: StackRunner) -> None:
    """us-west-2-lax-1a sorts before us-west-2a: by name alone it would be the first zone."""
    zones = {s.get("availabilityZone") for s in stack_run("tier4-west").of_type(SUBNET)}
    assert zones == {"us-west-2a", "us-west-2b", "us-west-2c"}
