"""A commit's program, evaluated by today's harness: the two sides of ``tools.diff``.

The base ref comes from ``git archive`` into a temporary directory without its ``tools/``;
each side runs in its own interpreter (two checkouts' ``components`` packages cannot share
one), with that checkout first on ``sys.path`` and today's ``tools`` after it. Today's
harness and mocks, not the base's: both sides must be recorded the same way (options, alias
resolution, mock ids), or a base commit with an older harness would show differences no
deployment would see.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.harness import ROOT, Options, Resource


def _record(resource: Resource) -> dict[str, Any]:
    doc = asdict(resource)
    doc["secret_paths"] = sorted(resource.secret_paths)
    doc["previous_urns"] = sorted(resource.previous_urns)
    return doc


def _restore(doc: dict[str, Any]) -> Resource:
    options: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in doc["options"].items()
    }
    options["property_dependencies"] = {
        k: tuple(v) for k, v in options.get("property_dependencies", {}).items()
    }
    return Resource(
        **{k: v for k, v in doc.items() if k not in ("options", "secret_paths", "previous_urns")},
        secret_paths=frozenset(doc["secret_paths"]),
        options=Options(**options),
        previous_urns=frozenset(doc["previous_urns"]),
    )


@dataclass
class Evaluation:
    resources: list[Resource]
    monthly_cost: float
    cost_items: dict[str, float] = field(default_factory=dict)


def evaluate_here(root: Path, stacks: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Run in the evaluating subprocess: the program under ``root`` for each stack that has a
    stack file there, recorded as JSON-ready documents."""
    from tools import costs
    from tools.harness import run_stack

    out = {}
    for stack in stacks:
        if not (root / f"Pulumi.{stack}.yaml").exists():
            continue
        run = run_stack(stack, program=root / "__main__.py", root=root)
        items = costs.estimate(run.resources)
        grouped: dict[str, float] = {}
        for item in items:
            grouped[item.what] = grouped.get(item.what, 0.0) + item.monthly_usd
        out[stack] = {
            "resources": [_record(r) for r in run.resources],
            "monthly_cost": costs.total(items),
            "cost_items": grouped,
        }
    return out


def _evaluate_in_subprocess(
    root: Path, stacks: Sequence[str], side: str = "the program"
) -> dict[str, Evaluation]:
    """Evaluate ``root``'s program in a fresh interpreter: its ``components`` must not meet
    another checkout's modules of the same name."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        # A configuration the spec refuses (``SpecError``: "stack 'x' has N configuration
        # problem(s)", each naming its key) is the user's error: its message alone, no
        # traceback; anything else keeps its traceback.
        code = (
            "import json, sys; from pathlib import Path; "
            f"sys.path[:0] = [{str(root)!r}, {str(ROOT)!r}]; "
            "from tools.revision import evaluate_here\n"
            "try:\n"
            f"    doc = evaluate_here(Path({str(root)!r}), {list(stacks)!r})\n"
            "except ValueError as exc:\n"
            "    if not str(exc).startswith('stack '):\n"
            "        raise\n"
            "    sys.exit(str(exc))\n"
            f"json.dump(doc, open({out.name!r}, 'w'), default=str)"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
        )
        if proc.returncode == 1 and proc.stderr.startswith("stack "):
            raise ValueError(f"{side}: {proc.stderr.strip()}")
        if proc.returncode != 0:
            raise RuntimeError(f"evaluating the program in {root} failed:\n{proc.stderr}")
        raw = json.loads(Path(out.name).read_text())
    return {
        stack: Evaluation(
            [_restore(r) for r in doc["resources"]], doc["monthly_cost"], doc["cost_items"]
        )
        for stack, doc in raw.items()
    }


def checkout(ref: str, into: Path, repo: Path = ROOT) -> None:
    """The files of ``ref`` (a commit, branch or tag) under ``into``, without its ``tools/``:
    the base is evaluated by today's harness."""
    known = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if known.returncode != 0:
        raise ValueError(f"{ref!r} is not a commit of {repo} (fetch it first?)")
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "archive", "--format=tar", ref],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
        for member in archive:
            if member.name == "tools" or member.name.startswith("tools/"):
                continue
            archive.extract(member, into, filter="data")
    if proc.wait() != 0:
        raise ValueError(f"git archive {ref} failed")


def evaluate(
    base_ref: str, stacks: Sequence[str], repo: Path = ROOT
) -> tuple[dict[str, Evaluation], dict[str, Evaluation]]:
    """The base ref's and the working tree's evaluations of ``stacks``, side by side."""
    with tempfile.TemporaryDirectory(prefix="plan-diff-") as tmp:
        checkout(base_ref, Path(tmp), repo)
        with ThreadPoolExecutor(max_workers=2) as pool:
            base = pool.submit(_evaluate_in_subprocess, Path(tmp), stacks, base_ref)
            head = pool.submit(_evaluate_in_subprocess, repo, stacks, "the working tree")
            return base.result(), head.result()
