"""The SQS stand-in keeps SQS's promise the growth rehearsal's "processed once" relies on."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from moto.sqs.models import Message

from tools.standins import sqs_client, sqs_server

CONSUMERS, MESSAGES = 2, 10


def test_two_long_polling_consumers_never_receive_one_message_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Widens the gap between moto's visibility check and its mark, where a second receive,
    # woken by the same send, also took the message.
    marked = Message.mark_received

    def slow_mark(self: Message, visibility_timeout: int | None = None) -> None:
        time.sleep(0.01)
        marked(self, visibility_timeout)

    monkeypatch.setattr(Message, "mark_received", slow_mark)
    with sqs_server() as endpoint:
        sender = sqs_client(endpoint)
        url = sender.create_queue(QueueName="events")["QueueUrl"]
        received: list[str] = []  # list.extend is atomic; the consumers share it
        polling = threading.Barrier(CONSUMERS + 1)

        def consume() -> None:
            client: Any = sqs_client(endpoint)
            polling.wait()
            deadline = time.monotonic() + 5
            while len(received) < MESSAGES and time.monotonic() < deadline:
                answer = client.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=30
                )
                received.extend(m["Body"] for m in answer.get("Messages", []))

        consumers = [threading.Thread(target=consume) for _ in range(CONSUMERS)]
        for consumer in consumers:
            consumer.start()
        polling.wait()
        time.sleep(0.3)  # both consumers inside their long poll
        sender.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(MESSAGES)],
        )
        for consumer in consumers:
            consumer.join(10)
    times = Counter(received)
    assert sorted(times) == [f"m{i}" for i in range(MESSAGES)]
    assert times.most_common(1)[0][1] == 1, f"received twice: {times.most_common(3)}"


def test_a_long_poll_still_waits_for_a_message_and_then_returns_it() -> None:
    with sqs_server() as endpoint:
        client = sqs_client(endpoint)
        url = client.create_queue(QueueName="events")["QueueUrl"]
        started = time.monotonic()
        empty = client.receive_message(QueueUrl=url, WaitTimeSeconds=1)
        waited = time.monotonic() - started
        threading.Timer(
            0.5, client.send_message, kwargs={"QueueUrl": url, "MessageBody": "m"}
        ).start()
        answer = sqs_client(endpoint).receive_message(QueueUrl=url, WaitTimeSeconds=5)
    assert "Messages" not in empty and waited >= 0.9
    assert [m["Body"] for m in answer["Messages"]] == ["m"]
