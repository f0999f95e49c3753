"""What moving a stack to the next tier does, for the operator who runs it.

    python -m tools.plan grow tier1 --to tier2      (make grow STACK=tier1 TO=tier2)

For each ``pulumi up`` of the move (two where CloudFront comes in: ``edgePhase: both``, then
``cdn-only``): the keys to set in the stack file, the reviewer's diff of that ``up``
(``tools.diff``, in process) and the monthly cost change; then the steps that need a person
(a reboot or failover window, the DNS cutover, the queue drain) and what happens by itself,
each with the interruption it brings. docs/growth.md is the runbook around it. Exits 1 when
the move is not safe (``tools.growth.problems``), 2 when the program refuses it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from components.config.catalog import TIERS
from components.config.spec_growth import move_problems
from tools.diff import Change, render
from tools.flat import fmt
from tools.growth import CHECKS, Move, Up, evaluate_move, problems, stack_tier
from tools.harness import stacks
from tools.moves import next_tier
from tools.provider_diff import PENDING_REBOOT

DB_INSTANCE = "aws:rds/instance:Instance"
FAILOVER = "one Multi-AZ failover: 60-120 s of refused connections"
RESTART = "an outage of several minutes: the Single-AZ instance restarts"


@dataclass(frozen=True)
class Step:
    when: str
    what: str
    interruption: str
    person: bool = True
    """Needs someone (a window, a check, a cutover); else it happens by itself in the up."""


def _changed(change: Change) -> dict[str, tuple[object, object]]:
    return {p.path: (p.old, p.new) for p in change.properties}


def _database(up: Up, when: str) -> Iterator[Step]:
    for change in up.diff.of_kind("update"):
        r, props = change.resource, _changed(change)
        if r.type != DB_INSTANCE:
            continue
        window = f"the maintenance window ({r.get('maintenanceWindow', 'its own')} UTC)"
        if not r.get("applyImmediately"):
            window += ", or at once with `aws rds modify-db-instance --apply-immediately`"
        multi_az = bool(r.get("multiAz"))
        if props.get("multiAz") == (False, True):
            yield Step(
                f"{when}, in {window}",
                f"{r.name}: converted to Multi-AZ (RDS snapshots it and restores a standby in "
                "another zone)",
                "none; writes are slower while the standby's volumes load from the snapshot",
            )
        if "instanceClass" in props:
            old, new = props["instanceClass"]
            if r.get("replicateSourceDb"):
                interruption = "the replica restarts: minutes without it (its reads go elsewhere)"
            elif props.get("multiAz") == (False, True):
                interruption = (
                    f"{RESTART}, if RDS changes the class before the standby is ready; "
                    "convert to Multi-AZ in an up of its own first (docs/growth.md) and this "
                    "costs one failover"
                )
            else:
                interruption = FAILOVER if multi_az else RESTART
            yield Step(
                f"{when}, in {window}", f"{r.name}: instance class {old} -> {new}", interruption
            )
        if "allocatedStorage" in props:
            old, new = props["allocatedStorage"]
            yield Step(
                f"{when}, in {window}",
                f"{r.name}: storage {fmt(old)} -> {fmt(new)} GiB",
                "none; I/O may be slower while RDS optimizes the storage",
                person=False,
            )


def _parameters(up: Up, when: str) -> Iterator[Step]:
    instances = up.run.of_type(DB_INSTANCE)
    multi_az = any(r.get("multiAz") for r in instances)
    restarts = any(
        "instanceClass" in _changed(c)
        for c in up.diff.of_kind("update")
        if c.resource.type == DB_INSTANCE
    )
    for change in up.diff.changes:
        static = [
            p.path.split("[")[1].split("]")[0]
            for p in change.properties
            if p.note == PENDING_REBOOT
        ]
        if not static:
            continue
        how = (
            "the instance class change's restart applies them (check ParameterApplyStatus "
            "in-sync in `aws rds describe-db-instances` afterwards)"
            if restarts
            else "reboot each instance in a window (`aws rds reboot-db-instance`"
            + (" --force-failover)" if multi_az else ")")
        )
        yield Step(
            f"{when}, then at a reboot",
            f"{change.resource.name}: {', '.join(static)} pending-reboot until each instance "
            f"restarts; {how}",
            FAILOVER if multi_az else RESTART,
        )


def _rolls(up: Up, when: str) -> Iterator[Step]:
    # Sorted: the diff lists changes in registration order, which varies between runs.
    groups = sorted(
        c.resource.name for c in up.diff.of_kind("replace") if c.resource.type.endswith("NodeGroup")
    )
    if groups:
        yield Step(
            when,
            f"node groups {', '.join(groups)} roll: the new groups come up, then EKS drains the "
            "old nodes through the eviction API (PodDisruptionBudgets hold, up to 15 minutes a "
            "node); a training run on a replaced group starts again: do not move during the "
            "nightly pipeline (02:00-02:30 America/New_York)",
            "none for the API and the worker (two or more pods, one evicted at a time)",
            person=False,
        )
    for change in up.diff.of_kind("update"):
        props = _changed(change)
        if change.resource.type.endswith("RouteTable") and any("natGatewayId" in p for p in props):
            yield Step(
                when,
                f"{change.resource.name}: its zone's own NAT gateway takes the private subnets' "
                "outbound traffic",
                "seconds: outbound connections through the old NAT gateway are reset",
                person=False,
            )


def _queue(up: Up, when: str) -> Iterator[Step]:
    for change in up.diff.changes:
        props = _changed(change)
        if props.get("data.QUEUE_BACKEND") == ("postgres", "sqs"):
            yield Step(
                f"after {when}",
                "new events go to SQS while the worker drains the PostgreSQL table queue "
                "(QUEUE_DRAIN_POSTGRES); watch ssp_worker_postgres_drain_remaining fall to 0 "
                "(or `SELECT count(*) FROM event_queue WHERE dead_at IS NULL`) before the next "
                "move (dead letters stay for an operator)",
                "none: every event accepted before and during the rollout is processed once",
            )


def _edge(up: Up, when: str) -> Iterator[Step]:
    phase = up.config.get("edgePhase")
    name = up.run.config.get("student-success:edgeDomainName", "edgeDomainName")
    if phase == "both":
        yield Step(
            f"after {when}",
            f"the DNS cutover: point the clients at https://{name} (apps, district links, the "
            "district's own CNAME), and watch the load balancer's direct requests fall to none "
            "before the next up",
            "none: both ways in are open, each behind a WAF",
        )
    elif phase == "cdn-only":
        yield Step(
            when,
            "the load balancer admits CloudFront alone; its own WAF goes (its logs and key stay "
            "in the account until their retention has passed: delete them then)",
            "clients still using the load balancer's name get 403",
        )
    for change in up.diff.of_kind("replace"):
        if change.resource.type.endswith("EndpointConfiguration"):
            yield Step(
                f"after {when}",
                "the SageMaker endpoint moves to the new instance type and count at its next "
                "rollout (the nightly training's, or `python -m app rollout-sagemaker`)",
                "none: blue/green with a canary and the rollback alarms",
            )


def steps(move: Move) -> list[Step]:
    """Everything the move does that an operator should know of, in order."""
    found: list[Step] = []
    for n, up in enumerate(move.ups, 1):
        when = f"up {n}"
        for part in (_database, _parameters, _rolls, _queue, _edge):
            found += part(up, when)
    return found


def report(move: Move) -> tuple[str, bool]:
    """The move as text, and whether it is safe."""
    lines = [f"# grow {move.stack}: {move.source} -> {move.target}, {len(move.ups)} up(s)"]
    safe = True
    for n, up in enumerate(move.ups, 1):
        keys = ", ".join(f"{k}: {v}" for k, v in up.config.items())
        lines += ["", f"## up {n} of {len(move.ups)}: set {keys} in Pulumi.{move.stack}.yaml"]
        was = move.source if n == 1 else f"up {n - 1}"
        phase = f" (edgePhase: {up.config['edgePhase']})" if "edgePhase" in up.config else ""
        text, _ = render(up.diff, f"{move.stack} at {was}")
        text = text.replace(" -> working tree", f" -> {move.target}{phase}", 1)
        lines += ["", text.rstrip()]
        found = problems(up)
        safe &= not found
        lines += [f"!! not safe: {p}" for p in found]
    checked = [f"{name}: {p}" for name, check in CHECKS.items() for p in check(move)]
    safe &= not checked
    lines += [f"!! not safe: {p}" for p in checked]
    lines += ["", "## needs a person"]
    everything = steps(move)
    lines += [
        f"- [{s.when}] {s.what}\n    interruption: {s.interruption}" for s in everything if s.person
    ]
    lines += ["", "## happens by itself"]
    lines += [
        f"- [{s.when}] {s.what}\n    interruption: {s.interruption}"
        for s in everything
        if not s.person
    ]
    first, last = move.ups[0].diff, move.ups[-1].diff
    delta = round(last.cost_after - first.cost_before)
    lines += [
        "",
        f"cost: ${first.cost_before:,.0f} -> ${last.cost_after:,.0f}/month "
        f"({'-' if delta < 0 else '+'}${abs(delta):,}); runbook: docs/growth.md",
    ]
    return "\n".join(lines) + "\n", safe


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.plan grow",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("stack", help=f"one of {', '.join(stacks())}")
    parser.add_argument("--to", help="the tier to move to (default: the next one)")
    args = parser.parse_args(argv)
    if args.stack not in stacks():
        parser.error(f"name a stack: {', '.join(stacks())}")
    current = stack_tier(args.stack)
    target = args.to or next_tier(current)
    if target not in TIERS or target == current:
        parser.error(f"{args.stack} runs {current}; name a tier above it: {', '.join(TIERS)}")
    # The program's own check, as its next up would run it: down, or more than one step.
    refused = move_problems({"tier": current}, TIERS[target], "both")
    if refused:
        print(f"grow {args.stack} ({current} -> {target}): " + "; ".join(refused), file=sys.stderr)
        return 2
    move = evaluate_move(args.stack, target)
    text, safe = report(move)
    sys.stdout.write(text)
    return 0 if safe else 1


if __name__ == "__main__":
    sys.exit(main())
