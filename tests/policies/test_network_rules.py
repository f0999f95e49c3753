"""The security group rules beyond the table of tests/policies/test_rules.py: an ingress or
egress read the same from each of the three ways to declare it, which ports count as web-only
or all, and which CIDRs reach the data ports."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import resource_messages

SG = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
VPC_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
VPC_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
EC2_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
PUBLIC = "sg-no-public-ingress"
DATA = "sg-data-ports-no-cidr"
EGRESS = "sg-egress-restricted"


def _declared(
    kind: str, direction: str, protocol: str | None, ports: tuple[int, int] | None, **to: Any
) -> tuple[str, dict[str, Any]]:
    """One permission as a resource of ``kind`` declares it: ``to`` holds cidr (IPv4),
    cidr6, prefix or group; ``protocol`` or ``ports`` None leaves it to the default."""
    cidr, cidr6, prefix, group = (to.get(k) for k in ("cidr", "cidr6", "prefix", "group"))
    if kind in ("sg", "default"):
        block: dict[str, Any] = {
            "cidrBlocks": [cidr] if cidr else [],
            "ipv6CidrBlocks": [cidr6] if cidr6 else [],
            "prefixListIds": [prefix] if prefix else [],
            "securityGroups": [group] if group else [],
        }
        if protocol is not None:
            block["protocol"] = protocol
        if ports is not None:
            block["fromPort"], block["toPort"] = float(ports[0]), float(ports[1])
        return (SG if kind == "sg" else DEFAULT_SG), {direction: [block]}
    if kind == "vpc":
        props: dict[str, Any] = {
            "cidrIpv4": cidr,
            "cidrIpv6": cidr6,
            "prefixListId": prefix,
            "referencedSecurityGroupId": group,
        }
        protocol_key = "ipProtocol"
        resource_type = VPC_INGRESS if direction == "ingress" else VPC_EGRESS
    else:
        props = {
            "type": direction,
            "cidrBlocks": [cidr] if cidr else None,
            "ipv6CidrBlocks": [cidr6] if cidr6 else None,
            "prefixListIds": [prefix] if prefix else None,
            "sourceSecurityGroupId": group,
        }
        protocol_key = "protocol"
        resource_type = EC2_RULE
    if protocol is not None:
        props[protocol_key] = protocol
    if ports is not None:
        props["fromPort"], props["toPort"] = float(ports[0]), float(ports[1])
    return resource_type, {k: v for k, v in props.items() if v is not None}


KINDS = ["sg", "default", "vpc", "ec2"]


def _messages(rule: str, kind: str, direction: str, *args: Any, **to: Any) -> list[str]:
    resource_type, props = _declared(kind, direction, *args, **to)
    return resource_messages(rule, resource_type, props, resource_name="offender")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("protocol", "ports", "opened"),
    [
        ("tcp", (22, 22), "port 22 (tcp)"),
        ("tcp", (80, 443), "ports 80-443 (tcp)"),
        ("udp", (443, 443), "port 443 (udp)"),
        ("-1", (0, 0), "all ports (-1)"),
        ("all", (443, 443), "all ports (all)"),
        ("tcp", (0, 65535), "all ports (tcp)"),
        ("tcp", None, "all ports (tcp)"),
        (None, (443, 443), "all ports (-1)"),
        ("tcp", (1, 65535), "ports 1-65535 (tcp)"),
        ("tcp", (0, 65534), "ports 0-65534 (tcp)"),
    ],
)
def test_only_tcp_80_or_443_alone_may_be_open_to_the_internet(
    kind: str, protocol: str | None, ports: tuple[int, int] | None, opened: str
) -> None:
    messages = _messages(PUBLIC, kind, "ingress", protocol, ports, cidr="0.0.0.0/0")
    assert messages == [
        f"Security group ingress 'offender' opens {opened} to 0.0.0.0/0; only TCP 80/443 on a "
        "load balancer's group may be public: reference the source security group instead."
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_web_ports_may_be_public_and_other_ports_private(kind: str) -> None:
    for protocol, port in (("tcp", 443), ("tcp", 80), ("6", 443)):
        assert _messages(PUBLIC, kind, "ingress", protocol, (port, port), cidr="0.0.0.0/0") == []
        assert _messages(PUBLIC, kind, "ingress", protocol, (port, port), cidr6="::/0") == []
    assert _messages(PUBLIC, kind, "ingress", "tcp", (22, 22), cidr="10.0.0.0/8") == []
    assert _messages(PUBLIC, kind, "ingress", "tcp", (22, 22), prefix="pl-123") == []
    assert _messages(PUBLIC, kind, "ingress", "-1", (0, 0), group="sg-app") == []
    six = _messages(PUBLIC, kind, "ingress", "tcp", (22, 22), cidr6="::/0")
    assert len(six) == 1 and "opens port 22 (tcp) to ::/0;" in six[0]


def test_an_egress_rule_is_no_ingress_and_an_ingress_rule_no_egress() -> None:
    everything = {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "cidrBlocks": ["0.0.0.0/0"]}
    assert resource_messages(PUBLIC, EC2_RULE, {**everything, "type": "egress"}) == []
    assert resource_messages(DATA, EC2_RULE, {**everything, "type": "egress"}) == []
    assert resource_messages(EGRESS, EC2_RULE, {**everything, "type": "ingress"}) == []
    assert resource_messages(PUBLIC, SG, {"egress": [everything]}) == []
    assert resource_messages(EGRESS, SG, {"ingress": [everything]}) == []
    assert resource_messages(PUBLIC, SG, {"ingress": ["not a block"]}) == []
    assert resource_messages(EGRESS, SG, {"egress": ["not a block"]}) == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("ports", "stores"),
    [
        ((5432, 5432), ["PostgreSQL (port 5432)"]),
        ((6379, 6379), ["Redis (port 6379)"]),
        ((5432, 5433), ["PostgreSQL (ports 5432-5433)"]),
        ((5431, 5432), ["PostgreSQL (ports 5431-5432)"]),
        ((5000, 7000), ["PostgreSQL (ports 5000-7000)", "Redis (ports 5000-7000)"]),
        ((0, 65535), ["PostgreSQL (all ports)", "Redis (all ports)"]),
        ((5433, 6378), []),
        ((5431, 5431), []),
        ((6380, 6380), []),
    ],
)
def test_a_cidr_reaching_a_data_port_is_refused(
    kind: str, ports: tuple[int, int], stores: list[str]
) -> None:
    messages = _messages(DATA, kind, "ingress", "tcp", ports, cidr="10.20.0.0/16")
    assert messages == [
        f"Security group ingress 'offender' admits 10.20.0.0/16 to {store}; data ports are "
        "reachable only from the app's security group: use referenced_security_group_id / "
        "security_groups."
        for store in stores
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_a_data_port_may_admit_a_security_group(kind: str) -> None:
    assert _messages(DATA, kind, "ingress", "tcp", (5432, 5432), group="sg-app") == []
    assert _messages(DATA, kind, "ingress", "tcp", (6379, 6379), prefix="pl-1")
    assert _messages(DATA, kind, "ingress", "tcp", (6379, 6379), cidr6="fd00::/8")


def test_an_inline_self_reference_admits_the_group_itself() -> None:
    block = {"protocol": "tcp", "fromPort": 6379.0, "toPort": 6379.0, "self": True}
    assert resource_messages(DATA, SG, {"ingress": [block]}) == []
    assert resource_messages(PUBLIC, SG, {"ingress": [block]}) == []
    rule = {"type": "ingress", "protocol": "tcp", "fromPort": 5432.0, "toPort": 5432.0}
    assert resource_messages(DATA, EC2_RULE, {**rule, "self": True}) == []


EGRESS_KINDS = ["sg", "default", "vpc", "ec2"]


@pytest.mark.parametrize("kind", EGRESS_KINDS)
@pytest.mark.parametrize(
    ("protocol", "ports", "out"),
    [
        ("-1", (0, 0), "(-1, all ports)"),
        ("tcp", (0, 65535), "(tcp, all ports)"),
        ("tcp", None, "(tcp, all ports)"),
        (None, (443, 443), "(-1, all ports)"),
    ],
)
def test_all_traffic_out_to_the_internet_is_refused(
    kind: str, protocol: str | None, ports: tuple[int, int] | None, out: str
) -> None:
    messages = _messages(EGRESS, kind, "egress", protocol, ports, cidr="0.0.0.0/0")
    assert messages == [
        f"Security group egress 'offender' lets everything out to 0.0.0.0/0 {out}; allow the "
        "VPC's CIDR and TCP 443 (AWS APIs) only (components.network.app_egress)."
    ]
    six = _messages(EGRESS, kind, "egress", protocol, ports, cidr6="::/0")
    assert len(six) == 1 and "lets everything out to ::/0" in six[0]


@pytest.mark.parametrize("kind", EGRESS_KINDS)
def test_https_out_or_everything_within_the_vpc_passes(kind: str) -> None:
    assert _messages(EGRESS, kind, "egress", "tcp", (443, 443), cidr="0.0.0.0/0") == []
    assert _messages(EGRESS, kind, "egress", "tcp", (1, 65535), cidr="0.0.0.0/0") == []
    assert _messages(EGRESS, kind, "egress", "-1", (0, 0), cidr="10.20.0.0/16") == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("end", "opened"), [("toPort", "ports 0-22"), ("fromPort", "ports 22-65535")]
)
def test_a_range_given_by_one_end_runs_from_port_0_or_to_65535(
    kind: str, end: str, opened: str
) -> None:
    resource_type, props = _declared(kind, "ingress", "tcp", None, cidr="0.0.0.0/0")
    permission = props["ingress"][0] if "ingress" in props else props
    permission[end] = 22.0
    (message,) = resource_messages(PUBLIC, resource_type, props)
    assert f"opens {opened} (tcp)" in message


def test_every_block_of_a_group_is_read_past_an_unreadable_or_cidr_less_one() -> None:
    group_only = {"protocol": "tcp", "fromPort": 5432.0, "toPort": 5432.0, "self": True}
    cidr = {**group_only, "self": False, "cidrBlocks": ["0.0.0.0/0"]}
    props = {"ingress": ["not a block", group_only, cidr]}
    assert resource_messages(DATA, SG, props)
    assert resource_messages(PUBLIC, SG, props)
    egress = {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "cidrBlocks": ["0.0.0.0/0"]}
    assert resource_messages(EGRESS, SG, {"egress": ["not a block", egress]})
