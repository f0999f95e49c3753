"""The plan diff tells the engine's truth: a change reaches every resource reading its
outputs (through the dependency graph the harness records), schema defaults are no change,
the Kubernetes provider is replaced only for a new cluster, danger means data or identity,
and a type no table covers fails the diff. Each case runs the real program (``tier1``), the
head side changed by a config value or by one resource's inputs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.shared import StackRunner
from tests.tools.test_diff import STACK, resource, throwaway_repo
from tools import diff, replacements, revision
from tools.diff import Change
from tools.harness import Resource, run_stack, stacks

CLUSTER = "aws:eks/cluster:Cluster"
JOB = "kubernetes:batch/v1:Job"


def changed(
    resources: list[Resource], type_: str, edit: Callable[[dict[str, Any]], None], name: str = ""
) -> list[Resource]:
    """``resources`` with the inputs of every ``type_`` resource (or the one named) edited."""
    out = []
    for r in resources:
        if r.type == type_ and name in ("", r.name):
            inputs = json.loads(json.dumps(r.inputs))
            edit(inputs)
            r = dataclasses.replace(r, inputs=inputs)
        out.append(r)
    return out


def by_name(changes: list[Change]) -> dict[str, Change]:
    return {c.resource.name: c for c in changes}


def kinds(changes: list[Change], type_: str) -> dict[str, str]:
    return {c.resource.name: c.kind for c in changes if c.resource.type == type_}


def test_a_config_map_change_rolls_its_readers_and_reruns_the_bootstrap_job(
    stack_run: StackRunner,
) -> None:
    base = stack_run("tier1").resources
    head = run_stack("tier1", {"overrides": ["api.max_replicas=5"]}).resources
    changes = by_name(diff.diff_resources(base, head))
    assert changes["workloads-config"].kind == "replace"
    for workload in ("workloads-api", "workloads-worker"):
        assert changes[workload].kind == "update"
        assert changes[workload].follows == ["workloads-config"]
        assert any("pods roll" in e for e in changes[workload].effects)
    for cron in ("workloads-archiver", "workloads-trainer"):
        assert changes[cron].kind == "update"
    job = changes["workloads-bootstrap"]
    assert job.kind == "replace" and job.delete_first and "the Job runs again" in job.effects
    text, refused = diff.render(diff.StackDiff(STACK, list(changes.values()), 0, 0), "main")
    assert "deleteBeforeReplace" in text and not refused


def test_rotating_the_master_password_reaches_every_copy_of_it() -> None:
    base = run_stack("tier1", {"dbMasterPasswordRotation": "1"}).resources
    head = run_stack("tier1", {"dbMasterPasswordRotation": "2"}).resources
    changes = by_name(diff.diff_resources(base, head))
    assert changes["database-password"].kind == "replace"
    assert changes["database-primary"].kind == "update"
    assert changes["database-credentials-version"].kind == "replace"
    assert changes["workloads-bootstrap-db"].kind == "replace"
    assert changes["workloads-bootstrap"].kind == "replace"
    assert changes["workloads-bootstrap"].delete_first


def test_an_access_entry_whose_principal_changes_is_replaced() -> None:
    def stack(principal: str) -> list[Resource]:
        entry = "aws:eks/accessEntry:AccessEntry"
        association = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
        inputs = {"clusterName": "c", "principalArn": principal}
        return [resource(entry, "admin", inputs), resource(association, "admin-policy", inputs)]

    changes = diff.diff_resources(stack("arn:aws:iam::1:role/a"), stack("arn:aws:iam::1:role/b"))
    assert {c.resource.name: c.kind for c in changes} == {
        "admin": "replace",
        "admin-policy": "replace",
    }


def test_a_launch_template_tag_rolls_every_node(stack_run: StackRunner) -> None:
    base = stack_run("tier1").resources
    head = changed(
        base, "aws:ec2/launchTemplate:LaunchTemplate", lambda i: i["tags"].update(team="data")
    )
    changes = diff.diff_resources(base, head)
    groups = [c for c in changes if c.resource.type == "aws:eks/nodeGroup:NodeGroup"]
    assert sorted(c.kind for c in groups) == ["update", "update"]
    for group in groups:
        assert [p.path for p in group.properties] == ["launchTemplate.version"]
        assert any(e.startswith("every node rolls") for e in group.effects)


def test_a_cluster_rename_replaces_the_oidc_provider_and_updates_the_workload_roles(
    stack_run: StackRunner,
) -> None:
    base = stack_run("tier1").resources
    head = changed(base, CLUSTER, lambda i: i.update(name=i["name"] + "-b"))
    changes = diff.diff_resources(base, head)
    named = by_name(changes)
    assert named["cluster-eks"].kind == "replace"
    assert named["cluster-oidc"].kind == "replace"
    trust = [
        c
        for c in changes
        if c.resource.type == "aws:iam/role:Role"
        and any(p.path.startswith("assumeRolePolicy") for p in c.properties)
    ]
    assert trust and all(c.kind == "update" for c in trust)
    assert "cluster-oidc" in trust[0].follows
    # A new cluster is a new API server: the provider, and with it every object, is replaced.
    assert kinds(changes, "pulumi:providers:kubernetes") == {"cluster-k8s": "replace"}
    assert named["workloads-namespace"].kind == "replace"
    text, refused = diff.render(diff.StackDiff(STACK, changes, 0, 0), "main")
    assert refused and "network, cluster or namespace" in text


def test_an_rds_rename_reaches_the_secrets_holding_its_endpoint(stack_run: StackRunner) -> None:
    base = stack_run("tier1").resources
    head = changed(
        base, "aws:rds/instance:Instance", lambda i: i.update(identifier=i["identifier"] + "-b")
    )
    changes = by_name(diff.diff_resources(base, head))
    assert changes["database-primary"].kind == "update"
    assert changes["database-credentials-version"].kind == "replace"
    assert changes["workloads-api-db"].kind == "replace"
    assert changes["workloads-api"].kind == "update"
    assert changes["workloads-bootstrap"].kind == "replace"


def test_spelling_out_a_schema_default_is_no_change(stack_run: StackRunner) -> None:
    base = stack_run("tier1").resources
    head = changed(
        base,
        "aws:kms/key:Key",
        lambda i: i.setdefault("customerMasterKeySpec", "SYMMETRIC_DEFAULT"),
    )
    assert diff.diff_resources(base, head) == []
    other = changed(base, "aws:kms/key:Key", lambda i: i.update(customerMasterKeySpec="RSA_2048"))
    assert {c.kind for c in diff.diff_resources(base, other)} >= {"replace"}


def _kubeconfig(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(inputs: dict[str, Any]) -> None:
        config = json.loads(inputs["kubeconfig"])
        edit(config)
        inputs["kubeconfig"] = json.dumps(config)

    return apply


def test_an_env_var_in_the_kubeconfig_user_updates_the_provider_only(
    stack_run: StackRunner,
) -> None:
    base = stack_run("tier1").resources

    def env(config: dict[str, Any]) -> None:
        config["users"][0]["user"]["exec"].setdefault("env", []).append(
            {"name": "AWS_PROFILE", "value": "district"}
        )

    changes = diff.diff_resources(
        base, changed(base, "pulumi:providers:kubernetes", _kubeconfig(env))
    )
    assert [(c.kind, c.resource.type) for c in changes] == [
        ("update", "pulumi:providers:kubernetes")
    ]


def test_a_new_api_server_replaces_the_provider_and_the_namespace_fails_the_diff(
    stack_run: StackRunner,
) -> None:
    base = stack_run("tier1").resources

    def server(config: dict[str, Any]) -> None:
        config["clusters"][0]["cluster"]["server"] = "https://other.example.org"

    changes = diff.diff_resources(
        base, changed(base, "pulumi:providers:kubernetes", _kubeconfig(server))
    )
    namespace = next(c for c in changes if c.resource.type == "kubernetes:core/v1:Namespace")
    assert namespace.kind == "replace" and namespace.dangerous
    stack = diff.StackDiff(STACK, changes, 0, 0)
    assert diff.render(stack, "main")[1]
    assert not diff.render(stack, "main", [namespace.resource.urn])[1]


def test_replacing_the_vpc_fails_the_diff_unless_allowed(stack_run: StackRunner) -> None:
    base = stack_run("tier1").resources
    head = changed(base, "aws:ec2/vpc:Vpc", lambda i: i.update(cidrBlock="10.99.0.0/16"))
    changes = diff.diff_resources(base, head)
    [vpc] = [c for c in changes if c.resource.type == "aws:ec2/vpc:Vpc"]
    assert vpc.kind == "replace" and vpc.identity
    stack = diff.StackDiff(STACK, changes, 0, 0)
    text, refused = diff.render(stack, "main")
    assert refused and vpc.resource.urn in text
    allowed = [c.resource.urn for c in changes if c.dangerous]
    assert not diff.render(stack, "main", allowed)[1]


def test_a_stateless_parameter_group_with_a_data_tag_is_not_danger() -> None:
    def group(family: str) -> Resource:
        inputs = {"family": family, "tags": {"data-classification": "ferpa"}}
        return resource("aws:rds/parameterGroup:ParameterGroup", "params", inputs)

    [change] = diff.diff_resources([group("postgres16")], [group("postgres17")])
    assert change.kind == "replace" and change.ferpa and not change.dangerous
    text, refused = diff.render(diff.StackDiff(STACK, [change], 0, 0), "main")
    assert not refused and "DANGER" not in text


def test_a_named_aws_resource_is_deleted_before_it_is_replaced() -> None:
    queue = "aws:sqs/queue:Queue"
    named = [resource(queue, "q", {"name": "ssp-events", "fifoQueue": f}) for f in (False, True)]
    [change] = diff.diff_resources(named[:1], named[1:])
    assert change.kind == "replace" and change.delete_first
    assert "deleteBeforeReplace" in diff.render(diff.StackDiff(STACK, [change], 0, 0), "m")[0]
    prefixed = [resource(queue, "q", {"namePrefix": "ssp-", "fifoQueue": f}) for f in (0, 1)]
    [change] = diff.diff_resources(prefixed[:1], prefixed[1:])
    assert change.kind == "replace" and not change.delete_first


def test_only_the_secret_keys_whose_values_changed_are_listed() -> None:
    version = "aws:secretsmanager/secretVersion:SecretVersion"

    def stack(redis: str) -> list[Resource]:
        text = json.dumps({"API_KEY_PEPPER": "pepper-value", "REDIS_URL": redis})
        return [
            resource(version, "v", {"secretString": text}, secret_paths=frozenset({"secretString"}))
        ]

    [change] = diff.diff_resources(stack("rediss://a:6379"), stack("rediss://b:6379"))
    assert [p.path for p in change.properties] == ["secretString.REDIS_URL"]
    text = diff.render(diff.StackDiff(STACK, [change], 0, 0), "main")[0]
    assert "API_KEY_PEPPER" not in text and "rediss://" not in text and "pepper" not in text


def test_an_unknown_type_fails_the_diff_naming_it() -> None:
    unknown = resource("aws:ssm/parameter:Parameter", "p", {"value": "a"})
    with pytest.raises(replacements.UnknownTypeError, match="aws:ssm/parameter:Parameter"):
        diff.diff_resources([], [unknown])


def test_the_command_names_an_unknown_type_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = resource("aws:ssm/parameter:Parameter", "p", {"value": "a"})
    sides = ({}, {STACK: revision.Evaluation([unknown], 0.0)})
    monkeypatch.setattr(revision, "evaluate", lambda base, stacks: sides)
    assert diff.main(["HEAD", STACK]) == 2
    assert "aws:ssm/parameter:Parameter" in capsys.readouterr().err


# Config values that make a stack register types its stack file alone does not.
VARIANTS = {
    "tier1+admin": ("tier1", {"clusterAdminRoleArn": "arn:aws:iam::123456789012:role/ops"}),
}


@pytest.mark.parametrize("stack", [*stacks(), *VARIANTS])
def test_every_type_a_stack_registers_is_diffed(stack_run: StackRunner, stack: str) -> None:
    run = run_stack(*VARIANTS[stack]) if stack in VARIANTS else stack_run(stack)
    assert diff.diff_resources(run.resources, run.resources) == []


def test_a_spec_error_is_a_message_naming_the_key(tmp_path: Path) -> None:
    throwaway_repo(tmp_path)
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(
        stack_file.read_text() + "  student-success:dbMasterPasswordRotation: x\n"
    )
    with pytest.raises(ValueError, match="dbMasterPasswordRotation") as raised:
        revision.evaluate("HEAD", ["dev"], repo=tmp_path)
    assert "Traceback" not in str(raised.value) and "the working tree" in str(raised.value)
