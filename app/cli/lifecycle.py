"""The commands of a student's data lifecycle: access-report, purge-student (and, in
app/cli/offboarding.py, offboard-district)."""

from __future__ import annotations

import argparse
import json
import sys

from app.cli.exit_codes import EXIT_DATA, EXIT_OK, EXIT_USAGE
from app.core.settings import Settings


def access_report_command(args: argparse.Namespace, settings: Settings) -> int:
    """As the archiver's login, which may read the audit log and the archive store."""
    from app.core.db import connect_as
    from app.core.logins import ARCHIVER_LOGIN
    from app.jobs.lifecycle.access_report import (
        archived_accesses,
        key_names,
        live_accesses,
        report,
    )
    from app.model.artifacts import backend_for

    with connect_as(settings, ARCHIVER_LOGIN, autocommit=True) as conn:
        student, accesses = live_accesses(conn, args.student)
        keys = key_names(conn)
    if student is None:
        if not args.student.isdigit():
            print(
                f"access-report: no live access names a student with sourced id"
                f" {args.student!r}; archived months name students by id: give the id",
                file=sys.stderr,
            )
            return EXIT_DATA
        student = int(args.student)
    accesses += archived_accesses(backend_for(settings.archive_store_url), student, keys)
    text = report(accesses, args.format)
    if args.output:
        # The Job's way out: a file for the district, not its log (which would keep it).
        name = f"access-report-{student}.{args.format}"
        backend_for(args.output).write(name, text.encode())
        print(json.dumps({"student": student, "accesses": len(accesses), "written": name}))
    else:
        sys.stdout.write(text)
    return EXIT_OK


def purge_student_command(args: argparse.Namespace, settings: Settings) -> int:
    """As the purge login (PURGE_DATABASE_URL, else DATABASE_URL, the purge Job's):
    app/jobs/lifecycle/purge.py."""
    from app.jobs.lifecycle.purge import PurgeError, purge_on_request
    from app.model.artifacts import ModelStore

    if not args.student.strip():
        print("purge-student: --student must name the student", file=sys.stderr)
        return EXIT_USAGE
    if not args.requested_by.strip():
        print("purge-student: --requested-by must name who asked", file=sys.stderr)
        return EXIT_USAGE
    # Read first: an unreachable model store stops the purge before anything is deleted.
    in_use = sorted(ModelStore(settings.model_store_url).pointer().versions_in_use())
    try:
        result = purge_on_request(settings, args.student, args.requested_by, in_use)
    except PurgeError as exc:
        print(f"purge-student: {exc}", file=sys.stderr)
        return EXIT_DATA
    print(json.dumps(result.summary(), indent=1))
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "access-report", help="every recorded access to a student's records (FERPA)"
    )
    report.add_argument("--student", required=True, help="the student's id or sourced id")
    report.add_argument("--format", choices=("csv", "json"), default="csv")
    report.add_argument(
        "--output", help="a directory or s3://bucket/prefix to write the report to (else stdout)"
    )
    purge = sub.add_parser(
        "purge-student", help="delete a student's records on request (with a tombstone)"
    )
    purge.add_argument("--student", required=True, help="the student's id or sourced id")
    purge.add_argument(
        "--requested-by", required=True, help="who asked (recorded in the audit log)"
    )
    add_offboarding(sub)


def offboard_district_command(args: argparse.Namespace, settings: Settings) -> int:
    """As the master (the offboarding Job's DATABASE_URL): app/jobs/lifecycle/offboard.py."""
    from app.core.db import primary_url
    from app.jobs.district_move import Directory
    from app.jobs.lifecycle.offboard import OffboardError, Offboarding, offboard
    from app.model.artifacts import backend_for

    directory = None
    if settings.district_directory_table:
        directory = Directory(settings.district_directory_table, settings.home_region)
    # Empty values are "none": the cluster's Job template passes every option, from env.
    drop_prefix = args.drop_prefix or None
    model_stores = tuple(url for url in args.model_store or () if url)
    for url in (drop_prefix, *model_stores):
        if url and url.startswith("s3://") and not url[5:].partition("/")[2].strip("/"):
            # Checked before any step: a whole bucket is never the district's own.
            print(f"offboard-district: {url}: name the district's prefix, not a whole bucket",
                  file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
    job = Offboarding(
        district=args.district,
        export_to=args.export_to,
        drop_prefix=drop_prefix,
        model_stores=model_stores,
        audit_policy=settings.offboard_audit_policy,
        directory=directory,
    )
    try:
        signed = offboard(settings, job, primary_url(settings))
    except OffboardError as exc:
        print(f"offboard-district: {exc}", file=sys.stderr)
        return EXIT_DATA
    text = json.dumps(signed, indent=1, sort_keys=True)
    if args.report_to:
        backend_for(args.report_to).write(f"offboarding-{args.district}.json", text.encode())
    print(text)
    return EXIT_OK


def add_offboarding(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    off = sub.add_parser(
        "offboard-district", help="export a leaving district's data, then destroy it"
    )
    off.add_argument("--district", type=int, required=True)
    off.add_argument(
        "--export-to", required=True, help="a directory or s3://bucket/prefix for the export"
    )
    off.add_argument("--drop-prefix", help="s3://<drop bucket>/<the district's prefix>")
    off.add_argument(
        "--model-store",
        action="append",
        help="the district's own model store or model archive URL (repeatable)",
    )
    off.add_argument("--report-to", help="a directory or s3:// URL for the signed report")
