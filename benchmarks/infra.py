"""Infrastructure side: evaluating each stack under mocks, the policy pack, the test suite.

In one process: the one-time cost of importing the provider SDKs (with the first evaluation),
then every stack evaluated `--repeat` times (the program registering all its resources under
pulumi.runtime mocks) and the policy pack applied to it. Then `pytest tests` in a subprocess,
as `make unit` runs it.

    python -m benchmarks.infra [--repeat 5] [--no-tests]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import ROOT, write_result
from tools.harness import run_stack, stacks
from tools.policy import check_run


def timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-tests", action="store_true", help="skip timing the test suite")
    args = parser.parse_args()

    names = stacks()
    _, first = timed(lambda: run_stack(names[-1]))
    rows = []
    for stack in names:
        evaluations = []
        for _ in range(args.repeat):
            run, seconds = timed(lambda s=stack: run_stack(s))
            evaluations.append(seconds)
        violations, policy_seconds = timed(lambda r=run: check_run(r))
        rows.append(
            {
                "stack": stack,
                "resources": len(run.resources),
                "evaluation_median_s": round(statistics.median(evaluations), 2),
                "evaluation_min_s": round(min(evaluations), 2),
                "policy_pack_s": round(policy_seconds, 2),
                "policy_mandatory_violations": sum(v.level == "mandatory" for v in violations),
                "policy_advisory_findings": sum(v.level == "advisory" for v in violations),
            }
        )
        print(rows[-1], flush=True)
    result: dict[str, Any] = {
        "sdk_import_and_first_evaluation_s": round(first, 2),
        "repeats": args.repeat,
        "stacks": rows,
    }
    if not args.no_tests:
        out, seconds = timed(
            lambda: subprocess.run(
                [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
        )
        summary = next(
            (ln.strip("= ") for ln in reversed(out.stdout.splitlines()) if " in " in ln), ""
        )
        if out.returncode != 0:
            raise SystemExit(f"the test suite failed: {summary or out.stderr[-500:]}")
        passed = re.search(r"(\d+) passed", summary)
        result["test_suite"] = {
            "command": "pytest tests",
            "wall_s": round(seconds, 1),
            "passed": int(passed.group(1)) if passed else None,
            "summary": summary,
        }
    write_result("infra", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
