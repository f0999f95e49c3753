"""What a stack's registered resources grant, as facts ``tools.posture`` compares: one IAM
permission per (effect, principal, action, resource, condition), one security group rule per
peer, one public exposure per endpoint and source range.

Policy documents arrive in every shape the AWS provider accepts: JSON text or an object,
``Action``/``Resource``/``Principal`` as a string or a list, ``NotAction``/``NotResource``.
Each is brought to the same atoms first, so that reformatting a document, reordering its
actions or splitting a statement in two is no change. IAM action names are case-insensitive
(lowercased); ARNs are not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from policies.rules._util import as_list
from policies.rules._util import statements as policy_statements
from tools.harness import Resource

Condition = tuple[tuple[str, str, tuple[str, ...]], ...]
"""A statement's ``Condition`` block as sorted (operator, key, values) triples."""

# Inputs of any AWS resource that hold a whole policy document (a key, bucket, queue, topic,
# repository or secret policy; a role's trust policy; an identity policy's document).
_DOCUMENT_INPUTS = ("policy", "assumeRolePolicy")
_ATTACHMENTS = (
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
)
_ALL_PORTS = (0, 65535)
_PROTOCOLS = {"-1": "all", "all": "all", "6": "tcp", "17": "udp", "1": "icmp"}
_EVERYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class Grant:
    """One IAM permission (or EKS access) of a principal, as a statement grants it."""

    holder: str
    """The URN of the resource whose input carries the statement."""
    scope: str
    """Whom it binds: ``role <name>`` for an identity policy, else the holder's label."""
    sid: str
    effect: str
    principal: str
    """``AWS:<arn>``, ``Service:<name>``, ``Federated:<arn>``, ``*``; empty in an identity
    policy (the role is the principal)."""
    action: str
    resource: str
    condition: Condition = ()

    kind = "IAM"

    @property
    def restricts(self) -> bool:
        """A Deny: adding one narrows, removing one broadens."""
        return self.effect == "Deny"

    def within(self, other: Grant) -> bool:
        """Whether ``other`` already allowed everything this grants."""
        return (
            self.scope == other.scope
            and self.effect == other.effect
            and _principal_within(self.principal, other.principal)
            and _pattern_within(self.action, other.action)
            and _pattern_within(self.resource, other.resource)
            and _condition_within(self.condition, other.condition)
        )

    def describe(self) -> str:
        who = f"{self.principal} " if self.principal else ""
        when = f" when {_condition_text(self.condition)}" if self.condition else ""
        sid = f" ({self.sid})" if self.sid else ""
        return f"{self.scope}{sid}: {self.effect} {who}{self.action} on {self.resource}{when}"


@dataclass(frozen=True)
class Rule:
    """One security group rule: a protocol and port range to or from one peer."""

    holder: str
    scope: str
    """The security group's name."""
    sid: str
    direction: str
    protocol: str
    ports: tuple[int, int]
    peer: str
    """``cidr <network>``, ``sg <name>``, ``prefix-list <id>`` or ``self``."""

    kind = "SG"
    restricts = False

    def within(self, other: Rule) -> bool:
        return (
            self.scope == other.scope
            and self.direction == other.direction
            and other.protocol in ("all", self.protocol)
            and other.ports[0] <= self.ports[0] <= self.ports[1] <= other.ports[1]
            and _peer_within(self.peer, other.peer)
        )

    def describe(self) -> str:
        ports = "all ports" if self.ports == _ALL_PORTS else f"port {_ports(self.ports)}"
        what = "all traffic" if self.protocol == "all" else f"{self.protocol} {ports}"
        way = "from" if self.direction == "ingress" else "to"
        rule = f"{self.direction} {what} {way} {self.peer}"
        return f"sg {self.scope} ({self.sid}): {rule}"


@dataclass(frozen=True)
class Exposure:
    """Something reachable from outside the VPC, and from where."""

    holder: str
    scope: str
    sid: str
    what: str
    peer: str
    """``cidr <network>`` or what it reaches (a CloudFront origin's domain)."""

    kind = "PUBLIC"
    restricts = False

    def within(self, other: Exposure) -> bool:
        return ((self.scope, self.what) == (other.scope, other.what)) and _peer_within(
            self.peer, other.peer
        )

    def describe(self) -> str:
        return f"{self.scope}: {self.what} {self.peer}"


Fact = Grant | Rule | Exposure


# -- comparing patterns -------------------------------------------------------------------------


def _pattern_within(new: str, old: str) -> bool:
    """An IAM action or resource pattern inside another: ``s3:get*`` is inside ``s3:*``."""
    if new.startswith("not ") or old.startswith("not "):
        return new == old
    return fnmatchcase(new, old)


