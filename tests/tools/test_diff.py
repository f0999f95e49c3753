"""The offline plan diff: create, update, replace and delete from hand-made base/head
resource lists, the danger it refuses, and one end-to-end run of the git path."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import diff, revision
from tools.harness import ROOT, Options, Resource, make_urn

STACK, PROJECT = "tier3", "student-success"
DB = "aws:rds/instance:Instance"
CACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DATABASE_COMPONENT = "ssp:database:Database"


def resource(
    type_: str,
    name: str,
    inputs: dict[str, Any],
    *,
    parent: str = "",
    previous: tuple[str, ...] = (),
    secret_paths: frozenset[str] = frozenset(),
    **options: Any,
) -> Resource:
    urn = make_urn(parent, type_, name, stack=STACK, project=PROJECT)
    return Resource(
        type=type_,
        name=name,
        urn=urn,
        id=f"{name}-id",
        parent=parent,
        custom=True,
        inputs=inputs,
        secret_paths=secret_paths,
        options=Options(**options),
        previous_urns=frozenset({urn, *previous}),
    )


DB_INPUTS = {
    "identifier": "ssp-tier3-db",
    "allocatedStorage": 500,
    "storageEncrypted": True,
    "instanceClass": "db.r6g.xlarge",
    "tags": {"data-classification": "ferpa"},
}


def db(**changes: Any) -> Resource:
    return resource(DB, "database-instance", {**DB_INPUTS, **changes}, protect=True)


def only(changes: list[diff.Change]) -> diff.Change:
    assert len(changes) == 1, [(c.kind, c.resource.name) for c in changes]
    return changes[0]


def test_no_change_is_no_change() -> None:
    assert diff.diff_resources([db()], [db()]) == []


def test_storage_encrypted_changed_is_a_replacement() -> None:
    change = only(diff.diff_resources([db()], [db(storageEncrypted=False)]))
    assert change.kind == "replace"
    [prop] = change.properties
    assert (prop.path, prop.old, prop.new) == ("storageEncrypted", True, False)
    assert prop.replaces == "aws replaces on storageEncrypted"
    assert change.dangerous and change.protected and change.ferpa and change.data_tier


def test_allocated_storage_is_an_update() -> None:
    change = only(diff.diff_resources([db()], [db(allocatedStorage=1000)]))
    assert change.kind == "update"
    assert [(p.path, p.old, p.new, p.replaces) for p in change.properties] == [
        ("allocatedStorage", 500, 1000, None)
    ]
    assert not change.dangerous


def test_rds_identifier_is_renamed_in_place_at_the_pinned_provider() -> None:
    # terraform-provider-aws v5+ renames a DB instance with ModifyDBInstance: not ForceNew.
    change = only(diff.diff_resources([db()], [db(identifier="ssp-tier3-db2")]))
    assert change.kind == "update"


def test_a_physical_name_that_is_force_new_is_a_replacement() -> None:
    base = resource(CACHE, "cache-redis", {"replicationGroupId": "ssp-tier3-redis"})
    head = resource(CACHE, "cache-redis", {"replicationGroupId": "ssp-tier3-cache"})
    change = only(diff.diff_resources([base], [head]))
    assert change.kind == "replace" and change.data_tier and change.dangerous


def test_a_conditional_replacement_is_an_update_with_a_note() -> None:
    base = resource(CACHE, "cache-redis", {"transitEncryptionEnabled": False})
    head = resource(CACHE, "cache-redis", {"transitEncryptionEnabled": True})
    change = only(diff.diff_resources([base], [head]))
    assert change.kind == "update"
    assert (
        change.properties[0].may_replace == "engine versions below 7.0.5 (CustomizeDiff ForceNewIf)"
    )
    text, _ = diff.render(diff.StackDiff(STACK, [change], 0, 0), "main")
    assert "<- replaces on engine versions below 7.0.5" in text


def deployment(selector: dict[str, str], image: str = "api:1") -> Resource:
    return resource(
        DEPLOYMENT,
        "workloads-api",
        {
            "metadata": {"namespace": "ssp"},
            "spec": {
                "selector": {"matchLabels": selector},
                "template": {"spec": {"containers": [{"name": "api", "image": image}]}},
            },
        },
    )


def test_a_deployment_selector_change_is_a_replacement() -> None:
    change = only(
        diff.diff_resources([deployment({"app": "api"})], [deployment({"app": "ssp-api"})])
    )
    assert change.kind == "replace"
    [prop] = change.properties
    assert prop.path == "spec.selector.matchLabels.app"
    assert prop.replaces == "kubernetes replaces on spec.selector"


def test_a_deployment_image_change_is_a_rolling_update() -> None:
    base, head = deployment({"app": "api"}), deployment({"app": "api"}, image="api:2")
    change = only(diff.diff_resources([base], [head]))
    assert change.kind == "update"
    assert change.properties[0].path == "spec.template.spec.containers[0].image"


def test_a_renamed_child_with_an_alias_shows_no_change() -> None:
    component = resource(DATABASE_COMPONENT, "database", {})
    old = resource(DB, "db-instance", DB_INPUTS)
    moved = resource(DB, "database-instance", DB_INPUTS, parent=component.urn, previous=(old.urn,))
    assert diff.diff_resources([old], [moved]) == []
    # Without the alias, the same move deletes the database and creates another.
    unaliased = resource(DB, "database-instance", DB_INPUTS, parent=component.urn)
    kinds = sorted(c.kind for c in diff.diff_resources([old], [unaliased]))
    assert kinds == ["create", "delete"]


def test_an_aliased_move_with_a_change_names_the_urn_it_takes_over() -> None:
    old = resource(DB, "db-instance", DB_INPUTS)
    moved = resource(
        DB, "database-instance", {**DB_INPUTS, "allocatedStorage": 600}, previous=(old.urn,)
    )
    change = only(diff.diff_resources([old], [moved]))
    assert change.kind == "update" and change.previous_urn == old.urn


def test_readers_of_a_replaced_resource_follow_it() -> None:
    """A replaced SageMaker model gets a new name: the endpoint configuration naming it is
    replaced in turn (its variants are ForceNew), and the endpoint is updated to the new one."""
    model_type = "aws:sagemaker/model:Model"
    config_type = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
    endpoint_type = "aws:sagemaker/endpoint:Endpoint"

    def stack(image: str) -> list[Resource]:
        model = resource(model_type, "model", {"primaryContainer": {"image": image}})
        variants = [{"modelName": model.id, "variantName": "primary"}]
        config = resource(
            config_type, "config", {"productionVariants": variants}, depends_on=(model.urn,)
        )
        endpoint = resource(
            endpoint_type, "endpoint", {"endpointConfigName": config.id}, depends_on=(config.urn,)
        )
        return [model, config, endpoint]

    changes = {c.resource.name: c for c in diff.diff_resources(stack("a:1"), stack("a:2"))}
    assert {n: c.kind for n, c in changes.items()} == {
        "model": "replace",
        "config": "replace",
        "endpoint": "update",
    }
    [variant] = changes["config"].properties
    assert variant.path == "productionVariants[0].modelName" and variant.replaces
    assert changes["endpoint"].follows == ["config"]


def test_the_objects_of_a_replaced_provider_are_replaced() -> None:
    def stack(kubeconfig: str) -> list[Resource]:
        k8s = resource("pulumi:providers:kubernetes", "k8s", {"kubeconfig": kubeconfig})
        ref = f"{k8s.urn}::{k8s.id}"
        ns = resource(
            "kubernetes:core/v1:Namespace", "ns", {"metadata": {"name": "ssp"}}, provider=ref
        )
        return [k8s, ns]

    changes = {c.resource.name: c for c in diff.diff_resources(stack("a"), stack("b"))}
    assert changes["k8s"].kind == "replace" and changes["ns"].kind == "replace"
    assert changes["ns"].properties[0].replaces == "its provider is replaced"


def test_created_and_deleted_resources() -> None:
    kept = resource("aws:sns/topic:Topic", "alarms-topic", {})
    gone = resource("aws:cloudwatch/logGroup:LogGroup", "old-logs", {})
    new = resource("aws:cloudwatch/logGroup:LogGroup", "new-logs", {})
    changes = diff.diff_resources([kept, gone], [kept, new])
    assert sorted((c.kind, c.resource.name) for c in changes) == [
        ("create", "new-logs"),
        ("delete", "old-logs"),
    ]


def test_replace_on_changes_and_delete_before_replace_are_honoured() -> None:
    base = resource("aws:sns/topic:Topic", "p", {"displayName": "a"})
    head = resource(
        "aws:sns/topic:Topic",
        "p",
        {"displayName": "b"},
        replace_on_changes=("displayName",),
        delete_before_replace=True,
    )
    change = only(diff.diff_resources([base], [head]))
    assert change.kind == "replace"
    assert change.properties[0].replaces == "replaceOnChanges displayName"
    text, _ = diff.render(diff.StackDiff(STACK, [change], 0, 0), "main")
    assert "deleteBeforeReplace" in text


def test_ignore_changes_are_not_changes() -> None:
    base = resource("aws:eks/nodeGroup:NodeGroup", "ng", {"scalingConfig": {"desiredSize": 2}})
    head = resource(
        "aws:eks/nodeGroup:NodeGroup",
        "ng",
        {"scalingConfig": {"desiredSize": 5}},
        ignore_changes=("scalingConfig.desiredSize",),
    )
    assert diff.diff_resources([base], [head]) == []


def test_secrets_are_compared_but_never_shown() -> None:
    secret = frozenset({"secretString"})
    base = resource(
        "aws:secretsmanager/secretVersion:SecretVersion",
        "v",
        {"secretString": "old-hunter2"},
        secret_paths=secret,
    )
    head = resource(
        "aws:secretsmanager/secretVersion:SecretVersion",
        "v",
        {"secretString": "new-hunter2"},
        secret_paths=secret,
    )
    change = only(diff.diff_resources([base], [head]))
    text, _ = diff.render(diff.StackDiff(STACK, [change], 0, 0), "main")
    assert "hunter2" not in text and "secretString: [secret] changed" in text


def test_only_the_changed_nested_secret_is_reported() -> None:
    secret = frozenset({"data.url", "data.token"})

    def config(url: str) -> Resource:
        inputs = {"data": {"url": url, "token": "same-token-value", "plain": "x"}}
        return resource("kubernetes:core/v1:ConfigMap", "c", inputs, secret_paths=secret)

    change = only(diff.diff_resources([config("postgres://a")], [config("postgres://b")]))
    assert [(p.path, p.old, p.new) for p in change.properties] == [
        ("data.url", "[secret]", "[secret]")
    ]


def test_kubernetes_secret_data_replaces_unless_the_provider_makes_it_mutable() -> None:
    def secret(value: str, provider: str = "") -> Resource:
        return resource(
            "kubernetes:core/v1:Secret", "s", {"stringData": {"k": value}}, provider=provider
        )

    assert only(diff.diff_resources([secret("a")], [secret("b")])).kind == "replace"
    mutable = resource("pulumi:providers:kubernetes", "k8s", {"enableSecretMutable": "true"})
    ref = f"{mutable.urn}::{mutable.id}"
    change = only(diff.diff_resources([mutable, secret("a", ref)], [mutable, secret("b", ref)]))
    assert change.kind == "update"


def test_a_protected_replacement_is_refused_unless_allowed() -> None:
    stack = diff.StackDiff(STACK, diff.diff_resources([db()], [db(storageEncrypted=False)]), 10, 10)
    text, refused = diff.render(stack, "origin/main")
    assert refused
    lines = text.splitlines()
    assert lines[2].startswith("!! DANGER: 1 protected or FERPA")
    assert any("storageEncrypted: true -> false" in line for line in lines)
    assert db().urn in text and "--allow-replace" in text
    assert lines[-1] == (
        "tier3: 0 to create, 0 to update, 1 to replace, 0 to delete; "
        "estimated cost $10 -> $10/month (+$0)"
    )
    _, refused = diff.render(stack, "origin/main", allowed=[db().urn])
    assert not refused


def test_the_summary_rounds_the_cost_change() -> None:
    assert diff.StackDiff("t", [], 11289.4, 11289.2).summary().endswith("(+$0)")
    assert diff.StackDiff("t", [], 100, 1350.6).summary().endswith("$100 -> $1,351/month (+$1,251)")
    assert diff.StackDiff("t", [], 1350, 100).summary().endswith("(-$1,250)")


def test_an_unknown_ref_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert diff.main(["no-such-ref-anywhere", "dev"]) == 2
    assert "no-such-ref-anywhere" in capsys.readouterr().err


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True,
        capture_output=True,
    )


def throwaway_repo(at: Path) -> None:
    """A git repository at ``at`` holding this program (without its tests) in one commit."""
    revision.checkout("HEAD", at, repo=ROOT)
    shutil.rmtree(at / "tests", ignore_errors=True)
    git(at, "init", "-q")
    git(at, "add", "-A")
    git(at, "commit", "-q", "-m", "base")


def test_the_git_path_end_to_end(tmp_path: Path) -> None:
    """A throwaway repository holding this program: commit it, grow dev's database in the
    working tree, and diff against the commit."""
    throwaway_repo(tmp_path)
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(
        stack_file.read_text() + '  student-success:overrides: ["db.storage_gib=30"]\n'
    )

    base, head = revision.evaluate("HEAD", ["dev"], repo=tmp_path)
    [stack] = diff.diff_stacks(base, head, ["dev"])
    # The instance grows in place; its free-storage alarm and the dashboard follow the size.
    assert sorted((c.kind, c.resource.type) for c in stack.changes) == [
        ("update", "aws:cloudwatch/dashboard:Dashboard"),
        ("update", "aws:cloudwatch/metricAlarm:MetricAlarm"),
        ("update", DB),
    ]
    [instance] = [c for c in stack.changes if c.resource.type == DB]
    assert [(p.path, p.old, p.new) for p in instance.properties] == [("allocatedStorage", 20, 30)]
    assert stack.cost_after > stack.cost_before
    text, refused = diff.render(stack, "HEAD")
    assert not refused and "allocatedStorage: 20 -> 30" in text


def test_ci_comments_each_stack_diff_before_the_preview() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "infra.yml").read_text())
    jobs = workflow["jobs"]
    job = jobs["plan-diff"]
    assert "plan-diff" in jobs["preview"]["needs"]
    assert job["strategy"]["matrix"]["stack"] == jobs["preview"]["strategy"]["matrix"]["stack"]
    checkout = next(
        s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")
    )
    assert checkout["with"]["fetch-depth"] == 0
    run = next(s for s in job["steps"] if s.get("id") == "diff")
    assert "tools.plan diff" in run["run"] and "--markdown" in run["run"]
    assert "pull_request.base.sha" in run["env"]["BASE_SHA"]
    comment = next(s for s in job["steps"] if "sticky-pull-request-comment" in str(s.get("uses")))
    assert "matrix.stack" in comment["with"]["header"]
    assert comment["if"].startswith("always()")


def test_the_command_exits_non_zero_on_a_protected_replacement(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sides = (
        {STACK: revision.Evaluation([db()], 100.0)},
        {STACK: revision.Evaluation([db(storageEncrypted=False)], 100.0)},
    )
    monkeypatch.setattr(revision, "evaluate", lambda base, stacks: sides)
    assert diff.main(["origin/main", STACK]) == 1
    assert "!! DANGER" in capsys.readouterr().out
    assert diff.main(["origin/main", STACK, "--allow-replace", db().urn]) == 0
    monkeypatch.setenv("ALLOW_REPLACE", db().urn)
    assert diff.main(["origin/main", STACK, "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "```" and "### Offline plan diff: `tier3`" in out
