"""The workloads' fixed names and schedules, and the pure functions that build their
configuration: the ConfigMap, the Secret every workload reads and each workload's database
Secret."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

from components.config.capacity import pod_pool
from components.config.tier import ApiSize, EventsSize, RetentionSize, TrainingSize
from components.shared import k8s_manifests as m
from components.shared.iam import ARCHIVE_PREFIX, DROP_PREFIX, MODELS_PREFIX

NAMESPACE = "student-success"
API = "api"
TRAINER = "trainer"
ARCHIVER = "archiver"
IMPORTER = "importer"  # the nightly pipeline's first step (its own database login)
BOOTSTRAP = "bootstrap"
WORKER = "worker"  # the event worker (python -m app worker), its own login
RETENTION = "retention"  # the archive job's second database Secret: the purge login
# The nightly pipeline (import, sharded training) at 02:00, outside school hours; the weekly
# audit-log archival at 04:00 Sunday, after the pipeline's 30-minute deadline, so the two
# batch jobs do not compete for the database (the connection budget counts both all the same:
# an operator may start either by hand at any hour).
TRAINING_SCHEDULE = "0 2 * * *"
ARCHIVE_SCHEDULE = "0 4 * * 0"
# The lines the app's CLI logs (JSON, field msg) when a command raises, or when the import
# refuses the night's export (nothing imported: the district must fix and re-export).
TRAINING_FAILURE_PATTERN = (
    '{ ($.kubernetes.container_name = "trainer" || $.kubernetes.container_name = "importer")'
    ' && ($.log = "*command failed*" || $.log = "*import rejected*") }'
)


def postgres_url(user: str, password: str, host: str, port: int, database: str) -> str:
    """libpq URL with TLS required; the password is percent-encoded."""
    return (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/"
        f"{database}?sslmode=require"
    )


def app_secret_data(*, redis_url: str | None, api_key_pepper: str) -> dict[str, str]:
    """Values of the Secret every workload of the app reads (each holds a credential)."""
    data = {"API_KEY_PEPPER": api_key_pepper}
    if redis_url:
        data["REDIS_URL"] = redis_url
    return data


def database_secret_data(
    *, user: str, password: str, writer: str, reader: str, port: int, database: str
) -> dict[str, str]:
    """Values of one workload's database Secret: its own login, on the writer and the reader."""
    return {
        "DATABASE_URL": postgres_url(user, password, writer, port, database),
        "DATABASE_READ_URL": postgres_url(user, password, reader, port, database),
    }


def bootstrap_secret_data(
    *,
    master_user: str,
    master_password: str,
    primary: str,
    port: int,
    database: str,
    login_passwords: Mapping[str, str],
) -> dict[str, str]:
    """Values of the bootstrap Job's Secret: the master login on the primary itself, and the
    password ``migrate`` sets on each workload's login (``DB_API_PASSWORD``...)."""
    url = postgres_url(master_user, master_password, primary, port, database)
    return {
        "DATABASE_URL": url,
        "DATABASE_READ_URL": url,
        **{f"DB_{workload.upper()}_PASSWORD": pw for workload, pw in login_passwords.items()},
    }


def retention_env(retention: RetentionSize) -> list[dict[str, str]]:
    """The retention the archive job applies (unset: nothing is destroyed by age), in its own
    env: a change updates that CronJob only, not every workload's ConfigMap (and pods)."""
    values = {
        "STUDENT_RETENTION_YEARS": retention.student_years,
        "AUDIT_ARCHIVE_RETENTION_YEARS": retention.audit_archive_years,
    }
    return [{"name": k, "value": str(v)} for k, v in values.items() if v is not None]


def retention_secret_data(*, purger_url: str) -> dict[str, str]:
    """The archive job's second database Secret, where the tier keeps student records for a
    set time: the purge login's URL, which its retention step deletes expired students as
    (its own login, the archiver's, may delete nothing)."""
    return {"PURGE_DATABASE_URL": purger_url}


