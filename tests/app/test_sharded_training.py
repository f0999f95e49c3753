"""Sharded training (`train --shard i/N`): the same models and promotions as one process, one
pointer update per run by the shard that completes it, a retried shard redoes nothing, the
training lock still keeps rollbacks and runs apart, bad input is refused by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.core.db import TRAIN_LOCK_KEY
from app.model.artifacts import HOLDOUT_FILE, ModelStore
from app.model.publication import rollback
from app.model.served_models import DISTRICT
from app.model.sharded_training import Shard, StaleRunError, run_shard
from app.model.training import run_training
from app.model.training_lock import TrainingLockedError
from tests.app.conftest import District
from tests.app.helpers import scalar
from tests.app.test_training import ROOT, cli_env, run_cli


def shards(n: int) -> list[Shard]:
    return [Shard(i, n) for i in range(n)]


def test_shards_assign_schools_by_id_modulo_n(untrained_district: District) -> None:
    d = untrained_district
    results = [run_shard(d.trainer, s, "nightly-1") for s in shards(3)]
    # Schools 1-5: 0/3 has 3, 1/3 has 1 and 4, 2/3 has 2 and 5 (all 60 students of school 5).
    assert [r.schools for r in results] == [1, 2, 2]
    assert [r.students for r in results] == [150, 300, 210]
    assert [r.published is not None for r in results] == [False, False, True]
    assert len({r.version for r in results}) == 1  # one run, one version


def test_sharded_run_matches_one_process(untrained_district: District, tmp_path: Path) -> None:
    d = untrained_district
    sharded = [run_shard(d.trainer, s, "nightly-1") for s in shards(3)][-1].published
    assert sharded is not None
    store = ModelStore(d.trainer.model_store_url)
    pointer = store.pointer()
    # One pointer update for the whole run.
    assert pointer.generation == 1 and pointer.history == []
    # School 4's own model is trained but not promoted (as in test_training).
    assert sorted(pointer.scopes) == ["district", "school-1", "school-2", "school-3"]
    assert set(pointer.scopes.values()) == {sharded.version}
    manifest = store.manifest(sharded.version)
    assert manifest is not None
    assert manifest["fallback_schools"] == [5]
    assert manifest["data"]["rows"] == 660 and manifest["data"]["shards"] == 3
    assert set(manifest["promotion"]) == {*pointer.scopes, "school-4"}
    holdout = json.loads(store.read_file(sharded.version, HOLDOUT_FILE) or b"{}")
    assert set(holdout) == set(manifest["promotion"])
    assert scalar(d.url, "SELECT count(*) FROM model_versions WHERE promoted_generation = 1") == 4
    active = scalar(d.url, "SELECT count(*) FROM students WHERE is_active")
    assert scalar(d.url, "SELECT count(*) FROM risk_scores WHERE generation = 1") == active

    # The same district trained in one process: the same models (same splits, same data).
    alone = run_training(d.trainer_with(model_store_url=str(tmp_path / "alone")))
    for scope, metrics in alone.metrics.items():
        assert sharded.metrics[scope]["auc"] == metrics["auc"], scope
        assert sharded.metrics[scope]["n_train"] == metrics["n_train"], scope
    assert sorted(sharded.promoted) == sorted(alone.promoted)


def test_retried_shard_redoes_nothing_and_the_last_publishes(
    untrained_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = untrained_district
    store = ModelStore(d.trainer.model_store_url)
    first = run_shard(d.trainer, Shard(0, 2), "nightly-1")

    def crash(*args: Any) -> None:
        raise RuntimeError("injected: the node went away while publishing")

    # Shard 1 completes the set, then dies while publishing: nothing is served yet.
    monkeypatch.setattr("app.model.publication.score_students", crash)
    with pytest.raises(RuntimeError, match="injected"):
        run_shard(d.trainer, Shard(1, 2), "nightly-1")
    monkeypatch.undo()
    assert store.pointer().generation == 0
    # Kubernetes retries index 1 alone: it trains nothing again and publishes.
    retried = run_shard(d.trainer, Shard(1, 2), "nightly-1")
    assert retried.schools == 0 and retried.published is not None
    assert retried.version == first.version
    assert store.pointer().generation == 1
    # A shard run again after the publication does nothing at all.
    again = run_shard(d.trainer, Shard(0, 2), "nightly-1")
    assert again.schools == 0 and again.published is None
    assert store.pointer().generation == 1


def test_shards_wait_for_shard_zero(untrained_district: District) -> None:
    d = untrained_district.trainer_with(shard_wait_seconds=0)
    with pytest.raises(RuntimeError, match="not opened by shard 0"):
        run_shard(d, Shard(1, 2), "nightly-1")
    run_shard(d, Shard(0, 2), "nightly-1")
    with pytest.raises(ValueError, match="has 2 shards, not 3"):
        run_shard(d, Shard(1, 3), "nightly-1")


def test_lock_keeps_rollbacks_and_runs_apart(fresh_district: District) -> None:
    d = fresh_district
    with psycopg.connect(d.url, autocommit=True) as holder:
        # A rollback (or a publication) holds the lock alone: no shard starts.
        holder.execute("SELECT pg_advisory_lock(%s)", (TRAIN_LOCK_KEY,))
        with pytest.raises(TrainingLockedError):
            run_shard(d.trainer, Shard(0, 2), "nightly-2")
        holder.execute("SELECT pg_advisory_unlock(%s)", (TRAIN_LOCK_KEY,))
        # A shard at work holds it shared: a rollback is refused until the shards let go.
        holder.execute("SELECT pg_advisory_lock_shared(%s)", (TRAIN_LOCK_KEY,))
        with pytest.raises(TrainingLockedError):
            rollback(d.trainer)
        holder.execute("SELECT pg_advisory_unlock_shared(%s)", (TRAIN_LOCK_KEY,))


def test_run_is_refused_when_the_served_models_changed_under_it(
    fresh_district: District,
) -> None:
    d = fresh_district
    store = ModelStore(d.trainer.model_store_url)
    run_shard(d.trainer, Shard(0, 2), "nightly-2")
    run_training(d.trainer)  # another run published meanwhile
    generation = store.pointer().generation
    with pytest.raises(StaleRunError, match="served models changed during the run"):
        run_shard(d.trainer, Shard(1, 2), "nightly-2")
    assert store.pointer().generation == generation


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["train", "--shard", "2/2", "--run", "r"], {}, "--shard '2/2': need N >= 1"),
        (["train", "--shard", "one/2", "--run", "r"], {}, "expected i/N"),
        (["train", "--shard", "0/2"], {}, "give --run or set TRAINING_RUN_ID"),
        (["train", "--shards", "2"], {}, "JOB_COMPLETION_INDEX is not set"),
    ],
)
def test_bad_shard_arguments_are_refused_by_name(
    district: District, args: list[str], env: dict[str, str], message: str
) -> None:
    proc = run_cli(args, cli_env(district, **env))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_indexed_job_pods_name_the_run_and_only_index_zero_imports(
    untrained_district: District, tmp_path: Path
) -> None:
    """In an Indexed Job each pod is <job>-<index> with JOB_COMPLETION_INDEX: `--shards N`."""
    d = untrained_district
    for index in (0, 1):
        env = cli_env(d, JOB_COMPLETION_INDEX=str(index), HOSTNAME=f"trainer-29012-{index}")
        if index:  # the other pods carry the import step too: it does nothing there
            skipped = run_cli(["import", str(tmp_path / "missing")], env)
            assert skipped.returncode == 0, skipped.stderr
            assert "import skipped" in skipped.stderr
        proc = run_cli(["train", "--shards", "2"], env)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["run_id"] == "trainer-29012"
        assert summary["shard"] == f"{index}/2"
        assert ("published" in summary) == (index == 1)
    assert ModelStore(d.trainer.model_store_url).pointer().scopes[DISTRICT]


def test_a_shard_with_no_school_records_itself_without_the_model_libraries(
    untrained_district: District,
) -> None:
    """Seven shards for schools 1-5: shards 0 and 6 get no school. Shard 0 still opens the
    run (the district model); shard 6's pod only records itself, in about a second, without
    importing scikit-learn or LightGBM, and the run publishes as any other."""
    d = untrained_district
    opened = run_shard(d.trainer, Shard(0, 7), "nightly-1")
    assert opened.schools == 0 and opened.published is None
    report = (
        "import atexit, runpy, sys; atexit.register(lambda: print('model libraries:',"
        " sorted({'sklearn', 'lightgbm'} & set(sys.modules)), file=sys.stderr));"
        " sys.argv = ['app', 'train', '--shard', '6/7', '--run', 'nightly-1'];"
        " runpy.run_module('app', run_name='__main__')"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MODEL_STORE_URL")}
    proc = subprocess.run(
        [sys.executable, "-c", report],
        cwd=ROOT,
        env={**base, **cli_env(d)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "model libraries: []" in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["shard"] == "6/7" and summary["schools"] == 0
    results = [run_shard(d.trainer, s, "nightly-1") for s in shards(7)[1:6]]
    assert [r.schools for r in results] == [1, 1, 1, 1, 1]
    published = results[-1].published
    assert published is not None
    store = ModelStore(d.trainer.model_store_url)
    manifest = store.manifest(published.version)
    assert manifest is not None
    assert manifest["data"]["rows"] == 660 and manifest["data"]["shards"] == 7
    assert sorted(store.pointer().scopes) == ["district", "school-1", "school-2", "school-3"]
