"""Security posture of a change: who gains or loses access, in the plan diff of each stack.

A table of the IAM statements added or removed (identity policies, trust policies, key,
bucket, queue and topic policies, managed policy attachments, EKS access entries and
policies), the security group rules added or removed, and public exposure (public EKS
endpoints and their CIDRs, internet-facing load balancers, publicly accessible databases,
CloudFront origins, S3 public access blocks turned off). Facts come from
``tools.posture_facts``; both sides are the resources ``tools.diff`` compares.

A change *broadens* when it adds something no fact of the base already allowed (a new action,
a wildcard action or resource, a new principal or account, a looser condition, a wider CIDR,
a new port, a new public endpoint or origin) or removes a Deny. Broadening fails the diff,
as ``cdk diff --require-approval broadening`` does, unless ``--allow-broadening`` names the
resource's URN or the statement's Sid (the environment variable ``ALLOW_BROADENING`` adds
space-separated ones). Narrowing (a removed grant, an added Deny or condition, a smaller
CIDR) passes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tools.harness import Resource
from tools.posture_facts import Fact, facts

ENV = "ALLOW_BROADENING"


@dataclass(frozen=True)
class Delta:
    sign: str
    """``+`` added, ``-`` removed."""
    fact: Fact
    broadening: bool

    @property
    def names(self) -> set[str]:
        """What ``--allow-broadening`` may name to allow it."""
        return {self.fact.holder, self.fact.sid} - {""}

    def line(self) -> str:
        verdict = "BROADENS" if self.broadening else "narrows "
        return f"  {self.sign} {verdict} {self.fact.kind:6} {self.fact.describe()}"


def _taking_over(base: Sequence[Resource], head: Sequence[Resource]) -> dict[str, str]:
    """Head URN -> the base URN it takes over through an alias (as ``tools.diff`` matches)."""
    old = {r.urn for r in base}
    moved = {}
    for r in head:
        if r.urn not in old:
            taken = sorted(r.previous_urns & old)
            if taken:
                moved[r.urn] = taken[0]
    return moved


def compare(base: Sequence[Resource], head: Sequence[Resource]) -> list[Delta]:
    """Every fact added or removed, and whether it broadens access."""
    moved = _taking_over(base, head)
    before = facts(base)
    after = {dataclasses.replace(f, holder=moved.get(f.holder, f.holder)) for f in facts(head)}
    deltas = []
    for fact in sorted(after - before, key=_order):
        # Adding a Deny restricts; adding an allowance broadens unless the base allowed it.
        covered = fact.restricts or any(
            type(old) is type(fact) and fact.within(old)  # type: ignore[arg-type]
            for old in before
        )
        deltas.append(Delta("+", fact, not covered))
    for fact in sorted(before - after, key=_order):
        deltas.append(Delta("-", fact, fact.restricts))
    return deltas


def _order(fact: Fact) -> tuple[str, str]:
    return fact.kind, fact.describe()


def render(deltas: Sequence[Delta], allowed: Iterable[str] = ()) -> tuple[str, bool]:
    """The posture section of one stack's diff, and whether a broadening is not allowed."""
    if not deltas:
        return "\nsecurity posture: no IAM, security group or public exposure change\n", False
    allow = set(allowed)
    broadening = [d for d in deltas if d.broadening]
    blocked = [d for d in broadening if not d.names & allow]
    lines = [
        "",
        f"security posture: {sum(d.sign == '+' for d in deltas)} added, "
        f"{sum(d.sign == '-' for d in deltas)} removed, {len(broadening)} broadening",
    ]
    lines += [d.line() for d in sorted(deltas, key=lambda d: (not d.broadening, d.sign))]
    if blocked:
        lines += [
            "!! refused: access broadened; name each on purpose with --allow-broadening "
            "<urn or statement Sid>:"
        ]
        for urn in sorted({d.fact.holder for d in blocked}):
            sids = sorted({d.fact.sid for d in blocked if d.fact.holder == urn} - {""})
            lines.append(f"!!   {urn}" + (f"  (Sid {', '.join(sids)})" if sids else ""))
    elif broadening:
        lines.append("(every broadening above is allowed with --allow-broadening)")
    return "\n".join(lines) + "\n", bool(blocked)


def section(
    base: Sequence[Resource] | None, head: Sequence[Resource] | None, allowed: Iterable[str]
) -> tuple[str, bool]:
    """What ``tools.diff`` adds to a stack's report: the table, and whether it refuses."""
    allowance = [*allowed, *os.environ.get(ENV, "").split()]
    text, refused = render(compare(base or [], head or []), allowance)
    if not base and head:
        # A new stack broadens no existing access: everything it grants is listed for review,
        # and naming each of its resources would only be noise.
        return (
            text + "(a new stack: every grant above is new; review them, none is refused)\n",
            False,
        )
    return text, refused


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-broadening",
        action="append",
        default=[],
        metavar="URN_OR_SID",
        help="an access broadening made on purpose: the resource's URN or the statement's "
        f"Sid (repeatable; the environment variable {ENV} adds space-separated ones)",
    )


def allowed(args: Any) -> list[str]:
    return list(getattr(args, "allow_broadening", []) or [])
