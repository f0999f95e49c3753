"""Monitoring: the Prometheus workspace, the managed scraper of the API pods (what it may read
in the cluster, the NetworkPolicy admitting it), the alert rules on the app's own metrics and
their route to the alarm topic."""

from __future__ import annotations

import json
import re

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

from components.config.catalog import TIERS
from components.config.spec import SpecError
from components.config.tier import AlarmThresholds
from components.monitoring.grafana import DATA_SOURCE_UID, QUERY_ACTIONS, dashboards
from components.monitoring.rules import (
    SCRAPE_JOB,
    SCRAPER_USER,
    alert_rules,
    alertmanager_definition,
    scrape_configuration,
)
from components.shared.contract import API_PORT
from tests.shared import KMS_KEY, NETWORK_POLICY, STACKS, SUBNET, StackRunner, tier_of
from tools.harness import run_stack

WORKSPACE = "aws:amp/workspace:Workspace"
SCRAPER = "aws:amp/scraper:Scraper"
RULES = "aws:amp/ruleGroupNamespace:RuleGroupNamespace"
ALERT_MANAGER = "aws:amp/alertManagerDefinition:AlertManagerDefinition"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
GRAFANA = "aws:grafana/workspace:Workspace"

# -- pure functions ------------------------------------------------------------------------


def test_the_scraper_reads_the_api_pods_of_the_namespace_on_their_port() -> None:
    config = yaml.safe_load(scrape_configuration("student-success", 15))
    assert config["global"]["scrape_interval"] == "15s"
    job, worker = config["scrape_configs"]
    # The event workers are the second job (tests/components/test_events.py).
    assert worker["job_name"] == "student-success-worker"
    assert job["job_name"] == SCRAPE_JOB and job["metrics_path"] == "/metrics"
    assert job["kubernetes_sd_configs"] == [
        {"role": "pod", "namespaces": {"names": ["student-success"]}}
    ]
    keeps = {
        r["source_labels"][0]: r["regex"]
        for r in job["relabel_configs"]
        if r.get("action") == "keep"
    }
    assert keeps == {
        "__meta_kubernetes_pod_label_app_kubernetes_io_component": "api",
        "__meta_kubernetes_pod_container_port_number": str(API_PORT),
    }


def test_every_alert_rule_is_valid_promql_with_the_tiers_thresholds() -> None:
    thresholds = AlarmThresholds(latency_p95_ms=250, pool_utilization_percent=75)
    rules = {
        rule["alert"]: rule
        for group in alert_rules(thresholds, min_model_auc=0.72)["groups"]
        for rule in group["rules"]
    }
    for rule in rules.values():
        promql_parser.parse(rule["expr"])  # raises ValueError on a malformed expression
        assert rule["for"].endswith("m") and rule["annotations"]["summary"]
    assert rules["ApiLatencyHigh"]["expr"].endswith("> 0.25")
    assert rules["DatabasePoolSaturated"]["expr"].endswith("> 0.75")
    assert rules["DistrictModelBelowMinimumAuc"]["expr"].endswith("< 0.72")
    assert set(rules) == {
        "ApiScrapeFailing", "ApiLatencyHigh", "ApiErrorRateHigh", "DatabasePoolSaturated",
        "DatabasePoolQueueing", "DistrictModelBelowMinimumAuc", "WorkerScrapeFailing",
        "EventLagHigh",
    }  # fmt: skip


def test_a_malformed_rule_would_be_caught() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(ssp_http_requests_total[5m]) >")


def test_alerts_go_to_the_alarm_topic_signed_for_the_region() -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:alarms"
    outer = yaml.safe_load(alertmanager_definition(topic, "us-east-1"))
    config = yaml.safe_load(outer["alertmanager_config"])  # the service takes it as a string
    (receiver,) = config["receivers"]
    assert config["route"]["receiver"] == receiver["name"]
    (sns,) = receiver["sns_configs"]
    assert sns["topic_arn"] == topic and sns["sigv4"] == {"region": "us-east-1"}


