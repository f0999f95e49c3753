"""Rotating the master password (``dbMasterPasswordRotation``, docs/operate.md "Logins and
credentials"): what the next ``pulumi up`` does, in the plan diff's words, under mocks."""

from __future__ import annotations

import json

import pytest

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
