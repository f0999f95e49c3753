"""Rehearse offline, with the workloads' own commands and environments on local stand-ins:

    python -m tools.rehearse STACK             a stack's first day (tools/first_day.py)
    python -m tools.rehearse --all [--jobs N]  every stack's first day, N at a time (2;
                                               each its own stand-ins)
    python -m tools.rehearse --grow STACK [TIER]
                                               the stack's move to TIER (default: the next
                                               tier), after its first day (tools/rehearse_growth.py)
    python -m tools.rehearse --grow-all [--jobs N]
                                               every stack file's move to the next tier, N
                                               at a time (2; each its own stand-ins)

Each prints its steps with their seconds and exits 1 when one fails, naming it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tools.first_day import StepFailed, rehearse
from tools.harness import run_stack, stacks
from tools.moves import TIER_ORDER, adjacent_moves, moved_config, next_tier, tier_of
from tools.rehearse_growth import rehearse_move


def first_days(names: list[str]) -> list[str]:
    """Rehearses each stack's first day: the stacks that failed."""
    failed = []
    for stack in names:
        started = time.perf_counter()
        print(f"{stack}: rehearsing the first day offline", flush=True)
        run = run_stack(stack)
        if not any(r.type.startswith("kubernetes:") for r in run):
            print(f"{stack}: runs no workloads (tier 4's global stack): nothing to rehearse")
            continue
        try:
            rehearse(run)
            print(f"{stack}: first day rehearsed in {time.perf_counter() - started:.1f} s")
        except StepFailed as exc:
            print(f"{stack}: {exc}", file=sys.stderr, flush=True)
            failed.append(stack)
    return failed


def moves(pairs: list[tuple[str, str]]) -> list[str]:
    """Rehearses each (stack, higher tier) move: the moves that failed."""
    failed = []
    for stack, tier in pairs:
        started, name = time.perf_counter(), f"{stack} -> {tier}"
        print(f"{name}: rehearsing the move offline ({tier_of(stack)}'s first day first)")
        try:
            rehearse_move(run_stack(stack), run_stack(stack, moved_config(stack, tier)))
            print(f"{name}: move rehearsed in {time.perf_counter() - started:.1f} s", flush=True)
        except StepFailed as exc:
            print(f"{name}: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
    return failed


def at_once(runs: dict[str, list[str]], jobs: int) -> list[str]:
    """Runs each named ``tools.rehearse`` invocation (its arguments) ``jobs`` at a time, each
    in its own process with its own stand-ins (a rehearsal mostly waits: on servers to come
    up, workers to drain); prints each one's steps when it ends. The names that failed."""

    def one(name: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        command = [sys.executable, "-m", "tools.rehearse", *runs[name]]
        return name, subprocess.run(command, capture_output=True, text=True, check=False)

    failed = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for name, done in pool.map(one, runs):
            print(done.stdout, end="", flush=True)
            print(done.stderr, end="", file=sys.stderr, flush=True)
            if done.returncode:
                failed.append(name)
    return failed


def summary(what: str, total: int, failed: list[str], started: float) -> int:
    print(
        f"{total - len(failed)} of {total} {what} rehearsed in "
        f"{time.perf_counter() - started:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.rehearse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("stack", nargs="?", help=f"one of {', '.join(stacks())}")
    which.add_argument("--all", action="store_true", help="every stack's first day")
    which.add_argument("--grow", nargs="+", metavar="STACK [TIER]", help="a stack's move up")
    which.add_argument("--grow-all", action="store_true", help="every stack's move to the next")
    parser.add_argument(
        "--jobs", type=int, default=2, help="--all, --grow-all: rehearsals at a time"
    )
    args = parser.parse_args(argv)
    for stack in [args.stack] if args.stack else (args.grow or [])[:1]:
        if stack not in stacks():
            parser.error(f"unknown stack {stack!r}; stacks: {', '.join(stacks())}")
    if args.grow:
        if len(args.grow) > 2:
            parser.error("--grow takes a stack and, optionally, the tier it moves to")
        stack, here = args.grow[0], tier_of(args.grow[0])
        tier = args.grow[1] if len(args.grow) == 2 else next_tier(here) if here else None
        if here is None or tier is None:
            parser.error(f"{stack} ({here or 'no tier'}) has no higher tier to move to")
        try:
            moved_config(stack, tier)
        except ValueError as exc:
            parser.error(f"{exc}; tiers: {', '.join(TIER_ORDER)}")
        return 1 if moves([(stack, tier)]) else 0
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: at least 1")
    started = time.perf_counter()
    if args.grow_all:
        pairs = adjacent_moves()
        if args.jobs == 1:
            return summary("moves", len(pairs), moves(pairs), started)
        grows = {f"{stack} -> {tier}": ["--grow", stack, tier] for stack, tier in pairs}
        return summary("moves", len(pairs), at_once(grows, args.jobs), started)
    if args.all:
        if args.jobs == 1:
            return summary("first days", len(stacks()), first_days(stacks()), started)
        days = {stack: [stack] for stack in stacks()}
        return summary("first days", len(days), at_once(days, args.jobs), started)
    return 1 if first_days([args.stack]) else 0


if __name__ == "__main__":
    sys.exit(main())
