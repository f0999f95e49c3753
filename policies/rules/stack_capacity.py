"""Stack rules on the database connection budget.

- ``connection-capacity``: per-pod pool x the HPA's maxReplicas (KEDA's maxReplicaCount for a
  workload a ScaledObject scales) (+ batch jobs) fits the
  primary's connection budget: ``max_connections`` from the RDS parameter group, through the
  RDS proxy its ``maxConnectionsPercent`` share, else ``max_connections`` minus the reserved
  connections. The per-pod pool is ``DB_POOL_MAX``, else ``DB_POOL_SIZE`` + ``DB_MAX_OVERFLOW``,
  from the pods' environment (direct ``env`` values or the ConfigMap keys they reference).
- ``connection-capacity-inputs``: the stack declares what ``connection-capacity`` needs.

Values unknown during a preview are skipped (see ``_stack_util``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from . import kubernetes
from ._stack_util import (
    HPAS,
    RDS_INSTANCE,
    RDS_PROXY,
    at_path,
    hpa_for,
    is_replica,
    of_type,
    val,
    vals,
)
from ._util import as_list, known, num, setting

RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
RDS_PROXY_TARGET_GROUP = "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
# KEDA scales a workload through an HPA it makes itself, which the program never registers.
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
# A pod's connections: DB_POOL_MAX (a min/max pool such as asyncpg's or psycopg's), else
# DB_POOL_SIZE + DB_MAX_OVERFLOW (SQLAlchemy's QueuePool).
POOL_MAX_KEY = "DB_POOL_MAX"
POOL_KEY, OVERFLOW_KEY = "DB_POOL_SIZE", "DB_MAX_OVERFLOW"
POOL_KEYS = (POOL_MAX_KEY, POOL_KEY)


CAPACITY_SCHEMA = PolicyConfigSchema(
    properties={
        "reservedConnections": {
            "type": "integer",
            "minimum": 0,
            "default": 10,
            "description": "Connections kept for superusers, migrations, operators and "
            "monitoring when the app connects without a proxy (and left over by the proxy).",
        },
    }
)


@dataclass(frozen=True)
class PoolUser:
    """A workload that opens a connection pool to the primary."""

    resource: PolicyResource
    per_pod: int
    per_pod_from: str
    pods: int
    pods_from: str

    @property
    def demand(self) -> int:
        return self.per_pod * self.pods

    def describe(self) -> str:
        return (
            f"{self.resource.name}: {self.per_pod} ({self.per_pod_from}) x {self.pods} pods "
            f"({self.pods_from})"
        )


def per_pod_connections(env: Mapping[str, Any]) -> tuple[int, str]:
    """Connections one container may open, and how that was read from its environment."""
    if env.get(POOL_MAX_KEY) is not None:
        return int(num(env.get(POOL_MAX_KEY), 0.0) or 0), POOL_MAX_KEY
    pool = int(num(env.get(POOL_KEY), 0.0) or 0)
    overflow = int(num(env.get(OVERFLOW_KEY), 0.0) or 0)
    return pool + overflow, f"{POOL_KEY} {pool} + {OVERFLOW_KEY} {overflow}"


def _config_maps(resources: list[PolicyResource]) -> dict[str, Mapping[str, Any]]:
    maps: dict[str, Mapping[str, Any]] = {}
    for r in of_type(resources, CONFIG_MAP):
        data = val(r, "data", {}) or {}
        for name in (val(r, "metadata.name"), r.name):
            if name:
                maps.setdefault(str(name), data)
    return maps


def container_env(
    container: Mapping[str, Any], maps: Mapping[str, Mapping[str, Any]], fallback: Mapping[str, Any]
) -> dict[str, Any]:
    """Environment of a container: ``envFrom`` ConfigMaps overridden by direct ``env``. A
    reference to a ConfigMap whose name is not known yet resolves to ``fallback``."""
    env: dict[str, Any] = {}
    for source in known(lambda: as_list(container.get("envFrom")), []) or []:
        ref = at_path(source, "configMapRef.name")
        if at_path(source, "configMapRef") is not None:
            env.update(maps.get(str(ref), fallback) if ref else fallback)
    for item in known(lambda: as_list(container.get("env")), []) or []:
        name = at_path(item, "name")
        if not name:
            continue
        value = at_path(item, "value")
        ref = at_path(item, "valueFrom.configMapKeyRef")
        if value is not None:
            env[str(name)] = value
        elif isinstance(ref, Mapping):
            data = maps.get(str(at_path(ref, "name") or ""), fallback)
            key = at_path(ref, "key")
            if key in data:
                env[str(name)] = data[key]
    return env


def pool_users(resources: list[PolicyResource]) -> list[PoolUser]:
    """Every workload whose containers size a DB pool, with its maximum pod count."""
    maps = _config_maps(resources)
    pooled_maps = [data for data in maps.values() if any(k in data for k in POOL_KEYS)]
    fallback = pooled_maps[0] if len({id(m) for m in pooled_maps}) == 1 else {}
    hpas = of_type(resources, *HPAS)
    scaled = of_type(resources, SCALED_OBJECT)
    users = []
    for r in of_type(resources, *kubernetes.WORKLOADS):
        if r.resource_type == kubernetes.JOB:
            # A one-off Job (a release's migrations) runs before the pods it migrates for;
            # its connection is part of the reserve kept for migrations and operators.
            continue
        spec = known(partial(kubernetes.pod_spec, r.resource_type, r.props), {}) or {}
        per_pod, sources = 0, []
        for container in kubernetes.containers(spec, init=False):
            connections, source = per_pod_connections(container_env(container, maps, fallback))
            if connections:
                per_pod += connections
                sources.append(source)
        if not per_pod:
            continue
        keda = [
            o for o in scaled
            if val(o, "spec.scaleTargetRef.name") in (val(r, "metadata.name"), r.name)
        ]  # fmt: skip
        if r.resource_type in kubernetes.LONG_RUNNING and keda:
            pods = int(num(val(keda[0], "spec.maxReplicaCount"), 100.0) or 100)
            source = "KEDA maxReplicaCount"
        elif r.resource_type in kubernetes.LONG_RUNNING:
            hpa = hpa_for(r, hpas)
            if hpa is not None and val(hpa, "spec.maxReplicas") is not None:
                pods, source = int(num(val(hpa, "spec.maxReplicas"), 1.0) or 1), "HPA maxReplicas"
            else:
                pods, source = int(num(val(r, "spec.replicas"), 1.0) or 1), "spec.replicas"
        else:
            cron = r.resource_type == kubernetes.CRON_JOB
            path = "spec.jobTemplate.spec.parallelism" if cron else "spec.parallelism"
            pods, source = int(num(val(r, path), 1.0) or 1), "parallelism"
        users.append(PoolUser(r, per_pod, " + ".join(sources), pods, source))
    return users


def max_connections(resources: list[PolicyResource]) -> tuple[int, PolicyResource] | None:
    """max_connections of the primary's parameter group (the smallest when it is ambiguous)."""
    groups = []
    for pg in of_type(resources, RDS_PARAMETER_GROUP):
        for parameter in vals(pg, "parameters"):
            if at_path(parameter, "name") == "max_connections":
                value = num(at_path(parameter, "value"))
                if value is not None:
                    groups.append((int(value), pg))
    if not groups:
        return None
    primaries = [r for r in of_type(resources, RDS_INSTANCE) if not is_replica(r)]
    wanted = {val(p, "parameterGroupName") for p in primaries} - {None}
    named = [(v, pg) for v, pg in groups if {val(pg, "name"), val(pg, "id"), pg.name} & wanted]
    return min(named or groups, key=lambda g: g[0])


