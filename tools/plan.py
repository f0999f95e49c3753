"""Offline plan: what a stack would create, as a stable, reviewable text (or JSON).

    python -m tools.plan tier3            # tree, properties, outputs, cost, timing
    python -m tools.plan tier3 --json     # the same as JSON
    python -m tools.plan --all            # every stack, summary and cost only
    python -m tools.plan --write-snapshots
    python -m tools.plan --write-urns     # after a deliberate removal or un-aliased rename
    python -m tools.plan diff origin/main tier3   # what a change does: see tools/diff/command.py
    python -m tools.plan grow tier1 --to tier2    # a move to the next tier: see tools/grow.py

The text is the resource tree (components, then their children), each resource with
its inputs flattened to one ``path = value`` line each, in a stable order; secret inputs
are masked. Snapshots of every stack live in ``snapshots/<stack>.txt``: a pull request
shows every infrastructure change as a text diff, no cloud needed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from typing import Any

from tools import costs, diff
from tools.flat import MASK, fmt, leaves, masked
from tools.harness import ROOT, Resource, StackRun, referenced_stacks, run_stack, stacks
from tools.mock_account import STACK_OUTPUTS

SNAPSHOTS = ROOT / "snapshots"
DEPLOYED_URNS = ROOT / "tests" / "fixtures" / "deployed_urns"
_STANDARD_TAGS = ("project", "stack", "tier", "owner", "managed-by")


def shown_inputs(resource: Resource) -> dict[str, Any]:
    """Inputs as the plan shows them: secrets masked, the tags every resource carries
    reduced to the ones that say something about this resource."""
    inputs = masked(resource.inputs, resource.secret_paths)
    inputs.pop("tagsAll", None)
    tags = inputs.get("tags")
    if isinstance(tags, dict):
        inputs["tags"] = {k: v for k, v in tags.items() if k not in _STANDARD_TAGS}
        if not inputs["tags"]:
            del inputs["tags"]
    return inputs


def _options(resource: Resource) -> list[str]:
    o = resource.options
    shown = []
    if o.protect:
        shown.append("protect")
    if o.retain_on_delete:
        shown.append("retainOnDelete")
    if o.delete_before_replace:
        shown.append("deleteBeforeReplace")
    if o.ignore_changes:
        shown.append(f"ignoreChanges={','.join(sorted(o.ignore_changes))}")
    if o.replace_on_changes:
        shown.append(f"replaceOnChanges={','.join(sorted(o.replace_on_changes))}")
    if o.aliases:
        shown.append(f"aliases={','.join(sorted(set(o.aliases)))}")
    if resource.provider_name:
        shown.append(f"provider={resource.provider_name}")
    return shown


def _tree(run: StackRun) -> dict[str, list[Resource]]:
    children: dict[str, list[Resource]] = defaultdict(list)
    urns = {r.urn for r in run.resources}
    for r in run.resources:
        children[r.parent if r.parent in urns else ""].append(r)
    for kids in children.values():
        kids.sort(key=lambda r: (r.name, r.type))
    return children


def render_text(run: StackRun, *, elapsed: float | None = None) -> str:
    tier = run.outputs.get("tier", "?")
    region = run.config.get("aws:region", "?")
    lines = [f"# stack {run.stack}: tier {tier}, region {region}, {len(run.resources)} resources"]
    if elapsed is not None:
        lines.append(f"# evaluated under mocks in {elapsed:.2f} s")
    lines.append("")
    children = _tree(run)

    def walk(parent: str, depth: int) -> None:
        for r in children.get(parent, []):
            indent = "  " * depth
            opts = _options(r)
            lines.append(f"{indent}{r.type} {r.name}" + (f"  [{'; '.join(opts)}]" if opts else ""))
            if r.custom:
                for path, value in leaves(shown_inputs(r)):
                    lines.append(f"{indent}    {path} = {fmt(value)}")
            walk(r.urn, depth + 1)

    walk("", 0)
    lines += ["", "## outputs"]
    masked_outputs = {k: MASK if k in run.secret_outputs else v for k, v in run.outputs.items()}
    for path, value in leaves(masked_outputs):
        lines.append(f"    {path} = {fmt(value)}")
    lines += ["", *render_cost(run)]
    return "\n".join(lines) + "\n"


def render_cost(run: StackRun) -> list[str]:
    items = costs.estimate(run.resources)
    grouped: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        grouped[item.what] += item.monthly_usd
        counts[item.what] += 1
    lines = [
        f"## estimated monthly cost: ${costs.total(items):,.0f} "
        f"({costs.PRICE_REGION} on-demand list prices of {costs.PRICES_AS_OF})"
    ]
    unknown = {i.what for i in items if not i.known}
    for what in sorted(grouped, key=lambda w: (-grouped[w], w)):
        times = f"{counts[what]} x " if counts[what] > 1 else ""
        price = (
            "not in the price table, not counted" if what in unknown else f"${grouped[what]:,.2f}"
        )
        lines.append(f"    {times}{what}: {price}")
    lines.append(f"    excluded (usage-based): {costs.EXCLUDED}")
    return lines


def render_json(run: StackRun, *, elapsed: float | None = None) -> str:
    items = costs.estimate(run.resources)
    doc = {
        "stack": run.stack,
        "tier": run.outputs.get("tier"),
        "region": run.config.get("aws:region"),
        "evaluation_seconds": elapsed,
        "resources": [
            {
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "inputs": shown_inputs(r),
                "options": _options(r),
            }
            for r in run.resources
        ],
        "outputs": {k: MASK if k in run.secret_outputs else v for k, v in run.outputs.items()},
        "monthly_cost_usd": round(costs.total(items), 2),
        "cost_items": [
            {"what": i.what, "monthly_usd": round(i.monthly_usd, 2) if i.known else None}
            for i in items
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"


def timed_run(stack: str) -> tuple[StackRun, float]:
    started = time.perf_counter()
    run = run_stack(stack)
    return run, time.perf_counter() - started


def snapshot_text(stack: str) -> str:
    """What ``snapshots/<stack>.txt`` must hold: the text plan without the timing line."""
    return render_text(run_stack(stack))


def outputs_text(run: StackRun) -> str:
    """What ``tests/fixtures/stack_outputs/<stack>.json`` holds: what a StackReference reads."""
    return json.dumps(run.outputs, indent=2, sort_keys=True, default=str) + "\n"


def write_stack_outputs() -> list[str]:
    """Refresh the outputs other stacks read by StackReference. The global stack and its
    regions read each other, so repeat until nothing changes (twice after a change)."""
    STACK_OUTPUTS.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        changed = []
        for stack in referenced_stacks():
            path = STACK_OUTPUTS / f"{stack}.json"
            text = outputs_text(run_stack(stack))
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                changed.append(stack)
        if not changed:
            return referenced_stacks()
    raise RuntimeError("stack outputs do not settle: the stacks' references form a loop")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["diff"]:
        return diff.main(argv[1:])
    if argv[:1] == ["grow"]:
        from tools import grow

        return grow.main(argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("stack", nargs="?", help=f"one of {', '.join(stacks())}")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--all", action="store_true", help="summary and cost of every stack")
    parser.add_argument("--write-snapshots", action="store_true", help="refresh snapshots/")
    parser.add_argument(
        "--write-urns", action="store_true", help=f"record every stack's URNs in {DEPLOYED_URNS}"
    )
    args = parser.parse_args(argv)

    if args.write_urns:
        for stack in stacks():
            urns = sorted(r.urn for r in run_stack(stack))
            (DEPLOYED_URNS / f"{stack}.txt").write_text("\n".join(urns) + "\n")
            print(f"wrote {len(urns)} URNs of {stack}")
        return 0
    if args.write_snapshots:
        for stack in write_stack_outputs():
            print(f"wrote {STACK_OUTPUTS.relative_to(ROOT)}/{stack}.json")
        SNAPSHOTS.mkdir(exist_ok=True)
        for stack in stacks():
            (SNAPSHOTS / f"{stack}.txt").write_text(snapshot_text(stack))
            print(f"wrote snapshots/{stack}.txt")
        return 0
    if args.all:
        # The first evaluation in a process also imports the provider SDK modules the program
        # uses (seconds: pulumi_aws is large); time it apart so the figures below are the
        # program's own evaluation.
        warm_up = time.perf_counter()
        run_stack(stacks()[-1])  # the largest tier uses every component
        print(f"(one-time SDK imports + first evaluation: {time.perf_counter() - warm_up:.2f} s)")
        for stack in stacks():
            run, elapsed = timed_run(stack)
            monthly = costs.total(costs.estimate(run.resources))
            tier = run.outputs.get("tier", "?")
            print(
                f"{stack:8} tier {tier:6} {len(run.resources):4} resources  "
                f"${monthly:>9,.0f}/month  evaluated in {elapsed:.2f} s"
            )
        return 0
    if not args.stack or args.stack not in stacks():
        parser.error(f"name a stack: {', '.join(stacks())}")
    run, elapsed = timed_run(args.stack)
    render = render_json if args.json else render_text
    sys.stdout.write(render(run, elapsed=elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
