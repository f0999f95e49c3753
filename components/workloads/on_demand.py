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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.config.capacity import ON_DEMAND_JOB_CONNECTIONS
from components.shared import k8s_manifests as m
from components.shared.iam import ACCESS_REPORTS_PREFIX, OFFBOARDING_PREFIX

PURGER = "purger"  # also its database login's workload name (app/core/logins.py)
OFFBOARDER = "offboarder"
ACCESS_REPORT = "access-report"
ON_DEMAND = (PURGER, OFFBOARDER, ACCESS_REPORT)
# Never reached while suspended (a schedule is required); unsuspended by mistake, it would
# run with empty parameters, which every command refuses.
NEVER = "0 0 1 1 *"
ON_DEMAND_DEADLINE_SECONDS = 3600


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
    purger_db: pulumi.Input[str],
    archiver_db: pulumi.Input[str],
    offboard_db: pulumi.Input[str],
    drop_bucket: pulumi.Input[str],
    archive_bucket: pulumi.Input[str],
) -> list[OnDemandJob]:
    """The three Jobs, their Secrets by name (the app's pepper and Redis URL, and one
    database Secret each)."""
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
