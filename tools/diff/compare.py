"""Comparing the base and head evaluations resource by resource, the way the engine and each
provider's Diff do: which inputs changed, and whether a change forces a replacement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from tools import provider_diff, replacements
from tools.diff.model import Change, PropertyChange
from tools.flat import MASK, leaves
from tools.harness import Resource

STACK_REFERENCE = "pulumi:pulumi:StackReference"


def shown(resource: Resource, flat: dict[str, Any]) -> dict[str, Any]:
    """``flat`` (the inputs as ``provider_diff.flattened`` gives them) with secrets masked."""
    masked = dict(flat)
    for secret in resource.secret_paths:
        dotted = secret.split(".")
        for path in list(masked):
            if _dotted(path)[: len(dotted)] == dotted:
                masked[path] = MASK
    return masked


def _dotted(path: str) -> list[str]:
    return path.replace("[", ".").replace("]", "").split(".")


def with_defaults(type_: str, flat: dict[str, Any]) -> dict[str, Any]:
    """``flat`` with every absent input the schema defaults filled in with its default: the
    provider reads it so (terraform-plugin-sdk v2.39.0 ``helper/schema/field_reader_config.go``
    ``readPrimitive``: "Nothing in config, but we might still have a default from the schema";
    the state holds the defaulted value), so spelling a default out is no change."""
    found = replacements.rule(type_)
    filled = dict(flat)
    for path, value in found.defaults if found else ():
        if not any(replacements.under(replacements.normalized(p), path) for p in flat):
            filled[path] = value
    return filled


def active_cluster(provider: Resource) -> Any:
    """The cluster entry a Kubernetes provider talks to: its kubeconfig's current context (or
    the ``context`` input), that context's cluster (or the ``cluster`` input), as
    pulumi-kubernetes ``provider/pkg/provider/util.go::getActiveClusterFromConfig`` picks it.
    The user entry (credentials, exec env) is no part of it. None: unreadable."""
    try:
        config = yaml.safe_load(str(provider.inputs.get("kubeconfig") or ""))
        contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
        clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
        context = contexts[provider.inputs.get("context") or config["current-context"]]
        return clusters[provider.inputs.get("cluster") or context["cluster"]]
    except (yaml.YAMLError, AttributeError, KeyError, TypeError):
        return None


def _provider_replaced(old: Resource, new: Resource) -> str | None:
    """Why pulumi-kubernetes replaces its provider (``DiffConfig``, provider/pkg/provider/
    provider.go, v4.32.0): a changed ``clusterIdentifier`` replaces it and a kept one rules a
    replacement out; otherwise a changed active cluster entry (server, certificate authority)
    does. A new exec env var or user does not: the provider is updated, its objects kept."""
    was, now = old.inputs.get("clusterIdentifier"), new.inputs.get("clusterIdentifier")
    if was and now:
        return "kubernetes replaces on clusterIdentifier" if was != now else None
    before, after = active_cluster(old), active_cluster(new)
    if before is None or after is None or before != after:
        return "kubernetes replaces when the active cluster (server, certificate) changes"
    return None


def property_changes(
    old: Resource, new: Resource, *, mutable: bool = False
) -> list[PropertyChange]:
    """Every input that differs between the base and head resource, with whether it forces
    a replacement."""
    # A masked leaf changes when its own value does, not the whole secret holding it (a
    # Secret's ``stringData`` gaining a key leaves its other keys as they were).
    raw_before = with_defaults(old.type, provider_diff.flattened(old))
    raw_after = with_defaults(new.type, provider_diff.flattened(new))
    before, after = shown(old, raw_before), shown(new, raw_after)
    ignored = [replacements.normalized(p) for p in new.options.ignore_changes]
    rule = replacements.rule(new.type)
    cluster_paths = rule.active_cluster if rule else ()
    changes = []
    for path in sorted(set(before) | set(after)):
        was, now = before.get(path), after.get(path)
        if was == now and not (was == MASK and raw_before.get(path) != raw_after.get(path)):
            continue
        if any(replacements.under(replacements.normalized(path), p) for p in ignored):
            continue
        if provider_diff.kept_from_state(old, new, path) or provider_diff.suppressed(
            new.type, path, before, after
        ):
            continue
        why = replacements.forcing(
            new.type, path, replace_on_changes=new.options.replace_on_changes, mutable=mutable
        )
        if not why and any(replacements.under(_dotted(path)[0], p) for p in cluster_paths):
            why = _provider_replaced(old, new)
        maybe = None if why else replacements.condition(new.type, path)
        note = provider_diff.note(new.type, path, after)
        changes.append(PropertyChange(path, was, now, why, maybe, note))
    return changes


def _mutable(resource: Resource, providers: dict[str, Resource]) -> bool:
    """Whether pulumi-kubernetes updates this object's data in place: its provider enables
    mutable Secrets/ConfigMaps and the object is not ``immutable``."""
    rule = replacements.rule(resource.type)
    if rule is None or not rule.mutable_option or resource.inputs.get("immutable"):
        return False
    provider = providers.get(resource.options.provider.rsplit("::", 1)[0])
    return provider is not None and str(provider.inputs.get(rule.mutable_option)).lower() == "true"


def check_covered(resources: Sequence[Resource]) -> None:
    """Raise ``UnknownTypeError`` for the first custom resource no replacement table covers."""
    for r in resources:
        # A stack reference reads another stack's outputs: nothing to replace.
        if r.custom and r.type != STACK_REFERENCE and replacements.rule(r.type) is None:
            raise replacements.UnknownTypeError(r.type, r.name)


def direct_changes(base: Sequence[Resource], head: Sequence[Resource]) -> list[Change]:
    """The changes of the base stack's custom resources to the head's, input by input, before
    any cascade (``tools.diff.cascade``)."""
    check_covered([*base, *head])
    by_urn = {r.urn: r for r in base if r.custom}
    providers = {r.urn: r for r in head if r.type.startswith("pulumi:providers:")}
    taken: set[str] = set()
    changes = []
    for new in (r for r in head if r.custom):
        candidates = sorted(u for u in new.previous_urns | {new.urn} if u in by_urn)
        urn = new.urn if new.urn in by_urn else next(iter(candidates), "")
        if not urn or urn in taken:
            changes.append(Change("create", new))
            continue
        taken.add(urn)
        old = by_urn[urn]
        props = property_changes(old, new, mutable=_mutable(new, providers))
        if old.options.provider.rsplit("::", 1)[0] != new.options.provider.rsplit("::", 1)[0]:
            props.append(
                PropertyChange("(provider)", old.provider_name, new.provider_name, "provider")
            )
        if props:
            kind = "replace" if any(p.replaces for p in props) else "update"
            changes.append(Change(kind, new, props, urn if urn != new.urn else ""))
    changes += [Change("delete", old) for urn, old in by_urn.items() if urn not in taken]
    return changes


def flat_values(value: Any) -> dict[str, Any]:
    """``value`` as ``path -> leaf`` (JSON text unfolded)."""
    return dict(leaves(value))
