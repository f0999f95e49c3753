"""The app on Kubernetes: prediction API (Deployment, Service, HPA, PDB) bound to the
``ApiLoadBalancer``'s target group by the AWS Load Balancer Controller's TargetGroupBinding,
the nightly training and weekly archival CronJobs, IRSA service accounts, app config and
secrets, network policies, and the training-failure alarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import k8s_manifests as m
from components.alarms import Threshold, metric_alarm
from components.catalog import ApiSize, NodeGroupSize, TrainingSize, pod_pool
from components.contract import REDIS_PORT, BucketRef, DatabaseConnection, SubnetCidrs, owned
from components.iam import api_role_policy, service_account_role, trainer_role_policy

NAMESPACE = "student-success"
API = "api"
TRAINER = "trainer"
ARCHIVER = "archiver"
# seed 001: nightly training at 02:00; seed 002: weekly audit-log archival, moved from the
# seed's 02:00 to 04:00 Sunday, after the trainer's 30-minute deadline, so the two batch jobs
# never hold database connections at the same time (the capacity check counts one).
TRAINING_SCHEDULE = "0 2 * * *"
ARCHIVE_SCHEDULE = "0 4 * * 0"
# The line the app's CLI logs (JSON, field msg) when a command raises.
TRAINING_FAILURE_PATTERN = (
    '{ $.kubernetes.container_name = "trainer" && $.log = "*command failed*" }'
)


def postgres_url(user: str, password: str, host: str, port: int, database: str) -> str:
    """libpq URL with TLS required; the password is percent-encoded."""
    return (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/"
        f"{database}?sslmode=require"
    )


def app_secret_data(
    *,
    user: str,
    password: str,
    writer: str,
    reader: str,
    port: int,
    database: str,
    redis_url: str | None,
    api_key_pepper: str,
) -> dict[str, str]:
    """Values of the app's Secret (every one holds a credential)."""
    data = {
        "DATABASE_URL": postgres_url(user, password, writer, port, database),
        "DATABASE_READ_URL": postgres_url(user, password, reader, port, database),
        "API_KEY_PEPPER": api_key_pepper,
    }
    if redis_url:
        data["REDIS_URL"] = redis_url
    return data


def app_config_data(
    *,
    api: ApiSize,
    models_bucket: str,
    archive_bucket: str,
    region: str,
    load_balancer_cidrs: Sequence[str],
) -> dict[str, str]:
    """Non-secret settings of the API pods. The DB pool is the per-pod share of the tier's
    budget (``pod_pool``), the same arithmetic the spec's capacity check uses."""
    pool, overflow = pod_pool(api)
    return {
        "APP_ENV": "production",
        "ENVIRONMENT": "production",  # the app's settings field
        "LOG_LEVEL": "INFO",
        "HOST": "0.0.0.0",
        "PORT": str(m.API_PORT),
        "MODEL_STORE_URL": f"s3://{models_bucket}/models",
        "ARCHIVE_STORE_URL": f"s3://{archive_bucket}/audit",
        "DB_POOL_MIN": str(pool),
        "DB_POOL_MAX": str(pool + overflow),
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        # uvicorn takes the client address from X-Forwarded-For only when the peer is one of
        # these: the load balancer's subnets. Per-client limits then see clients, not the ALB.
        "FORWARDED_ALLOW_IPS": ",".join(load_balancer_cidrs),
    }


