"""Moving a district between regions (`move-district`): how long the source is locked.

A district of `--schools` x `--students` (60 school days of attendance) is generated on one
embedded PostgreSQL (the source region) and moved to a second, migrated one whose ids start at
1,000,000,001 (the target region), with the directory in moto's DynamoDB in-process. Printed:
the rows moved, the wall time of the whole move (dump, restore, verification, flip and the
source's removal: the time the source's tables are locked, with no drain), and rows per second.

    python -m benchmarks.district_move [--schools 10] [--students 1000]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import boto3
import pgserver
import psycopg
from moto import mock_aws

from app.core import db
from app.jobs.district_move import Directory, move_district
from app.jobs.generate import generate
from benchmarks.common import bench_settings, workdir, write_result

TABLE = "ssp-district-directory"
TARGET_IDS_FROM = 1_000_000_001


def target_database(path: Path) -> str:
    """The second region's server, migrated, its ids from their own range."""
    server = pgserver.get_server(path, cleanup_mode="stop")
    url = str(server.get_uri())
    db.migrate(bench_settings(path.parent, database_url=url))
    with psycopg.connect(url, autocommit=True) as conn:
        for (sequence,) in conn.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
        ).fetchall():
            conn.execute(f'ALTER SEQUENCE "{sequence}" RESTART WITH {TARGET_IDS_FROM}')
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=10)
    parser.add_argument("--students", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "benchmark")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark")
    with workdir("move") as work, mock_aws():
        settings = bench_settings(work)
        db.migrate(settings)
        with db.connect_owner(settings) as conn:
            generate(conn, args.schools, args.students, days=60, progress=False)
        source = db.primary_url(settings)
        target = target_database(work / "target-pg")
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "district_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "district_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.put_item(
            TableName=TABLE,
            Item={"district_id": {"S": "1"}, "home_region": {"S": "us-east-1"}},
        )
        started = time.perf_counter()
        result = move_district(1, source, target, "us-west-2", Directory(TABLE, client=client))
        seconds = time.perf_counter() - started
    rows = sum(copy.rows for copy in result.tables.values())
    write_result(
        "district_move",
        {
            "schools": args.schools,
            "students": args.schools * args.students,
            "rows_moved": rows,
            "rows_per_table": {name: copy.rows for name, copy in result.tables.items()},
            "move_seconds": round(seconds, 2),
            "rows_per_second": round(rows / seconds),
        },
    )


if __name__ == "__main__":
    main()
