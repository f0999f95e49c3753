"""Rotating the master password (``dbMasterPasswordRotation``, docs/operate.md "Logins and
credentials"): what the next ``pulumi up`` does, in the plan diff's words, under mocks; and the
rotated plan played against an embedded PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from psycopg import sql

from tests.shared import (
    DB_INSTANCE,
    K8S_SECRET,
    RANDOM_PASSWORD,
    SECRET_VERSION,
    SECRETS_MANAGER_SECRET,
    STACKS,
    StackRunner,
)
from tools import diff
from tools.harness import StackRun, run_stack
from tools.manifests import API, ARCHIVER, BOOTSTRAP, TRAINER, WORKER, find_container
from tools.rehearsal_env import Endpoints, app_process, map_environment
from tools.standins import (
    LOOPBACK,
    embedded_postgres,
    free_port,
    login_of,
    migration_needs,
    provision,
)


@pytest.fixture(scope="module")
def rotated() -> StackRun:
    return run_stack("tier3", extra_config={"dbMasterPasswordRotation": 1})


def _master_password(run: StackRun) -> str:
    return str(run.one(DB_INSTANCE, "database-primary").get("password"))


def test_a_rotation_changes_the_master_password_and_only_what_holds_it(
    stack_run: StackRunner, rotated: StackRun
) -> None:
    base = stack_run("tier3")
    changes = {c.resource.name: c for c in diff.diff_resources(base.resources, rotated.resources)}
    assert {name: c.kind for name, c in changes.items()} == {
        "database-password": "replace",  # a new keeper: a new password
        "database-primary": "update",
        "database-credentials-version": "replace",  # a new version of the same secret
        "workloads-bootstrap-db": "replace",  # auto-named: the bootstrap Job reads the new one
        "workloads-bootstrap": "replace",  # its template names the new Secret: it runs again
        # The offboarding Job holds the master too: its Secret anew, its template names it.
        "workloads-offboard-db": "replace",
        "workloads-offboarder": "update",
    }
    # The instance is modified in place (RDS applies a new master password at once).
    assert [p.path for p in changes["database-primary"].properties] == ["password"]
    assert not changes["database-primary"].properties[0].replaces
    # Nothing protected is replaced: `pulumi up` would refuse it.
    assert not [c.resource.name for c in changes.values() if c.dangerous]
    new = _master_password(rotated)
    assert new != _master_password(base)
    stored = json.loads(
        rotated.one(SECRET_VERSION, "database-credentials-version").get("secretString")
    )
    assert stored["password"] == new
    # The bootstrap Job (migrations, the only holder of the master login) logs in with it.
    assert new in rotated.one(K8S_SECRET, "workloads-bootstrap-db").get("stringData.DATABASE_URL")
    # The workloads keep their own logins: their Secrets, pods and the proxy's secrets stay.
    assert not any(name.startswith(("database-api-", "database-trainer-")) for name in changes)


def test_a_stack_that_never_rotated_keeps_its_password(stack_run: StackRunner) -> None:
    # pulumi-random replaces a password whose keepers go from none to any value: a stack
    # deployed before the counter existed must see no keeper at 0.
    for stack in STACKS:
        run = stack_run(stack)
        password = run.one(RANDOM_PASSWORD, "database-password")
        assert password.inputs.get("keepers") is None, stack


def test_the_credentials_secrets_are_protected_and_their_versions_replaceable(
    stack_run: StackRunner,
) -> None:
    run = stack_run("tier3")
    secrets = [s for s in run.of_type(SECRETS_MANAGER_SECRET) if s.name.startswith("database-")]
    versions = [v for v in run.of_type(SECRET_VERSION) if v.name.startswith("database-")]
    assert len(secrets) == len(versions) > 1
    assert all(s.options.protect for s in secrets)
    assert not any(v.options.protect for v in versions)


def test_after_a_rotation_migrate_logs_in_with_the_new_master_and_no_workload_login_changes(
    stack_run: StackRunner, tmp_path: Path
) -> None:
    """The rotated plan played against an embedded PostgreSQL: RDS applies the new master
    password, the replaced bootstrap Job migrates with it, the old one is refused, and every
    workload logs in with its unchanged Secret."""
    base, rotated = stack_run("dev"), run_stack("dev", extra_config={"dbMasterPasswordRotation": 1})
    workloads = (API, WORKER, TRAINER, ARCHIVER)
    with embedded_postgres(tmp_path) as superuser:
        port = int(parse_qs(urlsplit(superuser).query)["port"][0])
        ends = Endpoints((LOOPBACK, port), None, tmp_path / "stores", free_port())
        before = map_environment(find_container(base, BOOTSTRAP).env, ends)
        after = map_environment(find_container(rotated, BOOTSTRAP).env, ends)
        assert before["DATABASE_URL"] != after["DATABASE_URL"]
        provision(superuser, before["DATABASE_URL"], *migration_needs())
        _migrate(before)
        # The instance's in-place update: RDS sets the new master password.
        user, password, _ = login_of(after["DATABASE_URL"])
        with psycopg.connect(superuser, autocommit=True) as conn:
            alter = sql.SQL("ALTER ROLE {} PASSWORD {}")
            conn.execute(alter.format(sql.Identifier(user), sql.Literal(password)))
        _migrate(after)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(before["DATABASE_URL"]).close()
        for workload in workloads:
            env = map_environment(find_container(rotated, workload).env, ends)
            assert env == map_environment(find_container(base, workload).env, ends), workload
            with psycopg.connect(env["DATABASE_URL"]) as conn:
                assert conn.execute("SELECT current_user").fetchone() == (
                    login_of(env["DATABASE_URL"])[0],
                )


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run(**app_process(["migrate"], env), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
