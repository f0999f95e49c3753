"""Run the whole Pulumi program for one stack in-process, under mocks, and record it.

``run_stack("tier3")`` reads ``Pulumi.tier3.yaml``, runs ``__main__.py`` against a fresh
mock runtime and returns a ``StackRun``: every registered resource (type, name, parent,
inputs with secrets unwrapped, which inputs were secret, resource options) and the stack
outputs, with a small query API in the spirit of AWS CDK's assertions.

The mocks (``tools.mocks``) echo inputs and add realistic computed outputs, so that no
``apply`` in the program sees ``None``.
"""

from __future__ import annotations

import runpy
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks, settings
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY, deserialize_properties

from tools.harness_run import counting_calls, forget_failed_run, run_program
from tools.mocks import AwsMocks
from tools.shared_evaluations import shared_evaluation
from tools.stack_config import (
    PROJECT,
    ROOT,
    after_first_up,
    config_strings,
    config_value,
    project_defaults,
)


def stacks() -> list[str]:
    """Every stack that has a ``Pulumi.<stack>.yaml`` beside the project."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))


def referenced_stacks(root: Path = ROOT) -> list[str]:
    """Stacks another stack reads by StackReference: every regional stack's ``globalStack``
    and every stack in a global stack's ``regions`` (``<region>=<stack>``)."""
    found: set[str] = set()
    for stack in stacks():
        config = (yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text()) or {}).get(
            "config"
        ) or {}
        if config.get(f"{PROJECT}:globalStack"):
            found.add(str(config[f"{PROJECT}:globalStack"]))
        for line in config.get(f"{PROJECT}:regions") or []:
            found.add(str(line).split("=", 1)[-1].split(" ", 1)[0])
    return sorted(found)


@dataclass(frozen=True)
class Options:
    """The resource options the engine received (the mocks' args don't carry them)."""

    protect: bool = False
    ignore_changes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    replace_on_changes: tuple[str, ...] = ()
    additional_secret_outputs: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    """Every resource this one waits for: ``dependsOn`` and those its inputs read."""
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per input (wire name), the resources whose outputs it reads."""
    provider: str = ""
    custom_timeouts: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Resource:
    type: str
    name: str
    urn: str
    id: str
    """The (mock) provider id; other resources' inputs refer to it."""
    parent: str
    custom: bool
    inputs: dict[str, Any]
    """Inputs in camelCase wire names, secrets unwrapped."""
    secret_paths: frozenset[str]
    """Dotted paths of the inputs that were secret (``masterPassword``, ``data.url``)."""
    options: Options
    previous_urns: frozenset[str] = frozenset()
    """URNs this resource answers to: its own and those its aliases (and its ancestors'
    aliases) name, as the engine resolves them."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """What the mock provider returned: the inputs and the computed outputs."""

    @property
    def provider_name(self) -> str:
        """Name of the explicit provider (``aws-us-east-1``), or "" for the default one."""
        # A provider reference is "<provider urn>::<provider id>"; the URN ends in its name.
        ref = self.options.provider
        return ref.split("::")[-2] if ref else ""

    def get(self, path: str, default: Any = None) -> Any:
        """Input at a dotted path: ``res.get("scalingConfig.maxSize")``; list indexes allowed."""
        value: Any = self.inputs
        for part in path.split("."):
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            elif isinstance(value, dict) and part in value:
                value = value[part]
            else:
                return default
        return value


def _matches(actual: Any, expected: Any) -> bool:
    """Deep subset match: dicts may hold more keys, lists must match item by item."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _matches(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_matches(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return (
            isinstance(actual, (int, float)) and not isinstance(actual, bool) and actual == expected
        )
    return bool(actual == expected)


@dataclass
class StackRun:
    stack: str
    config: dict[str, str]
    resources: list[Resource]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str]
    preview: bool = False
    """Evaluated as a first preview: computed outputs unknown."""
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """The data sources the program read (token, arguments), in order."""

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def of_type(self, type_: str) -> list[Resource]:
        """Resources of a type token (``aws:rds/instance:Instance``), in registration order."""
        return [r for r in self.resources if r.type == type_]

    def count(self, type_: str) -> int:
        return len(self.of_type(type_))

    def one(self, type_: str, name: str | None = None) -> Resource:
        """The single resource of a type (optionally with that name); fails otherwise."""
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise AssertionError(
                f"expected one {type_} named {name!r} in {self.stack}, found {names}"
            )
        return found[0]

    def has_properties(self, type_: str, props: Mapping[str, Any]) -> list[Resource]:
        """Resources of a type whose inputs contain ``props`` (deep subset match)."""
        return [r for r in self.of_type(type_) if _matches(r.inputs, dict(props))]

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def attached_to(self, target: Resource, path: str) -> list[Resource]:
        """Resources whose input at ``path`` names ``target`` (its id, as a bucket policy's
        ``bucket`` or a rule's ``securityGroupId`` does)."""
        return [r for r in self.resources if r.get(path) == target.id]


