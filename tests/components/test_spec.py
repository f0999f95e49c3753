"""Stack config -> validated spec: good stacks pass, bad config fails with every problem named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config.catalog import TIERS
from components.config.overrides import with_overrides
from components.config.project import declared_config
from components.config.spec import PROJECT, SpecError, build_spec
from components.config.spec_global import GLOBAL_KEYS
from components.config.spec_tier import tier_problems
from tests.shared import API_ACCESS
from tools.harness import ROOT, run_stack

API = API_ACCESS
# What a stack outside dev names for TLS (the example stack files do the same).
TLS = {**API, "apiDomainName": "api.ssp.example.org", "hostedZoneId": "Z0EXAMPLE12345"}
EDGE_TLS = {**TLS, "edgeDomainName": "ssp.example.org"}


def spec_problems(region: str | None = "us-east-1", **config: Any) -> list[str]:
    with pytest.raises(SpecError) as caught:
        build_spec({**API, **config}, stack="test", region=region)
    return caught.value.problems


def test_defaults_give_the_dev_tier() -> None:
    spec = build_spec(API, stack="dev", region="us-east-1")
    assert spec.tier.name == "dev"
    assert not spec.protect
    assert spec.tags("ferpa")["data-classification"] == "ferpa"
    assert set(spec.tags()) >= {"project", "stack", "tier", "owner", "data-classification"}


def test_overrides_replace_single_values_with_their_type() -> None:
    spec = build_spec(
        {
            **TLS,
            "tier": "tier2",
            "overrides": [
                "db.replica_count=3",
                "node_groups.app.max_size=10",
                "db.multi_az=true",
                "alarms.error_rate_percent=0.5",
            ],
        },
        stack="tier2",
        region="us-east-1",
    )
    assert spec.tier.db.replica_count == 3
    assert spec.tier.db.multi_az is True
    assert spec.tier.alarms.error_rate_percent == 0.5
    app = spec.node_group("app")
    assert app is not None and app.max_size == 10


def test_overrides_arrive_as_json_text_from_the_engine() -> None:
    spec = build_spec(
        {
            **EDGE_TLS,
            "tier": "tier3",
            "overrides": '["db.replica_count=4"]',
            "dbBackupRegion": "us-west-2",
        },
        stack="t",
        region="x",
    )
    assert spec.tier.db.replica_count == 4


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"tier": "tier9"}, "tier='tier9': unknown tier; allowed: dev, tier1, tier2, tier3, tier4"),
        ({"teir": "tier1"}, "student-success:teir: unknown config key"),
        ({"overrides": ["db_size=3"]}, "overrides: unknown key 'db_size'"),
        (
            {"overrides": ["db_replica_count"]},
            "overrides: 'db_replica_count' must look like key=value",
        ),
        ({"overrides": ["db.replica_count=two"]}, "db.replica_count='two' must be an integer"),
        ({"overrides": ["db.multi_az=yes"]}, "db.multi_az='yes' must be true or false"),
        ({"overrides": ["db_replica_count=1"]}, "db_replica_count is now db.replica_count"),
        ({"vpcCidr": "10.0.0.0/33"}, "vpcCidr='10.0.0.0/33': not a valid CIDR"),
        ({"vpcCidr": "10.0.0.0/24"}, "prefix /24 not allowed; use /16-/18"),
        ({"overrides": ["api.min_replicas=5"]}, "api.min_replicas=5 > api.max_replicas=2"),
        ({"overrides": ["api.pool_max_overflow=-2"]}, "api.pool_max_overflow=-2: at least 0"),
        ({"overrides": ["api.pool_size=0"]}, "api.pool_size=0: at least 1"),
        ({"overrides": ["node_groups.app.min_size=4"]}, "node_groups.app: need 0 <= min_size (4)"),
        ({"overrides": ["node_groups.gpu.max_size=4"]}, "names node group 'gpu'; tier dev has app"),
        (
            {"tier": "tier1", "overrides": ["db.replica_count=2"]},
            "db.replica_count=2: tier tier1 allows 0-1",
        ),
        (
            {"overrides": ["db.instance_class=db.x9.huge"]},
            "db.instance_class='db.x9.huge': allowed",
        ),
        ({"tier": "tier1", "overrides": ["db.backup_retention_days=3"]}, "outside dev at least 7"),
        ({"tier": "tier1", "overrides": ["deletion_protection=false"]}, "only dev may drop it"),
        (
            {"tier": "tier3", "overrides": ["db.multi_az=false"]},
            "tier tier3 requires a Multi-AZ primary",
        ),
        (
            {"tier": "tier3", "overrides": ["events.visibility_timeout_seconds=20"]},
            "events.visibility_timeout_seconds=20: need more than events.batch_seconds (30)",
        ),
        (
            {"tier": "tier2", "overrides": ["events.queue=kafka"]},
            "events.queue='kafka': allowed postgres, sqs",
        ),
        (
            {"tier": "tier1", "overrides": ["api.pool_size=80"]},
            "connection capacity: (20 pool + 4 overflow) x 4 pods",
        ),
        ({"clusterPublicAccessCidrs": ["0.0.0.0/0"]}, "0.0.0.0/0 would open the Kubernetes API"),
        ({"alarmEmail": "not-an-email"}, "alarmEmail='not-an-email': must be an email address"),
        ({"appImageTag": "latest"}, "appImageTag='latest': must be an immutable version tag"),
        ({"edgeDomainName": "ssp.example.org"}, "tier dev has no CloudFront"),
        (
            {**TLS, "apiCertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc"},
            "The load balancer needs a certificate in us-east-1",
        ),
        (
            {"apiCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/a"},
            "apiCertificateArn: needs apiDomainName",
        ),
        ({"apiDomainName": "api.example.org"}, "apiDomainName='api.example.org': set hostedZoneId"),
        ({"apiDomainName": "API.example.org"}, "must be a lower-case DNS name"),
        ({**TLS, "hostedZoneId": "zone-1"}, "hostedZoneId='zone-1': must be a Route 53 hosted"),
        ({"tier": "tier1"}, "apiDomainName: required outside dev, where the stack serves HTTPS"),
        ({"tier": "tier3", **TLS}, "edgeDomainName: required outside dev"),
        (
            {"tier": "tier3", "hostedZoneId": "Z0EXAMPLE12345", "edgeDomainName": "x.example.org"},
            "apiDomainName: CloudFront reaches the load balancer over HTTPS",
        ),
        (
            {
                **EDGE_TLS,
                "tier": "tier3",
                "edgeCertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
            },
            "CloudFront needs a certificate in us-east-1",
        ),
        (
            {"overrides": ["waf.window_seconds=900"]},
            "waf.window_seconds=900: allowed 60, 120, 300, 600",
        ),
        (
            {"overrides": ["waf.per_key_limit=5"]},
            "waf.per_key_limit=5: WAF allows 10-2,000,000,000",
        ),
        (
            {"tier": "tier3", "overrides": ["inference.instance_type=ml.x9.huge"]},
            "inference.instance_type='ml.x9.huge': allowed ml.c5.2xlarge",
        ),
    ],
)
def test_bad_config_is_rejected_naming_the_key(config: dict[str, Any], expected: str) -> None:
    problems = spec_problems(**config)
    assert any(expected in p for p in problems), problems


# (tier, override, the start of the message that refuses it, accepted): each limit at its
# bound and one step beyond it, each tier-dependent rule on a tier it binds and one it spares.
LIMITS = [
    ("tier3", "network.az_count=2", "network.az_count=", True),
    ("tier3", "network.az_count=4", "network.az_count=", True),
    ("tier3", "network.az_count=1", "network.az_count=", False),
    ("tier3", "network.az_count=5", "network.az_count=", False),
    ("tier3", "network.nat_mode=single", "network.nat_mode=", True),
    ("tier3", "network.nat_mode=per_az", "network.nat_mode=", True),
    ("tier3", "network.nat_mode=none", "network.nat_mode=", False),
    ("tier3", "db.replica_count=0", "db.replica_count=", True),
    ("tier3", "db.replica_count=5", "db.replica_count=", True),
    ("tier3", "db.replica_count=6", "db.replica_count=", False),
    ("tier3", "db.replica_count=-1", "db.replica_count=", False),
    ("tier3", "db.storage_gib=20", "db.storage_gib=", True),
    ("tier3", "db.storage_gib=19", "db.storage_gib=", False),
    ("tier3", "db.storage_gib=4000", "db.storage_gib=", True),  # tier3's max_storage_gib
    ("tier3", "db.storage_gib=4001", "db.storage_gib=", False),
    ("tier3", "db.max_storage_gib=65536", "db.storage_gib=", True),
    ("tier3", "db.max_storage_gib=65537", "db.storage_gib=", False),
    ("dev", "db.backup_retention_days=1", "db.backup_retention_days=", True),
    ("dev", "db.backup_retention_days=0", "db.backup_retention_days=", False),
    ("tier3", "db.backup_retention_days=7", "db.backup_retention_days=", True),
    ("tier3", "db.backup_retention_days=6", "db.backup_retention_days=", False),
    ("tier3", "db.backup_retention_days=35", "db.backup_retention_days=", True),
    ("tier3", "db.backup_retention_days=36", "db.backup_retention_days=", False),
    ("dev", "deletion_protection=false", "deletion_protection=", True),
    ("tier3", "deletion_protection=false", "deletion_protection=", False),
    ("tier3", "db.proxy_max_connections_percent=10", "db.proxy_max_connections_percent=", True),
    ("tier3", "db.proxy_max_connections_percent=9", "db.proxy_max_connections_percent=", False),
    ("tier3", "db.proxy_max_connections_percent=100", "db.proxy_max_connections_percent=", True),
    ("tier3", "db.proxy_max_connections_percent=101", "db.proxy_max_connections_percent=", False),
    ("dev", "db.max_connections=20", "db.max_connections=", True),
    ("dev", "db.max_connections=19", "db.max_connections=", False),
    ("tier3", "api.min_replicas=1", "api.min_replicas=", True),
    ("tier3", "api.min_replicas=0", "api.min_replicas=", False),
    ("tier3", "api.min_replicas=20", "api.min_replicas=", True),  # tier3's max_replicas
    ("tier3", "api.min_replicas=21", "api.min_replicas=", False),
    ("tier3", "api.cpu_target_percent=10", "api.cpu_target_percent=", True),
    ("tier3", "api.cpu_target_percent=9", "api.cpu_target_percent=", False),
    ("tier3", "api.memory_target_percent=95", "api.memory_target_percent=", True),
    ("tier3", "api.memory_target_percent=96", "api.memory_target_percent=", False),
    ("tier3", "api.pool_size=1", "api.pool_size=", True),
    ("tier3", "api.pool_size=0", "api.pool_size=", False),
    ("tier3", "api.pool_max_overflow=0", "api.pool_max_overflow=", True),
    ("tier3", "api.pool_max_overflow=-1", "api.pool_max_overflow=", False),
    ("tier3", "cache.node_type=cache.x9.huge", "cache.node_type=", False),
    ("dev", "cache.node_type=cache.x9.huge", "cache.node_type=", True),  # no cache in dev
    ("tier3", "cache.num_nodes=1", "cache.num_nodes=", True),
    ("tier3", "cache.num_nodes=6", "cache.num_nodes=", True),
    ("tier3", "cache.num_nodes=0", "cache.num_nodes=", False),
    ("tier3", "cache.num_nodes=7", "cache.num_nodes=", False),
    ("tier3", "waf.per_ip_limit=10", "waf.per_ip_limit=", True),
    ("tier3", "waf.per_ip_limit=9", "waf.per_ip_limit=", False),
    ("tier3", "waf.per_ip_limit=2000000000", "waf.per_ip_limit=", True),
    ("tier3", "waf.per_ip_limit=2000000001", "waf.per_ip_limit=", False),
    ("tier3", "waf.anonymous_limit=9", "waf.anonymous_limit=", False),
    ("tier3", "waf.window_seconds=60", "waf.window_seconds=", True),
    ("tier3", "waf.window_seconds=120", "waf.window_seconds=", True),
    ("tier3", "waf.window_seconds=600", "waf.window_seconds=", True),
    ("tier3", "waf.window_seconds=90", "waf.window_seconds=", False),
    ("tier3", "inference.instance_type=ml.x9.huge", "inference.instance_type=", False),
    ("dev", "inference.instance_type=ml.x9.huge", "inference.instance_type=", True),  # off
    ("tier3", "inference.min_instances=1", "inference.min_instances=", True),
    ("tier3", "inference.min_instances=0", "inference.min_instances=", False),
    ("tier3", "inference.min_instances=4", "inference.min_instances=", True),  # its max
    ("tier3", "inference.min_instances=5", "inference.min_instances=", False),
    ("tier3", "inference.data_capture_percent=1", "inference.data_capture_percent=", True),
    ("tier3", "inference.data_capture_percent=0", "inference.data_capture_percent=", False),
    ("tier3", "inference.data_capture_percent=100", "inference.data_capture_percent=", True),
    ("tier3", "inference.data_capture_percent=101", "inference.data_capture_percent=", False),
    ("tier2", "db.multi_az=false", "db.multi_az=", True),
    ("tier3", "db.multi_az=false", "db.multi_az=", False),
    ("tier4", "db.multi_az=false", "db.multi_az=", False),
    ("tier3", "node_groups.app.min_size=0", "node_groups.app:", True),
    ("tier3", "node_groups.app.min_size=-1", "node_groups.app:", False),
    ("tier3", "node_groups.app.desired_size=12", "node_groups.app:", True),  # its max_size
    ("tier3", "node_groups.app.desired_size=13", "node_groups.app:", False),
    ("tier3", "node_groups.app.desired_size=2", "node_groups.app:", False),  # below min_size
    ("tier3", "node_groups.training.max_size=1", "node_groups.training:", True),
    ("tier3", "node_groups.training.max_size=0", "node_groups.training:", False),
    ("tier3", "node_groups.app.instance_types=", "node_groups.app.instance_types:", False),
]


@pytest.mark.parametrize(("tier", "override", "named", "accepted"), LIMITS)
def test_each_tier_limit_admits_its_bound_and_refuses_one_step_beyond(
    tier: str, override: str, named: str, accepted: bool
) -> None:
    problems = tier_problems(with_overrides(TIERS[tier], override))
    refusals = [p for p in problems if p.startswith(named)]
    assert (not refusals) is accepted, problems


def test_a_stack_without_a_path_to_its_clusters_api_is_refused() -> None:
    """`pulumi up` installs charts and workloads through the API: with a private endpoint
    and a cluster security group that admits only itself, it times out on the first one."""
    with pytest.raises(SpecError) as caught:
        build_spec({}, stack="dev", region="us-east-1")
    (problem,) = caught.value.problems
    assert problem.startswith(
        "clusterPublicAccessCidrs, clusterApiAccessCidrs or clusterApiAccessSecurityGroupIds: "
        "set one"
    )


@pytest.mark.parametrize(
    "path",
    [
        {"clusterPublicAccessCidrs": ["203.0.113.10/32"]},
        {"clusterApiAccessCidrs": ["10.100.0.0/22"]},
        {"clusterApiAccessSecurityGroupIds": ["sg-0123456789abcdef0"]},
    ],
)
def test_any_one_path_to_the_clusters_api_will_do(path: dict[str, list[str]]) -> None:
    spec = build_spec(path, stack="dev", region="us-east-1")
    given = (
        spec.cluster_public_access_cidrs
        + spec.cluster_api_access_cidrs
        + spec.cluster_api_access_security_group_ids
    )
    assert list(given) == next(iter(path.values()))


def test_the_clusters_api_is_never_opened_to_every_network() -> None:
    for key in ("clusterPublicAccessCidrs", "clusterApiAccessCidrs"):
        (problem,) = spec_problems(**{key: ["0.0.0.0/0"]})
        assert problem.startswith(f"{key}: 0.0.0.0/0 would open the Kubernetes API")


def test_missing_region_is_named() -> None:
    assert any(p.startswith("aws:region: not set") for p in spec_problems(region=None))


def test_all_problems_are_listed_at_once() -> None:
    problems = spec_problems(tier="tier9", vpcCidr="nonsense", alarmEmail="x")
    assert len(problems) == 3
    message = str(SpecError("test", problems))
    assert message.startswith("stack 'test' has 3 configuration problem(s):")


def test_bad_config_fails_the_program_before_any_resource_is_registered() -> None:
    with pytest.raises(SpecError, match="unknown tier"):
        run_stack("dev", extra_config={"tier": "tier9"})


# A value of each key the spec refuses, naming the key: proof that the program reads it.
BAD_VALUES: dict[str, Any] = {
    "tier": "tier9",
    "owner": " ",
    "vpcCidr": "nonsense",
    "appImageTag": "latest",
    "alarmEmail": "x",
    "clusterAdminRoleArn": "x",
    "clusterPublicAccessCidrs": ["nonsense"],
    "clusterApiAccessCidrs": ["0.0.0.0/0"],
    "clusterApiAccessSecurityGroupIds": ["x"],
    "grafanaAdminGroupIds": ["admins"],
    "apiDomainName": "Not A Domain",
    "hostedZoneId": "x",
    "apiCertificateArn": "x",
    "edgeDomainName": "Not A Domain",
    "edgeCertificateArn": "x",
    "edgePhase": "sideways",
    "sagemakerModelPublished": "maybe",
    "dbBackupRegion": "nowhere",
    "dbReportingReplica": "x",
    "dbRestoreName": "X!",
    "dbRestorePointInTime": "2026-12-01T08:15:00Z",
    "dbRestoreSnapshot": "ssp-dev-db-final",
    "dbRestoreSource": "ssp-dev-db",
    "dbEngineVersion": "9",
    "dbUpgradeStrategy": "sideways",
    "dbMasterPasswordRotation": "-1",
    "nodeKubernetesVersion": "1.0",
    "overrides": ["nonsense"],
    "stackRole": "global",
    "globalStack": "!bad",
    "domainName": "ssp.example.org",
    "regions": ["us-east-1=tier4-east"],
    "districts": ["az-mesa=us-east-1"],
}


def test_pulumi_yaml_declares_exactly_the_keys_the_program_reads() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == set(declared_config()) == set(BAD_VALUES)
    assert set(declared) >= GLOBAL_KEYS
    for key, declaration in declared.items():
        assert declaration["description"], key
        assert "default" in declaration, key
        assert declaration["type"] in ("string", "boolean", "integer", "array"), key
        # The regional spec reads every key (refusing the global stack's own when set).
        problems = spec_problems(**{key: BAD_VALUES[key]})
        assert any(p.startswith((key, f"{PROJECT}:{key}")) for p in problems), (key, problems)


def test_stack_files_hold_only_overrides_and_no_plaintext_secrets() -> None:
    for path in ROOT.glob("Pulumi.*.yaml"):
        config = yaml.safe_load(path.read_text())["config"]
        ours = {k.removeprefix(f"{PROJECT}:") for k in config if k.startswith(f"{PROJECT}:")}
        assert ours <= set(declared_config()), path.name
        assert set(config) - {f"{PROJECT}:{k}" for k in ours} <= {"aws:region"}, path.name
        # The rotation counter is a number, not a password.
        text = Path(path).read_text().lower().replace("dbmasterpasswordrotation", "")
        assert "password" not in text and "token" not in text, path.name


@pytest.mark.parametrize("stack", ["dev", "tier1", "tier2", "tier3", "tier4"])
def test_every_stack_file_builds_a_valid_spec(stack: str) -> None:
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    ours = {k.removeprefix(f"{PROJECT}:"): v for k, v in config.items() if k.startswith(PROJECT)}
    spec = build_spec(ours, stack=stack, region=config["aws:region"])
    assert spec.tier.name == ours["tier"]
    assert spec.protect == (stack != "dev")


def test_stack_whose_connections_do_not_fit_fails_before_deploying() -> None:
    with pytest.raises(
        Exception,
        match=re.escape(
            "(3 pool + 50 overflow) x 4 pods + 2 trainer + 2 archiver + 2 workers + 3 on-demand "
            "Jobs = 221 > max_connections 50 - 10 reserved = 40"
        ),
    ):
        run_stack("tier1", extra_config={"overrides": ["api.pool_max_overflow=200"]})


def test_the_cli_must_be_as_new_as_the_pinned_sdk() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    pins = dict(
        line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )  # fmt: skip
    assert project["requiredPulumiVersion"] == f">={pins['pulumi']} <4.0.0"


# -- the database's recovery and upgrade settings -----------------------------------------

TIER3 = {**EDGE_TLS, "tier": "tier3", "dbBackupRegion": "us-west-2"}


def test_tiers_with_cross_region_backups_need_a_backup_region() -> None:
    (problem,) = spec_problems(**EDGE_TLS, tier="tier3")
    assert problem.startswith("dbBackupRegion: tier tier3 replicates its automated backups")
    assert build_spec(TIER3, stack="tier3", region="us-east-1").db_backup_region == "us-west-2"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({**TIER3, "dbBackupRegion": "us-east-1"}, "dbBackupRegion='us-east-1': is the stack's"),
        ({**TIER3, "dbBackupRegion": "west"}, "dbBackupRegion='west': must be an AWS region"),
        ({**TLS, "tier": "tier1", "dbBackupRegion": "us-west-2"}, "tier tier1 does not replicate"),
    ],
)
def test_bad_backup_region_is_named(config: dict[str, Any], expected: str) -> None:
    (problem,) = spec_problems(**config)
    assert expected in problem


def test_a_restore_names_the_new_instance_and_where_it_comes_from() -> None:
    spec = build_spec(
        {**TIER3, "dbRestoreName": "r20261201", "dbRestorePointInTime": "2026-12-01T08:15:00Z"},
        stack="tier3",
        region="us-east-1",
    )
    assert spec.db_restore is not None
    assert (spec.db_restore.name, spec.db_restore.point_in_time) == (
        "r20261201",
        "2026-12-01T08:15:00Z",
    )
    latest = build_spec(
        {**API, "dbRestoreName": "r1", "dbRestorePointInTime": "latest"},
        stack="dev",
        region="us-east-1",
    )
    assert latest.db_restore is not None and latest.db_restore.point_in_time == "latest"
    assert build_spec(API, stack="dev", region="us-east-1").db_restore is None


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"dbRestoreName": "r20261201", "dbRestorePointInTime": "2026-12-01 08:15"},
            "dbRestorePointInTime='2026-12-01 08:15': must be an RFC 3339 time",
        ),
        (
            {"dbRestoreName": "r20261201", "dbRestorePointInTime": "2026-12-01T08:15:00"},
            "must be an RFC 3339 time with its offset",
        ),
        (
            {"dbRestoreName": "r1", "dbRestorePointInTime": "latest", "dbRestoreSnapshot": "s1"},
            "dbRestorePointInTime and dbRestoreSnapshot: set one, not both",
        ),
        (
            {"dbRestoreName": "R-2026", "dbRestoreSnapshot": "ssp-tier3-db-final"},
            "dbRestoreName='R-2026': 2-16 lowercase letters and digits",
        ),
        ({"dbRestoreName": "r1"}, "dbRestoreName='r1': needs dbRestorePointInTime or"),
        ({"dbRestorePointInTime": "latest"}, "dbRestorePointInTime: needs dbRestoreName"),
        (
            {"dbRestoreName": "r1", "dbRestoreSnapshot": "bad snapshot!"},
            "dbRestoreSnapshot='bad snapshot!': must be a DB snapshot identifier",
        ),
        (
            {"dbRestoreName": "r1", "dbRestoreSnapshot": "s1", "dbRestoreSource": "ssp-dev-db"},
            "dbRestoreSource='ssp-dev-db': a point-in-time restore's source",
        ),
    ],
)
def test_bad_restore_settings_are_named(config: dict[str, Any], expected: str) -> None:
    problems = spec_problems(**config)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "snapshot",
    [
        "ssp-tier3-db-final",
        "rds:ssp-tier3-db-2026-12-01-08-05",
        "arn:aws:rds:us-east-1:123456789012:snapshot:ssp-tier3-db-final",
    ],
)
def test_snapshots_by_identifier_automated_name_or_arn(snapshot: str) -> None:
    spec = build_spec(
        {**API, "dbRestoreName": "r1", "dbRestoreSnapshot": snapshot},
        stack="dev",
        region="us-east-1",
    )
    assert spec.db_restore is not None and spec.db_restore.snapshot == snapshot


def test_engine_upgrade_settings() -> None:
    spec = build_spec({**API, "dbEngineVersion": "17"}, stack="dev", region="us-east-1")
    assert (spec.db_engine_version, spec.db_upgrade_strategy) == ("17", "in-place")
    (problem,) = spec_problems(dbEngineVersion="18")
    assert problem == "dbEngineVersion='18': a PostgreSQL major version; allowed 16, 17"
    (problem,) = spec_problems(dbUpgradeStrategy="rolling")
    assert problem == "dbUpgradeStrategy='rolling': allowed in-place, blue-green"


def test_the_master_password_rotation_is_a_count_from_zero() -> None:
    assert build_spec(API, stack="dev", region="us-east-1").db_master_password_rotation == 0
    # As the CLI hands it over: a string.
    spec = build_spec({**API, "dbMasterPasswordRotation": "2"}, stack="dev", region="us-east-1")
    assert spec.db_master_password_rotation == 2
    (problem,) = spec_problems(dbMasterPasswordRotation="one")
    assert problem.startswith("dbMasterPasswordRotation='one': must be a whole number >= 0")


def test_blue_green_only_where_no_replica_or_proxy_is_left_behind() -> None:
    tier1 = build_spec(
        {**TLS, "tier": "tier1", "dbUpgradeStrategy": "blue-green"},
        stack="tier1",
        region="us-east-1",
    )
    assert tier1.db_upgrade_strategy == "blue-green"
    (problem,) = spec_problems(**TIER3, dbUpgradeStrategy="blue-green")
    assert problem.startswith(
        "dbUpgradeStrategy=blue-green: tier tier3 has 2 read replica(s) and proxy=True"
    )


def test_node_groups_may_be_held_a_few_minors_behind_the_control_plane() -> None:
    from components.config.versions import KUBERNETES_VERSION

    minor = int(KUBERNETES_VERSION.split(".")[1])
    held = f"1.{minor - 1}"
    spec = build_spec({**API, "nodeKubernetesVersion": held}, stack="dev", region="us-east-1")
    assert spec.node_kubernetes_version == held
    for bad in (f"1.{minor + 1}", f"1.{minor - 4}", "v1.30", "1.3x"):
        (problem,) = spec_problems(nodeKubernetesVersion=bad)
        assert problem.startswith(f"nodeKubernetesVersion={bad!r}: a Kubernetes minor no newer")
