"""What the stack rules share: reading a stack's resources and joining them.

The stack rules (``stack_capacity``, ``stack_consistency``) check properties no single resource
shows. During a preview, IDs of new resources are unknown: joins then fall back to the
component tree (a resource and its companions share a parent), and values that stay unknown
are skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation
from pulumi_policy.proxy import UnknownValueError

from ._util import as_list, get, known, present

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PROXY = "aws:rds/proxy:Proxy"
HPAS = (
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "kubernetes:autoscaling/v1:HorizontalPodAutoscaler",
)


def at_path(value: Any, path: str, default: Any = None) -> Any:
    """``get`` that yields ``default`` for a value unknown during a preview."""
    return known(partial(get, value, path, default), default)


def val(r: PolicyResource, path: str, default: Any = None) -> Any:
    """A property at a dotted path, ``default`` when absent or unknown during a preview."""
    return at_path(r.props, path, default)


def undecided(r: PolicyResource, path: str) -> bool:
    """The property is unknown during a preview: it is decided at apply time (another
    resource's output), so a rule must neither pass nor fail on it as if it were missing."""
    try:
        get(r.props, path)
    except UnknownValueError:
        return True
    return False


def vals(r: PolicyResource, path: str) -> list[Any]:
    return known(lambda: as_list(get(r.props, path)), []) or []


def of_type(resources: Iterable[PolicyResource], *types: str) -> list[PolicyResource]:
    return [r for r in resources if r.resource_type in types]


def parent_urn(r: PolicyResource) -> str | None:
    return r.parent.urn if r.parent is not None else r.opts.parent


def is_replica(r: PolicyResource) -> bool:
    return present(r.props, "replicateSourceDb")


def stack_tier(resources: Iterable[PolicyResource]) -> str | None:
    """The tier most resources are tagged with."""
    tiers = Counter(str(t) for r in resources if (t := val(r, "tags.tier")))
    return tiers.most_common(1)[0][0] if tiers else None


def report_each(report: ReportViolation) -> Callable[[str, PolicyResource | None], None]:
    return lambda message, r: report(message, r.urn if r is not None else None)


def hpa_for(workload: PolicyResource, hpas: list[PolicyResource]) -> PolicyResource | None:
    name = val(workload, "metadata.name")
    for hpa in hpas:
        target = val(hpa, "spec.scaleTargetRef.name")
        if target and target in (name, workload.name):
            return hpa
    # Autonamed workloads are only known after the update: a single HPA targets the only one.
    return hpas[0] if len(hpas) == 1 else None


def resource_id(r: PolicyResource) -> str | None:
    value = known(lambda: r.props.get("id"))
    return str(value) if value else None
