"""The ``EventsQueue`` component: on tiers whose events go through SQS, the queue between
``POST /v1/events`` and the rescoring worker, its dead-letter queue, the customer-managed key
both are encrypted with, and the alarms on their age and depth."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config.tier import EventsSize
from components.shared.alarms import Threshold, metric_alarm
from components.shared.contract import EventQueue
from components.shared.kms import account_key_policy, customer_key
from components.shared.stack import StackContext

DAY_SECONDS = 86_400
# Receives wait up to 20 s (the SQS maximum) for a message: fewer empty receives, same latency.
RECEIVE_WAIT_SECONDS = 20
# How long SQS reuses a data key before asking KMS for another (the default): KMS calls, and
# their cost, stay per 5 minutes, not per message.
DATA_KEY_REUSE_SECONDS = 300


def redrive_policy(dead_letter_arn: str, max_receive_count: int) -> str:
    """After ``max_receive_count`` deliveries without a delete, SQS moves the message to the
    dead-letter queue."""
    return json.dumps(
        {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count}
    )


def redrive_allow_policy(source_queue_arn: str) -> str:
    """Only the events queue may use the dead-letter queue as its dead-letter queue."""
    return json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [source_queue_arn]})


@dataclass
class EventsQueueArgs:
    stack: StackContext
    """The stack: tags, the alarm topic, and ``protect`` on the queues and their key
    (undelivered events live there)."""
    queue_name: str
    """Name of the queue (``ssp-tier3-events``); the dead-letter queue adds ``-dlq``."""
    size: EventsSize
    """The tier's events slice: redelivery, retention, the worker's backlog and batch time."""


class EventsQueue(pulumi.ComponentResource):
    queue: EventQueue
    """What the API and the worker are given: URL, ARN, name and key of the queue."""
    queue_url: pulumi.Output[str]
    """URL of the events queue (``EVENTS_QUEUE_URL``)."""
    queue_arn: pulumi.Output[str]
    """ARN of the events queue."""
    dead_letter_queue_url: pulumi.Output[str]
    """URL of its dead-letter queue, where an operator inspects and redrives poison events."""
    kms_key_arn: pulumi.Output[str]
    """The key both queues are encrypted with."""

    def __init__(
        self, name: str, args: EventsQueueArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ssp:events:EventsQueue", name, None, opts)
        size, tags = args.size, args.stack.tags
        child = pulumi.ResourceOptions(parent=self, protect=args.stack.protect)
        # The API and the worker use it through their IAM policies (the account administers
        # it); no AWS service needs a grant of its own.
        key = customer_key(
            f"{name}-key",
            description=f"Encrypts the events in {args.queue_name} and its dead-letter queue",
            policy=account_key_policy(),
            tags=tags,
            opts=child,
        )
        identity = aws.get_caller_identity_output()
        region = aws.get_region_output()
        # Named from the queue's known name, not its resource: the queue points at the
        # dead-letter queue, so the dead-letter queue cannot wait for the queue.
        source_arn = pulumi.Output.all(region.region, identity.account_id).apply(
            lambda v: f"arn:aws:sqs:{v[0]}:{v[1]}:{args.queue_name}"
        )
        dead_letters = aws.sqs.Queue(
            f"{name}-dlq",
            name=f"{args.queue_name}-dlq",
            message_retention_seconds=size.dead_letter_retention_days * DAY_SECONDS,
            redrive_allow_policy=source_arn.apply(redrive_allow_policy),
            kms_master_key_id=key.arn,
            kms_data_key_reuse_period_seconds=DATA_KEY_REUSE_SECONDS,
            tags=tags,
            opts=child,
        )
        queue = aws.sqs.Queue(
            f"{name}-queue",
            name=args.queue_name,
            visibility_timeout_seconds=size.visibility_timeout_seconds,
            message_retention_seconds=size.retention_days * DAY_SECONDS,
            receive_wait_time_seconds=RECEIVE_WAIT_SECONDS,
            redrive_policy=dead_letters.arn.apply(
                lambda arn: redrive_policy(arn, size.max_receive_count)
            ),
            kms_master_key_id=key.arn,
            kms_data_key_reuse_period_seconds=DATA_KEY_REUSE_SECONDS,
            tags=tags,
            opts=child,
        )
        self._alarms(name, size, args.stack, queue, dead_letters)

        self.queue = EventQueue(url=queue.url, arn=queue.arn, name=queue.name, kms_key_arn=key.arn)
        self.queue_url = queue.url
        self.queue_arn = queue.arn
        self.dead_letter_queue_url = dead_letters.url
        self.kms_key_arn = key.arn
        self.register_outputs(
            {
                "queue_url": self.queue_url,
                "queue_arn": self.queue_arn,
                "dead_letter_queue_url": self.dead_letter_queue_url,
                "kms_key_arn": self.kms_key_arn,
            }
        )

    def _alarms(
        self,
        name: str,
        size: EventsSize,
        stack: StackContext,
        queue: aws.sqs.Queue,
        dead_letters: aws.sqs.Queue,
    ) -> None:
        """Events waiting too long, a backlog the workers at their maximum do not drain, and
        any event in the dead-letter queue. An idle queue sends no datapoints: not an alarm."""

        def alarm(role: str, description: str, metric: str, of: aws.sqs.Queue,
                  threshold: Threshold) -> None:  # fmt: skip
            metric_alarm(
                f"{name}-{role}",
                description=description,
                namespace="AWS/SQS",
                metric=metric,
                dimensions={"QueueName": of.name},
                statistic="Maximum",
                threshold=threshold,
                topic_arn=stack.alarm_topic,
                tags=stack.tags,
                opts=pulumi.ResourceOptions(parent=self),
            )

        alarm(
            "oldest-message",
            f"Events wait over {size.oldest_message_alarm_seconds} s for a worker: students'"
            " risk scores are that stale",
            "ApproximateAgeOfOldestMessage",
            queue,
            Threshold(size.oldest_message_alarm_seconds, periods=3, missing_data="notBreaching"),
        )
        # At this depth the autoscaler already runs every worker it may.
        backlog = size.max_workers * size.messages_per_worker
        alarm(
            "depth",
            f"Over {backlog} events wait with every worker running (raise events.max_workers)",
            "ApproximateNumberOfMessagesVisible",
            queue,
            Threshold(backlog, periods=15, missing_data="notBreaching"),
        )
        alarm(
            "dead-letters",
            "Events failed every delivery and wait in the dead-letter queue (see the worker's"
            " logs; redrive them once fixed)",
            "ApproximateNumberOfMessagesVisible",
            dead_letters,
            Threshold(0, period_seconds=300, periods=1, missing_data="notBreaching"),
        )
