"""`move-district`: moves a district's rows from its home region's database to another region's,
then flips its entry in the district directory (docs/tier4.md, "Moving a district").

1. Source, one transaction: the district's tables are locked (lifting FORCE ROW LEVEL SECURITY
   takes them exclusively, so nothing writes to them until the move ends) and every row of the
   district is dumped with COPY, table by table in foreign-key order, counted and hashed
   (sha256 of the rows in primary-key order, in a fixed text format).
2. Target, one transaction: the rows are restored with COPY, the sequences moved past them,
   and each table dumped again and compared with the source's count and hash; then committed.
3. The directory entry is flipped (UpdateItem, on condition that it still names the source's
   region). Until then no region serves the district from the target.
4. After `drain_seconds` (the APIs' directory cache: the source's replicas then redirect),
   the district's rows are deleted from the source, in the same transaction as the dump, and
   the counts deleted checked against the counts moved.

A failure before the flip leaves the source untouched (its transaction rolls back) and the
directory unchanged; a target already committed is emptied of the district again. Ids move
as they are (clients name students by id), so regions allocate ids from disjoint ranges: a
collision stops the move at the restore, naming the table.

The model store and what derives from it (`risk_scores`, `model_versions`) stay behind: they
belong to the source's models. The target's next `train` models and scores the district."""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import boto3
import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql

log = logging.getLogger("app.move")

SCHOOLS = "school_id IN (SELECT id FROM schools WHERE district_id = %(district)s)"
CLIENTS = f"(district_id = %(district)s OR {SCHOOLS})"
# Every table holding the district's rows, parents first, with the predicate that selects them.
MOVED_TABLES: tuple[tuple[str, str], ...] = (
    ("districts", "id = %(district)s"),
    ("district_features", "district_id = %(district)s"),
    ("schools", "district_id = %(district)s"),
    ("classrooms", SCHOOLS),
    ("staff", SCHOOLS),
    ("students", SCHOOLS),
    ("student_demographics", SCHOOLS),
    ("exams", SCHOOLS),
    ("attendance", SCHOOLS),
    ("marks", SCHOOLS),
    ("behaviour_incidents", SCHOOLS),
    ("interventions", SCHOOLS),
    ("alerts", SCHOOLS),
    # The students' risk over time: their record, not something the target's training redoes.
    ("risk_history", SCHOOLS),
    # The events' idempotency keys go along: a client retrying a batch after the move is told
    # its events are duplicates there too.
    ("student_events", SCHOOLS),
    ("api_clients", CLIENTS),
    # Its purged students stay purged in the new region: the importer reads the tombstones.
    ("student_tombstones", "district_id = %(district)s"),
    ("audit_log", f"{SCHOOLS} OR client_id IN (SELECT id FROM api_clients WHERE {CLIENTS})"),
)
# The source's model records, live features and rescoring messages of the district's schools:
# deleted with it, never copied (the target's next training run scores the district).
DERIVED_TABLES: tuple[tuple[str, str], ...] = (
    ("risk_scores", SCHOOLS),
    ("model_versions", SCHOOLS),
    ("student_features_live", SCHOOLS),
    ("event_queue", SCHOOLS),
)
# Tables of the region itself, not of any district: migrations, training runs' bookkeeping.
REGION_TABLES = frozenset(
    {
        "schema_migrations",
        "training_runs",
        "training_shards",
        "school_calendar",
        "district_offboardings",  # outlives the district it records
    }
)
# The text COPY writes depends on these; both sides use the same, so equal rows hash equal.
SESSION = (
    "SET TIME ZONE 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET lock_timeout = '10s'",  # a busy table fails the move instead of queueing readers
)
SPOOL_BYTES = 64 * 1024 * 1024  # a table's dump stays in memory up to this, then on disk
CHUNK_BYTES = 1024 * 1024


class MoveError(RuntimeError):
    """The move stopped; the message says where and what was left as it was."""


@dataclass
class TableCopy:
    rows: int
    sha256: str


@dataclass
class MoveResult:
    district: int
    source_region: str
    target_region: str
    tables: dict[str, TableCopy] = field(default_factory=dict)
    source_removed: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "district": self.district,
            "from": self.source_region,
            "to": self.target_region,
            "tables": {name: copy.__dict__ for name, copy in self.tables.items()},
            "source_removed": self.source_removed,
        }


