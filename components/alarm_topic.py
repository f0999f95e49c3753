"""The stack's one alarm topic: every alarm notifies it, an email subscription optional."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.contract import owned
from components.kms import customer_key, key_policy

# CloudWatch publishes alarm notifications to the encrypted topic; the AWS-managed SNS key
# would not let it, so the topic's own key grants it.
CLOUDWATCH_PUBLISHES = {
    "Sid": "CloudWatchPublishes",
    "Effect": "Allow",
    "Principal": {"Service": "cloudwatch.amazonaws.com"},
    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
    "Resource": "*",
}


@dataclass
class AlarmTopicArgs:
    email: str | None
    """Address subscribed to the topic; ``None`` for no subscription."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for every resource of the component."""


class AlarmTopic(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    """SNS topic every alarm of the stack notifies."""

    def __init__(self, name: str, args: AlarmTopicArgs, opts: pulumi.ResourceOptions | None = None):
        # Moved from components/alarms.py: the alias keeps deployed stacks' URNs.
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_="ssp:alarms:AlarmTopic")])
        )
        super().__init__("ssp:alarm_topic:AlarmTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output().account_id
        key = customer_key(
            f"{name}-key",
            description="Encrypts the alarm topic",
            policy=account.apply(lambda a: key_policy(a, [CLOUDWATCH_PUBLISHES])),
            tags=args.tags,
            opts=child,
        )
        topic = aws.sns.Topic(
            f"{name}-topic", kms_master_key_id=key.arn, tags=args.tags, opts=child
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
