"""What the components' reference says, read from their source: every ``ComponentResource``
under ``components/`` with its type token, Args fields and outputs, and the shared dataclasses
the Args refer to. Descriptions are attribute docstrings, which exist only in the source, so
they are read with ``ast``. ``tools.docs`` renders it as Markdown."""

from __future__ import annotations

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

from tools.sources import Attribute, Sources, annotated, one_line, type_token

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "components"
OUTPUT = ROOT / "docs" / "components.md"

_PRIMITIVES = (type(None), bool, int, float, str)
_FACTORIES: tuple[type, ...] = (dict, list, set, tuple, frozenset)


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


def _attributes(cls: type, package: str, sources: Sources) -> dict[str, Attribute]:
    """Annotated attributes of ``cls`` and of its bases in the package, the nearest winning."""
    merged: dict[str, Attribute] = {}
    for klass in reversed(cls.__mro__):
        if not _in_package(klass, package):
            continue
        found = sources.class_def(klass)
        if found is not None:
            merged.update(annotated(*found))
    return merged


def _class_doc(cls: type, sources: Sources) -> str:
    # Not cls.__doc__: dataclasses invent one, and subclasses inherit their base's.
    found = sources.class_def(cls)
    return one_line(ast.get_docstring(found[1])) if found is not None else ""


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
    dc_field: dataclasses.Field[Any], attribute: Attribute | None, text: str | None
) -> str | None:
    """Markdown of a field's default; None when the field is required."""

    def source(node: ast.expr | None) -> str | None:
        if node is None or text is None:
            return None
        return one_line(ast.get_source_segment(text, node) or ast.unparse(node))

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
            return code(repr(value))
        written = source(default_node)
        return code(written if written is not None else repr(value))
    if dc_field.default_factory is not dataclasses.MISSING:
        factory = dc_field.default_factory
        if factory in _FACTORIES:
            return code(repr(factory()))
        written = source(factory_node)
        if written is None:
            return code(f"{getattr(factory, '__qualname__', repr(factory))}()")
        is_name = isinstance(factory_node, ast.Name | ast.Attribute)
        return code(f"{written}()" if is_name else written)
    return None


def _plain(value: object) -> bool:
    """A value whose ``repr`` is short, stable and reads as Python: ``'x'``, ``3``, ``('a',)``."""
    if type(value) in _PRIMITIVES:
        return len(repr(value)) <= 60
    if type(value) is tuple:
        return all(type(v) in _PRIMITIVES for v in value) and len(repr(value)) <= 60
    return False


def _type_doc(
    cls: type, package: str, root: Path, sources: Sources, refs: dict[type, list[str]]
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
            type_text = one_line(
                dc_field.type if isinstance(dc_field.type, str) else repr(dc_field.type)
            )
        rows.append(
            Row(
                name=dc_field.name,
                type=type_text,
                description=one_line(attribute.doc if attribute is not None else ""),
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


def _outputs(cls: type, package: str, sources: Sources) -> tuple[Row, ...]:
    rows = []
    for name, attribute in _attributes(cls, package, sources).items():
        is_class_var = re.match(r"^(typing\.)?ClassVar\b", attribute.type)
        if name.startswith("_") or is_class_var:
            continue
        rows.append(Row(name=name, type=attribute.type, description=one_line(attribute.doc)))
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

    sources = Sources()
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
                type_token=type_token(cls, sources),
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


def code(text: str) -> str:
    """A code span that survives a table cell: ``|`` escaped, a fence longer than any run of
    backticks inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")
