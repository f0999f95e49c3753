"""The database: RDS PostgreSQL parameters, replicas, the proxy and its reader name,
credentials, protection, network exposure and alarms; through the pure functions and per
stack under mocks."""

from __future__ import annotations

import json

import pytest

from app.core.logins import WORKLOAD_LOGINS
from components.cache import TOKEN_SPECIALS
from components.config.catalog import TIERS
from components.database.settings import (
    STATIC_PARAMETERS,
    credentials_document,
    proxy_secret_policy,
    rds_parameters,
    replica_zone,
)
from components.shared.contract import check_identifier
from tests.shared import (
    DB_INSTANCE,
    DB_PARAMETER_GROUP,
    DB_PROXY,
    DNS_RECORD,
    INGRESS_RULE,
    KMS_KEY,
    LOG_GROUP,
    METRIC_ALARM,
    NAT_GATEWAY,
    RANDOM_PASSWORD,
    REPLICATION_GROUP,
    ROLE_POLICY,
    SECRET_VERSION,
    SECRETS_MANAGER_SECRET,
    SECURITY_GROUP,
    StackRunner,
    alarm,
    ingress_of,
)
from tools.harness import Resource, StackRun

GIB = 1024**3


STACKS = ["dev", "tier1", "tier2", "tier3", "tier4"]


def primary(run: StackRun) -> Resource:
    return run.one(DB_INSTANCE, "database-primary")


def replicas(run: StackRun) -> list[Resource]:
    return [r for r in run.of_type(DB_INSTANCE) if r.get("replicateSourceDb")]


# -- pure functions ------------------------------------------------------------------------


def test_parameters_are_in_rds_units_seed_000_tier1() -> None:
    params = {p.name: p for p in rds_parameters(TIERS["tier1"].db)}
    # 512MB shared_buffers and 2GB effective_cache_size in 8 kB pages; MB -> kB for the rest.
    assert params["shared_buffers"].value == "65536"
    assert params["effective_cache_size"].value == "262144"
    assert params["work_mem"].value == "16384"
    assert params["maintenance_work_mem"].value == "262144"
    assert params["max_connections"].value == "50"
    assert params["random_page_cost"].value == "1.1"
    assert params["effective_io_concurrency"].value == "200"
    assert params["log_min_duration_statement"].value == "500"
    # Slow statements are logged without their bind parameters (student data), errors too.
    assert params["log_parameter_max_length"].value == "0"
    assert params["log_parameter_max_length_on_error"].value == "0"
    assert params["log_parameter_max_length"].apply_method == "immediate"
    assert "pg_stat_statements" in params["shared_preload_libraries"].value
    assert params["rds.force_ssl"].value == "1"


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_every_parameter_has_the_right_apply_method(tier: str) -> None:
    for p in rds_parameters(TIERS[tier].db):
        expected = "pending-reboot" if p.name in STATIC_PARAMETERS else "immediate"
        assert p.apply_method == expected, p.name
    assert {"shared_buffers", "max_connections", "shared_preload_libraries"} <= STATIC_PARAMETERS


def test_proxy_policy_is_least_privilege() -> None:
    doc = json.loads(proxy_secret_policy("arn:secret", "arn:key", "us-east-1"))
    read, decrypt = doc["Statement"]
    assert (read["Action"], read["Resource"]) == ("secretsmanager:GetSecretValue", "arn:secret")
    assert (decrypt["Action"], decrypt["Resource"]) == ("kms:Decrypt", "arn:key")
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == (
        "secretsmanager.us-east-1.amazonaws.com"
    )


def test_credentials_document_has_what_the_proxy_and_the_app_need() -> None:
    doc = json.loads(credentials_document("db.example", "pw"))
    assert doc == {
        "username": "ssp_admin",
        "password": "pw",
        "engine": "postgres",
        "host": "db.example",
        "port": 5432,
        "dbname": "student_success",
    }


def test_replicas_go_round_robin_after_the_primary_az() -> None:
    zones = ["a", "b", "c"]
    assert [replica_zone(zones, i) for i in range(4)] == ["b", "c", "a", "b"]


