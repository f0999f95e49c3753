"""The layout stays livable: small modules and functions, no import cycle, and components
that know their inputs rather than their neighbours."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("components", "stacks", "policies", "tools", "app")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 100
# What a component module may import from components/: the stack's configuration and what the
# components share (the contract and the builders). Never another component.
SHARED = ("components.config", "components.shared")


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_are_small(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: split the module"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.lineno} {node.name}()"


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Which of ``sources`` (module name -> its text and whether it is a package's
    ``__init__``) each one imports, anywhere in it (a function's import runs too): ``from a
    import b`` is ``a.b`` where that is a module, else ``a``; relative imports resolved."""
    known = set(sources)
    graph: dict[str, set[str]] = {module: set() for module in sources}
    for module, (text, is_package) in sources.items():
        package = module if is_package else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    graph[module].add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or around a loop (the
    strongly connected components of more than one module, Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = [stack.pop()]
            while group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle() -> None:
    sources = {_name(p): (p.read_text(), p.name == "__init__.py") for p in _modules()}
    assert import_cycles(import_graph(sources)) == []


def test_the_check_finds_a_planted_cycle() -> None:
    sources = {
        "tools": ("", True),
        "tools.plan": ("from tools import costs, diff\n", False),
        "tools.costs": ("", False),
        "tools.diff": ("def render():\n    from tools.plan import MASK\n", False),
        "tools.flat": ("MASK = 1\n", False),
        "components.cluster": ("from components.cluster.args import ClusterArgs\n", True),
        "components.cluster.args": ("from . import component\n", False),
        "components.cluster.component": ("from components.cluster import ClusterArgs\n", False),
        "components.shared": ("import components.shared.kms\n", True),
        "components.shared.kms": ("import json\n", False),
    }
    assert import_cycles(import_graph(sources)) == [
        ["components.cluster", "components.cluster.args", "components.cluster.component"],
        ["tools.diff", "tools.plan"],
    ]
    # Moving what both use into one module both import breaks the loop.
    sources["tools.diff"] = ("from tools.flat import MASK\n", False)
    assert import_cycles(import_graph(sources)) == [
        ["components.cluster", "components.cluster.args", "components.cluster.component"]
    ]


def _component_modules() -> list[Path]:
    return [
        p
        for p in (ROOT / "components").rglob("*.py")
        if "pulumi.ComponentResource" in p.read_text()
    ]


def sibling_imports(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Modules of components/ that ``source`` (the text of ``module``) imports, beyond the
    shared ones and its own package."""
    package = module if is_package else module.rpartition(".")[0]
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "components":
                imported |= {f"components.{a.name}" for a in node.names}
            else:
                imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    return {
        m
        for m in imported
        if m.startswith("components.")
        and not any(m == s or m.startswith(f"{s}.") for s in SHARED)
        and not (package != "components" and m.startswith(f"{package}."))
    }


@pytest.mark.parametrize("path", _component_modules(), ids=lambda p: p.name)
def test_no_component_imports_a_sibling_component(path: Path) -> None:
    own = _name(path)
    siblings = sibling_imports(path.read_text(), own, is_package=path.name == "__init__.py")
    assert not siblings, f"{own} imports {sorted(siblings)}: share through components.shared"


def test_the_check_finds_sibling_imports_and_allows_the_shared_and_own_package() -> None:
    source = (
        "from components.database import DatabaseArgs\n"
        "from components import cache\n"
        "from components.shared.contract import owned\n"
        "from components.cluster.nodes import node_groups\n"
    )
    assert sibling_imports(source, "components.cluster.control_plane") == {
        "components.database",
        "components.cache",
    }
    assert sibling_imports(source, "components.edge") == {
        "components.database",
        "components.cache",
        "components.cluster.nodes",
    }
