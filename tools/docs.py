"""Reference of the components' inputs and outputs, generated from their source.

    python -m tools.docs            # write docs/components.md
    python -m tools.docs --check    # exit 1 when docs/components.md is out of date

Every module under ``components/`` is imported (packages included); each
``pulumi.ComponentResource`` subclass defined there gets a section: its type token (the string
literal its constructor hands to ``super().__init__``), its module, its class docstring, a
table of inputs (the fields of the dataclass its ``args`` parameter is annotated with) and a
table of outputs (the attributes annotated in its class body). Dataclasses of the package that
an Args field refers to (the catalog's tier slices, the contract's bundles...) are listed
once, under "Shared types". Descriptions are the attribute docstrings (a string literal on the
line after a field), which exist only in the source: they are read with ``ast``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "components"
OUTPUT = ROOT / "docs" / "components.md"

_PRIMITIVES = (type(None), bool, int, float, str)
_FACTORIES: tuple[type, ...] = (dict, list, set, tuple, frozenset)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)


@dataclass(frozen=True)
class Row:
    """One input or output of a table."""

    name: str
    type: str
    """The annotation as written in the source, whitespace collapsed."""
    description: str
    """The attribute docstring on one line; empty when there is none."""
    default: str | None = None
    """Markdown of the default (inputs only); None for a required input."""


@dataclass(frozen=True)
class TypeDoc:
    """A dataclass documented in a table: a component's Args or a shared type."""

    name: str
    module: str
    path: str
    doc: str
    rows: tuple[Row, ...]
    referenced_by: tuple[str, ...] = ()
    """``Owner.field`` of every field that refers to the type (shared types only)."""


@dataclass(frozen=True)
class ComponentDoc:
    name: str
    module: str
    path: str
    type_token: str | None
    doc: str
    args: TypeDoc | None
    outputs: tuple[Row, ...]


@dataclass(frozen=True)
class Reference:
    components: tuple[ComponentDoc, ...]
    shared: tuple[TypeDoc, ...]

    def missing_docstrings(self) -> list[str]:
        """``module: Class.attribute (what)`` of every Args field and output without one."""
        missing: list[str] = []
        for comp in self.components:
            if comp.args is not None:
                missing += [
                    f"{comp.args.path}: {comp.args.name}.{row.name} (input of {comp.name})"
                    for row in comp.args.rows
                    if not row.description
                ]
            missing += [
                f"{comp.path}: {comp.name}.{row.name} (output)"
                for row in comp.outputs
                if not row.description
            ]
        return missing


# -- discovery -------------------------------------------------------------------------------


def _modules(package: str) -> Iterator[types.ModuleType]:
    """The package and every module below it, subpackages included, in name order."""
    pkg = importlib.import_module(package)
    yield pkg
    paths = getattr(pkg, "__path__", None)
    if paths is None:
        return
    for info in sorted(pkgutil.iter_modules(paths), key=lambda m: m.name):
        name = f"{package}.{info.name}"
        if info.ispkg:
            yield from _modules(name)
        else:
            yield importlib.import_module(name)


def _in_package(obj: object, package: str) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module == package or module.startswith(package + ".")


class _Sources:
    """Parsed source of each module, read once per rendering."""

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[str, ast.Module] | None] = {}

    def module(self, module_name: str) -> tuple[str, ast.Module] | None:
        if module_name not in self._parsed:
            module = sys.modules.get(module_name)
            file = getattr(module, "__file__", None)
            if file is None or not file.endswith(".py"):
                self._parsed[module_name] = None
            else:
                text = Path(file).read_text(encoding="utf-8")
                self._parsed[module_name] = (text, ast.parse(text, filename=file))
        return self._parsed[module_name]

    def class_def(self, cls: type) -> tuple[str, ast.ClassDef] | None:
        """The class statement of ``cls`` (found through its qualified name) and its source."""
        parsed = self.module(cls.__module__)
        if parsed is None:
            return None
        text, node = parsed
        body: list[ast.stmt] = node.body
        found: ast.ClassDef | None = None
        for part in cls.__qualname__.split("."):
            found = next((s for s in body if isinstance(s, ast.ClassDef) and s.name == part), None)
            if found is None:
                return None
            body = found.body
        return (text, found) if found is not None else None


