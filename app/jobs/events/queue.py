"""One queue interface, two backends: a PostgreSQL table (dev and the embedded default) and
Amazon SQS (tier2+). A message names one student to rescore.

Both deliver at least once with the same lease semantics: a received message is invisible for
WORKER_VISIBILITY_SECONDS; acknowledged, it is gone; released, it comes back after its backoff;
neither (the worker died), it comes back when the lease ends. After WORKER_MAX_RECEIVES
receives a message is dead-lettered: on SQS by the queue's redrive policy (maxReceiveCount, the
program's), on PostgreSQL by `dead_at`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from app.core.settings import Settings


@dataclass(frozen=True)
class Message:
    student_id: int
    school_id: int
    enqueued_at: float  # epoch seconds: the event's POST, for the lag
    receives: int
    receipt: str  # what ack and release name the message by
    problem: str | None = None  # an unreadable body: poison, released until dead-lettered
    backlog: bool = False  # from the table queue being drained onto SQS (drain.py)


@dataclass(frozen=True)
class Depth:
    visible: int  # waiting to be received
    in_flight: int  # received, not yet acknowledged
    dead: int  # dead-lettered
    oldest_age_seconds: float | None  # of the oldest waiting message, where the backend knows


class Queue(Protocol):
    def send(self, students: list[tuple[int, int]]) -> None:
        """Enqueue (student id, school id) pairs."""

    def receive(self, limit: int) -> list[Message]: ...

    def ack(self, messages: list[Message]) -> None: ...

    def release(self, message: Message, delay_seconds: float, error: str) -> None:
        """Deliver `message` again after `delay_seconds` (the backoff of a failure)."""

    def depth(self) -> Depth: ...

    def close(self) -> None: ...


class PostgresQueue:
    """event_queue (migration 0011), consumed with FOR UPDATE SKIP LOCKED: workers never wait
    for each other's rows. A receive is a short transaction that leases the rows (available_at
    moves forward), so no transaction stays open while a batch is processed."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], settings: Settings) -> None:
        self._connect = connect
        self._conn = connect()  # autocommit: each statement below is its own transaction
        self.visibility = settings.worker_visibility_seconds
        self.max_receives = settings.worker_max_receives

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The queue's connection, opened again after the database dropped it."""
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        self._conn.close()

    def send(self, students: list[tuple[int, int]]) -> None:
        from app.jobs.events.apply import ENQUEUE, enqueue_params

        if students:
            self.conn.execute(ENQUEUE, enqueue_params(set(students)))

    def receive(self, limit: int) -> list[Message]:
        # Each LIMIT ... SKIP LOCKED is a MATERIALIZED CTE, run once: as a subquery joined to
        # the table, PostgreSQL may rescan it for every row (its plan when the statistics say
        # the queue is empty, as they mostly do), and each rescan leases `limit` more.
        with self.conn.transaction():
            # Messages received max_receives times already (their worker died each time) are
            # dead-lettered instead of being delivered again.
            self.conn.execute(
                "WITH spent AS MATERIALIZED (SELECT id FROM event_queue WHERE dead_at IS NULL"
                " AND available_at <= now() AND receives >= %s"
                " ORDER BY available_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
                " UPDATE event_queue q SET dead_at = now(),"
                " last_error = coalesce(q.last_error, 'lease expired')"
                " FROM spent WHERE q.id = spent.id",
                (self.max_receives, limit),
            )
            rows = self.conn.execute(
                "WITH ready AS MATERIALIZED (SELECT id FROM event_queue WHERE dead_at IS NULL"
                " AND available_at <= now() ORDER BY available_at, id LIMIT %s"
                " FOR UPDATE SKIP LOCKED)"
                " UPDATE event_queue q SET receives = q.receives + 1,"
                " available_at = now() + make_interval(secs => %s)"
                " FROM ready WHERE q.id = ready.id"
                " RETURNING q.id, q.student_id, q.school_id,"
                " extract(epoch FROM q.enqueued_at), q.receives",
                (limit, self.visibility),
            ).fetchall()
        return [Message(int(r[1]), int(r[2]), float(r[3]), int(r[4]), str(r[0])) for r in rows]

    def ack(self, messages: list[Message]) -> None:
        if messages:
            self.conn.execute(
                "DELETE FROM event_queue WHERE id = ANY(%s)",
                ([int(m.receipt) for m in messages],),
            )

    def release(self, message: Message, delay_seconds: float, error: str) -> None:
        # The last receive allowed: dead-lettered now rather than after one more backoff.
        self.conn.execute(
            "UPDATE event_queue SET last_error = %s,"
            " available_at = now() + make_interval(secs => %s),"
            " dead_at = CASE WHEN receives >= %s THEN now() END WHERE id = %s",
            (error[:1000], delay_seconds, self.max_receives, int(message.receipt)),
        )

    def depth(self) -> Depth:
        row = self.conn.execute(
            "SELECT count(*) FILTER (WHERE dead_at IS NULL AND available_at <= now()),"
            " count(*) FILTER (WHERE dead_at IS NULL AND available_at > now()),"
            " count(*) FILTER (WHERE dead_at IS NOT NULL),"
            " extract(epoch FROM now() - min(enqueued_at) FILTER (WHERE dead_at IS NULL))"
            " FROM event_queue"
        ).fetchone()
        assert row is not None
        return Depth(int(row[0]), int(row[1]), int(row[2]), _opt_float(row[3]))


