"""`make demo` (tools/demo.py): every part runs, shown in the demo's order whatever order they
end in, and a failed part fails the demo by name."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from tools import demo

# Each part prints its name; the rehearsal and the policy check, started first, take longest.
PARTS = {
    "tools.rehearse": "import time; time.sleep(0.6); print('rehearsal')",
    "tools.policy": "import time; time.sleep(0.3); print('policy')",
    "tools.plan": "print('plan')",
    "app.demo": "print('app')",
}


def fake(failing: str | None = None) -> Callable[..., list[str]]:
    def command(module: str, *args: str) -> list[str]:
        code = PARTS[module] + ("; raise SystemExit(3)" if module == failing else "")
        return [sys.executable, "-c", code]

    return command


def test_the_demo_shows_plan_policy_app_and_first_day_in_that_order(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "command", fake())

    assert demo.main(["tier3"]) == 0

    out = capfd.readouterr().out.split()
    assert [w for w in out if w in ("plan", "policy", "app", "rehearsal")] == [
        "plan", "policy", "app", "rehearsal"
    ]  # fmt: skip


def test_a_failed_part_fails_the_demo_by_name(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "command", fake(failing="tools.policy"))

    assert demo.main(["tier3"]) == 1

    captured = capfd.readouterr()
    assert "demo: the policy check failed (exit 3)" in captured.err
    assert "app" in captured.out.split()  # the other parts still ran


def test_an_unknown_stack_is_refused_with_the_stacks() -> None:
    assert demo.main(["tier9"]) == 2
