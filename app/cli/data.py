"""The database and data commands: `migrate`, `generate`, `import`, `archive`, `worker` and
`move-district`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from app.cli.exit_codes import EXIT_BUSY, EXIT_DATA, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from app.core.settings import Settings

log = logging.getLogger("app.cli")


def migrate_command(args: argparse.Namespace, settings: Settings) -> int:
    from app.core import db

    applied = db.migrate(settings)
    print(json.dumps({"applied": applied}))
    return EXIT_OK


def generate_command(args: argparse.Namespace, settings: Settings) -> int:
    from app.core import db
    from app.jobs.generate import generate

    with db.connect_owner(settings) as conn:
        result = generate(
            conn,
            args.schools,
            args.students,
            seed=args.seed,
            days=args.days,
            school_contrast=args.school_contrast,
            years=args.years,
            disparity=args.disparity,
        )
    print(json.dumps(result.__dict__))
    return EXIT_OK


def import_command(args: argparse.Namespace, settings: Settings) -> int:
    if os.environ.get("JOB_COMPLETION_INDEX", "0") != "0":
        # The nightly Indexed Job's pods all carry the import step; index 0's does it, once.
        print("import skipped: index 0 of the training Job imports the export", file=sys.stderr)
        return EXIT_OK
    source = args.source or settings.import_source_url
    if not source:
        print("import: give SOURCE or set IMPORT_SOURCE_URL", file=sys.stderr)
        return EXIT_USAGE
    return run_import_command(settings, source, args.dry_run, args.readmit_purged)


def run_import_command(
    settings: Settings, source: str, dry_run: bool, readmit_purged: bool = False
) -> int:
    """Every problem on stderr, one a line; the counts per table as JSON on stdout."""
    from app.jobs.importer import ImportLockedError, run_import

    try:
        result = run_import(
            settings,
            source,
            dry_run=dry_run,
            progress=sys.stderr.isatty(),
            readmit_purged=readmit_purged,
        )
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


def archive_command(args: argparse.Namespace, settings: Settings) -> int:
    from app.jobs.archive import run_archive
    from app.jobs.lifecycle.retention import apply_retention

    done = run_archive(settings)
    retained = apply_retention(settings)
    print(json.dumps({"archived": [d.__dict__ for d in done], "retention": retained.__dict__}))
    return EXIT_OK


def worker_command(args: argparse.Namespace, settings: Settings) -> int:
    from app.jobs.events.worker import run_worker

    return run_worker(settings)


def move_district_command(args: argparse.Namespace, settings: Settings) -> int:
    """The counts and hashes per table as JSON; why it stopped on stderr."""
    from app.jobs.district_move import Directory, MoveError, move_district

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
