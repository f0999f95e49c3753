"""Student Success Prediction System: read the stack's spec, compose components, export."""

import json
from typing import Any

import pulumi

from components.alarm_topic import AlarmTopic, AlarmTopicArgs
from components.api_load_balancer import ApiLoadBalancer, ApiLoadBalancerArgs
from components.cache import Cache, CacheArgs
from components.cluster import Cluster, ClusterArgs
from components.config.spec import load_spec
from components.config.spec_global import (
    api_host,
    load_global_spec,
    load_role,
    region_entry,
    shared_host,
    shared_origin_host,
)
from components.dashboard import Dashboard, DashboardArgs
from components.database import Database, DatabaseArgs, ReportingReplica
from components.directory import Directory, DirectoryArgs, replica_arn
from components.edge import AssetsGrant, Edge, EdgeArgs
from components.events import EventsQueue, EventsQueueArgs
from components.global_dns import GlobalDns, GlobalDnsArgs, RegionEndpoint
from components.inference import Inference, InferenceArgs
from components.log_bucket import LogBucket, LogBucketArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.network import Network, NetworkArgs
from components.registry import ImageRepository, Registry, RegistryArgs, replica_repository
from components.shared.certificates import TlsName
from components.shared.contract import DistrictDirectory, ReportingReplicaTarget
from components.storage import SecureBucket, SecureBucketArgs, Transition
from components.workloads import Workloads, WorkloadsArgs


def stack_reference(stack: str) -> pulumi.StackReference:
    """Another stack of this project, in this stack's organization."""
    return pulumi.StackReference(f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}")


def reporting_replica(target: ReportingReplicaTarget | None) -> ReportingReplica | None:
    """Where the cross-region reporting replica goes: the network and alarm topic of the
    stack deployed in its region, which must have run ``pulumi up`` with this program."""
    if target is None:
        return None
    there = stack_reference(target.stack)

    def output(key: str) -> pulumi.Output[Any]:
        def present(value: Any) -> Any:
            if value is None:
                raise ValueError(
                    f"dbReportingReplica: stack {target.stack} has no output {key!r}; run "
                    f"`pulumi up` there first (docs/tier4.md, reporting replica)"
                )
            return value

        return there.get_output(key).apply(present)

    def in_its_region(zones: list[str], vpc_id: str) -> str:
        if not all(zone.startswith(target.region) for zone in zones):
            raise ValueError(
                f"dbReportingReplica: stack {target.stack} runs in {zones[0][:-1]} (its "
                f"availability_zones), not {target.region}"
            )
        return vpc_id

    return ReportingReplica(
        region=target.region,
        vpc_id=pulumi.Output.all(output("availability_zones"), output("vpc_id")).apply(
            lambda v: in_its_region(v[0], v[1])
        ),
        subnet_ids=output("isolated_subnet_ids"),
        client_security_group_ids=[output("app_security_group_id")],
        alarm_topic_arn=output("alarm_topic_arn"),
    )


if load_role() == "global":
    # -- tier 4's global stack: zone and shared name, directory, registry ------------------
    g = load_global_spec()
    dns = GlobalDns(
        "dns",
        GlobalDnsArgs(
            domain_name=g.domain_name,
            shared_host=shared_host(g.domain_name),
            origin_host=shared_origin_host(g.domain_name),
            regions=tuple(
                RegionEndpoint(
                    region=r.name,
                    api_host=api_host(r.name, g.domain_name),
                    # Read only once the region serves: before its first up it has no
                    # load balancer to route to.
                    load_balancer_dns_name=(
                        stack_reference(r.stack).require_output("api_load_balancer_dns_name")
                        if r.serving
                        else None
                    ),
                )
                for r in g.regions
            ),
            protect=True,
            tags=g.tags(),
        ),
    )
    # The shared name's distribution: the regional distributions' WAF and headers, in front
    # of whichever region's load balancer origin.<domain> answers with.
    shared_edge = Edge(
        "shared-edge",
        EdgeArgs(
            name_prefix=f"ssp-{g.stack}",
            api_origin_domain_name=shared_origin_host(g.domain_name),
            api_origin_https=True,
            size=g.tier.edge,
            waf=g.tier.waf,
            tls=TlsName(shared_host(g.domain_name), dns.zone_id, dns.shared_certificate_arn),
            log_retention_days=g.tier.log_retention_days,
            tags=g.tags(),
        ),
    )
    directory = Directory(
        "directory",
        DirectoryArgs(
            table_name=f"ssp-{g.stack}-district-directory",
            replica_regions=g.replica_regions,
            districts=g.district_regions,
            protect=True,
            tags=g.tags(),
        ),
    )
    global_registry = Registry(
        "registry",
        RegistryArgs(
            repository_name=f"{g.project}/{g.stack}/app",
            protect=True,
            replica_regions=g.replica_regions,
            tags=g.tags(),
        ),
    )
    pulumi.export("tier", "global")
    pulumi.export("domain_name", g.domain_name)
    pulumi.export("shared_api_host", shared_host(g.domain_name))
    pulumi.export("zone_id", dns.zone_id)
    pulumi.export("name_servers", dns.name_servers)
    pulumi.export("shared_certificate_arn", dns.shared_certificate_arn)
    pulumi.export("health_check_ids", dns.health_check_ids)
    pulumi.export("origin_certificate_arns", dns.origin_certificate_arns)
    pulumi.export("shared_cdn_domain_name", shared_edge.distribution_domain_name)
    pulumi.export("shared_origin_verify_secret", shared_edge.origin_verify_secret)
    pulumi.export("region_api_hosts", g.region_api_hosts)
    pulumi.export("directory_table_name", directory.table_name)
    pulumi.export(
        "directory_table_arns",
        directory.table_arn.apply(
            lambda arn: {r.name: replica_arn(arn, r.name) for r in g.regions}
        ),
    )
    pulumi.export("registry_repository_name", global_registry.repository_name)
    pulumi.export("registry_repository_url", global_registry.repository_url)
