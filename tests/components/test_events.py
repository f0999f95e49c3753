"""The events queue and its worker: the SQS queue and its dead-letter queue (tier2+), their key
and alarms, the worker Deployment with its login, IAM and autoscaling (KEDA on SQS, an HPA on
the PostgreSQL queue), and what the API is given to send events."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import yaml

from components.config.capacity import connection_capacity
from components.config.catalog import TIERS
from components.config.spec_events import events_problems
from components.config.tier import AlarmThresholds, EventsSize
from components.events import redrive_allow_policy, redrive_policy
from components.monitoring.rules import WORKER_SCRAPE_JOB, alert_rules, scrape_configuration
from components.shared.contract import WORKER_METRICS_PORT
from tests.shared import (
    CONFIG_MAP,
    HPA,
    KMS_KEY,
    NETWORK_POLICY,
    ROLE_POLICY,
    StackRunner,
)
from tools.harness import Resource, StackRun
from tools.manifests import API, WORKER, find_container

QUEUE = "aws:sqs/queue:Queue"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
HELM = "kubernetes:helm.sh/v3:Release"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
SQS_STACKS = ["tier2", "tier3", "tier4"]
POSTGRES_STACKS = ["dev", "tier1"]


def statements(run: StackRun, name: str) -> list[dict[str, Any]]:
    return list(json.loads(run.one(ROLE_POLICY, name).inputs["policy"])["Statement"])


def actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def granted(run: StackRun, policy: str, action: str) -> list[Any]:
    return [s["Resource"] for s in statements(run, policy) if action in actions(s)]


# -- pure functions ------------------------------------------------------------------------


def test_redrive_policies_name_the_dead_letter_queue_and_its_only_source() -> None:
    assert json.loads(redrive_policy("arn:dlq", 5)) == {
        "deadLetterTargetArn": "arn:dlq",
        "maxReceiveCount": 5,
    }
    assert json.loads(redrive_allow_policy("arn:q")) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": ["arn:q"],
    }


def test_every_tier_row_passes_the_events_rules() -> None:
    for tier in TIERS.values():
        assert events_problems(tier.events) == [], tier.name


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"visibility_timeout_seconds": 30}, "events.visibility_timeout_seconds=30: need more"),
        ({"visibility_timeout_seconds": 50_000}, "at most 43200"),
        ({"min_workers": 3, "max_workers": 2}, "events.min_workers=3 > events.max_workers=2"),
        ({"max_receive_count": 0}, "events.max_receive_count=0: allowed 1-1000"),
        ({"retention_days": 15}, "events.retention_days=15: allowed 1-14"),
        ({"dead_letter_retention_days": 2}, "events.dead_letter_retention_days=2: need at least"),
        ({"queue": "kafka"}, "events.queue='kafka': allowed postgres, sqs"),
        ({"oldest_message_alarm_seconds": 10}, "events.oldest_message_alarm_seconds=10"),
    ],
)
def test_bad_events_values_are_refused_naming_the_key(
    change: dict[str, Any], fragment: str
) -> None:
    problems = events_problems(dataclasses.replace(EventsSize(), **change))
    assert any(fragment in p for p in problems), problems


def test_the_workers_connections_count_in_the_capacity_check() -> None:
    tier1 = TIERS["tier1"]
    capacity = connection_capacity(tier1)
    assert capacity.workers == tier1.events.max_workers * tier1.events.worker_db_connections
    assert capacity.demand <= capacity.budget
    crowded = dataclasses.replace(tier1, events=dataclasses.replace(tier1.events, max_workers=10))
    assert any("10 workers" in p for p in connection_capacity(crowded).problems())


def test_the_scraper_reads_the_workers_metrics_port_and_lag_alerts() -> None:
    config = yaml.safe_load(scrape_configuration("ns", 30))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == WORKER_SCRAPE_JOB)
    keep = {tuple(r["source_labels"]): r.get("regex") for r in job["relabel_configs"]}
    assert keep[("__meta_kubernetes_pod_label_app_kubernetes_io_component",)] == "worker"
    assert keep[("__meta_kubernetes_pod_container_port_number",)] == str(WORKER_METRICS_PORT)
    rules = {
        r["alert"]: r for g in alert_rules(AlarmThresholds(), 0.7)["groups"] for r in g["rules"]
    }
    assert "ssp_worker_lag_seconds_bucket" in rules["EventLagHigh"]["expr"]
    assert rules["EventLagHigh"]["expr"].endswith("> 2.0")
    assert WORKER_SCRAPE_JOB in rules["WorkerScrapeFailing"]["expr"]


# -- the program, per stack ----------------------------------------------------------------


@pytest.mark.parametrize("stack", SQS_STACKS)
def test_sqs_tiers_have_an_encrypted_queue_with_a_dead_letter_queue(
    stack_run: StackRunner, stack: str
) -> None:
    run, events = stack_run(stack), TIERS[stack].events
    queue, dlq = run.one(QUEUE, "events-queue"), run.one(QUEUE, "events-dlq")
    key = run.one(KMS_KEY, "events-key")
    assert key.inputs["enableKeyRotation"] is True and key.inputs["policy"]
    for q in (queue, dlq):
        assert q.inputs["kmsMasterKeyId"] == f"arn:aws:kms:us-east-1:123456789012:key/{key.id}"
        # Undelivered events live there: protected like the other stateful resources.
        assert q.options.protect is True, q.name
    assert queue.inputs["name"] == f"ssp-{stack}-events"
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": f"arn:aws:sqs:us-east-1:123456789012:{dlq.inputs['name']}",
        "maxReceiveCount": events.max_receive_count,
    }
    # Hidden longer than a worker's batch takes, so a slow batch is not delivered twice.
    assert queue.inputs["visibilityTimeoutSeconds"] > events.batch_seconds
    assert queue.inputs["messageRetentionSeconds"] == events.retention_days * 86_400
    assert dlq.inputs["messageRetentionSeconds"] >= queue.inputs["messageRetentionSeconds"]
    allowed = json.loads(dlq.inputs["redriveAllowPolicy"])["sourceQueueArns"]
    assert allowed == [f"arn:aws:sqs:us-east-1:123456789012:ssp-{stack}-events"]


@pytest.mark.parametrize("stack", SQS_STACKS)
def test_queue_age_and_depth_alarm_to_the_alarm_topic(stack_run: StackRunner, stack: str) -> None:
    run, events = stack_run(stack), TIERS[stack].events
    topic = run.one("aws:sns/topic:Topic")
    topic_arn = f"arn:aws:sns:us-east-1:123456789012:topic/{topic.id}"
    alarms = {a.name: a for a in run.of_type(ALARM) if a.name.startswith("events-")}
    assert set(alarms) == {"events-oldest-message", "events-depth", "events-dead-letters"}
    for alarm in alarms.values():
        assert alarm.inputs["namespace"] == "AWS/SQS"
        assert alarm.inputs["alarmActions"] == alarm.inputs["okActions"] == [topic_arn]
    age = alarms["events-oldest-message"].inputs
    assert age["metricName"] == "ApproximateAgeOfOldestMessage"
    assert age["threshold"] == events.oldest_message_alarm_seconds
    assert age["dimensions"] == {"QueueName": f"ssp-{stack}-events"}
    dead = alarms["events-dead-letters"].inputs
    assert dead["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert (dead["threshold"], dead["comparisonOperator"]) == (0, "GreaterThanThreshold")
    assert dead["dimensions"] == {"QueueName": f"ssp-{stack}-events-dlq"}
    depth = alarms["events-depth"].inputs
    assert depth["threshold"] == events.max_workers * events.messages_per_worker


@pytest.mark.parametrize("stack", POSTGRES_STACKS)
def test_postgres_tiers_use_the_table_queue_and_an_hpa(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    assert run.of_type(QUEUE) == [] and run.of_type(SCALED_OBJECT) == []
    assert [r.name for r in run.of_type(HELM) if r.inputs.get("chart") == "keda"] == []
    env = find_container(run, WORKER).env
    assert env["QUEUE_BACKEND"] == "postgres" and "EVENTS_QUEUE_URL" not in env
    hpa = run.one(HPA, "workloads-worker-hpa")
    events = TIERS[stack].events
    assert (hpa.get("spec.minReplicas"), hpa.get("spec.maxReplicas")) == (
        events.min_workers,
        events.max_workers,
    )
    assert hpa.get("spec.scaleTargetRef.name") == "worker"
    # No queue: nothing in its role but reading the served models.
    worker_actions = {a for s in statements(run, "workloads-worker-policy") for a in actions(s)}
    assert not any(a.startswith("sqs:") for a in worker_actions)


@pytest.mark.parametrize("stack", [*POSTGRES_STACKS, *SQS_STACKS])
def test_the_worker_runs_hardened_with_its_own_login_probes_and_port(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    worker = find_container(run, WORKER)
    spec = worker.resource.get("spec.template.spec.containers.0")
    assert worker.args == ["worker"]
    assert spec["ports"] == [
        {"name": "metrics", "containerPort": WORKER_METRICS_PORT, "protocol": "TCP"}
    ]
    for probe in ("livenessProbe", "readinessProbe"):
        assert spec[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    env = worker.env
    assert env["DATABASE_URL"].startswith("postgresql://ssp_worker:")
    assert env["DB_POOL_MAX"] == str(TIERS[stack].events.worker_db_connections)
    assert env["WORKER_VISIBILITY_SECONDS"] == str(TIERS[stack].events.visibility_timeout_seconds)
    assert env["WORKER_MAX_RECEIVES"] == str(TIERS[stack].events.max_receive_count)
    deployment = run.one(*WORKER)
    pod = deployment.get("spec.template.spec")
    assert pod["serviceAccountName"] == "worker"
    assert "replicas" not in deployment.get("spec")  # the autoscaler owns the count
    assert pod["terminationGracePeriodSeconds"] > TIERS[stack].events.batch_seconds
    # It logs in with a role that migrations create: after the bootstrap Job.
    bootstrap = run.one("kubernetes:batch/v1:Job", "workloads-bootstrap")
    assert bootstrap.urn in deployment.options.depends_on
    sa = run.one("kubernetes:core/v1:ServiceAccount", "workloads-worker-sa")
    role = run.one("aws:iam/role:Role", "workloads-worker-role")
    assert sa.get("metadata.annotations")["eks.amazonaws.com/role-arn"].endswith(role.id)
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]
    assert "system:serviceaccount:student-success:worker" in json.dumps(trust)


@pytest.mark.parametrize("stack", SQS_STACKS)
def test_on_sqs_keda_scales_the_worker_on_the_queue_depth(
    stack_run: StackRunner, stack: str
) -> None:
    run, events = stack_run(stack), TIERS[stack].events
    queue = run.one(QUEUE, "events-queue")
    url = f"https://sqs.us-east-1.amazonaws.com/123456789012/ssp-{stack}-events"
    keda = run.one(HELM, "cluster-keda")
    keda_role = run.one("aws:iam/role:Role", "cluster-keda-role")
    assert keda.get("values.podIdentity.aws.irsa") == {
        "enabled": True,
        "roleArn": f"arn:aws:iam::123456789012:role/{keda_role.id}",
    }
    scaled = run.one(SCALED_OBJECT, "workloads-worker-scaler")
    assert scaled.get("spec.scaleTargetRef.name") == "worker"
    assert (scaled.get("spec.minReplicaCount"), scaled.get("spec.maxReplicaCount")) == (
        events.min_workers,
        events.max_workers,
    )
    (trigger,) = scaled.get("spec.triggers")
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["queueURL"] == url
    assert trigger["metadata"]["queueLength"] == str(events.messages_per_worker)
    auth = run.one(TRIGGER_AUTH, "workloads-worker-trigger-auth")
    assert auth.get("spec.podIdentity") == {"provider": "aws"}
    assert trigger["authenticationRef"]["name"] == auth.get("metadata.name")
    # The CRDs come with KEDA's release.
    assert keda.urn in scaled.options.depends_on and keda.urn in auth.options.depends_on
    # KEDA's operator reads the depth of this queue, nothing else.
    (read,) = statements(run, "workloads-queue-scaler-policy")
    assert (read["Action"], read["Resource"]) == ("sqs:GetQueueAttributes", queue_arn(queue))
    assert run.one(ROLE_POLICY, "workloads-queue-scaler-policy").inputs["role"] == keda_role.id
    assert run.of_type(HPA) == [r for r in run.of_type(HPA) if r.name != "workloads-worker-hpa"]


def queue_arn(queue: Resource) -> str:
    return f"arn:aws:sqs:us-east-1:123456789012:{queue.inputs['name']}"


@pytest.mark.parametrize("stack", SQS_STACKS)
def test_least_privilege_on_the_queue(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    queue = queue_arn(run.one(QUEUE, "events-queue"))
    key = run.one(KMS_KEY, "events-key")
    key_arn = f"arn:aws:kms:us-east-1:123456789012:key/{key.id}"
    # The API sends (SQS asks KMS for a data key on the sender's behalf); nothing else.
    assert granted(run, "workloads-api-policy", "sqs:SendMessage") == [queue]
    assert granted(run, "workloads-api-policy", "kms:GenerateDataKey") == [key_arn]
    assert not granted(run, "workloads-api-policy", "sqs:ReceiveMessage")
    # The worker receives, deletes and delays; it never sends.
    consume = [s for s in statements(run, "workloads-worker-policy") if s["Resource"] == queue]
    assert actions(consume[0]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    }
    assert granted(run, "workloads-worker-policy", "kms:Decrypt")[-1] == key_arn
    assert not granted(run, "workloads-worker-policy", "sqs:SendMessage")
    # No other workload touches the queue.
    for policy in run.of_type(ROLE_POLICY):
        if policy.name in {"workloads-api-policy", "workloads-worker-policy",
                           "workloads-queue-scaler-policy"}:  # fmt: skip
            continue
        assert queue not in policy.inputs["policy"], policy.name
    env = find_container(run, WORKER).env
    assert (env["QUEUE_BACKEND"], env["EVENTS_QUEUE_URL"]) == (
        "sqs",
        f"https://sqs.us-east-1.amazonaws.com/123456789012/ssp-{stack}-events",
    )
    api_env = find_container(run, API).env
    assert api_env["EVENTS_QUEUE_URL"] == env["EVENTS_QUEUE_URL"]


@pytest.mark.parametrize("stack", ["dev", "tier2", "tier3", "tier4"])
def test_the_worker_invokes_only_the_stacks_endpoint(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    env = find_container(run, WORKER).env
    invoke = granted(run, "workloads-worker-policy", "sagemaker:InvokeEndpoint")
    endpoints = run.of_type("aws:sagemaker/endpoint:Endpoint")
    if not endpoints:
        assert invoke == [] and "SAGEMAKER_ENDPOINT_NAME" not in env
        return
    (endpoint,) = endpoints
    assert env["SAGEMAKER_ENDPOINT_NAME"] == endpoint.inputs["name"]
    assert invoke == [
        f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{endpoint.inputs['name']}"
    ]


@pytest.mark.parametrize("stack", ["tier3", "tier4"])
def test_prometheus_may_scrape_the_workers_metrics_port_only(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    policy = run.one(NETWORK_POLICY, "monitoring-allow-scrape-worker")
    assert policy.get("spec.podSelector.matchLabels")["app.kubernetes.io/component"] == "worker"
    (ingress,) = policy.get("spec.ingress")
    assert ingress["ports"] == [{"protocol": "TCP", "port": WORKER_METRICS_PORT}]
    scraper = run.one("aws:amp/scraper:Scraper")
    jobs = yaml.safe_load(scraper.inputs["scrapeConfiguration"])["scrape_configs"]
    assert WORKER_SCRAPE_JOB in [j["job_name"] for j in jobs]


def test_the_config_map_names_the_queue_backend(stack_run: StackRunner) -> None:
    for stack in ("dev", "tier3"):
        run = stack_run(stack)
        data = run.one(CONFIG_MAP, "workloads-config").inputs["data"]
        assert data["QUEUE_BACKEND"] == TIERS[stack].events.queue
        # On SQS the workers first drain what a move left in the table queue.
        assert data.get("QUEUE_DRAIN_POSTGRES") == ("true" if stack == "tier3" else None)