@dataclass
class WorkloadsArgs:
    api: ApiSize
    """The tier's API slice: replicas, resources, the database pool."""
    training: TrainingSize
    """The tier's training slice: the batch jobs' database connections."""
    node_groups: tuple[NodeGroupSize, ...]
    """The cluster's node groups: where the API and the jobs are placed."""
    region: str
    """AWS region of the stack."""
    subnets: SubnetCidrs
    """The VPC's subnet CIDRs: the load balancer's (public) and the data stores' (isolated)."""
    k8s_provider: k8s.Provider
    """The cluster's provider; every Kubernetes object uses it."""
    cluster_name: str
    """EKS cluster name; names the namespace of the app's custom metrics."""
    oidc_provider_arn: pulumi.Input[str]
    """IRSA OIDC provider of the cluster."""
    oidc_issuer: pulumi.Input[str]
    """OIDC issuer without ``https://``."""
    application_log_group_name: pulumi.Input[str]
    """Container Insights application log group (training-failure metric filter)."""
    image: pulumi.Input[str]
    """``<repository_url>:<tag>`` of the app image."""
    target_group_arn: pulumi.Input[str]
    """Target group of the API's load balancer; the API's Service is bound to it."""
    models_bucket: BucketRef
    """Versioned model store (read by the API, written by the trainer)."""
    archive_bucket: BucketRef
    """Archive of old audit-log partitions (written by the archive job)."""
    database: DatabaseConnection
    """Endpoints and credentials of the database; they only ever land in the Secret."""
    alarm_topic_arn: pulumi.Input[str]
    """Topic every alarm notifies."""
    protect: bool
    """``protect`` on the API key pepper."""
    redis_url: pulumi.Input[str] | None = None
    """``rediss://`` URL of the cache (secret), where the tier has one."""
    sagemaker_endpoint_arn: pulumi.Input[str] | None = None
    """SageMaker endpoint the API may invoke, where the tier has one."""
    namespace: str = NAMESPACE
    """Namespace of every object."""
    training_schedule: str = TRAINING_SCHEDULE
    """Cron schedule of the nightly training (seed 001: 02:00)."""
    archive_schedule: str = ARCHIVE_SCHEDULE
    """Cron schedule of the weekly audit-log archival."""
    time_zone: str = "America/New_York"
    """IANA zone the schedules are in (school-district local time)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for every AWS resource of the component."""