def _principal_within(new: str, old: str) -> bool:
    """Only the same principal, or ``*``, covers a principal. An account's root does not cover
    its roles: naming a role in a resource or trust policy grants it access without the
    identity policy the account's root needs each of its principals to hold."""
    return old in (new, "*")


def _condition_within(new: Condition, old: Condition) -> bool:
    """Every condition the old statement had still holds, as tight or tighter."""
    for operator, key, values in old:
        like = "Like" in operator
        if not any(
            key == k
            and (o == operator or (like and o.replace("Equals", "Like") == operator))
            and all(any(fnmatchcase(v, w) if like else v == w for w in values) for v in vs)
            for o, k, vs in new
        ):
            return False
    return True


def _peer_within(new: str, old: str) -> bool:
    if new == old:
        return True
    if not (new.startswith("cidr ") and old.startswith("cidr ")):
        return False
    inner, outer = (ipaddress.ip_network(p.split(" ", 1)[1], strict=False) for p in (new, old))
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _ports(ports: tuple[int, int]) -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


def _condition_text(condition: Condition) -> str:
    return "; ".join(f"{op} {key} {'|'.join(values)}" for op, key, values in condition)


# -- reading policy documents -------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    return [str(v) for v in as_list(value)]


def _principals(statement: Mapping[str, Any]) -> list[str]:
    for key, prefix in (("Principal", ""), ("NotPrincipal", "not ")):
        value = statement.get(key)
        if value is None:
            continue
        if value == "*" or (isinstance(value, Mapping) and _strings(value.get("AWS")) == ["*"]):
            return [f"{prefix}*"]
        if isinstance(value, Mapping):
            return sorted(f"{prefix}{kind}:{p}" for kind, ps in value.items() for p in _strings(ps))
    return [""]


def _condition(statement: Mapping[str, Any]) -> Condition:
    block = statement.get("Condition")
    if not isinstance(block, Mapping):
        return ()
    return tuple(
        sorted(
            (str(op), str(key).lower(), tuple(sorted(_strings(values))))
            for op, keys in block.items()
            if isinstance(keys, Mapping)
            for key, values in keys.items()
        )
    )


def statements(holder: str, scope: str, value: Any) -> Iterator[Grant]:
    """The atoms of one policy document (JSON text or an object)."""
    for statement in policy_statements(value):
        actions = [a.lower() for a in _strings(statement.get("Action"))]
        actions += [f"not {a.lower()}" for a in _strings(statement.get("NotAction"))]
        resources = _strings(statement.get("Resource"))
        resources += [f"not {r}" for r in _strings(statement.get("NotResource"))]
        condition = _condition(statement)
        for principal in _principals(statement):
            for action in actions:
                for resource in resources or ["*"]:
                    yield Grant(
                        holder,
                        scope,
                        str(statement.get("Sid") or ""),
                        str(statement.get("Effect") or "Allow"),
                        principal,
                        action,
                        resource,
                        condition,
                    )


# -- the facts of one stack ---------------------------------------------------------------------


class _Names:
    """Physical names and ids (what other resources' inputs hold) -> logical names."""

    def __init__(self, resources: Sequence[Resource]):
        self._names: dict[str, str] = {}
        for r in resources:
            for key in (r.id, str(r.inputs.get("name") or "")):
                if key:
                    self._names.setdefault(key, r.name)

    def __call__(self, physical: Any) -> str:
        return self._names.get(str(physical), str(physical))


def _iam(r: Resource, names: _Names) -> Iterator[Grant]:
    label = f"{r.type.rsplit(':', 1)[-1]} {r.name}"
    role = r.inputs.get("role")
    identity_scope = f"role {names(role)}" if role else label
    if r.type == "aws:iam/role:Role":
        yield from statements(r.urn, f"trust of role {r.name}", r.inputs.get("assumeRolePolicy"))
        for inline in r.inputs.get("inlinePolicies") or []:
            yield from statements(r.urn, f"role {r.name}", inline.get("policy"))
        for arn in r.inputs.get("managedPolicyArns") or []:
            yield Grant(r.urn, f"role {r.name}", "", "Allow", "", f"managed policy {arn}", "*")
    elif r.type in _ATTACHMENTS:
        arn = r.inputs.get("policyArn")
        yield Grant(r.urn, identity_scope, "", "Allow", "", f"managed policy {arn}", "*")
    elif r.type.startswith("aws:"):
        for key in _DOCUMENT_INPUTS:
            yield from statements(r.urn, identity_scope, r.inputs.get(key))


