"""The app on Kubernetes: prediction API (Deployment, Service, HPA, PDB) behind an
internet-facing ALB, the nightly training and weekly archival CronJobs, IRSA service
accounts, app config and secrets, network policies, and the API's alarms.

The ALB is created with pulumi-aws (so its ARN suffix is known for alarms and CloudFront)
and bound to the Service by the AWS Load Balancer Controller's TargetGroupBinding. With a
certificate it serves HTTPS (HTTP redirects); without one (dev), HTTP only. On edge tiers
only CloudFront's origin-facing addresses may reach it, and it forwards nothing that lacks
the Edge's secret origin header.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import k8s_manifests as m
from components.alarms import Threshold, expression_alarm, metric_alarm
from components.cache import PORT as CACHE_PORT
from components.catalog import Tier, pod_pool
from components.iam import service_account_role
from components.network import plan_subnets

NAMESPACE = "student-success"
API = "api"
TRAINER = "trainer"
ARCHIVER = "archiver"
# seed 001: nightly training at 02:00; seed 002: weekly audit-log archival, moved from the
# seed's 02:00 to 04:00 Sunday, after the trainer's 30-minute deadline, so the two batch jobs
# never hold database connections at the same time (the capacity check counts one).
TRAINING_SCHEDULE = "0 2 * * *"
# Paths of the app that the public load balancer answers with 404 (see the listener rule).
INTERNAL_PATHS = ("/invocations", "/ping", "/metrics")
# TLS 1.2+ with TLS 1.3 preferred: the ALB policy AWS recommends for new listeners.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
ARCHIVE_SCHEDULE = "0 4 * * 0"
CLOUDFRONT_PREFIX_LIST = "com.amazonaws.global.cloudfront.origin-facing"
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
    tier: Tier,
    models_bucket: str,
    archive_bucket: str,
    region: str,
    load_balancer_cidrs: Sequence[str],
) -> dict[str, str]:
    """Non-secret settings of the API pods. The DB pool is the per-pod share of the tier's
    budget (``pod_pool``), the same arithmetic the spec's capacity check uses."""
    pool, overflow = pod_pool(tier)
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


