"""`python -m app worker`: takes students off the queue, refreshes their features, rescores
them, updates their risk_scores in the served generation and raises an alert when a student's
risk crosses ALERT_THRESHOLD.

Delivery is at least once, so processing is idempotent: features and scores are recomputed
from the facts (the same message twice gives the same rows), and an alert is raised only on a
crossing (the stored risk below the threshold, the new one at or above it) with no open alert
for the student, under the score row's lock. A batch is one transaction and is acknowledged
after its commit; a batch that fails is retried student by student, so one poison message
delays only itself: it is released with exponential backoff until the queue dead-letters it."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from app.core.cache import Cache, scores_stamp
from app.core.indicators import CutPoints
from app.core.logs import error_text
from app.core.settings import Settings
from app.jobs.events import metrics
from app.jobs.events.drain import DrainingQueue
from app.jobs.events.queue import Message, PostgresQueue, Queue, SqsQueue
from app.jobs.events.rescoring import Scorer
from app.model import history
from app.model.features import INDICATORS_SELECT, STANDARD_FEATURES, raw_rows

log = logging.getLogger("app.events.worker")

DEPTH_EVERY_SECONDS = 5.0  # how often the queue's depth is sampled for the metrics


@dataclass
class BatchResult:
    processed: int = 0  # messages acknowledged
    failed: int = 0  # messages released for a retry (or dead-lettered)
    alerts: list[int] = field(default_factory=list)  # students alerted
    lags: list[float] = field(default_factory=list)  # seconds from POST to updated risk


class Worker:
    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        scorer: Scorer,
        connect: Callable[[], psycopg.Connection[Any]],
    ) -> None:
        self.settings = settings
        self.cuts = CutPoints.from_settings(settings)
        self.queue = queue
        self.scorer = scorer
        self._connect = connect
        self.conn = connect()
        # Where the API caches at-risk pages: the schools rescored are restamped there.
        self.cache = Cache(settings.redis_url, settings.cache_prefix)
        self.heartbeat = metrics.Heartbeat(settings.worker_stall_seconds)
        self._depth_at = 0.0

    def close(self) -> None:
        self.conn.close()

    # -- the loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set; the batch in hand is finished (or released) first."""
        failures = 0
        while not stop.is_set():
            self.heartbeat.beat()
            self._sample_depth()
            try:
                messages = self.queue.receive(self.settings.worker_batch_size)
                if messages:
                    self.process(messages)
                failures = 0
            except Exception as exc:
                # The queue or the database is unreachable: what was received comes back when
                # its lease ends. Wait longer each time (the heartbeat keeps /healthz green:
                # a restart would not bring the database back).
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.error(
                    "worker loop failed; retrying",
                    extra={"error": error_text(exc), "retry_in_seconds": delay},
                )
                stop.wait(delay)
                continue
            if not messages and self.settings.queue_backend == "postgres":
                stop.wait(self.settings.worker_poll_seconds)  # SQS long-polls instead

    def _sample_depth(self) -> None:
        now = time.monotonic()
        if now - self._depth_at < DEPTH_EVERY_SECONDS:
            return
        self._depth_at = now
        try:
            depth = self.queue.depth()
        except Exception as exc:  # metrics must not stop the work
            log.warning("queue depth unavailable", extra={"error": error_text(exc)})
            return
        metrics.DEPTH.labels("visible").set(depth.visible)
        metrics.DEPTH.labels("in_flight").set(depth.in_flight)
        metrics.DEPTH.labels("dead").set(depth.dead)
        if depth.oldest_age_seconds is not None:
            metrics.OLDEST.set(depth.oldest_age_seconds)

    # -- one batch ----------------------------------------------------------------------------
    def process(self, messages: list[Message]) -> BatchResult:
        result = BatchResult()
        readable = [m for m in messages if m.problem is None]
        for m in messages:
            if m.problem is not None:
                self._fail([m], m.problem, result)
        by_student: dict[int, list[Message]] = {}
        for m in readable:
            by_student.setdefault(m.student_id, []).append(m)
        if not by_student:
            return result
        try:
            alerted = self._rescore(sorted(by_student))
        except Exception as exc:
            log.warning(
                "batch failed; retrying its students one by one",
                extra={"students": len(by_student), "error": error_text(exc)},
            )
            for student, group in by_student.items():
                try:
                    self._done(group, self._rescore([student]), result)
                except Exception as one:
                    self._fail(group, repr(one), result)
            return result
        self._done(readable, alerted, result)
        return result

    def _done(self, messages: list[Message], alerted: list[int], result: BatchResult) -> None:
        self.queue.ack(messages)
        now = time.time()
        for m in messages:
            lag = max(0.0, now - m.enqueued_at)
            metrics.LAG.observe(lag)
            result.lags.append(lag)
        metrics.PROCESSED.inc(len(messages))
        metrics.ALERTS.inc(len(alerted))
        result.processed += len(messages)
        result.alerts += alerted

    def _fail(self, messages: list[Message], error: str, result: BatchResult) -> None:
        s = self.settings
        for m in messages:
            backoff = s.worker_backoff_base_seconds * 2 ** max(0, m.receives - 1)
            delay = min(s.worker_backoff_max_seconds, backoff)
            self.queue.release(m, delay, error)
            if m.receives >= s.worker_max_receives:
                metrics.DEAD_LETTERED.inc()
                log.error(
                    "message dead-lettered",
                    extra={"student_id": m.student_id, "receives": m.receives, "why": error[:200]},
                )
        metrics.FAILED.inc(len(messages))
        result.failed += len(messages)

    def _rescore(self, students: list[int]) -> list[int]:
        """One transaction: live features, scores, alerts. Returns the students alerted."""
        if self.conn.closed or self.conn.broken:  # the database dropped it: a new one
            self.conn = self._connect()
        with self.conn.transaction():
            alerted, schools = self._rescore_in_tx(students)
        # After the commit: the API's cached at-risk pages of these schools are stale now.
        if not self.cache.restamp(scores_stamp(s) for s in schools) and self.cache.redis:
            log.warning("rescored schools not restamped", extra={"schools": sorted(schools)})
        return alerted

    def _rescore_in_tx(self, students: list[int]) -> tuple[list[int], set[int]]:
        """The students alerted, and the schools whose scores changed."""
        # The live features, and the indicators' figures of the same school year as of the
        # last refresh of the views (refreshed nightly with the features).
        cols = ", ".join(f"l.{c}" for c in STANDARD_FEATURES)
        rows = self.conn.execute(
            f"SELECT l.student_id, l.school_id, {cols}, l.district_features, {INDICATORS_SELECT}"
            " FROM refresh_live_features(%s) l LEFT JOIN student_indicators i"
            " ON i.student_id = l.student_id AND i.school_year = l.school_year"
            " WHERE l.is_active ORDER BY l.student_id",
            (students,),
        ).fetchall()
        generation = self.scorer.generation()
        if not rows or generation == 0:
            return [], set()  # not in the feature view yet, inactive, or no model served yet
        ids = [int(r[0]) for r in rows]
        schools = [int(r[1]) for r in rows]
        x = raw_rows(rows, 2, self.cuts)  # NULL: NaN (missing)
        predictions = self.scorer.score(schools, x, [r[2 + len(STANDARD_FEATURES)] for r in rows])
        # Lock the scores being replaced (in order: no deadlock between workers), and read them.
        before = dict(
            self.conn.execute(
                "SELECT student_id, risk FROM risk_scores WHERE generation = %s"
                " AND student_id = ANY(%s) ORDER BY student_id FOR UPDATE",
                (generation, ids),
            ).fetchall()
        )
        risks = [float(np.float32(p.risk)) for p in predictions]  # as the real column keeps it
        # scored_at: when the score was made (clock_timestamp, not the transaction's start).
        # Later than the rest of its generation's rows, which only keeps the generation before
        # it longer (retired_generations dates a replacement by a row of the new generation).
        self.conn.execute(
            # A student first scored here gets the 30-day baseline the nightly scoring writes
            # (migration 0022); a row rescored keeps the nightly one.
            "INSERT INTO risk_scores (generation, student_id, school_id, risk, model_version,"
            " scored_at, risk_30_days_ago) SELECT %s, n.*, clock_timestamp(),"
            " coalesce(risk_30_days_before(n.student_id, (now() AT TIME ZONE 'UTC')::date),"
            " n.risk) FROM unnest(%s::bigint[], %s::integer[], %s::real[], %s::text[])"
            " AS n(student_id, school_id, risk, model_version)"
            " ON CONFLICT (generation, student_id) DO UPDATE SET risk = excluded.risk,"
            " model_version = excluded.model_version, scored_at = excluded.scored_at",
            (generation, ids, schools, risks, [p.version for p in predictions]),
        )
        # The day's snapshot where the score changed (no reasons: the scorer may be an
        # endpoint that gives none; the nightly scoring records them).
        versions = [p.version for p in predictions]
        history.record(self.conn, generation, ids, schools, risks, versions, [None] * len(ids))
        t = self.settings.alert_threshold
        crossed = [
            i
            for i, risk in enumerate(risks)
            if risk >= t and (before.get(ids[i]) is None or float(before[ids[i]]) < t)
        ]
        if not crossed:
            return [], set(schools)
        alerted = self.conn.execute(
            "INSERT INTO alerts (school_id, student_id, status, risk, model_version)"
            " SELECT s, st, 'open', r, v FROM unnest(%s::integer[], %s::bigint[], %s::real[],"
            " %s::text[]) AS n(s, st, r, v) WHERE NOT EXISTS"
            " (SELECT 1 FROM alerts a WHERE a.student_id = n.st AND a.status = 'open')"
            " RETURNING student_id",
            (
                [schools[i] for i in crossed],
                [ids[i] for i in crossed],
                [risks[i] for i in crossed],
                [predictions[i].version for i in crossed],
            ),
        ).fetchall()
        return [int(r[0]) for r in alerted], set(schools)


