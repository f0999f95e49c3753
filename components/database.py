"""PostgreSQL on RDS: primary (Multi-AZ where the tier says), read replicas behind one DNS
name, a parameter group derived from the tier, RDS Proxy for pooling, KMS everywhere,
credentials in Secrets Manager, and the database's alarms."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.alarms import Threshold, metric_alarm
from components.catalog import AlarmThresholds, DatabaseSize, pg_memory_settings
from components.contract import POSTGRES_PORT, DatabaseConnection, check_identifier, owned
from components.iam import service_trust_policy
from components.kms import customer_key
from components.security_groups import admit_from_groups

# A current PostgreSQL 16 minor on RDS. Minor upgrades are reviewed code changes (they
# restart the instance), so auto_minor_version_upgrade stays off; bump this constant
# before AWS's end of standard support for the minor forces the upgrade in a window.
ENGINE_VERSION = "16.11"
PARAMETER_FAMILY = "postgres16"
DATABASE_NAME = "student_success"
MASTER_USERNAME = "ssp_admin"
# RDS forbids '/', '@', '"' and ' ' in master passwords; these specials are also URL-safe,
# so the password can sit in a connection URL without escaping.
PASSWORD_SPECIALS = "-_.~"
PAGE_KIB = 8  # RDS counts shared_buffers and effective_cache_size in 8 kB pages
# Night in the continental US (03:00-06:30 Eastern, 00:00-03:30 Pacific), not overlapping.
BACKUP_WINDOW = "08:00-09:00"
MAINTENANCE_WINDOW = "sun:09:30-10:30"
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7  # the free tier
MONITORING_INTERVAL_SECONDS = 60
LOG_EXPORTS = ("postgresql", "upgrade")
SLOW_QUERY_MS = 500  # seed 002: log queries slower than 500 ms
ENHANCED_MONITORING_POLICY_ARN = (
    "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
)
PROXY_IDLE_CLIENT_TIMEOUT_SECONDS = 1800
PROXY_BORROW_TIMEOUT_SECONDS = 120
READER_TTL_SECONDS = 30

ApplyMethod = Literal["immediate", "pending-reboot"]
# Static parameters: RDS rejects "immediate" for them, they take effect at the next reboot.
STATIC_PARAMETERS = frozenset({"shared_buffers", "max_connections", "shared_preload_libraries"})


@dataclass(frozen=True)
class DbParameter:
    """One entry of the DB parameter group, already in RDS's units."""

    name: str
    value: str
    apply_method: ApplyMethod


def rds_parameters(size: DatabaseSize) -> list[DbParameter]:
    """The tier's PostgreSQL settings in RDS units, each with an explicit apply_method
    (left unset, the provider's default differs from what RDS reports: a perpetual diff)."""
    mem = pg_memory_settings(size.instance_class, size.max_connections)
    values: dict[str, int | float | str] = {
        "shared_buffers": mem.shared_buffers_mib * 1024 // PAGE_KIB,
        "effective_cache_size": mem.effective_cache_size_mib * 1024 // PAGE_KIB,
        "work_mem": mem.work_mem_mib * 1024,  # kB
        "maintenance_work_mem": mem.maintenance_work_mem_mib * 1024,  # kB
        "max_connections": size.max_connections,
        # Seeds 000/004: SSD storage makes random reads nearly as cheap as sequential ones.
        "random_page_cost": 1.1,
        "effective_io_concurrency": 200,
        "shared_preload_libraries": "pg_stat_statements",
        "log_min_duration_statement": SLOW_QUERY_MS,
        "rds.force_ssl": 1,
    }
    return [
        DbParameter(
            name,
            str(value),
            "pending-reboot" if name in STATIC_PARAMETERS else "immediate",
        )
        for name, value in values.items()
    ]


