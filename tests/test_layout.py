"""The layout stays livable: small modules and functions, and components that know their
inputs rather than their neighbours."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("components", "app", "policies", "tools")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 150
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
