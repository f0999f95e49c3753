"""Moving a district between regions (`move-district`): two PostgreSQL servers (two pgserver
instances, one per region) and the directory in moto's DynamoDB. The move preserves every row
(counts and content hashes, computed here independently), flips the directory and empties the
source; a failure at any step leaves the source and the directory as they were."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from app.api.main import create_app
from app.cli.main import main
from app.core import db
from app.core.auth import create_key
from app.core.logins import API_LOGIN
from app.core.settings import Settings
from app.jobs.district_move import (
    DERIVED_TABLES,
    MOVED_TABLES,
    REGION_TABLES,
    Directory,
    MoveError,
    move_district,
)
from tests.app.conftest import District, create_master, start_pgserver
from tests.app.helpers import (
    MASTER,
    MASTER_PASSWORD,
    PASSWORD_SETTINGS,
    PEPPER,
    auth,
    district_directory,
    login_url,
)

TABLE = "ssp-district-directory"
EAST, WEST = "us-east-1", "us-west-2"
# The west region draws its ids from its own range (docs/tier4.md, "Moving a district").
WEST_IDS_FROM = 1_000_000_001


@pytest.fixture(scope="module")
def west_server() -> Iterator[str]:
    """The second region's PostgreSQL server (the superuser's URL)."""
    server = start_pgserver()
    url = str(server.get_uri())
    create_master(url)
    yield url
    server.cleanup()


@pytest.fixture
def west(west_server: str, tmp_path: Path) -> District:
    """The west region's database: migrated, ids from its own range, one district of its own
    with a key."""
    name = f"ssp_west_{tmp_path.name[-20:]}".replace("-", "_")
    with psycopg.connect(west_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{MASTER}"')
    admin = make_conninfo(west_server, dbname=name)
    master = make_conninfo(west_server, dbname=name, user=MASTER, password=MASTER_PASSWORD)
    owner = Settings(
        environment="test",
        database_url=master,
        api_key_pepper=PEPPER,
        model_store_url=str(tmp_path / "west-models"),
        cache_prefix="west",
    ).model_copy(update={k: SecretStr(v) for k, v in PASSWORD_SETTINGS.items()})
    db.migrate(owner)
    with psycopg.connect(master, autocommit=True) as conn:
        for (sequence,) in conn.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
        ).fetchall():
            conn.execute(f'ALTER SEQUENCE "{sequence}" RESTART WITH {WEST_IDS_FROM}')
    with psycopg.connect(admin, autocommit=True) as conn:  # the superuser: no FORCE applies
        conn.execute("INSERT INTO districts (name) VALUES ('west district')")
        conn.execute(
            "INSERT INTO schools (district_id, name) SELECT id, 'west school' FROM districts"
        )
        conn.execute(
            "INSERT INTO students (school_id, first_name, last_name, grade, enrolled_on)"
            " SELECT id, 'Ada', 'West', 9, '2026-09-01' FROM schools"
        )
    with db.connect_owner(owner) as conn:
        create_key(conn, PEPPER, "west district", district_id=WEST_IDS_FROM)
    api = owner.model_copy(update={"database_url": login_url(master, API_LOGIN)})
    return District(admin, master, owner, api, api, api, api, {}, tmp_path)


@pytest.fixture
def directory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Directory]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    homes = {d: {"home_region": EAST, "name": f"district {d}"} for d in ("1", "2")}
    with district_directory(TABLE, EAST, homes) as client:
        yield Directory(TABLE, client=client)


def home(directory: Directory, district: int) -> dict[str, Any]:
    item = directory.client.get_item(TableName=TABLE, Key={"district_id": {"S": str(district)}})
    return {k: v["S"] for k, v in item["Item"].items()}


def contents(url: str, district: int) -> dict[str, tuple[int, str]]:
    """Per table: the district's rows and an md5 of their text, in a fixed order (as the
    superuser, who sees every row)."""
    found = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        for table, where in MOVED_TABLES + DERIVED_TABLES:
            row = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                f" FROM {table} t WHERE {where}",
                {"district": district},
            ).fetchone()
            assert row is not None
            found[table] = (int(row[0]), str(row[1]))
    return found


def test_every_table_of_the_schema_is_moved_derived_or_the_regions(west: District) -> None:
    """A migration that adds a table must say whether a district's move takes it along."""
    with psycopg.connect(west.url, autocommit=True) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                " AND relkind IN ('r', 'p') AND NOT relispartition"
            ).fetchall()
        }
    known = {t for t, _ in MOVED_TABLES + DERIVED_TABLES} | REGION_TABLES
    assert tables == known