def offboard_secret_data(
    *, master_user: str, master_password: str, primary: str, port: int, database: str,
    report_key: str,
) -> dict[str, str]:  # fmt: skip
    """The offboarding Job's Secret: the master login on the primary (a district's rows in
    every table, its keys and schools, FORCE ROW LEVEL SECURITY lifted in its transaction),
    and the key its destruction report is signed with."""
    url = postgres_url(master_user, master_password, primary, port, database)
    return {"DATABASE_URL": url, "DATABASE_READ_URL": url, "DESTRUCTION_REPORT_KEY": report_key}


# psycopg 3's default: a statement is prepared server-side at its 5th execution on a connection.
PSYCOPG_PREPARE_THRESHOLD = 5


def api_prepare_threshold(via_proxy: bool) -> int | None:
    """psycopg's ``prepare_threshold`` for the API's connections (its DB_PREPARE_THRESHOLD).

    Behind RDS Proxy, None (never prepared): a connection holding a server-side prepared
    statement is pinned to its backend for the rest of the session, and with every pooled
    connection pinned the proxy multiplexes nothing. Straight to PostgreSQL, psycopg's default:
    the hot statements are planned once per connection instead of at every request
    (BENCHMARKS.md measures both)."""
    return None if via_proxy else PSYCOPG_PREPARE_THRESHOLD


def app_config_data(
    *,
    api: ApiSize,
    training: TrainingSize,
    events: EventsSize,
    events_queue_url: str | None,
    models_bucket: str,
    archive_bucket: str,
    drop_bucket: str,
    region: str,
    load_balancer_cidrs: Sequence[str],
    directory: tuple[str, str] | None = None,
    database_via_proxy: bool,
) -> dict[str, str]:
    """Non-secret settings of the API pods. The DB pool is the per-pod share of the tier's
    budget (``pod_pool``), the same arithmetic the spec's capacity check uses. The API sends
    events to the queue the worker receives them from: both read QUEUE_BACKEND (and on SQS
    tiers EVENTS_QUEUE_URL) here."""
    pool, overflow = pod_pool(api)
    queue: dict[str, str] = {"QUEUE_BACKEND": events.queue}
    if events.queue == "sqs":
        if not events_queue_url:
            raise ValueError("events.queue=sqs: the stack's SQS queue URL is missing")
        queue["EVENTS_QUEUE_URL"] = events_queue_url
        # A stack that moved up from a table-queue tier may still hold events accepted before
        # the move in the table: the workers drain it before SQS (app/jobs/events/drain.py).
        # Born on SQS, the table stays empty: one count a minute, on the worker's own pool.
        queue["QUEUE_DRAIN_POSTGRES"] = "true"
    prepare = api_prepare_threshold(database_via_proxy)
    return {
        **queue,
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "INFO",
        "HOST": "0.0.0.0",
        "PORT": str(m.API_PORT),
        # Where each container's Secrets are mounted, one file per setting.
        "SECRETS_DIR": m.SECRETS_DIR,
        "MODEL_STORE_URL": f"s3://{models_bucket}/{MODELS_PREFIX}",
        "ARCHIVE_STORE_URL": f"s3://{archive_bucket}/{ARCHIVE_PREFIX}",
        "IMPORT_SOURCE_URL": f"s3://{drop_bucket}/{DROP_PREFIX}",
        "DB_POOL_MIN": str(pool),
        "DB_POOL_MAX": str(pool + overflow),
        # Server-side prepared statements only where no RDS Proxy would pin for them.
        "DB_PREPARE_THRESHOLD": "none" if prepare is None else str(prepare),
        # The same minimum the stack's Prometheus alert watches (catalog: training slice).
        "MIN_PROMOTION_AUC": str(training.min_promotion_auc),
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        # The API takes the client address from X-Forwarded-For only when the peer is in one
        # of these: the load balancer's subnets (its nodes' addresses are in them, nothing
        # else is). Per-client limits then see clients, not the ALB.
        "FORWARDED_ALLOW_IPS": ",".join(load_balancer_cidrs),
        # Tier 4: the directory's table and every region's API hostname (the 307's targets).
        **(
            {
                "HOME_REGION": region,
                "DISTRICT_DIRECTORY_TABLE": directory[0],
                "REGION_API_HOSTS": directory[1],
            }
            if directory
            else {}
        ),
    }
