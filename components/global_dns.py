"""The public zone of a multi-region deployment (tier 4), its shared name's certificate and
the shared distribution's origin.

``api.<domain>`` is one CloudFront distribution (the global stack's ``Edge``), whose origin
``origin.<domain>`` has one latency record per serving region, naming that region's API load
balancer and tied to a health check of the region's own API hostname (``api.<region>.<domain>``,
``/ready``: the API and its database answer). Route 53 answers with the lowest-latency healthy
region; when a region's check fails, its record drops out and the next-nearest region answers:
that is the failover. Any region may answer a district (the API sends a 307 to the district's
home region). Each region's load balancer holds a certificate for ``origin.<domain>``, issued
here in that region, so CloudFront's HTTPS to the origin verifies.

The zone is signed (DNSSEC): a key-signing key in an asymmetric KMS key of us-east-1 (Route 53
signs only with those), the zone-signing keys Route 53's own. Resolvers validate the answers
once the domain's registrar publishes the DS record (``ds_record``, docs/tier4.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.shared.certificates import TlsName, tls_certificate, validation_record
from components.shared.contract import owned
from components.shared.kms import DELETION_WINDOW_DAYS, key_policy
from components.shared.stack import StackContext

# The origin's answer changes when a region drops out: CloudFront's resolvers keep it a minute.
ORIGIN_TTL_SECONDS = 60
# CloudFront takes certificates from N. Virginia only.
EDGE_REGION = "us-east-1"
# The API's readiness path: the process and its database answer.
HEALTH_PATH = "/ready"
# Three failed checks 30 s apart (about 90 s) take a region out of the answers.
FAILURE_THRESHOLD = 3
REQUEST_INTERVAL_SECONDS = 30
# Route 53 DNSSEC signs with an ECC_NIST_P256 SIGN_VERIFY key (algorithm 13) in us-east-1.
DNSSEC_KEY_SPEC = "ECC_NIST_P256"
DNSSEC_SERVICE = "dnssec-route53.amazonaws.com"


@dataclass
class RegionEndpoint:
    """What the global stack reads of one regional stack (StackReference)."""

    region: str
    api_host: str
    """``api.<region>.<domain>``: the region's own distribution, checked by Route 53."""
    load_balancer_dns_name: pulumi.Input[str] | None
    """The region's API load balancer, the shared origin there; None while not serving yet."""


@dataclass
class GlobalDnsArgs:
    stack: StackContext
    """The stack: tags of the zone, the certificates and the health checks, and Pulumi
    ``protect`` on the zone (every name of the deployment lives in it)."""
    domain_name: str
    """The zone (``ssp.example.org``)."""
    shared_host: str
    """The shared distribution's name (``api.ssp.example.org``): its certificate is made here."""
    origin_host: str
    """The shared distribution's latency-routed origin (``origin.ssp.example.org``)."""
    regions: tuple[RegionEndpoint, ...]
    """Every region of the global stack: a health check each, a latency record once serving."""