def test_the_move_preserves_every_row_flips_the_directory_and_empties_the_source(
    fresh_district: District, west: District, directory: Directory, capsys: Any
) -> None:
    east = fresh_district
    with TestClient(create_app(east.settings)) as api:  # audit rows of district 1 to move
        for student in (1, 2, 3):
            risk = api.get(f"/v1/students/{student}/risk", headers=auth(east.keys["school1"]))
            assert risk.status_code == 200
    before = contents(east.url, 1)
    assert before["students"][0] == 600 and before["audit_log"][0] == 3
    assert before["risk_scores"][0] > 0 and before["model_versions"][0] > 0
    other_before = contents(east.url, 2)
    west_before = contents(west.url, WEST_IDS_FROM)

    result = move_district(1, east.master_url, west.master_url, WEST, directory)

    after = contents(west.url, 1)
    for table, _ in MOVED_TABLES:
        assert after[table] == before[table], table
        assert result.tables[table].rows == before[table][0], table
    # The model records belong to the source's model store: not copied, deleted there.
    assert after["risk_scores"][0] == after["model_versions"][0] == 0
    assert home(directory, 1) == {"district_id": "1", "home_region": WEST, "name": "district 1"}
    assert result.source_removed
    assert all(count == 0 for count, _ in contents(east.url, 1).values())
    assert contents(east.url, 2) == other_before  # the other district stays where it was
    assert home(directory, 2)["home_region"] == EAST
    assert contents(west.url, WEST_IDS_FROM) == west_before

    # The key moved with its district: the west region's API accepts it.
    with TestClient(create_app(west.settings)) as api:
        models = api.get("/v1/schools/1/models", headers=auth(east.keys["school1"]))
        assert models.status_code == 200
    # Ids drawn after the move do not collide with the moved ones.
    with psycopg.connect(west.url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO students (school_id, first_name, last_name, grade, enrolled_on)"
            " VALUES (1, 'New', 'Student', 9, '2026-09-01') RETURNING id"
        ).fetchone()
        assert row is not None and row[0] > WEST_IDS_FROM
        forced = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relforcerowsecurity"
            " AND relname IN ('students', 'audit_log', 'schools')"
        ).fetchone()
        assert forced == (3,)  # FORCE ROW LEVEL SECURITY is back on


def assert_nothing_moved(
    east: District, west: District, directory: Directory, before: dict[str, tuple[int, str]]
) -> None:
    assert contents(east.url, 1) == before
    assert home(directory, 1)["home_region"] == EAST
    assert all(count == 0 for count, _ in contents(west.url, 1).values())


