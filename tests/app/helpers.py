"""Small helpers shared by the app tests."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import uvicorn
from psycopg.conninfo import make_conninfo

from app.api.main import create_app
from app.cli.serving import server_options
from app.core.auth import Authenticator
from app.core.db import Database, Tenant
from app.core.logins import WORKLOAD_LOGINS, password_setting
from app.core.settings import Settings

PEPPER = "test-pepper-0123456789"

# What RDS gives its master user: LOGIN CREATEROLE CREATEDB, not a superuser. The tests run the
# migrations, `generate` and `create-key` as this login, never as the embedded superuser.
MASTER = "rds_like_master"
MASTER_PASSWORD = "master-password-for-tests-0123"
# The passwords `migrate` sets on the workloads' logins, and the settings that hand them to it
# (DB_API_PASSWORD...).
LOGIN_PASSWORDS = {
    login: f"{workload}-password-for-tests-0123" for workload, login in WORKLOAD_LOGINS.items()
}
PASSWORD_SETTINGS = {
    password_setting(workload): LOGIN_PASSWORDS[login]
    for workload, login in WORKLOAD_LOGINS.items()
}


class SyncDatabase:
    """The API's (async) Database driven from a synchronous test, on an event loop of its own
    that lives as long as the pools do."""

    def __init__(self, settings: Settings) -> None:
        # Never set as the thread's loop (asyncio.run and Runner unset it when done, and
        # later tests, Pulumi's mocks, expect the main thread to have one).
        self._loop = asyncio.new_event_loop()
        self.db = Database(settings)
        self.run(self.db.open())

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self._loop.run_until_complete(coroutine)

    def fetch(
        self, tenant: Tenant | None, query: str, params: Sequence[Any] = (), write: bool = False
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.run(self.db.fetch(tenant, query, params, write))
        return rows

    def close(self) -> None:
        self.run(self.db.close())
        self._loop.close()


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """`coroutine` run to completion on a loop of its own (see SyncDatabase)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def login_url(url: str, login: str) -> str:
    """`url`'s database, logged in as one of the workloads' logins with its password."""
    return make_conninfo(url, user=login, password=LOGIN_PASSWORDS[login])


def scalar(url: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


@contextmanager
def served(settings: Settings) -> Iterator[str]:
    """The API served by uvicorn with the options of `serve`, on a free loopback port."""
    options = {**server_options(settings, "127.0.0.1", free_port()), "loop": "asyncio"}
    server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{options['port']}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def failing_audit(url: str, student_id: int | None, action: str) -> Iterator[None]:
    """Audit inserts of `action` (about `student_id`, when given) fail, as a full or missing
    partition would make them, quoting the row in the error's DETAIL as a violated check
    does."""
    name = f"fail_audit_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as owner:
        owner.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.action = '{action}'"
            f" AND (NEW.student_id = {student_id or 0} OR {student_id is None})"
            " THEN RAISE EXCEPTION 'audit refused by the test'"
            " USING DETAIL = format('Failing row contains (%s).', NEW.student_id);"
            " END IF; RETURN NEW; END $$"
        )
        owner.execute(
            f"CREATE TRIGGER {name} BEFORE INSERT ON audit_log"
            f" FOR EACH ROW EXECUTE FUNCTION {name}()"
        )
    try:
        yield
    finally:
        with psycopg.connect(url, autocommit=True) as owner:
            owner.execute(f"DROP TRIGGER {name} ON audit_log")
            owner.execute(f"DROP FUNCTION {name}()")


@contextmanager
def district_directory(table: str, region: str, homes: dict[str, dict[str, str]]) -> Iterator[Any]:
    """The district directory as the global stack makes it (key ``district_id``), in moto,
    holding ``homes`` (district -> its other string attributes); yields a DynamoDB client.
    Needs fake AWS credentials in the environment."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("dynamodb", region_name=region)
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "district_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "district_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for district, attributes in homes.items():
            item = {"district_id": district, **attributes}
            client.put_item(TableName=table, Item={k: {"S": v} for k, v in item.items()})
        yield client


def count_lookups(authenticator: Authenticator) -> list[str]:
    """The queries `authenticator` sends to the database from now on (the list grows)."""
    lookups: list[str] = []
    fetch = authenticator.fetch

    def counted(
        tenant: Tenant | None, query: str, params: Sequence[Any]
    ) -> Awaitable[list[dict[str, Any]]]:
        lookups.append(query)
        return fetch(tenant, query, params)

    authenticator.fetch = counted
    return lookups
