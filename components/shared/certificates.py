"""TLS certificates and DNS names, made one way for the load balancer and CloudFront.

``tls_certificate`` returns the ARN of a certificate that is issued, not just requested: a
listener or distribution using it waits for ACM's DNS validation on a first ``up``. With an
ARN the stack names, that ARN is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class TlsName:
    """A DNS name served over TLS: its Route 53 zone and/or an existing certificate."""

    domain_name: str
    hosted_zone_id: pulumi.Input[str] | None = None
    """Zone that validates a requested certificate and holds the name's alias record."""
    certificate_arn: pulumi.Input[str] | None = None
    """An existing ACM certificate covering ``domain_name``; None: one is requested."""

    def __post_init__(self) -> None:
        if not (self.hosted_zone_id or self.certificate_arn):
            raise ValueError(f"{self.domain_name}: give a hosted zone or a certificate ARN")


def tls_certificate(
    name: str, tls: TlsName, *, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> pulumi.Output[str]:
    """The ARN of an issued certificate for ``tls.domain_name``. ``opts`` carries the
    region's provider: CloudFront's certificates live in us-east-1."""
    if tls.certificate_arn:
        return pulumi.Output.from_input(tls.certificate_arn)
    assert tls.hosted_zone_id is not None  # TlsName checks one of the two is given
    certificate = aws.acm.Certificate(
        f"{name}-cert",
        domain_name=tls.domain_name,
        validation_method="DNS",
        key_algorithm="RSA_2048",
        tags=tags,
        # A renamed domain gets its new certificate (create before delete, the default)
        # before the listener lets go of the old one.
        opts=opts,
    )
    record = validation_record(f"{name}-cert-validation", certificate, tls.hosted_zone_id, opts)
    validation = aws.acm.CertificateValidation(
        f"{name}-cert-issued",
        certificate_arn=certificate.arn,
        validation_record_fqdns=[record.fqdn],
        opts=opts,
    )
    return validation.certificate_arn


def validation_record(
    name: str,
    certificate: aws.acm.Certificate,
    zone_id: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> aws.route53.Record:
    """ACM's DNS validation record (a CNAME) of a certificate for one name, known once ACM
    answered the request."""
    option = certificate.domain_validation_options[0]
    return aws.route53.Record(
        name,
        zone_id=zone_id,
        name=option.resource_record_name.apply(lambda v: v or ""),
        type=option.resource_record_type.apply(lambda v: v or "CNAME"),
        records=[option.resource_record_value.apply(lambda v: v or "")],
        ttl=300,
        # Renewals and replacements reuse ACM's record for the same name.
        allow_overwrite=True,
        opts=opts,
    )


def alias_record(
    name: str,
    tls: TlsName,
    *,
    target_dns_name: pulumi.Input[str],
    target_zone_id: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> aws.route53.Record | None:
    """``tls.domain_name`` as an alias of a load balancer or distribution, where the stack
    names the zone (with a certificate ARN alone, DNS is the operator's)."""
    if not tls.hosted_zone_id:
        return None
    return aws.route53.Record(
        f"{name}-dns",
        zone_id=tls.hosted_zone_id,
        name=tls.domain_name,
        type="A",
        aliases=[
            {
                "name": target_dns_name,
                "zone_id": target_zone_id,
                "evaluate_target_health": False,
            }
        ],
        opts=opts,
    )
