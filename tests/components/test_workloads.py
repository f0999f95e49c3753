"""The workloads: the API Deployment, its HPA, the jobs, their Secrets and ConfigMap, and the
Kubernetes objects around them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_policy import PolicyResource

from components.config.capacity import connection_capacity
from components.config.catalog import TIERS
from components.shared import k8s_manifests as m
from components.workloads.settings import (
    PSYCOPG_PREPARE_THRESHOLD,
    app_config_data,
    app_secret_data,
    database_secret_data,
    postgres_url,
)
from policies.rules.stack_capacity import pool_users
from tests.shared import (
    CONFIG_MAP,
    CRON_JOB,
    DEPLOYMENT,
    HPA,
    JOB,
    K8S_SECRET,
    NAMESPACE,
    NETWORK_POLICY,
    ROLE_POLICY,
    STACKS,
    StackRunner,
    tier_of,
)
from tools.harness import StackRun

# -- pure functions ------------------------------------------------------------------------


def test_postgres_url_escapes_password_and_requires_tls() -> None:
    url = postgres_url("app", "p@ss/w:rd", "db.internal", 5432, "ssp")
    assert url == "postgresql://app:p%40ss%2Fw%3Ard@db.internal:5432/ssp?sslmode=require"


def test_app_secret_and_config_keys() -> None:
    secret = app_secret_data(redis_url=None, api_key_pepper="x" * 48)
    assert set(secret) == {"API_KEY_PEPPER"}
    database = database_secret_data(
        user="u", password="p", writer="w", reader="r", port=5432, database="d"
    )
    assert set(database) == {"DATABASE_URL", "DATABASE_READ_URL"}
    assert "@r:5432" in database["DATABASE_READ_URL"]
    secret = {**secret, **database}
    config = app_config_data(
        api=TIERS["tier3"].api,
        training=TIERS["tier3"].training,
        events=TIERS["tier3"].events,
        events_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/q",
        models_bucket="m",
        archive_bucket="a",
        drop_bucket="d",
        region="us-east-1",
        load_balancer_cidrs=["10.40.128.0/22", "10.40.132.0/22"],
        database_via_proxy=True,
    )
    # Behind RDS Proxy nothing is prepared server-side (it would pin every connection).
    assert config["DB_PREPARE_THRESHOLD"] == "none"
    # Client addresses come from X-Forwarded-For only when the ALB's subnets sent it.
    assert config["FORWARDED_ALLOW_IPS"] == "10.40.128.0/22,10.40.132.0/22"
    assert config["MODEL_STORE_URL"] == "s3://m/models"
    assert config["ARCHIVE_STORE_URL"] == "s3://a/audit"
    assert config["IMPORT_SOURCE_URL"] == "s3://d/exports"
    assert config["ENVIRONMENT"] == "production"
    # The gate's minimum is the catalog's, which the Prometheus alert watches too.
    assert config["MIN_PROMOTION_AUC"] == str(TIERS["tier3"].training.min_promotion_auc)
    assert "APP_ENV" not in config
    assert not set(config) & set(secret)


def test_hpa_spec_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="HPA replicas 3-2"):
        m.hpa_spec(
            deployment="api", min_replicas=3, max_replicas=2, cpu_percent=70, memory_percent=80
        )


# -- the whole program, per stack ----------------------------------------------------------


def _k8s(run: StackRun) -> list[Any]:
    return [r for r in run if r.type.startswith("kubernetes:") and r.custom]


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_uses_the_cluster_provider(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    objects = _k8s(run)
    assert len(objects) >= 15
    for obj in objects:
        assert obj.options.provider, f"{obj.type} {obj.name} uses the default provider"
        assert obj.provider_name == "cluster-k8s", obj.name


@pytest.mark.parametrize("stack", STACKS)
def test_selectors_match_labels(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    deployment = run.one(DEPLOYMENT, "workloads-api")
    pod_labels = deployment.get("spec.template.metadata.labels")
    selector = deployment.get("spec.selector.matchLabels")
    assert selector and selector.items() <= pod_labels.items()
    service = run.one("kubernetes:core/v1:Service")
    assert service.get("spec.selector").items() <= pod_labels.items()
    assert service.get("spec.ports.0.targetPort") == "http"
    assert deployment.get("spec.template.spec.containers.0.ports.0.name") == "http"
    pdb = run.one("kubernetes:policy/v1:PodDisruptionBudget", "workloads-api-pdb")
    assert pdb.get("spec.selector.matchLabels").items() <= pod_labels.items()
    worker = run.one(DEPLOYMENT, "workloads-worker")
    worker_labels = worker.get("spec.template.metadata.labels")
    assert worker.get("spec.selector.matchLabels").items() <= worker_labels.items()
    worker_pdb = run.one("kubernetes:policy/v1:PodDisruptionBudget", "workloads-worker-pdb")
    assert worker_pdb.get("spec.selector.matchLabels").items() <= worker_labels.items()
    # Only the API's pods take the load balancer's traffic.
    assert not pod_labels.items() <= worker_labels.items()
    hpa = run.one(HPA, "workloads-api-hpa")
    assert hpa.get("spec.scaleTargetRef") == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment.get("metadata.name"),
    }
    ingress = run.one(NETWORK_POLICY, "workloads-allow-api-ingress")
    assert ingress.get("spec.podSelector.matchLabels").items() <= pod_labels.items()
    egress = run.one(NETWORK_POLICY, "workloads-allow-egress")
    for job in run.of_type(CRON_JOB):
        job_labels = job.get("spec.jobTemplate.spec.template.metadata.labels")
        assert egress.get("spec.podSelector.matchLabels").items() <= job_labels.items()
    assert egress.get("spec.podSelector.matchLabels").items() <= pod_labels.items()
    assert egress.get("spec.podSelector.matchLabels").items() <= worker_labels.items()
    binding = run.one("kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding")
    assert binding.get("spec.serviceRef") == {
        "name": service.get("metadata.name"),
        "port": service.get("spec.ports.0.port"),
    }
    namespace = run.one(NAMESPACE).get("metadata.name")
    for obj in _k8s(run):
        if obj.type.startswith("kubernetes:helm.sh") or obj.type.endswith(":Namespace"):
            continue
        assert obj.get("metadata.namespace") == namespace, obj.name


@pytest.mark.parametrize("stack", STACKS)
def test_api_pods_are_hardened_and_sized_by_the_tier(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    namespace = run.one(NAMESPACE)
    assert namespace.get("metadata.labels")["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = run.one(DEPLOYMENT, "workloads-api")
    pod = deployment.get("spec.template.spec")
    container = pod["containers"][0]
    assert container["image"].endswith(":0.1.0") and ".dkr.ecr." in container["image"]
    assert container["args"] == ["serve"]
    assert container["resources"] == {
        "requests": {"cpu": tier.api.cpu_request, "memory": tier.api.memory_request},
        "limits": {"cpu": tier.api.cpu_limit, "memory": tier.api.memory_limit},
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"]
    assert container["livenessProbe"]["httpGet"]["path"] == m.LIVENESS_PATH
    assert container["readinessProbe"]["httpGet"]["path"] == m.READINESS_PATH
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert deployment.get("spec.strategy.rollingUpdate") == {"maxUnavailable": 0, "maxSurge": "25%"}
    assert "replicas" not in deployment.get("spec"), "the HPA owns the replica count"


@pytest.mark.parametrize("stack", STACKS)
def test_hpa_max_is_the_capacity_checks_max(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    hpa = run.one(HPA, "workloads-api-hpa")
    assert hpa.get("spec.minReplicas") == tier.api.min_replicas
    assert hpa.get("spec.maxReplicas") == tier.api.max_replicas
    assert hpa.get("spec.maxReplicas") == connection_capacity(tier).max_pods
    targets = {
        x["resource"]["name"]: x["resource"]["target"]["averageUtilization"]
        for x in hpa.get("spec.metrics")
    }
    assert targets == {"cpu": tier.api.cpu_target_percent, "memory": tier.api.memory_target_percent}
    assert hpa.get("spec.behavior.scaleDown.stabilizationWindowSeconds") == 300


@pytest.mark.parametrize("stack", STACKS)
def test_the_catalogs_connection_budget_counts_every_pool_the_policy_counts(
    stack_run: StackRunner, stack: str
) -> None:
    # The spec refuses a tier whose pools do not fit before anything deploys; it can only do
    # so if it counts what the stack's workloads open: the API, the trainer, the archive job,
    # the event workers and the suspended on-demand Jobs.
    run = stack_run(stack)
    resources = [
        PolicyResource(r.type, dict(r.inputs), r.urn, r.name, None, None, None, [], {})
        for r in run.resources
    ]
    users = {u.resource.name: u.demand for u in pool_users(resources)}
    capacity = connection_capacity(TIERS[tier_of(run)])
    assert sum(users.values()) == capacity.demand, users
    lifecycle = ("workloads-purger", "workloads-offboarder", "workloads-access-report")
    assert sum(users[name] for name in lifecycle) == capacity.on_demand
    assert users["workloads-archiver"] == capacity.archiver


def mounted_secrets(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The names of the Secrets the container mounts at the app's secrets directory."""
    (mount,) = [v for v in container["volumeMounts"] if v["mountPath"] == m.SECRETS_DIR]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return [source["secret"]["name"] for source in volume["projected"]["sources"]]


