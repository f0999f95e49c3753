"""A stack's move to a higher tier, rehearsed offline (``python -m tools.rehearse --grow tier1
tier2``; ``--grow-all``: every stack file's move to the next tier). The stack file is evaluated
at its tier and at the higher one (``tools.moves.moved_config``: ``tier:`` changed, plus the keys
the higher tier requires), both under mocks; then, on one set of stand-ins:

1-6. the lower tier's first day, as ``python -m tools.rehearse <stack>`` plays it;
7. events: the lower tier's worker Deployment takes a first batch, posted with the school's key,
   and is stopped (its last pod gone); a second batch stays pending in the lower tier's queue;
8. the state before the move: rows and digests of students, schools, risk scores, audit rows,
   events, API keys and the table queue, read as the embedded superuser (which row-level
   security does not filter); the pending messages; sample students' risks from the lower API;
9. what ``up`` applies before the workloads: the higher tier's queues (on moto's SQS) and its
   ConfigMap and Secrets (the keys that change are listed, a Secret's values never);
10. the bootstrap Job of the new release, with the higher tier's environment;
11. nothing lost: the same rows and digests;
12. the higher tier's API Deployment (the lower one stopped) until ready, least-privilege;
13. the key created before the move still answers, with the same risks;
14. the higher tier's worker Deployment, two pods (every tier's autoscaler may run two): the
    pending messages processed exactly once (the pods' processed counters add up to the
    pending count, each pending student rescored after the switch), the queues empty;
15. new events posted with the same key: queued where the higher tier queues (none into the
    table once on SQS), processed once; every row from before the move still there.

Beyond the first day's mappings, each worker pod gets its own free WORKER_METRICS_PORT. A
failure names its step and exits 1, as the first day's do.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from tools.first_day import Rehearsal, StepFailed
from tools.harness import StackRun
from tools.manifests import API, BOOTSTRAP, WORKER, Container, find_container
from tools.move_checks import (
    STILL_THERE,
    Kept,
    changed_keys,
    counter,
    digests,
    lost,
    marks,
    pending,
)
from tools.rehearsal_env import (
    Server,
    app_process,
    check_least_privilege,
    map_environment,
    stop_process,
)
from tools.standins import LOOPBACK, create_queues, free_port, login_of

EVENTS_STEP = "7 events (worker, then pending)"
BEFORE_STEP = "8 state before the move"
APPLY_STEP = "9 queues, ConfigMap, Secrets"
MIGRATE_STEP = "10 bootstrap Job of the new release"
KEPT_STEP = "11 nothing lost (rows, digests)"
NEW_API_STEP = "12 api Deployment of the new tier"
SAME_KEY_STEP = "13 same API key, same risks"
DRAIN_STEP = "14 pending events processed once"
NEW_EVENTS_STEP = "15 new events after the move"
SQS_QUEUE = "aws:sqs/queue:Queue"
# Students of the key's school, in id order: risks compared, and three batches of events.
SAMPLE, FIRST_BATCH, PENDING_BATCH, LAST_BATCH = 8, 10, 30, 10
WORKER_PODS = 2
PROCESS_TIMEOUT = 30.0  # a batch of a few dozen messages takes a worker a second or two
PROCESSED, DRAINED = "ssp_worker_messages_processed", "ssp_worker_postgres_drained"


class GrowthRehearsal(Rehearsal):
    """The lower tier's first day (``run``), then the move to ``higher``."""

    def __init__(self, run: StackRun, higher: StackRun, out: Callable[[str], None]) -> None:
        super().__init__(run, out)
        self.higher = higher
        self.workers: list[Server] = []  # the worker pods running now

    def start_services(self, detail: list[str], runs: tuple[StackRun, ...] = ()) -> Any:
        return super().start_services(detail, (self.run, self.higher))

    def play(self) -> dict[str, float]:
        super().play()
        app_url = self.superuser_url.replace("/postgres?", f"/{login_of(self.master_url)[2]}?")
        old_worker = find_container(self.run, WORKER)
        old_env = map_environment(old_worker.env, self.ends)
        students = self.students(app_url)
        sample, rest = students[:SAMPLE], students[SAMPLE:]
        first, later = rest[:FIRST_BATCH], rest[FIRST_BATCH : FIRST_BATCH + PENDING_BATCH]
        last = rest[FIRST_BATCH + PENDING_BATCH :][:LAST_BATCH]
        with self.step(EVENTS_STEP) as detail:
            detail.append(self.leave_pending(old_worker, old_env, app_url, first, later))
        with self.step(BEFORE_STEP) as detail:
            risks = self.risks(BEFORE_STEP, self.api, sample)
            before, mark = digests(app_url), marks(app_url)
            kept = digests(app_url, STILL_THERE, **mark)
            left = pending(app_url, old_env["QUEUE_BACKEND"], old_env.get("EVENTS_QUEUE_URL"))
            detail.append(
                f"{left} pending on {old_env['QUEUE_BACKEND']}; "
                + ", ".join(f"{name} {kept.rows}" for name, kept in before.items())
            )
        with self.step(APPLY_STEP) as detail:
            if self.ends.sqs:
                create_queues(self.ends.sqs, [q.inputs for q in self.higher.of_type(SQS_QUEUE)])
            changes = changed_keys(self.run, self.higher)
            detail.append(f"{len(changes)} changed (below)" if changes else "nothing changes")
        for change in changes:  # in full: what a reviewer of the move reads
            self.out(f"      {change}")
        with self.step(MIGRATE_STEP) as detail:
            bootstrap = find_container(self.higher, BOOTSTRAP)
            env = map_environment(bootstrap.env, self.ends)
            detail.append(self.command(MIGRATE_STEP, bootstrap, env))
        with self.step(KEPT_STEP) as detail:
            if problems := lost(before, digests(app_url)):
                raise RuntimeError("; ".join(problems))
            detail.append(f"{len(before)} tables as before")
        with self.step(NEW_API_STEP) as detail:
            detail.append(self.new_api(bootstrap.resource.urn, env["DATABASE_URL"]))
        with self.step(SAME_KEY_STEP) as detail:
            detail.append(self.same_answers(sample, risks))
        with self.step(DRAIN_STEP) as detail:
            detail.append(self.drain(bootstrap.resource.urn, app_url, old_env, later, left))
        with self.step(NEW_EVENTS_STEP) as detail:
            detail.append(self.after_move(app_url, last, left, (kept, mark)))
        return self.seconds

    # -- before the move -----------------------------------------------------------------------
    def students(self, url: str) -> list[int]:
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT id FROM students WHERE school_id = %s AND is_active ORDER BY id",
                (self.school_id,),
            ).fetchall()
        needed = SAMPLE + FIRST_BATCH + PENDING_BATCH + LAST_BATCH
        if len(rows) < needed:
            raise RuntimeError(f"school {self.school_id} has {len(rows)} students; {needed} needed")
        return [int(r[0]) for r in rows]

    def post(self, step: str, label: str, students: list[int]) -> None:
        """One attendance event per student, with the school's key: all accepted."""
        events = [
            {
                "type": "attendance_marked",
                "idempotency_key": f"{label}-{s}",
                "student_id": s,
                "date": "2026-11-02",
                "status": "absent",
            }
            for s in students
        ]
        answer = self.call(
            step, self.api, "/v1/events", self.api_key, body={"events": events}, expect=202
        )
        if answer["rejected"]:
            raise RuntimeError(f"POST /v1/events rejected {answer['rejected'][:3]}")

    def leave_pending(
        self, worker: Container, env: dict[str, str], url: str, first: list[int], later: list[int]
    ) -> str:
        """The lower tier's worker processes a first batch, then is stopped; a second batch is
        posted, which nothing processes before the move."""
        self.start_workers(EVENTS_STEP, worker, env, 1)
        self.post(EVENTS_STEP, "before", first)
        self.wait_processed(EVENTS_STEP, url, env, len(first), "the tier's own worker")
        for server in self.workers:
            stop_process(server.process)
        self.workers = []
        self.post(EVENTS_STEP, "pending", later)
        return f"{len(first)} processed by 1 worker pod, stopped; {len(later)} posted after it"

    def risks(self, step: str, api: Server, students: list[int]) -> list[tuple[Any, ...]]:
        """(student, risk, model scope, version) as the API answers them with the key."""
        found = []
        for student in students:
            path = f"/v1/students/{student}/risk"
            answer = self.call(step, api, path, self.api_key, {503}, 60)
            found.append(
                (student, answer["risk"], answer.get("model_scope"), answer.get("model_version"))
            )
        return found

    # -- after the move ------------------------------------------------------------------------
    def new_api(self, bootstrap_urn: str, master_url: str) -> str:
        """The lower API stops (its pods replaced); the higher one serves until ready."""
        stop_process(self.api.process)
        api = find_container(self.higher, API, bootstrap_urn)
        env = map_environment(api.env, self.ends._replace(api_port=free_port()))
        self.api, answer = self.serve(NEW_API_STEP, api, env)
        if "REDIS_URL" in env and (cache := answer["detail"].get("cache")) != "redis":
            raise StepFailed(
                NEW_API_STEP,
                f"ready, but its cache is {cache!r}: Redis refused "
                "REDIS_URL (the cache's auth token changed?)",
                self.api.tail(),
            )
        return f"ready; {check_least_privilege(master_url, env['DATABASE_URL'])}"

    def same_answers(self, sample: list[int], before: list[tuple[Any, ...]]) -> str:
        path = f"/v1/students/{sample[0]}/risk"
        try:
            self.call(SAME_KEY_STEP, self.api, path, self.api_key, {503}, 60)
        except StepFailed as failed:
            if "answered 401" not in failed.message:
                raise
            raise StepFailed(
                SAME_KEY_STEP,
                f"the key created before the move is refused: GET "
                f"{path} answered 401 (API_KEY_PEPPER changed with the move?)",
                self.api.tail(),
            ) from None
        after = self.risks(SAME_KEY_STEP, self.api, sample)
        if changed := [(b, a) for b, a in zip(before, after, strict=True) if a != b]:
            raise RuntimeError(f"risks changed with the move (before, after): {changed[:3]}")
        return f"the key answers; {len(sample)} students' risks as before"

    def drain(
        self, bootstrap_urn: str, url: str, old_env: dict[str, str], later: list[int], left: int
    ) -> str:
        """Two worker pods of the higher tier: what was pending is processed, exactly once."""
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT now()").fetchone()
        switched = row[0] if row else None
        worker = find_container(self.higher, WORKER, bootstrap_urn)
        env = map_environment(worker.env, self.ends)
        self.start_workers(DRAIN_STEP, worker, env, WORKER_PODS)
        backend, queue_url = old_env["QUEUE_BACKEND"], old_env.get("EVENTS_QUEUE_URL")
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while (still := pending(url, backend, queue_url)) and time.monotonic() < deadline:
            time.sleep(0.5)
        if still:
            where = "the PostgreSQL table queue" if backend == "postgres" else "the SQS queue"
            hint = " (QUEUE_DRAIN_POSTGRES unset?)" if backend == "postgres" else ""
            raise StepFailed(
                DRAIN_STEP,
                f"{still} of the {left} events accepted before the move "
                f"are still in {where} after {PROCESS_TIMEOUT:.0f} s: nothing on the "
                f"new tier processes them{hint}",
                self.workers[0].tail(),
            )
        self.wait_processed(DRAIN_STEP, url, env, left, "the new tier's workers")
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(DISTINCT student_id) FROM risk_scores WHERE student_id = ANY(%s)"
                " AND scored_at > %s",
                (later, switched),
            ).fetchone()
        rescored = int(row[0]) if row else 0
        if rescored != len(later):
            raise RuntimeError(f"{rescored} of the {len(later)} pending students were rescored")
        each = " + ".join(f"{counter(s.port, PROCESSED):.0f}" for s in self.workers)
        if env["QUEUE_BACKEND"] == backend:
            return f"{left} processed once by {WORKER_PODS} pods ({each})"
        drained = sum(counter(s.port, DRAINED) for s in self.workers)
        return f"{left} processed once by {WORKER_PODS} pods ({each}), {drained:.0f} drained"

    def after_move(
        self, url: str, last: list[int], left: int, kept: tuple[dict[str, Kept], dict[str, Any]]
    ) -> str:
        """New events go where the new tier queues, are processed once; nothing is lost."""
        drained = sum(counter(s.port, DRAINED) for s in self.workers)
        self.post(NEW_EVENTS_STEP, "after", last)
        env = map_environment(find_container(self.higher, WORKER).env, self.ends)
        self.wait_processed(NEW_EVENTS_STEP, url, env, left + len(last), "the new tier's workers")
        if env["QUEUE_BACKEND"] == "sqs" and drained != sum(
            counter(s.port, DRAINED) for s in self.workers
        ):
            raise RuntimeError("the new API still queues into the PostgreSQL table")
        if problems := lost(kept[0], digests(url, STILL_THERE, **kept[1])):
            raise RuntimeError("rows from before the move: " + "; ".join(problems))
        backend = env["QUEUE_BACKEND"]
        return f"{len(last)} queued on {backend}, processed once; the rows from before kept"

    # -- workers -------------------------------------------------------------------------------
    def start_workers(self, step: str, worker: Container, env: dict[str, str], pods: int) -> None:
        """``pods`` worker processes, each on its own metrics port, until /healthz answers."""
        for pod in range(pods):
            port = free_port()
            pod_env = env | {"WORKER_METRICS_PORT": str(port), "HOSTNAME": f"worker-{pod}"}
            log = self.workdir / f"worker-{len(self.servers)}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    **app_process(worker.args, pod_env), stdout=out, stderr=out
                )
            self.callback(stop_process, process)
            server = Server(process, log, port)
            self.servers.append(server)
            self.workers.append(server)
            self.wait_healthy(step, server)

    def wait_healthy(self, step: str, server: Server) -> None:
        deadline = time.monotonic() + 60
        while True:
            if server.process.poll() is not None:
                raise StepFailed(
                    step, f"a worker exited with {server.process.returncode}", server.tail()
                )
            try:
                url = f"http://{LOOPBACK}:{server.port}/healthz"
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise StepFailed(step, "a worker's /healthz did not answer 200", server.tail())
            time.sleep(0.3)

    def wait_processed(
        self, step: str, url: str, env: dict[str, str], expected: int, who: str
    ) -> None:
        """The running workers' processed counters reach ``expected`` and the queue is empty;
        more than ``expected`` is a message processed twice."""
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while True:
            done = sum(counter(s.port, PROCESSED) for s in self.workers)
            queued = pending(url, env["QUEUE_BACKEND"], env.get("EVENTS_QUEUE_URL"))
            if done > expected:
                raise RuntimeError(
                    f"{who} processed {done:.0f} messages for {expected}: some twice"
                )
            if done == expected and not queued:
                return
            if time.monotonic() > deadline:
                raise StepFailed(
                    step,
                    f"{who} processed {done:.0f} of {expected} messages in "
                    f"{PROCESS_TIMEOUT:.0f} s ({queued} still queued)",
                    self.workers[0].tail(),
                )
            time.sleep(0.3)


def rehearse_move(
    lower: StackRun, higher: StackRun, out: Callable[[str], None] | None = None
) -> dict[str, float]:
    """Plays the lower evaluation's first day, then the move to ``higher`` (the same stack
    file at the higher tier, or a test's edited copy of it): the seconds of each step. Raises
    StepFailed naming the step that failed."""
    printer = out or (lambda line: print(line, flush=True))
    with GrowthRehearsal(lower, higher, printer) as rehearsal:
        return rehearsal.play()
