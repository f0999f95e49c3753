"""The plan diff's report: dangerous changes first, then every change, the cost change and
the summary; and the command (``python -m tools.plan diff``, see ``tools.diff``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tools.diff.model import Change, StackDiff
from tools.flat import MASK, fmt


@dataclass(frozen=True)
class Section:
    """A report section beyond the changes (a security-posture table): its lines, and
    whether it refuses the diff (exit 1) for what ``allowed`` does not name."""

    lines: list[str]
    blocked: bool = False


SectionMaker = Callable[[StackDiff, frozenset[str]], Section | None]
SECTIONS: list[SectionMaker] = []
"""Extra sections every report shows, after the changes and before the cost: each gets the
stack's diff (its base and head resources too) and the names allowed on purpose."""


# -- the report ---------------------------------------------------------------------------------

_SIGN = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}


def _value(value: Any) -> str:
    return "(none)" if value is None else fmt(value)


def _flags(change: Change) -> list[str]:
    flags = ["protect"] if change.protected else []
    if change.ferpa:
        flags.append("ferpa" if change.holds_data else "ferpa tag (holds no data itself)")
    if change.retained:
        flags.append("retainOnDelete: stays in the account")
    if change.delete_first:
        # Both cannot coexist under one name: the old one goes first.
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
        if p.old == p.new == MASK:
            # Compared by value, shown by neither value nor digest.
            lines.append(f"{indent}    {p.path}: {MASK} changed{why}")
        else:
            lines.append(f"{indent}    {p.path}: {_value(p.old)} -> {_value(p.new)}{why}")
    if change.follows:
        lines.append(f"{indent}    (follows {', '.join(dict.fromkeys(change.follows))})")
    lines += [f"{indent}    => {effect}" for effect in change.effects]
    return lines


def _danger(diff: StackDiff, allow: set[str]) -> tuple[list[str], list[Change]]:
    """The dangerous changes' section, and those of them not allowed."""
    danger = [c for c in diff.changes if c.dangerous]
    blocked = [c for c in danger if c.resource.urn not in allow]
    lines: list[str] = []
    groups = (
        ("protected or FERPA resource(s) replaced or deleted", lambda c: c.guarded),
        ("data tier / load balancer: replaced or deleted", lambda c: c.data_tier),
        ("network, cluster or namespace: replaced or deleted", lambda c: c.identity),
    )
    shown: list[Change] = []
    for title, member in groups:
        group = [c for c in danger if member(c) and c not in shown]
        if group:
            lines += ["", f"!! DANGER: {len(group)} {title}"]
            for c in group:
                lines += _describe(c, "!! ")
            shown += group
    if blocked:
        lines += ["", "!! refused: name each on purpose with --allow-replace <urn>:"]
        lines += [f"!!   {c.resource.urn}" for c in blocked]
    elif danger:
        lines += ["", "(every dangerous change above is allowed with --allow-replace)"]
    return lines, blocked


def render(
    diff: StackDiff,
    base_ref: str,
    allowed: Iterable[str] = (),
    sections: Sequence[SectionMaker] | None = None,
) -> tuple[str, bool]:
    """The text of one stack's diff, and whether it holds a dangerous change (or a section
    refuses something) not allowed."""
    allow = set(allowed)
    lines = [f"# plan diff of stack {diff.stack}: {base_ref} -> working tree"]
    danger_lines, blocked = _danger(diff, allow)
    lines += danger_lines
    for kind in ("replace", "delete", "update", "create"):
        shown = [c for c in diff.of_kind(kind) if not c.dangerous]
        if shown:
            lines.append("")
            for c in sorted(shown, key=lambda c: (c.resource.type, c.resource.name)):
                lines += _describe(c)
    if not diff.changes:
        lines += ["", "no changes"]
    refused = bool(blocked)
    for make in SECTIONS if sections is None else sections:
        section = make(diff, frozenset(allow))
        if section is not None:
            lines += ["", *section.lines]
            refused |= section.blocked
    cost = diff.cost_changes()
    if cost:
        lines += ["", "estimated monthly cost, by item:"]
        lines += [f"    {what}: ${b:,.2f} -> ${a:,.2f}" for what, b, a in cost]
    lines += ["", diff.summary()]
    return "\n".join(lines) + "\n", refused
