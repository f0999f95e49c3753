"""The ``Workloads`` component: the bootstrap Job, the API's Deployment and its companions,
the CronJobs (``training_job.py``, ``archive_job.py``, ``on_demand.py``), the event worker
(``worker.py``), identities, configuration (``configuration.py``), network policies, alarm."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.config.tier import ApiSize, NodeGroupSize, RetentionSize, TrainingSize
from components.shared import k8s_manifests as m
from components.shared.contract import REDIS_PORT, ClusterRef, SageMakerEndpoint, SubnetCidrs
from components.workloads.archive_job import archive_cron_job
from components.workloads.args import WorkloadsArgs
from components.workloads.configuration import (
    app_secret,
    config_map,
    database_secrets,
    lifecycle_secrets,
)
from components.workloads.on_demand import on_demand_cron_jobs, on_demand_policies
from components.workloads.pipeline import pipeline_alarm
from components.workloads.role_policies import (
    api_policy,
    archiver_policy,
    irsa_role,
    service_accounts,
    trainer_policy,
)
from components.workloads.settings import API, ARCHIVER, BOOTSTRAP, TRAINER, WORKER
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
        self._name, self._provider = name, args.cluster.k8s_provider
        self._node_groups: tuple[NodeGroupSize, ...] = args.node_groups
        api = args.api
        # Every app container but a training shard's: the API pod's size.
        self._pod = m.Resources(
            api.cpu_request, api.memory_request, api.cpu_limit, api.memory_limit
        )
        self._namespace = namespace = self._namespace_of(args.namespace)
        self._ns = namespace.metadata.apply(lambda meta: meta.name or args.namespace)
        models, endpoint, queue = args.models_bucket, args.sagemaker, args.events_queue
        api_role, trainer_role = self._identities(
            {
                API: api_policy(models, endpoint, queue, args.directory),
                TRAINER: trainer_policy(models, args.drop_bucket, endpoint, args.stack.region),
                ARCHIVER: archiver_policy(
                    args.archive_bucket,
                    destroy_expired=args.retention.audit_archive_years is not None,
                ),
                **on_demand_policies(models, args.archive_bucket, args.drop_bucket, args.directory),
            },
            cluster=args.cluster,
            namespace=args.namespace,
            tags=args.stack.tags,
        )
        config = config_map(
            name,
            self._k8s(self._namespace),
            namespace=self._ns,
            api=api,
            training=args.training,
            events=args.events,
            region=args.stack.region,
            load_balancer_cidrs=args.subnets.public,
            buckets=(models, args.archive_bucket, args.drop_bucket),
            queue=queue,
            directory=args.directory,
            database_via_proxy=args.database.via_proxy,
        )
        protect = args.stack.protect
        secret = app_secret(self, name, self._secret, redis_url=args.redis_url, protect=protect)
        db_secrets = database_secrets(args.database, self._secret)
        db_secrets |= lifecycle_secrets(
            self, name, args.database, self._secret, retention=args.retention, protect=protect
        )
        bootstrap = self._bootstrap(args.image, args.release, config, secret, db_secrets[BOOTSTRAP])
        self._api(
            args.image, api, args.target_group_arn, config, secret, db_secrets[API], bootstrap
        )
        self._jobs(
            config,
            secret,
            db_secrets,
            bootstrap,
            image=args.image,
            training=args.training,
            shards=args.training_shards,
            endpoint=endpoint,
            schedules=(args.training_schedule, args.archive_schedule),
            time_zone=args.time_zone,
            retention=args.retention,
            buckets=(args.drop_bucket.name, args.archive_bucket.name),
        )
        event_worker(
            self,
            name,
            cluster=args.cluster,
            namespace=self._ns,
            account_namespace=args.namespace,
            tags=args.stack.tags,
            region=args.stack.region,
            image=args.image,
            events=args.events,
            hpa_targets=(api.cpu_target_percent, api.memory_target_percent),
            models=models,
            queue=queue,
            endpoint=endpoint,
            resources=self._pod,
            placement=self._placement("app"),
            config_map=self._name_of(config),
            secrets=[self._name_of(secret), self._name_of(db_secrets[WORKER])],
            depends_on=[namespace, config, secret, db_secrets[WORKER], bootstrap],
        )
        self._network_policies(args.subnets, args.database.port, cache=args.redis_url is not None)
        pipeline_alarm(
            self, name, cluster=args.cluster, topic_arn=args.stack.alarm_topic, tags=args.stack.tags
        )

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

    def _namespace_of(self, namespace: str) -> k8s.core.v1.Namespace:
        """The app's namespace: restricted pod security, pod readiness gated on the ALB."""
        return k8s.core.v1.Namespace(
            f"{self._name}-namespace",
            metadata={
                "name": namespace,
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

    def _k8s(self, *depends: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=self, provider=self._provider, depends_on=list(depends)
        )

    def _identities(
        self,
        policies: Mapping[str, pulumi.Output[str]],
        *,
        cluster: ClusterRef,
        namespace: str,
        tags: dict[str, str],
    ) -> tuple[aws.iam.Role, aws.iam.Role]:
        """IRSA roles of the API, the trainer, the archiver and the on-demand Jobs, each holding
        its policy, and their service accounts; returns the API's and the trainer's roles."""
        name = self._name
        roles = {
            component: irsa_role(
                self,
                name,
                component,
                policy,
                cluster=cluster,
                namespace=namespace,
                tags=tags,
                policy_was_under_role=component in (API, TRAINER, ARCHIVER),
            )
            for component, policy in policies.items()
        }
        self._service_accounts = service_accounts(
            name, roles, namespace=self._ns, opts=lambda: self._k8s(self._namespace)
        )
        return roles[API], roles[TRAINER]

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
        image: pulumi.Input[str],
        release: str,
        config: k8s.core.v1.ConfigMap,
        app_secret: k8s.core.v1.Secret,
        database_secret: k8s.core.v1.Secret,
    ) -> k8s.batch.v1.Job:
        """Migrations of this release, with the master login, before anything else runs:
        named after the release, so each release runs it once; Pulumi waits for it to finish
        and fails `pulumi up` with its reason when it fails. ``migrate`` is idempotent."""
        labels = m.labels(BOOTSTRAP)
        container = m.app_container(
            name=BOOTSTRAP,
            image=image,
            args=["migrate"],
            resources=self._pod,
            config_map=self._name_of(config),
            serve=False,
        )
        secrets = [self._name_of(app_secret), self._name_of(database_secret)]
        container["env"] = [
            {"name": "DB_POOL_MIN", "value": "1"},
            {"name": "DB_POOL_MAX", "value": "1"},
        ]
        return k8s.batch.v1.Job(
            f"{self._name}-{BOOTSTRAP}",
            metadata={
                "name": f"{BOOTSTRAP}-{release}",
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
                    secret_volumes=[m.secret_volume(BOOTSTRAP, secrets)],
                ),
            ),
            opts=pulumi.ResourceOptions.merge(
                self._k8s(self._service_accounts[BOOTSTRAP], config, app_secret, database_secret),
                pulumi.ResourceOptions(
                    custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m")
                ),
            ),
        )

    def _placement(self, group: str) -> m.Placement:
        """On the named node group where the tier has it, else on the app group."""
        groups = {g.name: g for g in self._node_groups}
        if group != "app" and group in groups:
            return m.Placement(group, dedicated=groups[group].dedicated)
        return m.Placement("app" if "app" in groups else None)

    @staticmethod
    def _name_of(resource: k8s.core.v1.ConfigMap | k8s.core.v1.Secret) -> pulumi.Output[str]:
        """The name Pulumi gave the object (unknown until it exists, as on a first preview)."""
        return resource.metadata.apply(lambda meta: meta.name or "")

    def _api(
        self,
        image: pulumi.Input[str],
        size: ApiSize,
        target_group_arn: pulumi.Input[str],
        config: k8s.core.v1.ConfigMap,
        app_secret: k8s.core.v1.Secret,
        database_secret: k8s.core.v1.Secret,
        bootstrap: k8s.batch.v1.Job,
    ) -> None:
        """The API's Deployment, Service, HPA (``size``'s replicas and targets), PDB and the
        TargetGroupBinding to the load balancer's target group."""
        name, ns = self._name, self._ns
        api_labels = m.labels(API)
        api_pod = m.pod_spec(
            container=m.app_container(
                name=API,
                image=image,
                args=["serve"],
                resources=self._pod,
                config_map=self._name_of(config),
                serve=True,
            ),
            service_account=API,
            placement=self._placement("app"),
            restart_policy="Always",
            topology_labels=api_labels,
            grace_seconds=m.API_GRACE_SECONDS,
            secret_volumes=[
                m.secret_volume(API, [self._name_of(app_secret), self._name_of(database_secret)])
            ],
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
                min_replicas=size.min_replicas,
                max_replicas=size.max_replicas,
                cpu_percent=size.cpu_target_percent,
                memory_percent=size.memory_target_percent,
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
                "targetGroupARN": target_group_arn,
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
        *,
        image: pulumi.Input[str],
        training: TrainingSize,
        shards: int,
        endpoint: SageMakerEndpoint | None,
        schedules: tuple[str, str],
        time_zone: str,
        retention: RetentionSize,
        buckets: tuple[pulumi.Input[str], pulumi.Input[str]],
    ) -> None:
        """The nightly pipeline (import, ``shards`` training shards rolling ``endpoint``) and
        weekly archival CronJobs (``schedules``: theirs, in ``time_zone``), and the suspended
        CronJobs of the on-demand Jobs (``buckets``: the drop bucket's and archive's names)."""
        name = self._name
        # Jobs open few connections: the trainer's share of the budget, not an API pod's.
        job_env: list[k8s.core.v1.EnvVarArgsDict] = [
            {"name": "DB_POOL_MIN", "value": "1"},
            {"name": "DB_POOL_MAX", "value": str(training.db_connections)},
        ]
        secret_names = {k: self._name_of(v) for k, v in database_secrets.items()}
        depends = (config, app_secret, *database_secrets.values(), bootstrap)
        training_cron_job(
            name,
            image=image,
            training=training,
            shards=shards,
            endpoint=endpoint,
            schedule=schedules[0],
            time_zone=time_zone,
            namespace=self._ns,
            config_map=self._name_of(config),
            app_secret=self._name_of(app_secret),
            database_secrets=secret_names,
            env=job_env,
            import_resources=self._pod,
            # On its dedicated (tainted, spot) group where the tier has one.
            placement=self._placement("training"),
            opts=self._k8s(self._service_accounts[TRAINER], *depends),
        )
        archive_cron_job(
            name,
            image=image,
            retention=retention,
            schedule=schedules[1],
            time_zone=time_zone,
            namespace=self._ns,
            config_map=self._name_of(config),
            app_secret=self._name_of(app_secret),
            database_secrets=secret_names,
            env=job_env,
            resources=self._pod,
            placement=self._placement("app"),
            opts=self._k8s(self._service_accounts[ARCHIVER], *depends),
        )
        on_demand_cron_jobs(
            name,
            image=image,
            namespace=self._ns,
            config_map=self._name_of(config),
            app_secret=self._name_of(app_secret),
            database_secrets=secret_names,
            drop_bucket=buckets[0],
            archive_bucket=buckets[1],
            resources=self._pod,
            placement=self._placement("app"),
            opts=lambda job: self._k8s(self._service_accounts[job], *depends),
        )

    def _network_policies(self, subnets: SubnetCidrs, database_port: int, *, cache: bool) -> None:
        """Default deny; the load balancer's (public) subnets in to the API; the data stores
        (isolated subnets: the database, and the cache where there is one), DNS and HTTPS
        out."""
        policies = {
            "default-deny": m.default_deny_policy(),
            "allow-api-ingress": m.api_ingress_policy(m.labels(API), subnets.public),
            "allow-egress": m.egress_policy(
                subnets.isolated,
                database_port=database_port,
                cache_port=REDIS_PORT if cache else None,
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