class Directory:
    """The district's entry in the directory (a DynamoDB global table)."""

    def __init__(self, table: str, region: str | None = None, client: Any = None) -> None:
        self.table = table  # a global table: any region's replica takes the flip
        self.client = client or boto3.client("dynamodb", region_name=region)

    def home_region(self, district: int) -> str:
        try:
            item = self.client.get_item(
                TableName=self.table,
                Key={"district_id": {"S": str(district)}},
                ConsistentRead=True,
            ).get("Item")
        except (BotoCoreError, ClientError) as exc:
            raise MoveError(f"directory {self.table} unreadable: {exc}") from exc
        if not item or "home_region" not in item:
            raise MoveError(f"district {district} has no entry in the directory {self.table}")
        return str(item["home_region"]["S"])

    def flip(self, district: int, source: str, target: str) -> None:
        """UpdateItem rather than PutItem: other attributes of the entry are kept."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"district_id": {"S": str(district)}},
                UpdateExpression="SET home_region = :target",
                ConditionExpression="home_region = :source",
                ExpressionAttributeValues={":source": {"S": source}, ":target": {"S": target}},
            )
        except (BotoCoreError, ClientError) as exc:
            raise MoveError(f"directory entry of district {district} not flipped: {exc}") from exc


def move_district(
    district: int,
    source_url: str,
    target_url: str,
    target_region: str,
    directory: Directory,
    drain_seconds: float = 0.0,
    keep_source: bool = False,
) -> MoveResult:
    """Moves `district` (module docstring); raises MoveError saying what was left as it was."""
    source_region = directory.home_region(district)
    if source_region == target_region:
        raise MoveError(f"district {district} is already homed in {target_region}")
    result = MoveResult(district, source_region, target_region)
    params = {"district": district}
    with _session(source_url) as src, _session(target_url) as dst, ExitStack() as spools:
        _same_schema(src, dst)
        forced = _lift_force(src)
        # The tables without FORCE too (districts, api_clients): readable, not writable.
        src.execute(
            sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
                sql.SQL(", ").join(sql.Identifier(t) for t, _ in MOVED_TABLES + DERIVED_TABLES)
            )
        )
        if src.execute("SELECT 1 FROM districts WHERE id = %s", (district,)).fetchone() is None:
            raise MoveError(f"district {district} is not in the source database")
        dumps = {table: _dump(src, table, where, params, spools) for table, where in MOVED_TABLES}
        months = src.execute(
            sql.SQL(
                "SELECT min(occurred_at)::date, max(occurred_at)::date FROM audit_log WHERE {}"
            ).format(sql.SQL(dict(MOVED_TABLES)["audit_log"])),
            params,
        ).fetchone()
        _restore(dst, district, dumps, params, months)
        result.tables = {table: copy for table, (copy, _) in dumps.items()}
        try:
            directory.flip(district, source_region, target_region)
        except BaseException:
            _undo_restore(dst, params)
            raise
        log.info("district moved; directory flipped", extra=result.summary())
        if keep_source:
            return result  # the rollback on leaving releases the source's locks
        time.sleep(drain_seconds)  # the source's replicas now redirect the district's keys
        _remove_source(src, params, result, forced)
    return result


def _remove_source(
    conn: psycopg.Connection[Any], params: dict[str, int], result: MoveResult, forced: list[str]
) -> None:
    """The district's rows leave the source, in the transaction that dumped them, if exactly
    as many as were moved. Otherwise (or if it fails) the source keeps its copy, which no API
    serves any more: its replicas redirect the district's keys."""
    try:
        removed = _remove(conn, params, MOVED_TABLES + DERIVED_TABLES)
        for table, copy in result.tables.items():
            if removed[table] != copy.rows:
                raise MoveError(f"{table}: {removed[table]} rows to delete, {copy.rows} moved")
        _restore_force(conn, forced)
        conn.commit()
    except (psycopg.Error, MoveError) as exc:
        raise MoveError(
            f"district {result.district} was moved to {result.target_region} and the directory"
            f" flipped, but the source kept its rows ({exc}); no API serves them: delete them"
            " as docs/tier4.md (Moving a district) says"
        ) from exc
    result.source_removed = True


@contextmanager
def _session(url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection as the master (the tables' owner), in one transaction until committed."""
    with psycopg.connect(url) as conn:
        for statement in SESSION:
            conn.execute(statement)
        yield conn
        conn.rollback()  # what was not committed explicitly is undone


def _same_schema(src: psycopg.Connection[Any], dst: psycopg.Connection[Any]) -> None:
    query = "SELECT array_agg(version ORDER BY version) FROM schema_migrations"
    mine, theirs = (conn.execute(query).fetchone() for conn in (src, dst))
    if mine != theirs:
        raise MoveError("the source and target have different migrations: run migrate on both")


def _lift_force(conn: psycopg.Connection[Any]) -> list[str]:
    """Lift FORCE ROW LEVEL SECURITY, so the owner sees and writes every row of the district;
    returns the tables to force again. In the move's own transaction: no other session sees
    the tables unforced (the ALTER locks them exclusively until the transaction ends), and a
    rollback forces them again."""
    names = [table for table, _ in MOVED_TABLES + DERIVED_TABLES]
    forced = [
        row[0]
        for row in conn.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relforcerowsecurity"
            " AND relnamespace = 'public'::regnamespace ORDER BY relname",
            (names,),
        ).fetchall()
    ]
    _alter_force(conn, forced, "NO FORCE")
    return forced


def _restore_force(conn: psycopg.Connection[Any], tables: list[str]) -> None:
    _alter_force(conn, tables, "FORCE")


def _alter_force(conn: psycopg.Connection[Any], tables: list[str], clause: str) -> None:
    for table in tables:
        conn.execute(
            sql.SQL("ALTER TABLE {} {} ROW LEVEL SECURITY").format(
                sql.Identifier(table), sql.SQL(clause)
            )
        )


def _columns(conn: psycopg.Connection[Any], table: str) -> tuple[list[str], list[str]]:
    """(columns, primary key columns) of a table, in their order."""
    columns = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (table,),
    ).fetchall()
    key = conn.execute(
        "SELECT a.attname FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY a.attnum",
        (table,),
    ).fetchall()
    return [row[0] for row in columns], [row[0] for row in key]


