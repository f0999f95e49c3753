"""Settings refuse placeholder secrets outside development; the image and the demo work."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.logs import JsonFormatter
from app.core.settings import Settings, secrets_dir

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


def _projected_volume(root: Path, files: dict[str, str]) -> Path:
    """A directory laid out as the kubelet writes a Secret volume: each file a symlink into
    ``..data``, itself a symlink to the current timestamped copy."""
    current = root / "..2026_12_07_10_00_00.000000001"
    current.mkdir(parents=True)
    for name, text in files.items():
        (current / name).write_text(text + "\n")
        (root / name).symlink_to(Path("..data") / name)
    (root / "..data").symlink_to(current.name)
    return root


def test_credentials_are_read_from_the_mounted_secret_files(tmp_path: Path) -> None:
    mounted = _projected_volume(
        tmp_path / "secrets",
        {
            "DATABASE_URL": "postgresql://ssp_api:pw@db/ssp",
            "API_KEY_PEPPER": "a-real-secret-of-some-length",
            "DB_API_PASSWORD": "a-password-of-20-chars",
        },
    )
    directory = secrets_dir({"SECRETS_DIR": str(mounted)})
    settings = Settings(_secrets_dir=directory, environment="production")  # type: ignore[call-arg]
    assert settings.database_url == "postgresql://ssp_api:pw@db/ssp"  # the newline dropped
    assert settings.api_key_pepper == "a-real-secret-of-some-length"
    assert settings.db_api_password is not None
    assert settings.db_api_password.get_secret_value() == "a-password-of-20-chars"
    # A variable still wins over a file (a developer's shell, a test).
    overridden = Settings(_secrets_dir=directory, database_url="postgresql://x/y")  # type: ignore[call-arg]
    assert overridden.database_url == "postgresql://x/y"


def test_secrets_dir_unset_is_none_and_missing_is_refused(tmp_path: Path) -> None:
    assert secrets_dir({}) is None and secrets_dir({"SECRETS_DIR": " "}) is None
    with pytest.raises(ValueError, match=r"SECRETS_DIR='.*nowhere' is not a directory"):
        secrets_dir({"SECRETS_DIR": str(tmp_path / "nowhere")})


def test_the_cli_reads_its_credentials_from_secrets_dir(tmp_path: Path) -> None:
    mounted = _projected_volume(tmp_path / "secrets", {"API_KEY_PEPPER": "changeme"})
    env = {**os.environ, "ENVIRONMENT": "production", "SECRETS_DIR": str(mounted)}
    env.pop("API_KEY_PEPPER", None)
    env["DATABASE_URL"] = "postgresql://db/ssp"
    proc = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The placeholder came from the file: the file was read.
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
    # Both stages on one base, pinned by tag and digest: a re-pushed tag changes nothing.
    assert all(f.split()[1] == "${BASE}" for f in froms)
    (base,) = [line.removeprefix("ARG BASE=") for line in lines if line.startswith("ARG BASE=")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    assert "EXPOSE 8080" in lines
    assert "EXPOSE 9102" in lines  # the event worker's metrics and health
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("USER root", "USER 0")
    assert 'ENTRYPOINT ["python", "-m", "app"]' in lines
    assert 'CMD ["serve"]' in lines
    # Nothing compiles at a pod's start: the packages by pip, the app at the build.
    assert "PYTHONDONTWRITEBYTECODE=1 \\" in lines
    assert "RUN python -m compileall -q /srv/app" in lines
    assert not any("--no-compile" in line for line in lines)
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


@pytest.mark.parametrize("environment", ["test", "staging", "production"])
def test_placeholder_secret_is_refused_outside_development(environment: str) -> None:
    url = "postgresql://db/ssp"
    for pepper in ("changeme", "", "secret"):
        with pytest.raises(ValidationError, match="API_KEY_PEPPER is a placeholder"):
            Settings(environment=environment, api_key_pepper=pepper, database_url=url)
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(environment=environment, api_key_pepper="short-secret", database_url=url)
    ok = Settings(
        environment=environment, api_key_pepper="a-real-secret-of-length", database_url=url
    )
    assert ok.environment == environment


def test_hyperparameters_may_only_set_training_knobs(tmp_path: Path) -> None:
    from app.cli.main import main
    from app.cli.sagemaker import sagemaker_settings

    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    hyper = config / "hyperparameters.json"
    base = Settings(sagemaker_dir=tmp_path, model_store_url=str(tmp_path / "m"))
    hyper.write_text(json.dumps({"min_school_students": "500", "promotion_tolerance": "0.02"}))
    tuned = sagemaker_settings(base, "train")
    assert (tuned.min_school_students, tuned.promotion_tolerance) == (500, 0.02)
    hyper.write_text(
        json.dumps({"min_school_students": "500", "database_url": "postgresql://evil/db"})
    )
    with pytest.raises(ValueError, match="hyperparameters not allowed: database_url"):
        sagemaker_settings(base, "train")
    for name in ("api_key_pepper", "model_store_url", "environment"):
        hyper.write_text(json.dumps({name: "x"}))
        with pytest.raises(ValueError, match=f"not allowed: {name}"):
            sagemaker_settings(base, "train")
    # Through the CLI: a usage error, reported in SageMaker's failure file.
    env = {"SAGEMAKER_DIR": str(tmp_path), "MODEL_STORE_URL": str(tmp_path / "m")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from app.core.settings import get_settings

        get_settings.cache_clear()
        assert main(["train"]) == 2
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
    assert "not allowed: environment" in (tmp_path / "output" / "failure").read_text()
