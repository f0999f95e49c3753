"""The providers' own comparison rules the plan diff follows: an Optional+Computed input the
program stops setting keeps the state's value (``""`` is a value), sets compare by key, a
parameter's ``applyMethod`` alone is no change; and what counts as dangerous."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tools.test_diff import only, resource
from tools import diff, provider_diff, replacements
from tools.replacements import refresh

DB = "aws:rds/instance:Instance"
PARAMS = "aws:rds/parameterGroup:ParameterGroup"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
BUCKET = "aws:s3/bucket:Bucket"
K8S_SECRET = "kubernetes:core/v1:Secret"
FERPA = {"data-classification": "ferpa"}


def primary(**inputs: Any) -> Any:
    base = {"identifier": "ssp-tier2-db", "instanceClass": "db.m6g.xlarge", "tags": FERPA}
    return resource(DB, "database-primary", {**base, **inputs}, protect=True)


def test_an_availability_zone_dropped_as_multi_az_turns_on_is_kept_from_state() -> None:
    # The program drops the AZ (Optional+Computed+ForceNew) as Multi-AZ turns on: the
    # provider keeps the state's AZ and only modifies MultiAZ, in place.
    base = primary(availabilityZone="us-east-1a", multiAz=False)
    head = primary(multiAz=True)
    change = only(diff.diff_resources([base], [head]))
    assert change.kind == "update"
    assert [(p.path, p.old, p.new) for p in change.properties] == [("multiAz", False, True)]
    text, refused = diff.render(diff.StackDiff("tier2", [change], 0, 0), "tier2")
    assert not refused and "availabilityZone" not in text


def test_an_empty_availability_zone_is_a_value_and_replaces() -> None:
    base = primary(availabilityZone="us-east-1a", multiAz=False)
    change = only(diff.diff_resources([base], [primary(availabilityZone="", multiAz=True)]))
    assert change.kind == "replace" and change.dangerous
    [az] = [p for p in change.properties if p.path == "availabilityZone"]
    assert (az.old, az.new, az.replaces) == ("us-east-1a", "", "aws replaces on availabilityZone")


def test_an_availability_zone_set_again_is_a_replacement() -> None:
    # Absent in the base, set in the head: the provider compares it with the state's AZ,
    # which a failover may have moved; the diff cannot tell, so it reports the replacement.
    change = only(diff.diff_resources([primary()], [primary(availabilityZone="us-east-1a")]))
    assert change.kind == "replace"


def node_group(**inputs: Any) -> Any:
    base = {"clusterName": "ssp", "subnetIds": ["a", "b"], "launchTemplate": {"version": "3"}}
    return resource(NODE_GROUP, "cluster-app", {**base, **inputs})


def test_optional_computed_lists_and_nested_attributes_dropped_are_no_change() -> None:
    base = node_group(
        instanceTypes=["m6i.large"],
        launchTemplate={"id": "lt-1", "version": "3"},
    )
    assert diff.diff_resources([base], [node_group()]) == []


def test_an_optional_computed_list_that_changes_still_replaces() -> None:
    base = node_group(instanceTypes=["m6i.large"])
    change = only(diff.diff_resources([base], [node_group(instanceTypes=["m6i.2xlarge"])]))
    assert change.kind == "replace"


def test_an_optional_computed_attribute_inside_a_list_block_is_kept_per_item() -> None:
    variant = {"modelName": "m", "instanceType": "ml.m5.large", "variantName": "AllTraffic"}
    base = resource(ENDPOINT_CONFIG, "inference-config", {"productionVariants": [variant]})
    dropped = {k: v for k, v in variant.items() if k != "variantName"}
    head = resource(ENDPOINT_CONFIG, "inference-config", {"productionVariants": [dropped]})
    assert diff.diff_resources([base], [head]) == []


def parameter_group(*parameters: tuple[str, str, str]) -> Any:
    return resource(
        PARAMS,
        "database-params",
        {
            "family": "postgres16",
            "parameters": [{"name": n, "value": v, "applyMethod": m} for n, v, m in parameters],
            "tags": FERPA,
        },
    )


def test_an_apply_method_alone_is_no_change() -> None:
    base = parameter_group(("work_mem", "4096", "immediate"))
    head = parameter_group(("work_mem", "4096", "pending-reboot"))
    assert diff.diff_resources([base], [head]) == []


def test_parameters_compare_by_name_and_static_ones_note_the_reboot() -> None:
    base = parameter_group(
        ("max_connections", "50", "pending-reboot"), ("work_mem", "4096", "immediate")
    )
    head = parameter_group(
        ("work_mem", "16384", "immediate"), ("max_connections", "200", "pending-reboot")
    )
    change = only(diff.diff_resources([base], [head]))
    assert change.kind == "update" and not change.dangerous
    assert [(p.path, p.old, p.new, p.note) for p in change.properties] == [
        ("parameters[max_connections].value", "50", "200", provider_diff.PENDING_REBOOT),
        ("parameters[work_mem].value", "4096", "16384", None),
    ]
    text, _ = diff.render(diff.StackDiff("tier1", [change], 0, 0), "tier1")
    assert "max_connections].value: 50 -> 200  <- static: applied at the" in text


def test_a_ferpa_tag_on_a_type_that_holds_no_data_is_not_data_loss() -> None:
    base = parameter_group(("work_mem", "4096", "immediate"))
    head = resource(PARAMS, "database-params", {**base.inputs, "family": "postgres17"})
    change = only(diff.diff_resources([base], [head]))
    assert change.kind == "replace" and change.ferpa and not change.dangerous
    bucket = resource(BUCKET, "audit-archive-bucket", {"bucket": "a", "tags": FERPA})
    renamed = resource(BUCKET, "audit-archive-bucket", {"bucket": "b", "tags": FERPA})
    assert only(diff.diff_resources([bucket], [renamed])).dangerous


def test_a_deletion_that_retains_the_resource_is_not_data_loss() -> None:
    kept = resource(BUCKET, "waf-logs", {"bucket": "a", "tags": FERPA}, retain_on_delete=True)
    gone = resource(BUCKET, "old-logs", {"bucket": "b", "tags": FERPA})
    changes = diff.diff_resources([kept, gone], [])
    assert [(c.resource.name, c.dangerous) for c in changes] == [
        ("waf-logs", False),
        ("old-logs", True),
    ]
    text, refused = diff.render(diff.StackDiff("tier3", changes, 0, 0), "tier3")
    assert "retainOnDelete: stays in the account" in text and refused


def app_secret(data: dict[str, str]) -> Any:
    return resource(
        K8S_SECRET,
        "workloads-secret",
        {"metadata": {"namespace": "ssp"}, "stringData": data},
        secret_paths=frozenset({"stringData"}),
    )


def test_a_secret_gaining_a_key_lists_that_key_only() -> None:
    # The API key pepper is the same value before and after: listing it as changed would
    # tell a reviewer every API key is about to stop working.
    base = app_secret({"API_KEY_PEPPER": "p"})
    head = app_secret({"API_KEY_PEPPER": "p", "REDIS_URL": "rediss://cache"})
    change = only(diff.diff_resources([base], [head]))
    assert [p.path for p in change.properties] == ["stringData.REDIS_URL"]
    changed = app_secret({"API_KEY_PEPPER": "q"})
    assert [p.path for p in only(diff.diff_resources([base], [changed])).properties] == [
        "stringData.API_KEY_PEPPER"
    ]


def test_the_types_the_moves_touch_have_their_optional_computed_inputs() -> None:
    for type_ in (
        DB,
        NODE_GROUP,
        "aws:elasticache/replicationGroup:ReplicationGroup",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:sagemaker/model:Model",
        ENDPOINT_CONFIG,
        "aws:sagemaker/endpoint:Endpoint",
    ):
        rule = replacements.rule(type_)
        assert rule is not None and rule.optional_computed, type_
        assert replacements.table("aws")["types"][type_]["optional_computed_source"], type_


SDK_GO = """
// @SDKResource("aws_thing", name="Thing")
func resourceThing() *schema.Resource {
	return &schema.Resource{
		Schema: map[string]*schema.Schema{
			names.AttrAvailabilityZone: {
				Type:     schema.TypeString,
				Optional: true,
				Computed: true,
				ForceNew: true,
			},
			"instance_class": {Type: schema.TypeString, Required: true},
			"launch_template": {
				Type:     schema.TypeList,
				Optional: true,
				Elem: &schema.Resource{
					Schema: map[string]*schema.Schema{
						names.AttrID: {Type: schema.TypeString, Optional: true, Computed: true},
						"version": {Type: schema.TypeString, Required: true},
					},
				},
			},
			"update_config": {
				Type:     schema.TypeList,
				Optional: true,
				Computed: true,
				Elem: &schema.Resource{
					Schema: map[string]*schema.Schema{
						"max_unavailable": {Type: schema.TypeInt, Optional: true},
					},
				},
			},
		},
	}
}
"""

FRAMEWORK_GO = """
// @FrameworkResource("aws_other", name="Other")
func newOther(context.Context) (resource.ResourceWithConfigure, error) {
	return &otherResource{}, nil
}

func (r *otherResource) Schema(ctx context.Context, req resource.SchemaRequest,
	resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Attributes: map[string]schema.Attribute{
			"description": schema.StringAttribute{Optional: true, Computed: true},
		},
	}
}
"""


def test_refresh_reads_optional_computed_from_terraform_sources(tmp_path: Path) -> None:
    service = tmp_path / "internal" / "service" / "thing"
    service.mkdir(parents=True)
    (service / "thing.go").write_text(SDK_GO)
    (service / "other.go").write_text(FRAMEWORK_GO)
    names = {"AvailabilityZone": "availability_zone", "ID": "id"}
    thing = refresh.optional_computed_paths(refresh.terraform_schema(tmp_path, "aws_thing"), names)
    assert [refresh.pulumi_path(p) for p in thing] == [
        "availabilityZone",
        "launchTemplate.id",
        "updateConfig",
    ]
    # The plugin framework marks a dropped Computed attribute unknown instead: not listed.
    other = refresh.terraform_schema(tmp_path, "aws_other")
    assert refresh.optional_computed_paths(other, names) == []