@dataclass
class _Attribute:
    annotation: ast.expr
    type: str
    doc: str
    value: ast.expr | None


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _annotated(text: str, class_def: ast.ClassDef) -> dict[str, _Attribute]:
    """Every ``name: type`` of a class body with the string literal that follows it."""
    attributes: dict[str, _Attribute] = {}
    body = class_def.body
    for i, stmt in enumerate(body):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        doc = ""
        following = body[i + 1] if i + 1 < len(body) else None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            doc = inspect.cleandoc(following.value.value)
        written = ast.get_source_segment(text, stmt.annotation) or ast.unparse(stmt.annotation)
        attributes[stmt.target.id] = _Attribute(
            stmt.annotation, _one_line(written), doc, stmt.value
        )
    return attributes


def _attributes(cls: type, package: str, sources: _Sources) -> dict[str, _Attribute]:
    """Annotated attributes of ``cls`` and of its bases in the package, the nearest winning."""
    merged: dict[str, _Attribute] = {}
    for klass in reversed(cls.__mro__):
        if not _in_package(klass, package):
            continue
        found = sources.class_def(klass)
        if found is not None:
            merged.update(_annotated(*found))
    return merged


def _class_doc(cls: type, sources: _Sources) -> str:
    # Not cls.__doc__: dataclasses invent one, and subclasses inherit their base's.
    found = sources.class_def(cls)
    return _one_line(ast.get_docstring(found[1])) if found is not None else ""


# -- type token -----------------------------------------------------------------------------


