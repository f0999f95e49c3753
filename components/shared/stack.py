"""What every component takes from its stack, in one bundle passed once: the prefix of the
stack's AWS names, its region, the tags every resource carries, whether stateful resources
are protected, how long logs are kept and the topic every alarm notifies."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class StackContext:
    """The stack as a component sees it (``stacks.regional`` and ``stacks.global_stack``
    build it from the spec)."""

    name_prefix: str
    """Prefix of the stack's AWS names (``ssp-tier3``: ``ssp-tier3-db``, ``ssp-tier3-redis``)."""
    region: str
    """AWS region of the stack."""
    tags: dict[str, str]
    """Tags every taggable resource carries (project, stack, tier, owner, managed-by and the
    data classification of what the component holds)."""
    protect: bool
    """Pulumi ``protect`` and deletion protection on stateful resources; False on dev only,
    which takes changes at once and may be deleted without final snapshots."""
    log_retention_days: int
    """Retention of every CloudWatch log group and access log of the stack."""
    alarm_topic_arn: pulumi.Input[str] | None = None
    """Topic every alarm notifies; None before the stack's ``AlarmTopic`` exists and on the
    global stack, which has no alarms."""

    def classified(self, data_classification: str) -> StackContext:
        """The same stack, for a component holding data of that classification (``ferpa``
        for what holds or carries student records)."""
        return dataclasses.replace(
            self, tags={**self.tags, "data-classification": data_classification}
        )

    @property
    def alarm_topic(self) -> pulumi.Input[str]:
        """The alarm topic; a component with alarms cannot be made without one."""
        if self.alarm_topic_arn is None:
            raise ValueError(f"{self.name_prefix}: this component's alarms need the alarm topic")
        return self.alarm_topic_arn
