"""`make mutation` names modules and test files that exist: a module moved or split (the diff
became a package) must not leave the mutation run pointing at nothing."""

from __future__ import annotations

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
