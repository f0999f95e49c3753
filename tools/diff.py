"""Offline plan diff: what a change of the program does to each stack, in the words of
``pulumi preview --diff``: create, update, replace or delete, property by property.

    python -m tools.plan diff origin/main tier3
    python -m tools.plan diff origin/main --all
    python -m tools.plan diff HEAD~1 --all --allow-replace <urn> --markdown

Both sides are evaluated under the same mocks by today's harness: the working tree as it is,
the base ref from ``git archive`` (``tools.revision`` says why today's harness).

Matching follows the engine: a resource takes over the base resource whose URN it answers
to (its own, or one its aliases or its ancestors' aliases name), so a move with an alias is
no change. A changed input is a replacement when the provider's table
(``tools/replacements``) or the resource's ``replaceOnChanges`` says so, else an update;
``ignoreChanges`` paths are not changes, nor is what the providers themselves keep
(``tools.provider_diff``: an Optional+Computed input the program stops setting, a parameter's
``applyMethod`` alone). Secret values are compared but never printed.

Dangerous changes are listed first: replacing or deleting a protected resource or a data
store tagged ``data-classification = ferpa``, and any replacement or deletion on the data
tier (RDS, ElastiCache, S3 buckets, KMS keys) or of the load balancer. A deletion that
``retainOnDelete`` keeps in the account loses nothing. The command exits 1 on such a change
unless ``--allow-replace <urn>`` names it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools import posture, provider_diff, replacements
from tools.flat import MASK, fmt
from tools.harness import Resource
from tools.revision import Evaluation, evaluate

DATA_TIER = (
    "aws:rds/",
    "aws:elasticache/replicationGroup:",
    "aws:elasticache/cluster:",
    "aws:s3/bucket:Bucket",
    "aws:kms/key:Key",
    "aws:lb/loadBalancer:",
)
"""Type prefixes whose replacement or deletion loses data or cuts traffic."""
_NOT_DATA = ("aws:rds/parameterGroup:", "aws:rds/subnetGroup:", "aws:rds/proxyTarget:")
HOLDS_DATA = (
    "aws:rds/instance:",
    "aws:rds/cluster:",
    "aws:s3/bucket:",
    "aws:s3/bucketV2:",
    "aws:kms/key:",
    "aws:elasticache/replicationGroup:",
    "aws:elasticache/cluster:",
    "aws:sqs/queue:",
    "aws:dynamodb/table:",
    "aws:ecr/repository:",
    "aws:cloudwatch/logGroup:",
    "aws:secretsmanager/secret:",
    "aws:secretsmanager/secretVersion:",
)
"""Types that hold data of their own: a ``ferpa`` tag makes their replacement or deletion
dangerous. On other types (a parameter group, a SageMaker model) the tag classifies what they
touch, and replacing them loses nothing."""


@dataclass(frozen=True)
class PropertyChange:
    path: str
    old: Any
    new: Any
    replaces: str | None = None
    """Why this change forces a replacement (the table's rule or the option), or None."""
    may_replace: str | None = None
    """The case in which the provider replaces on this change (see ``replace_if``)."""
    note: str | None = None
    """What the change means for an operator (a static parameter's pending reboot)."""


@dataclass
class Change:
    kind: str
    """``create``, ``update``, ``replace`` or ``delete``."""
    resource: Resource
    """The head resource (the base one for a deletion)."""
    properties: list[PropertyChange] = field(default_factory=list)
    previous_urn: str = ""
    """The base URN it takes over, when that differs from its own (an alias)."""
    follows: list[str] = field(default_factory=list)
    """Replaced resources whose new id or name this one reads: the change the mocks cannot
    show (they keep ids stable) but ``pulumi up`` makes."""

    @property
    def protected(self) -> bool:
        return self.resource.options.protect

    @property
    def ferpa(self) -> bool:
        tags = self.resource.inputs.get("tags")
        return isinstance(tags, dict) and tags.get("data-classification") == "ferpa"

    @property
    def data_tier(self) -> bool:
        type_ = self.resource.type
        return type_.startswith(DATA_TIER) and not type_.startswith(_NOT_DATA)

    @property
    def holds_data(self) -> bool:
        return self.resource.type.startswith(HOLDS_DATA)

    @property
    def retained(self) -> bool:
        """A deletion that leaves the resource in the account (``retainOnDelete``)."""
        return self.kind == "delete" and self.resource.options.retain_on_delete

    @property
    def dangerous(self) -> bool:
        destructive = self.kind == "replace" or (self.kind == "delete" and not self.retained)
        return destructive and (
            self.protected or (self.ferpa and self.holds_data) or self.data_tier
        )


@dataclass
class StackDiff:
    stack: str
    changes: list[Change]
    cost_before: float
    cost_after: float
    cost_items_before: dict[str, float] = field(default_factory=dict)
    cost_items_after: dict[str, float] = field(default_factory=dict)
    """Monthly cost per line item (``tools.costs``), summed by what it is."""

    def cost_changes(self) -> list[tuple[str, float, float]]:
        """(item, before, after) for every cost line item that changes."""
        before, after = self.cost_items_before, self.cost_items_after
        items = sorted(set(before) | set(after))
        changed = [(i, before.get(i, 0.0), after.get(i, 0.0)) for i in items]
        return [(i, b, a) for i, b, a in changed if round(b, 2) != round(a, 2)]

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def summary(self) -> str:
        counts = [f"{len(self.of_kind(k))} to {k}" for k in ("create", "update", "replace")]
        counts.append(f"{len(self.of_kind('delete'))} to delete")
        delta = round(self.cost_after - self.cost_before)
        return (
            f"{self.stack}: {', '.join(counts)}; estimated cost ${self.cost_before:,.0f} -> "
            f"${self.cost_after:,.0f}/month ({'-' if delta < 0 else '+'}${abs(delta):,})"
        )


# -- comparing two evaluations --------------------------------------------------------------


def _shown(resource: Resource, flat: dict[str, str]) -> dict[str, str]:
    """``flat`` (the inputs as ``provider_diff.flattened`` gives them) with secrets masked."""
    shown = dict(flat)
    for secret in resource.secret_paths:
        dotted = secret.split(".")
        for path in list(shown):
            if _dotted(path)[: len(dotted)] == dotted:
                shown[path] = MASK
    return shown


def _dotted(path: str) -> list[str]:
    return path.replace("[", ".").replace("]", "").split(".")


def property_changes(
    old: Resource, new: Resource, *, mutable: bool = False
) -> list[PropertyChange]:
    """Every input that differs between the base and head resource, with whether it forces
    a replacement."""
    # A masked leaf changes when its own value does, not the whole secret holding it (a
    # Secret's ``stringData`` gaining a key leaves its other keys as they were).
    raw_before, raw_after = provider_diff.flattened(old), provider_diff.flattened(new)
    before, after = _shown(old, raw_before), _shown(new, raw_after)
    ignored = [replacements.normalized(p) for p in new.options.ignore_changes]
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


def diff_resources(base: Sequence[Resource], head: Sequence[Resource]) -> list[Change]:
    """The changes that take the base stack's custom resources to the head's."""
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
    return _knock_on(changes, head)


def _knock_on(changes: list[Change], head: Sequence[Resource]) -> list[Change]:
    """Add what a replacement does to its readers: every input holding the replaced
    resource's id (or an ARN or name built from it) changes, and may replace them in turn;
    every resource of a replaced provider is replaced with it."""
    by_urn = {c.resource.urn: c for c in changes if c.kind != "delete"}
    queue = [c for c in changes if c.kind == "replace"]
    while queue:
        replaced = queue.pop().resource
        for reader in head:
            props = _reading(reader, replaced) if reader.custom else []
            if not props:
                continue
            change = by_urn.get(reader.urn)
            if change is None:
                change = by_urn[reader.urn] = Change("update", reader)
                changes.append(change)
            change.follows.append(replaced.name)
            known = {p.path for p in change.properties}
            change.properties += [p for p in props if p.path not in known]
            if change.kind == "update" and any(p.replaces for p in change.properties):
                change.kind = "replace"
                queue.append(change)
    return changes


def _reading(reader: Resource, replaced: Resource) -> list[PropertyChange]:
    """The inputs of ``reader`` that change when ``replaced`` gets a new id."""
    if reader.options.provider.rsplit("::", 1)[0] == replaced.urn:
        new = f"(new {replaced.name})"
        return [PropertyChange("(provider)", replaced.name, new, "its provider is replaced")]
    if replaced.urn not in reader.options.depends_on:
        return []
    new = f"(new id of {replaced.name})"
    return [
        PropertyChange(
            path,
            replaced.id,
            new,
            replacements.forcing(
                reader.type, path, replace_on_changes=reader.options.replace_on_changes
            ),
        )
        for path, value in _shown(reader, provider_diff.flattened(reader)).items()
        if isinstance(value, str) and replaced.id in value
    ]


def diff_stacks(
    base: dict[str, Evaluation], head: dict[str, Evaluation], stacks: Sequence[str]
) -> list[StackDiff]:
    empty = Evaluation([], 0.0)
    diffs = []
    for stack in stacks:
        old, new = base.get(stack, empty), head.get(stack, empty)
        changes = diff_resources(old.resources, new.resources)
        diffs.append(
            StackDiff(
                stack,
                changes,
                old.monthly_cost,
                new.monthly_cost,
                old.cost_items,
                new.cost_items,
            )
        )
    return diffs


# -- the report ---------------------------------------------------------------------------------

_SIGN = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}