def _copy_out(
    conn: psycopg.Connection[Any],
    table: str,
    where: str,
    params: dict[str, int],
    write: Callable[[bytes], object],
) -> TableCopy:
    """The district's rows of a table as COPY text, in primary-key order: counted, hashed and
    handed to `write`."""
    columns, key = _columns(conn, table)
    statement = sql.SQL("COPY (SELECT {} FROM {} WHERE {} ORDER BY {}) TO STDOUT").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.Identifier(table),
        sql.SQL(where),  # a constant of this module; the district is bound
        sql.SQL(", ").join(map(sql.Identifier, key)),
    )
    digest, rows = hashlib.sha256(), 0
    with conn.cursor().copy(statement, params) as copy:
        for chunk in copy:
            data = bytes(chunk)
            digest.update(data)
            rows += data.count(b"\n")  # text COPY escapes the newlines inside values
            write(data)
    return TableCopy(rows, digest.hexdigest())


def _dump(
    conn: psycopg.Connection[Any],
    table: str,
    where: str,
    params: dict[str, int],
    spools: ExitStack,
) -> tuple[TableCopy, IO[bytes]]:
    # Closed by the move's ExitStack, after the restore has read it.
    spool = spools.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))  # noqa: SIM115
    copy = _copy_out(conn, table, where, params, spool.write)
    spool.seek(0)
    return copy, spool


def _restore(
    conn: psycopg.Connection[Any],
    district: int,
    dumps: dict[str, tuple[TableCopy, IO[bytes]]],
    params: dict[str, int],
    months: tuple[Any, ...] | None,
) -> None:
    """Every table's rows into the target, each dumped again and compared, then committed."""
    forced = _lift_force(conn)
    if months and months[0] is not None:  # a partition for each month the audit rows span
        conn.execute("SELECT audit_log_ensure_partitions(%s, %s)", months)
    for table, (_, spool) in dumps.items():
        columns, _ = _columns(conn, table)
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        try:
            with conn.cursor().copy(statement) as load:
                while chunk := spool.read(CHUNK_BYTES):
                    load.write(chunk)
        except psycopg.errors.UniqueViolation as exc:
            raise MoveError(
                f"{table}: the target already holds a row with a key of district {district}"
                f" ({exc.diag.message_detail}); regions must allocate ids from disjoint"
                " ranges (docs/tier4.md). Nothing was moved"
            ) from exc
        _advance_sequences(conn, table)
    for table, where in MOVED_TABLES:
        copied = _copy_out(conn, table, where, params, lambda _: None)
        source = dumps[table][0]
        if copied != source:
            raise MoveError(
                f"{table}: the target would hold {copied.rows} rows of district {district}"
                f" (sha256 {copied.sha256[:12]}), the source holds {source.rows}"
                f" (sha256 {source.sha256[:12]}). Nothing was moved"
            )
    _restore_force(conn, forced)
    conn.commit()


def _undo_restore(conn: psycopg.Connection[Any], params: dict[str, int]) -> None:
    """The directory was not flipped: the district's committed copy leaves the target again."""
    try:
        conn.rollback()
        forced = _lift_force(conn)
        _remove(conn, params, MOVED_TABLES)
        _restore_force(conn, forced)
        conn.commit()
    except psycopg.Error:
        log.exception(
            "the district's copy could not be removed from the target; delete it before"
            " moving the district again",
            extra=params,
        )


def _advance_sequences(conn: psycopg.Connection[Any], table: str) -> None:
    """Past the ids just copied, so the target's next insert does not collide with them."""
    sequences = conn.execute(
        "SELECT attname, pg_get_serial_sequence(%s, attname) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (table, table),
    ).fetchall()
    for column, sequence in sequences:
        if sequence is None:
            continue
        conn.execute(
            sql.SQL(
                "SELECT setval(%s::regclass, greatest((SELECT max({}) FROM {}),"
                " pg_sequence_last_value(%s::regclass)))"
            ).format(sql.Identifier(column), sql.Identifier(table)),
            (sequence, sequence),
        )


def _remove(
    conn: psycopg.Connection[Any], params: dict[str, int], tables: tuple[tuple[str, str], ...]
) -> dict[str, int]:
    """Deletes the district's rows, children first (tables with FORCE lifted); the counts
    deleted per table."""
    removed: dict[str, int] = {}
    for table, where in reversed(tables):
        cur = conn.execute(
            sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(table), sql.SQL(where)),
            params,
        )
        removed[table] = cur.rowcount
    return removed