def queue_for(settings: Settings) -> Queue:
    """The worker's queue: the configured backend; on SQS with QUEUE_DRAIN_POSTGRES, SQS after
    what is left in the table queue. The table queue logs in as the worker (ssp_worker)."""
    from app.core.db import connect_as
    from app.core.logins import WORKER_LOGIN

    def table() -> PostgresQueue:
        return PostgresQueue(lambda: connect_as(settings, WORKER_LOGIN, autocommit=True), settings)

    if settings.queue_backend == "postgres":
        return table()
    if settings.queue_drain_postgres:
        return DrainingQueue(SqsQueue(settings), table())
    return SqsQueue(settings)


def run_worker(settings: Settings) -> int:
    """The `worker` command: metrics on WORKER_METRICS_PORT, the loop until SIGTERM."""
    from app.core.db import connect_as
    from app.core.logins import WORKER_LOGIN
    from app.jobs.events.rescoring import scorer_for

    stop = threading.Event()

    def on_signal(signum: int, _: Any) -> None:
        log.info("stopping after the batch in hand", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    queue = queue_for(settings)
    worker = Worker(
        settings,
        queue,
        scorer_for(settings),
        lambda: connect_as(settings, WORKER_LOGIN, autocommit=True),
    )
    server = metrics.serve_metrics(settings.worker_metrics_port, worker.heartbeat.healthy)
    log.info(
        "worker started",
        extra={
            "queue": settings.queue_backend,
            "drain_postgres": settings.queue_drain_postgres,
            "port": settings.worker_metrics_port,
        },
    )
    try:
        worker.run(stop)
    finally:
        server.shutdown()
        worker.close()
        queue.close()
    log.info("worker stopped")
    return 0
