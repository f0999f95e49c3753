"""The on-demand Jobs of a student's data lifecycle, which a district's operator starts: each is
a suspended CronJob (it never runs on a schedule) that serves as the Job's template, with its
own service account, IRSA role and database Secret. The operator starts one with its
parameters set on the Job's environment (docs/operations.md, "A student's data"):

    kubectl -n student-success create job purge-$(date +%s) --from=cronjob/purger \\
        --dry-run=client -o yaml \\
      | kubectl set env --local -f - STUDENT=<id or sourced id> REQUESTED_BY='<who asked>' \\
        -o yaml \\
      | kubectl -n student-success apply -f -

(``kubectl set env`` edits a Job's pod template: kubectl's
polymorphichelpers/updatepodspec.go handles ``batch/v1`` Job.) The container's args name the
parameters as ``$(VAR)``, which Kubernetes expands from the container's env; unset, each is
empty and the command refuses to run (exit 2, nothing done).

- ``purger``: ``purge-student`` as the purge login (ssp_purger, migration 0023); its role reads
  the model store's pointer (which model versions learnt from the student).
- ``offboarder``: ``offboard-district`` as the master (the only Job but the bootstrap's that
  holds it: it deletes a district's rows from every table, its keys and its schools), with the
  key that signs its report; its role writes the export under ``offboarding/`` of the drop
  bucket, destroys object versions under the drop prefix and the model store, and writes the
  signed report under ``offboarding/`` of the audit archive (Object Lock keeps it).
- ``access-report``: ``access-report`` as the archiver's login (the only one allowed to read
  every student's accesses), covering the archived months; its role reads the archived months
  and writes the report under ``access-reports/`` of the drop bucket, never to the Job's log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.config.capacity import ON_DEMAND_JOB_CONNECTIONS
from components.shared import k8s_manifests as m
from components.shared.contract import BucketRef, DistrictDirectory
from components.shared.lifecycle_iam import ACCESS_REPORTS_PREFIX, OFFBOARDING_PREFIX
from components.workloads.role_policies import (
    access_report_policy,
    offboarder_policy,
    purger_policy,
)
from components.workloads.settings import ARCHIVER

PURGER = "purger"  # also its database login's workload name (app/core/logins.py)
OFFBOARDER = "offboarder"
ACCESS_REPORT = "access-report"
ON_DEMAND = (PURGER, OFFBOARDER, ACCESS_REPORT)
# Never reached while suspended (a schedule is required); unsuspended by mistake, it would
# run with empty parameters, which every command refuses.
NEVER = "0 0 1 1 *"
ON_DEMAND_DEADLINE_SECONDS = 3600


def on_demand_policies(
    models: BucketRef, archive: BucketRef, drop: BucketRef, directory: DistrictDirectory | None
) -> dict[str, pulumi.Output[str]]:
    """The policy of each Job's IRSA role, by the Job's name."""
    return {
        PURGER: purger_policy(models),
        OFFBOARDER: offboarder_policy(models, archive, drop, directory),
        ACCESS_REPORT: access_report_policy(archive, drop),
    }


@dataclass(frozen=True)
class OnDemandJob:
    """One on-demand Job: its command line (``$(VAR)`` parameters), the parameters' defaults
    (empty: the operator sets them) and the Secrets its container reads."""

    name: str
    args: Sequence[pulumi.Input[str]]
    params: Mapping[str, str]
    secrets: Sequence[pulumi.Input[str]]


def lifecycle_jobs(
    *,
    app_secret: pulumi.Input[str],
    database_secrets: Mapping[str, pulumi.Input[str]],
    drop_bucket: pulumi.Input[str],
    archive_bucket: pulumi.Input[str],
) -> list[OnDemandJob]:
    """The three Jobs, their Secrets by name (the app's pepper and Redis URL, and one
    database Secret each: the purge login's, the master's, the archiver's)."""
    purger_db, offboard_db = database_secrets[PURGER], database_secrets[OFFBOARDER]
    archiver_db = database_secrets[ARCHIVER]
    drop = pulumi.Output.concat("s3://", drop_bucket)
    archive = pulumi.Output.concat("s3://", archive_bucket)
    return [
        OnDemandJob(
            PURGER,
            ["purge-student", "--student", "$(STUDENT)", "--requested-by", "$(REQUESTED_BY)"],
            {"STUDENT": "", "REQUESTED_BY": ""},
            [app_secret, purger_db],
        ),
        OnDemandJob(
            OFFBOARDER,
            [
                "offboard-district",
                "--district",
                "$(DISTRICT)",
                "--export-to",
                pulumi.Output.concat(drop, f"/{OFFBOARDING_PREFIX}/district-$(DISTRICT)"),
                # The district's own prefixes (s3://...), where it has them; empty: none.
                "--drop-prefix",
                "$(DROP_PREFIX_URL)",
                "--model-store",
                "$(MODEL_STORE_URL_OF_DISTRICT)",
                "--report-to",
                pulumi.Output.concat(archive, f"/{OFFBOARDING_PREFIX}"),
            ],
            {"DISTRICT": "", "DROP_PREFIX_URL": "", "MODEL_STORE_URL_OF_DISTRICT": ""},
            [app_secret, offboard_db],
        ),
        OnDemandJob(
            ACCESS_REPORT,
            [
                "access-report",
                "--student",
                "$(STUDENT)",
                "--format",
                "$(FORMAT)",
                "--output",
                pulumi.Output.concat(drop, f"/{ACCESS_REPORTS_PREFIX}"),
            ],
            {"STUDENT": "", "FORMAT": "csv"},
            [app_secret, archiver_db],
        ),
    ]


def on_demand_cron_job(
    name: str,
    job: OnDemandJob,
    *,
    image: pulumi.Input[str],
    namespace: pulumi.Input[str],
    config_map: pulumi.Input[str],
    resources: m.Resources,
    placement: m.Placement,
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.CronJob:
    """The suspended CronJob of ``job``: one pod, never retried (the operator reads why it
    failed and starts it again: each command is safe to re-run), under its own service
    account."""
    labels = m.labels(job.name)
    container = m.app_container(
        name=job.name,
        image=image,
        args=[],
        resources=resources,
        config_map=config_map,
        serve=False,
    )
    container["args"] = list(job.args)
    env: list[k8s.core.v1.EnvVarArgsDict] = [
        {"name": "DB_POOL_MIN", "value": "1"},
        {"name": "DB_POOL_MAX", "value": str(ON_DEMAND_JOB_CONNECTIONS)},
    ]
    env += [{"name": k, "value": v} for k, v in job.params.items()]
    container["env"] = env
    spec = m.cron_job_spec(
        schedule=NEVER,
        time_zone="UTC",
        pod_labels=labels,
        pod=m.pod_spec(
            container=container,
            service_account=job.name,
            placement=placement,
            restart_policy="Never",
            secret_volumes=[m.secret_volume(job.name, job.secrets)],
        ),
        deadline_seconds=ON_DEMAND_DEADLINE_SECONDS,
        backoff_limit=0,
    )
    spec["suspend"] = True
    return k8s.batch.v1.CronJob(
        f"{name}-{job.name}",
        metadata={"name": job.name, "namespace": namespace, "labels": labels},
        spec=spec,
        opts=opts,
    )


def on_demand_cron_jobs(
    name: str,
    *,
    image: pulumi.Input[str],
    namespace: pulumi.Input[str],
    config_map: pulumi.Input[str],
    app_secret: pulumi.Input[str],
    database_secrets: Mapping[str, pulumi.Input[str]],
    drop_bucket: pulumi.Input[str],
    archive_bucket: pulumi.Input[str],
    resources: m.Resources,
    placement: m.Placement,
    opts: Callable[[str], pulumi.ResourceOptions],
) -> list[k8s.batch.v1.CronJob]:
    """The suspended CronJobs of the three Jobs; ``opts(job name)``: each one's options."""
    jobs = lifecycle_jobs(
        app_secret=app_secret,
        database_secrets=database_secrets,
        drop_bucket=drop_bucket,
        archive_bucket=archive_bucket,
    )
    return [
        on_demand_cron_job(
            name,
            job,
            image=image,
            namespace=namespace,
            config_map=config_map,
            resources=resources,
            placement=placement,
            opts=opts(job.name),
        )
        for job in jobs
    ]
