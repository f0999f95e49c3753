"""The model commands: `train` (in one process, or one shard of a run), `report`, `rollback`,
`refresh-features`, and the SageMaker endpoint's `publish-sagemaker` and `rollout-sagemaker`.
`train` and `rollback` roll the endpoint themselves when the stack has one."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from app.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from app.cli.sagemaker import SAGEMAKER_ARCHIVE
from app.core.settings import Settings


def train_command(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "shard", None) or getattr(args, "shards", None):
        return train_shard_command(args, settings)
    from app.model.training import run_training
    from app.model.training_lock import EXIT_LOCKED, TrainingLockedError

    try:
        trained = run_training(settings)
    except TrainingLockedError as exc:
        print(f"training skipped: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    summary = {k: v for k, v in trained.__dict__.items() if k != "metrics"}
    summary["district_metrics"] = trained.metrics.get("district")
    print(json.dumps(summary))
    return roll_endpoint(settings)


def shard_of(args: argparse.Namespace, env: dict[str, str]) -> tuple[str, str]:
    """(i/N, run id) of `train --shard i/N` or, in an Indexed Job, of `train --shards N`: the
    index is JOB_COMPLETION_INDEX and the run is the Job (pods are named <job>-<index>)."""
    run = args.run or env.get("TRAINING_RUN_ID", "")
    if args.shards is None:
        spec = args.shard
    else:
        index = env.get("JOB_COMPLETION_INDEX", "")
        if not index.isdigit():
            raise ValueError("--shards N runs in an Indexed Job: JOB_COMPLETION_INDEX is not set")
        spec = f"{index}/{args.shards}"
        suffix = f"-{index}"
        if not run and env.get("HOSTNAME", "").endswith(suffix):
            run = env["HOSTNAME"].removesuffix(suffix)
    if not run:
        raise ValueError("a sharded run needs its id: give --run or set TRAINING_RUN_ID")
    return spec, run


def train_shard_command(args: argparse.Namespace, settings: Settings) -> int:
    """`train --shard i/N` / `--shards N`: one shard; the last one publishes the run."""
    from app.model.sharded_training import Shard, StaleRunError, run_shard
    from app.model.training_lock import EXIT_LOCKED, TrainingLockedError

    try:
        spec, run_id = shard_of(args, dict(os.environ))
        done = run_shard(settings, Shard.parse(spec), run_id)
    except ValueError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingLockedError as exc:
        print(f"training skipped: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except StaleRunError as exc:
        print(f"training refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except RuntimeError as exc:  # shard 0 never opened the run, or nothing to train on
        print(f"training failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    summary: dict[str, Any] = {k: v for k, v in done.__dict__.items() if k != "published"}
    if done.published is not None:
        summary["published"] = {
            "generation": done.published.generation,
            "seconds": done.published.seconds,
            "promoted": len(done.published.promoted),
            "kept": len(done.published.kept),
            "fallback_schools": len(done.published.fallback_schools),
            "district_metrics": done.published.metrics.get("district"),
        }
    print(json.dumps(summary))
    return roll_endpoint(settings) if done.published is not None else EXIT_OK


def report_command(args: argparse.Namespace, settings: Settings) -> int:
    from app.model.artifacts import ModelStore
    from app.model.report import write_reports

    try:
        written = write_reports(ModelStore(settings.model_store_url), args.version)
    except ValueError as exc:
        print(f"report failed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({"written": written}))
    return EXIT_OK


def rollback_command(args: argparse.Namespace, settings: Settings) -> int:
    from app.model.artifacts import StaleGenerationError
    from app.model.publication import rollback
    from app.model.training_lock import EXIT_LOCKED, TrainingLockedError

    try:
        pointer = rollback(settings, args.to_version)
    except TrainingLockedError as exc:
        print(f"rollback skipped: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except ValueError as exc:
        print(f"rollback failed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StaleGenerationError as exc:
        print(f"rollback refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({"generation": pointer.generation, "scopes": pointer.scopes}))
    return roll_endpoint(settings)


def refresh_features_command(args: argparse.Namespace, settings: Settings) -> int:
    from app.core import db
    from app.core.logins import TRAINER_LOGIN

    with db.connect_as(settings, TRAINER_LOGIN, autocommit=True) as conn:
        db.refresh_features(conn, settings.school_year_start_month)
    return EXIT_OK


def publish_sagemaker_command(args: argparse.Namespace, settings: Settings) -> int:
    from app.model.artifacts import ModelStore, backend_for

    try:
        archive = ModelStore(settings.model_store_url).export_archive()
    except (ValueError, FileNotFoundError) as exc:
        print(f"publish failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    backend_for(args.destination).write(SAGEMAKER_ARCHIVE, archive)
    print(json.dumps({"written": f"{args.destination.rstrip('/')}/{SAGEMAKER_ARCHIVE}"}))
    return EXIT_OK


def rollout_sagemaker_command(args: argparse.Namespace, settings: Settings) -> int:
    return roll_endpoint(settings, required=True)


def roll_endpoint(settings: Settings, required: bool = False) -> int:
    """Roll the stack's SageMaker endpoint (if it has one) to the served models."""
    from app.jobs.sagemaker_rollout import RolloutFailedError, rollout
    from app.model.artifacts import ModelStore

    if not settings.sagemaker_endpoint_name and not required:
        return EXIT_OK
    try:
        done = rollout(settings, ModelStore(settings.model_store_url).pointer())
    except ValueError as exc:
        print(f"rollout not possible: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RolloutFailedError as exc:
        print(f"rollout failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({"endpoint": done.__dict__}))
    return EXIT_OK
