"""The first-day rehearsal: containers' environments exactly as their manifests give them, the
stack's endpoints mapped to local stand-ins, and a rehearsal that stops at the step a broken
program would break."""

from __future__ import annotations

import base64
import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tests.shared import JOB, StackRunner
from tools.first_day import (
    API_STEP,
    BOOTSTRAP_STEP,
    LEAST_PRIVILEGE_STEP,
    Rehearsal,
    StepFailed,
    rehearse,
)
from tools.harness import Options, Resource, StackRun
from tools.manifests import (
    API,
    BOOTSTRAP,
    CONFIG_MAP,
    SECRET,
    SECRET_FILES,
    TRAINER,
    WORKER,
    cache_token,
    container_env,
    find_container,
    sagemaker_container,
    source_data,
)
from tools.rehearsal_env import Endpoints, app_process, local_store, map_environment, relocate
from tools.standins import login_of, migration_needs

DB = "postgresql://ssp_api:p%40ss-w0rd@proxy.rds.amazonaws.com:5432/student_success?sslmode=require"
READER = "postgresql://ssp_api:p%40ss-w0rd@reader.internal:5432/student_success?sslmode=require"
REDIS = "rediss://:t0ken-abc@master.cache.amazonaws.com:6379/0"
BOOT_DB = "workloads-bootstrap-db"
DEPLOYMENT, CRON_JOB = API[0], TRAINER[0]
ENDPOINTS = Endpoints(("127.0.0.1", 40001), 40002, Path("/tmp/rehearsal"), 40003)


def resource(
    type_: str, name: str, inputs: dict[str, Any], depends_on: tuple[str, ...] = ()
) -> Resource:
    return Resource(
        type=type_,
        name=name,
        urn=f"urn:pulumi:test::student-success::{type_}::{name}",
        id=f"{name}-id",
        parent="",
        custom=True,
        inputs=inputs,
        secret_paths=frozenset(),
        options=Options(depends_on=depends_on),
    )


def container(
    args: list[str], secret: str, env: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": args[0],
        "args": args,
        "envFrom": [
            {"configMapRef": {"name": "workloads-config-0a1b2c3d"}},
            {"secretRef": {"name": "workloads-secret-4e5f6a7b"}},
            {"secretRef": {"name": f"{secret}-8c9d0e1f"}},
        ],
    }
    if env is not None:
        spec["env"] = env
    return spec


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def pod(spec: dict[str, Any]) -> dict[str, Any]:
    return {"template": {"spec": {"containers": [spec]}}}


MASTER = "postgresql://ssp_admin:m4ster@primary.rds.amazonaws.com:5432/student_success"
CONFIG = {
    "ENVIRONMENT": "production",
    "HOST": "0.0.0.0",
    "PORT": "8080",
    "DB_POOL_MAX": "6",
    "LOG_LEVEL": "INFO",
    "MODEL_STORE_URL": "s3://models-bucket-1/models",
    "ARCHIVE_STORE_URL": "s3://archive-bucket-2/audit",
}


def fake_run() -> StackRun:
    """A small StackRun-like registration: a ConfigMap, the app Secret, two database Secrets
    (one in base64 ``data``), the bootstrap Job, the API and the trainer."""
    pool = [{"name": "DB_POOL_MAX", "value": "1"}]
    job = resource(
        JOB,
        "workloads-bootstrap",
        {"spec": {"activeDeadlineSeconds": 900, **pod(container(["migrate"], BOOT_DB, pool))}},
    )
    api = container(["serve"], "workloads-api-db")
    api["readinessProbe"] = {"httpGet": {"path": "/ready", "port": "http"}}
    trainer = {"activeDeadlineSeconds": 1800, **pod(container(["train"], "workloads-api-db"))}
    # The nightly pipeline's steps before training, in order, each with its own environment.
    trainer["template"]["spec"]["initContainers"] = [
        container(["import"], "workloads-api-db", [{"name": "STEP", "value": "1"}]),
        container(["refresh-features"], "workloads-api-db", [{"name": "STEP", "value": "2"}]),
    ]
    app_secret = {"API_KEY_PEPPER": "p" * 40, "REDIS_URL": REDIS}
    resources = [
        resource(CONFIG_MAP, "workloads-config", {"data": CONFIG}),
        resource(SECRET, "workloads-secret", {"stringData": app_secret}),
        resource(
            SECRET,
            "workloads-api-db",
            {"stringData": {"DATABASE_URL": DB, "DATABASE_READ_URL": READER}},
        ),
        resource(
            SECRET, BOOT_DB, {"data": {"DATABASE_URL": b64(MASTER), "LOG_LEVEL": b64("DEBUG")}}
        ),
        job,
        resource(DEPLOYMENT, "workloads-api", {"spec": pod(api)}, depends_on=(job.urn,)),
        resource(CRON_JOB, "workloads-trainer", {"spec": {"jobTemplate": {"spec": trainer}}}),
    ]
    return StackRun("test", {}, resources, {}, frozenset())


