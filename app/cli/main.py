"""One CLI for the image: `python -m app <command>` (the image's entrypoint).

SageMaker runs the image with the argument `serve` (inference) or `train` (training job); both
follow its /opt/ml contract when that directory is present.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from app.cli import data, keys, lifecycle, serving, training
from app.cli.exit_codes import EXIT_FAILED, EXIT_USAGE
from app.cli.sagemaker import sagemaker_settings, write_failure
from app.core.logs import setup_logging
from app.core.settings import KEY_CLASSES, Settings, get_settings

log = logging.getLogger("app.cli")

Command = Callable[[argparse.Namespace, Settings], int]
Subparsers = argparse._SubParsersAction  # what `add_subparsers()` returns

# Every command and the function that runs it (its arguments: build_parser, below).
COMMANDS: dict[str, Command] = {
    "serve": serving.serve_command,
    "migrate": data.migrate_command,
    "generate": data.generate_command,
    "import": data.import_command,
    "train": training.train_command,
    "report": training.report_command,
    "rollback": training.rollback_command,
    "publish-sagemaker": training.publish_sagemaker_command,
    "rollout-sagemaker": training.rollout_sagemaker_command,
    "archive": data.archive_command,
    "refresh-features": training.refresh_features_command,
    "worker": data.worker_command,
    "create-key": keys.create_key_command,
    "revoke-key": keys.revoke_key_command,
    "list-keys": keys.list_keys_command,
    "move-district": data.move_district_command,
    "access-report": lifecycle.access_report_command,
    "purge-student": lifecycle.purge_student_command,
    "offboard-district": lifecycle.offboard_district_command,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = sagemaker_settings(get_settings(), args.command)
    except ValueError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        root = get_settings().sagemaker_dir if args.command == "train" else None
        if root is not None and root.exists():  # SageMaker reports this file as the reason
            write_failure(root, f"invalid settings: {exc}")
        return EXIT_USAGE
    setup_logging(settings.log_level)
    try:
        return run(args, settings)
    except Exception as exc:
        log.exception("command failed", extra={"command": args.command})
        if args.command == "train" and settings.sagemaker_dir.exists():
            write_failure(settings.sagemaker_dir, f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the command `args` names; its exit code."""
    return COMMANDS[args.command](args, settings)


def build_parser() -> argparse.ArgumentParser:
    """The arguments of every command, in the order `--help` lists them."""
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
    gen.add_argument(
        "--years",
        type=int,
        default=3,
        help="school years (the last the current one, its outcomes open); 1: one year, every"
        " outcome known",
    )
    gen.add_argument(
        "--disparity",
        type=float,
        default=0.0,
        help="share of one group's present days recorded as absences, and of 40 points off"
        " their marks (a planted bias the fairness audit should find)",
    )
    imp = sub.add_parser("import", help="import a district's CSV bundle (native or OneRoster)")
    imp.add_argument(
        "source", nargs="?", help="a directory or s3://bucket/prefix (default: IMPORT_SOURCE_URL)"
    )
    imp.add_argument(
        "--dry-run", action="store_true", help="validate and count changes; write nothing"
    )
    imp.add_argument(
        "--readmit-purged",
        action="store_true",
        help="import students who were purged too (the district asked to take them back)",
    )
    _add_train(sub)
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
    _add_keys(sub)
    _add_move_district(sub)
    lifecycle.add_commands(sub)
    return parser


def _add_train(sub: Subparsers[argparse.ArgumentParser]) -> None:
    train = sub.add_parser("train", help="train, evaluate, version and promote models")
    which = train.add_mutually_exclusive_group()
    which.add_argument(
        "--shard",
        metavar="i/N",
        help="train shard i of N of run --run (app/model/sharded_training.py)",
    )
    which.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="in a Kubernetes Indexed Job: shard JOB_COMPLETION_INDEX of N, run named by the Job",
    )
    train.add_argument("--run", help="the sharded run's id (default: TRAINING_RUN_ID)")


def _add_keys(sub: Subparsers[argparse.ArgumentParser]) -> None:
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


def _add_move_district(sub: Subparsers[argparse.ArgumentParser]) -> None:
    move = sub.add_parser(
        "move-district", help="move a district to another region's database (docs/tier4.md)"
    )
    move.add_argument("--district", type=int, required=True)
    move.add_argument("--source", required=True, help="the home region's database, as master")
    move.add_argument("--target", required=True, help="the new region's database, as master")
    move.add_argument("--target-region", required=True, help="the new home region, e.g. us-west-2")
    move.add_argument("--drain-seconds", type=float, help="default: DIRECTORY_CACHE_SECONDS")
    move.add_argument("--keep-source", action="store_true", help="leave the source's rows")
