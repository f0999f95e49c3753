"""Rebuild the replacement tables from the providers' own sources.

    python -m tools.replacements.refresh kubernetes <pulumi-kubernetes checkout> [--ref v4.34.2]
    python -m tools.replacements.refresh aws <terraform-provider-aws checkout> [--ref v6.N.M]

Which sources, at which version:

- **kubernetes**: pulumi-kubernetes' ``provider/pkg/provider/diff.go`` (its ``forceNew``
  table: the fields the provider replaces on, per group/version/kind, plus ``.metadata.name``
  and ``.metadata.namespace`` for every object) at the tag of the pinned pulumi-kubernetes.
- **aws**: pulumi-aws bridges terraform-provider-aws; the upstream commit of a release is
  its ``upstream`` submodule (``git -C pulumi-aws ls-tree v7.51.1 upstream``). In the
  upstream checkout at that commit, every attribute with ``ForceNew: true`` (SDKv2) or a
  ``RequiresReplace`` plan modifier (plugin framework) of the resources the program uses.
  Terraform's snake_case names become Pulumi's camelCase; nested blocks become dotted paths.

The program's resource types and their Terraform names are the table's own ``types`` keys
and ``terraform`` fields; a new type is added there by hand (``{"terraform": "aws_x"}``),
then refreshed. Where pulumi-aws names a top-level input differently from Terraform, the
entry's ``renames`` says so (``{"alarm_name": "name"}``); the test that every path names an
input of the pinned SDK catches a missing one. Only ``replace`` / ``replace_if`` /
``optional_computed`` lists and the provenance are rewritten.

``optional_computed`` (SDKv2 resources): every attribute with both ``Optional: true`` and
``Computed: true``; the plugin SDK keeps the state's value of such an attribute when the
program stops setting it (``tools.provider_diff``). Plugin-framework resources get none: the
framework marks a dropped Computed attribute unknown instead, unless a plan modifier keeps it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.replacements import TABLES

# -- Go source scanning ------------------------------------------------------------------------


def _strip_comments(text: str) -> str:
    """Go source without // and /* */ comments (string and raw-string literals kept)."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c in '"`':
            end = _literal_end(text, i)
            out.append(text[i:end])
            i = end
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
        elif text.startswith("/*", i):
            i = text.find("*/", i) + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _literal_end(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while text[i] != quote:
        i += 2 if quote == '"' and text[i] == "\\" else 1
    return i + 1


def _block_end(text: str, open_brace: int) -> int:
    """Index just past the ``}`` matching the ``{`` at ``open_brace``."""
    depth, i = 0, open_brace
    while i < len(text):
        c = text[i]
        if c in '"`':
            i = _literal_end(text, i)
            continue
        depth += (c == "{") - (c == "}")
        i += 1
        if depth == 0:
            return i
    raise ValueError("unbalanced braces")


_KEYED = re.compile(r'("([a-z0-9_]+)"|names\.Attr(\w+))\s*:\s*[\w.&\[\]*]*\{')


def _entries(body: str, names: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """The keyed schema entries directly inside ``body``: (key, own text, nested text)."""
    spans: list[tuple[str, int, int]] = []
    for m in _KEYED.finditer(body):
        if spans and m.start() < spans[-1][2]:
            continue  # inside the previous entry: one of its children
        key = m.group(2) or _attr(names, m.group(3))
        spans.append((key, m.end() - 1, _block_end(body, m.end() - 1)))
    for key, start, end in spans:
        inner = body[start + 1 : end - 1]
        nested = [(c.start(), _block_end(inner, c.end() - 1)) for c in _KEYED.finditer(inner)]
        own, last = [], 0
        for s, e in _outermost(nested):
            own.append(inner[last:s])
            last = e
        own.append(inner[last:])
        yield key, "".join(own), inner


def _outermost(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    kept: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if not kept or s >= kept[-1][1]:
            kept.append((s, e))
    return kept


def _attr(names: dict[str, str], constant: str) -> str:
    if constant not in names:
        raise LookupError(f"names.Attr{constant} is not in names/attr_consts_gen.go")
    return names[constant]


def force_new_paths(schema_text: str, names: dict[str, str], prefix: str = "") -> list[str]:
    """Terraform attribute paths (``s3_import.bucket_name``) that force a new resource."""
    found = []
    for key, own, inner in _entries(schema_text, names):
        path = f"{prefix}{key}"
        if re.search(r"ForceNew:\s*true", own) or "RequiresReplace" in own:
            found.append(path)
        else:
            found += force_new_paths(inner, names, f"{path}.")
    return found


def optional_computed_paths(schema_text: str, names: dict[str, str], prefix: str = "") -> list[str]:
    """Terraform attribute paths both Optional and Computed (a block that is covers its
    children); none for a plugin-framework schema (see the module docstring)."""
    if prefix == "" and "map[string]*schema.Schema" not in schema_text:
        return []
    found = []
    for key, own, inner in _entries(schema_text, names):
        path = f"{prefix}{key}"
        if re.search(r"Optional:\s*true", own) and re.search(r"Computed:\s*true", own):
            found.append(path)
        else:
            found += optional_computed_paths(inner, names, f"{path}.")
    return found


def conditional_paths(schema_text: str) -> list[str]:
    """Attributes a CustomizeDiff replaces in some cases only (``customdiff.ForceNewIf``)."""
    found = re.findall(r'customdiff\.ForceNewIf(?:Change)?\(\s*"([a-z0-9_.]+)"', schema_text)
    return sorted(set(found))


def terraform_schema(checkout: Path, tf_name: str) -> str:
    """The schema text of one Terraform resource: the body of the function that follows its
    ``@SDKResource("aws_x")`` / ``@FrameworkResource("aws_x")`` annotation."""
    pattern = re.compile(rf'@(SDK|Framework)Resource\("{re.escape(tf_name)}"')
    for path in sorted((checkout / "internal" / "service").rglob("*.go")):
        if path.name.endswith("_test.go"):
            continue
        text = path.read_text()
        m = pattern.search(text)
        if m:
            code = _strip_comments(text[m.end() :])
            func = code.index("{", code.index("func "))
            body = code[func : _block_end(code, func)]
            if m.group(1) == "Framework":  # the schema lives in the type's Schema method
                schema = _framework_schema(_strip_comments(text))
                if not schema:
                    raise LookupError(f"{tf_name}: no Schema method in {path}; read it by hand")
                body += schema
            return body
    raise LookupError(f"{tf_name}: no @SDKResource/@FrameworkResource annotation in {checkout}")


def _framework_schema(code: str) -> str:
    m = re.search(r"\)\s*Schema\(ctx context\.Context,[^{]*\{", code)
    return code[m.end() - 1 : _block_end(code, m.end() - 1)] if m else ""


def attr_names(checkout: Path) -> dict[str, str]:
    """``names.AttrIdentifier`` constants -> their Terraform names."""
    consts = checkout / "names" / "attr_consts_gen.go"
    if not consts.exists():
        return {}
    return dict(re.findall(r'Attr(\w+)\s*=\s*"([a-z0-9_]+)"', consts.read_text()))


def pulumi_path(tf_path: str, renames: dict[str, str] | None = None) -> str:
    """``s3_import.bucket_name`` -> ``s3Import.bucketName``; ``renames`` holds the top-level
    names pulumi-aws gives differently (``alarm_name`` -> ``name``): the table's ``renames``."""
    first, *rest = tf_path.split(".")
    parts = [(renames or {}).get(first, first), *rest]
    return ".".join(re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), p) for p in parts)


# -- pulumi-kubernetes' forceNew table -----------------------------------------------------------


class _GoValues:
    """Evaluates the composite literals of pulumi-kubernetes' diff.go: string lists built
    from literals, ``prefix + ".x"``, ``append(a, f(...)...)``, variables and helper funcs."""

    def __init__(self, code: str):
        self.code = code
        self.vars = {m.group(1): m.end() for m in re.finditer(r"^var (\w+) = ", code, re.MULTILINE)}
        self.funcs = {
            m.group(1): (m.group(2), m.end())
            for m in re.finditer(
                r"^func (\w+)\((\w+) (?:\.\.\.)?string\) properties \{", code, re.M
            )
        }

    def value(self, name: str) -> Any:
        return self._expr(self.code, self.vars[name], {})[0]

    def _expr(self, text: str, i: int, env: dict[str, list[str]]) -> tuple[Any, int]:
        i = self._skip(text, i)
        if text[i] == '"':
            end = _literal_end(text, i)
            value: Any = [json.loads(text[i:end])]
            i = end
        elif text.startswith("append(", i):
            first, i = self._expr(text, i + len("append("), env)
            i = self._skip(text, i) + 1  # ,
            rest, i = self._expr(text, i, env)
            value = first + rest
            i = self._skip(text, i + 3 if text.startswith("...", i) else i)
            i = self._skip(text, i) + 1  # )
        else:
            m = re.compile(r"[\w.]+").match(text, i)
            assert m, f"unexpected Go at {text[i : i + 40]!r}"
            word, i = m.group(0), m.end()
            if text[i] == "{":
                return self._composite(text, i, env)
            if text[i] == "(":
                args, i = self._call_args(text, i, env)
                value = self._call(word, args)
            elif word in env:
                value = env[word]
            else:
                value = self.value(word)
        j = self._skip(text, i)
        if text[j] == "+":  # prefix + ".name"
            right, i = self._expr(text, j + 1, env)
            value = [a + b for a in value for b in right]
        if text.startswith("...", self._skip(text, i)):
            i = self._skip(text, i) + 3
        return value, i

    def _composite(self, text: str, i: int, env: dict[str, list[str]]) -> tuple[Any, int]:
        end = _block_end(text, i)
        i += 1
        items: list[str] = []
        mapping: dict[str, Any] = {}
        while self._skip(text, i) < end - 1:
            value, i = self._expr(text, i, env)
            i = self._skip(text, i)
            if text[i] == ":":
                mapping[value[0]], i = self._expr(text, i + 1, env)
                i = self._skip(text, i)
            else:
                items += value
            if text[i] == ",":
                i += 1
        return (mapping if mapping else items), end

    def _call_args(self, text: str, i: int, env: dict[str, list[str]]) -> tuple[list[str], int]:
        args: list[str] = []
        i += 1
        while text[self._skip(text, i)] != ")":
            value, i = self._expr(text, i, env)
            args += value
            i = self._skip(text, i)
            if text[i] == ",":
                i += 1
        return args, self._skip(text, i) + 1

    def _call(self, func: str, args: list[str]) -> list[str]:
        param, start = self.funcs[func]
        body = self.code[start : _block_end(self.code, start - 1)]
        if "for _, prefix := range" in body:  # the variadic helper: one list per prefix
            inner = body.index("properties{", body.index("range"))
            return [v for a in args for v in self._expr(body, inner, {"prefix": [a]})[0]]
        ret = body.index("return ") + len("return ")
        return list(self._expr(body, ret, {param: args[:1]})[0])

    @staticmethod
    def _skip(text: str, i: int) -> int:
        while i < len(text) and text[i] in " \t\n\r":
            i += 1
        return i


def kubernetes_rules(diff_go: str) -> dict[str, dict[str, list[str]]]:
    """``{"apps/v1:Deployment": {"replace": [...]}, "core/v1:Secret": {"replace": [...],
    "unless_mutable": ["data", ...]}, ...}`` from diff.go's text."""
    code = _strip_comments(diff_go)
    values = _GoValues(code)
    groups = values.value("forceNew")
    metadata = values._call("metadataForceNewProperties", [".metadata"])
    rules: dict[str, dict[str, list[str]]] = {}
    for group, versions in groups.items():
        for version, kinds in versions.items():
            for kind, props in kinds.items():
                key = f"{group or 'core'}/{version}:{kind}"
                rules[key] = {"replace": sorted({p.lstrip(".") for p in metadata + props})}
    # Secrets' and ConfigMaps' data: replaced unless the provider makes them mutable.
    for kind, check in (("Secret", "IsSecret"), ("ConfigMap", "IsConfigMap")):
        m = re.search(rf"clients\.{check}\(obj\)[^{{]*\{{\s*props = append\(props, ", code)
        if m:
            data = values._expr(code, m.end(), {})[0]
            default = {"replace": sorted(p.lstrip(".") for p in metadata)}
            entry = rules.setdefault(f"core/v1:{kind}", default)
            entry["unless_mutable"] = sorted(p.lstrip(".") for p in data)
    return rules


# -- the tables -------------------------------------------------------------------------------


def _head(checkout: Path, ref: str | None) -> str:
    if ref:
        return ref
    out = subprocess.run(
        ["git", "-C", str(checkout), "describe", "--tags", "--always"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def refresh_kubernetes(checkout: Path, ref: str | None) -> None:
    path = TABLES / "kubernetes.json"
    doc = json.loads(path.read_text())
    rules = kubernetes_rules((checkout / "provider/pkg/provider/diff.go").read_text())
    metadata = ["metadata.name", "metadata.namespace"]
    for type_, entry in doc["types"].items():
        if not type_.startswith("kubernetes:") or type_.startswith("kubernetes:helm.sh"):
            continue
        group_version_kind = type_.split(":", 1)[1]
        found = rules.get(group_version_kind, {"replace": metadata})
        mutable = [p for p in found.get("unless_mutable", []) if p not in found["replace"]]
        entry["replace"] = found["replace"]
        if mutable:
            entry["replace_unless_mutable"] = mutable
    _stamp(doc, "pulumi/pulumi-kubernetes provider/pkg/provider/diff.go", _head(checkout, ref))
    path.write_text(json.dumps(doc, indent=2) + "\n")


def refresh_aws(checkout: Path, ref: str | None) -> None:
    path = TABLES / "aws.json"
    doc = json.loads(path.read_text())
    names = attr_names(checkout)
    for entry in doc["types"].values():
        if "terraform" in entry:
            schema_text = terraform_schema(checkout, entry["terraform"])
            tf_paths = force_new_paths(schema_text, names)
            renames = entry.get("renames", {})
            entry["replace"] = sorted(pulumi_path(p, renames) for p in tf_paths if p != "region")
            kept = optional_computed_paths(schema_text, names)
            entry["optional_computed"] = sorted(
                pulumi_path(p, renames) for p in kept if p not in ("region", "tags_all")
            )
            entry.pop("optional_computed_source", None)
            known = entry.get("replace_if", {})
            conditional = {
                pulumi_path(p, renames): known.get(
                    pulumi_path(p, renames), "a CustomizeDiff ForceNewIf case"
                )
                for p in conditional_paths(schema_text)
            }
            if conditional:
                entry["replace_if"] = conditional
    _stamp(doc, "hashicorp/terraform-provider-aws internal/service/**", _head(checkout, ref))
    path.write_text(json.dumps(doc, indent=2) + "\n")


def _stamp(doc: dict[str, Any], source: str, ref: str) -> None:
    doc["provenance"].update(
        source=source,
        ref=ref,
        date=datetime.date.today().isoformat(),
        verified="generated by tools/replacements/refresh.py",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("provider", choices=["aws", "kubernetes"])
    parser.add_argument("checkout", type=Path, help="a checkout of the provider's source")
    parser.add_argument("--ref", help="the tag or commit checked out (default: git describe)")
    args = parser.parse_args(argv)
    if args.provider == "aws":
        refresh_aws(args.checkout, args.ref)
    else:
        refresh_kubernetes(args.checkout, args.ref)
    print(f"wrote tools/replacements/{args.provider}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
