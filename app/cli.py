"""One CLI for the image: `python -m app <command>` (the image's entrypoint).

SageMaker runs the image with the argument `serve` (inference) or `train` (training job); both
follow its /opt/ml contract when that directory is present.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.auth import KEY_CLASSES
from app.config import Settings, get_settings
from app.logs import setup_logging

log = logging.getLogger("app.cli")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATA = 65  # EX_DATAERR: the bundle has problems; nothing was written
EXIT_BUSY = 75  # EX_TEMPFAIL: another import holds the lock; try again later

# The settings a SageMaker training job may set through hyperparameters.json.
TRAINING_HYPERPARAMETERS = frozenset(
    {
        "min_school_students",
        "promotion_tolerance",
        "alert_threshold",
        "test_fraction",
        "random_seed",
        "keep_versions",
    }
)


# The name the Inference component's model_data_url expects under its prefix.
SAGEMAKER_ARCHIVE = "model.tar.gz"


def sagemaker_settings(settings: Settings, command: str) -> Settings:
    """Apply SageMaker's contract when its directory exists: hyperparameters override settings
    and, unless MODEL_STORE_URL is set, models go to (train) or come from (serve) /opt/ml/model."""
    root = settings.sagemaker_dir
    if not root.exists():
        return settings
    overrides: dict[str, Any] = {}
    hyper = root / "input" / "config" / "hyperparameters.json"
    if command == "train" and hyper.exists():
        given = json.loads(hyper.read_text())
        # Only training knobs: a hyperparameter must not redirect the database, the model
        # store or the secrets of the job.
        refused = sorted(set(given) - TRAINING_HYPERPARAMETERS)
        if refused:
            raise ValueError(
                f"hyperparameters not allowed: {', '.join(refused)};"
                f" allowed: {', '.join(sorted(TRAINING_HYPERPARAMETERS))}"
            )
        overrides.update(given)
    if "model_store_url" not in settings.model_fields_set and (root / "model").exists():
        overrides["model_store_url"] = str(root / "model")
    if not overrides:
        return settings
    return Settings.model_validate({**settings.model_dump(exclude_unset=True), **overrides})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (and SageMaker /ping, /invocations)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    sub.add_parser("migrate", help="apply pending schema migrations")
    gen = sub.add_parser("generate", help="load a synthetic district")
    gen.add_argument("--schools", type=int, default=50)
    gen.add_argument("--students", type=int, default=1000, help="students per school")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--days", type=int, default=60, help="school days of attendance")
    gen.add_argument(
        "--school-contrast",
        type=float,
        default=1.0,
        help="how differently schools' dropout depends on grade (above 1: own models win)",
    )
    imp = sub.add_parser("import", help="import a district's CSV bundle (native or OneRoster)")
    imp.add_argument(
        "source", nargs="?", help="a directory or s3://bucket/prefix (default: IMPORT_SOURCE_URL)"
    )
    imp.add_argument(
        "--dry-run", action="store_true", help="validate and count changes; write nothing"
    )
    train = sub.add_parser("train", help="train, evaluate, version and promote models")
    which = train.add_mutually_exclusive_group()
    which.add_argument(
        "--shard", metavar="i/N", help="train shard i of N of run --run (app/shards.py)"
    )
    which.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="in a Kubernetes Indexed Job: shard JOB_COMPLETION_INDEX of N, run named by the Job",
    )
    train.add_argument("--run", help="the sharded run's id (default: TRAINING_RUN_ID)")
    report = sub.add_parser("report", help="write the model-quality report of training runs")
    report.add_argument("--version", help="this run only (default: every run without one)")
    rb = sub.add_parser("rollback", help="serve the previous models again")
    rb.add_argument("--to", dest="to_version", help="a version to serve for all its scopes")
    publish = sub.add_parser(
        "publish-sagemaker", help="package the served models as model.tar.gz for SageMaker"
    )
    publish.add_argument(
        "destination", help="s3://bucket/prefix or a directory; model.tar.gz is written there"
    )
    sub.add_parser(
        "rollout-sagemaker", help="roll the SageMaker endpoint to the served models (blue/green)"
    )
    sub.add_parser("archive", help="export and drop audit-log partitions past retention")
    sub.add_parser("refresh-features", help="refresh the student_features view")
    sub.add_parser("worker", help="rescore students as their events arrive (until SIGTERM)")
    key = sub.add_parser("create-key", help="create an API key (printed once)")
    key.add_argument("--name", required=True)
    scope = key.add_mutually_exclusive_group(required=True)
    scope.add_argument("--school-id", type=int)
    scope.add_argument("--district-id", type=int)
    key.add_argument(
        "--class",
        dest="key_class",
        choices=KEY_CLASSES,
        default="interactive",
        help="which rate limit applies: people using an app (interactive, the default) or a "
        "machine client sending batches (integration)",
    )
    revoke = sub.add_parser("revoke-key", help="deactivate an API key on every replica")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="client_id", type=int, help="the client id")
    which.add_argument("--prefix", help="the key's public prefix (ssp_<prefix>_...)")
    sub.add_parser("list-keys", help="list the API keys (never the keys themselves)")
    move = sub.add_parser(
        "move-district", help="move a district to another region's database (docs/tier4.md)"
    )
    move.add_argument("--district", type=int, required=True)
    move.add_argument("--source", required=True, help="the home region's database, as master")
    move.add_argument("--target", required=True, help="the new region's database, as master")
    move.add_argument("--target-region", required=True, help="the new home region, e.g. us-west-2")
    move.add_argument("--drain-seconds", type=float, help="default: DIRECTORY_CACHE_SECONDS")
    move.add_argument("--keep-source", action="store_true", help="leave the source's rows")
    args = parser.parse_args(argv)

    try:
        settings = sagemaker_settings(get_settings(), args.command)
    except ValueError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        root = get_settings().sagemaker_dir if args.command == "train" else None
        if root is not None and root.exists():  # SageMaker reports this file as the reason
            (root / "output").mkdir(parents=True, exist_ok=True)
            (root / "output" / "failure").write_text(f"invalid settings: {exc}")
        return EXIT_USAGE
    setup_logging(settings.log_level)
    try:
        return run(args, settings)
    except Exception as exc:
        log.exception("command failed", extra={"command": args.command})
        if args.command == "train" and settings.sagemaker_dir.exists():
            failure = settings.sagemaker_dir / "output" / "failure"
            failure.parent.mkdir(parents=True, exist_ok=True)
            failure.write_text(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED


def worker_app() -> Any:
    """The app of one worker process of `serve` with WORKERS > 1. Workers are fresh
    interpreters: they resolve the settings as the parent did (SageMaker's contract included,
    so the models come from /opt/ml/model there) and set up the same logging."""
    from app.api.main import create_app

    settings = sagemaker_settings(get_settings(), "serve")
    setup_logging(settings.log_level)
    return create_app(settings)


def metrics_directory() -> Path:
    """The directory the workers write their metrics to (PROMETHEUS_MULTIPROC_DIR, inherited
    by the worker processes): the one given, emptied of a previous run's files, or a new one."""
    from app.api.metrics import MULTIPROC_DIR

    if given := os.environ.get(MULTIPROC_DIR):
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="ssp-metrics-"))
        os.environ[MULTIPROC_DIR] = str(directory)
    return directory