class Workloads(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    """Namespace of the app."""
    api_role_arn: pulumi.Output[str]
    """IAM role of the API's service account."""
    trainer_role_arn: pulumi.Output[str]
    """IAM role of the trainer's service account."""

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:workloads:Workloads", name, None, opts)
        self._name, self._args = name, args
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.namespace,
                "labels": {
                    f"pod-security.kubernetes.io/{mode}": "restricted"
                    for mode in ("enforce", "audit", "warn")
                },
            },
            opts=self._k8s(),
        )
        self._namespace = namespace
        self._ns = namespace.metadata.apply(lambda meta: meta.name or args.namespace)
        api_role, trainer_role = self._identities()
        config, secret = self._configuration()
        self._api(config, secret)
        self._jobs(config, secret)
        self._network_policies()
        self._training_alarm()

        self.namespace = self._ns
        self.api_role_arn = api_role.arn
        self.trainer_role_arn = trainer_role.arn
        self.register_outputs(
            {
                "namespace": self.namespace,
                "api_role_arn": self.api_role_arn,
                "trainer_role_arn": self.trainer_role_arn,
            }
        )

    def _k8s(self, *depends: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=self, provider=self._args.k8s_provider, depends_on=list(depends)
        )

    def _identities(self) -> tuple[aws.iam.Role, aws.iam.Role]:
        """IRSA roles of the API and the trainer, and their service accounts."""
        name, args = self._name, self._args

        def irsa_role(component: str, policy: pulumi.Input[str]) -> aws.iam.Role:
            role = service_account_role(
                f"{name}-{component}-role",
                oidc_provider_arn=args.oidc_provider_arn,
                oidc_issuer=args.oidc_issuer,
                namespace=args.namespace,
                service_account=component,
                tags=args.tags,
                opts=owned(self),
            )
            aws.iam.RolePolicy(
                f"{name}-{component}-policy",
                role=role.id,
                policy=policy,
                opts=owned(self, was=role),
            )
            return role

        models, archive = args.models_bucket, args.archive_bucket
        api_policy = pulumi.Output.all(
            models.arn, models.kms_key_arn, args.sagemaker_endpoint_arn
        ).apply(lambda v: api_role_policy(v[0], v[1], v[2]))
        trainer_policy = pulumi.Output.all(
            models.arn, models.kms_key_arn, archive.arn, archive.kms_key_arn
        ).apply(lambda v: trainer_role_policy(v[0], v[1], v[2], v[3]))
        api_role = irsa_role(API, api_policy)
        trainer_role = irsa_role(TRAINER, trainer_policy)
        self._service_accounts = {
            component: k8s.core.v1.ServiceAccount(
                f"{name}-{component}-sa",
                metadata={
                    "name": component,
                    "namespace": self._ns,
                    "labels": m.labels(component),
                    "annotations": {"eks.amazonaws.com/role-arn": role.arn},
                },
                automount_service_account_token=False,
                opts=self._k8s(self._namespace),
            )
            for component, role in ((API, api_role), (TRAINER, trainer_role))
        }
        return api_role, trainer_role

    def _configuration(self) -> tuple[k8s.core.v1.ConfigMap, k8s.core.v1.Secret]:
        """The app's ConfigMap and Secret (database URLs, Redis URL, API key pepper)."""
        name, args, db = self._name, self._args, self._args.database
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": "app-config", "namespace": self._ns, "labels": m.labels("config")},
            data=pulumi.Output.all(args.models_bucket.name, args.archive_bucket.name).apply(
                lambda v: app_config_data(
                    api=args.api,
                    models_bucket=v[0],
                    archive_bucket=v[1],
                    region=args.region,
                    load_balancer_cidrs=args.subnets.public,
                )
            ),
            opts=self._k8s(self._namespace),
        )
        # Hashes of API keys are peppered with it: replacing it revokes every key.
        pepper = random.RandomPassword(
            f"{name}-api-key-pepper",
            length=48,
            special=False,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        secret_data: pulumi.Output[dict[str, str]] = pulumi.Output.all(
            db.password, db.writer_endpoint, db.reader_endpoint, args.redis_url, pepper.result
        ).apply(
            lambda v: app_secret_data(
                user=db.username,
                password=v[0],
                writer=v[1],
                reader=v[2],
                port=db.port,
                database=db.database_name,
                redis_url=v[3],
                api_key_pepper=v[4],
            )
        )
        secret_values: pulumi.Output[dict[str, str]] = pulumi.Output.secret(secret_data)
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": "app-secrets", "namespace": self._ns, "labels": m.labels("config")},
            type="Opaque",
            string_data=secret_values,
            opts=self._k8s(self._namespace),
        )
        return config, secret

    def _resources(self) -> m.Resources:
        api = self._args.api
        return m.Resources(api.cpu_request, api.memory_request, api.cpu_limit, api.memory_limit)

    def _placement(self, group: str) -> m.Placement:
        """On the named node group where the tier has it, else on the app group."""
        groups = {g.name: g for g in self._args.node_groups}
        if group != "app" and group in groups:
            return m.Placement(group, dedicated=groups[group].dedicated)
        return m.Placement("app" if "app" in groups else None)

    @staticmethod
    def _name_of(resource: k8s.core.v1.ConfigMap | k8s.core.v1.Secret, default: str) -> Any:
        return resource.metadata.apply(lambda meta: meta.name or default)

    def _api(self, config: k8s.core.v1.ConfigMap, secret: k8s.core.v1.Secret) -> None:
        """The API's Deployment, Service, HPA, PDB and TargetGroupBinding."""
        name, args, ns = self._name, self._args, self._ns
        api_labels = m.labels(API)
        api_pod = m.pod_spec(
            container=m.app_container(
                name=API,
                image=args.image,
                args=["serve"],
                resources=self._resources(),
                config_map=self._name_of(config, "app-config"),
                secret=self._name_of(secret, "app-secrets"),
                serve=True,
            ),
            service_account=API,
            placement=self._placement("app"),
            restart_policy="Always",
            topology_labels=api_labels,
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-api",
            metadata={"name": API, "namespace": ns, "labels": api_labels},
            spec=m.deployment_spec(pod_labels=api_labels, pod=api_pod),
            opts=self._k8s(self._service_accounts[API], config, secret),
        )
        service = k8s.core.v1.Service(
            f"{name}-api-service",
            metadata={"name": API, "namespace": ns, "labels": api_labels},
            spec=m.service_spec(api_labels),
            opts=self._k8s(self._namespace),
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-api-hpa",
            metadata={"name": API, "namespace": ns, "labels": api_labels},
            spec=m.hpa_spec(
                deployment=deployment.metadata.apply(lambda meta: meta.name or API),
                # The same maximum the spec's connection-capacity check assumes.
                min_replicas=args.api.min_replicas,
                max_replicas=args.api.max_replicas,
                cpu_percent=args.api.cpu_target_percent,
                memory_percent=args.api.memory_target_percent,
            ),
            opts=self._k8s(deployment),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-api-pdb",
            metadata={"name": API, "namespace": ns, "labels": api_labels},
            spec=m.pdb_spec(api_labels),
            opts=self._k8s(self._namespace),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-api-tgb",
            api_version="elbv2.k8s.aws/v1beta1",
            kind="TargetGroupBinding",
            metadata={"name": API, "namespace": ns, "labels": api_labels},
            spec={
                "serviceRef": {"name": API, "port": m.SERVICE_PORT},
                "targetGroupARN": args.target_group_arn,
                "targetType": "ip",
            },
            opts=self._k8s(service),
        )

    def _jobs(self, config: k8s.core.v1.ConfigMap, secret: k8s.core.v1.Secret) -> None:
        """The nightly training and weekly archival CronJobs."""
        name, args = self._name, self._args
        # Jobs open few connections: the trainer's share of the budget, not an API pod's.
        job_env: list[k8s.core.v1.EnvVarArgsDict] = [
            {"name": "DB_POOL_MIN", "value": "1"},
            {"name": "DB_POOL_MAX", "value": str(args.training.db_connections)},
        ]
        for component, command, schedule, deadline, backoff in (
            (TRAINER, "train", args.training_schedule, m.TRAINING_DEADLINE_SECONDS,
             m.TRAINING_BACKOFF_LIMIT),
            (ARCHIVER, "archive", args.archive_schedule, m.ARCHIVE_DEADLINE_SECONDS, 1),
        ):  # fmt: skip
            job_labels = m.labels(component)
            container = m.app_container(
                name=component,
                image=args.image,
                args=[command],
                resources=self._resources(),
                config_map=self._name_of(config, "app-config"),
                secret=self._name_of(secret, "app-secrets"),
                serve=False,
            )
            container["env"] = job_env
            k8s.batch.v1.CronJob(
                f"{name}-{component}",
                metadata={"name": component, "namespace": self._ns, "labels": job_labels},
                spec=m.cron_job_spec(
                    schedule=schedule,
                    time_zone=args.time_zone,
                    pod_labels=job_labels,
                    pod=m.pod_spec(
                        container=container,
                        # Both jobs act as the trainer: it owns the buckets' write access.
                        service_account=TRAINER,
                        # Training lands on its dedicated (tainted, spot) group where the
                        # tier has one.
                        placement=self._placement("training" if component == TRAINER else "app"),
                        restart_policy="Never",
                    ),
                    deadline_seconds=deadline,
                    backoff_limit=backoff,
                ),
                opts=self._k8s(self._service_accounts[TRAINER], config, secret),
            )

    def _network_policies(self) -> None:
        """Default deny; the load balancer's subnets in to the API; the data stores, DNS and
        HTTPS out."""
        args = self._args
        policies = {
            "default-deny": m.default_deny_policy(),
            "allow-api-ingress": m.api_ingress_policy(m.labels(API), args.subnets.public),
            "allow-egress": m.egress_policy(
                args.subnets.isolated,
                database_port=args.database.port,
                cache_port=REDIS_PORT if args.redis_url is not None else None,
            ),
        }
        for policy_name, policy_spec in policies.items():
            k8s.networking.v1.NetworkPolicy(
                f"{self._name}-{policy_name}",
                metadata={
                    "name": policy_name,
                    "namespace": self._ns,
                    "labels": m.labels("network"),
                },
                spec=policy_spec,
                opts=self._k8s(self._namespace),
            )

    def _training_alarm(self) -> None:
        """Container Insights has no per-CronJob failure metric; the trainer's own failure
        line in its logs is exact and arrives within a minute."""
        name, args = self._name, self._args
        metrics_namespace = f"StudentSuccess/{args.cluster_name}"
        failures = aws.cloudwatch.LogMetricFilter(
            f"{name}-training-failures",
            log_group_name=args.application_log_group_name,
            pattern=TRAINING_FAILURE_PATTERN,
            metric_transformation={
                "name": "TrainingFailures",
                "namespace": metrics_namespace,
                "value": "1",
                "unit": "Count",
            },
            opts=owned(self),
        )
        metric_alarm(
            f"{name}-training-failed",
            description="The nightly model training failed (see the trainer's logs)",
            namespace=metrics_namespace,
            metric="TrainingFailures",
            dimensions={},
            statistic="Sum",
            # No run, no datapoint: that is not a failure.
            threshold=Threshold(0, period_seconds=3600, periods=1, missing_data="notBreaching"),
            topic_arn=args.alarm_topic_arn,
            tags=args.tags,
            opts=owned(self, was=failures),
        )