@pytest.mark.parametrize("bad", ["Ssp-dev", "ssp--dev", "ssp-dev-", "1ssp", "ssp_dev", "x" * 41])
def test_identifiers_follow_rds_naming(bad: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        check_identifier(bad, 40)
    assert check_identifier("ssp-tier4-us-west-2", 40) == "ssp-tier4-us-west-2"


# -- per stack -----------------------------------------------------------------------------


def test_dev_is_one_nat_one_small_database(stack_run: StackRunner) -> None:
    run = stack_run("dev")
    assert run.count(NAT_GATEWAY) == 1
    assert replicas(run) == []
    assert run.count(DB_PROXY) == 0
    assert run.count(REPLICATION_GROUP) == 0
    db = primary(run)
    assert db.get("multiAz") is False
    assert db.get("applyImmediately") is True
    assert run.outputs["db_reader_endpoint"] == run.outputs["db_writer_endpoint"]
    assert run.outputs["db_writer_endpoint"].endswith(".rds.amazonaws.com")


def test_tier1_has_no_replicas_and_no_cache(stack_run: StackRunner) -> None:
    run = stack_run("tier1")
    assert replicas(run) == []
    assert run.count(REPLICATION_GROUP) == 0
    assert run.count(DB_PROXY) == 0
    db = primary(run)
    assert db.get("instanceClass") == "db.t4g.medium"
    assert db.get("backupRetentionPeriod") == 7
    assert db.get("applyImmediately") is False
    assert "cache_primary_endpoint" not in run.outputs


def test_tier3_primary_is_multi_az_with_replicas_in_other_azs(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    db = primary(run)
    assert db.get("multiAz") is True
    assert db.get("availabilityZone") is None  # RDS places a Multi-AZ primary itself
    reps = replicas(run)
    assert len(reps) >= 2
    assert len({r.get("availabilityZone") for r in reps}) == len(reps)
    for r in reps:
        assert r.get("replicateSourceDb") == db.get("identifier"), r.name
        assert r.get("parameterGroupName") == db.get("parameterGroupName"), r.name
        assert r.get("kmsKeyId") == db.get("kmsKeyId"), r.name
        assert r.get("storageEncrypted") is True, r.name
        assert r.get("performanceInsightsEnabled") is True, r.name


@pytest.mark.parametrize("stack", STACKS)
def test_primary_settings(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[stack]
    db = primary(run)
    assert db.get("engine") == "postgres"
    # The major only, minor upgrades automatic in the maintenance window: an upgrade AWS
    # forces never makes the next `pulumi up` try to downgrade.
    assert db.get("engineVersion") == "16"
    assert db.get("autoMinorVersionUpgrade") is True
    for log in ("postgresql", "upgrade"):
        group = run.one(LOG_GROUP, f"database-primary-{log}-logs")
        assert group.get("name") == f"/aws/rds/instance/{db.get('identifier')}/{log}"
        assert group.get("retentionInDays") == tier.log_retention_days
        assert group.get("kmsKeyId") == db.get("kmsKeyId")
        assert group.urn in db.options.depends_on
    assert db.get("storageType") == "gp3"
    assert db.get("storageEncrypted") is True
    assert db.get("kmsKeyId", "").startswith("arn:aws:kms:")
    assert db.get("maxAllocatedStorage") == tier.db.max_storage_gib
    assert db.get("allocatedStorage") == tier.db.storage_gib
    assert db.get("backupRetentionPeriod") == tier.db.backup_retention_days
    assert db.get("copyTagsToSnapshot") is True
    assert db.get("performanceInsightsEnabled") is True
    assert db.get("performanceInsightsKmsKeyId") == db.get("kmsKeyId")
    assert db.get("performanceInsightsRetentionPeriod") == 7
    assert db.get("monitoringInterval") == 60
    assert db.get("monitoringRoleArn")
    assert db.get("enabledCloudwatchLogsExports") == ["postgresql", "upgrade"]
    assert db.get("iamDatabaseAuthenticationEnabled") is True
    assert db.get("manageMasterUserPassword") is None  # one credential scheme, not both
    assert db.get("tags.data-classification") == "ferpa"
    backup, maintenance = db.get("backupWindow"), db.get("maintenanceWindow")
    assert backup == "08:00-09:00" and maintenance == "sun:09:30-10:30"
    monitoring = run.one(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "database-monitoring-policy"
    )
    assert monitoring.get("policyArn").endswith("service-role/AmazonRDSEnhancedMonitoringRole")


@pytest.mark.parametrize("stack", STACKS)
def test_parameter_group_in_the_stack(stack_run: StackRunner, stack: str) -> None:
    group = stack_run(stack).one(DB_PARAMETER_GROUP, "database-params")
    assert group.get("family") == "postgres16"
    assert group.get("namePrefix")
    params = {p["name"]: p for p in group.get("parameters")}
    assert set(params) == {p.name for p in rds_parameters(TIERS[stack].db)}
    for name, p in params.items():
        assert p.get("applyMethod") in ("immediate", "pending-reboot"), name
    assert params["shared_buffers"]["applyMethod"] == "pending-reboot"
    if stack == "tier1":
        assert params["shared_buffers"]["value"] == "65536"
        assert params["effective_cache_size"]["value"] == "262144"
        assert params["work_mem"]["value"] == "16384"


def test_tier3_proxy_fronts_the_primary(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    proxy = run.one(DB_PROXY, "database-proxy")
    assert proxy.get("engineFamily") == "POSTGRESQL"
    assert proxy.get("requireTls") is True
    assert proxy.get("idleClientTimeout")
    auths = proxy.get("auths")
    # One per workload login; the master login does not go through the proxy.
    assert len(auths) == len(WORKLOAD_LOGINS)
    for auth in auths:
        assert auth["authScheme"] == "SECRETS"
        assert auth["iamAuth"] in ("DISABLED", "REQUIRED")
        assert auth["secretArn"] != run.outputs["db_credentials_secret_arn"]
    group = run.one(
        "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup", "database-proxy-targets"
    )
    pool = group.get("connectionPoolConfig")
    assert pool["maxConnectionsPercent"] == TIERS["tier3"].db.proxy_max_connections_percent
    assert pool["connectionBorrowTimeout"] > 0
    target = run.one("aws:rds/proxyTarget:ProxyTarget", "database-proxy-primary")
    assert target.get("dbInstanceIdentifier") == primary(run).get("identifier")
    assert ".proxy-" in run.outputs["db_writer_endpoint"]
    (proxy_sg,) = proxy.get("vpcSecurityGroupIds")
    assert proxy_sg.startswith("database-proxy-sg-")
    role_policy = json.loads(run.one(ROLE_POLICY, "database-proxy-policy").get("policy"))
    assert [st["Action"] for st in role_policy["Statement"]] == [
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
    ]


def test_tier3_reader_name_spreads_over_the_replicas(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    zone = run.one("aws:route53/zone:Zone", "database-zone")
    assert zone.get("name") == "tier3.student-success.internal"
    assert zone.get("vpcs.0.vpcId") == run.outputs["vpc_id"]
    records = [r for r in run.of_type(DNS_RECORD) if r.name.startswith("database-reader-")]
    assert len({r.get("zoneId") for r in records}) == 1
    reps = replicas(run)
    assert len(records) == len(reps)
    assert {r.get("setIdentifier") for r in records} == {f"replica-{i}" for i in (1, 2)}
    for record in records:
        assert record.get("name") == "reader.tier3.student-success.internal"
        assert record.get("type") == "CNAME"
        assert record.get("ttl") == 30
        assert record.get("weightedRoutingPolicies") == [{"weight": 1}]
    for record in records:
        # database-reader-N points at database-replica-N; the mocks' replica address starts
        # with the replica's resource name. (Registration order is not guaranteed.)
        replica_name = record.name.replace("-reader-", "-replica-")
        assert replica_name in {r.name for r in reps}
        assert record.get("records.0", "").startswith(f"{replica_name}-"), record.name
    assert run.outputs["db_reader_endpoint"] == "reader.tier3.student-success.internal"


# -- secrets -------------------------------------------------------------------------------


def _secret_texts(run: StackRun) -> list[str]:
    texts = [primary(run).get("password")]
    if run.count(REPLICATION_GROUP):
        texts.append(run.one(REPLICATION_GROUP, "cache-redis").get("authToken"))
    return texts


@pytest.mark.parametrize("stack", STACKS)
def test_passwords_and_tokens_are_secrets(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    assert "password" in primary(run).secret_paths
    version = run.one(SECRET_VERSION, "database-credentials-version")
    assert "secretString" in version.secret_paths
    stored = json.loads(version.get("secretString"))
    assert stored["password"] == primary(run).get("password")
    assert set(stored) == {"username", "password", "engine", "host", "port", "dbname"}
    secret = run.one(SECRETS_MANAGER_SECRET, "database-credentials")
    assert secret.get("kmsKeyId", "").startswith("arn:aws:kms:")
    if run.count(REPLICATION_GROUP):
        assert "authToken" in run.one(REPLICATION_GROUP, "cache-redis").secret_paths
    exported = json.dumps(run.outputs)
    for text in _secret_texts(run):
        assert text and text not in exported


def test_generated_credentials_use_allowed_characters(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    db_password = run.one(RANDOM_PASSWORD, "database-password")
    assert not set(db_password.get("overrideSpecial")) & set('/@" ')
    token = run.one(RANDOM_PASSWORD, "cache-auth-token")
    assert token.get("overrideSpecial") == TOKEN_SPECIALS
    assert 16 <= token.get("length") <= 128
    assert not set(TOKEN_SPECIALS) & set('@"/')


# -- protection ----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_protection_outside_dev_only(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    protected = stack != "dev"
    db = primary(run)
    assert db.options.protect is protected
    assert db.get("deletionProtection") is protected
    assert db.get("skipFinalSnapshot") is (not protected)
    if protected:
        assert db.get("finalSnapshotIdentifier") == f"ssp-{stack}-db-final"
    else:
        assert db.get("finalSnapshotIdentifier") is None
    assert run.one(KMS_KEY, "database-key").options.protect is protected
    for replica in replicas(run):
        assert replica.options.protect is False, replica.name  # removable copies
    if run.count(REPLICATION_GROUP):
        group = run.one(REPLICATION_GROUP, "cache-redis")
        assert group.options.protect is protected
        assert bool(group.get("finalSnapshotIdentifier")) is protected


# -- network exposure ----------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_database_admits_only_the_app_and_the_proxy(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    db_sg = run.one(SECURITY_GROUP, "database-sg")
    assert not db_sg.get("ingress")
    rules = [r for r in ingress_of(run, "database-sg") if r.type == INGRESS_RULE]
    assert rules
    expected = {"database-sg-from-client-0"} | (
        {"database-sg-from-proxy"} if TIERS[stack].db.proxy else set()
    )
    assert {r.name for r in rules} == expected
    for rule in rules:
        assert rule.get("referencedSecurityGroupId"), rule.name
        assert rule.get("referencedSecurityGroupId", "").startswith(
            ("network-app-sg-", "database-proxy-sg-")
        ), rule.name
        for cidr in ("cidrIpv4", "cidrIpv6", "prefixListId"):
            assert rule.get(cidr) is None, f"{rule.name} opens {cidr}"
        assert (rule.get("fromPort"), rule.get("toPort")) == (5432, 5432), rule.name
    for instance in run.of_type(DB_INSTANCE):
        assert instance.get("publiclyAccessible") is False, instance.name
        (sg_id,) = instance.get("vpcSecurityGroupIds")
        assert sg_id.startswith("database-sg-"), instance.name


def test_data_stores_sit_in_isolated_subnets(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    isolated = run.outputs["isolated_subnet_ids"]
    assert (
        run.one("aws:rds/subnetGroup:SubnetGroup", "database-subnets").get("subnetIds") == isolated
    )
    assert (
        run.one("aws:elasticache/subnetGroup:SubnetGroup", "cache-subnets").get("subnetIds")
        == isolated
    )
    assert run.one(DB_PROXY, "database-proxy").get("vpcSubnetIds") == isolated


# -- alarms --------------------------------------------------------------------------------


def test_database_alarms_follow_the_catalog(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    tier = TIERS["tier3"]
    topic = run.outputs["alarm_topic_arn"]
    cpu = alarm(run, "database-primary-cpu")
    assert (cpu.get("threshold"), cpu.get("period"), cpu.get("evaluationPeriods")) == (
        tier.alarms.cpu_percent,
        300,
        2,
    )
    assert cpu.get("alarmActions") == [topic]
    connections = alarm(run, "database-primary-connections")
    assert connections.get("threshold") == 500 * 80 // 100
    storage = alarm(run, "database-primary-free-storage")
    assert storage.get("comparisonOperator") == "LessThanThreshold"
    assert storage.get("threshold") == 1000 * GIB * 10 // 100
    for i in range(1, len(replicas(run)) + 1):
        lag = alarm(run, f"database-replica-{i}-lag")
        assert lag.get("metricName") == "ReplicaLag"
        assert lag.get("threshold") == tier.alarms.replica_lag_seconds
        assert lag.get("treatMissingData") == "breaching"
        assert lag.get("dimensions.DBInstanceIdentifier") == f"ssp-tier3-db-replica-{i}"
        alarm(run, f"database-replica-{i}-cpu")


def test_dev_and_tier1_have_no_replica_alarms(stack_run: StackRunner) -> None:
    for stack in ("dev", "tier1"):
        run = stack_run(stack)
        assert not [a for a in run.of_type(METRIC_ALARM) if "replica" in a.name], stack
        assert not [a for a in run.of_type(METRIC_ALARM) if a.name.startswith("cache-")], stack
