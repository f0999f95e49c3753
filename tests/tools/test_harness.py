"""The mocks harness records what the engine would see: options, secrets, outputs."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import yaml

from tests.shared import BUCKET, OPTIONS_PROGRAM, SSM_PARAMETER
from tools.harness import ROOT, config_value, run_stack, stacks


def test_every_stack_file_is_found() -> None:
    assert {"dev", "tier1", "tier2", "tier3", "tier4"} <= set(stacks())


def test_harness_records_resource_options() -> None:
    run = run_stack("dev", program=OPTIONS_PROGRAM)
    bucket = run.one(BUCKET, "kept")
    assert bucket.options.protect
    assert bucket.options.retain_on_delete
    assert bucket.options.delete_before_replace
    assert bucket.options.ignore_changes == ("tags",)
    assert bucket.options.additional_secret_outputs == ("bucket",)
    assert any("old-name" in alias for alias in bucket.options.aliases)


def test_harness_unwraps_secrets_and_remembers_where_they_were() -> None:
    run = run_stack("dev", program=OPTIONS_PROGRAM)
    param = run.one(SSM_PARAMETER, "token")
    assert param.inputs["value"] == "s3cr3t-value"
    assert param.secret_paths == {"value"}
    assert param.parent == run.one(BUCKET).urn
    assert run.outputs["token"] == "s3cr3t-value"
    assert run.secret_outputs == {"token"}
    assert run.outputs["bucket_arn"].startswith("arn:aws:s3:::")


def test_query_api() -> None:
    run = run_stack("dev", program=OPTIONS_PROGRAM)
    assert run.count(BUCKET) == 1
    assert run.has_properties(BUCKET, {"tags": {"purpose": "harness-test"}})
    assert not run.has_properties(BUCKET, {"tags": {"purpose": "other"}})
    assert run.children(run.one(BUCKET))[0].name == "token"


def test_each_run_starts_from_a_fresh_runtime() -> None:
    first = run_stack("dev", program=OPTIONS_PROGRAM)
    second = run_stack("dev", program=OPTIONS_PROGRAM)
    assert len(first.resources) == len(second.resources) == 4
    assert set(second.outputs) == {"bucket_arn", "token"}


def test_a_run_that_fails_in_an_apply_leaves_the_next_run_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The sibling stack runs in us-west-2: the check fails inside an apply, after hundreds
    # of registrations are under way.
    with pytest.raises(ValueError, match="runs in us-west-2"):
        run_stack("tier4-east", {"dbReportingReplica": "eu-west-1=tier4-west"})
    gc.collect()
    assert len(run_stack("dev", program=OPTIONS_PROGRAM).resources) == 4
    gc.collect()
    assert "never retrieved" not in capsys.readouterr().err


def test_harness_resolves_aliases_as_the_engine_does() -> None:
    run = run_stack("dev", program=OPTIONS_PROGRAM)
    prefix = "urn:pulumi:dev::student-success::"
    bucket = f"{prefix}aws:s3/bucket:Bucket"
    token = run.one(SSM_PARAMETER, "token")
    # A child's URN carries its parent's type chain, so a child answers to its URN under
    # every type its parent answers to (pulumi-aws aliases Bucket to the older BucketV2).
    assert token.previous_urns == {
        f"{bucket}$aws:ssm/parameter:Parameter::token",
        f"{prefix}aws:s3/bucketV2:BucketV2$aws:ssm/parameter:Parameter::token",
    }
    assert f"{bucket}::old-name" in run.one(BUCKET).previous_urns
    moved = run.one(SSM_PARAMETER, "moved")
    assert moved.urn == f"{prefix}test:index:Owner$aws:ssm/parameter:Parameter::moved"
    assert moved.previous_urns == {
        moved.urn,
        f"{bucket}$aws:ssm/parameter:Parameter::moved",
        f"{prefix}aws:s3/bucketV2:BucketV2$aws:ssm/parameter:Parameter::moved",
    }


def test_a_duplicate_urn_is_refused_as_the_engine_does(tmp_path: Path) -> None:
    program = tmp_path / "__main__.py"
    program.write_text(
        "import pulumi_aws as aws\n\naws.s3.Bucket('twice')\naws.s3.Bucket('twice')\n"
    )
    with pytest.raises(ValueError, match=r"duplicate resource URNs.*Bucket::twice"):
        run_stack("dev", program=program)


def test_the_program_gets_every_pulumi_yaml_default_the_stack_file_leaves_unset() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    run = run_stack("dev", program=OPTIONS_PROGRAM, extra_config={"owner": "district-it"})
    assert {f"student-success:{key}" for key in declared} <= set(run.config)
    # As the CLI hands them over: strings, Go's %v of a primitive, compact JSON of a list.
    assert run.config["student-success:sagemakerModelPublished"] == "false"
    assert run.config["student-success:overrides"] == "[]"
    assert run.config["student-success:vpcCidr"] == declared["vpcCidr"]["default"]
    # What the stack sets wins over the default.
    assert run.config["student-success:tier"] == "dev"
    assert run.config["student-success:owner"] == "district-it"


@pytest.mark.parametrize(
    ("value", "text"), [(True, "true"), (3, "3"), (["a", "b"], '["a","b"]'), ("x y", "x y")]
)
def test_config_values_are_handed_over_as_the_cli_does(value: object, text: str) -> None:
    assert config_value(value) == text
