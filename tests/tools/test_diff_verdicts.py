"""The reviewer's verdicts as the report shows them: which replacements pass, which are
listed under the danger heading (and stay listed once allowed), the alias a move goes
through, and the cost arithmetic. Only the rendered report is read, so that these hold
whatever the comparison does inside."""

from __future__ import annotations

import dataclasses

from tools import diff
from tools.harness import Options

from .test_diff import DB, DB_INPUTS, STACK, db, deployment, resource


def _report(
    base: list[diff.Resource], head: list[diff.Resource], allowed: tuple[str, ...] = ()
) -> tuple[list[str], bool]:
    stack = diff.StackDiff(STACK, diff.diff_resources(base, head), 10, 10)
    text, refused = diff.render(stack, "origin/main", allowed=allowed)
    return text.splitlines(), refused


def test_replacing_a_workload_outside_the_data_tier_passes_without_a_warning() -> None:
    lines, refused = _report([deployment({"app": "api"})], [deployment({"app": "ssp-api"})])
    assert not refused
    assert not [line for line in lines if line.startswith("!!")]
    assert "+- replace kubernetes:apps/v1:Deployment workloads-api" in "\n".join(lines)


def test_a_protected_workload_replaced_is_listed_under_the_danger_heading_even_once_allowed() -> (
    None
):
    def protected(selector: dict[str, str]) -> diff.Resource:
        return dataclasses.replace(deployment(selector), options=Options(protect=True))

    head = protected({"app": "ssp-api"})
    lines, refused = _report([protected({"app": "api"})], [head])
    assert refused
    assert lines[2] == "!! DANGER: 1 protected or FERPA resource(s) replaced or deleted"
    assert lines[3].startswith("!! +- replace kubernetes:apps/v1:Deployment workloads-api")
    assert f"!!   {head.urn}" in lines
    lines, refused = _report([protected({"app": "api"})], [head], allowed=(head.urn,))
    assert not refused
    assert lines[2] == "!! DANGER: 1 protected or FERPA resource(s) replaced or deleted"
    assert "(every dangerous change above is allowed with --allow-replace)" in lines


def test_a_ferpa_database_replaced_is_refused_once_not_listed_twice() -> None:
    lines, refused = _report([db()], [db(storageEncrypted=False)])
    assert refused
    assert sum(line.startswith("!! +- replace") for line in lines) == 1
    assert not any(line.startswith("!! data tier") for line in lines)


def test_an_unprotected_database_replaced_is_listed_under_the_data_tier_heading() -> None:
    base = resource(DB, "scratch-db", {**DB_INPUTS, "tags": {}})
    head = resource(DB, "scratch-db", {**DB_INPUTS, "tags": {}, "storageEncrypted": False})
    lines, refused = _report([base], [head])
    assert refused
    assert lines[2] == "!! DANGER: 1 data tier / load balancer: replaced or deleted"
    assert not any("protected or FERPA" in line for line in lines)


def test_a_move_through_an_alias_shows_the_urn_it_takes_over() -> None:
    old = resource(DB, "db-instance", DB_INPUTS)
    moved = resource(
        DB, "database-instance", {**DB_INPUTS, "allocatedStorage": 600}, previous=(old.urn,)
    )
    lines, _ = _report([old], [moved])
    [at] = [i for i, line in enumerate(lines) if line.startswith(f"~ update {DB} database-")]
    assert lines[at] == f"~ update {DB} database-instance  [ferpa]"
    assert lines[at + 1] == f"    (was {old.urn}, through an alias)"
    assert lines[at + 2] == "    allocatedStorage: 500 -> 600"


def test_the_cost_lines_show_each_item_that_changes_to_the_cent_and_the_total() -> None:
    stack = diff.StackDiff(
        STACK,
        [],
        1000.0,
        1200.5,
        cost_items_before={"database": 800.0, "cache": 200.0, "nat": 0.004},
        cost_items_after={"database": 1000.5, "cache": 200.0, "endpoints": 0.0},
    )
    lines = diff.render(stack, "origin/main")[0].splitlines()
    at = lines.index("estimated monthly cost, by item:")
    # Unchanged (to the cent) items are left out; a new or gone item counts from $0.
    assert lines[at + 1 : at + 3] == ["    database: $800.00 -> $1,000.50", ""]
    assert lines[-1] == (
        "tier3: 0 to create, 0 to update, 0 to replace, 0 to delete; "
        "estimated cost $1,000 -> $1,200/month (+$200)"
    )
    grew = dataclasses.replace(stack, cost_items_after={"database": 800.0, "nat": 0.0, "x": 1})
    text = diff.render(grew, "origin/main")[0]
    assert "    x: $0.00 -> $1.00" in text and "nat" not in text