class GlobalDns(pulumi.ComponentResource):
    zone_id: pulumi.Output[str]
    """The public hosted zone: regional stacks validate certificates and add records in it."""
    name_servers: pulumi.Output[Sequence[str]]
    """Delegate the domain to these at its registrar."""
    shared_certificate_arn: pulumi.Output[str]
    """An issued us-east-1 certificate for the shared name."""
    origin_certificate_arns: Mapping[str, pulumi.Output[str]]
    """Per region, an issued certificate there for the origin name: its load balancer's."""
    health_check_ids: Mapping[str, pulumi.Output[str]]
    """Route 53 health check per region."""
    ds_record: pulumi.Output[str]
    """The zone's DS record (``<tag> 13 2 <digest>``): publish it at the domain's registrar."""

    def __init__(self, name: str, args: GlobalDnsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:global_dns:GlobalDns", name, None, opts)
        tags = args.stack.tags
        zone = aws.route53.Zone(
            f"{name}-zone",
            name=args.domain_name,
            comment="Student Success: shared and regional API names",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.stack.protect),
        )
        edge_provider = aws.Provider(
            f"{name}-{EDGE_REGION}",
            region=EDGE_REGION,
            profile=aws.config.profile,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.shared_certificate_arn = tls_certificate(
            f"{name}-shared",
            TlsName(args.shared_host, zone.zone_id),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, provider=edge_provider),
        )
        self.origin_certificate_arns = self._origin_certificates(
            name, args.origin_host, args.regions, tags, zone, {EDGE_REGION: edge_provider}
        )
        self.ds_record = self._dnssec(name, zone, edge_provider, tags, args.stack.protect)
        self.health_check_ids = {}
        for endpoint in args.regions:
            check = aws.route53.HealthCheck(
                f"{name}-{endpoint.region}-health",
                type="HTTPS",
                fqdn=endpoint.api_host,
                port=443,
                resource_path=HEALTH_PATH,
                enable_sni=True,
                request_interval=REQUEST_INTERVAL_SECONDS,
                failure_threshold=FAILURE_THRESHOLD,
                measure_latency=True,
                tags={**tags, "Name": f"{endpoint.api_host}{HEALTH_PATH}"},
                opts=owned(self),
            )
            self.health_check_ids[endpoint.region] = check.id
            if endpoint.load_balancer_dns_name is None:
                continue
            # A CNAME, read by CloudFront's resolvers: the origin name of one distribution.
            aws.route53.Record(
                f"{name}-{endpoint.region}-origin",
                zone_id=zone.zone_id,
                name=args.origin_host,
                type="CNAME",
                ttl=ORIGIN_TTL_SECONDS,
                records=[endpoint.load_balancer_dns_name],
                set_identifier=endpoint.region,
                latency_routing_policies=[{"region": endpoint.region}],
                health_check_id=check.id,
                opts=owned(self),
            )
        self.zone_id = zone.zone_id
        self.name_servers = zone.name_servers
        self.register_outputs(
            {
                "zone_id": self.zone_id,
                "name_servers": self.name_servers,
                "shared_certificate_arn": self.shared_certificate_arn,
                "health_check_ids": self.health_check_ids,
                "origin_certificate_arns": self.origin_certificate_arns,
                "ds_record": self.ds_record,
            }
        )

    def _dnssec(
        self,
        name: str,
        zone: aws.route53.Zone,
        edge_provider: aws.Provider,
        tags: dict[str, str],
        protect: bool,
    ) -> pulumi.Output[str]:
        """Sign the zone: the KMS key (its policy lets Route 53 sign with it), the key-signing
        key, then signing, in that order on the first ``up``; the DS record to publish.
        Protected: once the registrar has the DS record, a zone signed with a deleted key
        fails validation, and every name of the deployment with it."""
        account = aws.get_caller_identity_output().account_id
        key = aws.kms.Key(
            f"{name}-dnssec-key",
            description="DNSSEC key-signing key of the public zone",
            customer_master_key_spec=DNSSEC_KEY_SPEC,
            key_usage="SIGN_VERIFY",
            # Asymmetric keys do not rotate in KMS: a new key-signing key rolls the key.
            enable_key_rotation=False,
            deletion_window_in_days=DELETION_WINDOW_DAYS,
            policy=account.apply(dnssec_key_policy),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, provider=edge_provider, protect=protect),
        )
        signing_key = aws.route53.KeySigningKey(
            f"{name}-ksk",
            hosted_zone_id=zone.zone_id,
            key_management_service_arn=key.arn,
            name="ksk1",
            status="ACTIVE",
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        aws.route53.HostedZoneDnsSec(
            f"{name}-dnssec",
            # Read from the key-signing key: signing starts once it is active.
            hosted_zone_id=signing_key.hosted_zone_id,
            signing_status="SIGNING",
            opts=pulumi.ResourceOptions(parent=self, protect=protect, depends_on=[signing_key]),
        )
        return signing_key.ds_record

    def _origin_certificates(
        self,
        name: str,
        origin_host: str,
        regions: tuple[RegionEndpoint, ...],
        tags: dict[str, str],
        zone: aws.route53.Zone,
        providers: dict[str, aws.Provider],
    ) -> dict[str, pulumi.Output[str]]:
        """A certificate for the origin name in every region (ACM's are regional), issued
        before the region's first ``pulumi up`` attaches it to its load balancer. ACM asks
        the same validation record of one name in every region of an account: one record
        validates them all. ``providers``: by region, those made already."""
        arns: dict[str, pulumi.Output[str]] = {}
        record: aws.route53.Record | None = None
        for endpoint in regions:
            if endpoint.region not in providers:
                providers[endpoint.region] = aws.Provider(
                    f"{name}-{endpoint.region}",
                    region=endpoint.region,
                    profile=aws.config.profile,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            there = pulumi.ResourceOptions(parent=self, provider=providers[endpoint.region])
            certificate = aws.acm.Certificate(
                f"{name}-{endpoint.region}-origin-cert",
                domain_name=origin_host,
                validation_method="DNS",
                key_algorithm="RSA_2048",
                tags=tags,
                opts=there,
            )
            if record is None:
                record = validation_record(
                    f"{name}-origin-cert-validation", certificate, zone.zone_id, owned(self)
                )
            arns[endpoint.region] = aws.acm.CertificateValidation(
                f"{name}-{endpoint.region}-origin-cert-issued",
                certificate_arn=certificate.arn,
                validation_record_fqdns=[record.fqdn],
                opts=there,
            ).certificate_arn
        return arns


def dnssec_key_policy(account_id: str) -> str:
    """The DNSSEC key's policy: the account administers it; Route 53's DNSSEC service reads
    its public key and signs with it for this account's zones only, and holds a grant on it
    (AWS's documented key policy for DNSSEC signing)."""
    on_our_zones: dict[str, Any] = {
        "StringEquals": {"aws:SourceAccount": account_id},
        "ArnLike": {"aws:SourceArn": "arn:aws:route53:::hostedzone/*"},
    }
    return key_policy(
        account_id,
        [
            {
                "Sid": "Route53DnssecSigns",
                "Effect": "Allow",
                "Principal": {"Service": DNSSEC_SERVICE},
                "Action": ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign"],
                "Resource": "*",
                "Condition": on_our_zones,
            },
            {
                "Sid": "Route53DnssecGrants",
                "Effect": "Allow",
                "Principal": {"Service": DNSSEC_SERVICE},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
        ],
    )
