"""The switch from the PostgreSQL table queue to SQS, with no event lost.

A stack that moves from a table-queue tier (dev, tier1) to an SQS tier may still hold messages
in `event_queue`: events accepted before the move whose students the old workers had not
rescored yet. With QUEUE_BACKEND=sqs and QUEUE_DRAIN_POSTGRES=true the worker's queue is a
DrainingQueue: the table's messages first, then SQS's. The table's messages keep the table
queue's own leases (FOR UPDATE SKIP LOCKED, then a lease of WORKER_VISIBILITY_SECONDS), so any
number of workers drain it together and each message is processed and acknowledged once, as
before the move. POST /v1/events sends to SQS only: the table only shrinks.

Drained means no message waiting or leased in the table (dead letters stay, for an operator, as
on the table queue). The worker then logs it, reports 0 left, and looks again every
DRAIN_RECHECK_SECONDS while the setting is on: during the rollout, API pods of the old release
that are still terminating may enqueue a few more into the table. The table holds at most one
waiting message per student, so the drain takes a few batches, before any SQS message."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from app.jobs.events import metrics
from app.jobs.events.queue import Depth, Message, Queue

log = logging.getLogger("app.events.worker")

# A drained table is looked at again this often (one indexed count) while the setting is on.
DRAIN_RECHECK_SECONDS = 60.0


class DrainingQueue:
    """``queue`` (SQS), after every message left in ``backlog`` (the PostgreSQL table queue)."""

    def __init__(
        self, queue: Queue, backlog: Queue, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.queue, self.backlog, self._clock = queue, backlog, clock
        self._look_at = 0.0  # when the table is looked at next
        self._drained: bool | None = None  # what the last look found (None: no look yet)
        self._count = 0  # table messages this process processed
        self._logged = -1  # the number left that was last logged

    def send(self, students: list[tuple[int, int]]) -> None:
        self.queue.send(students)  # new events never go to the table

    def receive(self, limit: int) -> list[Message]:
        if self._clock() >= self._look_at:
            got = self.backlog.receive(limit)
            self._report(self.backlog.depth())
            if got:
                return [replace(m, backlog=True) for m in got]
        return self.queue.receive(limit)

    def _report(self, depth: Depth) -> None:
        """The gauge, a log line per look that finds work and one when the table is empty;
        the next look at once while anything is left, else after DRAIN_RECHECK_SECONDS."""
        left = depth.visible + depth.in_flight  # leased ones come back if their worker died
        metrics.DRAIN_REMAINING.set(left)
        if left:
            self._drained, self._look_at = False, 0.0
            if left != self._logged:  # not once a poll while others hold the last leases
                log.info("draining the PostgreSQL queue", extra={"remaining": left})
                self._logged = left
            return
        if not self._drained:
            log.info(
                "PostgreSQL queue drained",
                extra={"processed_here": self._count, "dead_letters": depth.dead},
            )
        self._drained, self._logged = True, 0
        self._look_at = self._clock() + DRAIN_RECHECK_SECONDS

    def ack(self, messages: list[Message]) -> None:
        drained = [m for m in messages if m.backlog]
        self.backlog.ack(drained)
        self.queue.ack([m for m in messages if not m.backlog])
        self._count += len(drained)
        metrics.DRAINED.inc(len(drained))

    def release(self, message: Message, delay_seconds: float, error: str) -> None:
        (self.backlog if message.backlog else self.queue).release(message, delay_seconds, error)

    def depth(self) -> Depth:
        """SQS's: the table's is ssp_worker_postgres_drain_remaining."""
        return self.queue.depth()

    def close(self) -> None:
        self.backlog.close()
        self.queue.close()
