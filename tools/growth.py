"""A stack's move to the next tier, evaluated offline: the program at both tiers (the stack
file with ``tier:`` changed and the keys the new tier requires), the reviewer's diff between
them (``tools.diff``, in process), and whether the move is safe: nothing that holds data
replaced or deleted, every replacement and deletion on a short list with its reason.

A move is one ``pulumi up``, or two where the new tier puts CloudFront in front of the load
balancer (``edgePhase: both``, then ``cdn-only`` once the clients use the edge's name). Each
``up`` after the first reads the outputs the one before exported, as the stack's reference to
itself does in the engine, so the program's own move checks run (``spec_growth``).
``tools.grow`` prints a move for an operator; ``tests/growth`` asserts every move is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from components.config.catalog import TIERS
from components.config.spec_growth import TIER_ORDER
from tools import costs
from tools.diff import Change, StackDiff, diff_resources, render
from tools.harness import Resource, StackRun, run_stack
from tools.moves import config_at, next_tier, tier_of

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
WAF_TYPES = (
    "aws:wafv2/webAcl:WebAcl",
    "aws:wafv2/webAclAssociation:WebAclAssociation",
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration",
)


def stack_tier(stack: str) -> str:
    """The tier a stack file runs (the global stack, which picks none, is refused)."""
    tier = tier_of(stack)
    if tier is None:
        raise ValueError(f"{stack}: picks no tier (the global stack does not move)")
    return tier


def phases(source: str, target: str) -> list[dict[str, str]]:
    """The ``up``s of a move: one, or two where the target tier adds CloudFront."""
    if TIERS[target].edge.enabled and not TIERS[source].edge.enabled:
        return [{"edgePhase": "both"}, {"edgePhase": "cdn-only"}]
    return [{}]


@dataclass
class Up:
    """One ``pulumi up`` of a move: the keys it sets over the stack file, what the program
    registers then, and the diff from the state before it."""

    config: dict[str, str]
    run: StackRun
    diff: StackDiff


@dataclass
class Move:
    stack: str
    source: str
    target: str
    before: StackRun
    ups: list[Up]


def priced(run: StackRun) -> tuple[float, dict[str, float]]:
    items = costs.estimate(run.resources)
    grouped: dict[str, float] = {}
    for item in items:
        grouped[item.what] = grouped.get(item.what, 0.0) + item.monthly_usd
    return costs.total(items), grouped


def evaluate_move(
    stack: str, target: str | None = None, own: Mapping[str, Any] | None = None
) -> Move:
    """The stack's move from its tier (the stack file's, or the one below ``target`` along
    the way up from it) to ``target`` (default: the next tier). ``own``: keys set over the
    stack file before and after the move (an override the operator added beforehand)."""
    current = stack_tier(stack)
    target = target or next_tier(current)
    if target not in TIER_ORDER[TIER_ORDER.index(current) + 1 :]:
        above = ", ".join(TIER_ORDER[TIER_ORDER.index(current) + 1 :]) or "none"
        raise ValueError(f"{stack} runs {current}: tiers above it: {above}")
    source = TIER_ORDER[TIER_ORDER.index(target) - 1]
    before = run_stack(stack, {**config_at(stack, source), **(own or {})})
    previous, ups = before, []
    for phase in phases(source, target):
        config = {**config_at(stack, target), **phase}
        run = run_stack(stack, {**config, **(own or {})}, deployed=previous.outputs)
        (cost_before, items_before), (cost_after, items_after) = priced(previous), priced(run)
        changes = diff_resources(previous.resources, run.resources)
        diff = StackDiff(stack, changes, cost_before, cost_after, items_before, items_after)
        ups.append(Up(config, run, diff))
        previous = run
    return Move(stack, source, target, before, ups)


# -- what may be replaced or deleted, and why ---------------------------------------------------


def _generated_name(change: Change) -> str | None:
    r = change.resource
    if r.options.delete_before_replace or r.get("metadata.name"):
        return "has a fixed name: the old one would go first"
    return None


def _node_group_rolls(change: Change) -> str | None:
    r = change.resource
    if r.get("nodeGroupName") or not r.get("nodeGroupNamePrefix"):
        return "needs node_group_name_prefix: with a fixed name the old group goes first"
    if r.options.delete_before_replace:
        return "deleteBeforeReplace: the old nodes would go before the new ones are up"
    if not r.get("updateConfig"):
        return "needs update_config (max unavailable) for its rolling updates"
    return None


def _kept_in_the_account(change: Change) -> str | None:
    if not change.resource.options.retain_on_delete:
        return "needs retainOnDelete: the endpoint may still use the old one"
    return None


def _retained(change: Change) -> str | None:
    return None if change.retained else "needs retainOnDelete: it holds logs"


@dataclass(frozen=True)
class Allowed:
    type: str
    kind: str
    reason: str
    check: Callable[[Change], str | None] = lambda change: None
    """What must hold for it to be safe (a problem, or None)."""


ALLOWED: tuple[Allowed, ...] = (
    Allowed(
        NODE_GROUP,
        "replace",
        "its nodes roll: the new group (generated name) is up before the old one is deleted, "
        "whose nodes EKS drains through the eviction API (PodDisruptionBudgets hold, up to 15 "
        "minutes a node)",
        _node_group_rolls,
    ),
    Allowed(
        "kubernetes:core/v1:ConfigMap",
        "replace",
        "replaced under a new generated name before the old one is deleted; the pods reading "
        "it roll onto it",
        _generated_name,
    ),
    Allowed(
        "kubernetes:core/v1:Secret",
        "replace",
        "replaced under a new generated name before the old one is deleted (same credentials; "
        "its readers roll onto it)",
        _generated_name,
    ),
    Allowed(
        "kubernetes:batch/v1:Job",
        "replace",
        "the bootstrap Job runs again with the tier's resources: its migrations and logins "
        "are idempotent",
    ),
    Allowed(
        "aws:sagemaker/model:Model",
        "replace",
        "immutable: a new model for the tier's instance type; the old one stays in the account "
        "while the endpoint serves it, until its next rollout",
        _kept_in_the_account,
    ),
    Allowed(
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "replace",
        "immutable: a new configuration (instance type, count); the endpoint moves to it at "
        "its next rollout, blue/green with its rollback alarms",
        _kept_in_the_account,
    ),
    Allowed(
        "aws:lb/listenerRule:ListenerRule",
        "replace",
        "the internal-paths rule follows the listener API traffic arrives on (HTTP to HTTPS): "
        "the new rule exists before the old one goes",
        _generated_name,
    ),
    Allowed(
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "delete",
        "the worker's CPU autoscaler: KEDA scales the worker on the SQS queue's depth instead",
    ),
    *(
        Allowed(
            waf,
            "delete",
            "the load balancer's own WAF, after the clients moved to CloudFront: CloudFront's "
            "WAF guards the only way in",
        )
        for waf in WAF_TYPES
    ),
    Allowed(
        "aws:lb/listener:Listener",
        "delete",
        "the HTTP-to-HTTPS redirect, after the clients moved: CloudFront reaches the load "
        "balancer over HTTPS only",
    ),
    Allowed(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "delete",
        "port 80 from the internet, after the clients moved: only CloudFront's addresses, on "
        "443, reach the load balancer",
    ),
    Allowed(
        "aws:cloudwatch/logGroup:LogGroup",
        "delete",
        "the load balancer WAF's logs: kept in the account (retainOnDelete) until their "
        "retention has passed",
        _retained,
    ),
    Allowed(
        "aws:kms/key:Key",
        "delete",
        "the key of the load balancer WAF's logs: kept in the account (retainOnDelete) while "
        "those logs are",
        _retained,
    ),
)


def allowed(change: Change) -> Allowed | None:
    return next(
        (a for a in ALLOWED if a.type == change.resource.type and a.kind == change.kind), None
    )


def holds_data(change: Change) -> bool:
    """Databases, buckets, keys, caches, queues, tables, registries; log groups and Secrets
    Manager secrets when they hold student data or are protected."""
    if change.resource.type.startswith(("aws:cloudwatch/logGroup:", "aws:secretsmanager/")):
        return change.ferpa or change.protected
    return change.holds_data


def problems(up: Up) -> list[str]:
    """Why this ``up`` is not safe: data replaced or deleted, a replacement or deletion on no
    list or failing its list's condition, a change the reviewer's diff refuses."""
    found = []
    for change in up.diff.changes:
        if change.kind not in ("replace", "delete"):
            continue
        what = f"{change.kind} {change.resource.type} {change.resource.name}"
        if holds_data(change) and not change.retained:
            found.append(f"{what}: it holds data")
        rule = allowed(change)
        if rule is None:
            found.append(f"{what}: on no list of what a move may replace or delete")
        elif (problem := rule.check(change)) is not None:
            found.append(f"{what}: {problem}")
    if render(up.diff, "before")[1]:
        found.append("the reviewer's diff refuses it (exit 1)")
    return found


# -- what each move must keep, state by state ------------------------------------------------

DB_INSTANCE = "aws:rds/instance:Instance"
DB_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
K8S_SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
DRAIN = "QUEUE_DRAIN_POSTGRES"


def states(move: Move) -> list[StackRun]:
    """The stack before the move and after each of its ups."""
    return [move.before, *(up.run for up in move.ups)]


def _credentials(secret: Resource) -> dict[str, str]:
    """What in a Kubernetes Secret is a credential: the API key pepper, the logins' passwords
    (on their own or inside a database URL, whose host may change with the tier)."""
    found = {}
    for key, value in (secret.get("stringData") or {}).items():
        if key.endswith(("PASSWORD", "PEPPER")):
            found[key] = str(value)
        elif key.endswith("_URL") and (password := urlsplit(str(value)).password):
            found[f"{key} password"] = password
    return found


def secret_problems(move: Move) -> list[str]:
    """A credential that changes: a generated password or the pepper (every API key is hashed
    with it) replaced or updated, a Secrets Manager secret's value, a Secret's credential."""
    found = []
    for n, up in enumerate(move.ups, 1):
        for change in up.diff.changes:
            r = change.resource
            if change.kind == "create":
                continue
            if r.type.startswith(("random:", "aws:secretsmanager/secretVersion:")):
                found.append(f"up {n}: {change.kind} {r.type} {r.name}: a credential changes")
            elif r.type.startswith("aws:secretsmanager/") and change.kind != "update":
                found.append(f"up {n}: {change.kind} {r.type} {r.name}")
    before = {s.name: _credentials(s) for s in move.before.of_type(K8S_SECRET)}
    for n, state in enumerate(states(move)[1:], 1):
        for secret in state.of_type(K8S_SECRET):
            was = before.get(secret.name, {})
            for key, value in _credentials(secret).items():
                if key in was and was[key] != value:
                    found.append(f"up {n}: Secret {secret.name}: {key} changes")
    return found


def database_problems(move: Move) -> list[str]:
    """The database not moving in place: a parameter group whose description (which RDS
    cannot change: a replacement) names an instance class, a Multi-AZ primary pinned to a zone
    (RDS refuses it on create and it is replaced after a failover) or a single-AZ one not
    pinned, an instance replaced or deleted."""
    found = []
    for state in states(move):
        classes = {str(r.get("instanceClass")) for r in state.of_type(DB_INSTANCE)}
        for group in state.of_type(DB_PARAMETER_GROUP):
            description = str(group.get("description"))
            if any(c in description for c in classes):
                found.append(f"{state.stack}: {group.name} names the instance class: {description}")
        for r in state.of_type(DB_INSTANCE):
            if r.get("replicateSourceDb"):
                continue
            pinned = r.get("availabilityZone") is not None
            if bool(r.get("multiAz")) == pinned:
                found.append(
                    f"{r.name}: multiAz={r.get('multiAz')} with availabilityZone="
                    f"{r.get('availabilityZone')!r} (a Multi-AZ primary leaves it unset)"
                )
    for n, up in enumerate(move.ups, 1):
        for change in up.diff.changes:
            if change.resource.type == DB_INSTANCE and change.kind in ("replace", "delete"):
                found.append(f"up {n}: {change.kind} {change.resource.name}")
    return found


def rolling_problems(move: Move) -> list[str]:
    """Pods a node roll could drop: a Deployment without a PodDisruptionBudget (EKS drains
    nodes through the eviction API, which only a budget holds back), an API of one pod."""
    found = []
    for state in states(move)[1:]:
        selectors = [r.get("spec.selector.matchLabels") or {} for r in state.of_type(PDB)]
        for deployment in state.of_type(DEPLOYMENT):
            labels = deployment.get("spec.template.metadata.labels") or {}
            namespace = deployment.get("metadata.namespace")
            budgets = [
                b
                for b, selector in zip(state.of_type(PDB), selectors, strict=True)
                if selector
                and b.get("metadata.namespace") == namespace
                and selector.items() <= labels.items()
            ]
            if not budgets:
                found.append(f"{deployment.name}: no PodDisruptionBudget selects its pods")
        for hpa in state.of_type(HPA):
            if hpa.name.endswith("-api-hpa") and int(hpa.get("spec.minReplicas", 1)) < 2:
                found.append(f"{hpa.name}: minReplicas below 2, the API drops during a roll")
    return found


def queue_problems(move: Move) -> list[str]:
    """Events lost in the switch to SQS: a ConfigMap on SQS that does not have the worker
    drain the PostgreSQL table queue, where the events accepted before the move wait."""
    found = []
    for state in states(move):
        for config in state.of_type(CONFIG_MAP):
            data = config.get("data") or {}
            if data.get("QUEUE_BACKEND") == "sqs" and data.get(DRAIN) != "true":
                found.append(f"{state.stack}: {config.name} on SQS without {DRAIN}=true")
    return found


def internet_entries(run: StackRun) -> list[str]:
    """The rules that open a load balancer to the whole internet."""
    groups = {sg for lb in run.of_type(LOAD_BALANCER) for sg in lb.get("securityGroups", [])}
    return [
        r.name
        for r in run.of_type(SG_INGRESS)
        if r.get("cidrIpv4") == "0.0.0.0/0" and r.get("securityGroupId") in groups
    ]


def edge_problems(move: Move) -> list[str]:
    """A moment with a way in and no WAF, or with the clients' way in gone before CloudFront
    serves: the first of two ups deletes nothing and keeps the load balancer open and
    forwarding; the second closes it."""
    found = []
    for n, state in enumerate(states(move)):
        if internet_entries(state) and not state.of_type(WAF_TYPES[1]):
            found.append(f"state {n}: the load balancer is open to the internet without a WAF")
        for distribution in state.of_type(DISTRIBUTION):
            if not distribution.get("webAclId"):
                found.append(f"state {n}: {distribution.name} without a WAF")
    if len(move.ups) == 2:
        first, second = move.ups
        for change in first.diff.of_kind("delete"):
            found.append(f"up 1 deletes {change.resource.type} {change.resource.name}")
        if not internet_entries(first.run) or not first.run.of_type(DISTRIBUTION):
            found.append("up 1 must keep the load balancer open while CloudFront comes up")
        for listener in first.run.of_type(LISTENER):
            action = listener.get("defaultActions")[0]["type"]
            if listener.get("protocol") == "HTTPS" and action != "forward":
                found.append(f"up 1: {listener.name} stops forwarding the clients")
        if internet_entries(second.run):
            found.append("up 2 leaves the load balancer open beside CloudFront")
    return found


CHECKS: dict[str, Callable[[Move], list[str]]] = {
    "secrets": secret_problems,
    "database": database_problems,
    "rolling": rolling_problems,
    "queue": queue_problems,
    "edge": edge_problems,
}
"""What every move must keep, beyond each up's own diff (``problems``)."""


def unsafe(move: Move) -> list[str]:
    """Everything that makes the move unsafe: each up's diff, then each check."""
    found = [f"up {n}: {p}" for n, up in enumerate(move.ups, 1) for p in problems(up)]
    for name, check in CHECKS.items():
        found += [f"{name}: {p}" for p in check(move)]
    return found
