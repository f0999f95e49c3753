"""The ``Workloads`` component: the bootstrap Job, the API's Deployment and its companions,
the CronJobs, the event worker (``worker.py``), identities, configuration, network policies
and the training alarm."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.shared import k8s_manifests as m
from components.shared.contract import (
    REDIS_PORT,
    DatabaseLogin,
)
from components.workloads.args import WorkloadsArgs
from components.workloads.pipeline import pipeline_alarm
from components.workloads.role_policies import (
    api_policy,
    archiver_policy,
    irsa_role,
    trainer_policy,
)
from components.workloads.settings import (
    API,
    ARCHIVER,
    BOOTSTRAP,
    TRAINER,
    WORKER,
    app_config_data,
    app_secret_data,
    bootstrap_secret_data,
    database_secret_data,
)
from components.workloads.training_job import training_cron_job
from components.workloads.worker import event_worker


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
                    **{
                        f"pod-security.kubernetes.io/{mode}": "restricted"
                        for mode in ("enforce", "audit", "warn")
                    },
                    # The load balancer controller gates each API pod's readiness on its
                    # target being healthy in the target group: a rollout waits for the ALB.
                    "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
                },
            },
            opts=self._k8s(),
        )
        self._namespace = namespace
        self._ns = namespace.metadata.apply(lambda meta: meta.name or args.namespace)
        api_role, trainer_role = self._identities()
        config, app_secret, database_secrets = self._configuration()
        bootstrap = self._bootstrap(config, app_secret, database_secrets[BOOTSTRAP])
        self._api(config, app_secret, database_secrets[API], bootstrap)
        self._jobs(config, app_secret, database_secrets, bootstrap)
        event_worker(
            self,
            name,
            args,
            namespace=self._ns,
            resources=self._resources(),
            placement=self._placement("app"),
            config_map=self._name_of(config),
            secrets=[self._name_of(app_secret), self._name_of(database_secrets[WORKER])],
            depends_on=[namespace, config, app_secret, database_secrets[WORKER], bootstrap],
        )
        self._network_policies()
        pipeline_alarm(self, name, args)

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

        api_role = irsa_role(self, name, args, API, api_policy(args), policy_was_under_role=True)
        trainer_role = irsa_role(
            self, name, args, TRAINER, trainer_policy(args), policy_was_under_role=True
        )
        archiver_role = irsa_role(
            self, name, args, ARCHIVER, archiver_policy(args), policy_was_under_role=True
        )
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
            for component, role in (
                (API, api_role),
                (TRAINER, trainer_role),
                (ARCHIVER, archiver_role),
            )
        }
        # Migrations need no AWS access: the bootstrap Job's account has no IAM role.
        self._service_accounts[BOOTSTRAP] = k8s.core.v1.ServiceAccount(
            f"{name}-{BOOTSTRAP}-sa",
            metadata={"name": BOOTSTRAP, "namespace": self._ns, "labels": m.labels(BOOTSTRAP)},
            automount_service_account_token=False,
            opts=self._k8s(self._namespace),
        )
        return api_role, trainer_role

    def _configuration(
        self,
    ) -> tuple[k8s.core.v1.ConfigMap, k8s.core.v1.Secret, dict[str, k8s.core.v1.Secret]]:
        """The ConfigMap, the Secret every workload reads (API key pepper, Redis URL) and one
        database Secret per workload, each holding only that workload's login.

        None is named: Pulumi names each with a suffix and replaces it when its data change,
        so the pods that read it roll (a fixed name would change under running pods)."""
        name, args, db = self._name, self._args, self._args.database
        directory = args.directory
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"namespace": self._ns, "labels": m.labels("config")},
            data=pulumi.Output.all(
                args.models_bucket.name,
                args.archive_bucket.name,
                args.drop_bucket.name,
                args.events_queue.url if args.events_queue else None,
                directory.table_name if directory else None,
                directory.region_api_hosts if directory else None,
            ).apply(
                lambda v: app_config_data(
                    api=args.api,
                    training=args.training,
                    events=args.events,
                    events_queue_url=v[3],
                    models_bucket=v[0],
                    archive_bucket=v[1],
                    drop_bucket=v[2],
                    region=args.region,
                    load_balancer_cidrs=args.subnets.public,
                    directory=(v[4], v[5]) if directory else None,
                    database_via_proxy=db.via_proxy,
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
        app_secret = self._secret(
            "secret",
            "config",
            pulumi.Output.all(args.redis_url, pepper.result).apply(
                lambda v: app_secret_data(redis_url=v[0], api_key_pepper=v[1])
            ),
        )

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
            workload: self._secret(f"{workload}-db", workload, login_data(login))
            for workload, login in db.logins.items()
        }
        passwords = {workload: login.password for workload, login in db.logins.items()}
        secrets[BOOTSTRAP] = self._secret(
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
        return config, app_secret, secrets

    def _secret(
        self, role: str, component: str, data: pulumi.Output[dict[str, str]]
    ) -> k8s.core.v1.Secret:
        secret_data: pulumi.Output[dict[str, str]] = pulumi.Output.secret(data)
        return k8s.core.v1.Secret(
            f"{self._name}-{role}",
            metadata={"namespace": self._ns, "labels": m.labels(component)},
            type="Opaque",
            string_data=secret_data,
            opts=self._k8s(self._namespace),
        )

    def _bootstrap(
        self,
        config: k8s.core.v1.ConfigMap,
        app_secret: k8s.core.v1.Secret,
        database_secret: k8s.core.v1.Secret,
    ) -> k8s.batch.v1.Job:
        """Migrations of this release, with the master login, before anything else runs:
        named after the release, so each release runs it once; Pulumi waits for it to finish
        and fails `pulumi up` with its reason when it fails. ``migrate`` is idempotent."""
        args = self._args
        labels = m.labels(BOOTSTRAP)
        container = m.app_container(
            name=BOOTSTRAP,
            image=args.image,
            args=["migrate"],
            resources=self._resources(),
            config_map=self._name_of(config),
            secrets=[self._name_of(app_secret), self._name_of(database_secret)],
            serve=False,
        )
        container["env"] = [
            {"name": "DB_POOL_MIN", "value": "1"},
            {"name": "DB_POOL_MAX", "value": "1"},
        ]
        return k8s.batch.v1.Job(
            f"{self._name}-{BOOTSTRAP}",
            metadata={
                "name": f"{BOOTSTRAP}-{args.release}",
                "namespace": self._ns,
                "labels": labels,
            },
            spec=m.job_spec(
                pod_labels=labels,
                pod=m.pod_spec(
                    container=container,
                    service_account=BOOTSTRAP,
                    placement=self._placement("app"),
                    restart_policy="Never",
                ),
            ),
            opts=pulumi.ResourceOptions.merge(
                self._k8s(self._service_accounts[BOOTSTRAP], config, app_secret, database_secret),
                pulumi.ResourceOptions(
                    custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m")
                ),
            ),
        )

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
    def _name_of(resource: k8s.core.v1.ConfigMap | k8s.core.v1.Secret) -> pulumi.Output[str]:
        """The name Pulumi gave the object (unknown until it exists, as on a first preview)."""
        return resource.metadata.apply(lambda meta: meta.name or "")

    def _api(
        self,
        config: k8s.core.v1.ConfigMap,
        app_secret: k8s.core.v1.Secret,
        database_secret: k8s.core.v1.Secret,
        bootstrap: k8s.batch.v1.Job,
    ) -> None:
        """The API's Deployment, Service, HPA, PDB and TargetGroupBinding."""
        name, args, ns = self._name, self._args, self._ns
        api_labels = m.labels(API)
        api_pod = m.pod_spec(
            container=m.app_container(
                name=API,
                image=args.image,
                args=["serve"],
                resources=self._resources(),
                config_map=self._name_of(config),
                secrets=[self._name_of(app_secret), self._name_of(database_secret)],
                serve=True,
            ),
            service_account=API,
            placement=self._placement("app"),
            restart_policy="Always",
            topology_labels=api_labels,
            grace_seconds=m.API_GRACE_SECONDS,
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-api",
            metadata={"name": API, "namespace": ns, "labels": api_labels},
            spec=m.deployment_spec(pod_labels=api_labels, pod=api_pod),
            # Its pods log in with a role that migrations create: the bootstrap Job first.
            opts=self._k8s(
                self._service_accounts[API], config, app_secret, database_secret, bootstrap
            ),
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

    def _jobs(
        self,
        config: k8s.core.v1.ConfigMap,
        app_secret: k8s.core.v1.Secret,
        database_secrets: Mapping[str, k8s.core.v1.Secret],
        bootstrap: k8s.batch.v1.Job,
    ) -> None:
        """The nightly pipeline (import, sharded training) and weekly archival CronJobs."""
        name, args = self._name, self._args
        # Jobs open few connections: the trainer's share of the budget, not an API pod's.
        job_env: list[k8s.core.v1.EnvVarArgsDict] = [
            {"name": "DB_POOL_MIN", "value": "1"},
            {"name": "DB_POOL_MAX", "value": str(args.training.db_connections)},
        ]
        secret_names = {k: self._name_of(v) for k, v in database_secrets.items()}
        depends = (config, app_secret, *database_secrets.values(), bootstrap)
        training_cron_job(
            name,
            args,
            namespace=self._ns,
            config_map=self._name_of(config),
            app_secret=self._name_of(app_secret),
            database_secrets=secret_names,
            env=job_env,
            import_resources=self._resources(),
            # On its dedicated (tainted, spot) group where the tier has one.
            placement=self._placement("training"),
            opts=self._k8s(self._service_accounts[TRAINER], *depends),
        )
        job_labels = m.labels(ARCHIVER)
        container = m.app_container(
            name=ARCHIVER,
            image=args.image,
            args=["archive"],
            resources=self._resources(),
            config_map=self._name_of(config),
            secrets=[self._name_of(app_secret), secret_names[ARCHIVER]],
            serve=False,
        )
        container["env"] = job_env
        k8s.batch.v1.CronJob(
            f"{name}-{ARCHIVER}",
            metadata={"name": ARCHIVER, "namespace": self._ns, "labels": job_labels},
            spec=m.cron_job_spec(
                schedule=args.archive_schedule,
                time_zone=args.time_zone,
                pod_labels=job_labels,
                pod=m.pod_spec(
                    container=container,
                    service_account=ARCHIVER,
                    placement=self._placement("app"),
                    restart_policy="Never",
                ),
                deadline_seconds=m.ARCHIVE_DEADLINE_SECONDS,
                backoff_limit=1,
            ),
            opts=self._k8s(self._service_accounts[ARCHIVER], *depends),
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
