"""The CI workflows a reviewer relies on: the nightly drift check of every stack, the merge
applying the plan its PR previewed, policy findings in code scanning, and the broadening
allowance read from the PR description. Parsed as GitHub reads them (YAML 1.1: ``on`` is
True)."""

from __future__ import annotations

from typing import Any

import yaml

from tools.harness import ROOT, stacks

WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return workflow


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = workflow.get("on") or workflow[True]  # type: ignore[index]
    return found


def step(job: dict[str, Any], *, uses: str = "", run: str = "", id_: str = "") -> dict[str, Any]:
    for s in job["steps"]:
        if uses and str(s.get("uses", "")).startswith(uses):
            return s
        if run and run in str(s.get("run", "")):
            return s
        if id_ and s.get("id") == id_:
            return s
    raise AssertionError(f"no step {uses or run or id_} in {[s.get('name') for s in job['steps']]}")


def test_every_stack_file_is_checked_for_drift_every_night() -> None:
    workflow = load("drift.yml")
    on = triggers(workflow)
    assert on["schedule"][0]["cron"] and "workflow_dispatch" in on
    job = workflow["jobs"]["refresh"]
    assert sorted(job["strategy"]["matrix"]["stack"]) == stacks()
    assert job["strategy"]["fail-fast"] is False
    assert job["runs-on"] == ["self-hosted", "linux", "ssp-vpc"]  # the private EKS endpoint
    # Never while an up of the same stack runs (its group in infra.yml).
    assert job["concurrency"]["group"] == "infra-up-${{ matrix.stack }}"
    assert "matrix.stack" in job["env"]["STACK"]
    refresh = step(job, id_="refresh")["run"]
    for flag in ("pulumi refresh", "--preview-only", "--expect-no-changes", '--stack "$STACK"'):
        assert flag in refresh
    assert "AWS_PREVIEW_ROLE_ARN" in step(job, uses="aws-actions/")["with"]["role-to-assume"]


def test_drift_opens_or_updates_one_issue_per_stack_and_closes_it_when_clean() -> None:
    workflow = load("drift.yml")
    assert workflow["permissions"]["issues"] == "write"
    job = workflow["jobs"]["refresh"]
    assert "${{ matrix.stack }}" in job["env"]["TITLE"]
    report = step(job, run="gh issue create")
    assert report["if"] == "steps.refresh.outputs.drift == 'true'"
    assert "gh issue comment" in report["run"] and "--label drift" in report["run"]
    assert step(job, run="gh issue close")["if"] == "steps.refresh.outputs.status == '0'"
    assert step(job, run="exit 1")["if"] == "steps.refresh.outputs.status != '0'"


def test_the_merge_applies_the_plan_its_pull_request_previewed() -> None:
    workflow = load("infra.yml")
    preview, up = workflow["jobs"]["preview"], workflow["jobs"]["up"]
    assert sorted(up["strategy"]["matrix"]["stack"]) == stacks()
    # The tier4 global stack deploys before the regional stacks that read it.
    order = up["strategy"]["matrix"]["stack"]
    assert order.index("global") < min(order.index("tier4-east"), order.index("tier4-west"))
    for job in (preview, up):
        assert job["env"]["PULUMI_EXPERIMENTAL"] == "true"
    saved = step(preview, uses="pulumi/actions@")
    assert saved["with"]["command"] == "preview"
    assert saved["with"]["plan"] == "plan-${{ matrix.stack }}.json"
    kept = step(preview, uses="actions/upload-artifact@")
    assert kept["with"]["name"] == "plan-${{ matrix.stack }}"
    assert kept["with"]["path"] == saved["with"]["plan"]
    assert kept["with"]["if-no-files-found"] == "error"

    reviewed = step(up, id_="reviewed")["run"]
    assert "commits/$GITHUB_SHA/pulls" in reviewed and "--event pull_request" in reviewed
    assert "--status success" in reviewed and reviewed.count("exit 1") == 2
    fetched = step(up, uses="actions/download-artifact@")
    assert fetched["with"]["name"] == kept["with"]["name"]
    assert fetched["with"]["run-id"] == "${{ steps.reviewed.outputs.run }}"
    applied = step(up, uses="pulumi/actions@")
    assert applied["with"]["command"] == "up"
    assert applied["with"]["plan"] == saved["with"]["plan"]
    names = [s.get("id") or s.get("uses") for s in up["steps"]]
    assert names.index("reviewed") < names.index(applied["uses"])
    assert workflow["permissions"]["actions"] == "read"


def test_policy_findings_reach_code_scanning() -> None:
    workflow = load("infra.yml")
    job = workflow["jobs"]["test"]
    sarif = step(job, run="tools.policy --all --format sarif")
    assert "> policy.sarif" in sarif["run"] and sarif["if"] == "always()"
    upload = step(job, uses="github/codeql-action/upload-sarif@")
    assert upload["uses"] == "github/codeql-action/upload-sarif@v4"
    assert upload["with"]["sarif_file"] == "policy.sarif"
    assert workflow["permissions"]["security-events"] == "write"


def test_the_pr_description_allows_broadening_like_replacements() -> None:
    job = load("infra.yml")["jobs"]["plan-diff"]
    assert sorted(job["strategy"]["matrix"]["stack"]) == stacks()
    run = step(job, id_="diff")["run"]
    assert "export ALLOW_BROADENING=" in run and "s/^allow-broadening: *//p" in run