def _string_constant(node: ast.expr, scopes: list[list[ast.stmt]]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    name = node.id if isinstance(node, ast.Name) else None
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        name = node.attr if node.value.id in ("self", "cls") else None
    if name is None:
        return None
    for body in scopes:
        for stmt in body:
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(stmt, ast.Assign):
                targets, value = stmt.targets, stmt.value
            elif isinstance(stmt, ast.AnnAssign):
                targets, value = [stmt.target], stmt.value
            if (
                any(isinstance(t, ast.Name) and t.id == name for t in targets)
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                return value.value
    return None


def _type_token(cls: type, sources: _Sources) -> str | None:
    """The type token of ``super().__init__("ssp:...", ...)`` (or of an explicit
    ``Base.__init__(self, "ssp:...", ...)``) in the class's constructor, when it is a string
    literal or a constant of the class or module."""
    found = sources.class_def(cls)
    parsed = sources.module(cls.__module__)
    if found is None or parsed is None:
        return None
    class_def = found[1]
    scopes = [class_def.body, parsed[1].body]
    init = next(
        (s for s in class_def.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"),
        None,
    )
    if init is None:
        return None
    for node in ast.walk(init):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "__init__"
        ):
            continue
        via_super = (
            isinstance(node.func.value, ast.Call)
            and isinstance(node.func.value.func, ast.Name)
            and node.func.value.func.id == "super"
        )
        positional = node.args if via_super else node.args[1:]
        candidates = positional[:1] + [k.value for k in node.keywords if k.arg == "t"]
        for candidate in candidates:
            token = _string_constant(candidate, scopes)
            if token is not None:
                return token
    return None


# -- args and referenced types ----------------------------------------------------------------


def _args_class(cls: type) -> type | None:
    """The dataclass the constructor's ``args`` parameter is annotated with."""
    init = cls.__init__  # type: ignore[misc]
    try:
        annotation: Any = typing.get_type_hints(init).get("args")
    except Exception:
        annotation = getattr(init, "__annotations__", {}).get("args")
        if isinstance(annotation, str):
            namespace = vars(sys.modules[cls.__module__])
            try:
                annotation = eval(annotation, dict(namespace))
            except Exception:
                annotation = namespace.get(annotation)
    candidates = [annotation, *typing.get_args(annotation)]
    return next(
        (c for c in candidates if isinstance(c, type) and dataclasses.is_dataclass(c)), None
    )


def _resolve(node: ast.expr, namespace: dict[str, Any]) -> list[object]:
    """Objects the names of an annotation refer to in the module that wrote it."""
    if isinstance(node, ast.Subscript):
        literal = node.value
        name = literal.attr if isinstance(literal, ast.Attribute) else getattr(literal, "id", "")
        if name == "Literal":  # its strings are values, not forward references
            return []
        return _resolve(node.value, namespace) + _resolve(node.slice, namespace)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:  # a quoted forward reference
            return _resolve(ast.parse(node.value, mode="eval").body, namespace)
        except SyntaxError:
            return []
    if isinstance(node, ast.Attribute | ast.Name):
        parts: list[str] = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            parts.insert(0, current.attr)
            current = current.value
        if not isinstance(current, ast.Name) or current.id not in namespace:
            return []
        obj: object = namespace[current.id]
        for part in parts:
            obj = getattr(obj, part, None)
        return [obj]
    found: list[object] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.expr):
            found += _resolve(child, namespace)
    return found


def _dataclasses_in(obj: object, package: str, seen: set[int]) -> Iterator[type]:
    """Dataclasses of the package inside a type: ``Sequence[X]``, ``X | None``, an alias..."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, type) and dataclasses.is_dataclass(obj) and _in_package(obj, package):
        yield obj
    if not isinstance(obj, type) or typing.get_origin(obj) is not None:
        for arg in typing.get_args(obj):
            yield from _dataclasses_in(arg, package, seen)
        alias_value = getattr(obj, "__value__", None)  # `type X = ...` aliases
        if alias_value is not None:
            yield from _dataclasses_in(alias_value, package, seen)


def _default(
    dc_field: dataclasses.Field[Any], attribute: _Attribute | None, text: str | None
) -> str | None:
    """Markdown of a field's default; None when the field is required."""

    def source(node: ast.expr | None) -> str | None:
        if node is None or text is None:
            return None
        return _one_line(ast.get_source_segment(text, node) or ast.unparse(node))

    value_node = attribute.value if attribute is not None else None
    default_node, factory_node = value_node, None
    if isinstance(value_node, ast.Call) and (
        (isinstance(value_node.func, ast.Name) and value_node.func.id == "field")
        or (isinstance(value_node.func, ast.Attribute) and value_node.func.attr == "field")
    ):
        keywords = {k.arg: k.value for k in value_node.keywords}
        default_node, factory_node = keywords.get("default"), keywords.get("default_factory")

    if dc_field.default is not dataclasses.MISSING:
        value = dc_field.default
        if _plain(value):
            return _code(repr(value))
        written = source(default_node)
        return _code(written if written is not None else repr(value))
    if dc_field.default_factory is not dataclasses.MISSING:
        factory = dc_field.default_factory
        if factory in _FACTORIES:
            return _code(repr(factory()))
        written = source(factory_node)
        if written is None:
            return _code(f"{getattr(factory, '__qualname__', repr(factory))}()")
        is_name = isinstance(factory_node, ast.Name | ast.Attribute)
        return _code(f"{written}()" if is_name else written)
    return None


def _plain(value: object) -> bool:
    """A value whose ``repr`` is short, stable and reads as Python: ``'x'``, ``3``, ``('a',)``."""
    if type(value) in _PRIMITIVES:
        return len(repr(value)) <= 60
    if type(value) is tuple:
        return all(type(v) in _PRIMITIVES for v in value) and len(repr(value)) <= 60
    return False


def _type_doc(
    cls: type, package: str, root: Path, sources: _Sources, refs: dict[type, list[str]]
) -> TypeDoc:
    """Document a dataclass, recording in ``refs`` the package dataclasses its fields use."""
    attributes = _attributes(cls, package, sources)
    owner_of = {
        name: klass
        for klass in reversed(cls.__mro__)
        if _in_package(klass, package)
        for name in getattr(klass, "__annotations__", {})
    }
    rows: list[Row] = []
    for dc_field in dataclasses.fields(cls):
        attribute = attributes.get(dc_field.name)
        owner = owner_of.get(dc_field.name, cls)
        parsed = sources.module(owner.__module__)
        text = parsed[0] if parsed is not None else None
        if attribute is not None:
            type_text = attribute.type
            namespace = vars(sys.modules[owner.__module__])
            seen: set[int] = set()
            for obj in _resolve(attribute.annotation, namespace):
                for used in _dataclasses_in(obj, package, seen):
                    refs.setdefault(used, []).append(f"{cls.__name__}.{dc_field.name}")
        else:
            type_text = _one_line(
                dc_field.type if isinstance(dc_field.type, str) else repr(dc_field.type)
            )
        rows.append(
            Row(
                name=dc_field.name,
                type=type_text,
                description=_one_line(attribute.doc if attribute is not None else ""),
                default=_default(dc_field, attribute, text),
            )
        )
    return TypeDoc(
        name=cls.__name__,
        module=cls.__module__,
        path=_path(cls.__module__, root),
        doc=_class_doc(cls, sources),
        rows=tuple(rows),
    )


def _path(module_name: str, root: Path) -> str:
    file = getattr(sys.modules.get(module_name), "__file__", None)
    if file is None:
        return module_name
    try:
        return Path(file).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(file).as_posix()


def _outputs(cls: type, package: str, sources: _Sources) -> tuple[Row, ...]:
    rows = []
    for name, attribute in _attributes(cls, package, sources).items():
        is_class_var = re.match(r"^(typing\.)?ClassVar\b", attribute.type)
        if name.startswith("_") or is_class_var:
            continue
        rows.append(Row(name=name, type=attribute.type, description=_one_line(attribute.doc)))
    return tuple(rows)


def collect(package: str = PACKAGE, root: Path | None = None) -> Reference:
    """Import ``package`` (from ``root``, the project by default) and document its
    components and the shared dataclasses their Args use."""
    root = (root or ROOT).resolve()
    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        importlib.invalidate_caches()
        modules = list(_modules(package))
    finally:
        if added:
            sys.path.remove(str(root))

    sources = _Sources()
    component_classes: list[type] = []
    for module in modules:
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                obj.__module__ == module.__name__
                and issubclass(obj, pulumi.ComponentResource)
                and obj is not pulumi.ComponentResource
            ):
                component_classes.append(obj)
    component_classes.sort(key=lambda c: (c.__module__, c.__qualname__))

    refs: dict[type, list[str]] = {}
    components: list[ComponentDoc] = []
    args_classes: set[type] = set()
    for cls in component_classes:
        args_cls = _args_class(cls)
        args = None
        if args_cls is not None:
            args_classes.add(args_cls)
            args = _type_doc(args_cls, package, root, sources, refs)
        components.append(
            ComponentDoc(
                name=cls.__name__,
                module=cls.__module__,
                path=_path(cls.__module__, root),
                type_token=_type_token(cls, sources),
                doc=_class_doc(cls, sources),
                args=args,
                outputs=_outputs(cls, package, sources),
            )
        )

    # Shared types, and the types those refer to in turn, each documented once.
    shared: dict[type, TypeDoc] = {}
    pending = [t for t in refs if t not in args_classes]
    while pending:
        cls = pending.pop()
        if cls in shared:
            continue
        shared[cls] = _type_doc(cls, package, root, sources, refs)
        pending += [t for t in refs if t not in args_classes and t not in shared]
    shared_docs = [
        dataclasses.replace(doc, referenced_by=tuple(sorted(set(refs[cls]))))
        for cls, doc in shared.items()
    ]
    shared_docs.sort(key=lambda d: (d.module, d.name))
    return Reference(components=tuple(components), shared=tuple(shared_docs))


