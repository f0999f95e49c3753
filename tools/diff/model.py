"""What the plan diff finds: a property change, a resource change, one stack's diff, and which
changes are dangerous."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.costs import UNKNOWN
from tools.harness import Resource

DATA_TIER = (
    "aws:rds/instance:",
    "aws:rds/cluster:",
    "aws:elasticache/replicationGroup:",
    "aws:elasticache/cluster:",
    "aws:s3/bucket:Bucket",
    "aws:kms/key:Key",
    "aws:sqs/queue:",
    "aws:dynamodb/table:",
    "kubernetes:core/v1:PersistentVolumeClaim",
    "aws:lb/loadBalancer:",
)
"""Types whose replacement or deletion loses data (databases, caches, buckets, keys, queues
with their messages, tables, volumes) or cuts traffic (the load balancer)."""
IDENTITY = (
    "aws:ec2/vpc:Vpc",
    "aws:eks/cluster:Cluster",
    "kubernetes:core/v1:Namespace",
)
"""Types whose replacement takes everything inside with it: the network, the cluster (and the
OIDC issuer every workload role trusts), the namespace (every object in it)."""
HOLDS_DATA = (
    "aws:rds/instance:",
    "aws:rds/cluster:",
    "aws:s3/bucket:",
    "aws:s3/bucketV2:",
    "aws:kms/key:",
    "aws:elasticache/replicationGroup:",
    "aws:elasticache/cluster:",
    "aws:sqs/queue:",
    "aws:dynamodb/table:",
    "aws:ecr/repository:",
    "aws:cloudwatch/logGroup:",
    "aws:secretsmanager/secret:",
    "aws:secretsmanager/secretVersion:",
)
"""Types that hold data of their own: a ``ferpa`` tag makes their replacement or deletion
dangerous. On other types (a parameter group, a SageMaker model) the tag classifies what they
touch, and replacing them loses nothing."""


@dataclass(frozen=True)
class PropertyChange:
    path: str
    old: Any
    new: Any
    replaces: str | None = None
    """Why this change forces a replacement (the table's rule or the option), or None."""
    may_replace: str | None = None
    """The case in which the provider replaces on this change (see ``replace_if``)."""
    note: str | None = None
    """What the change means for an operator (a static parameter's pending reboot)."""


@dataclass
class Change:
    kind: str
    """``create``, ``update``, ``replace`` or ``delete``."""
    resource: Resource
    """The head resource (the base one for a deletion)."""
    properties: list[PropertyChange] = field(default_factory=list)
    previous_urn: str = ""
    """The base URN it takes over, when that differs from its own (an alias)."""
    follows: list[str] = field(default_factory=list)
    """Changed resources whose new outputs this one reads (``tools.diff.cascade``)."""
    delete_first: bool = False
    """A replacement that deletes the old resource before creating the new one."""
    effects: list[str] = field(default_factory=list)
    """What the change does beyond its properties (pods rolling, a Job running again)."""

    @property
    def protected(self) -> bool:
        return self.resource.options.protect

    @property
    def ferpa(self) -> bool:
        tags = self.resource.inputs.get("tags")
        return isinstance(tags, dict) and tags.get("data-classification") == "ferpa"

    @property
    def data_tier(self) -> bool:
        return self.resource.type.startswith(DATA_TIER)

    @property
    def identity(self) -> bool:
        return self.resource.type.startswith(IDENTITY)

    @property
    def holds_data(self) -> bool:
        return self.resource.type.startswith(HOLDS_DATA)

    @property
    def retained(self) -> bool:
        """A deletion that leaves the resource in the account (``retainOnDelete``)."""
        return self.kind == "delete" and self.resource.options.retain_on_delete

    @property
    def guarded(self) -> bool:
        """Protected, or holding student data by its tag."""
        return self.protected or (self.ferpa and self.holds_data)

    @property
    def dangerous(self) -> bool:
        destructive = self.kind == "replace" or (self.kind == "delete" and not self.retained)
        return destructive and (self.guarded or self.data_tier or self.identity)


@dataclass
class StackDiff:
    stack: str
    changes: list[Change]
    cost_before: float
    cost_after: float
    cost_items_before: dict[str, float] = field(default_factory=dict)
    cost_items_after: dict[str, float] = field(default_factory=dict)
    """Monthly cost per line item (``tools.costs``), summed by what it is."""
    base: Sequence[Resource] = ()
    head: Sequence[Resource] = ()
    """Both sides' resources, for report sections that compare more than the changes."""

    def cost_changes(self) -> list[tuple[str, float, float]]:
        """(item, before, after) for every cost line item that changes, appears or goes."""
        before, after = self.cost_items_before, self.cost_items_after
        items = sorted(set(before) | set(after))
        changed = [(i, before.get(i, 0.0), after.get(i, 0.0)) for i in items]
        return [
            (i, b, a)
            for i, b, a in changed
            # An unpriced type says so when it comes or goes; a priced one shows when its
            # price changes to the cent.
            if round(b, 2) != round(a, 2) or ((i in before) != (i in after) and UNKNOWN in i)
        ]

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def summary(self) -> str:
        counts = [f"{len(self.of_kind(k))} to {k}" for k in ("create", "update", "replace")]
        counts.append(f"{len(self.of_kind('delete'))} to delete")
        delta = round(self.cost_after - self.cost_before)
        return (
            f"{self.stack}: {', '.join(counts)}; estimated cost ${self.cost_before:,.0f} -> "
            f"${self.cost_after:,.0f}/month ({'-' if delta < 0 else '+'}${abs(delta):,})"
        )