def test_the_environment_is_each_env_from_source_in_order_then_env() -> None:
    run = fake_run()
    bootstrap = find_container(run, BOOTSTRAP)
    assert bootstrap.args == ["migrate"]
    assert bootstrap.deadline_seconds == 900
    # The config map's DB_POOL_MAX, then the container's own; its Secret's base64 data
    # (LOG_LEVEL=DEBUG) wins over the ConfigMap listed before it.
    assert bootstrap.env["DB_POOL_MAX"] == "1"
    assert bootstrap.env["LOG_LEVEL"] == "DEBUG"
    assert bootstrap.env["DATABASE_URL"] == MASTER
    assert bootstrap.env["REDIS_URL"] == REDIS
    api = find_container(run, API, after=bootstrap.resource.urn)
    assert api.env["DB_POOL_MAX"] == "6"
    assert api.readiness_path == "/ready"
    assert set(api.env) == {
        "ENVIRONMENT", "HOST", "PORT", "DB_POOL_MAX", "LOG_LEVEL", "MODEL_STORE_URL",
        "ARCHIVE_STORE_URL", "API_KEY_PEPPER", "REDIS_URL", "DATABASE_URL", "DATABASE_READ_URL",
    }  # fmt: skip


def test_an_env_from_source_is_matched_by_its_autoname() -> None:
    run = fake_run()
    assert source_data(run.resources[1]) == {"API_KEY_PEPPER": "p" * 40, "REDIS_URL": REDIS}
    missing = container(["serve"], "workloads-gone-db")
    with pytest.raises(LookupError, match="no Secret workloads-gone-db-8c9d0e1f"):
        container_env(run, missing)
    # A literal value only: a reference to a key is not rehearsed.
    with pytest.raises(LookupError, match="only literal values"):
        container_env(run, {"env": [{"name": "X", "valueFrom": {"fieldRef": {}}}]})


def test_a_workload_must_be_registered_and_wait_for_the_bootstrap_job() -> None:
    run = fake_run()
    urn = find_container(run, BOOTSTRAP).resource.urn
    trainer = find_container(run, TRAINER)
    assert trainer.deadline_seconds == 1800
    assert [(args, env["STEP"]) for args, env in trainer.init] == [
        (["import"], "1"),
        (["refresh-features"], "2"),
    ]
    assert trainer.init[0][1]["DATABASE_URL"] == DB  # each from its own envFrom
    with pytest.raises(
        LookupError, match="workloads-trainer does not depend on workloads-bootstrap"
    ):
        find_container(run, TRAINER, after=urn)
    gone = StackRun(
        "test", {}, [r for r in run.resources if r.name != "workloads-api"], {}, frozenset()
    )
    with pytest.raises(LookupError, match="no Deployment named workloads-api"):
        find_container(gone, API)


