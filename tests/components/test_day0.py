"""A first `pulumi up` ends with a ready API on least-privilege logins: the bootstrap Job
migrates first with the master login (which only the offboarding Job holds besides), every
other workload holds only its own login, config changes roll the pods, and a rollout drops no
request."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from app.core.logins import WORKLOAD_LOGINS
from app.core.settings import Settings
from components.config.catalog import TIERS
from components.config.spec import build_spec
from components.database.settings import MASTER_USERNAME
from components.shared.contract import DEREGISTRATION_DELAY_SECONDS
from tests.shared import (
    API_ACCESS,
    CONFIG_MAP,
    CRON_JOB,
    DB_PROXY,
    DEPLOYMENT,
    JOB,
    K8S_SECRET,
    NAMESPACE,
    ROLE_POLICY,
    SAGEMAKER_ENDPOINT,
    SAGEMAKER_MODEL,
    SECRETS_MANAGER_SECRET,
    STACKS,
    StackRunner,
)
from tools.harness import ROOT, Resource, StackRun, run_stack

# Read by the libraries the app runs on, not by its settings: boto3; and where the settings'
# own files are (app.core.settings.secrets_dir).
LIBRARY_SETTINGS = {"AWS_REGION", "AWS_DEFAULT_REGION", "SECRETS_DIR"}


def secret_of(run: StackRun, name: str) -> Resource:
    return run.one(K8S_SECRET, name)


def env_sources(
    run: StackRun, container: dict[str, Any], volumes: list[dict[str, Any]]
) -> list[Resource]:
    """The ConfigMap a container's ``envFrom`` names and the Secrets its volumes mount (by the
    names Pulumi gave)."""
    names = {ref["name"] for source in container["envFrom"] for ref in source.values()}
    mounted = {v["name"] for v in container["volumeMounts"]}
    names |= {
        source["secret"]["name"]
        for volume in volumes
        if volume["name"] in mounted
        for source in volume.get("projected", {}).get("sources", [])
    }
    # Pulumi names each after its resource, with a random suffix.
    found = [
        r
        for r in run.of_type(K8S_SECRET) + run.of_type(CONFIG_MAP)
        if any(n.rpartition("-")[0] == r.name for n in names)
    ]
    assert len(found) == len(names), f"the pod names {names}, found {[r.name for r in found]}"
    return found


def login_of(url: str) -> str:
    return unquote(urlparse(url).username or "")


@pytest.mark.parametrize("stack", STACKS)
def test_the_bootstrap_job_migrates_first_with_the_master_login(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    job = run.one(JOB, "workloads-bootstrap")
    assert re.fullmatch(r"bootstrap-[0-9a-f]{10}", job.get("metadata.name"))
    container = job.get("spec.template.spec.containers.0")
    assert container["args"] == ["migrate"]
    assert job.get("spec.template.spec.restartPolicy") == "Never"
    assert job.get("spec.template.spec.serviceAccountName") == "bootstrap"
    data = secret_of(run, "workloads-bootstrap-db").get("stringData")
    assert login_of(data["DATABASE_URL"]) == "ssp_admin"
    # Migrations go to the primary itself, never through the proxy.
    assert ".proxy-" not in data["DATABASE_URL"]
    assert {f"DB_{w.upper()}_PASSWORD" for w in WORKLOAD_LOGINS} <= set(data)
    # Everything that logs in with a migrated role waits for it.
    for workload in [*run.of_type(DEPLOYMENT), *run.of_type(CRON_JOB)]:
        assert job.urn in workload.options.depends_on, workload.name


# The workloads allowed the master login: the bootstrap Job (migrations) and the offboarding
# Job (it deletes a district's rows from every table, its keys and its schools).
MASTER_HOLDERS = {"bootstrap", "offboarder"}


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_bootstrap_and_offboarding_jobs_hold_the_master_login(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    tier = TIERS[run.config["student-success:tier"]]
    # Every workload of the stack: Deployments, CronJobs (suspended ones too) and Jobs.
    workloads = {
        w.name.removeprefix("workloads-"): w
        for w in (*run.of_type(DEPLOYMENT), *run.of_type(CRON_JOB), *run.of_type(JOB))
    }
    # Each container's logins; the nightly pipeline's import step is the importer's, the
    # access report reads the audit log as the archiver, and the archive job purges expired
    # students as the purge login where the tier keeps student records for a set time.
    expected = {name: {login} for name, login in WORKLOAD_LOGINS.items()}
    if tier.retention.student_years is not None:
        expected["archiver"].add(WORKLOAD_LOGINS["purger"])
    expected["access-report"] = {WORKLOAD_LOGINS["archiver"]}
    expected |= {name: {MASTER_USERNAME} for name in MASTER_HOLDERS}
    seen: set[str] = set()
    holders: set[str] = set()
    for workload, resource in workloads.items():
        spec = resource.get("spec.template.spec") or resource.get(
            "spec.jobTemplate.spec.template.spec"
        )
        for container in (*spec.get("initContainers", []), *spec["containers"]):
            name = container["name"]
            urls = [
                value
                for source in env_sources(run, container, spec["volumes"])
                for key, value in (source.get("stringData") or source.get("data") or {}).items()
                if key.endswith("DATABASE_URL") or key.endswith("DATABASE_READ_URL")
            ]
            assert all("sslmode=require" in u for u in urls), (workload, name)
            logins = {login_of(u) for u in urls}
            assert logins == expected[name], (workload, name)
            if MASTER_USERNAME in logins:
                holders.add(workload)
            seen |= logins
    assert holders == MASTER_HOLDERS
    assert seen == {*WORKLOAD_LOGINS.values(), MASTER_USERNAME}


def test_the_proxy_admits_the_workloads_logins_not_the_master(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    proxy = run.one(DB_PROXY)
    arns = {auth["secretArn"] for auth in proxy.get("auths")}
    assert len(arns) == len(WORKLOAD_LOGINS)
    master = run.one(SECRETS_MANAGER_SECRET, "database-credentials")
    assert not any(master.id in arn for arn in arns)


def test_the_release_changes_with_the_image_or_a_migration() -> None:
    def release(tag: str, migrations: dict[str, str]) -> str:
        config = {**API_ACCESS, "appImageTag": tag}
        return build_spec(config, stack="dev", region="us-east-1", migrations=migrations).release

    base = release("1.0.0", {"0001.sql": "create table a ();"})
    assert base == release("1.0.0", {"0001.sql": "create table a ();"})
    assert base != release("1.0.1", {"0001.sql": "create table a ();"})
    assert base != release("1.0.0", {"0001.sql": "create table b ();"})
    assert base != release("1.0.0", {"0001.sql": "create table a ();", "0002.sql": ""})


def test_the_program_reads_the_apps_migrations(stack_run: StackRunner) -> None:
    job = stack_run("dev").one(JOB, "workloads-bootstrap")
    migrations = {p.name: p.read_text() for p in (ROOT / "app" / "migrations").glob("*.sql")}
    expected = build_spec(
        API_ACCESS, stack="dev", region="us-east-1", migrations=migrations
    ).release
    assert job.get("metadata.name") == f"bootstrap-{expected}"


def test_every_workload_login_is_created_by_the_migrations() -> None:
    sql = "\n".join(p.read_text() for p in (ROOT / "app" / "migrations").glob("*.sql"))
    for login in WORKLOAD_LOGINS.values():
        created = rf"'{login}', 'LOGIN'|CREATE ROLE {login} LOGIN"
        assert re.search(created, sql), f"no migration creates the login {login}"


@pytest.mark.parametrize("stack", STACKS)
def test_config_and_secrets_are_named_by_pulumi_so_a_change_rolls_the_pods(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    for resource in run.of_type(CONFIG_MAP) + run.of_type(K8S_SECRET):
        assert not resource.get("metadata.name"), f"{resource.name} has a fixed name"


def test_every_config_key_is_a_setting_the_app_reads(stack_run: StackRunner) -> None:
    settings = {name.upper() for name in Settings.model_fields}
    for stack in STACKS:
        for config in stack_run(stack).of_type(CONFIG_MAP):
            unknown = set(config.get("data")) - settings - LIBRARY_SETTINGS
            assert not unknown, f"{stack} {config.name}: the app reads no {sorted(unknown)}"


@pytest.mark.parametrize("stack", STACKS)
def test_a_rollout_drops_no_request(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    namespace = run.one(NAMESPACE)
    assert namespace.get("metadata.labels")["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"
    deployment = run.one(DEPLOYMENT, "workloads-api")
    assert deployment.get("spec.strategy.rollingUpdate.maxUnavailable") == 0
    pod = deployment.get("spec.template.spec")
    (container,) = pod["containers"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop > 0
    # The pod outlives the load balancer's draining of it, and then drains itself.
    assert pod["terminationGracePeriodSeconds"] > DEREGISTRATION_DELAY_SECONDS + pre_stop


def test_a_sagemaker_tier_waits_for_its_published_model() -> None:
    """The endpoint is made from the archive of trained models: until it is published, the
    first `pulumi up` creates no endpoint (and needs none) and the API scores in process."""
    first_day = run_stack("tier3", {"sagemakerModelPublished": "false"})
    assert not first_day.of_type(SAGEMAKER_ENDPOINT)
    assert "sagemaker_endpoint_name" not in first_day.outputs
    api_role_policy = first_day.one(ROLE_POLICY, "workloads-api-policy")
    assert "sagemaker:InvokeEndpoint" not in api_role_policy.get("policy")
    later = run_stack("tier3")
    assert later.count(SAGEMAKER_ENDPOINT) == 1
    model = later.one(SAGEMAKER_MODEL)
    assert model.get("primaryContainer.modelDataUrl").endswith("/sagemaker/model.tar.gz")


def test_only_a_sagemaker_tier_may_say_its_model_is_published() -> None:
    with pytest.raises(ValueError, match="tier tier1 has no SageMaker endpoint"):
        build_spec({"tier": "tier1", "sagemakerModelPublished": True}, stack="t", region="x")
