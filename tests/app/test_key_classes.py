"""API key classes (migration 0010): each class has its own rate limit; `create-key --class`
names it; the database refuses any other class."""

from __future__ import annotations

import json

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.api.main import create_app
from app.core import db
from app.core.auth import create_key
from app.core.settings import Settings, get_settings
from tests.app.conftest import District
from tests.app.helpers import PEPPER, auth, scalar


def test_each_class_has_its_own_limit(district: District) -> None:
    with db.connect_owner(district.owner) as conn:
        _, sync_key = create_key(conn, PEPPER, "sis sync", district_id=1, key_class="integration")
    settings = district.settings_with(
        rate_limit_interactive_requests=3,
        rate_limit_integration_requests=2,
        rate_limit_window_seconds=3600,
        cache_prefix="keyclass",
    )
    with TestClient(create_app(settings)) as api:
        people, machine = auth(district.keys["school1"]), auth(sync_key)
        seen = [api.get("/v1/schools/1/models", headers=machine) for _ in range(3)]
        assert [r.status_code for r in seen] == [200, 200, 429]
        assert seen[0].headers["X-RateLimit-Limit"] == "2"
        assert seen[2].json() == {
            "detail": "rate limit of 2 requests per 3600s for integration keys exceeded"
        }
        # The integration key used up its limit; the school's interactive key has its own.
        first = api.get("/v1/schools/1/models", headers=people)
        assert first.status_code == 200
        assert first.headers["X-RateLimit-Limit"] == "3"
        assert first.headers["X-RateLimit-Remaining"] == "2"


def test_existing_and_new_keys_default_to_interactive(district: District) -> None:
    with db.connect_owner(district.owner) as conn:
        client_id, _ = create_key(conn, PEPPER, "teachers' app", school_id=1)
    query = "SELECT key_class FROM api_clients WHERE id = %s"
    assert scalar(district.master_url, query, (client_id,)) == "interactive"


def test_database_refuses_an_unknown_class(district: District) -> None:
    with pytest.raises(psycopg.errors.CheckViolation), psycopg.connect(district.master_url) as c:
        c.execute(
            "INSERT INTO api_clients (name, key_prefix, key_hash, district_id, key_class)"
            " VALUES ('x', 'x', 'x-unique-hash', 1, 'robot')"
        )
    refused = "key class 'robot': allowed interactive, integration"
    with pytest.raises(ValueError, match=refused), db.connect_owner(district.owner) as conn:
        create_key(conn, PEPPER, "x", district_id=1, key_class="robot")  # type: ignore[arg-type]


def test_create_key_cli_names_the_class(
    district: District, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main

    for name, value in {
        "ENVIRONMENT": "test",
        "DATABASE_URL": district.master_url,
        "API_KEY_PEPPER": PEPPER,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        args = ["create-key", "--name", "sis", "--district-id", "1", "--class", "integration"]
        assert main(args) == 0
        printed = json.loads(capsys.readouterr().out)
        with pytest.raises(SystemExit) as refused:
            main(["create-key", "--name", "x", "--school-id", "1", "--class", "robot"])
    finally:
        get_settings.cache_clear()
    assert printed["class"] == "integration"
    query = "SELECT key_class FROM api_clients WHERE id = %s"
    assert scalar(district.master_url, query, (printed["client_id"],)) == "integration"
    assert refused.value.code == 2  # argparse: invalid choice 'robot', naming the choices
    assert "invalid choice: 'robot'" in capsys.readouterr().err


def test_the_old_single_limit_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_REQUESTS", "100")
    with pytest.raises(ValidationError, match="RATE_LIMIT_REQUESTS is no longer read"):
        Settings()