def _value(value: Any) -> str:
    return "(none)" if value is None else fmt(value)


def _flags(change: Change) -> list[str]:
    r = change.resource
    flags = ["protect"] if change.protected else []
    if change.ferpa:
        flags.append("ferpa")
    if change.retained:
        flags.append("retainOnDelete: stays in the account")
    if change.kind == "replace" and (
        r.options.delete_before_replace
        or (r.type.startswith("kubernetes:") and r.get("metadata.name"))
    ):
        # Both objects cannot coexist under one name: the old one goes first.
        flags.append("deleteBeforeReplace: gone until recreated")
    return flags


def _describe(change: Change, indent: str = "") -> list[str]:
    r = change.resource
    flags = _flags(change)
    head = f"{indent}{_SIGN[change.kind]} {change.kind} {r.type} {r.name}"
    lines = [head + (f"  [{'; '.join(flags)}]" if flags else "")]
    if change.previous_urn:
        lines.append(f"{indent}    (was {change.previous_urn}, through an alias)")
    for p in change.properties:
        why = f"  <- forces replacement ({p.replaces})" if p.replaces else ""
        if p.may_replace:
            why = f"  <- replaces on {p.may_replace}"
        if p.note:
            why += f"  <- {p.note}"
        lines.append(f"{indent}    {p.path}: {_value(p.old)} -> {_value(p.new)}{why}")
    if change.follows:
        lines.append(f"{indent}    (follows the replacement of {', '.join(change.follows)})")
    return lines