# -- markdown --------------------------------------------------------------------------------


def _code(text: str) -> str:
    """A code span that survives a table cell: ``|`` escaped, a fence longer than any run of
    backticks inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def _text(text: str) -> str:
    """Docstring prose for a table cell: ``|`` escaped, ``<`` outside code spans
    written as entities so that ``<name>`` is not taken for HTML."""
    out: list[str] = []
    last = 0
    for match in _CODE_SPAN.finditer(text):
        out.append(text[last : match.start()].replace("<", "&lt;"))
        out.append(match.group(0))
        last = match.end()
    out.append(text[last:].replace("<", "&lt;"))
    return "".join(out).replace("|", "\\|")


def _input_table(rows: tuple[Row, ...], heading: str = "Input") -> list[str]:
    if not rows:
        return ["No fields."]
    lines = [f"| {heading} | Type | Default | Description |", "|---|---|---|---|"]
    lines += [
        f"| {_code(r.name)} | {_code(r.type)} | {r.default or 'required'} | "
        f"{_text(r.description)} |"
        for r in rows
    ]
    return lines


def _output_table(rows: tuple[Row, ...]) -> list[str]:
    if not rows:
        return ["No output attributes declared."]
    lines = ["| Output | Type | Description |", "|---|---|---|"]
    lines += [f"| {_code(r.name)} | {_code(r.type)} | {_text(r.description)} |" for r in rows]
    return lines


def render_reference(reference: Reference) -> str:
    lines = [
        "# Components",
        "",
        "<!-- Generated by `make docs` (python -m tools.docs) from components/. Do not edit. -->",
        "",
        "Inputs and outputs of every component, generated from the source: the Args dataclass "
        "of each component's constructor, the output attributes its class declares, and their "
        "docstrings. Regenerate with `make docs`.",
        "",
    ]
    lines += [f"- [{c.name}](#{c.name.lower()}) ({_code(c.module)})" for c in reference.components]
    if reference.shared:
        lines.append("- [Shared types](#shared-types)")
    for comp in reference.components:
        lines += ["", f"## {comp.name}", ""]
        facts = [f"Type token {_code(comp.type_token)}"] if comp.type_token else []
        facts.append(f"module {_code(comp.module)} ({_code(comp.path)})")
        lines.append(", ".join(facts) + ".")
        if comp.doc:
            lines += ["", _text(comp.doc)]
        lines.append("")
        if comp.args is None:
            lines.append("Inputs: the constructor's `args` is not annotated with a dataclass.")
        else:
            lines += [f"Inputs ({_code(comp.args.name)}):", ""]
            lines += _input_table(comp.args.rows)
        lines += ["", "Outputs:", ""]
        lines += _output_table(comp.outputs)
    if reference.shared:
        lines += [
            "",
            "## Shared types",
            "",
            "Dataclasses of the package that the components' inputs refer to.",
        ]
        for doc in reference.shared:
            lines += ["", f"### {doc.name}", "", f"Module {_code(doc.module)} ({_code(doc.path)})."]
            if doc.doc:
                lines += ["", _text(doc.doc)]
            if doc.referenced_by:
                used = ", ".join(_code(r) for r in doc.referenced_by)
                lines += ["", f"Used by {used}."]
            lines.append("")
            lines += _input_table(doc.rows, heading="Field")
    return "\n".join(lines) + "\n"


def render(package: str = PACKAGE, root: Path | None = None) -> str:
    """The Markdown reference of every component of ``package`` (``components`` by default,
    imported from ``root``, the project by default)."""
    return render_reference(collect(package, root))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 if {OUTPUT.relative_to(ROOT)} is stale"
    )
    args = parser.parse_args(argv)
    text = render()
    target = OUTPUT.relative_to(ROOT)
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else None
        if current != text:
            state = "is missing" if current is None else "is out of date"
            print(f"{target} {state}: run `make docs`", file=sys.stderr)
            return 1
        print(f"{target} is up to date")
        return 0
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
