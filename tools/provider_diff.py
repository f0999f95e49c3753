"""How the pinned providers compare a resource's old and new inputs, beyond the replacement
tables: what ``tools.diff`` applies before it calls a difference a change.

- **An Optional+Computed input the program stops setting keeps the state's value**: no change,
  and so no replacement, even where the attribute forces one when it is set (the SDK's
  ``schemaMap.diffString``: ``if removed && schema.Computed { return nil }``, ``diffList`` and
  ``diffSet`` likewise; terraform-plugin-sdk v2.39.0 ``helper/schema/schema.go``; the bridge's
  ``proposedNew`` takes the prior value of a Computed attribute whose config is null,
  pulumi-terraform-bridge ``pkg/tfshim/sdk-v2/proposed_new.go``; discussed in
  pulumi-terraform-bridge issue #2152, kept on purpose). ``""`` is a value, not "unset": an
  empty string sent to a ForceNew attribute replaces. The per-type lists are the tables'
  ``optional_computed`` (``tools/replacements/aws.json``).
- **A set is compared by its key, not by position**: an RDS parameter group's ``parameters``
  by parameter name (``parameters[max_connections].value``), as Terraform hashes the set.
- **pulumi-aws's parameter-group customize diff**: a change of a parameter's ``applyMethod``
  alone, its value unchanged, is no change; AWS would not register it (pulumi-aws
  ``provider/pkg/rds/parameter_group.go``, ``parameterGroupCustomizeDiff``).
- A changed value of a ``pending-reboot`` (static) parameter is noted: RDS applies it at the
  instance's next reboot.
"""

from __future__ import annotations

import re
from typing import Any

from tools import replacements
from tools.flat import leaves
from tools.harness import Resource

PARAMETER_GROUPS = (
    "aws:rds/parameterGroup:ParameterGroup",
    "aws:rds/clusterParameterGroup:ClusterParameterGroup",
)
KEYED_SETS = {type_: ("parameters", "name") for type_ in PARAMETER_GROUPS}
"""Set-valued inputs compared item by item under a key: type -> (input, key field)."""
PENDING_REBOOT = "static: applied at the instance's next reboot (pending-reboot)"

_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[[^\]]*\])*)")


def flattened(resource: Resource) -> dict[str, Any]:
    """The inputs as ``path -> leaf value`` (``tagsAll``, the provider's merge of ``tags``
    and the default tags, left out), set items under their key."""
    inputs = {k: v for k, v in resource.inputs.items() if k != "tagsAll"}
    keyed = KEYED_SETS.get(resource.type)
    if keyed is None or not isinstance(inputs.get(keyed[0]), list):
        return dict(leaves(inputs))
    field, key = keyed
    items = inputs.pop(field)
    shown = dict(leaves(inputs))
    for item in items:
        rest = {k: v for k, v in item.items() if k != key}
        shown.update(leaves(rest, f"{field}[{item.get(key)}]"))
    return shown


def _segments(path: str) -> list[tuple[str, str]]:
    """``productionVariants[0].variantName`` -> [(productionVariants, [0]), (variantName, )]."""
    return [(m.group(1), m.group(2)) for m in _SEGMENT.finditer(path)]


def _lookup(resource: Resource, segments: list[tuple[str, str]]) -> tuple[bool, Any]:
    """(known, value) at a concrete path; ``known`` is False where the path goes through an
    index this lookup cannot follow (a keyed set item): treated as set."""
    value: Any = resource.inputs
    for name, indexes in segments:
        value = value.get(name) if isinstance(value, dict) else None
        for index in re.findall(r"\[([^\]]*)\]", indexes):
            if not index.isdigit():
                return False, None
            value = (
                value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
            )
    return True, value


def kept_from_state(old: Resource, new: Resource, path: str) -> bool:
    """Whether the change at leaf ``path`` is an Optional+Computed input the head no longer
    sets while the base did: the provider keeps the state's value, so nothing changes."""
    rule = replacements.rule(new.type)
    if rule is None:
        return False
    segments = _segments(path)
    for attribute in rule.optional_computed:
        names = attribute.split(".")
        if [name for name, _ in segments[: len(names)]] != names:
            continue
        # The attribute itself, with the indexes of the blocks above it (not its own).
        here = [*segments[: len(names) - 1], (names[-1], "")]
        known_new, now = _lookup(new, here)
        known_old, was = _lookup(old, here)
        if known_new and known_old and now is None and was is not None:
            return True
    return False


def suppressed(type_: str, path: str, before: dict[str, Any], after: dict[str, Any]) -> bool:
    """A change the provider's customize diff clears: a parameter's ``applyMethod`` alone."""
    if type_ not in PARAMETER_GROUPS or not path.endswith("].applyMethod"):
        return False
    value = path[: -len("applyMethod")] + "value"
    return value in before and value in after and before[value] == after[value]


def note(type_: str, path: str, after: dict[str, Any]) -> str | None:
    """What an operator must know about this change (a static parameter's pending reboot)."""
    if type_ in PARAMETER_GROUPS and path.endswith("].value"):
        method = after.get(path[: -len("value")] + "applyMethod")
        if method == "pending-reboot":
            return PENDING_REBOOT
    return None