else:
    spec = load_spec()
    tier = spec.tier
    # Tier 4: the global stack's zone, district directory and image registry.
    global_ref = stack_reference(spec.global_stack) if spec.global_stack else None
    hosted_zone_id = global_ref.require_output("zone_id") if global_ref else spec.hosted_zone_id

    alarms = AlarmTopic(
        "alarms",
        AlarmTopicArgs(
            email=spec.alarm_email,
            # Prometheus' alert manager publishes the app's alerts to it too.
            service_publishers=("aps.amazonaws.com",) if tier.monitoring.prometheus else (),
            tags=spec.tags(),
        ),
    )

    network = Network(
        "network",
        NetworkArgs(
            cidr=spec.vpc_cidr,
            size=tier.network,
            flow_log_retention_days=tier.log_retention_days,
            tags=spec.tags(),
        ),
    )

    # -- data tier: database, cache ---------------------------------------------------------

    # AWS names of the data stores start with this (ssp-tier3-db, ssp-tier3-redis); dev alone
    # takes changes at once and may be deleted without protection or final snapshots.
    data_identifier = f"ssp-{spec.stack}"
    database = Database(
        "database",
        DatabaseArgs(
            size=tier.db,
            alarms=tier.alarms,
            identifier=data_identifier,
            vpc_id=network.vpc_id,
            subnet_ids=network.isolated_subnet_ids,
            availability_zones=network.availability_zones,
            client_security_group_ids=[network.app_security_group_id],
            alarm_topic_arn=alarms.topic_arn,
            private_zone_name=f"{spec.stack}.{spec.project}.internal",
            log_retention_days=tier.log_retention_days,
            protect=spec.protect,
            apply_immediately=not spec.protect,
            backup_region=spec.db_backup_region,
            restore=spec.db_restore,
            engine_version=spec.db_engine_version,
            blue_green=spec.db_upgrade_strategy == "blue-green",
            reporting_replica=reporting_replica(spec.db_reporting_replica),
            tags=spec.tags("ferpa"),
        ),
    )
    cache: Cache | None = None
    if tier.cache.enabled:
        cache = Cache(
            "cache",
            CacheArgs(
                size=tier.cache,
                alarms=tier.alarms,
                identifier=data_identifier,
                vpc_id=network.vpc_id,
                subnet_ids=network.isolated_subnet_ids,
                client_security_group_ids=[network.app_security_group_id],
                alarm_topic_arn=alarms.topic_arn,
                protect=spec.protect,
                apply_immediately=not spec.protect,
                tags=spec.tags("ferpa"),
            ),
        )

    # -- compute: registry, storage, cluster -------------------------------------------------

    if global_ref is None:
        registry = Registry(
            "registry",
            RegistryArgs(
                repository_name=f"{spec.project}/{spec.stack}/app",
                protect=spec.protect,
                tags=spec.tags(),
            ),
        )
        image_repository = ImageRepository(registry.repository_url, registry.repository_arn)
    else:
        # ECR replicates the global registry's images into this region.
        image_repository = replica_repository(
            global_ref.require_output("registry_repository_name"), spec.region
        )
    # Access logs of the load balancer and of the FERPA buckets (who read which record, when).
    access_logs = LogBucket(
        "access-logs",
        LogBucketArgs(
            retention_days=tier.log_retention_days,
            protect=spec.protect,
            tags=spec.tags("ferpa"),
        ),
    )
    # CloudFront's read grant joins the models bucket's one policy once the distribution exists.
    assets_grant = AssetsGrant() if tier.edge.enabled else None
    models_bucket = SecureBucket(
        "models",
        SecureBucketArgs(
            purpose="model artifacts",
            protect=spec.protect,
            force_destroy=not spec.protect,
            # seed 001: keep the last 5 model versions for rollback.
            noncurrent_versions_kept=5,
            noncurrent_days=30,
            extra_policy_statements=[assets_grant.statement] if assets_grant else [],
            extra_key_policy_statements=[assets_grant.key_statement] if assets_grant else [],
            access_log_bucket=access_logs.bucket_name,
            tags=spec.tags("ferpa"),
        ),
    )
    audit_archive_bucket = SecureBucket(
        "audit-archive",
        SecureBucketArgs(
            purpose="archived audit-log partitions",
            protect=spec.protect,
            force_destroy=not spec.protect,
            # Audit partitions are read only for investigations: instant-retrieval archive after
            # 30 days, deep archive (hours to restore) after a year. Nothing expires (FERPA).
            transitions=(Transition(30, "GLACIER_IR"), Transition(365, "DEEP_ARCHIVE")),
            access_log_bucket=access_logs.bucket_name,
            tags=spec.tags("ferpa"),
        ),
    )
    # The district's nightly exports (native CSV or OneRoster) land under exports/ here; the
    # nightly pipeline imports them. Student records (FERPA): a key of its own; each night's export
    # replaces the last, whose versions are kept 30 days for a re-import.
    district_drop_bucket = SecureBucket(
        "district-drop",
        SecureBucketArgs(
            purpose="district data exports",
            protect=spec.protect,
            force_destroy=not spec.protect,
            noncurrent_versions_kept=7,
            noncurrent_days=30,
            access_log_bucket=access_logs.bucket_name,
            tags=spec.tags("ferpa"),
        ),
    )
    cluster_name = f"{spec.project}-{spec.stack}"
    cluster = Cluster(
        "cluster",
        ClusterArgs(
            cluster_name=cluster_name,
            region=spec.region,
            vpc_id=network.vpc_id,
            private_subnet_ids=network.private_subnet_ids,
            app_security_group_id=network.app_security_group_id,
            node_groups=tier.node_groups,
            log_retention_days=tier.log_retention_days,
            alarm_topic_arn=alarms.topic_arn,
            alarms=tier.alarms,
            public_access_cidrs=spec.cluster_public_access_cidrs,
            admin_role_arn=spec.cluster_admin_role_arn,
            queue_autoscaler=tier.events.queue == "sqs",
            deletion_protection=spec.protect,
            node_kubernetes_version=spec.node_kubernetes_version,
            tags=spec.tags(),
        ),
    )

    # -- inference ----------------------------------------------------------------------------

    # One image for the endpoint and the workloads.
    app_image = image_repository.url.apply(lambda url: f"{url}:{spec.app_image_tag}")
    inference: Inference | None = None
    # The endpoint starts from the archive of trained models, which exists only after the first
    # training run (see README, "The first deployment").
    if tier.inference.enabled and spec.sagemaker_model_published:
        inference = Inference(
            "inference",
            InferenceArgs(
                endpoint_name=f"ssp-{spec.stack}-predict",
                image_uri=app_image,
                repository_arn=image_repository.arn,
                bucket_name=models_bucket.bucket_name,
                bucket_arn=models_bucket.bucket_arn,
                kms_key_arn=models_bucket.kms_key_arn,
                subnet_ids=network.private_subnet_ids,
                security_group_ids=[network.app_security_group_id],
                size=tier.inference,
                alarms=tier.alarms,
                log_retention_days=tier.log_retention_days,
                alarm_topic_arn=alarms.topic_arn,
                # It serves (and captures) student records.
                tags=spec.tags("ferpa"),
            ),
        )

    # -- events queue, load balancer and workloads -------------------------------------------

    # Between POST /v1/events and the rescoring worker: SQS from tier2 on; below, the app's own
    # PostgreSQL table queue (nothing to create).
    events: EventsQueue | None = None
    if tier.events.queue == "sqs":
        events = EventsQueue(
            "events",
            EventsQueueArgs(
                queue_name=f"ssp-{spec.stack}-events",
                size=tier.events,
                alarm_topic_arn=alarms.topic_arn,
                protect=spec.protect,
                # Each event names a student.
                tags=spec.tags("ferpa"),
            ),
        )

    api_lb = ApiLoadBalancer(
        "workloads-alb",
        ApiLoadBalancerArgs(
            vpc_id=network.vpc_id,
            public_subnet_ids=network.public_subnet_ids,
            app_security_group_id=network.app_security_group_id,
            alarms=tier.alarms,
            alarm_topic_arn=alarms.topic_arn,
            protect=spec.protect,
            behind_cdn=tier.edge.enabled,
            tls=(
                TlsName(spec.api_domain_name, hosted_zone_id, spec.api_certificate_arn)
                if spec.api_domain_name
                else None
            ),
            waf=tier.waf,
            shared_origin_certificate_arn=(
                global_ref.require_output("origin_certificate_arns")[spec.region]
                if global_ref
                else None
            ),
            access_log_bucket=access_logs.bucket_name,
            log_retention_days=tier.log_retention_days,
            tags=spec.tags(),
        ),
        # Its resources were children of the workloads component before it existed.
        moved_from=pulumi.create_urn("workloads", "ssp:workloads:Workloads"),
    )
    workloads = Workloads(
        "workloads",
        WorkloadsArgs(
            api=tier.api,
            training=tier.training,
            training_shards=tier.training.shards(tier.expected_schools),
            events=tier.events,
            node_groups=tier.node_groups,
            region=spec.region,
            subnets=network.subnet_cidrs,
            k8s_provider=cluster.k8s_provider,
            cluster_name=cluster_name,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            application_log_group_name=cluster.application_log_group_name,
            image=app_image,
            target_group_arn=api_lb.target_group_arn,
            models_bucket=models_bucket.ref,
            archive_bucket=audit_archive_bucket.ref,
            drop_bucket=district_drop_bucket.ref,
            database=database.connection,
            release=spec.release,
            redis_url=cache.url if cache is not None else None,
            sagemaker=inference.rollout if inference is not None else None,
            events_queue=events.queue if events is not None else None,
            queue_autoscaler=cluster.queue_autoscaler,
            alarm_topic_arn=alarms.topic_arn,
            protect=spec.protect,
            directory=(
                DistrictDirectory(
                    table_name=global_ref.require_output("directory_table_name"),
                    table_arn=global_ref.require_output("directory_table_arns").apply(
                        lambda arns: region_entry(arns, spec.region, spec.global_stack)
                    ),
                    region_api_hosts=global_ref.require_output("region_api_hosts").apply(
                        lambda hosts: json.dumps(hosts, sort_keys=True)
                    ),
                )
                if global_ref is not None
                else None
            ),
            tags=spec.tags(),
        ),
        # The controllers (TargetGroupBinding CRD) and node groups must be up first.
        opts=pulumi.ResourceOptions(depends_on=[cluster]),
    )

    # -- monitoring ---------------------------------------------------------------------------

    monitoring: Monitoring | None = None
    if tier.monitoring.prometheus:
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                name_prefix=f"ssp-{spec.stack}",
                size=tier.monitoring,
                alarms=tier.alarms,
                min_model_auc=tier.training.min_promotion_auc,
                region=spec.region,
                cluster_arn=cluster.cluster_arn,
                cluster_name=cluster.cluster_name,
                cluster_security_group_id=cluster.cluster_security_group_id,
                subnet_ids=network.private_subnet_ids,
                scraper_cidrs=network.subnet_cidrs.private,
                namespace=workloads.namespace,
                k8s_provider=cluster.k8s_provider,
                alarm_topic_arn=alarms.topic_arn,
                log_retention_days=tier.log_retention_days,
                tags=spec.tags(),
            ),
        )

    # -- edge and dashboard -------------------------------------------------------------------

    edge: Edge | None = None
    if assets_grant is not None and spec.edge_domain_name:
        edge = Edge(
            "edge",
            EdgeArgs(
                name_prefix=f"ssp-{spec.stack}",
                api_origin_domain_name=api_lb.origin_domain_name,
                api_origin_https=spec.api_domain_name is not None,
                api_listener_arn=api_lb.listener_arn,
                api_target_group_arn=api_lb.target_group_arn,
                # Tier 4: the global stack's distribution of the shared name reaches us too.
                accepted_origin_secrets=(
                    [pulumi.Output.secret(global_ref.require_output("shared_origin_verify_secret"))]
                    if global_ref
                    else []
                ),
                assets_bucket_regional_domain_name=models_bucket.bucket_regional_domain_name,
                assets_bucket_arn=models_bucket.bucket_arn,
                assets_grant=assets_grant,
                size=tier.edge,
                waf=tier.waf,
                tls=TlsName(spec.edge_domain_name, hosted_zone_id, spec.edge_certificate_arn),
                log_retention_days=tier.log_retention_days,
                tags=spec.tags(),
            ),
        )

    dashboard = Dashboard(
        "dashboard",
        DashboardArgs(
            dashboard_name=f"ssp-{spec.stack}",
            region=spec.region,
            alarms=tier.alarms,
            db=tier.db,
            load_balancer_arn_suffix=api_lb.arn_suffix,
            target_group_arn_suffix=api_lb.target_group_arn_suffix,
            cluster_name=cluster.cluster_name,
            db_primary_identifier=database.primary_identifier,
            db_replica_identifiers=database.replica_identifiers,
            cache_replication_group_id=cache.replication_group_id if cache is not None else None,
            sagemaker_endpoint_name=inference.endpoint_name if inference is not None else None,
            sagemaker_variant_name=inference.variant_name if inference is not None else None,
            distribution_id=edge.distribution_id if edge is not None else None,
        ),
    )

    # -- outputs ------------------------------------------------------------------------------

    pulumi.export("tier", tier.name)
    pulumi.export("alarm_topic_arn", alarms.topic_arn)
    pulumi.export("dashboard_name", dashboard.dashboard_name)
    # network
    pulumi.export("vpc_id", network.vpc_id)
    pulumi.export("availability_zones", network.availability_zones)
    pulumi.export("public_subnet_ids", network.public_subnet_ids)
    pulumi.export("private_subnet_ids", network.private_subnet_ids)
    pulumi.export("isolated_subnet_ids", network.isolated_subnet_ids)
    pulumi.export("app_security_group_id", network.app_security_group_id)
    # data tier (credentials stay in Secrets Manager and the app's Kubernetes Secret)
    pulumi.export("db_writer_endpoint", database.writer_endpoint)
    pulumi.export("db_reader_endpoint", database.reader_endpoint)
    pulumi.export("db_primary_identifier", database.primary_identifier)
    pulumi.export("db_replica_identifiers", database.replica_identifiers)
    pulumi.export("db_credentials_secret_arn", database.credentials_secret_arn)
    if database.reporting_address is not None:
        pulumi.export("db_reporting_endpoint", database.reporting_address)
    if database.proxy_name is not None:
        pulumi.export("db_proxy_name", database.proxy_name)
    if cache is not None:
        pulumi.export("cache_primary_endpoint", cache.primary_endpoint)
        pulumi.export("cache_reader_endpoint", cache.reader_endpoint)
        pulumi.export("cache_replication_group_id", cache.replication_group_id)
    # compute
    pulumi.export("cluster_name", cluster.cluster_name)
    pulumi.export("ecr_repository_url", image_repository.url)
    pulumi.export("models_bucket", models_bucket.bucket_name)
    pulumi.export("audit_archive_bucket", audit_archive_bucket.bucket_name)
    pulumi.export("district_drop_bucket", district_drop_bucket.bucket_name)
    pulumi.export("district_drop_key_arn", district_drop_bucket.kms_key_arn)
    pulumi.export("api_load_balancer_dns_name", api_lb.dns_name)
    if spec.api_domain_name:
        pulumi.export("api_url", f"https://{spec.api_domain_name}")
    if api_lb.web_acl_arn is not None:
        pulumi.export("waf_web_acl_arn", api_lb.web_acl_arn)
    pulumi.export("app_namespace", workloads.namespace)
    if events is not None:
        pulumi.export("events_queue_url", events.queue_url)
        pulumi.export("events_dead_letter_queue_url", events.dead_letter_queue_url)
    # inference and edge
    if inference is not None:
        pulumi.export("sagemaker_endpoint_name", inference.endpoint_name)
        pulumi.export("sagemaker_endpoint_arn", inference.endpoint_arn)
    if monitoring is not None:
        pulumi.export("prometheus_workspace_arn", monitoring.workspace_arn)
        pulumi.export("prometheus_query_endpoint", monitoring.query_endpoint)
        if monitoring.grafana_url is not None:
            pulumi.export("grafana_url", monitoring.grafana_url)
    if edge is not None:
        pulumi.export("cdn_domain_name", edge.distribution_domain_name)
        pulumi.export("cdn_distribution_id", edge.distribution_id)
        pulumi.export("cdn_url", f"https://{spec.edge_domain_name}")
        pulumi.export("waf_web_acl_arn", edge.web_acl_arn)