class SqsQueue:
    """An SQS queue (boto3). Its dead-letter queue and maxReceiveCount are the queue's redrive
    policy, set by the program; a failure's backoff is ChangeMessageVisibility."""

    BATCH = 10  # SQS's most per ReceiveMessage and per SendMessageBatch

    def __init__(self, settings: Settings, client: Any = None) -> None:
        import boto3  # Imported lazily: the PostgreSQL queue does not need it.

        assert settings.events_queue_url, "QUEUE_BACKEND=sqs needs EVENTS_QUEUE_URL"
        self.url = settings.events_queue_url
        self.sqs = client or boto3.client("sqs", region_name=settings.aws_region)
        self.visibility = settings.worker_visibility_seconds
        self.wait = int(settings.worker_poll_seconds)

    def close(self) -> None:
        pass

    def send(self, students: list[tuple[int, int]]) -> None:
        now = time.time()
        for start in range(0, len(students), self.BATCH):
            chunk = students[start : start + self.BATCH]
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": json.dumps({"student_id": s, "school_id": sc, "at": now}),
                }
                for i, (s, sc) in enumerate(chunk)
            ]
            result = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            if result.get("Failed"):
                raise RuntimeError(f"SQS refused {len(result['Failed'])} messages")

    def receive(self, limit: int) -> list[Message]:
        out: list[Message] = []
        while len(out) < limit:
            result = self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=min(self.BATCH, limit - len(out)),
                VisibilityTimeout=self.visibility,
                # Long polling only while nothing has come: a partial batch goes at once.
                WaitTimeSeconds=0 if out else self.wait,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
            got = result.get("Messages", [])
            out += [self._message(m) for m in got]
            if len(got) < self.BATCH:
                break
        return out

    @staticmethod
    def _message(m: dict[str, Any]) -> Message:
        attrs = m.get("Attributes", {})
        receives = int(attrs.get("ApproximateReceiveCount", 1))
        sent = int(attrs.get("SentTimestamp", time.time() * 1000)) / 1000
        try:
            body = json.loads(m["Body"])
            return Message(
                int(body["student_id"]),
                int(body["school_id"]),
                float(body.get("at", sent)),
                receives,
                m["ReceiptHandle"],
            )
        except (ValueError, KeyError, TypeError) as exc:
            return Message(0, 0, sent, receives, m["ReceiptHandle"], f"unreadable body: {exc}")

    def ack(self, messages: list[Message]) -> None:
        for start in range(0, len(messages), self.BATCH):
            chunk = messages[start : start + self.BATCH]
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)],
            )

    def release(self, message: Message, delay_seconds: float, error: str) -> None:
        # The redrive policy dead-letters it at its next receive past maxReceiveCount.
        self.sqs.change_message_visibility(
            QueueUrl=self.url,
            ReceiptHandle=message.receipt,
            VisibilityTimeout=int(min(delay_seconds, 43_200)),
        )

    def depth(self) -> Depth:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        # The DLQ's depth and the oldest message's age are CloudWatch's (the program's alarms).
        return Depth(
            int(attrs["ApproximateNumberOfMessages"]),
            int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            0,
            None,
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