def _secret_paths(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        if value.get(SPECIAL_SIG_KEY) == SPECIAL_SECRET_SIG:
            return {prefix.rstrip(".")} | _secret_paths(value.get("value"), prefix)
        return set().union(*(_secret_paths(v, f"{prefix}{k}.") for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(_secret_paths(v, f"{prefix}{i}.") for i, v in enumerate(value)))
    return set()


def _alias(alias: Any) -> str:
    """An alias as text: its URN, or the parts of its spec that differ (``type=...``, or the
    previous parent as ``parent=<type>::<name>``), e.g. the older API versions
    pulumi-kubernetes aliases every object to."""
    if alias.urn:
        return str(alias.urn)
    spec = alias.spec
    parts = [f"{key}={getattr(spec, key)}" for key in ("name", "type", "stack", "project")]
    if spec.parentUrn:
        parts.append("parent=" + "::".join(spec.parentUrn.split("::")[2:]).split("$")[-1])
    elif spec.noParent:
        parts.append("parent=(stack)")
    return " ".join(p for p in parts if not p.endswith("="))


def _struct(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


@counting_calls
class RecordingMonitor(mocks.MockMonitor):
    """A mock monitor that also records what the engine would see: options and outputs."""

    calls: int
    busy: int

    def __init__(self, mocks_: mocks.Mocks):
        super().__init__(mocks_)
        self.recorded: list[Resource] = []
        self.stack_outputs: dict[str, Any] = {}
        self.stack_secret_outputs: frozenset[str] = frozenset()
        self._previous: dict[str, frozenset[str]] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the engine gives: the parent's whole type chain (the mock keeps only the
        parent's own type), so a move anywhere up the tree changes a URN as it really does."""
        return make_urn(parent, type_, name, stack=pulumi.get_stack(), project=PROJECT)

    def _previous_urns(self, request: Any, urn: str) -> frozenset[str]:
        """Every URN an alias lets this resource take over, combined with every URN its
        parent answers to (the engine's inheritance of aliases by children)."""

        def parents(parent: str) -> frozenset[str]:
            return self._previous.get(parent, frozenset({parent}))

        candidates = [(request.name, request.type, parents(request.parent))]
        found = {urn, *request.aliasURNs}
        for alias in request.aliases:
            if alias.urn:
                found.add(alias.urn)
                continue
            spec = alias.spec
            if spec.noParent:
                old_parents = frozenset({""})
            elif spec.parentUrn:
                old_parents = parents(spec.parentUrn)
            else:
                old_parents = parents(request.parent)
            candidates.append((spec.name or request.name, spec.type or request.type, old_parents))
        stack = pulumi.get_stack()
        for name, type_, old_parents in candidates:
            found.update(
                make_urn(p, type_, name, stack=stack, project=PROJECT) for p in old_parents
            )
        self._previous[urn] = frozenset(found)
        return self._previous[urn]

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        # A resource renamed with an alias keeps its physical id (and autoname): the mocks
        # derive the id from the name it was first deployed with.
        if isinstance(self.mocks, AwsMocks):
            named = [a.spec.name for a in request.aliases if not a.urn and a.spec.name]
            # Registrations run on several threads; each calls the mocks on its own.
            self.mocks.registering.identity = named[0] if named else request.name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            raw = _struct(request.object)
            timeouts = request.customTimeouts
            self.recorded.append(
                Resource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    id=response.id,
                    parent=request.parent,
                    custom=request.custom,
                    inputs=deserialize_properties(raw),
                    secret_paths=frozenset(_secret_paths(raw)),
                    options=Options(
                        protect=bool(request.protect),
                        ignore_changes=tuple(request.ignoreChanges),
                        aliases=tuple(_alias(a) for a in request.aliases)
                        + tuple(request.aliasURNs),
                        retain_on_delete=bool(request.retainOnDelete),
                        delete_before_replace=bool(request.deleteBeforeReplace),
                        replace_on_changes=tuple(request.replaceOnChanges),
                        additional_secret_outputs=tuple(request.additionalSecretOutputs),
                        depends_on=tuple(request.dependencies),
                        property_dependencies={
                            k: tuple(v.urns) for k, v in request.propertyDependencies.items()
                        },
                        provider=request.provider,
                        custom_timeouts={
                            k: getattr(timeouts, k)
                            for k in ("create", "update", "delete")
                            if getattr(timeouts, k)
                        },
                    ),
                    previous_urns=self._previous_urns(request, response.urn),
                    outputs=deserialize_properties(_struct(response.object)),
                )
            )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
        if "::pulumi:pulumi:Stack::" in request.urn:
            raw = _struct(request.outputs)
            self.stack_outputs = deserialize_properties(raw)
            self.stack_secret_outputs = frozenset(p.split(".")[0] for p in _secret_paths(raw))
        return super().RegisterResourceOutputs(request)


def make_urn(parent: str, type_: str, name: str, *, stack: str, project: str) -> str:
    """``urn:pulumi:<stack>::<project>::<parent's type chain>$<type>::<name>``; children of
    the root stack carry no parent type."""
    if parent and "::pulumi:pulumi:Stack::" not in parent:
        type_ = f"{parent.split('::')[2]}${type_}"
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def run_stack(
    stack: str,
    extra_config: Mapping[str, Any] | None = None,
    program: Path = ROOT / "__main__.py",
    *,
    preview: bool = False,
    first_up: bool | None = None,
    root: Path = ROOT,
    deployed: Mapping[str, Any] | None = None,
) -> StackRun:
    """Evaluate the program (``__main__.py``) for ``stack`` under mocks and return what it
    registered.

    The config is what the CLI would hand the program: the stack file's, with every default
    ``Pulumi.yaml`` declares for a key it leaves unset. A committed stack file is where a
    new stack starts; the stack is evaluated as it stands once deployed, with the later steps
    of its first deployment done (``components.config.lifecycle.after_first_up``: the model
    published, a global stack's regions serving), unless ``first_up``: the stack file alone,
    as a brand-new stack's first ``up`` gets it. ``extra_config`` (keys without the project
    prefix) is merged over both, so a test can run a deliberately broken variant of a real
    stack. ``preview`` evaluates it as the first ``pulumi preview`` of a new stack does
    (``first_up`` unless told otherwise): every computed output unknown, so that applies on
    them do not run and policies see unknown inputs. ``root`` is where the stack files are
    read from: another checkout of the project (``tools.diff`` evaluates a base commit's
    program and stack files with this harness).
    """
    config, secret_keys = config_strings(stack, root)
    if not (preview if first_up is None else first_up):
        config |= after_first_up({**project_defaults(root), **config})
    for key, value in (extra_config or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        config[full] = config_value(value)
    # The CLI fills in every project default the stack leaves unset, before the program runs.
    config = {**project_defaults(root), **config}
    this_checkout = root == ROOT and program == ROOT / "__main__.py"
    shared = shared_evaluation(this_checkout, [stack, config, secret_keys, preview, deployed])
    if shared is None:
        return _evaluate(stack, config, secret_keys, program, root, preview, deployed)
    with shared.claimed():
        if (found := shared.read()) is not None:
            return found
        run = _evaluate(stack, config, secret_keys, program, root, preview, deployed)
        shared.keep(run)
        return run


def _evaluate(
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    program: Path,
    root: Path,
    preview: bool,
    deployed: Mapping[str, Any] | None,
) -> StackRun:
    """One evaluation of the program under fresh mocks (run_stack's work)."""
    region = config.get("aws:region", "us-east-1")
    # A fresh runtime per run: reset the root stack, then install new mocks and config.
    settings.ROOT.set(None)
    forget_failed_run()
    monitor = RecordingMonitor(
        AwsMocks(region, preview=preview, stack=stack, deployed=dict(deployed or {}))
    )
    mocks.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys)

    if str(root) not in sys.path:
        sys.path.insert(0, str(root))

    def main() -> None:
        runpy.run_path(str(program), run_name="__main__")
        # set_mocks created the root stack and closed its (empty) outputs at once; register
        # the program's exports the way the engine's run would when the program ends.
        stack_resource = settings.get_root_resource()
        stack_resource._outputs_registered = False  # type: ignore[union-attr]
        stack_resource._finish()  # type: ignore[union-attr]

    run_program(main, monitor)
    twice = sorted(urn for urn, n in Counter(r.urn for r in monitor.recorded).items() if n > 1)
    if twice:
        raise ValueError(f"{stack}: duplicate resource URNs, which the engine refuses: {twice}")
    return StackRun(
        stack=stack,
        config=config,
        resources=list(monitor.recorded),
        outputs=monitor.stack_outputs,
        secret_outputs=monitor.stack_secret_outputs,
        preview=preview,
        invokes=list(monitor.mocks.invokes) if isinstance(monitor.mocks, AwsMocks) else [],
    )
