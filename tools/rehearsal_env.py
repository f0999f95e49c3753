"""What a container of the rehearsal (``tools.rehearse``) runs with: its environment, with
the stack's endpoints mapped to the offline stand-ins (the rehearsal's docstring lists the
mappings), and its process; and the check that a login is least-privilege."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from tools.harness import ROOT
from tools.manifests import SECRET_FILES
from tools.standins import LOOPBACK, STANDIN_CREDENTIALS, login_of

BASICS = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH")
# Settings naming an AWS API that has no stand-in here: SageMaker's, which the trainer calls to
# roll the endpoint (tests/app/test_sagemaker_rollout.py checks those calls against a stub),
# and tier 4's district directory (DynamoDB): a rehearsed regional API serves every district.
NO_STAND_IN = frozenset(
    {
        "SAGEMAKER_ENDPOINT_NAME",
        "SAGEMAKER_BASE_CONFIG_NAME",
        "SAGEMAKER_ARCHIVE_URL",
        "DISTRICT_DIRECTORY_TABLE",
    }
)
# What makes a login more than least-privilege, one text each (read as the master login).
PRIVILEGES = """
SELECT array_remove(ARRAY[
    CASE WHEN r.rolsuper THEN 'has SUPERUSER' END,
    CASE WHEN r.rolbypassrls THEN 'has BYPASSRLS' END,
    CASE WHEN r.rolcreaterole THEN 'has CREATEROLE' END,
    CASE WHEN pg_has_role(r.oid, d.datdba, 'MEMBER') THEN 'owns the database' END
] || ARRAY(
    SELECT DISTINCT 'owns tables (as ' || o.rolname || ')'
    FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner
    WHERE c.relnamespace = 'public'::regnamespace AND pg_has_role(r.oid, o.oid, 'MEMBER')
) || ARRAY(
    SELECT 'is a member of ' || g.rolname FROM pg_roles g
    WHERE g.rolname = 'rds_superuser' AND pg_has_role(r.oid, g.oid, 'MEMBER')
), NULL)
FROM pg_roles r JOIN pg_database d ON d.datname = current_database() WHERE r.rolname = %s
"""


class Server(NamedTuple):  # a started `serve`: its process, log file and port
    process: subprocess.Popen[bytes]
    log: Path
    port: int

    def tail(self) -> str:
        return tail(self.log.read_text(errors="replace")) if self.log.exists() else ""


class Endpoints(NamedTuple):  # where the stand-ins listen (redis_port None: no cache)
    postgres: tuple[str, int]
    redis_port: int | None
    store_root: Path
    api_port: int
    sqs: str | None = None  # the SQS stand-in's endpoint URL (None: the stack has no queue)


def relocate(url: str, host: str, port: int, scheme: str | None = None) -> str:
    """``url`` on ``host:port`` (and ``scheme``), ``sslmode=disable``; the rest kept."""
    parts = urlsplit(url)
    login = parts.netloc.rpartition("@")[0]
    query = [(k, "disable" if k == "sslmode" else v) for k, v in parse_qsl(parts.query)]
    netloc = f"{login}@{host}:{port}" if login else f"{host}:{port}"
    return urlunsplit((scheme or parts.scheme, netloc, parts.path, urlencode(query), ""))


def local_store(url: str, root: Path) -> str:
    """``s3://<bucket>/<prefix>`` -> ``<root>/s3/<bucket>/<prefix>``, shared by workloads."""
    parts = urlsplit(url)
    return str(root / "s3" / parts.netloc / parts.path.strip("/"))


def map_environment(env: Mapping[str, str], endpoints: Endpoints) -> dict[str, str]:
    """The stack's endpoints replaced by the stand-ins (as the module's docstring lists)."""
    mapped: dict[str, str] = {}
    for key, value in env.items():
        if key in NO_STAND_IN:
            continue
        if value.startswith(("postgresql://", "postgres://")):
            value = relocate(value, *endpoints.postgres)
        elif value.startswith(("rediss://", "redis://")):
            if endpoints.redis_port is None:
                raise ValueError(f"{key} names a cache but no local Redis was started")
            value = relocate(value, LOOPBACK, endpoints.redis_port, scheme="redis")
        elif value.startswith("s3://"):
            value = local_store(value, endpoints.store_root)
        elif key == "EVENTS_QUEUE_URL" and endpoints.sqs:
            value = endpoints.sqs + urlsplit(value).path  # /<account>/<queue name>
        elif key in ("HOST", "PORT"):
            value = LOOPBACK if key == "HOST" else str(endpoints.api_port)
        mapped[key] = value
    if endpoints.sqs and "EVENTS_QUEUE_URL" in mapped:
        # boto3 reads the SQS endpoint from AWS_ENDPOINT_URL_SQS; the credentials stand for
        # the pod's IRSA role.
        mapped |= {"AWS_ENDPOINT_URL_SQS": endpoints.sqs, **STANDIN_CREDENTIALS}
    return mapped


def drop_export(directory: str | None) -> None:
    """The district's system's export in the drop: a district and one school (native CSV)."""
    if directory and not Path(directory).exists():
        Path(directory).mkdir(parents=True)
        (Path(directory) / "districts.csv").write_text("sourced_id,name\nD-1,District\n")
        (Path(directory) / "schools.csv").write_text("sourced_id,district_sourced_id,name\n"
                                                     "S-1,D-1,Imported school\n")  # fmt: skip


def app_process(
    args: list[str], env: Mapping[str, str], shell: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """``python -m app <args>`` from the repository's root with ``env``, plus only the basics
    from this ``shell`` that starting Python needs. The settings ``env`` lists under
    ``SECRET_FILES`` (its mounted Secrets) are files, as in the pod: written to a directory of
    their own that SECRETS_DIR names, and out of the environment."""
    env = dict(env)
    if names := env.pop(SECRET_FILES, ""):
        env["SECRETS_DIR"] = str(
            secret_files({n: env.pop(n) for n in names.split(",") if n in env})
        )
    env = {**{k: shell[k] for k in BASICS if k in shell}, **env}
    return {"args": [sys.executable, "-m", "app", *args], "cwd": ROOT, "env": env}


def secret_files(files: Mapping[str, str]) -> Path:
    """``files`` in a new private directory (removed when this process exits), read-only."""
    directory = Path(tempfile.mkdtemp(prefix="ssp-secrets-"))
    atexit.register(shutil.rmtree, directory, True)
    for name, text in files.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o400)
    return directory


def tail(text: str, lines: int = 20, width: int = 1500) -> str:
    """The last ``lines`` lines of ``text``, each cut at ``width`` characters."""
    return "\n".join(line[:width] for line in text.rstrip().splitlines()[-lines:])


def stop_process(proc: subprocess.Popen[Any], grace: float = 10) -> None:
    proc.terminate()
    with suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    proc.kill()  # a no-op once it exited
    proc.wait()


def check_least_privilege(master_url: str, login_url: str) -> str:
    """The login of ``login_url`` is not the master and can do no more than it was granted."""
    user, master = login_of(login_url)[0], login_of(master_url)[0]
    if user == master:
        raise RuntimeError(f"it logs in as the master user {master}")
    with psycopg.connect(master_url) as conn:
        row = conn.execute(PRIVILEGES, (user,)).fetchone()
    if row is None or row[0]:
        raise RuntimeError(f"{user}: " + ("; ".join(row[0]) if row else "no such role"))
    return f"{user}: no superuser, bypassrls or createrole; owns nothing"