def app_metric_names() -> set[str]:
    """The names of every sample the app exports (counters' _total, histograms' _bucket...):
    the API's (the default registry) and the event worker's (its own registry)."""
    import app.api.metrics  # noqa: F401  (registers the app's metrics)
    from app.jobs.events import metrics as worker_metrics

    collectors = [c for registry in (REGISTRY, worker_metrics.REGISTRY) for c in registry.collect()]
    return {
        sample_name
        for collector in collectors
        for sample_name in [collector.name, *(s.name for s in collector.samples)]
    } | {
        f"{c.name}{suffix}"
        for c in collectors
        for suffix in {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(
            c.type, ()
        )
    }


def metrics_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(ssp_[a-z_]+)", expr))


def test_rules_and_dashboards_query_only_metrics_the_app_exports() -> None:
    exported = app_metric_names()
    expressions = [
        rule["expr"]
        for group in alert_rules(AlarmThresholds(), 0.7)["groups"]
        for rule in group["rules"]
    ] + [
        target["expr"]
        for board in dashboards().values()
        for panel in board["panels"]
        for target in panel["targets"]
    ]
    unknown = {name for expr in expressions for name in metrics_in(expr)} - exported
    assert not unknown, f"the app exports no {sorted(unknown)}"


def test_every_dashboard_panel_is_valid_promql_on_the_provisioned_data_source() -> None:
    boards = dashboards()
    assert set(boards) == {"api", "models"}
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    for board in boards.values():
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == DATA_SOURCE_UID, panel["title"]
            for target in panel["targets"]:
                promql_parser.parse(target["expr"])
                assert target["datasource"]["uid"] == DATA_SOURCE_UID


# -- what the program registers ------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_where_the_tier_asks_for_it(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    wanted = TIERS[tier_of(run)].monitoring.prometheus
    assert wanted == (tier_of(run) in ("tier3", "tier4"))
    for type_ in (WORKSPACE, SCRAPER, RULES, ALERT_MANAGER):
        assert bool(run.of_type(type_)) == wanted, type_


def test_tier3_scraper_rules_and_access(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    workspace = run.one(WORKSPACE)
    assert workspace.get("kmsKeyArn").startswith("arn:aws:kms:")
    assert workspace.get("loggingConfiguration.logGroupArn").endswith(":*")
    assert "AMPAgentlessScraper" in workspace.get("tags")

    scraper = run.one(SCRAPER)
    assert scraper.get("destination.amp.workspaceArn").endswith(f"workspace/{workspace.id}")
    source = scraper.get("source.eks")
    assert source["clusterArn"].startswith("arn:aws:eks:") and len(source["subnetIds"]) >= 2
    assert len(source["securityGroupIds"]) == 1
    config = yaml.safe_load(scraper.get("scrapeConfiguration"))
    assert (
        config["global"]["scrape_interval"]
        == f"{TIERS['tier3'].monitoring.scrape_interval_seconds}s"
    )

    # The scraper may only discover the app namespace's pods (read-only), as its user.
    role = run.one(ROLE)
    assert role.get("metadata.namespace") == "student-success"
    (rule,) = role.get("rules")
    assert set(rule["verbs"]) == {"get", "list", "watch"}
    assert set(rule["resources"]) == {"pods", "endpoints", "services"}
    binding = run.one(ROLE_BINDING)
    assert binding.get("subjects") == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": SCRAPER_USER}
    ]

    # Admitted to the API port only, from the private subnets where its ENIs are.
    admit = run.one(NETWORK_POLICY, "monitoring-allow-scrape")
    (ingress,) = admit.get("spec.ingress")
    assert ingress["ports"] == [{"protocol": "TCP", "port": API_PORT}]
    private = {s.get("cidrBlock") for s in run.of_type(SUBNET) if "private" in s.name}
    assert {f["ipBlock"]["cidr"] for f in ingress["from"]} == private
    assert admit.get("spec.podSelector.matchLabels")["app.kubernetes.io/component"] == "api"

    rules = yaml.safe_load(run.one(RULES).get("data"))
    assert {g["name"] for g in rules["groups"]} == {
        "student-success-api",
        "student-success-events",
        "student-success-models",
    }
    definition = run.one(ALERT_MANAGER).get("definition")
    topic = yaml.safe_load(yaml.safe_load(definition)["alertmanager_config"])
    assert topic["receivers"][0]["sns_configs"][0]["topic_arn"].startswith("arn:aws:sns:")


def test_the_alarm_topic_admits_prometheus_only_where_it_publishes(stack_run: StackRunner) -> None:
    for stack, publishes in (("tier2", False), ("tier3", True)):
        run = stack_run(stack)
        policies = run.of_type(TOPIC_POLICY)
        key = json.loads(run.one(KMS_KEY, "alarms-key").get("policy"))
        key_services = [s["Principal"].get("Service") for s in key["Statement"]]
        assert bool(policies) == publishes
        assert (["aps.amazonaws.com"] in key_services) == publishes
        if publishes:
            statements = {s["Sid"]: s for s in json.loads(policies[0].get("policy"))["Statement"]}
            publish = statements["ServicesPublish"]
            assert publish["Principal"] == {"Service": ["aps.amazonaws.com"]}
            assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
            # The account keeps what SNS's default policy gave it (CloudWatch alarms publish so).
            assert "SNS:Publish" in statements["AccountOwns"]["Action"]


def test_grafana_on_tier4_only_may_query_its_workspace_only(stack_run: StackRunner) -> None:
    assert not stack_run("tier3").of_type(GRAFANA)
    run = stack_run("tier4")
    workspace = run.one(GRAFANA)
    assert workspace.get("permissionType") == "CUSTOMER_MANAGED"
    assert workspace.get("authenticationProviders") == ["AWS_SSO"]
    role = run.one("aws:iam/role:Role", "monitoring-grafana-role")
    assert workspace.get("roleArn").endswith(f":role/{role.id}")
    (statement,) = json.loads(
        run.one("aws:iam/rolePolicy:RolePolicy", "monitoring-grafana-query").get("policy")
    )["Statement"]
    assert statement["Action"] == list(QUERY_ACTIONS)
    assert statement["Resource"] == run.one(SCRAPER).get("destination.amp.workspaceArn")
    # Provisioned through the Grafana API of that workspace, with a rotating token.
    provider = run.one("pulumi:providers:grafana")
    assert re.fullmatch(
        r"https://g-\w+\.grafana-workspace\.us-east-1\.amazonaws\.com", provider.get("url")
    )
    assert "auth" in provider.secret_paths
    assert all(
        r.provider_name == provider.name for r in run.of_type("grafana:oss/dashboard:Dashboard")
    )
    token = run.one("aws:grafana/workspaceServiceAccountToken:WorkspaceServiceAccountToken")
    assert token.get("secondsToLive") == 30 * 86_400 and token.get("name").startswith("pulumi-")
    assert run.one("time:index/rotating:Rotating").get("rotationDays") < 30
    source = run.one("grafana:oss/dataSource:DataSource")
    assert source.get("uid") == DATA_SOURCE_UID
    assert json.loads(source.get("jsonDataEncoded"))["sigV4AuthType"] == "ec2_iam_role"
    boards = run.of_type("grafana:oss/dashboard:Dashboard")
    assert sorted(json.loads(b.get("configJson"))["uid"] for b in boards) == [
        "ssp-api",
        "ssp-models",
    ]
    assert all(source.urn in b.options.depends_on for b in boards)


def test_the_groups_named_sign_in_to_grafana_as_admins(stack_run: StackRunner) -> None:
    """IAM Identity Center signs in only the users and groups assigned to the workspace."""
    group = "9067c1b0a2-1a2b3c4d-1234-5678-9abc-def012345678"
    run = run_stack("tier4", {"grafanaAdminGroupIds": [group]})
    association = run.one("aws:grafana/roleAssociation:RoleAssociation")
    assert association.get("role") == "ADMIN"
    assert association.get("groupIds") == [group]
    assert association.get("workspaceId") == run.one(GRAFANA).id
    assert not stack_run("tier4").of_type("aws:grafana/roleAssociation:RoleAssociation")


def test_grafana_groups_are_refused_where_no_workspace_runs() -> None:
    group = "1a2b3c4d-1234-5678-9abc-def012345678"
    with pytest.raises(SpecError, match="grafanaAdminGroupIds: tier tier3 has no Grafana"):
        run_stack("tier3", {"grafanaAdminGroupIds": [group]})
