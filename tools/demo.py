"""The main job (``make demo``): every stack's plan, cost and policy verdicts, the app end to
end, and one stack's first day, in that order on screen, in a few minutes.

    python -m tools.demo [STACK]     STACK: the stack whose first day is rehearsed (tier3)

The parts run as the commands an operator types (``python -m tools.plan --all``,
``python -m tools.policy --all``, ``python -m app.demo``, ``python -m tools.rehearse STACK``).
The rehearsal, which mostly waits on its servers, and the policy check start at once beside
the plan and the app; their output is shown in its place when they end. Every stack's first
day is ``python -m tools.rehearse --all`` (``make rehearse-all``). Exits 1 when a part
failed, naming it.
"""

from __future__ import annotations

import subprocess
import sys
import time

from tools.harness import stacks

DEFAULT_STACK = "tier3"


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def start(*args: str) -> subprocess.Popen[str]:
    """A part started now, its output kept for its turn on screen."""
    return subprocess.Popen(
        command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def shown(name: str, part: subprocess.Popen[str]) -> bool:
    """Waits for a background part and prints its output; True when it succeeded."""
    output, _ = part.communicate()
    print(output, end="", flush=True)
    if part.returncode:
        print(f"demo: {name} failed (exit {part.returncode})", file=sys.stderr, flush=True)
    return part.returncode == 0


def run(name: str, *args: str) -> bool:
    """A part run in the foreground, its output streamed; True when it succeeded."""
    code = subprocess.run(command(*args), check=False).returncode
    if code:
        print(f"demo: {name} failed (exit {code})", file=sys.stderr, flush=True)
    return code == 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    stack = args[0] if args else DEFAULT_STACK
    if len(args) > 1 or stack not in stacks():
        print(
            f"usage: python -m tools.demo [STACK]; stacks: {', '.join(stacks())}", file=sys.stderr
        )
        return 2
    started = time.perf_counter()
    rehearsal = start("tools.rehearse", stack)
    policy = start("tools.policy", "--all")
    ok = [
        run("the plans", "tools.plan", "--all"),
        shown("the policy check", policy),
        run("the app", "app.demo"),
        shown(f"{stack}'s first day", rehearsal),
    ]
    print(
        f"demo: {sum(ok)} of {len(ok)} parts passed in {time.perf_counter() - started:.0f} s;"
        " every stack's first day: make rehearse-all",
        flush=True,
    )
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
