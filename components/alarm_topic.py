"""The stack's one alarm topic: every alarm notifies it, an email subscription optional."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.shared.contract import owned
from components.shared.kms import customer_key, key_policy
from components.shared.stack import StackContext

# CloudWatch publishes alarm notifications to the encrypted topic; the AWS-managed SNS key
# would not let it, so the topic's own key grants it.
CLOUDWATCH_PUBLISHES = {
    "Sid": "CloudWatchPublishes",
    "Effect": "Allow",
    "Principal": {"Service": "cloudwatch.amazonaws.com"},
    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
    "Resource": "*",
}


def service_key_statements(services: Sequence[str], account_id: str) -> list[dict[str, Any]]:
    """Key-policy grants for services publishing to the encrypted topic for this account."""
    if not services:
        return []
    return [
        {
            "Sid": "ServicesPublish",
            "Effect": "Allow",
            "Principal": {"Service": list(services)},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }
    ]


def topic_policy(topic_arn: str, account_id: str, services: Sequence[str]) -> str:
    """The topic's policy: SNS's default (the account's principals manage and publish), plus
    publishing by ``services`` on behalf of this account only (no confused deputy)."""
    owner_actions = [
        "SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission",
        "SNS:RemovePermission", "SNS:DeleteTopic", "SNS:Subscribe", "SNS:ListSubscriptionsByTopic",
        "SNS:Publish",
    ]  # fmt: skip
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountOwns",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": owner_actions,
                    "Resource": topic_arn,
                    "Condition": {"StringEquals": {"AWS:SourceOwner": account_id}},
                },
                {
                    "Sid": "ServicesPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": list(services)},
                    "Action": ["sns:Publish", "sns:GetTopicAttributes"],
                    "Resource": topic_arn,
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
            ],
        }
    )


@dataclass
class AlarmTopicArgs:
    stack: StackContext
    """The stack (its tags); the topic it makes is the one its ``alarm_topic_arn`` names."""
    email: str | None
    """Address subscribed to the topic; ``None`` for no subscription."""
    service_publishers: tuple[str, ...] = ()
    """AWS services besides CloudWatch that publish to the topic (``aps.amazonaws.com``:
    Prometheus' alert manager), admitted by the topic and key policies, from this account."""


class AlarmTopic(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    """SNS topic every alarm of the stack notifies."""

    def __init__(self, name: str, args: AlarmTopicArgs, opts: pulumi.ResourceOptions | None = None):
        # Its type was ssp:alarms:AlarmTopic while it lived in the alarms module: the alias
        # keeps deployed stacks' URNs.
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_="ssp:alarms:AlarmTopic")])
        )
        super().__init__("ssp:alarm_topic:AlarmTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output().account_id
        services = args.service_publishers
        key = customer_key(
            f"{name}-key",
            description="Encrypts the alarm topic",
            policy=account.apply(
                lambda a: key_policy(
                    a, [CLOUDWATCH_PUBLISHES, *service_key_statements(services, a)]
                )
            ),
            tags=args.stack.tags,
            opts=child,
        )
        topic = aws.sns.Topic(
            f"{name}-topic", kms_master_key_id=key.arn, tags=args.stack.tags, opts=child
        )
        if services:
            aws.sns.TopicPolicy(
                f"{name}-policy",
                arn=topic.arn,
                policy=pulumi.Output.all(topic.arn, account).apply(
                    lambda v: topic_policy(v[0], v[1], services)
                ),
                opts=child,
            )
        if args.email:
            aws.sns.TopicSubscription(
                f"{name}-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.email,
                opts=owned(self, was=topic),
            )
        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})
