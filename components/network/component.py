"""The VPC: public, private (app) and isolated (data) subnets per AZ, NAT, flow logs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config.tier import NetworkSize
from components.network.layout import (
    SUBNET_TIERS,
    UNSUPPORTED_ZONE_IDS,
    ZONE_FILTERS,
    SubnetPlan,
    SubnetTier,
    app_egress,
    flow_log_delivery_policy,
    plan_subnets,
)
from components.shared.contract import NetworkRef, SubnetCidrs, owned
from components.shared.iam import service_trust_policy
from components.shared.log_groups import encrypted_logs
from components.shared.stack import StackContext


@dataclass
class NetworkArgs:
    stack: StackContext
    """The stack: its tags, and the retention of the VPC's flow logs."""
    cidr: str
    """IPv4 CIDR of the VPC (/16-/18)."""
    size: NetworkSize
    """The tier's network slice: AZs the subnets span, NAT per AZ or single."""


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    """ID of the VPC."""
    public_subnet_ids: list[pulumi.Output[str]]
    """Subnets for internet-facing load balancers and the NAT gateways, one per AZ."""
    private_subnet_ids: list[pulumi.Output[str]]
    """Subnets for EKS nodes and pods, egress through NAT, one per AZ."""
    isolated_subnet_ids: list[pulumi.Output[str]]
    """Subnets for databases and caches, no route to the internet, one per AZ."""
    availability_zones: list[pulumi.Output[str]]
    """AZ names, in subnet order."""
    subnet_cidrs: SubnetCidrs
    """CIDRs of the public, private and isolated subnets, in AZ order (known at preview)."""
    app_security_group_id: pulumi.Output[str]
    """Security group of the application tier (EKS nodes and their pods). Data stores admit
    only this group; it is created here so that neither side depends on the other."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags, az_count = args.stack.tags, args.size.az_count

        def named(role: str) -> dict[str, str]:
            return {**tags, "Name": f"{name}-{role}"}

        # The first az_count zones by name, as before, among the supported ones: a stack's
        # zones stay where they are (no zone it could run in is excluded).
        zones = aws.get_availability_zones_output(
            state="available",
            exclude_zone_ids=list(UNSUPPORTED_ZONE_IDS),
            filters=ZONE_FILTERS,
        )
        self.availability_zones = [zones.names[i] for i in range(az_count)]

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=named("vpc"),
            opts=child,
        )
        self.vpc_id = vpc.id
        in_vpc = owned(self, was=vpc)

        self.app_security_group_id = self._security_groups(name, tags, named, vpc, in_vpc)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=named("igw"), opts=in_vpc)
        plan = plan_subnets(args.cidr, az_count)
        subnets = self._subnets(name, plan, named, vpc, in_vpc)
        self._public_routes(name, named, vpc, igw, subnets["public"], in_vpc)
        nat_count = az_count if args.size.nat_mode == "per_az" else 1
        nats = self._nat(name, nat_count, named, vpc, igw, subnets["public"], in_vpc)
        route_tables = self._private_and_isolated_routes(name, named, vpc, nats, subnets, in_vpc)
        self._endpoints(name, named, vpc, route_tables, in_vpc)
        services = args.size.interface_endpoints
        self._interface_endpoints(name, services, named, vpc, subnets["private"], in_vpc)
        self._flow_logs(name, args.stack, named, vpc, child)

        self.public_subnet_ids = [s.id for s in subnets["public"]]
        self.private_subnet_ids = [s.id for s in subnets["private"]]
        self.isolated_subnet_ids = [s.id for s in subnets["isolated"]]
        self.subnet_cidrs = SubnetCidrs(
            *(tuple(s.cidr for s in plan if s.tier == tier) for tier in SUBNET_TIERS)
        )
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "private_subnet_ids": self.private_subnet_ids,
                "isolated_subnet_ids": self.isolated_subnet_ids,
                "availability_zones": self.availability_zones,
                "app_security_group_id": self.app_security_group_id,
                "subnet_cidrs": dataclasses.asdict(self.subnet_cidrs),
            }
        )

    @property
    def ref(self) -> NetworkRef:
        """The VPC, its subnets and the app tier's group, as one bundle for the components
        placed in it."""
        return NetworkRef(
            vpc_id=self.vpc_id,
            availability_zones=self.availability_zones,
            public_subnet_ids=self.public_subnet_ids,
            private_subnet_ids=self.private_subnet_ids,
            isolated_subnet_ids=self.isolated_subnet_ids,
            subnet_cidrs=self.subnet_cidrs,
            app_security_group_id=self.app_security_group_id,
        )

    def _security_groups(
        self,
        name: str,
        tags: dict[str, str],
        named: Callable[[str], dict[str, str]],
        vpc: aws.ec2.Vpc,
        in_vpc: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        """The emptied default group and the app tier's group; returns the app group's id."""
        # An emptied default security group: nothing may rely on it by accident.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags=named("default"),
            opts=in_vpc,
        )
        app_sg = aws.ec2.SecurityGroup(
            f"{name}-app-sg",
            vpc_id=vpc.id,
            description="Application tier: EKS nodes and pods; data stores admit only this group",
            egress=app_egress(vpc.cidr_block),
            tags=named("app"),
            opts=in_vpc,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-app-sg-self",
            security_group_id=app_sg.id,
            referenced_security_group_id=app_sg.id,
            ip_protocol="-1",
            description="Node-to-node and pod-to-pod traffic",
            tags=tags,
            opts=owned(self, was=app_sg),
        )
        return app_sg.id

    def _subnets(
        self,
        name: str,
        plan: list[SubnetPlan],
        named: Callable[[str], dict[str, str]],
        vpc: aws.ec2.Vpc,
        in_vpc: pulumi.ResourceOptions,
    ) -> dict[SubnetTier, list[aws.ec2.Subnet]]:
        """One subnet per tier and AZ, at the CIDRs of the plan (``plan_subnets``)."""
        subnets: dict[SubnetTier, list[aws.ec2.Subnet]] = {t: [] for t in SUBNET_TIERS}
        role_tags: dict[SubnetTier, dict[str, str]] = {
            # Where the AWS Load Balancer Controller puts internet-facing / internal LBs.
            "public": {"kubernetes.io/role/elb": "1"},
            "private": {"kubernetes.io/role/internal-elb": "1"},
            "isolated": {},
        }
        for slot in plan:
            role = f"{slot.tier}-{slot.az_index}"
            subnets[slot.tier].append(
                aws.ec2.Subnet(
                    f"{name}-{role}",
                    vpc_id=vpc.id,
                    cidr_block=slot.cidr,
                    availability_zone=self.availability_zones[slot.az_index],
                    map_public_ip_on_launch=False,
                    tags={**named(role), "subnet-tier": slot.tier, **role_tags[slot.tier]},
                    opts=in_vpc,
                )
            )
        return subnets

    def _public_routes(
        self,
        name: str,
        named: Callable[[str], dict[str, str]],
        vpc: aws.ec2.Vpc,
        igw: aws.ec2.InternetGateway,
        public_subnets: list[aws.ec2.Subnet],
        in_vpc: pulumi.ResourceOptions,
    ) -> None:
        """The public subnets' shared route table, to the internet gateway."""
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=named("public-rt"),
            opts=in_vpc,
        )
        for i, subnet in enumerate(public_subnets):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}-rta",
                subnet_id=subnet.id,
                route_table_id=public_rt.id,
                opts=owned(self, was=subnet),
            )

    def _nat(
        self,
        name: str,
        nat_count: int,
        named: Callable[[str], dict[str, str]],
        vpc: aws.ec2.Vpc,
        igw: aws.ec2.InternetGateway,
        public_subnets: list[aws.ec2.Subnet],
        in_vpc: pulumi.ResourceOptions,
    ) -> list[aws.ec2.NatGateway]:
        """``nat_count`` NAT gateways (one per AZ, or a single one) in the public subnets."""
        nats = []
        for i in range(nat_count):
            eip = aws.ec2.Eip(
                f"{name}-nat-{i}-eip", domain="vpc", tags=named(f"nat-{i}"), opts=in_vpc
            )
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=public_subnets[i].id,
                    tags=named(f"nat-{i}"),
                    opts=owned(self, was=vpc, depends_on=[igw]),
                )
            )
        return nats

    def _private_and_isolated_routes(
        self,
        name: str,
        named: Callable[[str], dict[str, str]],
        vpc: aws.ec2.Vpc,
        nats: list[aws.ec2.NatGateway],
        subnets: dict[SubnetTier, list[aws.ec2.Subnet]],
        in_vpc: pulumi.ResourceOptions,
    ) -> list[aws.ec2.RouteTable]:
        """A route table per private subnet (egress through NAT) and one shared by the
        isolated subnets; returns them, private first."""
        nat_count = len(nats)
        private_rts = []
        for i, subnet in enumerate(subnets["private"]):
            rt = aws.ec2.RouteTable(
                f"{name}-private-{i}-rt",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nats[i % nat_count].id}],
                tags=named(f"private-{i}-rt"),
                opts=in_vpc,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}-rta",
                subnet_id=subnet.id,
                route_table_id=rt.id,
                opts=owned(self, was=subnet),
            )
            private_rts.append(rt)

        # Isolated subnets share one route table with only the local route.
        isolated_rt = aws.ec2.RouteTable(
            f"{name}-isolated-rt", vpc_id=vpc.id, tags=named("isolated-rt"), opts=in_vpc
        )
        for i, subnet in enumerate(subnets["isolated"]):
            aws.ec2.RouteTableAssociation(
                f"{name}-isolated-{i}-rta",
                subnet_id=subnet.id,
                route_table_id=isolated_rt.id,
                opts=owned(self, was=subnet),
            )
        return [*private_rts, isolated_rt]

    def _endpoints(
        self,
        name: str,
        named: Callable[[str], dict[str, str]],
        vpc: aws.ec2.Vpc,
        route_tables: list[aws.ec2.RouteTable],
        in_vpc: pulumi.ResourceOptions,
    ) -> None:
        """Gateway endpoints on the private and isolated route tables."""
        # S3 through a gateway endpoint: model artifacts and images never cross NAT.
        region = aws.get_region_output()
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=region.region.apply(lambda r: f"com.amazonaws.{r}.s3"),
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in route_tables],
            tags=named("s3"),
            opts=in_vpc,
        )

    def _interface_endpoints(
        self,
        name: str,
        services: Sequence[str],
        named: Callable[[str], dict[str, str]],
        vpc: aws.ec2.Vpc,
        private: list[aws.ec2.Subnet],
        in_vpc: pulumi.ResourceOptions,
    ) -> None:
        """Interface endpoints in the private subnets for the tier's services, with private
        DNS: the services' usual names resolve to them, so nothing is configured in the app.
        Their group admits HTTPS from the VPC and sends nothing."""
        if not services:
            return
        group = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            vpc_id=vpc.id,
            description="Interface VPC endpoints: HTTPS from inside the VPC",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": [vpc.cidr_block],
                    "description": "HTTPS from the VPC",
                }
            ],
            egress=[],
            tags=named("endpoints"),
            opts=in_vpc,
        )
        region = aws.get_region_output().region
        for service in services:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=vpc.id,
                service_name=pulumi.Output.concat("com.amazonaws.", region, ".", service),
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in private],
                security_group_ids=[group.id],
                tags=named(service),
                opts=in_vpc,
            )

    def _flow_logs(
        self,
        name: str,
        stack: StackContext,
        named: Callable[[str], dict[str, str]],
        vpc: aws.ec2.Vpc,
        child: pulumi.ResourceOptions,
    ) -> None:
        """The VPC's flow logs into an encrypted log group, through a role allowed only that."""
        # The group is auto-named from its logical name: the key admits that prefix only.
        log_group = encrypted_logs(
            f"{name}-flow-logs-key",
            log_group_prefixes=[f"{name}-flow-logs-"],
            description="Encrypts the VPC's flow logs",
            retention_days=stack.log_retention_days,
            tags=stack.tags,
            opts=child,
        ).group(f"{name}-flow-logs", tags=named("flow-logs"))
        flow_role = aws.iam.Role(
            f"{name}-flow-logs-role",
            assume_role_policy=service_trust_policy("vpc-flow-logs.amazonaws.com"),
            tags=stack.tags,
            opts=owned(self, was=log_group),
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            role=flow_role.id,
            policy=log_group.arn.apply(flow_log_delivery_policy),
            opts=owned(self, was=flow_role),
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=flow_role.arn,
            max_aggregation_interval=60,
            tags=named("flow-log"),
            opts=owned(self, was=log_group),
        )
