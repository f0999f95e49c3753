"""Training job: per-school models with district fallback, manifest, promotion rule, lock,
atomic promotion under a crash, retention of 5 versions, rollback, SageMaker contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import make_conninfo

from app.api.main import create_app
from app.core.db import TRAIN_LOCK_KEY
from app.model.artifacts import ModelStore
from app.model.features import INDICATOR_FEATURES, STANDARD_FEATURES
from app.model.publication import rollback
from app.model.risk_model import FastRiskModel, RiskModel, fast_model
from app.model.training import run_training
from app.model.training_lock import EXIT_LOCKED, TrainingLockedError
from tests.app.conftest import District
from tests.app.helpers import auth, scalar

ROOT = Path(__file__).resolve().parents[2]


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MODEL_STORE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_env(d: District, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": d.trainer.database_url or "",
        "MODEL_STORE_URL": d.settings.model_store_url,
        "API_KEY_PEPPER": d.settings.api_key_pepper,
        "ENVIRONMENT": "test",
        "MIN_SCHOOL_STUDENTS": "100",
        "DB_WAIT_SECONDS": "1",
        "SAGEMAKER_DIR": str(d.tmp_root / "no-sagemaker"),
        **extra,
    }


def test_first_training_promotes_per_school_and_district(district: District) -> None:
    store = ModelStore(district.settings.model_store_url)
    pointer = store.pointer()
    assert pointer.generation == 1
    # Schools 1-4 have 150 students (>= 100): own models. School 5 (60) uses the district's,
    # and so does school 4: the district model, reading the indicators, ranks its held-out
    # students almost as well (AUC 0.91), and its own model's gain is not one they support.
    assert sorted(pointer.scopes) == ["district", "school-1", "school-2", "school-3"]
    assert "school-4" in (store.manifest(pointer.scopes["district"]) or {})["promotion"]
    version = pointer.scopes["district"]
    manifest = store.manifest(version)
    assert manifest is not None
    assert manifest["fallback_schools"] == [5]
    # No district feature declared; the indicators' figures are known: feature set 3.
    assert manifest["features"] == [*STANDARD_FEATURES, *INDICATOR_FEATURES]
    assert manifest["feature_set"] == 3
    assert manifest["data"]["rows"] == 660
    assert len(manifest["data"]["sha256"]) == 64
    assert manifest["code_version"].startswith("0.1.0+")
    district_metrics = manifest["metrics"]["district"]
    assert set(district_metrics) >= {
        "auc",
        "accuracy",
        "brier",
        "recall_at_threshold",
        "ppv",
        "false_alarm_rate",
        "precision_at_k",
        "recall_at_k",
        "caseload_k",
        "threshold",
        "n_test",
        "positives_test",
        "negatives_test",
        "n_train",
    }
    assert manifest["split"]["kind"] == "random"  # one school year of outcomes
    assert district_metrics["auc"] > 0.7
    assert 0 < district_metrics["brier"] < 0.2
    assert district_metrics["n_test"] + district_metrics["n_train"] == 660
    assert (
        scalar(district.url, "SELECT count(*) FROM model_versions WHERE promoted_generation = 1")
        == 4
    )
    # Every active student is scored under generation 1 (the at-risk list reads these).
    active = scalar(district.url, "SELECT count(*) FROM students WHERE is_active")
    assert scalar(district.url, "SELECT count(*) FROM risk_scores WHERE generation = 1") == active


def test_worse_model_is_not_promoted(
    fresh_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(fresh_district.settings.model_store_url)
    before = store.pointer()
    real_evaluate = __import__("app.model.scopes", fromlist=["evaluate"]).evaluate

    def worse(*args: Any) -> dict[str, float]:
        return {**real_evaluate(*args), "auc": 0.5}

    monkeypatch.setattr("app.model.scopes.evaluate", worse)
    result = run_training(fresh_district.trainer)
    assert result.promoted == []
    # Every scope fitted is refused (school 4's too, which the district model serves).
    assert sorted(result.kept) == sorted({*before.scopes, "school-4"})
    assert store.pointer().scopes == before.scopes
    assert store.pointer().generation == before.generation


def test_second_run_is_refused_while_lock_is_held(fresh_district: District) -> None:
    with psycopg.connect(fresh_district.url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (TRAIN_LOCK_KEY,))
        with pytest.raises(TrainingLockedError):
            run_training(fresh_district.trainer)
        proc = run_cli(["train"], cli_env(fresh_district))
        assert proc.returncode == EXIT_LOCKED
        assert "another training run holds the lock" in proc.stderr
        # Unlocked explicitly: a closed session's locks go only once its backend has exited.
        holder.execute("SELECT pg_advisory_unlock(%s)", (TRAIN_LOCK_KEY,))
    # Released: the next run goes ahead.
    assert run_training(fresh_district.trainer).generation == 2


def test_crash_before_pointer_flip_leaves_served_model_untouched(
    fresh_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fresh_district.settings
    store = ModelStore(settings.model_store_url)
    before = store.pointer()
    with TestClient(create_app(settings)) as api:
        served = api.get("/v1/students/1/risk", headers=auth(fresh_district.keys["school1"]))
        assert served.json()["model_version"] == before.scopes["school-1"]

        def crash(self: ModelStore, pointer: object) -> None:
            raise RuntimeError("injected crash before the pointer flip")

        monkeypatch.setattr(ModelStore, "write_pointer", crash)
        with pytest.raises(RuntimeError, match="injected crash"):
            run_training(fresh_district.trainer)
        monkeypatch.undo()

        after = store.pointer()
        assert after.to_json() == before.to_json()
        assert len(store.versions()) == 1  # the failed run's artifacts are gone
        again = api.get("/v1/students/1/risk", headers=auth(fresh_district.keys["school1"]))
        assert again.status_code == 200
        assert again.json()["model_version"] == before.scopes["school-1"]
        assert again.json()["generation"] == before.generation
        page = api.get(
            "/v1/schools/1/at-risk",
            params={"min_risk": 0},
            headers=auth(fresh_district.keys["school1"]),
        )
        assert page.status_code == 200
        assert {i["model_version"] for i in page.json()["items"]} == {before.scopes["school-1"]}
    # The unpromoted version is recorded, not promoted: no generation the pointer reached.
    unpromoted = scalar(
        fresh_district.url,
        "SELECT count(*) FROM model_versions WHERE NOT coalesce(promoted_generation <= %s, false)",
        (after.generation,),
    )
    assert unpromoted == 6  # this run's five, and school 4's model of the first run
    # A crash inside the lock released it: the next run works and promotes.
    assert run_training(fresh_district.trainer).generation == before.generation + 1


def test_keeps_last_five_versions_and_rolls_back(fresh_district: District) -> None:
    # Only the district model (every school falls back) keeps the six runs quick.
    settings = fresh_district.trainer_with(min_school_students=1000)
    store = ModelStore(settings.model_store_url)
    versions = [store.pointer().scopes["district"]]
    for _ in range(6):
        versions.append(run_training(settings).version)
    assert store.versions() == versions[-5:]
    pointer = store.pointer()
    assert pointer.generation == 7
    assert pointer.scopes["district"] == versions[-1]
    assert len(pointer.history) == 4

    back = rollback(settings)
    assert back.generation == 8
    assert back.scopes["district"] == versions[-2]
    assert "school-1" not in store.pointer().scopes
    active = scalar(fresh_district.url, "SELECT count(*) FROM students WHERE is_active")
    assert (
        scalar(
            fresh_district.url,
            "SELECT count(*) FROM risk_scores WHERE generation = 8 AND model_version = %s",
            (versions[-2],),
        )
        == active
    )

    proc = run_cli(["rollback", "--to", versions[-1]], cli_env(fresh_district))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["scopes"]["district"] == versions[-1]
    proc = run_cli(["rollback", "--to", "19990101T000000000000Z"], cli_env(fresh_district))
    assert proc.returncode == 2
    assert "not in the store" in proc.stderr


def test_rollback_without_history_fails_clearly(fresh_district: District) -> None:
    with pytest.raises(ValueError, match="no history"):
        rollback(fresh_district.trainer)


def test_sagemaker_training_contract(fresh_district: District, tmp_path: Path) -> None:
    ml = tmp_path / "ml"
    (ml / "input" / "config").mkdir(parents=True)
    (ml / "model").mkdir()
    # Hyperparameters arrive as strings; this one makes every school fall back.
    (ml / "input" / "config" / "hyperparameters.json").write_text('{"min_school_students": "1000"}')
    env = cli_env(fresh_district, SAGEMAKER_DIR=str(ml))
    env.pop("MODEL_STORE_URL")
    proc = run_cli(["train"], env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["fallback_schools"] == [1, 2, 3, 4, 5]
    pointer = json.loads((ml / "model" / "current.json").read_text())
    assert list(pointer["scopes"]) == ["district"]

    # A failure is reported in /opt/ml/output/failure with a non-zero exit.
    bad = {**env, "DATABASE_URL": make_conninfo(env["DATABASE_URL"], dbname="missing_db")}
    proc = run_cli(["train"], bad)
    assert proc.returncode == 1
    assert "missing_db" in (ml / "output" / "failure").read_text()


def test_served_numpy_twin_matches_sklearn(district: District) -> None:
    """Serving uses a numpy evaluation of each model; it must give sklearn's probabilities."""
    store = ModelStore(district.settings.model_store_url)
    rng = np.random.default_rng(0)
    current = np.column_stack([
        rng.integers(6, 13, 300), rng.random(300), rng.integers(0, 30, 300),
        rng.integers(0, 10, 300), rng.random(300) * 100, rng.random(300) * 60,
        rng.integers(0, 6, 300), rng.integers(0, 5, 300), rng.integers(0, 3, 300),
    ]).astype(np.float64)  # fmt: skip
    prior = current[:, 1:] * rng.uniform(0.5, 1.5, (300, 8))
    prior[rng.random(300) < 0.3] = np.nan  # no record last year
    x = np.hstack([current, prior])
    assert x.shape[1] == len(STANDARD_FEATURES)
    for scope, version in store.pointer().scopes.items():
        model = store.load_model(version, scope)
        assert isinstance(model, RiskModel), scope
        twin = fast_model(model)
        assert isinstance(twin, FastRiskModel), scope
        np.testing.assert_allclose(twin.predict_proba(x), model.predict_proba(x), atol=1e-12)


