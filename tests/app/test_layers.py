"""The app's folders are layers: each imports only the layers below it, so a change to the API
or the CLI never reaches into training, and the core stands alone."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
# Each layer and the layers it may import (besides its own).
LAYERS = {
    "core": set(),
    "model": {"core"},
    "jobs": {"core", "model"},
    "api": {"core", "model", "jobs"},
    "cli": {"core", "model", "jobs", "api"},
}


def imported(path: Path) -> set[str]:
    """The modules `path` imports, by their full name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    for path in sorted((APP / layer).rglob("*.py")):
        reached = {name.split(".")[1] for name in imported(path) if name.startswith("app.")}
        above = reached - LAYERS[layer] - {layer, "__version__"}
        assert not above, f"{path.relative_to(APP)} imports app.{sorted(above)}"


def test_logins_need_nothing_but_the_standard_library() -> None:
    # The infrastructure program imports app.core.logins without the app's dependencies.
    for path in (APP / "__init__.py", APP / "core" / "__init__.py", APP / "core" / "logins.py"):
        outside = {n for n in imported(path) if n.split(".")[0] not in sys.stdlib_module_names}
        assert not outside, f"{path.relative_to(APP)} imports {sorted(outside)}"
