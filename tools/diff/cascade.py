"""What a change does to the resources that read it, followed through the dependency graph
the engine records (each input's ``propertyDependencies``), transitively.

The mocks keep ids and computed outputs stable, so both evaluations show a reader's inputs
unchanged; ``pulumi up`` gives a replaced resource new computed outputs (an id, an ARN, an
endpoint, an OIDC issuer, a generated name) and an updated one some (a launch template's
``latestVersion``, a renamed database's endpoint). Every input that reads such an output
changes, and updates or replaces its resource by that resource's own table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tools import provider_diff, replacements
from tools.diff.compare import flat_values, shown
from tools.diff.model import Change, PropertyChange
from tools.flat import MASK, fmt
from tools.harness import Resource

# aws_launch_template's CustomizeDiff (internal/service/ec2/ec2_launch_template.go,
# ``customdiff.ComputedIf("latest_version", ...)``, 025e4f81): a change of anything but these
# makes ``latest_version`` new; a node group reading it rolls every node.
_SAME_VERSION = ("name", "namePrefix", "description", "defaultVersion", "updateDefaultVersion")
UPDATED_OUTPUTS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "aws:ec2/launchTemplate:LaunchTemplate": {"latestVersion": None, "defaultVersion": None},
    # ModifyDBInstance with a new identifier renames the instance: its DNS names change.
    "aws:rds/instance:Instance": {
        "endpoint": ("identifier",),
        "address": ("identifier",),
        "arn": ("identifier",),
    },
}
"""Per type, the outputs an in-place update changes and the inputs whose change does it
(None: any input but ``_SAME_VERSION``)."""
_SHORT = 6
"""Output values shorter than this (a version number, a port) are matched whole, not found
inside a longer input."""


# Outputs a replacement renews beyond the id, the ARN, a generated name and anything embedding
# the id: what the provider assigns a new resource (an API endpoint, an OIDC issuer, a key id,
# a generated password, DNS names).
REPLACED_OUTPUTS: dict[str, tuple[str, ...]] = {
    "aws:eks/cluster:Cluster": (
        "endpoint",
        "identities",
        "certificateAuthority",
        "vpcConfig.clusterSecurityGroupId",
    ),
    "aws:kms/key:Key": ("keyId",),
    "random:index/randomPassword:RandomPassword": ("result",),
    "aws:rds/instance:Instance": ("endpoint", "address", "resourceId", "masterUserSecrets"),
    "aws:elasticache/replicationGroup:ReplicationGroup": (
        "primaryEndpointAddress",
        "readerEndpointAddress",
    ),
    "aws:lb/loadBalancer:LoadBalancer": ("dnsName", "arnSuffix"),
    "aws:lb/targetGroup:TargetGroup": ("arnSuffix",),
    "aws:ec2/vpc:Vpc": ("defaultSecurityGroupId",),
}


def _computed(resource: Resource) -> dict[str, Any]:
    """The outputs a replacement renews (path -> value now). Hand-made resources without
    outputs have their id."""
    if not resource.outputs:
        return {"id": resource.id}
    inputs = flat_values({k: v for k, v in resource.inputs.items() if k != "tagsAll"})
    renewed = ("id", "arn", "name", "metadata.name", *REPLACED_OUTPUTS.get(resource.type, ()))
    return {
        path: value
        for path, value in flat_values(resource.outputs).items()
        if isinstance(value, str)
        and len(value) >= _SHORT
        and inputs.get(path) != value
        and (
            any(replacements.under(replacements.normalized(path), r) for r in renewed)
            or resource.id in value
        )
    }


def changed_outputs(change: Change, old: Resource | None) -> dict[str, Any]:
    """The outputs (path -> value before) that ``change`` gives new values."""
    if change.kind == "replace":
        return _computed(old or change.resource)
    table = UPDATED_OUTPUTS.get(change.resource.type, {})
    changed = {replacements.normalized(p.path) for p in change.properties}
    outputs = flat_values((old or change.resource).outputs)
    found = {}
    for output, inputs in table.items():
        if inputs is None:
            moved = any(not any(replacements.under(c, s) for s in _SAME_VERSION) for c in changed)
        else:
            moved = any(replacements.under(c, i) for c in changed for i in inputs)
        if moved:
            found[output] = outputs.get(output, f"(current {output})")
    return found


def _reads(value: Any, output: Any) -> bool:
    text, wanted = fmt(value), fmt(output)
    return text == wanted or (len(wanted) >= _SHORT and wanted in text)


def reading(reader: Resource, upstream: Resource, moved: dict[str, Any]) -> list[PropertyChange]:
    """The inputs of ``reader`` that change with ``upstream``'s moved outputs."""
    if not moved:
        return []
    keys = [k for k, urns in reader.options.property_dependencies.items() if upstream.urn in urns]
    if not keys and upstream.urn in reader.options.depends_on:
        keys = list(reader.inputs)  # a hand-made graph: the dependency, not the input
    raw = provider_diff.flattened(reader)
    masked = shown(reader, raw)
    rule = replacements.rule(reader.type)
    cluster_keys = rule.active_cluster if rule else ()
    found = []
    for path, value in raw.items():
        top = replacements.normalized(path).split(".")[0]
        if top not in keys or value is None:
            continue
        hit = next((o for o, v in moved.items() if _reads(value, v)), None)
        if hit is None:
            continue
        new = MASK if masked.get(path) == MASK else f"(new {hit} of {upstream.name})"
        old = MASK if masked.get(path) == MASK else value
        why = replacements.forcing(
            reader.type, path, replace_on_changes=reader.options.replace_on_changes
        )
        if not why and top in cluster_keys:
            # A new server or certificate is a new active cluster (``compare.active_cluster``).
            why = "kubernetes replaces when the active cluster (server, certificate) changes"
        found.append(PropertyChange(path, old, new, why))
    return found


def follow(changes: list[Change], base: Sequence[Resource], head: Sequence[Resource]) -> None:
    """Add to ``changes`` (in place) what each change does to its readers, transitively: an
    input reading a new output changes; every object of a replaced provider is replaced."""
    old_by_urn = {r.urn: r for r in base}
    by_urn = {c.resource.urn: c for c in changes if c.kind != "delete"}
    queue = [c for c in changes if c.kind in ("replace", "update")]
    done: set[tuple[str, str]] = set()
    while queue:
        change = queue.pop(0)
        upstream = change.resource
        if (upstream.urn, change.kind) in done:
            continue
        done.add((upstream.urn, change.kind))
        old = old_by_urn.get(change.previous_urn or upstream.urn)
        moved = changed_outputs(change, old)
        for reader in (r for r in head if r.custom and r.urn != upstream.urn):
            props = reading(reader, upstream, moved)
            if change.kind == "replace" and reader.options.provider.startswith(upstream.urn + "::"):
                new = f"(new {upstream.name})"
                props.append(
                    PropertyChange("(provider)", upstream.name, new, "its provider is replaced")
                )
            known = (
                {p.path for p in by_urn[reader.urn].properties} if reader.urn in by_urn else set()
            )
            props = [p for p in props if p.path not in known]
            if not props:
                continue
            target = by_urn.get(reader.urn)
            if target is None:
                target = by_urn[reader.urn] = Change("update", reader)
                changes.append(target)
            target.follows.append(upstream.name)
            target.properties += props
            if target.kind == "update" and any(p.replaces for p in target.properties):
                target.kind = "replace"
            queue.append(target)
