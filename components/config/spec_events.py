"""The events slice of a tier row, validated for ``components.config.spec``: the queue, its
redelivery and retention, and the worker's scaling. Each rule names its override key."""

from __future__ import annotations

from components.config.tier import EventsSize

QUEUE_BACKENDS = ("postgres", "sqs")
# SQS limits: visibility timeout up to 12 hours, retention 1 minute to 14 days, a redrive
# policy's maxReceiveCount 1-1,000.
SQS_MAX_VISIBILITY_SECONDS = 43_200
SQS_MAX_RETENTION_DAYS = 14
SQS_MAX_RECEIVE_COUNT = 1_000


def events_problems(events: EventsSize) -> list[str]:
    e, found = events, []

    def need(ok: bool, message: str) -> None:
        if not ok:
            found.append(message)

    need(
        e.queue in QUEUE_BACKENDS,
        f"events.queue={e.queue!r}: allowed {', '.join(QUEUE_BACKENDS)}",
    )
    need(
        1 <= e.min_workers <= e.max_workers,
        f"events.min_workers={e.min_workers} > events.max_workers={e.max_workers}: "
        "need 1 <= min <= max",
    )
    need(
        e.messages_per_worker >= 1,
        f"events.messages_per_worker={e.messages_per_worker}: at least 1",
    )
    need(
        e.worker_db_connections >= 1,
        f"events.worker_db_connections={e.worker_db_connections}: at least 1",
    )
    need(e.batch_seconds >= 1, f"events.batch_seconds={e.batch_seconds}: at least 1")
    # A message must stay hidden while a worker still works on it, or a second worker
    # receives it again mid-batch.
    need(
        e.batch_seconds < e.visibility_timeout_seconds <= SQS_MAX_VISIBILITY_SECONDS,
        f"events.visibility_timeout_seconds={e.visibility_timeout_seconds}: need more than "
        f"events.batch_seconds ({e.batch_seconds}) and at most {SQS_MAX_VISIBILITY_SECONDS}",
    )
    need(
        1 <= e.max_receive_count <= SQS_MAX_RECEIVE_COUNT,
        f"events.max_receive_count={e.max_receive_count}: allowed 1-{SQS_MAX_RECEIVE_COUNT}",
    )
    need(
        1 <= e.retention_days <= SQS_MAX_RETENTION_DAYS,
        f"events.retention_days={e.retention_days}: allowed 1-{SQS_MAX_RETENTION_DAYS}",
    )
    # A dead letter keeps its original enqueue time: with a shorter retention than the
    # queue's, SQS could drop it the moment it arrives.
    need(
        e.retention_days <= e.dead_letter_retention_days <= SQS_MAX_RETENTION_DAYS,
        f"events.dead_letter_retention_days={e.dead_letter_retention_days}: need at least "
        f"events.retention_days ({e.retention_days}) and at most {SQS_MAX_RETENTION_DAYS}",
    )
    need(
        e.oldest_message_alarm_seconds >= 60,
        f"events.oldest_message_alarm_seconds={e.oldest_message_alarm_seconds}: at least 60 "
        "(SQS publishes its metrics every minute)",
    )
    return found
