"""Load balancers: student data crosses the internet over TLS only (outside dev)."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs

from ._util import as_list, get, label, rule, tier_of

LISTENER = "aws:lb/listener:Listener"
# Actions that hand a plain-HTTP request to the app; redirects and fixed responses don't.
PASSING_ACTIONS = frozenset({"forward", "authenticate-oidc", "authenticate-cognito"})


def _https_listener(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.props.get("protocol") != "HTTP" or tier_of(args.props) == "dev":
        return
    kinds = {get(action, "type") for action in as_list(args.props.get("defaultActions"))}
    if kinds & PASSING_ACTIONS:
        report(
            f"{label('Load balancer listener', args.name)} serves the API over plain HTTP on port "
            f"{get(args.props, 'port')}; set apiCertificateArn (an ACM certificate in the stack's "
            "region) so the load balancer listens on HTTPS and HTTP redirects to it.",
            None,
        )


POLICIES = [
    rule(
        "alb-https-listener",
        "Outside dev, the API's load balancer serves HTTPS; HTTP only redirects.",
        [LISTENER],
        _https_listener,
        # Advisory: the certificate is per district (apiCertificateArn), and the example
        # stacks cannot name a real one.
        EnforcementLevel.ADVISORY,
    ),
]
