"""The move tools: what a move may replace or delete (and the checks that catch a move that is
not safe), and the grow command's report for an operator."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from tests.tools.test_diff import resource
from tools import diff, grow, growth, moves
from tools.harness import ROOT, StackRun

FERPA = {"data-classification": "ferpa"}
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def up(*changes: diff.Change) -> growth.Up:
    run = StackRun("s", {}, [], {}, frozenset())
    return growth.Up({}, run, diff.StackDiff("s", list(changes), 0, 0))


def replaced(type_: str, name: str, inputs: dict[str, Any], **options: Any) -> diff.Change:
    return diff.Change("replace", resource(type_, name, inputs, **options))


ROLLING_GROUP = {"nodeGroupNamePrefix": "app-", "updateConfig": {"maxUnavailablePercentage": 33}}


def test_a_node_group_rolling_onto_a_new_generated_name_is_allowed() -> None:
    assert growth.problems(up(replaced(NODE_GROUP, "cluster-app", ROLLING_GROUP))) == []


@pytest.mark.parametrize(
    ("inputs", "options", "why"),
    [
        ({"nodeGroupName": "app", "updateConfig": {}}, {}, "needs node_group_name_prefix"),
        (ROLLING_GROUP, {"delete_before_replace": True}, "deleteBeforeReplace"),
        ({"nodeGroupNamePrefix": "app-"}, {}, "needs update_config"),
    ],
)
def test_a_node_group_that_would_drop_pods_is_not(
    inputs: dict[str, Any], options: dict[str, Any], why: str
) -> None:
    [problem] = growth.problems(up(replaced(NODE_GROUP, "cluster-app", inputs, **options)))
    assert why in problem


def test_data_replaced_or_deleted_is_never_allowed() -> None:
    bucket = replaced("aws:s3/bucket:Bucket", "models-bucket", {"bucket": "b", "tags": FERPA})
    logs = diff.Change(
        "delete", resource("aws:cloudwatch/logGroup:LogGroup", "db-logs", {"tags": FERPA})
    )
    found = growth.problems(up(bucket, logs))
    assert "replace aws:s3/bucket:Bucket models-bucket: it holds data" in found
    assert "delete aws:cloudwatch/logGroup:LogGroup db-logs: it holds data" in found
    assert "the reviewer's diff refuses it (exit 1)" in found


def test_a_retained_log_group_may_go_and_a_fixed_name_may_not_roll() -> None:
    kept = diff.Change(
        "delete",
        resource("aws:cloudwatch/logGroup:LogGroup", "waf-logs", {}, retain_on_delete=True),
    )
    named = replaced(
        "kubernetes:core/v1:ConfigMap", "workloads-config", {"metadata": {"name": "config"}}
    )
    other = replaced("aws:ec2/vpc:Vpc", "network-vpc", {})
    assert growth.problems(up(kept, named, other)) == [
        "replace kubernetes:core/v1:ConfigMap workloads-config: has a fixed name: the old one "
        "would go first",
        "replace aws:ec2/vpc:Vpc network-vpc: on no list of what a move may replace or delete",
        "the reviewer's diff refuses it (exit 1)",  # the VPC: identity of the whole network
    ]


def test_every_allowed_change_says_why() -> None:
    assert all(len(a.reason) > 40 for a in growth.ALLOWED)
    assert len({(a.type, a.kind) for a in growth.ALLOWED}) == len(growth.ALLOWED)


def test_the_keys_a_tier_requires_are_added_along_the_way_up() -> None:
    assert moves.config_at("dev", "dev") == {}
    assert moves.config_at("dev", "tier1") == {
        "tier": "tier1",
        "apiDomainName": "api.dev.ssp.example.org",
        "hostedZoneId": "Z5B669DD3286DFE3E07",
    }
    # The stack file's own keys win; tier3's backups go to another region.
    assert moves.config_at("tier2", "tier3") == {
        "tier": "tier3",
        "edgeDomainName": "tier2.ssp.example.org",
        "dbBackupRegion": "us-west-2",
    }


def test_grow_prints_the_diff_the_cost_and_the_steps() -> None:
    # As an operator runs it, in a process of its own.
    done = subprocess.run(
        [sys.executable, "-m", "tools.plan", "grow", "tier1", "--to", "tier2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("# grow tier1: tier1 -> tier2, 1 up(s)")
    assert "## up 1 of 1: set tier: tier2 in Pulumi.tier1.yaml" in out
    # Seven Secrets Manager secrets on either side (the master and six logins' at $0.40).
    assert "tier1: 44 to create" in out and "cost: $436 -> $1,231/month (+$795)" in out
    person = out.split("## needs a person")[1].split("## happens by itself")[0]
    assert "instance class db.t4g.medium -> db.m6g.xlarge" in person
    assert "max_connections, shared_buffers pending-reboot" in person
    assert "QUEUE_DRAIN_POSTGRES" in person and "event_queue" in person
    assert "node groups cluster-app, cluster-system roll" in out.split("## happens by itself")[1]


def test_grow_refuses_moving_down_or_past_the_top(capsys: pytest.CaptureFixture[str]) -> None:
    assert grow.main(["tier2", "--to", "tier1"]) == 2
    assert "below the deployed tier2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        grow.main(["tier4-east"])