def render(diff: StackDiff, base_ref: str, allowed: Iterable[str] = ()) -> tuple[str, bool]:
    """The text of one stack's diff, and whether it holds a dangerous change not allowed."""
    allow = set(allowed)
    lines = [f"# plan diff of stack {diff.stack}: {base_ref} -> working tree"]
    danger = [c for c in diff.changes if c.dangerous]
    blocked = [c for c in danger if c.resource.urn not in allow]
    guarded = [c for c in danger if c.protected or c.ferpa]
    if guarded:
        lines += [
            "",
            f"!! DANGER: {len(guarded)} protected or FERPA resource(s) replaced or deleted",
        ]
        for c in guarded:
            lines += _describe(c, "!! ")
    data = [c for c in danger if c.data_tier and c not in guarded]
    if data:
        lines += ["", f"!! data tier / load balancer: {len(data)} replaced or deleted"]
        for c in data:
            lines += _describe(c, "!! ")
    if blocked:
        lines += ["", "!! refused: name each on purpose with --allow-replace <urn>:"]
        lines += [f"!!   {c.resource.urn}" for c in blocked]
    elif danger:
        lines += ["", "(every dangerous change above is allowed with --allow-replace)"]
    for kind in ("replace", "delete", "update", "create"):
        shown = [c for c in diff.of_kind(kind) if c not in danger]
        if shown:
            lines.append("")
            for c in sorted(shown, key=lambda c: (c.resource.type, c.resource.name)):
                lines += _describe(c)
    if not diff.changes:
        lines += ["", "no changes"]
    cost = diff.cost_changes()
    if cost:
        lines += ["", "estimated monthly cost, by item:"]
        lines += [f"    {what}: ${b:,.2f} -> ${a:,.2f}" for what, b, a in cost]
    lines += ["", diff.summary()]
    return "\n".join(lines) + "\n", bool(blocked)


def main(argv: Sequence[str] | None = None) -> int:
    from tools.harness import stacks as all_stacks

    parser = argparse.ArgumentParser(
        prog="python -m tools.plan diff",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("base", help="the git ref to compare with (origin/main, HEAD~1)")
    parser.add_argument("stack", nargs="?", help=f"one of {', '.join(all_stacks())}")
    parser.add_argument("--all", action="store_true", help="every stack")
    parser.add_argument(
        "--allow-replace",
        action="append",
        default=[],
        metavar="URN",
        help="a dangerous replacement or deletion made on purpose (repeatable; the environment "
        "variable ALLOW_REPLACE adds space-separated URNs)",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="wrap each stack's diff for a PR comment"
    )
    posture.add_arguments(parser)  # --allow-broadening (tools/posture.py)
    args = parser.parse_args(argv)
    if args.all == bool(args.stack) or (args.stack and args.stack not in all_stacks()):
        parser.error(f"name a stack or --all: {', '.join(all_stacks())}")
    stacks = all_stacks() if args.all else [args.stack]
    try:
        base, head = evaluate(args.base, stacks)
    except (ValueError, RuntimeError) as exc:
        print(f"plan diff: {exc}", file=sys.stderr)
        return 2
    allowed = [*args.allow_replace, *os.environ.get("ALLOW_REPLACE", "").split()]
    refused = False
    for diff in diff_stacks(base, head, stacks):
        text, blocked = render(diff, args.base, allowed)
        refused |= blocked
        # Security posture: who gains or loses access (tools/posture.py).
        access, broadened = posture.section(
            base.get(diff.stack, Evaluation([], 0.0)).resources,
            head.get(diff.stack, Evaluation([], 0.0)).resources,
            posture.allowed(args),
        )
        text += access
        refused |= broadened
        if args.markdown:
            text = f"### Offline plan diff: `{diff.stack}`\n\n```diff\n{text}```\n"
        sys.stdout.write(text + ("\n" if args.all else ""))
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
