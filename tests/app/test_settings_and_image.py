"""Settings refuse placeholder secrets outside development; the image and the demo work."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.logs import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]


def test_placeholder_secret_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="API_KEY_PEPPER is a placeholder"):
        Settings(environment="production", api_key_pepper="changeme", database_url="postgresql://x")
    with pytest.raises(ValidationError, match="DATABASE_URL must be set"):
        Settings(environment="production", api_key_pepper="a-real-secret-of-some-length")
    ok = Settings(
        environment="production",
        api_key_pepper="a-real-secret-of-some-length",
        database_url="postgresql://db/ssp",
    )
    assert ok.environment == "production"
    assert Settings(environment="development").api_key_pepper == "changeme"


def test_cli_exits_with_usage_error_on_placeholder() -> None:
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "API_KEY_PEPPER": "changeme",
        "DATABASE_URL": "postgresql://db/ssp",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "API_KEY_PEPPER is a placeholder" in proc.stderr


def test_logs_are_json_with_extra_fields() -> None:
    record = logging.LogRecord("app.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.route = "/ping"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "hello you"
    assert line["level"] == "INFO"
    assert line["route"] == "/ping"
    assert line["logger"] == "app.x"


def test_dockerfile_contract() -> None:
    text = (ROOT / "app" / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) == 2  # multi-stage
    assert all("python:3.11." in f and "-slim" in f for f in froms)  # pinned slim base
    assert "EXPOSE 8080" in lines
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("USER root", "USER 0")
    assert 'ENTRYPOINT ["python", "-m", "app"]' in lines
    assert 'CMD ["serve"]' in lines
    assert "requirements.txt" in text
    for req in ("requirements.txt", "requirements-test.txt"):
        for line in (ROOT / "app" / req).read_text().splitlines():
            if line and not line.startswith("#"):
                assert "==" in line, f"{req}: {line} is not pinned"


def test_demo_runs_end_to_end() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app.demo", "--schools", "2", "--students", "120"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "GET /v1/schools/1/at-risk?limit=5 -> 200" in out
    assert "POST /invocations -> 200" in out
    assert "same again: cache hit" in out
    assert "server and database stopped" in out
