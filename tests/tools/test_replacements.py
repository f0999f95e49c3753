"""The replacement tables: they cover every resource type the program registers, name real
inputs of the pinned SDKs, and their refresh script reads the providers' sources right."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.shared import StackRunner
from tools import replacements
from tools.harness import stacks
from tools.replacements import refresh


@pytest.mark.parametrize("stack", stacks())
def test_every_registered_type_is_covered(stack_run: StackRunner, stack: str) -> None:
    types = {r.type for r in stack_run(stack) if r.custom}
    missing = replacements.uncovered(types)
    assert not missing, (
        f"{stack} registers types no table in tools/replacements covers: {missing}; add them "
        "(with their Terraform name for AWS) and run tools/replacements/refresh.py"
    )


def test_uncovered_types_are_reported() -> None:
    assert replacements.uncovered(["aws:rds/cluster:Cluster", "aws:rds/instance:Instance"]) == [
        "aws:rds/cluster:Cluster"
    ]


# Providers published by the Pulumi community (pulumiverse) under their own package names.
COMMUNITY_PACKAGES = {"grafana": "pulumiverse_grafana", "time": "pulumiverse_time"}


def _sdk_class(type_: str) -> type | None:
    """The SDK class of a type token, or None for a custom resource the SDK does not ship
    (a CRD such as the load balancer controller's TargetGroupBinding)."""
    provider, module_path, name = type_.split(":")
    first, _, rest = module_path.partition("/")
    if provider == "kubernetes":
        parts = [first.split(".")[0], rest]
    else:
        parts = [] if first == "index" else [first]
    try:
        package = COMMUNITY_PACKAGES.get(provider, f"pulumi_{provider}")
        module = importlib.import_module(".".join([package, *parts]))
    except ModuleNotFoundError:
        return None
    found = getattr(module, name, None)
    return found if isinstance(found, type) else None


def _inputs(cls: type) -> set[str]:
    return {
        getattr(p.fget, "_pulumi_name", "")
        for p in vars(cls).values()
        if isinstance(p, property) and p.fget is not None
    }


@pytest.mark.parametrize("provider", replacements.PROVIDERS)
def test_every_path_starts_with_an_input_of_the_pinned_sdk(provider: str) -> None:
    doc = replacements.table(provider)
    assert doc["provenance"], f"{provider}.json records no provenance"
    wrong = []
    for type_, entry in doc["types"].items():
        if type_.startswith("pulumi:providers:") or type_.startswith("kubernetes:helm.sh"):
            continue
        cls = _sdk_class(type_)
        if cls is None:
            assert type_.startswith("kubernetes:"), f"{type_}: no class in the pinned SDK"
            continue
        known = _inputs(cls)
        paths = [
            *entry.get("replace", []),
            *entry.get("replace_unless_mutable", []),
            *entry.get("optional_computed", []),
        ]
        wrong += [f"{type_}: {p}" for p in paths if p.split(".")[0] not in known]
    assert not wrong, "paths that are no input of the resource:\n" + "\n".join(wrong)


def test_paths_match_at_and_below_a_rule() -> None:
    assert (
        replacements.forcing("aws:rds/instance:Instance", "s3Import.bucketName")
        == "aws replaces on s3Import.bucketName"
    )
    assert replacements.forcing("aws:rds/instance:Instance", "restoreToPointInTime[0].restoreTime")
    assert replacements.forcing("aws:rds/instance:Instance", "storageEncryptedX") is None
    assert replacements.forcing("aws:s3/bucket:Bucket", "region") == "aws replaces on region"
    assert replacements.forcing("aws:sns/topic:Topic", "tags.x", replace_on_changes=["*"])


SDK_GO = """
// @SDKResource("aws_thing", name="Thing")
func resourceThing() *schema.Resource {
	return &schema.Resource{
		CustomizeDiff: customdiff.ForceNewIf("size_gib", func(_ context.Context,
			d *schema.ResourceDiff, meta any) bool {
			return d.Get("size_gib").(int) < 10
		}),
		Schema: map[string]*schema.Schema{
			names.AttrName: {
				Type:     schema.TypeString,
				Required: true,
				ForceNew: true, // renaming recreates it
			},
			"size_gib": {
				Type:         schema.TypeInt,
				ValidateFunc: validation.StringMatch(regexache.MustCompile(`^[a-z]{1,3}$`), ""),
			},
			"encryption_config": {
				Type:     schema.TypeList,
				MaxItems: 1,
				Elem: &schema.Resource{
					Schema: map[string]*schema.Schema{
						"kms_key_arn": {Type: schema.TypeString, ForceNew: true},
						"rotate": {Type: schema.TypeBool},
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
			"security_group_id": schema.StringAttribute{
				Required: true,
				PlanModifiers: []planmodifier.String{
					stringplanmodifier.RequiresReplace(),
				},
			},
			"description": schema.StringAttribute{Optional: true},
		},
	}
}
"""


def test_refresh_reads_force_new_from_terraform_sources(tmp_path: Path) -> None:
    service = tmp_path / "internal" / "service" / "thing"
    service.mkdir(parents=True)
    (service / "thing.go").write_text(SDK_GO)
    (service / "other.go").write_text(FRAMEWORK_GO)
    names_dir = tmp_path / "names"
    names_dir.mkdir(parents=True)
    (names_dir / "attr_consts_gen.go").write_text('const (\n\tAttrName = "name"\n)\n')
    names = refresh.attr_names(tmp_path)
    thing = refresh.force_new_paths(refresh.terraform_schema(tmp_path, "aws_thing"), names)
    assert thing == ["name", "encryption_config.kms_key_arn"]
    assert [refresh.pulumi_path(p) for p in thing] == ["name", "encryptionConfig.kmsKeyArn"]
    assert refresh.pulumi_path("alarm_name", {"alarm_name": "name"}) == "name"
    assert refresh.conditional_paths(refresh.terraform_schema(tmp_path, "aws_thing")) == [
        "size_gib"
    ]
    other = refresh.force_new_paths(refresh.terraform_schema(tmp_path, "aws_other"), names)
    assert other == ["security_group_id"]


DIFF_GO = """
func (k *kubeProvider) forceNewProperties(obj *unstructured.Unstructured) []string {
	props := metadataForceNewProperties(".metadata")
	if group, groupExists := forceNew[gvk.Group]; groupExists {
		if version, versionExists := group[gvk.Version]; versionExists {
			if clients.IsSecret(obj) && (!k.enableSecretMutable || clients.IsImmutable(obj)) {
				props = append(props, properties{".type", ".stringData", ".data"}...)
			}
		}
	}
	return props
}

var forceNew = _groups{
	"apps": _versions{
		"v1": _kinds{"Deployment": deployment},
	},
	"core": core,
}

var core = _versions{
	"v1": _kinds{
		"Service": properties{
			".spec.clusterIP",
		},
	},
}

var deployment = append(
	properties{
		".spec.selector",
	},
	labelSelectorForceNewProperties(".spec.selector")...,
)

func metadataForceNewProperties(prefix string) properties {
	return properties{
		prefix + ".name",
		prefix + ".namespace",
	}
}

func labelSelectorForceNewProperties(prefix string) properties {
	return properties{
		prefix + ".matchLabels",
	}
}
"""


def test_refresh_reads_pulumi_kubernetes_force_new_table() -> None:
    rules = refresh.kubernetes_rules(DIFF_GO)
    assert rules["apps/v1:Deployment"] == {
        "replace": [
            "metadata.name",
            "metadata.namespace",
            "spec.selector",
            "spec.selector.matchLabels",
        ]
    }
    assert rules["core/v1:Service"]["replace"][-1] == "spec.clusterIP"
    assert rules["core/v1:Secret"]["unless_mutable"] == ["data", "stringData", "type"]
