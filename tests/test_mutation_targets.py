"""`make mutation` names modules and test files that exist: a module moved or split (the diff
became a package) must not leave the mutation run pointing at nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import mutation
from benchmarks.common import ROOT
from benchmarks.mutation import MODULES


def test_every_mutated_module_and_its_tests_exist() -> None:
    missing = [m for m in MODULES if not (ROOT / m).is_file()]
    missing += [
        t
        for tests in MODULES.values()
        for t in tests
        if t.startswith("tests/") and not (ROOT / t).is_file()
    ]
    assert missing == []


def test_recording_a_module_drops_the_figures_of_modules_no_longer_mutated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = tmp_path / "mutation.json"
    kept = next(iter(MODULES))
    gone = "tools/diff.py"  # became the package tools/diff/
    assert gone not in MODULES
    result.write_text(json.dumps({"modules": {gone: {"mutants": 1}, kept: {"mutants": 2}}}))
    monkeypatch.setattr(mutation, "RESULT", tmp_path / "mutation.json")
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    recorded = "components/config/capacity.py"
    figures = {"killed": 1, "mutants": 1, "equivalent": 0, "survived": 0, "seconds": 1}
    mutation._record(recorded, {**figures, "score_percent": 100.0})
    modules = json.loads(result.read_text())["modules"]
    assert sorted(modules) == sorted({kept, recorded})
    assert modules[kept] == {"mutants": 2} and modules[recorded]["killed"] == 1