def test_rollback_racing_a_promotion_keeps_it_and_never_reuses_a_generation(
    fresh_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promotion that finishes while a rollback waits to start is rolled back from, not
    overwritten: the rollback reads the pointer under the lock."""
    import app.model.training_lock

    # No retention: only the served generation's scores and its predecessor's are kept.
    settings = fresh_district.trainer_with(min_school_students=1000, score_retention_seconds=0)
    store = ModelStore(settings.model_store_url)
    second = run_training(settings)  # generation 2: district only
    real_connect = app.model.training_lock.connect_as
    promoted: list[Any] = []

    def racing_connect(s: Any, login: str, autocommit: bool = False) -> psycopg.Connection[Any]:
        if not promoted:  # a training run promotes just before the rollback takes the lock
            promoted.append(None)
            promoted[0] = run_training(settings)
        return real_connect(s, login, autocommit)

    monkeypatch.setattr(app.model.training_lock, "connect_as", racing_connect)
    back = rollback(settings)
    third = promoted[0]
    assert third.generation == 3
    assert back.generation == 4  # stacked on the promotion, not a reuse of its generation
    # Rolled back one step from what was served when the lock was taken (the promotion).
    assert back.scopes == {"district": second.version}
    assert store.pointer().generation == 4
    rows = scalar(fresh_district.url, "SELECT count(DISTINCT generation) FROM risk_scores")
    assert rows == 2  # generations 3 and 4, one scoring each


def test_pointer_generations_only_grow(fresh_district: District) -> None:
    from app.model.artifacts import StaleGenerationError

    store = ModelStore(fresh_district.settings.model_store_url)
    current = store.pointer()
    stale = store.next_pointer(current, current.scopes, "now", 5)
    stale.generation = current.generation  # same generation, different history
    with pytest.raises(StaleGenerationError, match="already at generation 1"):
        store.write_pointer(stale)
    assert store.pointer() == current


def test_registry_never_goes_back_a_generation(fresh_district: District, tmp_path: Path) -> None:
    from app.model.artifacts import POINTER
    from app.model.served_models import ModelRegistry

    settings = fresh_district.trainer_with(min_school_students=1000)
    store = ModelStore(settings.model_store_url)
    old = store.pointer().to_json()
    new = run_training(settings)
    registry = ModelRegistry(store, refresh_seconds=0)
    assert registry.generation == new.generation
    store.backend.write(POINTER, old)  # e.g. a stale replica or a restored backup
    assert registry.generation == new.generation
    assert registry.scope_for(1) == ("district", new.version)


def test_store_errors_keep_serving_the_last_good_models(
    fresh_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fresh_district.settings
    with TestClient(create_app(settings)) as api:
        body = {"instances": [FEATURES_ROW]}
        first = api.post("/invocations", json=body)
        assert first.status_code == 200

        calls: list[int] = []

        def broken(self: ModelStore) -> Any:
            calls.append(1)
            raise OSError("S3 is down")

        monkeypatch.setattr(ModelStore, "pointer", broken)
        for _ in range(3):
            again = api.post("/invocations", json=body)
            assert again.status_code == 200, again.text
            assert again.json() == first.json()
        assert api.get("/ping").status_code == 200
        assert len(calls) == 1  # backed off after the failure instead of retrying each request
        risk = api.get("/v1/students/1/risk", headers=auth(fresh_district.keys["school1"]))
        assert risk.status_code == 200, risk.text


FEATURES_ROW = {
    "grade": 9,
    "attendance_rate": 0.8,
    "absences": 10,
    "lates": 2,
    "avg_mark": 55,
    "min_mark": 30,
    "failed_exams": 1,
    "incidents": 1,
    "severe_incidents": 0,
}