def test_endpoints_are_mapped_and_nothing_else_changes() -> None:
    env = find_container(fake_run(), API).env
    mapped = map_environment(env, ENDPOINTS)
    login = "ssp_api:p%40ss-w0rd"
    assert (
        mapped["DATABASE_URL"]
        == f"postgresql://{login}@127.0.0.1:40001/student_success?sslmode=disable"
    )
    assert mapped["DATABASE_READ_URL"] == mapped["DATABASE_URL"]
    assert mapped["REDIS_URL"] == "redis://:t0ken-abc@127.0.0.1:40002/0"
    assert mapped["MODEL_STORE_URL"] == "/tmp/rehearsal/s3/models-bucket-1/models"
    assert mapped["ARCHIVE_STORE_URL"] == "/tmp/rehearsal/s3/archive-bucket-2/audit"
    assert (mapped["HOST"], mapped["PORT"]) == ("127.0.0.1", "40003")
    changed = {k for k in env if env[k] != mapped[k]}
    assert changed == {
        "DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL", "MODEL_STORE_URL",
        "ARCHIVE_STORE_URL", "HOST", "PORT",
    }  # fmt: skip
    assert mapped["ENVIRONMENT"] == "production"
    assert login_of(mapped["DATABASE_URL"]) == ("ssp_api", "p@ss-w0rd", "student_success")


def test_a_cache_url_needs_the_local_redis() -> None:
    assert cache_token(fake_run()) == "t0ken-abc"
    no_cache = fake_run()
    no_cache.resources[1] = dataclasses.replace(no_cache.resources[1], inputs={"stringData": {}})
    assert cache_token(no_cache) is None
    with pytest.raises(ValueError, match="REDIS_URL names a cache"):
        map_environment({"REDIS_URL": REDIS}, ENDPOINTS._replace(redis_port=None))


def test_url_and_store_mapping() -> None:
    assert relocate("postgresql://u:p@h:5432/d?sslmode=require&application_name=x", "l", 1) == (
        "postgresql://u:p@l:1/d?sslmode=disable&application_name=x"
    )
    assert relocate("rediss://h:6379/0", "l", 2, scheme="redis") == "redis://l:2/0"
    assert local_store("s3://b/p/q/", Path("/r")) == "/r/s3/b/p/q"


def test_a_process_gets_only_the_basics_of_this_shell() -> None:
    shell = {
        "PATH": "/bin",
        "HOME": "/root",
        "AWS_PROFILE": "prod",
        "DATABASE_URL": "x",
        "PORT": "1",
    }
    process = app_process(["serve"], {"PORT": "2"}, shell)
    assert process["env"] == {"PATH": "/bin", "HOME": "/root", "PORT": "2"}
    assert process["args"][1:] == ["-m", "app", "serve"]


def test_mounted_secrets_are_files_of_the_process_not_its_environment() -> None:
    run = fake_run()
    api = container(["serve"], "workloads-api-db")
    api["envFrom"] = api["envFrom"][:1]  # the ConfigMap; the Secrets as a volume instead
    api["volumeMounts"] = [{"name": "api-secrets", "mountPath": "/var/run/secrets/ssp"}]
    sources = [{"secret": {"name": n}} for n in ("workloads-secret-4e5f", "workloads-api-db-8c9d")]
    volumes = [{"name": "api-secrets", "projected": {"sources": sources}}]
    env = container_env(run, api, volumes)
    assert env["DATABASE_URL"] == DB and env["API_KEY_PEPPER"] == "p" * 40
    assert env[SECRET_FILES] == "API_KEY_PEPPER,DATABASE_READ_URL,DATABASE_URL,REDIS_URL"
    # Mapped like the rest, then written as files that SECRETS_DIR names.
    process = app_process(["serve"], map_environment(env, ENDPOINTS), {})
    files = Path(process["env"].pop("SECRETS_DIR"))
    assert set(process["env"]) == set(CONFIG)
    assert sorted(p.name for p in files.iterdir()) == env[SECRET_FILES].split(",")
    assert (files / "DATABASE_URL").read_text().startswith("postgresql://ssp_api:p%40ss-w0rd@127")
    assert (files / "DATABASE_URL").stat().st_mode & 0o777 == 0o400
    with pytest.raises(LookupError, match="volume api-secrets: not in the pod"):
        container_env(run, api, [])


