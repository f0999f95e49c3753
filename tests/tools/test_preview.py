"""The harness evaluates a stack as a first preview does: every computed output unknown."""

from __future__ import annotations

from pulumi.runtime import rpc

from tests.shared import BUCKET, BUCKET_POLICY, OPTIONS_PROGRAM
from tools.harness import run_stack


def test_a_first_preview_leaves_computed_outputs_unknown() -> None:
    run = run_stack("dev", program=OPTIONS_PROGRAM, preview=True)
    bucket = run.one(BUCKET, "kept")
    assert bucket.id == ""
    # Known inputs stay known; an input made from another resource's output does not.
    assert bucket.inputs["tags"] == {"purpose": "harness-test"}
    assert run.outputs["bucket_arn"] == rpc.UNKNOWN
    assert run.outputs["token"] == "s3cr3t-value"


def test_inputs_made_of_unknown_outputs_are_unknown() -> None:
    policy = run_stack("dev", preview=True).one(BUCKET_POLICY, "models-policy")
    assert policy.inputs == {"bucket": rpc.UNKNOWN, "policy": rpc.UNKNOWN}


def test_a_first_preview_of_every_stack_registers_what_an_up_does() -> None:
    for stack in ("dev", "tier3"):
        # A new stack's first preview and its first up read the same config: the stack file.
        preview = {r.urn for r in run_stack(stack, preview=True)}
        up = {r.urn for r in run_stack(stack, first_up=True)}
        assert preview == up, stack
    # A deployed stack's preview (its model published) plans what its up does too.
    deployed = {r.urn for r in run_stack("tier3", preview=True, first_up=False)}
    assert deployed == {r.urn for r in run_stack("tier3")}