def _eks_access(r: Resource, names: _Names) -> Iterator[Grant]:
    cluster = names(r.inputs.get("clusterName"))
    principal = f"AWS:{r.inputs.get('principalArn')}"
    if r.type == "aws:eks/accessEntry:AccessEntry":
        for group in r.inputs.get("kubernetesGroups") or []:
            yield Grant(r.urn, f"eks {cluster}", r.name, "Allow", principal, f"group {group}", "*")
    elif r.type == "aws:eks/accessPolicyAssociation:AccessPolicyAssociation":
        scope = r.inputs.get("accessScope") or {}
        namespaces = scope.get("namespaces") if scope.get("type") == "namespace" else None
        policy = str(r.inputs.get("policyArn")).rsplit("/", 1)[-1]
        for where in [f"namespace {n}" for n in namespaces or []] or ["*"]:
            yield Grant(r.urn, f"eks {cluster}", r.name, "Allow", principal, policy, where)


def _port(value: Any, default: int) -> int:
    return default if value is None else int(float(value))


def _rule(
    r: Resource, sg: str, direction: str, spec: Mapping[str, Any], peers: list[str]
) -> Iterator[Rule]:
    protocol = str(spec.get("protocol") or spec.get("ipProtocol") or "all").lower()
    protocol = _PROTOCOLS.get(protocol, protocol)
    ports = (
        _ALL_PORTS
        if protocol == "all"
        else (_port(spec.get("fromPort"), 0), _port(spec.get("toPort"), 65535))
    )
    for peer in peers:
        yield Rule(r.urn, sg, r.name, direction, protocol, ports, peer)


def _peers(spec: Mapping[str, Any], names: _Names) -> list[str]:
    cidrs = _strings(spec.get("cidrBlocks")) + _strings(spec.get("ipv6CidrBlocks"))
    cidrs += _strings(spec.get("cidrIpv4")) + _strings(spec.get("cidrIpv6"))
    groups = _strings(spec.get("securityGroups")) + _strings(spec.get("sourceSecurityGroupId"))
    groups += _strings(spec.get("referencedSecurityGroupId"))
    lists = _strings(spec.get("prefixListIds")) + _strings(spec.get("prefixListId"))
    return (
        [f"cidr {c}" for c in cidrs]
        + [f"sg {names(g)}" for g in groups]
        + [f"prefix-list {p}" for p in lists]
        + (["self"] if spec.get("self") else [])
    )


def _network(r: Resource, names: _Names) -> Iterator[Rule]:
    inputs = r.inputs
    if r.type in (
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    ):
        for direction in ("ingress", "egress"):
            for spec in inputs.get(direction) or []:
                yield from _rule(r, r.name, direction, spec, _peers(spec, names))
    elif r.type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        sg = names(inputs.get("securityGroupId"))
        yield from _rule(r, sg, str(inputs.get("type")), inputs, _peers(inputs, names))
    elif r.type.startswith("aws:vpc/securityGroup") and r.type.endswith("Rule"):
        sg = names(inputs.get("securityGroupId"))
        direction = "ingress" if "Ingress" in r.type else "egress"
        yield from _rule(r, sg, direction, inputs, _peers(inputs, names))


def _exposure(r: Resource) -> Iterator[Exposure]:
    inputs, here = r.inputs, (r.urn, r.name, r.name)
    if r.type == "aws:eks/cluster:Cluster":
        vpc = inputs.get("vpcConfig") or {}
        # AWS's defaults: a public endpoint, open to 0.0.0.0/0.
        if vpc.get("endpointPublicAccess", True):
            for cidr in vpc.get("publicAccessCidrs") or [_EVERYWHERE]:
                yield Exposure(*here, "public EKS API endpoint from", f"cidr {cidr}")
    elif r.type in ("aws:rds/instance:Instance", "aws:rds/cluster:Cluster"):
        if inputs.get("publiclyAccessible"):
            yield Exposure(*here, "publicly accessible database from", f"cidr {_EVERYWHERE}")
    elif r.type in ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer"):
        if not inputs.get("internal"):  # internet-facing unless internal
            yield Exposure(*here, "internet-facing load balancer from", f"cidr {_EVERYWHERE}")
    elif r.type == "aws:cloudfront/distribution:Distribution":
        for origin in inputs.get("origins") or []:
            yield Exposure(*here, "CloudFront serves origin", str(origin.get("domainName")))
    elif r.type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        for flag in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        ):
            if inputs.get(flag) is not True:
                yield Exposure(*here, "S3 public access allowed:", f"{flag} off")
    elif r.type == "aws:ec2/subnet:Subnet" and inputs.get("mapPublicIpOnLaunch"):
        yield Exposure(*here, "subnet gives instances public IPs", "on launch")


def facts(resources: Sequence[Resource]) -> set[Fact]:
    """Everything the stack's resources grant, expose or admit."""
    names = _Names(resources)
    found: set[Fact] = set()
    for r in resources:
        if not r.custom:
            continue
        found.update(_iam(r, names))
        found.update(_eks_access(r, names))
        found.update(_network(r, names))
        found.update(_exposure(r))
    return found