def test_a_collision_in_the_target_stops_the_move_before_anything_changes(
    untrained_district: District,
    west: District,
    directory: Directory,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    east = untrained_district
    before = contents(east.url, 1)
    with psycopg.connect(west.url, autocommit=True) as conn:  # a student id of district 1
        conn.execute(
            "INSERT INTO students (id, school_id, first_name, last_name, grade, enrolled_on)"
            " SELECT 5, id, 'Id', 'Clash', 9, '2026-09-01' FROM schools"
        )
    monkeypatch.setenv("DISTRICT_DIRECTORY_TABLE", TABLE)
    monkeypatch.setenv("HOME_REGION", EAST)
    monkeypatch.setattr("app.jobs.district_move.boto3.client", lambda *a, **k: directory.client)
    code = main(
        [
            "move-district",
            "--district=1",
            f"--source={east.master_url}",
            f"--target={west.master_url}",
            f"--target-region={WEST}",
            "--drain-seconds=0",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "move-district failed: students: the target already holds a row" in err
    assert "(id)=(5)" in err and "disjoint ranges" in err
    assert_nothing_moved(east, west, directory, before)


def test_rows_that_arrive_changed_fail_the_verification(
    untrained_district: District, west: District, directory: Directory
) -> None:
    east = untrained_district
    before = contents(east.url, 1)
    with psycopg.connect(west.url, autocommit=True) as conn:  # a target that alters marks
        conn.execute(
            "CREATE FUNCTION round_marks() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN NEW.marks_obtained := round(NEW.marks_obtained); RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER round_marks BEFORE INSERT ON marks"
            " FOR EACH ROW EXECUTE FUNCTION round_marks()"
        )
    with pytest.raises(
        MoveError,
        match=r"marks: the target would hold (\d+) rows of district 1 \(sha256 \w+\),"
        r" the source holds \1 ",
    ):
        move_district(1, east.master_url, west.master_url, WEST, directory)
    assert_nothing_moved(east, west, directory, before)


def test_a_refused_flip_removes_the_copy_and_leaves_the_source(
    untrained_district: District, west: District, directory: Directory
) -> None:
    east = untrained_district
    before = contents(east.url, 1)

    class Changed(Directory):
        """Someone else re-homed the district while it was copied."""

        def flip(self, district: int, source: str, target: str) -> None:
            self.client.put_item(
                TableName=TABLE,
                Item={"district_id": {"S": "1"}, "home_region": {"S": "eu-west-1"}},
            )
            super().flip(district, source, target)

    with pytest.raises(MoveError, match="directory entry of district 1 not flipped"):
        move_district(
            1, east.master_url, west.master_url, WEST, Changed(TABLE, client=directory.client)
        )
    assert contents(east.url, 1) == before
    assert home(directory, 1)["home_region"] == "eu-west-1"  # theirs, not ours
    assert all(count == 0 for count, _ in contents(west.url, 1).values())


def test_refusals_name_the_problem(
    untrained_district: District, west: District, directory: Directory
) -> None:
    east = untrained_district
    with pytest.raises(MoveError, match="district 1 is already homed in us-east-1"):
        move_district(1, east.master_url, west.master_url, EAST, directory)
    with pytest.raises(MoveError, match="district 9 has no entry in the directory"):
        move_district(9, east.master_url, west.master_url, WEST, directory)
    with psycopg.connect(west.url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM schema_migrations"
            " WHERE version = (SELECT max(version) FROM schema_migrations)"
        )
    with pytest.raises(MoveError, match="different migrations"):
        move_district(1, east.master_url, west.master_url, WEST, directory)


def test_keep_source_leaves_the_source_rows(
    untrained_district: District, west: District, directory: Directory
) -> None:
    east = untrained_district
    before = contents(east.url, 1)
    result = move_district(1, east.master_url, west.master_url, WEST, directory, keep_source=True)
    assert not result.source_removed
    assert contents(east.url, 1) == before
    moved = contents(west.url, 1)
    assert all(moved[t] == before[t] for t, _ in MOVED_TABLES)
    assert home(directory, 1)["home_region"] == WEST


def test_a_failed_removal_after_the_flip_keeps_the_source_copy_and_says_so(
    untrained_district: District, west: District, directory: Directory
) -> None:
    east = untrained_district
    before = contents(east.url, 1)
    with psycopg.connect(east.url, autocommit=True) as conn:  # the source refuses deletes
        conn.execute(
            "CREATE FUNCTION keep_marks() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'marks are kept'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER keep_marks BEFORE DELETE ON marks"
            " FOR EACH ROW EXECUTE FUNCTION keep_marks()"
        )
    with pytest.raises(MoveError, match="moved to us-west-2 and the directory flipped, but the"):
        move_district(1, east.master_url, west.master_url, WEST, directory)
    assert home(directory, 1)["home_region"] == WEST  # served from the target
    moved = contents(west.url, 1)
    assert all(moved[t] == before[t] for t, _ in MOVED_TABLES)
    assert contents(east.url, 1) == before  # the source's copy, whole