def _capacity(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    primaries = [r for r in of_type(resources, RDS_INSTANCE) if not is_replica(r)]
    found = max_connections(resources)
    users = pool_users(resources)
    if not primaries or found is None or not users:
        return  # connection-capacity-inputs says what is missing
    limit, group = found
    reserved = int(setting(args, CAPACITY_SCHEMA, "reservedConnections"))
    target_groups = of_type(resources, RDS_PROXY_TARGET_GROUP)
    via_proxy = bool(of_type(resources, RDS_PROXY))
    percent = min(
        (
            int(num(val(t, "connectionPoolConfig.maxConnectionsPercent"), 100.0) or 100)
            for t in target_groups
        ),
        default=100,
    )
    demand = sum(u.demand for u in users)
    if via_proxy:
        budget = limit * percent // 100
        where = f"{percent}% of max_connections {limit} through the RDS proxy"
    else:
        budget = limit - reserved
        where = f"max_connections {limit} - {reserved} reserved"
    pools = " + ".join(u.describe() for u in users)
    if demand > budget:
        report(
            f"connection capacity: {pools} = {demand} connections > {where} = {budget} "
            f"(parameter group '{group.name}'); lower app_pool_size/app_pool_max_overflow or "
            "api_max_replicas, or raise db_max_connections (and the proxy's "
            "max_connections_percent).",
            group.urn,
        )
    if via_proxy and limit * (100 - percent) // 100 < reserved:
        report(
            f"connection capacity: the RDS proxy may take {percent}% of max_connections {limit}, "
            f"leaving fewer than {reserved} connections for superusers and operators; lower "
            "connection_pool_config.max_connections_percent (db_proxy_max_connections_percent).",
            target_groups[0].urn if target_groups else None,
        )


def _capacity_inputs(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    primaries = [r for r in of_type(resources, RDS_INSTANCE) if not is_replica(r)]
    workloads = of_type(resources, *kubernetes.LONG_RUNNING)
    if not primaries or not workloads:
        return
    if max_connections(resources) is None:
        report(
            "connection capacity cannot be checked: no aws.rds.ParameterGroup sets "
            "max_connections; set it explicitly from the catalog's db_max_connections.",
            primaries[0].urn,
        )
    if not pool_users(resources):
        report(
            "connection capacity cannot be checked: no workload sets DB_POOL_MAX (or "
            "DB_POOL_SIZE + DB_MAX_OVERFLOW) per pod in its env or in a ConfigMap it "
            "references; put them in the app's ConfigMap (and the trainer's own in its env).",
            workloads[0].urn,
        )
    elif not of_type(resources, *HPAS):
        report(
            "connection capacity uses spec.replicas because no HorizontalPodAutoscaler was "
            "found; the HPA's maxReplicas is the real worst case.",
            workloads[0].urn,
        )


M, A = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY

POLICIES = [
    StackValidationPolicy(
        name="connection-capacity",
        description="Connection pools at the HPA maximum fit the database's connection budget.",
        validate=_capacity,
        enforcement_level=M,
        config_schema=CAPACITY_SCHEMA,
    ),
    StackValidationPolicy(
        name="connection-capacity-inputs",
        description="The stack declares what the connection-capacity check needs.",
        validate=_capacity_inputs,
        enforcement_level=A,
    ),
]
