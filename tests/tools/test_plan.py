"""The offline plan: snapshots per stack, masking, JSON, cost."""

from __future__ import annotations

import difflib
import json

import pytest

from tests.shared import StackRunner
from tools import costs
from tools.flat import MASK
from tools.harness import stacks
from tools.plan import SNAPSHOTS, main, render_json, render_text


@pytest.mark.parametrize("stack", stacks())
def test_snapshot_matches_the_program(stack_run: StackRunner, stack: str) -> None:
    path = SNAPSHOTS / f"{stack}.txt"
    assert path.exists(), f"no snapshot for {stack}: run `make snapshots` and commit snapshots/"
    expected = path.read_text()
    actual = render_text(stack_run(stack))
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"snapshots/{stack}.txt (committed)",
                tofile=f"{stack} (program now)",
                n=2,
            )
        )
        pytest.fail(
            f"the plan of {stack} changed; review the diff below, then run `make snapshots` "
            f"and commit it:\n{diff}",
            pytrace=False,
        )


@pytest.mark.parametrize("stack", stacks())
def test_no_secret_reaches_the_plan(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    text, doc = render_text(run), render_json(run)
    for resource in run.resources:
        for path in resource.secret_paths:
            value = resource.get(path)
            if isinstance(value, str) and len(value) >= 8:
                assert value not in text and value not in doc, f"{resource.name}.{path} leaked"


def test_secret_inputs_are_masked(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    secret_holders = [r for r in run.resources if r.secret_paths]
    if secret_holders:
        assert MASK in render_text(run)


def test_json_plan_is_complete(stack_run: StackRunner) -> None:
    run = stack_run("tier1")
    doc = json.loads(render_json(run, elapsed=0.5))
    assert doc["stack"] == "tier1" and doc["tier"] == "tier1"
    assert len(doc["resources"]) == len(run.resources)
    assert doc["monthly_cost_usd"] == round(costs.total(costs.estimate(run.resources)), 2)
    assert doc["evaluation_seconds"] == 0.5


def test_plan_command_prints_timing_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev"]) == 0
    out = capsys.readouterr().out
    assert "# evaluated under mocks in" in out
    assert "## estimated monthly cost: $" in out


def test_plan_command_rejects_an_unknown_stack() -> None:
    with pytest.raises(SystemExit):
        main(["nonexistent"])


def test_resource_names_are_unique_per_stack(stack_run: StackRunner) -> None:
    # The mocks accept duplicate URNs; the real engine refuses them.
    for stack in stacks():
        urns = [r.urn for r in stack_run(stack).resources]
        duplicates = sorted({u for u in urns if urns.count(u) > 1})
        assert not duplicates, f"{stack}: {duplicates}"