def proxy_secret_policy(secret_arn: str, key_arn: str, region: str) -> str:
    """Least privilege for RDS Proxy: read one secret, decrypt it through Secrets Manager."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadCredentials",
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": secret_arn,
                },
                {
                    "Sid": "DecryptCredentials",
                    "Effect": "Allow",
                    "Action": "kms:Decrypt",
                    "Resource": key_arn,
                    "Condition": {
                        "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
                    },
                },
            ],
        }
    )


def credentials_document(host: str, password: str) -> str:
    """The Secrets Manager secret's JSON, in the shape RDS Proxy and rotation expect."""
    return json.dumps(
        {
            "username": MASTER_USERNAME,
            "password": password,
            "engine": "postgres",
            "host": host,
            "port": POSTGRES_PORT,
            "dbname": DATABASE_NAME,
        }
    )


def replica_zone(availability_zones: Sequence[pulumi.Input[str]], index: int) -> pulumi.Input[str]:
    """AZ of replica ``index``: round-robin over the AZs, starting after the primary's."""
    return availability_zones[(index + 1) % len(availability_zones)]


class _SharedInstanceArgs(TypedDict):
    """Instance settings the primary and its replicas share."""

    instance_class: str
    storage_type: str
    storage_encrypted: bool
    kms_key_id: pulumi.Input[str]
    max_allocated_storage: int
    parameter_group_name: pulumi.Input[str]
    vpc_security_group_ids: list[pulumi.Input[str]]
    publicly_accessible: bool
    iam_database_authentication_enabled: bool
    auto_minor_version_upgrade: bool
    performance_insights_enabled: bool
    performance_insights_kms_key_id: pulumi.Input[str]
    performance_insights_retention_period: int
    monitoring_interval: int
    monitoring_role_arn: pulumi.Input[str]
    enabled_cloudwatch_logs_exports: list[str]
    copy_tags_to_snapshot: bool
    maintenance_window: str
    apply_immediately: bool


