"""PostgreSQL access: embedded server, pools with a read/write split, tenant transactions
(with the API's fail-fast breaker), the migration runner and the workloads' logins.

Each workload logs in as its own least-privileged role (migration 0007): the API as ssp_api,
`train` / `rollback` / `refresh-features` as ssp_trainer, `archive` as ssp_archiver, `import`
as ssp_importer (0009), `worker` as ssp_worker (0011); `migrate`, `generate` and `create-key`
as the schema owner (the RDS master user). With DATABASE_URL set, its login is used as given:
each deployment gives each workload a URL with its own login. Without it, the embedded server
(trust authentication on its unix socket, no TCP listener) is reached as the same roles, so the
demo runs with the logins production uses."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff
from pydantic import SecretStr
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from app.core.logins import API_LOGIN, WORKLOAD_LOGINS, password_setting
from app.core.settings import Settings
from app.core.student_records import grant_purger_rights

log = logging.getLogger("app.db")

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"  # app/migrations
# Arbitrary constants naming the advisory locks held by jobs (one run at a time).
MIGRATE_LOCK_KEY = 0x5350_0001
TRAIN_LOCK_KEY = 0x5350_0002
ARCHIVE_LOCK_KEY = 0x5350_0003
# After a failed query, Database.fetch refuses at once for this long, then probes again.
FAIL_FAST_SECONDS = 1.0
# Longest wait between two attempts of the API's pools to reconnect: the API serves again
# within about this long (plus FAIL_FAST_SECONDS) of the database answering. psycopg_pool's own
# backoff doubles without bound (a 45 s outage took 15-18 s to recover from).
MAX_RECONNECT_DELAY_SECONDS = 0.5
# A pooled connection idle for longer than this is checked (one empty query) before use; one
# that served a request more recently is not (a dead one fails that request, then fail-fast).
IDLE_CHECK_SECONDS = 10.0
# Every tenant query starts with these, transaction-scoped (migration 0005's policies read them).
SET_TENANT = "SELECT set_config('app.school_id', %s, true), set_config('app.district_id', %s, true)"

_embedded: dict[str, Any] = {}


def embedded_url(data_dir: Path) -> str:
    """Start (or reuse) an embedded PostgreSQL 16 from the pgserver package."""
    key = str(data_dir.resolve())
    if key not in _embedded:
        data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers); harmless here.
            warnings.simplefilter("ignore")
            import pgserver  # Imported lazily: only needed without DATABASE_URL.

            _embedded[key] = pgserver.get_server(data_dir, cleanup_mode="stop")
    return str(_embedded[key].get_uri())


def stop_embedded() -> None:
    for server in _embedded.values():
        server.cleanup()
    _embedded.clear()


def primary_url(settings: Settings, login: str | None = None) -> str:
    """DATABASE_URL, whatever login it names. Without it, the embedded server as `login` (one
    of the workloads' roles), or as its superuser (the owner) when `login` is None."""
    if settings.database_url:
        return settings.database_url
    url = embedded_url(settings.embedded_pg_dir)
    return url if login is None else make_conninfo(url, user=login, password="")


def read_url(settings: Settings, login: str | None = None) -> str:
    return settings.database_read_url or primary_url(settings, login)


def connect_as(
    settings: Settings, login: str | None, autocommit: bool = False
) -> psycopg.Connection[Any]:
    """A connection for a job, as `login` (see primary_url); waits up to DB_WAIT_SECONDS for
    the database to come up (a job may start before its database)."""
    for attempt in Retrying(
        retry=retry_if_exception_type(psycopg.OperationalError),
        wait=wait_exponential(multiplier=0.2, max=2),
        stop=stop_after_delay(settings.db_wait_seconds),
        reraise=True,
    ):
        with attempt:
            return psycopg.connect(
                primary_url(settings, login),
                autocommit=autocommit,
                connect_timeout=settings.db_connect_timeout,
            )
    raise AssertionError("unreachable")


def connect_owner(settings: Settings, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A connection as the schema owner: migrate, generate, create-key."""
    return connect_as(settings, None, autocommit)


class DatabaseUnavailableError(RuntimeError):
    """The database did not answer, or did not answer within the last FAIL_FAST_SECONDS."""


@dataclass(frozen=True)
class Tenant:
    """Whose rows a transaction may see: one school or a whole district."""

    school_id: int | None = None
    district_id: int | None = None


class BoundedBackoff(AttemptWithBackoff):
    """psycopg_pool's reconnect attempt, its delay capped at MAX_RECONNECT_DELAY_SECONDS."""

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, MAX_RECONNECT_DELAY_SECONDS)


class Pool(AsyncConnectionPool[psycopg.AsyncConnection[Any]]):
    """An AsyncConnectionPool whose reconnect backoff is bounded (BoundedBackoff), and which
    checks a connection's liveness only when it has sat idle for IDLE_CHECK_SECONDS: a
    connection that served a request a moment ago costs no extra round trip per checkout."""

    def __init__(self, conninfo: str, **kwargs: Any) -> None:
        self._last_used: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        super().__init__(conninfo, check=self._check_if_idle, **kwargs)

    async def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False
    ) -> None:
        await super()._add_connection(
            attempt or BoundedBackoff(timeout=self.reconnect_timeout), growing
        )

    async def _check_if_idle(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if time.monotonic() - self._last_used.get(conn, 0.0) > IDLE_CHECK_SECONDS:
            await self.check_connection(conn)

    def used(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Records that `conn` just answered (so the next checkout skips the check)."""
        self._last_used[conn] = time.monotonic()


class Database:
    """The API's pools, on the event loop (async psycopg). They log in as ssp_api (with the
    embedded server; otherwise as the URLs say, which in production is ssp_api too): a login
    with no more rights than the API needs, so no SQL on a connection can gain any (no SET ROLE
    to undo, no session state that pins the connection behind RDS Proxy). Row-level security
    filters it by tenant.

    Every query is one round trip (`fetch`): the tenant's settings and the statement go out
    in one pipeline and run in one implicit transaction, committed at its end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        primary = primary_url(settings, API_LOGIN)
        self.primary = self._pool(primary, "primary")
        replica = read_url(settings, API_LOGIN)
        self.replica = self._pool(replica, "replica") if replica != primary else self.primary
        self._down_until = 0.0  # fetch fails fast until then
        self._checking: asyncio.Task[None] | None = None  # a pool check after a failure

    def _pool(self, url: str, name: str) -> Pool:
        return Pool(
            url,
            min_size=self.settings.db_pool_min,
            max_size=self.settings.db_pool_max,
            timeout=self.settings.db_pool_timeout,
            kwargs={
                "connect_timeout": self.settings.db_connect_timeout,
                # Named (unless the URL names them), so pg_stat_activity tells the API's
                # connections from the jobs'.
                "application_name": conninfo_to_dict(url).get(
                    "application_name", f"ssp-api-{name}"
                ),
                # Each pipeline is its own implicit transaction (see fetch): no BEGIN/COMMIT
                # round trips.
                "autocommit": True,
                # None behind RDS Proxy: server-side prepared statements would pin every
                # pooled connection (the program's api_prepare_threshold picks it per tier).
                "prepare_threshold": self.settings.db_prepare_threshold,
            },
            name=name,
            open=False,
        )

    async def open(self) -> None:
        await self.primary.open(wait=False)
        if self.replica is not self.primary:
            await self.replica.open(wait=False)

    async def close(self) -> None:
        await self.primary.close()
        if self.replica is not self.primary:
            await self.replica.close()

    def stats(self) -> dict[str, dict[str, int]]:
        """Each pool's current figures (pool_max, pool_size, pool_available, ...), by name."""
        pools = {self.primary.name: self.primary, self.replica.name: self.replica}
        return {name: pool.get_stats() for name, pool in pools.items()}

    async def fetch(
        self,
        tenant: Tenant | None,
        query: str,
        params: Sequence[Any] = (),
        write: bool = False,
    ) -> list[dict[str, Any]]:
        """The rows of `query`, run on the primary (write) or the replica (read) under the
        tenant's row-level security, in ONE round trip: the two set_config calls and the
        statement are pipelined, and PostgreSQL runs everything up to the pipeline's sync as
        one implicit transaction, committed there, rolled back whole on any error. So a
        statement that writes its own audit row returns rows only once that row is committed.

        Fails fast with DatabaseUnavailableError while the DB is down: after one failure,
        requests get 503 at once for FAIL_FAST_SECONDS instead of each waiting for the pool
        timeout, then the next one probes the DB again."""
        async with self._connection(write) as (pool, conn):
            async with conn.pipeline():
                if tenant is not None:
                    # is_local=true: the settings end with the implicit transaction, never
                    # leak to the next user of this pooled connection.
                    await conn.execute(SET_TENANT, _tenancy(tenant))
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(query, params)
            rows = await cur.fetchall() if cur.description is not None else []
            pool.used(conn)
            return rows

    @asynccontextmanager
    async def transaction(
        self, tenant: Tenant, write: bool = False
    ) -> AsyncIterator[psycopg.AsyncCursor[dict[str, Any]]]:
        """A cursor in one explicit transaction of several statements under the tenant's
        row-level security, for a write whose statements depend on each other's answers
        (POST /v1/events: checks, keys, facts, audit rows, queue). Reads use `fetch`."""
        async with self._connection(write) as (pool, conn):
            async with conn.transaction():
                await conn.execute(SET_TENANT, _tenancy(tenant))
                async with conn.cursor(row_factory=dict_row) as cur:
                    yield cur
            pool.used(conn)

    @asynccontextmanager
    async def _connection(
        self, write: bool
    ) -> AsyncIterator[tuple[Pool, psycopg.AsyncConnection[Any]]]:
        """A pooled connection of the primary (write) or the replica, failing fast while the
        database is down."""
        if time.monotonic() < self._down_until:
            raise DatabaseUnavailableError("database unavailable")
        pool = self.primary if write else self.replica
        try:
            async with pool.connection() as conn:
                yield pool, conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self._down_until = time.monotonic() + FAIL_FAST_SECONDS
            log.warning("database unavailable", extra={"error": str(exc)[:200]})
            # The other idle connections likely died too: replace them in the background
            # rather than letting the next requests find them one by one.
            if self._checking is None or self._checking.done():
                self._checking = asyncio.get_running_loop().create_task(pool.check())
            raise DatabaseUnavailableError("database unavailable") from exc


def _tenancy(tenant: Tenant) -> tuple[str, str]:
    return _opt(tenant.school_id), _opt(tenant.district_id)


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def migrate(settings: Settings) -> list[str]:
    """Apply the numbered .sql files not yet recorded, each in its own transaction; then set
    the passwords of the workloads' logins that have one configured (DB_*_PASSWORD), and
    create the audit-log partitions that are due. Runs as the schema owner (the master)."""
    applied: list[str] = []
    with connect_owner(settings, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                r[0]: r[1] for r in conn.execute("SELECT version, checksum FROM schema_migrations")
            }
            for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
                version = path.stem
                text = path.read_text()
                checksum = hashlib.sha256(text.encode()).hexdigest()
                if version in done:
                    if done[version] != checksum:
                        log.warning(
                            "migration changed after it was applied", extra={"version": version}
                        )
                    continue
                with conn.transaction():
                    conn.execute(text.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                        (version, checksum),
                    )
                log.info("migration applied", extra={"version": version})
                applied.append(version)
            set_login_passwords(conn, settings)
            # The purge login's rights on every table holding student records, found anew
            # (migration 0023): a table added since is covered.
            with conn.transaction():
                grant_purger_rights(conn)
            ensure_audit_partitions(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))
    return applied


