"""The pack's shape: enough rules, deliberate levels, documented config, loadable by the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from policies.rules import ALL_POLICIES, CONCERNS, RESOURCE_POLICIES, STACK_POLICIES, rds
from tools.harness import stacks
from tools.policy import policy_config

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "policies"


def test_at_least_30_resource_rules_and_stack_rules() -> None:
    assert len(RESOURCE_POLICIES) >= 30
    assert all(isinstance(p, ResourceValidationPolicy) for p in RESOURCE_POLICIES)
    assert all(isinstance(p, StackValidationPolicy) for p in STACK_POLICIES)
    assert {
        "connection-capacity",
        "tier-consistency",
        "data-stores-reachable-only-from-app",
    } <= {p.name for p in STACK_POLICIES}


def test_every_concern_of_the_issue_is_covered() -> None:
    assert set(CONCERNS) >= {
        "rds", "cache", "s3", "eks", "network", "edge", "sagemaker", "ecr", "kms", "iam",
        "kubernetes", "tagging",
    }  # fmt: skip
    assert all(CONCERNS.values())


def test_every_rule_has_a_deliberate_level_and_a_unique_kebab_name() -> None:
    names = Counter(p.name for p in ALL_POLICIES)
    assert [n for n, c in names.items() if c > 1] == []
    for p in ALL_POLICIES:
        assert p.enforcement_level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY), (
            p.name
        )
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", p.name), p.name
        assert p.description.endswith("."), p.name


def test_config_schemas_have_defaults_that_the_runner_applies() -> None:
    for p in ALL_POLICIES:
        if p.config_schema is None:
            continue
        for key, schema in p.config_schema.properties.items():
            assert "default" in schema and "type" in schema, f"{p.name}.{key}"
        assert set(policy_config(p, {})) == set(p.config_schema.properties)


def test_sample_config_names_real_policies_levels_and_properties() -> None:
    sample = json.loads((PACK / "policy-config.sample.json").read_text())
    by_name = {p.name: p for p in ALL_POLICIES}
    levels = {level.value for level in EnforcementLevel}
    for name, entry in sample.items():
        assert name == "all" or name in by_name, name
        level = entry.get("enforcementLevel") if isinstance(entry, dict) else entry
        if level is not None:
            assert level in levels, name
        if isinstance(entry, dict):
            schema = by_name[name].config_schema
            extra = set(entry) - {"enforcementLevel"}
            assert schema is not None or not extra, name
            assert extra <= set(schema.properties if schema else ()), name


def test_default_instance_classes_cover_the_catalog() -> None:
    """The allow-list must accept what the catalog deploys on every tier."""
    from components.config.catalog import TIERS

    for tier in TIERS.values():
        assert tier.db.instance_class in rds.DEFAULT_INSTANCE_CLASSES[tier.name], tier.name


def test_pack_files() -> None:
    manifest = yaml.safe_load((PACK / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"] == {"name": "python", "options": {"virtualenv": "venv"}}
    assert manifest["version"] and manifest["description"]
    requirements = (PACK / "requirements.txt").read_text()
    assert re.search(r"^pulumi-policy>=1\.\d+.*,<2", requirements, re.M)
    assert re.search(r"^pulumi>=3\.\d+.*,<4", requirements, re.M)
    main = (PACK / "__main__.py").read_text()
    assert "from rules import ALL_POLICIES" in main
    assert 'name="student-success-policies"' in main


def test_pack_main_runs_from_the_pack_directory_like_the_cli() -> None:
    """The CLI runs policies/__main__.py with policies/ as sys.path[0]. Run it that way in a
    subprocess, with PolicyPack replaced by a recorder (the real one starts a server and
    blocks), and without the repository root on the path: ``rules`` must import on its own."""
    code = f"""
import runpy, sys
import pulumi_policy
sys.path = [p for p in sys.path if p not in ("", {str(ROOT)!r})]
sys.path.insert(0, {str(PACK)!r})
seen = {{}}
pulumi_policy.PolicyPack = lambda **kw: seen.update(kw)
runpy.run_path("__main__.py", run_name="__main__")
print(seen["name"], len(seen["policies"]))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PACK, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["student-success-policies", str(len(ALL_POLICIES))]


def test_ci_workflow() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "infra.yml").read_text())
    triggers = workflow.get("on") or workflow.get(True)  # YAML 1.1 reads `on` as True
    assert "pull_request" in triggers
    jobs = workflow["jobs"]
    test_steps = jobs["test"]["steps"]
    assert any(s.get("with", {}).get("python-version") == "3.11" for s in test_steps)
    assert any("make test" in s.get("run", "") for s in test_steps)
    preview = jobs["preview"]
    assert sorted(preview["strategy"]["matrix"]["stack"]) == stacks()
    pulumi = next(
        s for s in preview["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")
    )
    assert pulumi["uses"] == "pulumi/actions@v6"
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["policyPacks"] == "policies"
    assert pulumi["with"]["comment-on-pr"] is True
    assert "matrix.stack" in pulumi["with"]["stack-name"]
    aws = next(s for s in preview["steps"] if "configure-aws-credentials" in str(s.get("uses")))
    assert aws["uses"] == "aws-actions/configure-aws-credentials@v4"
    assert "role-to-assume" in aws["with"]
    assert "secrets.PULUMI_ACCESS_TOKEN" in preview["env"]["PULUMI_ACCESS_TOKEN"]
    assert workflow["permissions"]["id-token"] == "write"


def test_previews_and_deploys_run_where_the_private_cluster_is_reachable() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "infra.yml").read_text())
    triggers = workflow.get("on") or workflow.get(True)
    assert triggers["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]

    def pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
        return next(s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/"))

    preview, up = jobs["preview"], jobs["up"]
    for job in (preview, up):  # the EKS endpoint is private: a runner inside the VPC
        assert job["runs-on"] == ["self-hosted", "linux", "ssp-vpc"]
    assert pulumi_step(preview)["with"]["always-include-summary"] is True
    assert "pull_request" in preview["if"] and "pull_request" in jobs["plan-diff"]["if"]
    # Merges to main deploy every stack in order, each behind its environment's protection.
    assert up["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert up["environment"] == "${{ matrix.stack }}"
    assert up["strategy"]["matrix"]["stack"] == preview["strategy"]["matrix"]["stack"]
    assert up["strategy"]["max-parallel"] == 1 and up["needs"] == "test"
    assert up["concurrency"]["cancel-in-progress"] is False
    step = pulumi_step(up)
    assert step["with"]["command"] == "up" and step["with"]["policyPacks"] == "policies"
