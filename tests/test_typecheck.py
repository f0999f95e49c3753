"""The type check skips the parts of the two huge provider SDKs the program does not use
(pyproject.toml): every service of pulumi_aws and API group of pulumi_kubernetes the code
reaches must be one mypy follows, or its calls would go unchecked."""

from __future__ import annotations

import ast
import importlib.util
import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDKS = ("pulumi_aws", "pulumi_kubernetes")
CHECKED = ("components", "stacks", "policies", "tools", "app", "benchmarks", "__main__.py")


def followed() -> list[str]:
    """The module patterns of the SDKs that mypy follows (the overrides after the skip)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    patterns: list[str] = []
    for override in config["overrides"]:
        modules = override["module"]
        modules = [modules] if isinstance(modules, str) else modules
        if override.get("follow_imports") == "normal":
            patterns += modules
        else:
            assert override.get("follow_imports") == "skip"
            assert sorted(modules) == [f"{sdk}.*" for sdk in SDKS]
    return patterns


def is_followed(module: str, patterns: list[str]) -> bool:
    # mypy's "a.b.*" matches a.b and everything under it.
    return any(module == p.removesuffix(".*") or fnmatch(module, p) for p in patterns)


def sdk_modules_used(path: Path) -> set[str]:
    """The SDK packages a module reaches: `import pulumi_aws as aws` then `aws.rds.X`,
    `from pulumi_aws import rds`, `import pulumi_aws.rds`."""
    tree = ast.parse(path.read_text(), str(path))
    aliases: dict[str, str] = {}
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in SDKS:
                    aliases[alias.asname or alias.name] = alias.name
                    used.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in SDKS:
            used |= {f"{node.module}.{alias.name}" for alias in node.names}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            used.add(f"{aliases[node.value.id]}.{node.attr}")
    return used


def packages(used: set[str]) -> set[str]:
    """Those of `used` that are packages of an SDK (a service or API group)."""
    found = set()
    for name in used:
        spec = importlib.util.find_spec(name.split(".")[0])
        assert spec is not None and spec.submodule_search_locations
        base = Path(next(iter(spec.submodule_search_locations)))
        if base.joinpath(*name.split(".")[1:]).is_dir():
            found.add(name)
    return found


def test_every_sdk_package_the_code_uses_is_type_checked() -> None:
    patterns = followed()
    files = [ROOT / c for c in CHECKED if c.endswith(".py")]
    files += [p for c in CHECKED if not c.endswith(".py") for p in (ROOT / c).rglob("*.py")]
    used = packages(set().union(*(sdk_modules_used(p) for p in files)))
    assert {"pulumi_aws.rds", "pulumi_kubernetes.core"} <= used  # the scan sees the program
    missing = sorted(m for m in used if not is_followed(m, patterns))
    assert missing == [], f"add to the followed modules in pyproject.toml: {missing}"


def test_a_service_not_listed_is_found() -> None:
    patterns = followed()
    assert is_followed("pulumi_aws.rds", patterns)
    assert is_followed("pulumi_aws.rds.instance", patterns)
    assert not is_followed("pulumi_aws.appstream", patterns)
    assert not is_followed("pulumi_kubernetes.storage", patterns)
