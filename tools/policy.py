"""Apply the whole policy pack to a stack offline, under the mocks harness.

    python -m tools.policy tier3                 # human-readable, exit 1 on MANDATORY
    python -m tools.policy tier3 --json          # machine-readable
    python -m tools.policy --all --format sarif  # SARIF 2.1.0 for GitHub code scanning
    python -m tools.policy tier3 --config policies/policy-config.sample.json
    python -m tools.policy --all                 # every Pulumi.<stack>.yaml

``--config`` takes the same JSON as ``pulumi preview --policy-pack-config``: per policy name
either an enforcement level (``"advisory"``) or an object with ``enforcementLevel`` and config
properties; the key ``all`` sets the level of every policy. Config properties are merged over
each policy's schema defaults, as the engine does.

Waivers of ``policies/waivers.yaml`` apply here as in the pack (``policies/rules/waivers.py``):
a waived violation is not reported until the waiver expires; the text output lists the
stack's waivers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pulumi.runtime import mocks
from pulumi.runtime.rpc import UNKNOWN
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from policies.rules import ALL_POLICIES, waivers
from tools.harness import Resource, StackRun, run_stack, stacks
from tools.mocks import AwsMocks

PREVIEW = "not run during preview"
LEVEL_ORDER = {"mandatory": 0, "remediate": 0, "advisory": 1, PREVIEW: 2}


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    """``mandatory`` or ``advisory`` (remediate is reported as mandatory, like the engine), or
    ``PREVIEW`` for a policy that read a value unknown during a preview."""
    message: str
    urn: str | None
    resource_type: str | None
    resource_name: str | None


def _level(policy: Policy, pack_config: Mapping[str, Any]) -> EnforcementLevel:
    """The effective level: the policy's entry, else ``all``, else the policy's own level."""
    for key in (policy.name, "all"):
        entry = pack_config.get(key)
        level = entry.get("enforcementLevel") if isinstance(entry, Mapping) else entry
        if level:
            return EnforcementLevel(str(level))
    return policy.enforcement_level or EnforcementLevel.ADVISORY


def policy_config(policy: Policy, pack_config: Mapping[str, Any]) -> dict[str, Any]:
    """Schema defaults overlaid with the policy's properties from the pack config."""
    config: dict[str, Any] = {}
    if policy.config_schema is not None:
        for key, schema in policy.config_schema.properties.items():
            if "default" in schema:
                config[key] = schema["default"]
    entry = pack_config.get(policy.name)
    if isinstance(entry, Mapping):
        config.update({k: v for k, v in entry.items() if k != "enforcementLevel"})
    return config


def _options(res: Resource) -> PolicyResourceOptions:
    o = res.options
    return PolicyResourceOptions(
        protect=o.protect,
        ignore_changes=list(o.ignore_changes),
        delete_before_replace=o.delete_before_replace,
        aliases=list(o.aliases),
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=list(o.additional_secret_outputs),
        parent=res.parent or None,
    )


def _providers(resources: Sequence[Resource]) -> dict[str, PolicyProviderResource]:
    """Explicit providers by URN (a resource's provider reference is ``<urn>::<id>``)."""
    return {
        r.urn: PolicyProviderResource(r.type, r.inputs, r.urn, r.name)
        for r in resources
        if r.type.startswith("pulumi:providers:")
    }


def _outputs(res: Resource, region: str, preview: bool) -> dict[str, Any]:
    """What the engine hands stack policies: the resource's state (the mocks' echo of the
    inputs plus the computed outputs, ``id`` included; unknown in a first preview)."""
    args = mocks.MockResourceArgs(res.type, res.name, dict(res.inputs), "", "", res.custom)
    rid, state = AwsMocks(region, preview=preview).new_resource(args)
    return unknown_checking_proxy({**state, "id": rid or UNKNOWN})


def _validate(
    policy: ResourceValidationPolicy | StackValidationPolicy,
    args: Any,
    report: Any,
    preview_note: Any,
) -> None:
    """Run one policy as the engine does: one that reads a value unknown at preview cannot run
    then, which the engine reports as an advisory note, not a violation."""
    try:
        policy.validate(args, report)
    except UnknownValueError as err:
        preview_note(f"can't run policy '{policy.name}' during preview: {err.message}")