def api_role_policy(
    models_bucket_arn: str, models_key_arn: str, sagemaker_endpoint_arn: str | None
) -> str:
    """The API reads models and may invoke the SageMaker endpoint; nothing else."""
    statements: list[dict[str, Any]] = [
        {"Sid": "ListModels", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": models_bucket_arn},
        {"Sid": "ReadModels", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"{models_bucket_arn}/*"},
        {"Sid": "DecryptModels", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": models_key_arn},
    ]  # fmt: skip
    if sagemaker_endpoint_arn:
        statements.append(
            {
                "Sid": "InvokeModel",
                "Effect": "Allow",
                "Action": "sagemaker:InvokeEndpoint",
                "Resource": sagemaker_endpoint_arn,
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def trainer_role_policy(
    models_bucket_arn: str, models_key_arn: str, archive_bucket_arn: str, archive_key_arn: str
) -> str:
    """The trainer versions models (read, write, prune) and writes audit archives."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListBuckets",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": [models_bucket_arn, archive_bucket_arn],
                },
                {
                    "Sid": "ReadWriteModels",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": f"{models_bucket_arn}/*",
                },
                {
                    "Sid": "WriteArchives",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:GetObject"],
                    "Resource": f"{archive_bucket_arn}/*",
                },
                {
                    "Sid": "UseBucketKeys",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": [models_key_arn, archive_key_arn],
                },
            ],
        }
    )


@dataclass
class WorkloadsArgs:
    tier: Tier
    """The stack's tier row: replicas, resources, node groups, alarm thresholds."""
    region: str
    """AWS region of the stack."""
    vpc_cidr: str
    """VPC CIDR; the subnet plan gives the ALB and data-store CIDRs of the policies."""
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
    vpc_id: pulumi.Input[str]
    """VPC of the ALB and its target group."""
    public_subnet_ids: Sequence[pulumi.Input[str]]
    """Subnets of the internet-facing ALB."""
    app_security_group_id: pulumi.Input[str]
    """Security group of nodes and pods; admits the ALB on 8080."""
    models_bucket_name: pulumi.Input[str]
    models_bucket_arn: pulumi.Input[str]
    models_kms_key_arn: pulumi.Input[str]
    archive_bucket_name: pulumi.Input[str]
    archive_bucket_arn: pulumi.Input[str]
    archive_kms_key_arn: pulumi.Input[str]
    database_writer_endpoint: pulumi.Input[str]
    """Host the app writes to (the proxy on proxied tiers)."""
    database_reader_endpoint: pulumi.Input[str]
    """Host for reads (replicas, or the writer)."""
    database_port: int
    database_name: str
    database_username: str
    database_password: pulumi.Input[str]
    """Secret Output; only ever lands in the Kubernetes Secret."""
    alarm_topic_arn: pulumi.Input[str]
    """Topic every alarm notifies."""
    protect: bool
    """Deletion protection of the ALB and ``protect`` on the API key pepper."""
    certificate_arn: str | None = None
    """ACM certificate (stack region) for an HTTPS listener; HTTP then redirects to it."""
    redis_url: pulumi.Input[str] | None = None
    """``rediss://`` URL of the cache (secret), where the tier has one."""
    sagemaker_endpoint_arn: pulumi.Input[str] | None = None
    """SageMaker endpoint the API may invoke, where the tier has one."""
    namespace: str = NAMESPACE
    """Namespace of every object."""
    training_schedule: str = TRAINING_SCHEDULE
    archive_schedule: str = ARCHIVE_SCHEDULE
    time_zone: str = "America/New_York"
    """IANA zone the schedules are in (school-district local time)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for every AWS resource of the component."""


class Workloads(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    """Namespace of the app."""
    load_balancer_dns_name: pulumi.Output[str]
    """DNS name of the API's internet-facing ALB (CloudFront's origin on edge tiers)."""
    load_balancer_arn_suffix: pulumi.Output[str]
    """``app/<name>/<id>``: the LoadBalancer dimension of ALB metrics."""
    target_group_arn_suffix: pulumi.Output[str]
    """``targetgroup/<name>/<id>``: the TargetGroup dimension of ALB metrics."""
    listener_arn: pulumi.Output[str]
    """The listener API traffic arrives on (HTTPS where a certificate is configured)."""
    target_group_arn: pulumi.Output[str]
    """Target group of the API pods."""
    api_role_arn: pulumi.Output[str]
    """IAM role of the API's service account."""
    trainer_role_arn: pulumi.Output[str]
    """IAM role of the trainer's service account."""

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:workloads:Workloads", name, None, opts)
        tier = args.tier
        tags = args.tags
        child = pulumi.ResourceOptions(parent=self)
        groups = {g.name: g for g in tier.node_groups}
        plan = plan_subnets(args.vpc_cidr, tier.az_count)
        public_cidrs = [s.cidr for s in plan if s.tier == "public"]
        isolated_cidrs = [s.cidr for s in plan if s.tier == "isolated"]

        def k8s_opts(*depends: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(
                parent=self, provider=args.k8s_provider, depends_on=list(depends)
            )

        # -- namespace, identities ---------------------------------------------------------
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.namespace,
                "labels": {
                    f"pod-security.kubernetes.io/{mode}": "restricted"
                    for mode in ("enforce", "audit", "warn")
                },
            },
            opts=k8s_opts(),
        )
        ns = namespace.metadata.apply(lambda meta: meta.name or args.namespace)

        def irsa_role(component: str, policy: pulumi.Input[str]) -> aws.iam.Role:
            role = service_account_role(
                f"{name}-{component}-role",
                oidc_provider_arn=args.oidc_provider_arn,
                oidc_issuer=args.oidc_issuer,
                namespace=args.namespace,
                service_account=component,
                tags=tags,
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-{component}-policy",
                role=role.id,
                policy=policy,
                opts=pulumi.ResourceOptions(parent=role),
            )
            return role

        api_policy = pulumi.Output.all(
            args.models_bucket_arn, args.models_kms_key_arn, args.sagemaker_endpoint_arn
        ).apply(lambda v: api_role_policy(v[0], v[1], v[2]))
        trainer_policy = pulumi.Output.all(
            args.models_bucket_arn,
            args.models_kms_key_arn,
            args.archive_bucket_arn,
            args.archive_kms_key_arn,
        ).apply(lambda v: trainer_role_policy(v[0], v[1], v[2], v[3]))
        api_role = irsa_role(API, api_policy)
        trainer_role = irsa_role(TRAINER, trainer_policy)
        service_accounts = {
            component: k8s.core.v1.ServiceAccount(
                f"{name}-{component}-sa",
                metadata={
                    "name": component,
                    "namespace": ns,
                    "labels": m.labels(component),
                    "annotations": {"eks.amazonaws.com/role-arn": role.arn},
                },
                automount_service_account_token=False,
                opts=k8s_opts(namespace),
            )
            for component, role in ((API, api_role), (TRAINER, trainer_role))
        }

        # -- configuration -----------------------------------------------------------------
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": "app-config", "namespace": ns, "labels": m.labels("config")},
            data=pulumi.Output.all(args.models_bucket_name, args.archive_bucket_name).apply(
                lambda v: app_config_data(
                    tier=tier,
                    models_bucket=v[0],
                    archive_bucket=v[1],
                    region=args.region,
                    load_balancer_cidrs=public_cidrs,
                )
            ),
            opts=k8s_opts(namespace),
        )
        # Hashes of API keys are peppered with it: replacing it revokes every key.
        pepper = random.RandomPassword(
            f"{name}-api-key-pepper",
            length=48,
            special=False,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        secret_data: pulumi.Output[dict[str, str]] = pulumi.Output.all(
            args.database_password,
            args.database_writer_endpoint,
            args.database_reader_endpoint,
            args.redis_url,
            pepper.result,
        ).apply(
            lambda v: app_secret_data(
                user=args.database_username,
                password=v[0],
                writer=v[1],
                reader=v[2],
                port=args.database_port,
                database=args.database_name,
                redis_url=v[3],
                api_key_pepper=v[4],
            )
        )
        secret_values: pulumi.Output[dict[str, str]] = pulumi.Output.secret(secret_data)
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": "app-secrets", "namespace": ns, "labels": m.labels("config")},
            type="Opaque",
            string_data=secret_values,
            opts=k8s_opts(namespace),
        )
        config_name = config.metadata.apply(lambda meta: meta.name or "app-config")
        secret_name = secret.metadata.apply(lambda meta: meta.name or "app-secrets")

        # -- the API -----------------------------------------------------------------------
        app_placement = m.Placement("app" if "app" in groups else None)
        api_labels = m.labels(API)
        api_pod = m.pod_spec(
            container=m.app_container(
                name=API,
                image=args.image,
                args=["serve"],
                resources=m.Resources(
                    tier.api_cpu_request,
                    tier.api_memory_request,
                    tier.api_cpu_limit,
                    tier.api_memory_limit,
                ),
                config_map=config_name,
                secret=secret_name,
                serve=True,
            ),
            service_account=API,
            placement=app_placement,
            restart_policy="Always",
            topology_labels=api_labels,
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-api",
            metadata={"name": API, "namespace": ns, "labels": api_labels},
            spec=m.deployment_spec(pod_labels=api_labels, pod=api_pod),
            opts=k8s_opts(service_accounts[API], config, secret),
        )
        service = k8s.core.v1.Service(
            f"{name}-api-service",
            metadata={"name": API, "namespace": ns, "labels": api_labels},
            spec=m.service_spec(api_labels),
            opts=k8s_opts(namespace),
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-api-hpa",
            metadata={"name": API, "namespace": ns, "labels": api_labels},
            spec=m.hpa_spec(
                deployment=deployment.metadata.apply(lambda meta: meta.name or API),
                # The same maximum the spec's connection-capacity check assumes.
                min_replicas=tier.api_min_replicas,
                max_replicas=tier.api_max_replicas,
                cpu_percent=tier.api_cpu_target_percent,
                memory_percent=tier.api_memory_target_percent,
            ),
            opts=k8s_opts(deployment),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-api-pdb",
            metadata={"name": API, "namespace": ns, "labels": api_labels},
            spec=m.pdb_spec(api_labels),
            opts=k8s_opts(namespace),
        )

        # -- jobs --------------------------------------------------------------------------
        training = groups.get("training")
        # Training lands on its dedicated (tainted, spot) group where the tier has one.
        training_placement = (
            m.Placement(training.name, dedicated=training.dedicated) if training else app_placement
        )
        # Jobs open few connections: the trainer's share of the budget, not an API pod's.
        job_env: list[k8s.core.v1.EnvVarArgsDict] = [
            {"name": "DB_POOL_MIN", "value": "1"},
            {"name": "DB_POOL_MAX", "value": str(tier.trainer_db_connections)},
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
                resources=m.Resources(
                    tier.api_cpu_request,
                    tier.api_memory_request,
                    tier.api_cpu_limit,
                    tier.api_memory_limit,
                ),
                config_map=config_name,
                secret=secret_name,
                serve=False,
            )
            container["env"] = job_env
            k8s.batch.v1.CronJob(
                f"{name}-{component}",
                metadata={"name": component, "namespace": ns, "labels": job_labels},
                spec=m.cron_job_spec(
                    schedule=schedule,
                    time_zone=args.time_zone,
                    pod_labels=job_labels,
                    pod=m.pod_spec(
                        container=container,
                        # Both jobs act as the trainer: it owns the buckets' write access.
                        service_account=TRAINER,
                        placement=training_placement if component == TRAINER else app_placement,
                        restart_policy="Never",
                    ),
                    deadline_seconds=deadline,
                    backoff_limit=backoff,
                ),
                opts=k8s_opts(service_accounts[TRAINER], config, secret),
            )

        # -- network policies --------------------------------------------------------------
        policies = {
            "default-deny": m.default_deny_policy(),
            "allow-api-ingress": m.api_ingress_policy(api_labels, public_cidrs),
            "allow-egress": m.egress_policy(
                isolated_cidrs,
                database_port=args.database_port,
                cache_port=CACHE_PORT if args.redis_url is not None else None,
            ),
        }
        for policy_name, policy_spec in policies.items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy_name}",
                metadata={"name": policy_name, "namespace": ns, "labels": m.labels("network")},
                spec=policy_spec,
                opts=k8s_opts(namespace),
            )

        # -- load balancer -----------------------------------------------------------------
        alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb-sg",
            vpc_id=args.vpc_id,
            description="API load balancer: HTTP(S) in, the API pods out",
            tags={**tags, "Name": f"{name}-alb"},
            opts=child,
        )
        in_sg = pulumi.ResourceOptions(parent=alb_sg)
        https = args.certificate_arn is not None
        if tier.edge_enabled:
            # Every rule naming CloudFront's prefix list counts as ~55 of the group's 60
            # rules, so CloudFront gets one port: the one its origin protocol uses.
            cloudfront = aws.ec2.get_managed_prefix_list_output(name=CLOUDFRONT_PREFIX_LIST)
            source: dict[str, pulumi.Input[str]] = {"prefix_list_id": cloudfront.id}
            ports: tuple[int, ...] = (443,) if https else (80,)
        else:
            source = {"cidr_ipv4": "0.0.0.0/0"}
            ports = (80, 443) if https else (80,)
        for port in ports:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-in-{port}",
                security_group_id=alb_sg.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description="CloudFront origin-facing" if tier.edge_enabled else "Internet",
                tags=tags,
                opts=in_sg,
                **source,
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-out-pods",
            security_group_id=alb_sg.id,
            referenced_security_group_id=args.app_security_group_id,
            ip_protocol="tcp",
            from_port=m.API_PORT,
            to_port=m.API_PORT,
            description="API pods",
            tags=tags,
            opts=in_sg,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-pods-from-alb",
            security_group_id=args.app_security_group_id,
            referenced_security_group_id=alb_sg.id,
            ip_protocol="tcp",
            from_port=m.API_PORT,
            to_port=m.API_PORT,
            description="API load balancer to the API pods",
            tags=tags,
            opts=in_sg,
        )
        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            security_groups=[alb_sg.id],
            subnets=list(args.public_subnet_ids),
            drop_invalid_header_fields=True,
            enable_deletion_protection=args.protect,
            idle_timeout=60,
            tags=tags,
            opts=child,
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-api-tg",
            port=m.API_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=args.vpc_id,
            deregistration_delay=30,
            health_check={
                "path": m.READINESS_PATH,
                "port": "traffic-port",
                "matcher": "200",
                "interval": 15,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            tags=tags,
            opts=pulumi.ResourceOptions(parent=alb),
        )
        forward: aws.lb.ListenerDefaultActionArgsDict = {
            "type": "forward",
            "target_group_arn": target_group.arn,
        }
        # Behind CloudFront nothing is forwarded by default: the Edge adds the one rule that
        # forwards requests carrying its secret origin header, so other CloudFront
        # distributions (also inside the prefix list) cannot bypass the WAF.
        refuse: aws.lb.ListenerDefaultActionArgsDict = {
            "type": "fixed-response",
            "fixed_response": {"content_type": "text/plain", "status_code": "403"},
        }
        default_action = refuse if tier.edge_enabled else forward
        if https:
            listener = aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=alb.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=TLS_POLICY,
                certificate_arn=args.certificate_arn,
                default_actions=[default_action],
                tags=tags,
                opts=pulumi.ResourceOptions(parent=alb),
            )
            if not tier.edge_enabled:
                aws.lb.Listener(
                    f"{name}-http",
                    load_balancer_arn=alb.arn,
                    port=80,
                    protocol="HTTP",
                    default_actions=[
                        {
                            "type": "redirect",
                            "redirect": {
                                "port": "443",
                                "protocol": "HTTPS",
                                "status_code": "HTTP_301",
                            },
                        }
                    ],
                    tags=tags,
                    opts=pulumi.ResourceOptions(parent=alb),
                )
        else:
            # No certificate configured: plain HTTP (dev); the policy pack flags it.
            listener = aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[default_action],
                tags=tags,
                opts=pulumi.ResourceOptions(parent=alb),
            )
        # The same image serves SageMaker's unauthenticated contract and Prometheus metrics;
        # they are for the endpoint and the cluster, never for the internet.
        aws.lb.ListenerRule(
            f"{name}-http-internal-paths",
            listener_arn=listener.arn,
            priority=10,
            conditions=[{"path_pattern": {"values": list(INTERNAL_PATHS)}}],
            actions=[
                {
                    "type": "fixed-response",
                    "fixed_response": {
                        "content_type": "application/json",
                        "status_code": "404",
                        "message_body": '{"detail": "Not Found"}',
                    },
                }
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=listener),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-api-tgb",
            api_version="elbv2.k8s.aws/v1beta1",
            kind="TargetGroupBinding",
            metadata={"name": API, "namespace": ns, "labels": api_labels},
            spec={
                "serviceRef": {"name": API, "port": m.SERVICE_PORT},
                "targetGroupARN": target_group.arn,
                "targetType": "ip",
            },
            opts=k8s_opts(service),
        )

        # -- alarms ------------------------------------------------------------------------
        lb_dims: dict[str, pulumi.Input[str]] = {"LoadBalancer": alb.arn_suffix}
        metric_alarm(
            f"{name}-api-latency-p95",
            description=f"API p95 latency > {tier.alarm_latency_p95_ms} ms for 5 minutes",
            namespace="AWS/ApplicationELB",
            metric="TargetResponseTime",
            dimensions={**lb_dims, "TargetGroup": target_group.arn_suffix},
            statistic="p95",
            # TargetResponseTime is in seconds.
            threshold=Threshold(tier.alarm_latency_p95_ms / 1000, missing_data="notBreaching"),
            topic_arn=args.alarm_topic_arn,
            tags=tags,
            parent=self,
        )
        expression_alarm(
            f"{name}-api-5xx-rate",
            description=f"API 5xx rate > {tier.alarm_error_rate_percent}% for 5 minutes",
            # No requests is no error; FILL turns absent 5xx datapoints into zeros.
            expression=(
                "IF(requests > 0, 100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests, 0)"
            ),
            metrics={
                "requests": ("AWS/ApplicationELB", "RequestCount", lb_dims, "Sum"),
                "target5xx": ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", lb_dims, "Sum"),
                "elb5xx": ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", lb_dims, "Sum"),
            },
            threshold=Threshold(tier.alarm_error_rate_percent, missing_data="notBreaching"),
            topic_arn=args.alarm_topic_arn,
            tags=tags,
            parent=self,
        )
        # Container Insights has no per-CronJob failure metric; the trainer's own failure
        # line in its logs is exact and arrives within a minute.
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
            opts=child,
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
            tags=tags,
            parent=failures,
        )

        self.namespace = ns
        self.load_balancer_dns_name = alb.dns_name
        self.load_balancer_arn_suffix = alb.arn_suffix
        self.target_group_arn_suffix = target_group.arn_suffix
        self.listener_arn = listener.arn
        self.target_group_arn = target_group.arn
        self.api_role_arn = api_role.arn
        self.trainer_role_arn = trainer_role.arn
        self.register_outputs(
            {
                "namespace": self.namespace,
                "load_balancer_dns_name": self.load_balancer_dns_name,
                "load_balancer_arn_suffix": self.load_balancer_arn_suffix,
                "target_group_arn_suffix": self.target_group_arn_suffix,
                "listener_arn": self.listener_arn,
                "target_group_arn": self.target_group_arn,
                "api_role_arn": self.api_role_arn,
                "trainer_role_arn": self.trainer_role_arn,
            }
        )