def test_a_cost_falling_by_a_dollar_shows_as_a_fall() -> None:
    assert diff.StackDiff(STACK, [], 100.0, 99.0).summary().endswith("$100 -> $99/month (-$1)")


def test_only_a_named_kubernetes_object_is_deleted_before_its_replacement() -> None:
    unnamed = deployment({"app": "api"}), deployment({"app": "ssp-api"})
    lines, _ = _report([unnamed[0]], [unnamed[1]])
    assert not any("deleteBeforeReplace" in line for line in lines)
    named = [
        dataclasses.replace(d, inputs={**d.inputs, "metadata": {"namespace": "ssp", "name": "api"}})
        for d in unnamed
    ]
    lines, _ = _report([named[0]], [named[1]])
    assert any("[deleteBeforeReplace: gone until recreated]" in line for line in lines)


def test_only_a_deletion_of_a_retained_resource_is_said_to_stay_in_the_account() -> None:
    def kept(selector: dict[str, str]) -> diff.Resource:
        return dataclasses.replace(deployment(selector), options=Options(retain_on_delete=True))

    lines, _ = _report([kept({"app": "api"})], [kept({"app": "ssp-api"})])
    assert not any("stays in the account" in line for line in lines)
    lines, _ = _report([kept({"app": "api"})], [])
    assert any("[retainOnDelete: stays in the account]" in line for line in lines)


def test_a_cost_item_unchanged_to_the_cent_is_left_out_and_an_unpriced_one_shows_coming() -> None:
    unpriced = "EKS nodes cluster-gpu: 2 x g9.huge (price unknown)"
    stack = diff.StackDiff(
        STACK,
        [],
        10.0,
        10.0,
        cost_items_before={"nat": 10.044, unpriced: 0.0},
        cost_items_after={"nat": 10.044, unpriced: 0.0, f"{unpriced} 2": 0.0},
    )
    assert stack.cost_changes() == [(f"{unpriced} 2", 0.0, 0.0)]


def test_a_deleted_bucket_is_refused_unless_the_account_keeps_it() -> None:
    bucket = resource("aws:s3/bucket:Bucket", "exports-bucket", {})
    kept = resource("aws:s3/bucket:Bucket", "exports-bucket", {}, retain_on_delete=True)
    assert _report([bucket], [])[1]
    assert not _report([kept], [])[1]


def test_an_extra_section_is_shown_and_refuses_the_diff_only_when_it_says_so() -> None:
    from tools.diff.report import Section

    stack = diff.StackDiff(STACK, [], 10, 10)

    def note(_diff: diff.StackDiff, _allowed: frozenset[str]) -> Section:
        return Section(["posture: unchanged"])

    def veto(_diff: diff.StackDiff, _allowed: frozenset[str]) -> Section:
        return Section(["posture: a bucket opened to the world"], blocked=True)

    text, refused = diff.render(stack, "origin/main", sections=[note])
    assert "\nposture: unchanged\n" in text and not refused
    text, refused = diff.render(stack, "origin/main", sections=[note, veto])
    assert "\nposture: a bucket opened to the world\n" in text and refused


def test_a_change_forced_by_another_names_the_one_it_follows_and_only_that_one() -> None:
    """A new image replaces the SageMaker model; the endpoint configuration naming it is
    replaced in turn and says so; the model's own change follows nothing."""

    def stack(image: str) -> list[diff.Resource]:
        model = resource(
            "aws:sagemaker/model:Model", "model", {"primaryContainer": {"image": image}}
        )
        config = resource(
            "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
            "config",
            {"productionVariants": [{"modelName": model.id, "variantName": "primary"}]},
            depends_on=(model.urn,),
        )
        return [model, config]

    lines, _ = _report(stack("a:1"), stack("a:2"))
    [config] = [i for i, line in enumerate(lines) if line.endswith("EndpointConfiguration config")]
    assert "    (follows model)" in lines[config:]
    assert sum(line.strip().startswith("(follows") for line in lines) == 1


def test_a_diff_without_changes_says_so_and_one_with_changes_does_not() -> None:
    lines, refused = _report([deployment({"app": "api"})], [deployment({"app": "api"})])
    assert "no changes" in lines and not refused
    lines, _ = _report([deployment({"app": "api"})], [deployment({"app": "ssp-api"})])
    assert "no changes" not in lines