def check_resources(
    resources: Sequence[Resource],
    config: Mapping[str, Any] | None = None,
    region: str = "us-east-1",
    policies: Sequence[Policy] = ALL_POLICIES,
    preview: bool = False,
) -> list[Violation]:
    """Apply ``policies`` to recorded resources; MANDATORY violations first. ``preview``:
    the resources come from a first preview (unknown values raise when a policy reads them)."""
    pack_config = dict(config or {})
    providers = _providers(resources)
    by_urn = {r.urn: r for r in resources}
    violations: list[Violation] = []

    def noter(policy: Policy, default: Resource | None) -> Any:
        return collector(policy, None, default)

    def collector(policy: Policy, level: EnforcementLevel | None, default: Resource | None) -> Any:
        """Records a violation at ``level``; ``None`` records a policy the engine could not run
        during a preview (an advisory note there, not a violation)."""
        shown = PREVIEW if level is None else level.value
        if level == EnforcementLevel.REMEDIATE:
            shown = "mandatory"

        def report(message: str, urn: str | None = None) -> None:
            target = by_urn.get(urn) if urn else default
            violations.append(
                Violation(
                    policy=policy.name,
                    level=shown,
                    message=message,
                    urn=target.urn if target else urn,
                    resource_type=target.type if target else None,
                    resource_name=target.name if target else None,
                )
            )

        return report

    stack_resources: list[PolicyResource] = []
    by_policy_urn: dict[str, PolicyResource] = {}
    for res in resources:
        ref = res.options.provider
        provider = providers.get(ref.rsplit("::", 1)[0]) if ref else None
        pres = PolicyResource(
            res.type,
            # A resource of CloudFront's us-east-1 provider lives there (its ARN says so).
            _outputs(
                res, str((provider.props if provider else {}).get("region") or region), preview
            ),
            res.urn,
            res.name,
            _options(res),
            provider,
            None,
            [],
            {},
        )
        by_policy_urn[res.urn] = pres
        stack_resources.append(pres)
    for res, pres in zip(resources, stack_resources, strict=True):
        pres.parent = by_policy_urn.get(res.parent)
        pres.dependencies = [by_policy_urn[d] for d in res.options.depends_on if d in by_policy_urn]

    for policy in policies:
        level = _level(policy, pack_config)
        if level == EnforcementLevel.DISABLED:
            continue
        cfg = policy_config(policy, pack_config)
        if isinstance(policy, ResourceValidationPolicy):
            for res in resources:
                if not res.custom:
                    continue  # components have no cloud properties of their own to judge
                provider = by_policy_urn[res.urn].provider
                args = ResourceValidationArgs(
                    res.type,
                    unknown_checking_proxy(dict(res.inputs)),
                    res.urn,
                    res.name,
                    _options(res),
                    provider,
                    cfg,
                )
                _validate(policy, args, collector(policy, level, res), noter(policy, res))
        elif isinstance(policy, StackValidationPolicy):
            stack_args = StackValidationArgs(stack_resources, cfg)
            _validate(policy, stack_args, collector(policy, level, None), noter(policy, None))
    violations.sort(key=lambda v: LEVEL_ORDER.get(v.level, 2))
    return violations


def check_run(run: StackRun, config: Mapping[str, Any] | None = None) -> list[Violation]:
    region = run.config.get("aws:region", "us-east-1")
    return check_resources(run.resources, config, region, preview=run.preview)


def check_stack(
    stack: str,
    extra_config: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    preview: bool = False,
) -> list[Violation]:
    """Run ``stack`` under mocks (``extra_config`` over its stack file) and apply the pack
    (``config`` as for ``--policy-pack-config``); ``preview`` as a new stack's first preview."""
    return check_run(run_stack(stack, extra_config, preview=preview), config)


def render(stack: str, violations: Sequence[Violation], seconds: float) -> str:
    lines = []
    for level in ("mandatory", "advisory", PREVIEW):
        found = [v for v in violations if v.level == level]
        if not found:
            continue
        lines.append(f"{level.upper()} ({len(found)})")
        for v in found:
            where = f"{v.resource_type} {v.resource_name}" if v.resource_name else "stack"
            lines.append(f"  [{v.policy}] {where}\n      {v.message}")
    mandatory = sum(v.level == "mandatory" for v in violations)
    advisory = sum(v.level == "advisory" for v in violations)
    not_run = sum(v.level == PREVIEW for v in violations)
    verdict = "FAILED" if mandatory else "passed"
    lines.append(
        f"policy check {verdict} for stack {stack}: {mandatory} mandatory, {advisory} advisory "
        f"violation(s), {len(ALL_POLICIES)} policies"
        + (f", {not_run} checks decided at apply time" if not_run else "")
        + f", {seconds:.1f}s"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.policy", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("stack", nargs="?", help="stack name (Pulumi.<stack>.yaml)")
    parser.add_argument("--all", action="store_true", help="check every stack")
    parser.add_argument(
        "--format", choices=("text", "json", "sarif"), default="text", help="output format"
    )
    parser.add_argument("--json", action="store_true", help="the same as --format json")
    parser.add_argument(
        "--first-preview",
        action="store_true",
        help="evaluate as the first preview of a new stack (computed values unknown)",
    )
    parser.add_argument(
        "--config", type=Path, help="policy pack config JSON (--policy-pack-config)"
    )
    args = parser.parse_args(argv)
    if bool(args.stack) == args.all:
        parser.error("name one stack or pass --all")
    output = "json" if args.json else args.format
    config = json.loads(args.config.read_text()) if args.config else None
    failed = False
    results: dict[str, list[Violation]] = {}
    for stack in stacks() if args.all else [args.stack]:
        started = time.monotonic()
        violations = check_stack(stack, config=config, preview=args.first_preview)
        elapsed = time.monotonic() - started
        failed = failed or any(v.level == "mandatory" for v in violations)
        results[stack] = violations
        if output == "text":
            print(render(stack, violations, elapsed) + waived(stack))
    if output == "json":
        docs = {stack: [asdict(v) for v in found] for stack, found in results.items()}
        print(json.dumps(docs if args.all else docs[args.stack], indent=2))
    elif output == "sarif":
        from tools import sarif

        print(json.dumps(sarif.document(results), indent=2))
    return 1 if failed else 0


def waived(stack: str) -> str:
    """The stack's waivers, for the text output (a reviewer sees what is not checked)."""
    prefix = f"urn:pulumi:{stack}::"
    return "".join(
        f"\nWAIVED until {w.expires.isoformat()}: [{w.policy}] {w.urn}\n      {w.reason} "
        f"(approved by {w.approved_by})" + (" EXPIRED" if w.expired() else "")
        for w in waivers.active()
        if w.urn.startswith(prefix)
    )


if __name__ == "__main__":
    sys.exit(main())
