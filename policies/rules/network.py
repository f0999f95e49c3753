"""Security groups: nothing open to the internet but web ports, never a data port to a CIDR.

Ingress is read from the three places it can be declared: inline ``ingress`` blocks of
``aws.ec2.SecurityGroup`` / ``DefaultSecurityGroup``, ``aws.vpc.SecurityGroupIngressRule`` and
``aws.ec2.SecurityGroupRule`` (type ingress). Whether a 80/443 opening sits on a load balancer's
group is a cross-resource question: the ``sg-public-web-only-on-load-balancers`` stack rule
checks it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs

from ._util import as_list, num, rule

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_TYPES = (SECURITY_GROUP, DEFAULT_SECURITY_GROUP, INGRESS_RULE, SG_RULE)
EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
EGRESS_TYPES = (SECURITY_GROUP, DEFAULT_SECURITY_GROUP, EGRESS_RULE, SG_RULE)

WORLD = frozenset({"0.0.0.0/0", "::/0"})
WEB_PORTS = frozenset({80, 443})
DATA_PORTS = {5432: "PostgreSQL", 6379: "Redis"}


@dataclass(frozen=True)
class Ingress:
    """One ingress permission, normalised across the three ways to declare it."""

    protocol: str
    from_port: int
    to_port: int
    cidrs: tuple[str, ...]
    """IPv4/IPv6 CIDRs and prefix lists it admits."""
    groups: tuple[str, ...]
    """Security groups (or ``self``) it admits."""

    @property
    def all_ports(self) -> bool:
        return self.protocol in ("-1", "all") or (self.from_port <= 0 and self.to_port >= 65535)

    def covers(self, port: int) -> bool:
        return self.all_ports or self.from_port <= port <= self.to_port

    @property
    def ports(self) -> str:
        if self.all_ports:
            return "all ports"
        if self.from_port == self.to_port:
            return f"port {self.from_port}"
        return f"ports {self.from_port}-{self.to_port}"

    @property
    def web_only(self) -> bool:
        return (
            not self.all_ports
            and self.protocol in ("tcp", "6")
            and self.from_port == self.to_port
            and self.from_port in WEB_PORTS
        )


def _port(value: Any, default: int) -> int:
    number = num(value)
    return int(number) if number is not None else default


def _strings(*values: Any) -> tuple[str, ...]:
    return tuple(str(v) for value in values for v in as_list(value) if v)


def ingresses(resource_type: str, props: Mapping[str, Any]) -> Iterator[Ingress]:
    """Every ingress permission a security group or rule resource declares."""
    if resource_type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        for block in as_list(props.get("ingress")):
            if not isinstance(block, Mapping):
                continue
            yield Ingress(
                protocol=str(block.get("protocol", "-1")).lower(),
                from_port=_port(block.get("fromPort"), 0),
                to_port=_port(block.get("toPort"), 65535),
                cidrs=_strings(
                    block.get("cidrBlocks"), block.get("ipv6CidrBlocks"), block.get("prefixListIds")
                ),
                groups=_strings(block.get("securityGroups"))
                + (("self",) if block.get("self") else ()),
            )
    elif resource_type == INGRESS_RULE:
        yield Ingress(
            protocol=str(props.get("ipProtocol", "-1")).lower(),
            from_port=_port(props.get("fromPort"), 0),
            to_port=_port(props.get("toPort"), 65535),
            cidrs=_strings(props.get("cidrIpv4"), props.get("cidrIpv6"), props.get("prefixListId")),
            groups=_strings(props.get("referencedSecurityGroupId")),
        )
    elif resource_type == SG_RULE and props.get("type") == "ingress":
        yield Ingress(
            protocol=str(props.get("protocol", "-1")).lower(),
            from_port=_port(props.get("fromPort"), 0),
            to_port=_port(props.get("toPort"), 65535),
            cidrs=_strings(
                props.get("cidrBlocks"), props.get("ipv6CidrBlocks"), props.get("prefixListIds")
            ),
            groups=_strings(props.get("sourceSecurityGroupId"))
            + (("self",) if props.get("self") else ()),
        )


def _no_public_ingress(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for ingress in ingresses(args.resource_type, args.props):
        world = WORLD & set(ingress.cidrs)
        if world and not ingress.web_only:
            report(
                f"Security group ingress '{args.name}' opens {ingress.ports} "
                f"({ingress.protocol}) to {', '.join(sorted(world))}; only TCP 80/443 on a load "
                "balancer's group may be public: reference the source security group instead.",
                None,
            )


def _data_ports(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for ingress in ingresses(args.resource_type, args.props):
        if not ingress.cidrs:
            continue
        for port, what in DATA_PORTS.items():
            if ingress.covers(port):
                report(
                    f"Security group ingress '{args.name}' admits {', '.join(ingress.cidrs)} to "
                    f"{what} ({ingress.ports}); data ports are reachable only from the app's "
                    "security group: use referenced_security_group_id / security_groups.",
                    None,
                )


def egresses(resource_type: str, props: Mapping[str, Any]) -> Iterator[Ingress]:
    """Every egress permission a security group or rule resource declares (the same shape
    as an ingress: ``cidrs`` are where it may go)."""
    if resource_type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        for block in as_list(props.get("egress")):
            if isinstance(block, Mapping):
                yield Ingress(
                    protocol=str(block.get("protocol", "-1")).lower(),
                    from_port=_port(block.get("fromPort"), 0),
                    to_port=_port(block.get("toPort"), 65535),
                    cidrs=_strings(block.get("cidrBlocks"), block.get("ipv6CidrBlocks")),
                    groups=(),
                )
    elif resource_type == EGRESS_RULE:
        yield Ingress(
            protocol=str(props.get("ipProtocol", "-1")).lower(),
            from_port=_port(props.get("fromPort"), 0),
            to_port=_port(props.get("toPort"), 65535),
            cidrs=_strings(props.get("cidrIpv4"), props.get("cidrIpv6")),
            groups=(),
        )
    elif resource_type == SG_RULE and props.get("type") == "egress":
        yield Ingress(
            protocol=str(props.get("protocol", "-1")).lower(),
            from_port=_port(props.get("fromPort"), 0),
            to_port=_port(props.get("toPort"), 65535),
            cidrs=_strings(props.get("cidrBlocks"), props.get("ipv6CidrBlocks")),
            groups=(),
        )


def _egress_restricted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for egress in egresses(args.resource_type, args.props):
        world = WORLD & set(egress.cidrs)
        if world and egress.all_ports:
            report(
                f"Security group egress '{args.name}' lets everything out to "
                f"{', '.join(sorted(world))} ({egress.protocol}, {egress.ports}); allow the "
                "VPC's CIDR and TCP 443 (AWS APIs) only (components.network.app_egress).",
                None,
            )


M = EnforcementLevel.MANDATORY

POLICIES = [
    rule(
        "sg-no-public-ingress",
        "Security groups admit 0.0.0.0/0 and ::/0 on TCP 80/443 only.",
        list(INGRESS_TYPES),
        _no_public_ingress,
        M,
    ),
    rule(
        "sg-data-ports-no-cidr",
        "PostgreSQL (5432) and Redis (6379) ingress references security groups, never CIDRs.",
        list(INGRESS_TYPES),
        _data_ports,
        M,
    ),
    rule(
        "sg-egress-restricted",
        "Security groups never let all traffic out to the internet.",
        list(EGRESS_TYPES),
        _egress_restricted,
        M,
    ),
]
