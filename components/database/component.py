"""The ``Database`` component: its key, network, parameter group, the primary and its
replicas, the reader name and the master credentials."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from app.core.logins import WORKLOAD_LOGINS
from components.database.access import credentials_secret, reader_name
from components.database.alarms import database_alarms
from components.database.args import DatabaseArgs
from components.database.instance_parts import log_groups, network, parameter_group
from components.database.proxy import database_proxy
from components.database.recovery import (
    RESTORE_INPUTS,
    backup_replication,
    engine_major,
    primary_identifier,
    primary_resource_name,
    restore_inputs,
)
from components.database.reporting import reporting_replica
from components.database.settings import (
    BACKUP_WINDOW,
    DATABASE_NAME,
    ENHANCED_MONITORING_POLICY_ARN,
    LOG_EXPORTS,
    MAINTENANCE_WINDOW,
    MASTER_USERNAME,
    MONITORING_INTERVAL_SECONDS,
    PASSWORD_SPECIALS,
    PERFORMANCE_INSIGHTS_RETENTION_DAYS,
    _SharedInstanceArgs,
    rds_log_group_prefix,
    replica_zone,
)
from components.shared.contract import (
    POSTGRES_PORT,
    DatabaseConnection,
    DatabaseLogin,
    check_identifier,
    owned,
)
from components.shared.iam import service_trust_policy
from components.shared.kms import customer_key, key_policy, logs_statement


class Database(pulumi.ComponentResource):
    writer_endpoint: pulumi.Output[str]
    """Host the app writes to: the RDS Proxy endpoint on proxied tiers, else the primary."""
    reader_endpoint: pulumi.Output[str]
    """Host for reads: one DNS name over the replicas; the writer when there are none."""
    primary_address: pulumi.Output[str]
    """Address of the primary itself (migrations connect here, not through the proxy)."""
    logins: dict[str, DatabaseLogin]
    """The login of each workload (``api``, ``trainer``, ``archiver``), password generated."""
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
    reporting_address: pulumi.Output[str] | None
    """Address of the cross-region reporting replica, where the stack has one."""
    proxy_name: pulumi.Output[str] | None
    """Name of the RDS Proxy, or None on tiers without one."""
    kms_key_arn: pulumi.Output[str]
    """Customer key encrypting storage, snapshots, Performance Insights and the secret."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:database:Database", name, None, opts)
        stack, size, net = args.stack, args.size, args.network
        ident = check_identifier(f"{stack.name_prefix}-db", 50)
        major = engine_major(args.engine_version)
        key = self._key(name, ident, stack.tags, stack.protect)
        # Credentials: a pulumi_random password kept in our own KMS-encrypted secret rather
        # than manage_master_user_password. RDS Proxy authenticates with this secret, and the
        # app's Kubernetes Secret needs the password as a Pulumi secret Output; an RDS-managed
        # password rotates outside Pulumi and the pods could not follow it without an extra
        # operator. (Setting both makes RDS silently ignore the password.)
        password = self._password(f"{name}-password", rotation=args.master_password_rotation)
        subnet_group, sg = network(
            self,
            name,
            ident,
            vpc_id=net.vpc_id,
            subnet_ids=list(net.isolated_subnet_ids),
            client_security_group_ids=[net.app_security_group_id],
            tags=stack.tags,
        )
        params = parameter_group(
            self, name, ident, size=size, major=major, blue_green=args.blue_green, tags=stack.tags
        )
        monitoring_role, monitoring_attachment = self._monitoring_role(name, ident, stack.tags)
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
            auto_minor_version_upgrade=True,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=key.arn,
            performance_insights_retention_period=PERFORMANCE_INSIGHTS_RETENTION_DAYS,
            monitoring_interval=MONITORING_INTERVAL_SECONDS,
            monitoring_role_arn=monitoring_role.arn,
            enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),
            copy_tags_to_snapshot=True,
            maintenance_window=MAINTENANCE_WINDOW,
            # An engine upgrade applies at once: the replicas' new parameter group fits only
            # once the primary (and with it RDS's upgrade of the replicas) is done.
            apply_immediately=args.apply_immediately or args.engine_version is not None,
        )
        primary, replicas, reporting = self._instances(
            name, ident, args, major, key, password, subnet_group, common, monitoring_attachment
        )
        secret = credentials_secret(
            self, name, ident, stack, key, primary, DatabaseLogin(MASTER_USERNAME, password)
        )
        self.logins = {
            workload: DatabaseLogin(login, self._password(f"{name}-{workload}-password"))
            for workload, login in WORKLOAD_LOGINS.items()
        }
        login_secrets = [
            credentials_secret(self, name, ident, stack, key, primary, login, role=workload)
            for workload, login in self.logins.items()
        ]
        self.writer_endpoint = primary.address
        self.proxy_name = None
        if size.proxy:
            self.proxy_name, self.writer_endpoint = database_proxy(
                self,
                name,
                ident,
                size=size,
                network=net,
                tags=stack.tags,
                db_sg=sg,
                secret_arns=[s.arn for s in login_secrets],
                key_arn=key.arn,
                primary=primary,
            )
        reader = reader_name(
            self, name, ident, args.private_zone_name, net.vpc_id, stack.tags, replicas
        )
        self.reader_endpoint = reader or self.writer_endpoint
        database_alarms(
            self,
            name,
            size=size,
            alarms=args.alarms,
            topic_arn=stack.alarm_topic,
            tags=stack.tags,
            primary=primary,
            replicas=replicas,
        )
        self._outputs(primary, replicas, reporting, password, secret, sg, key)

    def _outputs(
        self,
        primary: aws.rds.Instance,
        replicas: list[aws.rds.Instance],
        reporting: aws.rds.Instance | None,
        password: pulumi.Output[str],
        secret: aws.secretsmanager.Secret,
        sg: aws.ec2.SecurityGroup,
        key: aws.kms.Key,
    ) -> None:
        self.primary_address = primary.address
        self.replica_addresses = [r.address for r in replicas]
        self.port = POSTGRES_PORT
        self.database_name = DATABASE_NAME
        self.username = MASTER_USERNAME
        self.password = password
        self.credentials_secret_arn = secret.arn
        self.security_group_id = sg.id
        self.primary_identifier = primary.identifier
        self.replica_identifiers = [r.identifier for r in replicas]
        self.reporting_address = reporting.address if reporting else None
        self.kms_key_arn = key.arn
        self.register_outputs(
            {
                "writer_endpoint": self.writer_endpoint,
                "reader_endpoint": self.reader_endpoint,
                "primary_address": self.primary_address,
                "replica_addresses": self.replica_addresses,
                "port": self.port,
                "database_name": self.database_name,
                "username": self.username,
                "password": self.password,
                "credentials_secret_arn": self.credentials_secret_arn,
                "security_group_id": self.security_group_id,
                "primary_identifier": self.primary_identifier,
                "replica_identifiers": self.replica_identifiers,
                "reporting_address": self.reporting_address,
                "proxy_name": self.proxy_name,
                "kms_key_arn": self.kms_key_arn,
            }
        )

    def _key(self, name: str, ident: str, tags: dict[str, str], protect: bool) -> aws.kms.Key:
        """The database's key: storage, snapshots, Performance Insights, the secrets, and the
        instances' exported logs (CloudWatch Logs encrypts them with it)."""
        account = aws.get_caller_identity_output().account_id
        region = aws.get_region_output().region
        return customer_key(
            f"{name}-key",
            description=f"Encrypts {ident}: storage, snapshots, Performance Insights, secret",
            # CloudWatch Logs encrypts the instances' exported logs with it.
            policy=pulumi.Output.all(account, region).apply(
                lambda v: key_policy(
                    v[0], [logs_statement(v[1], v[0], rds_log_group_prefix(ident).rstrip("/"))]
                )
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )

    def _password(self, resource_name: str, rotation: int = 0) -> pulumi.Output[str]:
        """A generated password (the master's, or a workload login's that ``migrate`` sets on
        its role), as a secret Output; a new ``rotation`` generates a new one."""
        password = random.RandomPassword(
            resource_name,
            length=40,
            special=True,
            override_special=PASSWORD_SPECIALS,
            # Keepers only from the first rotation on: pulumi-random replaces a password whose
            # keepers go from none to any value, so a keeper set from the start would replace
            # every deployed stack's password at its first `up` with this program.
            keepers={"rotation": str(rotation)} if rotation else None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pulumi.Output.secret(password.result)

    def _monitoring_role(
        self, name: str, ident: str, tags: dict[str, str]
    ) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
        """The role RDS enhanced monitoring publishes with."""
        monitoring_role = aws.iam.Role(
            f"{name}-monitoring-role",
            assume_role_policy=service_trust_policy("monitoring.rds.amazonaws.com"),
            description=f"Enhanced monitoring of {ident}",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        monitoring_attachment = aws.iam.RolePolicyAttachment(
            f"{name}-monitoring-policy",
            role=monitoring_role.name,
            policy_arn=ENHANCED_MONITORING_POLICY_ARN,
            opts=owned(self, was=monitoring_role),
        )
        return monitoring_role, monitoring_attachment

    def _instances(
        self,
        name: str,
        ident: str,
        args: DatabaseArgs,
        major: str,
        key: aws.kms.Key,
        password: pulumi.Output[str],
        subnet_group: aws.rds.SubnetGroup,
        common: _SharedInstanceArgs,
        monitoring_attachment: aws.iam.RolePolicyAttachment,
    ) -> tuple[aws.rds.Instance, list[aws.rds.Instance], aws.rds.Instance | None]:
        """The primary (its backups replicated where the tier asks), its read replicas and
        the cross-region reporting replica; ``ident`` is the original primary's identifier
        (a restore makes a new primary, ``primary_identifier``)."""
        stack, size, restore = args.stack, args.size, args.restore
        primary_ident = primary_identifier(ident, restore)
        primary_name = primary_resource_name(name, restore)

        def after_logs_of(resource_name: str, identifier: str) -> list[pulumi.Resource]:
            """What an instance waits for: its monitoring role, and its log groups."""
            logs = log_groups(
                self,
                resource_name,
                identifier,
                key,
                retention_days=stack.log_retention_days,
                tags=stack.tags,
                protect=stack.protect,
            )
            return [monitoring_attachment, *logs]

        primary = aws.rds.Instance(
            primary_name,
            identifier=primary_ident,
            engine="postgres",
            engine_version=major,
            # Only permits it: the major is what engine_version says.
            allow_major_version_upgrade=True,
            blue_green_update={"enabled": True} if args.blue_green else None,
            allocated_storage=size.storage_gib,
            # A restored instance keeps the database of its backup.
            db_name=None if restore else DATABASE_NAME,
            **restore_inputs(ident, restore),
            username=MASTER_USERNAME,
            password=password,
            port=POSTGRES_PORT,
            db_subnet_group_name=subnet_group.name,
            multi_az=size.multi_az,
            # RDS picks the AZ of a Multi-AZ primary; a single-AZ one takes the first.
            availability_zone=None if size.multi_az else args.network.availability_zones[0],
            backup_retention_period=size.backup_retention_days,
            backup_window=BACKUP_WINDOW,
            deletion_protection=stack.protect,
            skip_final_snapshot=not stack.protect,
            final_snapshot_identifier=f"{primary_ident}-final" if stack.protect else None,
            # Outside dev, automated backups outlive an accidental delete.
            delete_automated_backups=not stack.protect,
            tags={**stack.tags, "Name": f"{primary_ident}-primary"},
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=stack.protect,
                depends_on=after_logs_of(primary_name, primary_ident),
                additional_secret_outputs=["password"],
                ignore_changes=RESTORE_INPUTS if restore else None,
            ),
            **common,
        )
        replicas = [
            self._replica(
                f"{name}-replica-{i + 1}",
                f"{primary_ident}-replica-{i + 1}",
                primary,
                replica_zone(args.network.availability_zones, i),
                common,
                tags=stack.tags,
                depends_on=after_logs_of(
                    f"{name}-replica-{i + 1}", f"{primary_ident}-replica-{i + 1}"
                ),
            )
            for i in range(size.replica_count)
        ]
        reporting = self._copies(
            name, ident, args, major, primary, primary_name, common, monitoring_attachment
        )
        return primary, replicas, reporting

    def _copies(
        self,
        name: str,
        ident: str,
        args: DatabaseArgs,
        major: str,
        primary: aws.rds.Instance,
        primary_name: str,
        common: _SharedInstanceArgs,
        monitoring_attachment: aws.iam.RolePolicyAttachment,
    ) -> aws.rds.Instance | None:
        """The primary's copies in other regions: its automated backups in the backup region
        (where the tier asks), and the reporting replica (where the stack opted in)."""
        stack, size = args.stack, args.size
        backup_replication(
            self,
            name,
            ident,
            primary,
            primary_name,
            region=args.backup_region if size.cross_region_backups else None,
            retention_days=size.backup_retention_days,
            tags=stack.tags,
            protect=stack.protect,
        )
        return reporting_replica(
            self,
            name,
            primary_identifier(ident, args.restore),
            args.reporting_replica,
            primary=primary,
            common=common,
            depends_on=[monitoring_attachment],
            size=size,
            major=major,
            blue_green=args.blue_green,
            alarms=args.alarms,
            retention_days=stack.log_retention_days,
            tags=stack.tags,
            protect=stack.protect,
        )

    def _replica(
        self,
        resource_name: str,
        identifier: str,
        primary: aws.rds.Instance,
        zone: pulumi.Input[str],
        common: _SharedInstanceArgs,
        *,
        tags: dict[str, str],
        depends_on: list[pulumi.Resource],
    ) -> aws.rds.Instance:
        """A read replica of the primary in ``zone``. Replicas hold no data of their own: no
        Pulumi protect or deletion protection, so lowering db_replica_count is an ordinary
        change. Same-region replicas inherit the primary's subnet group, engine version and
        credentials; they keep no backups."""
        return aws.rds.Instance(
            resource_name,
            identifier=identifier,
            replicate_source_db=primary.identifier,
            availability_zone=zone,
            multi_az=False,
            deletion_protection=False,
            skip_final_snapshot=True,
            tags={**tags, "Name": identifier},
            opts=pulumi.ResourceOptions.merge(
                owned(self, was=primary, depends_on=depends_on),
                # RDS cannot move a replica to another source: after a restore it is
                # rebuilt from the new primary (identifiers differ, new first).
                pulumi.ResourceOptions(replace_on_changes=["replicateSourceDb"]),
            ),
            **common,
        )

    @property
    def connection(self) -> DatabaseConnection:
        """Endpoints and logins, as one bundle for the workloads."""
        return DatabaseConnection(
            writer_endpoint=self.writer_endpoint,
            reader_endpoint=self.reader_endpoint,
            primary_endpoint=self.primary_address,
            port=self.port,
            database_name=self.database_name,
            master=DatabaseLogin(self.username, self.password),
            logins=self.logins,
            via_proxy=self.proxy_name is not None,
        )
