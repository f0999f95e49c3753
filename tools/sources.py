"""Reading Python source with ``ast``: the attribute docstrings of a class body (a string
literal on the line after a field, which exists only in the source) and the type token a
component's constructor hands to ``super().__init__``."""

from __future__ import annotations

import ast
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path


class Sources:
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
class Attribute:
    annotation: ast.expr
    type: str
    doc: str
    value: ast.expr | None


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def annotated(text: str, class_def: ast.ClassDef) -> dict[str, Attribute]:
    """Every ``name: type`` of a class body with the string literal that follows it."""
    attributes: dict[str, Attribute] = {}
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
        attributes[stmt.target.id] = Attribute(stmt.annotation, one_line(written), doc, stmt.value)
    return attributes


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


def type_token(cls: type, sources: Sources) -> str | None:
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
