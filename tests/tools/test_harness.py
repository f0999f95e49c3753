"""The mocks harness records what the engine would see: options, secrets, outputs."""

from __future__ import annotations

import dataclasses
import gc
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.shared import BUCKET, OPTIONS_PROGRAM, SSM_PARAMETER
from tools.harness import ROOT, StackRun, run_stack, stacks
from tools.shared_evaluations import SHARED_EVALUATIONS, SharedEvaluation, share_evaluations
from tools.stack_config import config_value


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


def registered(run: StackRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a run registered and exported, whatever the order its resources came in (which
    varies between runs of one program)."""
    return {r.urn: r.inputs for r in run}, run.outputs


def test_a_shared_evaluation_is_the_evaluation_and_a_patching_test_never_shares(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SHARED_EVALUATIONS, str(tmp_path))
    share_evaluations(True)  # as for a test that patches nothing (tests/conftest.py)
    evaluated = run_stack("tier1")
    [kept] = tmp_path.glob("*.pickle")
    shared = run_stack("tier1")  # read back: as if another process had evaluated it
    assert shared == evaluated and shared is not evaluated
    other = run_stack("tier1", {"owner": "platform-b"})  # its own config, its own entry
    assert registered(other) != registered(evaluated)
    assert len(list(tmp_path.glob("*.pickle"))) == 2
    kept.write_bytes(b"")  # what a patched run would read, if it read
    share_evaluations(False)  # this test patches (the environment)
    assert registered(run_stack("tier1")) == registered(evaluated)
    run_stack("tier1", {"owner": "platform-c"})
    assert len(list(tmp_path.glob("*.pickle"))) == 2  # nothing written either
    share_evaluations(True)
    assert run_stack("dev", program=OPTIONS_PROGRAM).resources  # not this checkout's program
    assert len(list(tmp_path.glob("*.pickle"))) == 2


def test_an_evaluation_asked_for_while_another_process_makes_it_waits_for_that_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SHARED_EVALUATIONS, str(tmp_path))
    share_evaluations(True)
    evaluated = run_stack("dev")
    [kept] = tmp_path.glob("*.pickle")
    made_elsewhere = dataclasses.replace(evaluated, outputs={"made": "elsewhere"})
    kept.unlink()
    found: list[StackRun] = []
    with SharedEvaluation(kept).claimed():  # another process is evaluating it
        asking = threading.Thread(target=lambda: found.append(run_stack("dev")))
        asking.start()
        asking.join(2)
        assert asking.is_alive()  # waiting, not evaluating
        SharedEvaluation(kept).keep(made_elsewhere)
    asking.join(30)
    assert found == [made_elsewhere]  # read what the other process kept
    kept.unlink()
    with SharedEvaluation(kept).claimed():
        pass  # the other process failed: nothing kept
    assert registered(run_stack("dev")) == registered(evaluated)  # evaluated here


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


# A program whose bucket policy waits on a deferred output, as the models bucket's policy
# waits on the distribution's ARN (components.edge.parts.AssetsGrant), and that stops before
# the output is resolved. The harness must fail with the program's own error, not wait
# forever on the policy.
_STOPS_BEFORE_RESOLVING = """
import pulumi
import pulumi_aws as aws

bucket = aws.s3.Bucket("models")
distribution_arn, resolve = pulumi.deferred_output()
aws.s3.BucketPolicy("models-policy", bucket=bucket.id, policy=distribution_arn)
{stop}
resolve(bucket.arn)
"""


def _run_in_its_own_process(tmp_path: Path, stop: str) -> subprocess.CompletedProcess[str]:
    """Run the program under the harness in a process of its own, bounded in time: a hang
    must fail the test, not the CI job."""
    program = tmp_path / "__main__.py"
    program.write_text(_STOPS_BEFORE_RESOLVING.format(stop=stop))
    script = (
        "import sys\nfrom pathlib import Path\nfrom tools.harness import run_stack\n"
        f"run_stack('dev', program=Path({str(program)!r}))\n"
    )
    try:
        return subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the harness hung instead of failing")


def test_a_program_that_stops_with_an_output_unresolved_fails_with_its_error(
    tmp_path: Path,
) -> None:
    result = _run_in_its_own_process(tmp_path, "raise ValueError('tier row has no size')")
    assert result.returncode != 0
    assert "ValueError: tier row has no size" in result.stderr
    # The registration left waiting is named.
    assert "aws:s3/bucketPolicy:BucketPolicy 'models-policy'" in result.stderr


def test_an_apply_that_raises_before_an_output_is_resolved_fails_naming_its_resource(
    tmp_path: Path,
) -> None:
    stop = "aws.ssm.Parameter('size', type='String', value=bucket.arn.apply(lambda a: None + 1))"
    result = _run_in_its_own_process(tmp_path, stop)
    assert result.returncode != 0
    assert "TypeError: unsupported operand type(s) for +: 'NoneType' and 'int'" in result.stderr
    assert "aws:ssm/parameter:Parameter 'size'" in result.stderr


def test_an_exception_in_an_apply_names_the_resource_whose_input_it_computes(
    tmp_path: Path,
) -> None:
    program = tmp_path / "__main__.py"
    program.write_text(
        "import pulumi_aws as aws\n\nbucket = aws.s3.Bucket('b')\n"
        "aws.ssm.Parameter('p', type='String', value=bucket.arn.apply(lambda a: None + 1))\n"
    )
    with pytest.raises(TypeError) as raised:
        run_stack("dev", program=program)
    assert "aws:ssm/parameter:Parameter 'p'" in "\n".join(raised.value.__notes__)
