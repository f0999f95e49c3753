"""Load balancers and certificates: student data crosses the internet over TLS 1.2+ only
(outside dev), certificates renew on their own, and every request is logged."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
)

from ._util import as_list, get, known, label, present, rule, setting, tier_of

LISTENER = "aws:lb/listener:Listener"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
CERTIFICATE = "aws:acm/certificate:Certificate"
# Actions that hand a plain-HTTP request to the app; redirects and fixed responses don't.
PASSING_ACTIONS = frozenset({"forward", "authenticate-oidc", "authenticate-cognito"})


def _https_listener(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.props.get("protocol") != "HTTP" or tier_of(args.props) == "dev":
        return
    kinds = {get(action, "type") for action in as_list(args.props.get("defaultActions"))}
    if kinds & PASSING_ACTIONS:
        report(
            f"{label('Load balancer listener', args.name)} serves the API over plain HTTP on port "
            f"{get(args.props, 'port')}; set apiDomainName and hostedZoneId (or "
            "apiCertificateArn) so the load balancer listens on HTTPS and HTTP redirects to it.",
            None,
        )


TLS_POLICY_SCHEMA = PolicyConfigSchema(
    properties={
        "allowedSslPolicies": {
            "type": "array",
            "items": {"type": "string"},
            "default": [
                "ELBSecurityPolicy-TLS13-1-2-2021-06",
                "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
                "ELBSecurityPolicy-TLS13-1-3-2021-06",
                "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
                "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
                "ELBSecurityPolicy-FS-1-2-Res-2020-10",
                "ELBSecurityPolicy-TLS-1-2-2017-01",
            ],
            "description": "ALB security policies accepted on HTTPS listeners: TLS 1.2 or newer.",
        },
    }
)


def _tls_policy(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.props.get("protocol") != "HTTPS":
        return
    allowed = [str(p) for p in as_list(setting(args, TLS_POLICY_SCHEMA, "allowedSslPolicies"))]
    policy = args.props.get("sslPolicy")
    if policy not in allowed:
        report(
            f"{label('HTTPS listener', args.name)} uses ssl_policy={policy or '(default)'}, "
            "which admits TLS 1.0/1.1 or weak ciphers; set ssl_policy to "
            f"{allowed[0]} (or one of {', '.join(allowed[1:])}).",
            None,
        )


def _access_logs(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.props.get("internal") is True:
        return
    enabled = known(lambda: get(args.props, "accessLogs.enabled"), True)
    if not present(args.props, "accessLogs.bucket") or enabled is not True:
        report(
            f"{label('Load balancer', args.name)} keeps no access logs; set access_logs "
            "(bucket: the stack's access-log bucket, enabled: True), so that who called the "
            "API for which student is on record.",
            None,
        )


def _dns_validation(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if present(args.props, "certificateAuthorityArn") or present(args.props, "privateKey"):
        return  # private CA or imported: not validated by ACM
    method = args.props.get("validationMethod")
    if method != "DNS":
        report(
            f"{label('ACM certificate', args.name)} uses validation_method={method}; use 'DNS' "
            "with the record in the stack's hosted zone: ACM renews DNS-validated certificates "
            "on its own, e-mail-validated ones wait for someone to click.",
            None,
        )


POLICIES = [
    rule(
        "alb-https-listener",
        "Outside dev, the API's load balancer serves HTTPS; HTTP only redirects.",
        [LISTENER],
        _https_listener,
        # Every stack outside dev names its API domain (the spec refuses it otherwise).
        EnforcementLevel.MANDATORY,
    ),
    rule(
        "alb-tls-policy",
        "HTTPS listeners use a TLS 1.2+ security policy.",
        [LISTENER],
        _tls_policy,
        EnforcementLevel.MANDATORY,
        TLS_POLICY_SCHEMA,
    ),
    rule(
        "alb-access-logs",
        "Internet-facing load balancers write access logs.",
        [LOAD_BALANCER],
        _access_logs,
        EnforcementLevel.MANDATORY,
    ),
    rule(
        "acm-dns-validation",
        "ACM certificates are validated by DNS, so that they renew on their own.",
        [CERTIFICATE],
        _dns_validation,
        EnforcementLevel.MANDATORY,
    ),
]