def _pods(run: StackRun) -> list[tuple[str, dict[str, Any]]]:
    """Every pod template of the app's workloads, with its owner's resource name."""
    paths = {DEPLOYMENT: "spec.template.spec", CRON_JOB: "spec.jobTemplate.spec.template.spec"}
    paths[JOB] = "spec.template.spec"
    return [(r.name, r.get(path)) for t, path in paths.items() for r in run.of_type(t)]


@pytest.mark.parametrize("stack", STACKS)
def test_credentials_reach_every_container_as_read_only_files(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    config = run.one(CONFIG_MAP, "workloads-config").get("data")
    assert config["SECRETS_DIR"] == m.SECRETS_DIR
    pods = _pods(run)
    assert len(pods) >= 4  # bootstrap, api, trainer, archiver (and the worker)
    for owner, pod in pods:
        for container in (*pod.get("initContainers", []), *pod["containers"]):
            where = f"{owner}/{container['name']}"
            # Nothing secret in the environment: the ConfigMap only, literal values.
            assert [list(e) for e in container["envFrom"]] == [["configMapRef"]], where
            assert all("valueFrom" not in e for e in container.get("env", [])), where
            (mount,) = [v for v in container["volumeMounts"] if v["mountPath"] == m.SECRETS_DIR]
            assert mount["readOnly"] is True, where
            (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
            assert volume["projected"]["defaultMode"] == 0o440, where
            names = [n.rpartition("-")[0] for n in mounted_secrets(pod, container)]
            # The app's Secret, then the workload's own database login; the archive job's
            # retention also the purge login's, where the tier keeps records for a set time.
            kept = TIERS[tier_of(run)].retention.student_years
            retention = owner == "workloads-archiver" and kept is not None
            expected = ["-db", "-retention-db"] if retention else ["-db"]
            assert names[0] == "workloads-secret" and len(names) == 1 + len(expected), where
            assert all(n.endswith(e) for n, e in zip(names[1:], expected, strict=True)), where
        # Every mount names a volume of the pod: else the pod would not start.
        mounts = {v["name"] for c in pod["containers"] for v in c["volumeMounts"]}
        assert mounts <= {v["name"] for v in pod["volumes"]}, owner


@pytest.mark.parametrize("stack", STACKS)
def test_jobs(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    jobs = {j.get("metadata.name"): j for j in run.of_type(CRON_JOB)}
    assert jobs["trainer"].get("spec.schedule") == "0 2 * * *"
    assert jobs["archiver"].get("spec.schedule") == "0 4 * * 0"
    for job in jobs.values():
        spec = job.get("spec")
        assert spec["concurrencyPolicy"] == "Forbid" and spec["timeZone"]
        assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True
        # Each job its own IRSA role: the archiver cannot read exports or write models.
        assert pod["serviceAccountName"] == job.get("metadata.name")
    trainer = jobs["trainer"].get("spec.jobTemplate.spec")
    # An Indexed Job of N shards, N from the tier's expected schools; each index retried alone.
    tier = TIERS[tier_of(run)]
    shards = tier.training.shards(tier.expected_schools)
    assert trainer["activeDeadlineSeconds"] == 1800 and "backoffLimit" not in trainer
    assert trainer["completionMode"] == "Indexed" and trainer["backoffLimitPerIndex"] == 2
    assert trainer["completions"] == trainer["parallelism"] == shards
    pod = trainer["template"]["spec"]
    assert pod["containers"][0]["args"] == ["train", "--shards", str(shards)]
    assert pod["containers"][0]["resources"]["limits"] == {
        "cpu": tier.training.shard_cpu,
        "memory": tier.training.shard_memory,
    }
    # The nightly pipeline: the import (index 0's does it), then the shard's training.
    steps = [(c["name"], c["args"]) for c in pod["initContainers"]]
    assert steps == [("importer", ["import"])]
    secrets = [mounted_secrets(pod, c) for c in (*pod["initContainers"], *pod["containers"])]
    assert [s[-1].rpartition("-")[0] for s in secrets] == [
        "workloads-importer-db",
        "workloads-trainer-db",
    ]
    # A refused export is not retried (it cannot succeed); other failures are.
    (rule,) = trainer["podFailurePolicy"]["rules"]
    assert rule == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "importer", "operator": "In", "values": [65]},
    }
    assert "initContainers" not in jobs["archiver"].get("spec.jobTemplate.spec.template.spec")


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_stay_secret(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    for secret in run.of_type(K8S_SECRET):
        assert "stringData" in secret.secret_paths, secret.name
    shared = set(run.one(K8S_SECRET, "workloads-secret").get("stringData"))
    assert ("REDIS_URL" in shared) is tier.cache.enabled
    database = run.one(K8S_SECRET, "workloads-api-db").get("stringData")
    assert set(database) == {"DATABASE_URL", "DATABASE_READ_URL"}
    assert database["DATABASE_URL"].endswith("?sslmode=require")
    config = run.one(CONFIG_MAP).get("data")
    assert not any("postgresql://" in v or "rediss://" in v for v in config.values())
    assert "kubeconfig" not in run.outputs or "kubeconfig" in run.secret_outputs


@pytest.mark.parametrize("stack", STACKS)
def test_api_prepares_statements_only_where_no_proxy_pins_for_them(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    (config,) = [
        r for r in run.of_type("kubernetes:core/v1:ConfigMap") if r.name.endswith("-config")
    ]
    proxied = run.count("aws:rds/proxy:Proxy") > 0
    assert proxied == TIERS[tier_of(run)].db.proxy
    expected = "none" if proxied else str(PSYCOPG_PREPARE_THRESHOLD)
    assert config.get("data")["DB_PREPARE_THRESHOLD"] == expected, stack


@pytest.mark.parametrize("stack", STACKS)
def test_lifecycle_jobs_are_suspended_templates_each_with_its_own_identity_and_login(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    jobs = {j.get("metadata.name"): j for j in run.of_type(CRON_JOB)}
    accounts = {a.get("metadata.name"): a for a in run.of_type("kubernetes:core/v1:ServiceAccount")}
    # The database Secret each one reads: the purge login, the master, the archiver's.
    logins = {"purger": "purger-db", "offboarder": "offboard-db", "access-report": "archiver-db"}
    for name, login in logins.items():
        spec = jobs[name].get("spec")
        assert spec["suspend"] is True, name  # never on a schedule: an operator starts it
        job = spec["jobTemplate"]["spec"]
        assert job["backoffLimit"] == 0, name
        pod = job["template"]["spec"]
        assert pod["serviceAccountName"] == name
        assert "eks.amazonaws.com/role-arn" in accounts[name].get("metadata.annotations")
        (container,) = pod["containers"]
        params = {e["name"]: e["value"] for e in container["env"] if e["name"].isupper()}
        # Every $(VAR) of the command line is a parameter of the Job's env.
        named = {a[2:-1] for a in container["args"] if a.startswith("$(")}
        assert named and named <= set(params), name
        secrets = [n.rpartition("-")[0] for n in mounted_secrets(pod, container)]
        assert secrets == ["workloads-secret", f"workloads-{login}"], name
    purge = jobs["purger"].get("spec.jobTemplate.spec.template.spec.containers")[0]
    assert purge["args"][:2] == ["purge-student", "--student"]
    offboard = jobs["offboarder"].get("spec.jobTemplate.spec.template.spec.containers")[0]
    assert offboard["args"][0] == "offboard-district"
    report = offboard["args"][offboard["args"].index("--report-to") + 1]
    assert report.startswith("s3://") and report.endswith("/offboarding")
    # The master's URL and the report's signing key reach the offboarding Job alone; the purge
    # login's URL the purge Job and, where the tier keeps records for a set time, the archive.
    master = run.one(K8S_SECRET, "workloads-offboard-db").get("stringData")
    assert set(master) == {"DATABASE_URL", "DATABASE_READ_URL", "DESTRUCTION_REPORT_KEY"}
    for owner, pod in _pods(run):
        for container in pod["containers"]:
            names = [n.rpartition("-")[0] for n in mounted_secrets(pod, container)]
            if "workloads-offboard-db" in names:
                assert owner == "workloads-offboarder", owner
            if "workloads-bootstrap-db" in names:
                assert owner == "workloads-bootstrap", owner
            if "workloads-retention-db" in names:
                assert owner == "workloads-archiver" and tier.retention.student_years, owner
    # The retention is the archive job's own env (a change rolls no other workload).
    archiver = jobs["archiver"].get("spec.jobTemplate.spec.template.spec.containers")[0]
    env = {e["name"]: e["value"] for e in archiver["env"]}
    assert env.get("STUDENT_RETENTION_YEARS") == (
        str(tier.retention.student_years) if tier.retention.student_years else None
    )
    assert "STUDENT_RETENTION_YEARS" not in run.one(CONFIG_MAP, "workloads-config").get("data")
    if tier.retention.student_years:
        purge_url = run.one(K8S_SECRET, "workloads-retention-db").get("stringData")
        assert set(purge_url) == {"PURGE_DATABASE_URL"}
        assert purge_url["PURGE_DATABASE_URL"].startswith("postgresql://ssp_purger:")


@pytest.mark.parametrize("stack", STACKS)
def test_the_archive_role_may_destroy_expired_months_only_where_the_tier_sets_a_retention(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    archiver = json.loads(run.one(ROLE_POLICY, "workloads-archiver-policy").get("policy"))
    sids = {s["Sid"] for s in archiver["Statement"]}
    assert ("DestroyExpiredMonths" in sids) is (tier.retention.audit_archive_years is not None)
    for component in ("purger", "offboarder", "access-report"):
        doc = json.loads(run.one(ROLE_POLICY, f"workloads-{component}-policy").get("policy"))
        assert doc["Statement"], component