def test_migration_needs(tmp_path: Path) -> None:
    (tmp_path / "0001_x.sql").write_text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements;")
    (tmp_path / "0002_y.sql").write_text("GRANT pg_monitor TO rds_superuser;")
    assert migration_needs(tmp_path) == (["pg_stat_statements"], True)
    extensions, rds = migration_needs()
    assert isinstance(extensions, list) and isinstance(rds, bool)


def test_the_sagemaker_container_is_the_models_environment_serving(
    stack_run: StackRunner,
) -> None:
    assert sagemaker_container(stack_run("tier2")) is None  # no endpoint: no step 6
    container = sagemaker_container(stack_run("tier3"))
    assert container is not None
    assert container.args == ["serve"] and container.readiness_path == "/ping"
    assert container.env["SERVE_MODE"] == "inference" and "DATABASE_URL" not in container.env


def test_a_failure_names_its_step_and_shows_the_output() -> None:
    text = str(StepFailed("3 trainer CronJob (train)", "exited with 1", "line 1\nboom"))
    assert text.startswith("rehearsal failed at step '3 trainer CronJob (train)': exited with 1")
    assert text.endswith("--- last lines of its output ---\nline 1\nboom")


# The rehearsals themselves: embedded PostgreSQL and Redis, real `python -m app` processes.


def test_without_the_bootstrap_job_the_rehearsal_fails_at_step_1(
    stack_run: StackRunner,
) -> None:
    run = copy.deepcopy(stack_run("tier3"))
    run.resources = [r for r in run.resources if r.type != BOOTSTRAP[0]]
    lines: list[str] = []
    with pytest.raises(StepFailed) as failed:
        rehearse(run, lines.append)
    assert failed.value.step == BOOTSTRAP_STEP
    assert "no Job named workloads-bootstrap is registered" in failed.value.message
    assert lines[-1].startswith(f"  {BOOTSTRAP_STEP}") and "FAILED" in lines[-1]


def test_an_api_with_the_master_login_fails_the_least_privilege_step(
    stack_run: StackRunner,
) -> None:
    """The app serves as happily with the master login (it only SET ROLEs to ssp_app), so
    the rehearsal itself checks the API's login after step 2."""
    run = copy.deepcopy(stack_run("tier3"))
    bootstrap_db = next(
        r for r in run.resources if r.type == SECRET and r.name == "workloads-bootstrap-db"
    )
    run.resources = [
        dataclasses.replace(r, inputs={**r.inputs, "stringData": bootstrap_db.inputs["stringData"]})
        if r.type == SECRET and r.name == "workloads-api-db"
        else r
        for r in run.resources
    ]
    lines: list[str] = []
    with pytest.raises(StepFailed) as failed, Rehearsal(run, lines.append) as rehearsal:
        rehearsal.play()
    assert failed.value.step == LEAST_PRIVILEGE_STEP
    assert failed.value.message == "it logs in as the master user ssp_admin"
    assert [line.split()[0] for line in lines[:3]] == ["services", "1", "2"]
    assert "as ssp_admin" in lines[2] and API_STEP in lines[2]
    # Everything it started is gone: the API's process and the temp dir (PostgreSQL's data).
    assert [server.process.poll() is not None for server in rehearsal.servers] == [True]
    assert not rehearsal.workdir.exists()


@pytest.mark.parametrize("stack", ["dev", "tier3"])
def test_the_event_worker_renders_for_the_rehearsal(stack_run: StackRunner, stack: str) -> None:
    """The worker Deployment is found like the API, waits for the bootstrap Job and maps onto
    the stand-ins as its own login; offline it scores in process (no SageMaker)."""
    run = stack_run(stack)
    bootstrap = find_container(run, BOOTSTRAP).resource.urn
    worker = find_container(run, WORKER, after=bootstrap)
    assert worker.args == ["worker"]
    mapped = map_environment(worker.env, ENDPOINTS)
    assert login_of(mapped["DATABASE_URL"])[0] == "ssp_worker"
    assert "127.0.0.1:40001" in mapped["DATABASE_URL"]
    assert "SAGEMAKER_ENDPOINT_NAME" not in mapped
    assert mapped["QUEUE_BACKEND"] == ("postgres" if stack == "dev" else "sqs")
