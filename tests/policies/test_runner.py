"""The offline runner: every stack passes every MANDATORY rule, and broken variants are caught."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tools.harness import Resource, StackRun, stacks
from tools.policy import Violation, check_resources, check_run, check_stack, main, render

RDS = "aws:rds/instance:Instance"


def _mandatory(violations: list[Violation]) -> list[str]:
    return [
        f"{v.policy} on {v.resource_type} {v.resource_name}: {v.message}"
        for v in violations
        if v.level == "mandatory"
    ]


SAMPLE_CONFIG = json.loads(
    (Path(__file__).resolve().parents[2] / "policies" / "policy-config.sample.json").read_text()
)


@pytest.mark.parametrize("stack", stacks())
def test_every_stack_passes_every_mandatory_rule(
    stack: str, stack_run: Callable[[str], StackRun]
) -> None:
    violations = check_run(stack_run(stack))
    assert _mandatory(violations) == []
    assert _mandatory(check_run(stack_run(stack), SAMPLE_CONFIG)) == []


def _patched(
    run: StackRun, type_: str, change: Callable[[Resource], dict[str, Any]]
) -> list[Resource]:
    """A copy of a stack's resources with the inputs of every resource of a type changed (the
    session's cached run is not mutated)."""
    return [
        dataclasses.replace(r, inputs=change(r)) if r.type == type_ else r for r in run.resources
    ]


def test_public_database_is_caught(stack_run: Callable[[str], StackRun]) -> None:
    run = stack_run("tier3")
    resources = _patched(run, RDS, lambda r: {**r.inputs, "publiclyAccessible": True})
    found = [v for v in check_resources(resources) if v.policy == "rds-not-publicly-accessible"]
    assert found and all(v.level == "mandatory" for v in found)
    primary = next(v for v in found if v.resource_name == "database-primary")
    assert (
        "publicly accessible" in primary.message and "publicly_accessible=False" in primary.message
    )
    assert primary.urn and primary.urn.endswith("::database-primary")
    assert run.one(RDS, "database-primary").inputs["publiclyAccessible"] is False


def test_pool_too_big_for_the_budget_is_caught(stack_run: Callable[[str], StackRun]) -> None:
    """The program's spec refuses such a config first; a synthetic copy reaches the policy."""
    run = stack_run("tier3")
    config_maps = [
        r
        for r in run.of_type("kubernetes:core/v1:ConfigMap")
        if "DB_POOL_MAX" in (r.get("data") or {})
    ]
    assert len(config_maps) == 1, "the app ConfigMap carries DB_POOL_MAX"

    def oversize(r: Resource) -> dict[str, Any]:
        if r is not config_maps[0]:
            return r.inputs
        return {**r.inputs, "data": {**r.inputs["data"], "DB_POOL_MAX": "100"}}

    resources = _patched(run, "kubernetes:core/v1:ConfigMap", oversize)
    found = [v for v in check_resources(resources) if v.policy == "connection-capacity"]
    assert len(found) == 1 and found[0].level == "mandatory"
    assert "100 (DB_POOL_MAX) x 20 pods (HPA maxReplicas)" in found[0].message
    assert "through the RDS proxy" in found[0].message


def test_pack_config_sets_levels_like_the_engine(stack_run: Callable[[str], StackRun]) -> None:
    resources = _patched(stack_run("dev"), RDS, lambda r: {**r.inputs, "publiclyAccessible": True})
    assert _mandatory(check_resources(resources))
    relaxed = check_resources(resources, {"all": "advisory"})
    assert not _mandatory(relaxed) and any(
        v.policy == "rds-not-publicly-accessible" for v in relaxed
    )
    disabled = check_resources(resources, {"rds-not-publicly-accessible": "disabled"})
    assert not any(v.policy == "rds-not-publicly-accessible" for v in disabled)
    strict = check_resources(
        stack_run("dev").resources, {"rds-performance-insights": {"enforcementLevel": "mandatory"}}
    )
    assert all(v.level == "mandatory" for v in strict if v.policy == "rds-performance-insights")


def test_broken_stack_config_through_check_stack() -> None:
    """A stack config the program accepts but the policy config forbids: a public EKS
    endpoint outside the allowed networks."""
    violations = check_stack(
        "dev",
        extra_config={"clusterPublicAccessCidrs": ["203.0.113.0/24"]},
        config={"eks-public-access-cidrs": {"allowedPublicCidrs": ["198.51.100.0/24"]}},
    )
    found = [v for v in violations if v.policy == "eks-public-access-cidrs"]
    assert found and found[0].level == "mandatory"
    assert "203.0.113.0/24" in found[0].message and "198.51.100.0/24" in found[0].message


def test_render_groups_mandatory_first() -> None:
    violations = [
        Violation("b-rule", "advisory", "meh", None, None, None),
        Violation("a-rule", "mandatory", "bad", "urn:x", "aws:s3/bucket:Bucket", "models"),
    ]
    text = render("tier3", sorted(violations, key=lambda v: v.level != "mandatory"), 1.0)
    assert text.index("MANDATORY (1)") < text.index("ADVISORY (1)")
    assert "[a-rule] aws:s3/bucket:Bucket models" in text
    assert text.splitlines()[-1].startswith("policy check FAILED for stack tier3: 1 mandatory, 1")


def test_cli_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev"]) == 0
    assert "policy check passed for stack dev" in capsys.readouterr().out
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"k8s-read-only-root-filesystem": "mandatory", "all": "mandatory"})
    )
    code = main(["dev", "--json", "--config", str(config)])
    printed = json.loads(capsys.readouterr().out)
    assert isinstance(printed, list)
    assert code == (1 if printed else 0)
    assert all(v["level"] == "mandatory" for v in printed)
