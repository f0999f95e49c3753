"""The app's configuration in the cluster: the ConfigMap every workload reads, the Secret of
the API key pepper and the Redis URL, and one database Secret per workload holding only that
workload's login (the bootstrap Job's: the master login and every login's password).

None is named: Pulumi names each with a suffix and replaces it when its data change, so the
pods that read it roll (a fixed name would change under running pods).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config.tier import ApiSize, EventsSize, RetentionSize, TrainingSize
from components.shared import k8s_manifests as m
from components.shared.contract import (
    BucketRef,
    DatabaseConnection,
    DatabaseLogin,
    DistrictDirectory,
    EventQueue,
)
from components.workloads.on_demand import OFFBOARDER
from components.workloads.settings import (
    ARCHIVER,
    BOOTSTRAP,
    RETENTION,
    app_config_data,
    app_secret_data,
    bootstrap_secret_data,
    database_secret_data,
    offboard_secret_data,
    postgres_url,
    retention_secret_data,
)

# Makes a Secret of the app's namespace: (resource role, component label, string data).
SecretMaker = Callable[[str, str, pulumi.Output[dict[str, str]]], k8s.core.v1.Secret]


def config_map(
    name: str,
    opts: pulumi.ResourceOptions,
    *,
    namespace: pulumi.Input[str],
    api: ApiSize,
    training: TrainingSize,
    events: EventsSize,
    region: str,
    load_balancer_cidrs: Sequence[str],
    buckets: tuple[BucketRef, BucketRef, BucketRef],
    queue: EventQueue | None,
    directory: DistrictDirectory | None,
    database_via_proxy: bool,
) -> k8s.core.v1.ConfigMap:
    """The non-secret settings (``app_config_data``); ``buckets``: the models, archive and
    drop buckets."""
    models, archive, drop = buckets
    return k8s.core.v1.ConfigMap(
        f"{name}-config",
        metadata={"namespace": namespace, "labels": m.labels("config")},
        data=pulumi.Output.all(
            models.name,
            archive.name,
            drop.name,
            queue.url if queue else None,
            directory.table_name if directory else None,
            directory.region_api_hosts if directory else None,
        ).apply(
            lambda v: app_config_data(
                api=api,
                training=training,
                events=events,
                events_queue_url=v[3],
                models_bucket=v[0],
                archive_bucket=v[1],
                drop_bucket=v[2],
                region=region,
                load_balancer_cidrs=load_balancer_cidrs,
                directory=(v[4], v[5]) if directory else None,
                database_via_proxy=database_via_proxy,
            )
        ),
        opts=opts,
    )


def app_secret(
    owner: pulumi.Resource,
    name: str,
    secret: SecretMaker,
    *,
    redis_url: pulumi.Input[str] | None,
    protect: bool,
) -> k8s.core.v1.Secret:
    """The Secret every workload reads: the API key pepper and the Redis URL."""
    # Hashes of API keys are peppered with it: replacing it revokes every key.
    pepper = random.RandomPassword(
        f"{name}-api-key-pepper",
        length=48,
        special=False,
        opts=pulumi.ResourceOptions(parent=owner, protect=protect),
    )
    return secret(
        "secret",
        "config",
        pulumi.Output.all(redis_url, pepper.result).apply(
            lambda v: app_secret_data(redis_url=v[0], api_key_pepper=v[1])
        ),
    )


def database_secrets(db: DatabaseConnection, secret: SecretMaker) -> dict[str, k8s.core.v1.Secret]:
    """One Secret per workload with its own login, and the bootstrap Job's."""

    def login_data(login: DatabaseLogin) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.all(login.password, db.writer_endpoint, db.reader_endpoint).apply(
            lambda v: database_secret_data(
                user=login.username,
                password=v[0],
                writer=v[1],
                reader=v[2],
                port=db.port,
                database=db.database_name,
            )
        )

    secrets = {
        workload: secret(f"{workload}-db", workload, login_data(login))
        for workload, login in db.logins.items()
    }
    passwords = {workload: login.password for workload, login in db.logins.items()}
    secrets[BOOTSTRAP] = secret(
        f"{BOOTSTRAP}-db",
        BOOTSTRAP,
        pulumi.Output.all(
            db.master.password, db.primary_endpoint, pulumi.Output.all(**passwords)
        ).apply(
            lambda v: bootstrap_secret_data(
                master_user=db.master.username,
                master_password=v[0],
                primary=v[1],
                port=db.port,
                database=db.database_name,
                login_passwords=v[2],
            )
        ),
    )
    return secrets


def retention_secret(
    db: DatabaseConnection, secret: SecretMaker, archiver: str
) -> k8s.core.v1.Secret:
    """The archive job's PURGE_DATABASE_URL: the purge login on the writer (``archiver``: the
    component label of the job that reads it)."""
    login = db.logins["purger"]
    return secret(
        "retention-db",
        archiver,
        pulumi.Output.all(login.password, db.writer_endpoint).apply(
            lambda v: retention_secret_data(
                purger_url=postgres_url(login.username, v[0], v[1], db.port, db.database_name)
            )
        ),
    )


def offboard_secret(
    owner: pulumi.Resource,
    name: str,
    db: DatabaseConnection,
    secret: SecretMaker,
    offboarder: str,
    *,
    protect: bool,
) -> k8s.core.v1.Secret:
    """The offboarding Job's Secret: the master on the primary, and the key that signs its
    destruction reports (replacing it would leave past reports unverifiable: protected with
    the stack)."""
    key = random.RandomPassword(
        f"{name}-destruction-report-key",
        length=48,
        special=False,
        opts=pulumi.ResourceOptions(parent=owner, protect=protect),
    )
    return secret(
        "offboard-db",
        offboarder,
        pulumi.Output.all(db.master.password, db.primary_endpoint, key.result).apply(
            lambda v: offboard_secret_data(
                master_user=db.master.username,
                master_password=v[0],
                primary=v[1],
                port=db.port,
                database=db.database_name,
                report_key=v[2],
            )
        ),
    )


def lifecycle_secrets(
    owner: pulumi.Resource,
    name: str,
    db: DatabaseConnection,
    secret: SecretMaker,
    *,
    retention: RetentionSize,
    protect: bool,
) -> dict[str, k8s.core.v1.Secret]:
    """The offboarding Job's Secret (the master); the archive job's second one (the purge
    login, which deletes expired students) only where the tier keeps student records for a
    set time."""
    secrets = {OFFBOARDER: offboard_secret(owner, name, db, secret, OFFBOARDER, protect=protect)}
    if retention.student_years is not None:
        secrets[RETENTION] = retention_secret(db, secret, ARCHIVER)
    return secrets