@dataclass
class DatabaseArgs:
    size: DatabaseSize
    """The tier's database slice: instance class, storage, replicas, proxy, backups."""
    alarms: AlarmThresholds
    """The tier's alarm thresholds."""
    identifier: str
    """Prefix of the AWS names (``ssp-tier3`` -> ``ssp-tier3-db``, ``ssp-tier3-db-replica-1``)."""
    vpc_id: pulumi.Input[str]
    """VPC of the database."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """Isolated subnets, one per AZ, for the subnet group and the proxy."""
    availability_zones: Sequence[pulumi.Input[str]]
    """AZ names, in subnet order; the primary takes the first, replicas the next ones."""
    client_security_group_ids: Sequence[pulumi.Input[str]]
    """Security groups allowed to connect on 5432 (the app's); nothing else is."""
    alarm_topic_arn: pulumi.Input[str]
    """SNS topic the alarms notify."""
    private_zone_name: str
    """Private hosted zone holding the reader name (``tier3.student-success.internal``)."""
    protect: bool = True
    """Deletion protection, final snapshot and Pulumi ``protect``; False on dev only."""
    apply_immediately: bool = False
    """Apply modifications at once instead of in the maintenance window (dev only)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for every resource of the component (``spec.tags("ferpa")``)."""


class Database(pulumi.ComponentResource):
    writer_endpoint: pulumi.Output[str]
    """Host the app writes to: the RDS Proxy endpoint on proxied tiers, else the primary."""
    reader_endpoint: pulumi.Output[str]
    """Host for reads: one DNS name over the replicas; the writer when there are none."""
    replica_addresses: list[pulumi.Output[str]]
    """Address of each read replica."""
    port: int
    """PostgreSQL port of every endpoint."""
    database_name: str
    """Name of the application's database."""
    username: str
    """Master user name."""
    password: pulumi.Output[str]
    """Master password (a secret Output)."""
    credentials_secret_arn: pulumi.Output[str]
    """Secrets Manager secret holding {username, password, engine, host, port, dbname}."""
    security_group_id: pulumi.Output[str]
    """Security group of the instances."""
    primary_identifier: pulumi.Output[str]
    """DB instance identifier of the primary."""
    replica_identifiers: list[pulumi.Output[str]]
    """DB instance identifiers of the replicas."""
    proxy_name: pulumi.Output[str] | None
    """Name of the RDS Proxy, or None on tiers without one."""
    kms_key_arn: pulumi.Output[str]
    """Customer key encrypting storage, snapshots, Performance Insights and the secret."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:database:Database", name, None, opts)
        size, tags = args.size, args.tags
        ident = check_identifier(f"{args.identifier}-db", 50)
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)

        def named(role: str) -> dict[str, str]:
            return {**tags, "Name": f"{ident}-{role}"}

        key = customer_key(
            f"{name}-key",
            description=f"Encrypts {ident}: storage, snapshots, Performance Insights, secret",
            tags=tags,
            opts=stateful,
        )

        # Credentials: a pulumi_random password kept in our own KMS-encrypted secret rather
        # than manage_master_user_password. RDS Proxy authenticates with this secret, and the
        # app's Kubernetes Secret needs the password as a Pulumi secret Output; an RDS-managed
        # password rotates outside Pulumi and the pods could not follow it without an extra
        # operator. (Setting both makes RDS silently ignore the password.)
        password = random.RandomPassword(
            f"{name}-password",
            length=40,
            special=True,
            override_special=PASSWORD_SPECIALS,
            opts=child,
        )
        secret_password: pulumi.Output[str] = pulumi.Output.secret(password.result)

        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            description=f"Isolated subnets of {ident}",
            subnet_ids=list(args.subnet_ids),
            tags=tags,
            opts=child,
        )
        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description=f"PostgreSQL {ident}: 5432 from the app and the proxy only",
            tags=named("sg"),
            opts=child,
        )
        admit_from_groups(
            f"{name}-sg-from-client",
            security_group=sg,
            owner=self,
            sources=args.client_security_group_ids,
            port=POSTGRES_PORT,
            description="PostgreSQL from the application tier",
            tags=tags,
        )

        # Replacing a parameter group (family change) must create the new one before the old
        # one, still attached, is deleted: Pulumi's default order, with a name_prefix so the
        # two can coexist.
        params = aws.rds.ParameterGroup(
            f"{name}-params",
            name_prefix=f"{ident}-pg16-",
            family=PARAMETER_FAMILY,
            description=f"PostgreSQL 16 settings of {ident} ({size.instance_class})",
            parameters=[
                {"name": p.name, "value": p.value, "apply_method": p.apply_method}
                for p in rds_parameters(size)
            ],
            tags=tags,
            opts=child,
        )

        monitoring_role = aws.iam.Role(
            f"{name}-monitoring-role",
            assume_role_policy=service_trust_policy("monitoring.rds.amazonaws.com"),
            description=f"Enhanced monitoring of {ident}",
            tags=tags,
            opts=child,
        )
        monitoring_attachment = aws.iam.RolePolicyAttachment(
            f"{name}-monitoring-policy",
            role=monitoring_role.name,
            policy_arn=ENHANCED_MONITORING_POLICY_ARN,
            opts=owned(self, was=monitoring_role),
        )

        # Settings the primary and its replicas share.
        common = _SharedInstanceArgs(
            instance_class=size.instance_class,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=key.arn,
            max_allocated_storage=size.max_storage_gib,
            parameter_group_name=params.name,
            vpc_security_group_ids=[sg.id],
            publicly_accessible=False,
            iam_database_authentication_enabled=True,
            auto_minor_version_upgrade=False,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=key.arn,
            performance_insights_retention_period=PERFORMANCE_INSIGHTS_RETENTION_DAYS,
            monitoring_interval=MONITORING_INTERVAL_SECONDS,
            monitoring_role_arn=monitoring_role.arn,
            enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),
            copy_tags_to_snapshot=True,
            maintenance_window=MAINTENANCE_WINDOW,
            apply_immediately=args.apply_immediately,
        )
        primary = aws.rds.Instance(
            f"{name}-primary",
            identifier=ident,
            engine="postgres",
            engine_version=ENGINE_VERSION,
            allocated_storage=size.storage_gib,
            db_name=DATABASE_NAME,
            username=MASTER_USERNAME,
            password=secret_password,
            port=POSTGRES_PORT,
            db_subnet_group_name=subnet_group.name,
            multi_az=size.multi_az,
            # RDS picks the AZ of a Multi-AZ primary; a single-AZ one takes the first.
            availability_zone=None if size.multi_az else args.availability_zones[0],
            backup_retention_period=size.backup_retention_days,
            backup_window=BACKUP_WINDOW,
            deletion_protection=args.protect,
            skip_final_snapshot=not args.protect,
            final_snapshot_identifier=f"{ident}-final" if args.protect else None,
            # Outside dev, automated backups outlive an accidental delete.
            delete_automated_backups=not args.protect,
            tags=named("primary"),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.protect,
                depends_on=[monitoring_attachment],
                additional_secret_outputs=["password"],
            ),
            **common,
        )

        # Replicas hold no data of their own: no Pulumi protect or deletion protection, so
        # lowering db_replica_count is an ordinary change. Same-region replicas inherit the
        # primary's subnet group, engine version and credentials; they keep no backups.
        replicas: list[aws.rds.Instance] = []
        for i in range(size.replica_count):
            replicas.append(
                aws.rds.Instance(
                    f"{name}-replica-{i + 1}",
                    identifier=f"{ident}-replica-{i + 1}",
                    replicate_source_db=primary.identifier,
                    availability_zone=replica_zone(args.availability_zones, i),
                    multi_az=False,
                    deletion_protection=False,
                    skip_final_snapshot=True,
                    tags=named(f"replica-{i + 1}"),
                    opts=owned(self, was=primary, depends_on=[monitoring_attachment]),
                    **common,
                )
            )

        secret = aws.secretsmanager.Secret(
            f"{name}-credentials",
            description=f"Master credentials of {ident}",
            kms_key_id=key.arn,
            recovery_window_in_days=30 if args.protect else 7,
            tags=tags,
            # The proxy authenticates with it: deleting it cuts the app off the database.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        document: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(primary.address, secret_password).apply(
                lambda v: credentials_document(v[0], v[1])
            )
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-credentials-version",
            secret_id=secret.id,
            secret_string=document,
            opts=owned(self, was=secret, protect=args.protect),
        )

        self.writer_endpoint = primary.address
        self.proxy_name = None
        if size.proxy:
            self.proxy_name, self.writer_endpoint = self._proxy(
                name, ident, args, sg, secret.arn, key.arn, primary
            )

        # RDS Proxy read-only endpoints only serve Aurora clusters, so readers get a DNS name
        # instead: weighted CNAMEs (equal weights, short TTL) in a private zone of the VPC.
        if replicas:
            zone = aws.route53.Zone(
                f"{name}-zone",
                name=args.private_zone_name,
                comment=f"Private names of {ident}",
                vpcs=[{"vpc_id": args.vpc_id}],
                tags=tags,
                opts=child,
            )
            records = [
                aws.route53.Record(
                    f"{name}-reader-{i + 1}",
                    zone_id=zone.zone_id,
                    name=f"reader.{args.private_zone_name}",
                    type="CNAME",
                    ttl=READER_TTL_SECONDS,
                    records=[replica.address],
                    set_identifier=f"replica-{i + 1}",
                    weighted_routing_policies=[{"weight": 1}],
                    opts=owned(self, was=zone),
                )
                for i, replica in enumerate(replicas)
            ]
            self.reader_endpoint = records[0].fqdn
        else:
            self.reader_endpoint = self.writer_endpoint

        self._alarms(name, args, primary, replicas)

        self.replica_addresses = [r.address for r in replicas]
        self.port = POSTGRES_PORT
        self.database_name = DATABASE_NAME
        self.username = MASTER_USERNAME
        self.password = secret_password
        self.credentials_secret_arn = secret.arn
        self.security_group_id = sg.id
        self.primary_identifier = primary.identifier
        self.replica_identifiers = [r.identifier for r in replicas]
        self.kms_key_arn = key.arn
        self.register_outputs(
            {
                "writer_endpoint": self.writer_endpoint,
                "reader_endpoint": self.reader_endpoint,
                "replica_addresses": self.replica_addresses,
                "port": self.port,
                "database_name": self.database_name,
                "username": self.username,
                "password": self.password,
                "credentials_secret_arn": self.credentials_secret_arn,
                "security_group_id": self.security_group_id,
                "primary_identifier": self.primary_identifier,
                "replica_identifiers": self.replica_identifiers,
                "proxy_name": self.proxy_name,
                "kms_key_arn": self.kms_key_arn,
            }
        )

    @property
    def connection(self) -> DatabaseConnection:
        """Endpoints and master credentials, as one bundle for the workloads."""
        return DatabaseConnection(
            writer_endpoint=self.writer_endpoint,
            reader_endpoint=self.reader_endpoint,
            port=self.port,
            database_name=self.database_name,
            username=self.username,
            password=self.password,
        )

    def _proxy(
        self,
        name: str,
        ident: str,
        args: DatabaseArgs,
        db_sg: aws.ec2.SecurityGroup,
        secret_arn: pulumi.Output[str],
        key_arn: pulumi.Output[str],
        primary: aws.rds.Instance,
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """RDS Proxy in front of the primary; returns (proxy name, endpoint)."""
        child = pulumi.ResourceOptions(parent=self)
        proxy_sg = aws.ec2.SecurityGroup(
            f"{name}-proxy-sg",
            vpc_id=args.vpc_id,
            description=f"RDS Proxy of {ident}: 5432 from the app, 5432 to the database",
            tags={**args.tags, "Name": f"{ident}-proxy-sg"},
            opts=child,
        )
        in_proxy_sg = owned(self, was=proxy_sg)
        admit_from_groups(
            f"{name}-proxy-sg-from-client",
            security_group=proxy_sg,
            owner=self,
            sources=args.client_security_group_ids,
            port=POSTGRES_PORT,
            description="PostgreSQL from the application tier",
            tags=args.tags,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-proxy-sg-to-db",
            security_group_id=proxy_sg.id,
            referenced_security_group_id=db_sg.id,
            ip_protocol="tcp",
            from_port=POSTGRES_PORT,
            to_port=POSTGRES_PORT,
            description="Pooled connections to the database",
            tags=args.tags,
            opts=in_proxy_sg,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-sg-from-proxy",
            security_group_id=db_sg.id,
            referenced_security_group_id=proxy_sg.id,
            ip_protocol="tcp",
            from_port=POSTGRES_PORT,
            to_port=POSTGRES_PORT,
            description="PostgreSQL from the RDS Proxy",
            tags=args.tags,
            opts=owned(self, was=db_sg),
        )

        role = aws.iam.Role(
            f"{name}-proxy-role",
            assume_role_policy=service_trust_policy("rds.amazonaws.com"),
            description=f"RDS Proxy of {ident} reads the master credentials",
            tags=args.tags,
            opts=child,
        )
        region = aws.get_region_output().region
        role_policy = aws.iam.RolePolicy(
            f"{name}-proxy-policy",
            role=role.id,
            policy=pulumi.Output.all(secret_arn, key_arn, region).apply(
                lambda v: proxy_secret_policy(v[0], v[1], v[2])
            ),
            opts=owned(self, was=role),
        )
        # iam_auth DISABLED: the app authenticates with the password from its Kubernetes
        # Secret (TLS is still required). REQUIRED would make every pod mint a 15-minute
        # IAM token through IRSA for each new connection, which the app's pool does not do.
        proxy = aws.rds.Proxy(
            f"{name}-proxy",
            name=f"{ident}-proxy",
            engine_family="POSTGRESQL",
            role_arn=role.arn,
            vpc_subnet_ids=list(args.subnet_ids),
            vpc_security_group_ids=[proxy_sg.id],
            require_tls=True,
            idle_client_timeout=PROXY_IDLE_CLIENT_TIMEOUT_SECONDS,
            auths=[
                {
                    "auth_scheme": "SECRETS",
                    "secret_arn": secret_arn,
                    "iam_auth": "DISABLED",
                    "client_password_auth_type": "POSTGRES_SCRAM_SHA_256",
                    "description": "Master credentials",
                }
            ],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )
        # No session pinning filters: the app sets per-session variables for row-level
        # security, so SET statements must keep pinning the client to its connection.
        target_group = aws.rds.ProxyDefaultTargetGroup(
            f"{name}-proxy-targets",
            db_proxy_name=proxy.name,
            connection_pool_config={
                "max_connections_percent": args.size.proxy_max_connections_percent,
                "max_idle_connections_percent": args.size.proxy_max_connections_percent // 2,
                "connection_borrow_timeout": PROXY_BORROW_TIMEOUT_SECONDS,
            },
            opts=owned(self, was=proxy),
        )
        aws.rds.ProxyTarget(
            f"{name}-proxy-primary",
            db_proxy_name=proxy.name,
            target_group_name=target_group.name,
            db_instance_identifier=primary.identifier,
            opts=owned(self, was=proxy),
        )
        return proxy.name, proxy.endpoint

    def _alarms(
        self,
        name: str,
        args: DatabaseArgs,
        primary: aws.rds.Instance,
        replicas: list[aws.rds.Instance],
    ) -> None:
        """CPU, connections and storage on the primary; CPU and lag on every replica.

        Every alarm is owned by the component; replica alarms were once children of their
        replica (the alias keeps them)."""

        def alarm(
            role: str,
            was: pulumi.Resource | None,
            identifier: pulumi.Output[str],
            description: str,
            metric: str,
            threshold: Threshold,
            statistic: str = "Average",
        ) -> None:
            metric_alarm(
                f"{name}-{role}",
                description=description,
                namespace="AWS/RDS",
                metric=metric,
                dimensions={"DBInstanceIdentifier": identifier},
                threshold=threshold,
                statistic=statistic,
                topic_arn=args.alarm_topic_arn,
                tags=args.tags,
                opts=owned(self, was=was),
            )

        size, alarms = args.size, args.alarms
        # "missing" keeps the last state when an instance reboots or fails over; RDS events,
        # not these alarms, report an instance that is down.
        cpu = Threshold(alarms.cpu_percent, period_seconds=300, periods=2)
        connections = size.max_connections * alarms.db_connections_percent // 100
        free_bytes = size.storage_gib * 1024**3 * alarms.free_storage_percent // 100
        alarm(
            "primary-cpu",
            None,
            primary.identifier,
            f"Primary CPU above {alarms.cpu_percent}% for 10 minutes",
            "CPUUtilization",
            cpu,
        )
        alarm(
            "primary-connections",
            None,
            primary.identifier,
            f"Primary connections above {alarms.db_connections_percent}% of "
            f"max_connections {size.max_connections}",
            "DatabaseConnections",
            Threshold(connections, period_seconds=60, periods=5),
            statistic="Maximum",
        )
        # Against the initially allocated storage: autoscaling grows the volume when free
        # space runs low, so the alarm lasting means the db_max_storage_gib ceiling is near.
        alarm(
            "primary-free-storage",
            None,
            primary.identifier,
            f"Primary free storage below {alarms.free_storage_percent}% of {size.storage_gib} GiB",
            "FreeStorageSpace",
            Threshold(free_bytes, comparison="LessThanThreshold", period_seconds=300, periods=1),
            statistic="Minimum",
        )
        for i, replica in enumerate(replicas):
            alarm(
                f"replica-{i + 1}-cpu",
                replica,
                replica.identifier,
                f"Replica {i + 1} CPU above {alarms.cpu_percent}% for 10 minutes",
                "CPUUtilization",
                cpu,
            )
            # "breaching": a replica stops reporting ReplicaLag when replication breaks, so
            # silence is the failure this alarm exists for.
            alarm(
                f"replica-{i + 1}-lag",
                replica,
                replica.identifier,
                f"Replica {i + 1} lag above {alarms.replica_lag_seconds} s, or no lag data",
                "ReplicaLag",
                Threshold(
                    alarms.replica_lag_seconds,
                    period_seconds=60,
                    periods=5,
                    missing_data="breaching",
                ),
                statistic="Maximum",
            )