def login_passwords(settings: Settings) -> dict[str, SecretStr | None]:
    """Each workload login and the password `migrate` sets on it (None: leave it as it is)."""
    return {
        login: getattr(settings, password_setting(workload))
        for workload, login in WORKLOAD_LOGINS.items()
    }


def set_login_passwords(conn: psycopg.Connection[Any], settings: Settings) -> list[str]:
    """ALTER ROLE ... PASSWORD for each login with a configured password; returns those logins.

    ALTER ROLE takes no bind parameters, and the server may log the statement (log_statement,
    log_min_duration_statement, an error's context). So the password never leaves this
    process: libpq computes its SCRAM-SHA-256 verifier here (as psql's \\password does) and the
    statement carries only that, quoted by sql.Literal; the server stores a verifier as given.
    Neither the password nor the statement is logged here. A login without a configured
    password keeps what it has: none, as the migration creates it, so it cannot log in with a
    password (the embedded server trusts its socket instead)."""
    done = []
    for login, secret in login_passwords(settings).items():
        if secret is None:
            continue
        verifier = conn.pgconn.encrypt_password(
            secret.get_secret_value().encode(), login.encode(), b"scram-sha-256"
        )
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(login), sql.Literal(verifier.decode())
            )
        )
        done.append(login)
    if not conn.autocommit:
        conn.commit()
    if done:
        log.info("login passwords set", extra={"logins": done})
    return done


def ensure_audit_partitions(conn: psycopg.Connection[Any]) -> int:
    """Create this month's and the next two months' audit-log partitions (idempotent). Without
    them every audited read fails, so migrate and API startup call this, not only `archive`.
    Through audit_log_ensure_current_partitions(), which the API's login may call (0007)."""
    row = conn.execute(
        "SELECT to_regprocedure('audit_log_ensure_current_partitions()') IS NOT NULL"
    ).fetchone()
    if not row or not row[0]:
        return 0  # schema not migrated yet
    created = conn.execute("SELECT audit_log_ensure_current_partitions()").fetchone()
    if not conn.autocommit:
        conn.commit()
    return int(created[0]) if created else 0


def refresh_features(conn: psycopg.Connection[Any], school_year_start_month: int | None) -> None:
    """Refresh the feature view without blocking readers (needs its unique index). Through
    refresh_student_features() (0007): the view's owner is a role of its own, not the trainer.
    With a month, the school years start in it from this refresh on (set_school_year_start,
    0015); None leaves the calendar as it is."""
    if school_year_start_month is not None:
        conn.execute("SELECT set_school_year_start(%s)", (school_year_start_month,))
    conn.execute("SELECT refresh_student_features()")