def roll_endpoint(settings: Settings, required: bool = False) -> int:
    """Roll the stack's SageMaker endpoint (if it has one) to the served models."""
    from app.sagemaker_rollout import RolloutFailedError, rollout
    from app.store import ModelStore

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


def server_options(settings: Settings, host: str | None, port: int | None) -> dict[str, Any]:
    """uvicorn's options for `serve`."""
    from app.config import proxy_networks

    proxies = proxy_networks(settings.forwarded_allow_ips)
    return {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_config": None,
        "loop": "uvloop",
        "http": "httptools",
        "timeout_keep_alive": settings.keep_alive_seconds,
        # X-Forwarded-For is believed from the configured proxies only (uvicorn's own default
        # would trust 127.0.0.1, so anything local could pick its address); none by default.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies,
    }


def run_import_command(settings: Settings, source: str, dry_run: bool) -> int:
    """Every problem on stderr, one a line; the counts per table as JSON on stdout."""
    from app.importer import ImportLockedError, run_import

    try:
        result = run_import(settings, source, dry_run=dry_run, progress=sys.stderr.isatty())
    except ImportLockedError as exc:
        print(f"import skipped: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except ValueError as exc:  # the source itself: not a directory, no bucket
        print(f"import failed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for problem in result.problems:
        print(problem, file=sys.stderr)
    if result.problems:  # the line the nightly pipeline's alarm matches
        log.error("import rejected", extra={"problems": len(result.problems), "source": source})
    print(json.dumps(result.summary()))
    return EXIT_DATA if result.problems else EXIT_OK


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app import db

    if args.command == "serve":
        import uvicorn

        from app.api.main import create_app

        workers = args.workers or settings.workers
        options = server_options(settings, args.host, args.port)
        if workers > 1:  # each worker process builds its own app: see worker_app
            metrics_directory()
            uvicorn.run("app.cli:worker_app", factory=True, workers=workers, **options)
        else:
            uvicorn.run(create_app(settings), **options)
        return EXIT_OK
    if args.command == "migrate":
        applied = db.migrate(settings)
        print(json.dumps({"applied": applied}))
        return EXIT_OK
    if args.command == "generate":
        from app.generate import generate

        with db.connect_owner(settings) as conn:
            result = generate(
                conn,
                args.schools,
                args.students,
                seed=args.seed,
                days=args.days,
                school_contrast=args.school_contrast,
            )
        print(json.dumps(result.__dict__))
        return EXIT_OK
    if args.command == "import" and os.environ.get("JOB_COMPLETION_INDEX", "0") != "0":
        # The nightly Indexed Job's pods all carry the import step; index 0's does it, once.
        print("import skipped: index 0 of the training Job imports the export", file=sys.stderr)
        return EXIT_OK
    if args.command == "import":
        source = args.source or settings.import_source_url
        if not source:
            print("import: give SOURCE or set IMPORT_SOURCE_URL", file=sys.stderr)
            return EXIT_USAGE
        return run_import_command(settings, source, args.dry_run)
    if args.command == "train" and (getattr(args, "shard", None) or getattr(args, "shards", None)):
        return train_shard_command(args, settings)
    if args.command == "train":
        from app.train import EXIT_LOCKED, TrainingLockedError, run_training

        try:
            trained = run_training(settings)
        except TrainingLockedError as exc:
            print(f"training skipped: {exc}", file=sys.stderr)
            return EXIT_LOCKED
        summary = {k: v for k, v in trained.__dict__.items() if k != "metrics"}
        summary["district_metrics"] = trained.metrics.get("district")
        print(json.dumps(summary))
        return roll_endpoint(settings)
    if args.command == "report":
        from app.report import write_reports
        from app.store import ModelStore

        try:
            written = write_reports(ModelStore(settings.model_store_url), args.version)
        except ValueError as exc:
            print(f"report failed: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(json.dumps({"written": written}))
        return EXIT_OK
    if args.command == "rollback":
        from app.store import StaleGenerationError
        from app.train import EXIT_LOCKED, TrainingLockedError, rollback

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
    if args.command == "rollout-sagemaker":
        return roll_endpoint(settings, required=True)
    if args.command == "publish-sagemaker":
        from app.store import ModelStore, backend_for

        try:
            archive = ModelStore(settings.model_store_url).export_archive()
        except (ValueError, FileNotFoundError) as exc:
            print(f"publish failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        backend_for(args.destination).write(SAGEMAKER_ARCHIVE, archive)
        print(json.dumps({"written": f"{args.destination.rstrip('/')}/{SAGEMAKER_ARCHIVE}"}))
        return EXIT_OK
    if args.command == "archive":
        from app.archive import run_archive

        done = run_archive(settings)
        print(json.dumps({"archived": [d.__dict__ for d in done]}))
        return EXIT_OK
    if args.command == "worker":
        from app.events.worker import run_worker

        return run_worker(settings)
    if args.command == "refresh-features":
        with db.connect_as(settings, db.TRAINER_LOGIN, autocommit=True) as conn:
            db.refresh_features(conn)
        return EXIT_OK
    if args.command == "create-key":
        from app.auth import create_key

        with db.connect_owner(settings) as conn:
            client_id, key = create_key(
                conn,
                settings.api_key_pepper,
                args.name,
                args.school_id,
                args.district_id,
                args.key_class,
            )
        print(json.dumps({"client_id": client_id, "api_key": key, "class": args.key_class}))
        return EXIT_OK
    if args.command in ("revoke-key", "list-keys"):
        return keys_command(args, settings)
    if args.command == "move-district":
        return move_command(args, settings)
    raise AssertionError(args.command)


def move_command(args: argparse.Namespace, settings: Settings) -> int:
    """The counts and hashes per table as JSON; why it stopped on stderr."""
    from app.district_move import Directory, MoveError, move_district

    if not settings.district_directory_table:
        print("move-district: set DISTRICT_DIRECTORY_TABLE", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = move_district(
            args.district,
            args.source,
            args.target,
            args.target_region,
            Directory(settings.district_directory_table, settings.home_region),
            drain_seconds=(
                settings.directory_cache_seconds
                if args.drain_seconds is None
                else args.drain_seconds
            ),
            keep_source=args.keep_source,
        )
    except MoveError as exc:
        print(f"move-district failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result.summary()))
    return EXIT_OK


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
    from app.shards import Shard, StaleRunError, run_shard
    from app.train import EXIT_LOCKED, TrainingLockedError

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


def keys_command(args: argparse.Namespace, settings: Settings) -> int:
    """`list-keys`, and `revoke-key`: deactivated in the database, then announced through
    Redis so that every replica forgets the key within about a second."""
    from app import db
    from app.auth import announce_revocation, list_keys, revoke_key
    from app.cache import Cache

    with db.connect_owner(settings) as conn:
        if args.command == "list-keys":
            print(json.dumps(list_keys(conn), default=str))
            return EXIT_OK
        revoked = revoke_key(conn, args.client_id, args.prefix)
    if not revoked:
        print("no active key matches", file=sys.stderr)
        return EXIT_USAGE
    announced = announce_revocation(Cache(settings.redis_url, settings.cache_prefix))
    if not announced and settings.redis_url:
        log.warning(
            "revocation not announced (Redis unavailable): replicas may accept the key for 30 s"
        )
    print(json.dumps({"revoked": revoked, "announced": announced}))
    return EXIT_OK
