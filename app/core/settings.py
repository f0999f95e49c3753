"""Settings of the app, read from the environment and, for credentials, from files in
SECRETS_DIR (one place for every default)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.logins import WORKLOAD_LOGINS, password_setting

AWS_REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")
HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"(?=.{{1,253}}$){HOST_LABEL}(\.{HOST_LABEL})*")
# The settings of the workloads' login passwords, one per login (DB_API_PASSWORD...): declared
# below, one field each; a login without its field fails here, at import.
PASSWORD_SETTINGS = tuple(password_setting(workload) for workload in WORKLOAD_LOGINS)
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "placeholder"}
)


# A key's class picks its rate limit (rate_limit_<class>_requests): people using an app, or a
# machine client (the student information system's sync) sending large batches. Migration
# 0010 checks the same values.
KeyClass = Literal["interactive", "integration"]
KEY_CLASSES: tuple[KeyClass, ...] = get_args(KeyClass)

TYPE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def names(csv: str) -> tuple[str, ...]:
    """A comma-separated setting's entries, trimmed and lower case, empty ones dropped."""
    return tuple(dict.fromkeys(n.strip().lower() for n in csv.split(",") if n.strip()))


class Settings(BaseSettings):
    """Environment variables, named as the field in upper case (e.g. DATABASE_URL), or files
    of that name in the secrets directory (``get_settings``); a variable wins over a file."""

    # hide_input_in_errors: a refused setting may be a secret (a password, the pepper, a URL
    # with credentials); the error names the setting, never echoes its value.
    model_config = SettingsConfigDict(env_file=None, extra="ignore", hide_input_in_errors=True)

    environment: Literal["development", "test", "staging", "production"] = "development"
    log_level: str = "INFO"
    # What `serve` answers. "api": the whole API, on the database. "inference": SageMaker's
    # /ping and /invocations only, scored from the model store: no database, no API keys (the
    # endpoint is reached with IAM-signed calls), so a SageMaker worker opens no connection.
    serve_mode: Literal["api", "inference"] = "api"

    # Database: the primary takes writes; reads go to the replica when one is given, so the
    # API's read traffic does not compete with the writes of imports, training and audit rows.
    database_url: str | None = None
    database_read_url: str | None = None
    embedded_pg_dir: Path = Path(".data/pg")
    # The NOLOGIN role the tenant policies name (migration 0005). Nothing switches to it any
    # more: the API logs in as ssp_api, a member that inherits it. benchmarks/queries.py still
    # uses it, to time the API's queries on an owner connection.
    db_app_role: str = "ssp_app"
    # Passwords that `migrate` sets on the workloads' logins (app/core/logins.py; the migrations
    # create them without one). Only the bootstrap Job, which runs `migrate` with the master's
    # DATABASE_URL, has them; each workload then logs in with its own URL.
    # Unset: that login's password is left as it is (none after the migration: it cannot log
    # in with a password; the embedded server trusts its socket).
    db_api_password: SecretStr | None = None
    db_trainer_password: SecretStr | None = None
    db_archiver_password: SecretStr | None = None
    db_importer_password: SecretStr | None = None
    db_worker_password: SecretStr | None = None
    db_purger_password: SecretStr | None = None
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)
    db_pool_timeout: float = Field(default=2.0, gt=0)
    db_connect_timeout: int = Field(default=3, ge=1)
    # psycopg's prepare_threshold on the API's connections: a statement run this many times on
    # a connection is prepared server-side (saves the planning on every later run). Empty or
    # "none": never prepared, the setting behind RDS Proxy, which pins a connection holding
    # prepared statements to one backend (the deployment sets it per tier from the catalog).
    db_prepare_threshold: int | None = Field(default=5, ge=0)
    db_retry_after_seconds: int = Field(default=5, ge=1)
    db_wait_seconds: float = Field(default=30, ge=0)

    # Redis: the cache and the rate-limit counters every replica shares; without it each
    # process uses its own in-process cache and limits.
    redis_url: str | None = None
    cache_prefix: str = "ssp"  # namespaces keys when deployments share one Redis
    cache_ttl_risk_seconds: int = 900
    cache_ttl_at_risk_seconds: int = 300
    cache_ttl_models_seconds: int = 3600
    # Requests per API key and window, by the key's class (docs/operate.md, "Limits").
    # Interactive: a
    # school's app, used by every teacher of the school through the one key: 100 teachers
    # each acting every 10 s. Integration: the student information system's sync, sending
    # batches of up to 1,000 students: 100,000 students in under 2 minutes.
    rate_limit_interactive_requests: int = Field(default=600, ge=1)
    rate_limit_integration_requests: int = Field(default=60, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    # Failed API-key authentications per client IP and minute before 429 (no DB query then).
    auth_failures_per_minute: int = Field(default=20, ge=1)
    # Networks (comma-separated CIDRs or addresses) of the proxies whose X-Forwarded-For names
    # the client. Empty: nobody's, the peer address is the client (per-IP limits count it).
    forwarded_allow_ips: str = ""

    # Models: the store, how often replicas re-read it, the versions kept for rollback, training
    # and the promotion gate.
    model_store_url: str = ".data/models"
    model_refresh_seconds: float = Field(default=30.0, ge=0)
    # Risk scores of a replaced model generation are kept this long after the replacement, as
    # replicas may still serve it until their next refresh (MODEL_REFRESH_SECONDS) and longer
    # while the store is unreadable (they keep serving the last good models).
    score_retention_seconds: float = Field(default=900.0, ge=0)
    keep_versions: int = Field(default=5, ge=1)
    min_school_students: int = Field(default=300, ge=10)
    promotion_tolerance: float = Field(default=0.01, ge=0)
    # The promotion gate of a school's model, on that school's own held-out students: at least
    # this AUC, and at least this many held-out dropouts and stayers (with fewer, an AUC moves
    # by more than the tolerance from one student's label: too noisy to decide on).
    min_promotion_auc: float = Field(default=0.7, ge=0.5, le=1)
    min_holdout_positives: int = Field(default=20, ge=1)
    min_holdout_negatives: int = Field(default=20, ge=1)
    alert_threshold: float = Field(default=0.3, gt=0, lt=1)
    test_fraction: float = Field(default=0.25, gt=0, lt=1)
    random_seed: int = 42
    # The figures a school acts on and the gate's use of them (app/model/figures.py,
    # promotion.py). A caseload: the share of a school's students its list is acted on for
    # (precision and recall at k). The gate may require a minimum precision at k (0: none),
    # and promotes a school model only on an AUC gain whose interval (DeLong, at this
    # confidence, on the school's held-out students) lies above zero.
    caseload_share: float = Field(default=0.10, gt=0, le=1)
    min_precision_at_k: float = Field(default=0.0, ge=0, le=1)
    promotion_confidence: float = Field(default=0.95, ge=0.5, lt=1)
    # The fairness audit (app/model/fairness.py): groups under this many held-out students are
    # suppressed; a group whose ratio to the largest group on any figure is under the bound (or
    # over its inverse) warns, or with "hold" keeps the model from being promoted.
    fairness_min_group_size: int = Field(default=30, ge=1)
    fairness_min_ratio: float = Field(default=0.8, gt=0, lt=1)
    fairness_action: Literal["warn", "hold"] = "warn"
    # School years (migration 0015): the month a school year starts in (July: 7). Applied to
    # the database by `train` and `refresh-features`, before the features are refreshed.
    school_year_start_month: int = Field(default=7, ge=1, le=12)
    # How many reasons (main contributions) each risk answer carries (0: none).
    risk_reasons: int = Field(default=3, ge=0, le=20)
    # Sharded training (`train --shard i/N`, app/model/sharded_training.py): the district model
    # fits on at most this many labelled students (a seeded sample past it: nine features need
    # no more, and shard 0's memory stays bounded); shards 1..N-1 wait this long for shard 0 to
    # open the run.
    district_sample_rows: int = Field(default=200_000, ge=1_000)
    shard_wait_seconds: float = Field(default=1800.0, ge=0)

    # The ABC indicators (app/core/indicators.py). Defaults: attendance, course-grade and
    # conduct cut points of the Ed-Fi Analytics Middle Tier's early-warning samples
    # (samples/RiskIndicators.sql: attendance under 80 % at risk, under 88 % early warning;
    # a maths or English grade under 65 at risk, under 72 early warning; more than 5 conduct
    # incidents at risk, more than 2 early warning, any state offence at risk). Chronic
    # absence: missing 10 % or more of the days enrolled (the measure of the US Department of
    # Education's civil-rights and ESSA reporting), counted only from this many enrolled days.
    indicator_attendance_at_risk: float = Field(default=0.80, gt=0, le=1)
    indicator_attendance_early_warning: float = Field(default=0.88, gt=0, le=1)
    indicator_chronic_absence_share: float = Field(default=0.10, gt=0, le=1)
    indicator_chronic_min_enrolled_days: int = Field(default=90, ge=1, le=400)
    indicator_incidents_at_risk: int = Field(default=5, ge=0)
    indicator_incidents_early_warning: int = Field(default=2, ge=0)
    # Incident categories that count as a suspension (at risk on their own), comma-separated.
    indicator_suspension_categories: str = "suspension,in_school_suspension,expulsion"
    indicator_failing_mark: float = Field(default=65.0, gt=0, le=100)
    indicator_warning_mark: float = Field(default=72.0, gt=0, le=100)
    # Exam subjects (lower case, comma-separated) that are maths or English.
    indicator_maths_subjects: str = "maths,math,mathematics,algebra,geometry"
    indicator_english_subjects: str = "english,english language arts,ela,reading,writing"
    # Whether training offers the indicators to the models as features (feature set 3,
    # app/model/features.py); false keeps the models on set 2 (no indicator inputs).
    model_indicator_features: bool = True
    # An open alert nobody acknowledged for this many days is overdue (metric, list filter).
    alert_overdue_days: int = Field(default=7, ge=1, le=365)
    # The types an intervention may have (comma-separated, each [a-z][a-z0-9_]*).
    intervention_types: str = (
        "tutoring,mentoring,attendance_plan,behaviour_plan,counselling,family_meeting,other"
    )

    # Where `import` reads the district's bundle when no SOURCE is given: the drop prefix the
    # district's system writes its nightly exports to (a directory or s3://bucket/prefix).
    import_source_url: str | None = None
    # Leave rows equal to the stored ones out of the import's write with one set-based
    # comparison first (apply.py); false: the upsert compares every row itself, the method
    # benchmarks.importing measures beside it.
    import_skip_unchanged: bool = True

    # Audit log archival: every audited read adds a row, so months past the retention are
    # exported to the archive store and dropped, keeping the table's size bounded.
    archive_store_url: str = ".data/archive"
    audit_retention_days: int = Field(default=90, ge=1)
    # Retention of student records and of the audit trail (app/jobs/lifecycle/retention.py),
    # applied by the nightly archive job; unset: kept until a district asks otherwise.
    # A student is purged this many years after their last enrolment or recorded activity,
    # once inactive (the district exported them inactive).
    student_retention_years: int | None = Field(default=None, ge=1, le=100)
    # Archived audit months are destroyed this many years after they ended (their S3 Object
    # Lock must have ended by then: the catalog's audit_lock.days).
    audit_archive_retention_years: int | None = Field(default=None, ge=1, le=100)
    # The purge login's URL (ssp_purger, migration 0023), for the steps that delete student
    # records: the archive job's retention, and `purge-student` (which falls back to
    # DATABASE_URL, the purger's own in its Job). `offboard-district` deletes whole districts
    # as the master (DATABASE_URL in its Job).
    purge_database_url: SecretStr | None = None
    # `offboard-district`: what becomes of the district's audit rows (keep: the record of
    # accesses stays with the operator, as the agreement may require; destroy: with the rest),
    # and the key its destruction report is signed with (HMAC-SHA256).
    offboard_audit_policy: Literal["keep", "destroy"] = "keep"
    destruction_report_key: SecretStr | None = None

    # Secret mixed into API key hashes; must be set outside development.
    api_key_pepper: str = "changeme"

    # SageMaker's container contract root (hyperparameters, model dir, failure file).
    sagemaker_dir: Path = Path("/opt/ml")
    # The endpoint that `train` and `rollback` roll to the served models
    # (app/jobs/sagemaker_rollout.py), the program's endpoint configuration each rollout copies,
    # and where archives go (s3://<models bucket>/sagemaker). Unset: no endpoint to roll.
    sagemaker_endpoint_name: str | None = None
    sagemaker_base_config_name: str | None = None
    sagemaker_archive_url: str | None = None

    # Largest /invocations body; SageMaker's own real-time payload limit is 6 MB.
    max_invocation_bytes: int = Field(default=6 * 1024 * 1024, ge=1024)
    # Largest body of every other route (1,000 instances of /v1/predict take about 250 KB).
    # Checked before the body is parsed and before the API key is.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # How long a request may take to send its whole body; past it, 408 and the connection is
    # closed. uvicorn has no such timeout, and a body still arriving holds its connection: 10 s
    # is 1 MiB at 100 KiB/s, far slower than any client of the API sends.
    body_read_timeout_seconds: float = Field(default=10.0, gt=0)
    # Requests in flight per worker process, counted once their body has arrived; beyond it,
    # 503 with Retry-After at once instead of a queue that grows until every request times out.
    max_in_flight: int = Field(default=64, ge=1)
    # The garbage collector of each API worker, tuned once it has started (app.api.main.tune_gc).
    # Freeze: the startup heap (models, modules, pools: ~180,000 objects) is left out of every
    # later collection; unfrozen, each full collection walked it for ~100 ms with every request
    # in flight waiting (BENCHMARKS.md, section 8). The young threshold: collections start
    # after this many more container objects allocated than freed. A request's objects die by
    # reference counting; at Python's default of 700 the requests in flight alone crossed it,
    # so a collection ran every ~8 requests and found next to nothing.
    gc_freeze: bool = True
    gc_young_threshold: int = Field(default=10_000, ge=1)

    # Tier 4 (docs/tier4.md): each district is served by its home region. The district
    # directory (a DynamoDB global table: district_id -> home_region) is read with GetItem;
    # a request for a district homed elsewhere gets a 307 to that region's API host
    # (app/api/region.py). Unset: a single-region stack, no lookup and no redirect.
    district_directory_table: str | None = None
    home_region: str | None = None  # this API's region (also the directory replica it reads)
    region_api_hosts: dict[str, str] = {}  # JSON: {"us-east-1": "api.us-east-1.example.org"}
    # Directory answers (a district's region, or that it has none) are kept this long; while
    # the directory is unreachable, the last answer keeps serving.
    directory_cache_seconds: float = Field(default=60.0, gt=0)
    # Events (POST /v1/events) and their worker (`worker`): docs/operate.md, "Events and the
    # worker".
    # The queue: a PostgreSQL table (dev and the embedded default) or Amazon SQS (tier2+).
    queue_backend: Literal["postgres", "sqs"] = "postgres"
    events_queue_url: str | None = None  # the SQS queue's URL (QUEUE_BACKEND=sqs)
    # SQS only: the worker also takes what is left in the PostgreSQL table queue (events
    # accepted before the stack moved from a table-queue tier) until the table is empty, and
    # looks again every DRAIN_RECHECK_SECONDS while it is set (app/jobs/events/drain.py).
    queue_drain_postgres: bool = False
    aws_region: str | None = None  # SQS and SageMaker runtime clients; unset: boto3's own
    events_max_batch: int = Field(default=1000, ge=1, le=10_000)  # events per POST
    # Students per batch the worker takes (SQS receives at most 10 per call: it calls again).
    worker_batch_size: int = Field(default=200, ge=1, le=1000)
    # A received message is invisible this long; unacknowledged (a crash), it is delivered again.
    worker_visibility_seconds: int = Field(default=30, ge=1, le=43_200)
    # Receives before a message is dead-lettered. On SQS the queue's redrive policy
    # (maxReceiveCount) decides; set this to the same number.
    worker_max_receives: int = Field(default=5, ge=1, le=1000)
    # Retries wait base * 2^(receives - 1) seconds, at most the maximum.
    worker_backoff_base_seconds: float = Field(default=1.0, ge=0)
    worker_backoff_max_seconds: float = Field(default=300.0, ge=0, le=43_200)
    # How long an empty poll waits (SQS long polling; the PostgreSQL queue sleeps).
    worker_poll_seconds: float = Field(default=1.0, ge=0, le=20)
    worker_metrics_port: int = Field(default=9102, ge=1, le=65535)
    # /healthz fails when the loop has not come round for this long (a stuck worker).
    worker_stall_seconds: float = Field(default=120.0, gt=0)

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = Field(default=1, ge=1)
    # Idle keep-alive connections are kept this long: longer than the ALB's idle timeout (60 s),
    # so the server never closes a connection the load balancer is about to reuse (a 502).
    keep_alive_seconds: int = Field(default=65, ge=1)

    @field_validator("db_prepare_threshold", mode="before")
    @classmethod
    def _none_is_never(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value

    @field_validator(*PASSWORD_SETTINGS, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # an empty variable is no password

    def rate_limit(self, key_class: KeyClass) -> int:
        """Requests per ``rate_limit_window_seconds`` for a key of this class."""
        if key_class == "integration":
            return self.rate_limit_integration_requests
        return self.rate_limit_interactive_requests

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _networks(cls, value: str) -> str:
        for entry in proxy_networks(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"FORWARDED_ALLOW_IPS: {entry!r} is not an IP network") from None
        return value

    @field_validator("region_api_hosts")
    @classmethod
    def _hosts(cls, value: dict[str, str]) -> dict[str, str]:
        for region, host in value.items():
            if not AWS_REGION.fullmatch(region):
                raise ValueError(f"REGION_API_HOSTS: {region!r} is not an AWS region name")
            if not HOST_NAME.fullmatch(host):
                raise ValueError(
                    f"REGION_API_HOSTS[{region!r}]: {host!r} is not a host name"
                    " (no scheme, path or port)"
                )
        return value

    @model_validator(mode="after")
    def _indicator_cut_points(self) -> Settings:
        """Cut points that contradict each other, or types that are no names, fail here."""
        pairs = (
            ("attendance_at_risk", "attendance_early_warning"),
            ("failing_mark", "warning_mark"),
            ("incidents_early_warning", "incidents_at_risk"),
        )
        for low, high in pairs:
            if getattr(self, f"indicator_{low}") > getattr(self, f"indicator_{high}"):
                raise ValueError(
                    f"INDICATOR_{low.upper()} must not exceed INDICATOR_{high.upper()}"
                )
        types = names(self.intervention_types)
        bad = [t for t in types if not TYPE_NAME.fullmatch(t)]
        if not types or bad:
            raise ValueError(
                f"INTERVENTION_TYPES: {bad or 'none given'}: each type is [a-z][a-z0-9_]*"
            )
        return self

    @model_validator(mode="after")
    def _directory(self) -> Settings:
        region = self.home_region or ""
        if self.district_directory_table and not AWS_REGION.fullmatch(region):
            raise ValueError(
                "HOME_REGION must name this API's AWS region when DISTRICT_DIRECTORY_TABLE is set"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        # The one limit for every key became one per key class (migration 0010): a
        # deployment that still sets it must not silently get the new defaults instead.
        if "RATE_LIMIT_REQUESTS" in os.environ:
            raise ValueError(
                "RATE_LIMIT_REQUESTS is no longer read: set RATE_LIMIT_INTERACTIVE_REQUESTS "
                "and RATE_LIMIT_INTEGRATION_REQUESTS (per key class) instead"
            )
        # A login password, when given at all, is a real one (in every environment).
        for name in PASSWORD_SETTINGS:
            secret: SecretStr | None = getattr(self, name)
            if secret is None:
                continue
            value = secret.get_secret_value()
            if value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < 16:
                raise ValueError(f"{name.upper()} must be a real password of 16+ characters")
        if self.queue_backend == "sqs" and not self.events_queue_url:
            raise ValueError("QUEUE_BACKEND=sqs needs EVENTS_QUEUE_URL (the queue's URL)")
        if self.queue_drain_postgres and self.queue_backend != "sqs":
            raise ValueError(
                "QUEUE_DRAIN_POSTGRES=true needs QUEUE_BACKEND=sqs: with QUEUE_BACKEND=postgres"
                " the table is the queue itself"
            )
        # Every environment but development (test included: test deployments hold real data
        # often enough) must bring a real secret; the tests pass one. Inference needs neither:
        # it reads no keys and no database.
        if self.environment != "development" and self.serve_mode == "api":
            if self.api_key_pepper.strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError("API_KEY_PEPPER is a placeholder; set a real secret")
            if len(self.api_key_pepper) < 16:
                raise ValueError("API_KEY_PEPPER must be at least 16 characters")
            if not self.database_url:
                raise ValueError("DATABASE_URL must be set outside development")
        return self


def proxy_networks(value: str) -> list[str]:
    """The entries of FORWARDED_ALLOW_IPS."""
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def secrets_dir(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The directory SECRETS_DIR names: the cluster mounts each workload's Secrets there, one
    file per setting (DATABASE_URL, API_KEY_PEPPER...), so credentials stay out of the
    process's environment (/proc/<pid>/environ, child processes, crash dumps). Unset: none."""
    value = environ.get("SECRETS_DIR", "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_dir():
        # A missing mount would otherwise start the app without its credentials.
        raise ValueError(f"SECRETS_DIR={value!r} is not a directory")
    return path


@lru_cache
def get_settings() -> Settings:
    # pydantic-settings' own init argument, which the pydantic mypy plugin does not list.
    return Settings(_secrets_dir=secrets_dir())  # type: ignore[call-arg]
