"""The API's internet-facing Application Load Balancer, its listeners, target group and
alarms.

The ALB is created with pulumi-aws (so its ARN suffix is known for alarms and CloudFront);
the Kubernetes side binds the API's Service to the target group (``Workloads``). With a TLS
name it serves HTTPS with a DNS-validated ACM certificate (HTTP redirects); without one (dev),
HTTP only. Without CloudFront a regional WAF web ACL guards it. Behind CloudFront only
CloudFront's origin-facing addresses may reach it, and it forwards nothing that lacks the
Edge's secret origin header (the Edge adds that rule): CloudFront's web ACL then guards the
only way in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config.tier import AlarmThresholds, WafSize
from components.shared.alarms import Threshold, expression_alarm, metric_alarm
from components.shared.certificates import TlsName, alias_record, tls_certificate
from components.shared.contract import (
    API_PORT,
    DEREGISTRATION_DELAY_SECONDS,
    INTERNAL_PATHS,
    NetworkRef,
    owned,
)
from components.shared.log_groups import encrypted_logs
from components.shared.stack import StackContext
from components.shared.waf import LOG_GROUP_PREFIX, waf_logging, waf_rules, web_acl_visibility

# TLS 1.2+ with TLS 1.3 preferred: the ALB policy AWS recommends for new listeners.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
CLOUDFRONT_PREFIX_LIST = "com.amazonaws.global.cloudfront.origin-facing"
READINESS_PATH = "/ready"
# The log bucket's prefix for load balancer access logs (log_bucket.ALB_PREFIX admits it).
ACCESS_LOG_PREFIX = "alb"


@dataclass
class ApiLoadBalancerArgs:
    stack: StackContext
    """The stack: tags, the alarm topic, the retention of the WAF's logs, and ``protect``
    (deletion protection of the load balancer)."""
    network: NetworkRef
    """The VPC: the load balancer takes its public subnets, and the app tier's group (nodes
    and pods) admits it on the API port."""
    alarms: AlarmThresholds
    """The tier's alarm thresholds (latency, error rate)."""
    behind_cdn: bool = False
    """CloudFront is the only client: admit its origin-facing prefix list and forward nothing
    by default (the Edge adds the rule that forwards its own requests)."""
    access_log_bucket: pulumi.Input[str] | None = None
    """Bucket receiving the load balancer's access logs (under ``alb/``); it must admit
    Elastic Load Balancing's log delivery first."""
    tls: TlsName | None = None
    """The load balancer's DNS name and certificate: HTTPS, HTTP redirecting to it. None:
    plain HTTP (dev only)."""
    waf: WafSize | None = None
    """Limits of the regional WAF web ACL on the load balancer; required unless
    ``behind_cdn`` (CloudFront's web ACL then guards the only way in)."""
    shared_origin_certificate_arn: pulumi.Input[str] | None = None
    """Tier 4: a second certificate on the HTTPS listener, for the shared distribution's
    origin name (``origin.<domain>``, issued in this region by the global stack)."""


class ApiLoadBalancer(pulumi.ComponentResource):
    dns_name: pulumi.Output[str]
    """DNS name of the load balancer (CloudFront's origin on edge tiers)."""
    arn_suffix: pulumi.Output[str]
    """``app/<name>/<id>``: the LoadBalancer dimension of ALB metrics."""
    target_group_arn: pulumi.Output[str]
    """Target group of the API pods (bound to the Service by a TargetGroupBinding)."""
    target_group_arn_suffix: pulumi.Output[str]
    """``targetgroup/<name>/<id>``: the TargetGroup dimension of ALB metrics."""
    listener_arn: pulumi.Output[str]
    """The listener API traffic arrives on (HTTPS where a certificate is configured)."""
    origin_domain_name: pulumi.Output[str]
    """The name to reach it by: the TLS name (its certificate covers it), else its DNS name."""
    web_acl_arn: pulumi.Output[str] | None
    """The regional WAF web ACL on it (None behind CloudFront)."""

    def __init__(
        self,
        name: str,
        args: ApiLoadBalancerArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        moved_from: pulumi.Input[str] | None = None,
    ):
        """``moved_from``: URN of the component these resources were children of before this
        one existed (``Workloads``), so that deployed stacks alias rather than replace them."""
        super().__init__("ssp:api_load_balancer:ApiLoadBalancer", name, None, opts)
        if args.waf is None and not args.behind_cdn:
            raise ValueError("ApiLoadBalancerArgs: an internet-facing entry needs waf limits")
        self._moved_from = moved_from
        stack, tags, behind_cdn = args.stack, args.stack.tags, args.behind_cdn
        sg = self._security_group(
            name, args.network, tags, https=args.tls is not None, behind_cdn=behind_cdn
        )
        alb = aws.lb.LoadBalancer(
            f"{name}",
            load_balancer_type="application",
            internal=False,
            security_groups=[sg.id],
            subnets=list(args.network.public_subnet_ids),
            drop_invalid_header_fields=True,
            enable_deletion_protection=stack.protect,
            idle_timeout=60,
            access_logs=(
                {"bucket": args.access_log_bucket, "prefix": ACCESS_LOG_PREFIX, "enabled": True}
                if args.access_log_bucket is not None
                else None
            ),
            tags=tags,
            opts=self._moved(),
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            port=API_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=args.network.vpc_id,
            deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
            health_check={
                "path": READINESS_PATH,
                "port": "traffic-port",
                "matcher": "200",
                "interval": 15,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            tags=tags,
            opts=self._moved(was=alb, name="workloads-api-tg"),
        )
        listener = self._listeners(
            name,
            alb,
            target_group,
            tls=args.tls,
            behind_cdn=behind_cdn,
            shared_origin_certificate_arn=args.shared_origin_certificate_arn,
            tags=tags,
        )
        self._alarms(name, args.alarms, stack, alb, target_group)
        self.web_acl_arn = None
        if not behind_cdn and args.waf is not None:
            self.web_acl_arn = self._waf(name, args.waf, alb, stack)
        if args.tls is not None:
            alias_record(
                name,
                args.tls,
                target_dns_name=alb.dns_name,
                target_zone_id=alb.zone_id,
                opts=owned(self),
            )

        self.origin_domain_name = (
            pulumi.Output.from_input(args.tls.domain_name) if args.tls else alb.dns_name
        )
        self.dns_name = alb.dns_name
        self.arn_suffix = alb.arn_suffix
        self.target_group_arn = target_group.arn
        self.target_group_arn_suffix = target_group.arn_suffix
        self.listener_arn = listener.arn
        self.register_outputs(
            {
                "dns_name": self.dns_name,
                "arn_suffix": self.arn_suffix,
                "target_group_arn": self.target_group_arn,
                "target_group_arn_suffix": self.target_group_arn_suffix,
                "listener_arn": self.listener_arn,
                "origin_domain_name": self.origin_domain_name,
                "web_acl_arn": self.web_acl_arn,
            }
        )

    def _waf(
        self,
        name: str,
        size: WafSize,
        alb: aws.lb.LoadBalancer,
        stack: StackContext,
    ) -> pulumi.Output[str]:
        """The regional web ACL (same rules as CloudFront's) associated with the load
        balancer, and its logs; returns its ARN. The logs outlive it (``protect``: kept in
        the account when CloudFront takes over, until their retention has passed)."""
        tags = stack.tags
        web_acl = aws.wafv2.WebAcl(
            f"{name}-waf",
            scope="REGIONAL",
            description="Rate limits and AWS managed rules in front of the API",
            default_action={"allow": {}},
            rules=waf_rules(size, metric_prefix=name),
            visibility_config=web_acl_visibility(f"{name}-waf"),
            tags=tags,
            opts=owned(self),
        )
        logs = encrypted_logs(
            f"{name}-waf-logs-key",
            log_group_prefixes=[f"{LOG_GROUP_PREFIX}{name}-"],
            description="Encrypts the load balancer's WAF logs",
            retention_days=stack.log_retention_days,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=stack.protect),
        )
        log_group = logs.group(f"{name}-waf-logs", name_prefix=f"{LOG_GROUP_PREFIX}{name}-")
        waf_logging(name, web_acl=web_acl, log_group=log_group, opts=owned(self))
        aws.wafv2.WebAclAssociation(
            f"{name}-waf-association",
            resource_arn=alb.arn,
            web_acl_arn=web_acl.arn,
            opts=owned(self),
        )
        return web_acl.arn

    def _moved(
        self,
        *,
        was: pulumi.Resource | None = None,
        name: str | None = None,
        also: tuple[str, ...] = (),
    ) -> pulumi.ResourceOptions:
        """Owned by this component; aliased to where it lived before (under ``was``, or
        directly under the old component) and, where renamed, to its old ``name`` (and the
        ``also`` names it had in another configuration)."""
        parent: pulumi.Resource | pulumi.Input[str] | None = was or self._moved_from
        if parent is None:
            return owned(self)
        alias = pulumi.Alias(parent=parent) if name is None else pulumi.Alias(name, parent=parent)
        others = [pulumi.Alias(n, parent=parent) for n in also]
        return pulumi.ResourceOptions(parent=self, aliases=[alias, *others])

    def _security_group(
        self,
        name: str,
        network: NetworkRef,
        tags: dict[str, str],
        *,
        https: bool,
        behind_cdn: bool,
    ) -> aws.ec2.SecurityGroup:
        """HTTP(S) in from the internet, or from CloudFront alone ``behind_cdn``; the API port
        out to the app tier's group, which admits it."""
        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=network.vpc_id,
            description="API load balancer: HTTP(S) in, the API pods out",
            tags={**tags, "Name": name},
            opts=self._moved(),
        )
        if behind_cdn:
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
                f"{name}-in-{port}",
                security_group_id=sg.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description="CloudFront origin-facing" if behind_cdn else "Internet",
                tags=tags,
                # Behind CloudFront the one rule moved from HTTP to HTTPS: updated in place.
                opts=self._moved(
                    was=sg, also=(f"{name}-in-80",) if behind_cdn and port == 443 else ()
                ),
                **source,
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-out-pods",
            security_group_id=sg.id,
            referenced_security_group_id=network.app_security_group_id,
            ip_protocol="tcp",
            from_port=API_PORT,
            to_port=API_PORT,
            description="API pods",
            tags=tags,
            opts=self._moved(was=sg),
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-pods-in",
            security_group_id=network.app_security_group_id,
            referenced_security_group_id=sg.id,
            ip_protocol="tcp",
            from_port=API_PORT,
            to_port=API_PORT,
            description="API load balancer to the API pods",
            tags=tags,
            opts=self._moved(was=sg, name="workloads-pods-from-alb"),
        )
        return sg

    def _listeners(
        self,
        name: str,
        alb: aws.lb.LoadBalancer,
        target_group: aws.lb.TargetGroup,
        *,
        tls: TlsName | None,
        behind_cdn: bool,
        shared_origin_certificate_arn: pulumi.Input[str] | None,
        tags: dict[str, str],
    ) -> aws.lb.Listener:
        """The listener API traffic arrives on, the HTTP redirect where there is TLS, and the
        rule that keeps internal paths off the internet."""
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
        default_action = refuse if behind_cdn else forward
        if tls is not None:
            # The issued certificate's ARN: on a first up the listener waits for validation.
            certificate_arn = tls_certificate(name, tls, tags=tags, opts=owned(self))
            listener = aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=alb.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=TLS_POLICY,
                certificate_arn=certificate_arn,
                default_actions=[default_action],
                tags=tags,
                # Behind CloudFront it replaces the HTTP listener: the same listener, modified
                # in place (port, protocol, certificate), so its rules stay attached.
                opts=self._moved(
                    was=alb,
                    name="workloads-https",
                    also=("workloads-http", f"{name}-http") if behind_cdn else (),
                ),
            )
            if shared_origin_certificate_arn is not None:
                # Served by SNI beside the listener's own: CloudFront verifies the origin.
                aws.lb.ListenerCertificate(
                    f"{name}-shared-origin-cert",
                    listener_arn=listener.arn,
                    certificate_arn=shared_origin_certificate_arn,
                    opts=owned(self),
                )
            if not behind_cdn:
                self._redirect_to_https(name, alb, tags)
        else:
            # No certificate configured: plain HTTP (dev); the policy pack flags it.
            listener = aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[default_action],
                tags=tags,
                opts=self._moved(was=alb, name="workloads-http"),
            )
        aws.lb.ListenerRule(
            f"{name}-internal-paths",
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
            opts=self._moved(was=listener, name="workloads-http-internal-paths"),
        )
        return listener

    def _redirect_to_https(
        self, name: str, alb: aws.lb.LoadBalancer, tags: dict[str, str]
    ) -> aws.lb.Listener:
        """HTTP, answering every request with a permanent redirect to HTTPS."""
        return aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=alb.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                {
                    "type": "redirect",
                    "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"},
                }
            ],
            tags=tags,
            opts=self._moved(was=alb, name="workloads-http"),
        )

    def _alarms(
        self,
        name: str,
        alarms: AlarmThresholds,
        stack: StackContext,
        alb: aws.lb.LoadBalancer,
        target_group: aws.lb.TargetGroup,
    ) -> None:
        """p95 latency and the 5xx rate: when the API needs more pods or has a fault."""
        lb_dims: dict[str, pulumi.Input[str]] = {"LoadBalancer": alb.arn_suffix}
        metric_alarm(
            f"{name}-latency-p95",
            description=f"API p95 latency > {alarms.latency_p95_ms} ms for 5 minutes",
            namespace="AWS/ApplicationELB",
            metric="TargetResponseTime",
            dimensions={**lb_dims, "TargetGroup": target_group.arn_suffix},
            statistic="p95",
            # TargetResponseTime is in seconds.
            threshold=Threshold(alarms.latency_p95_ms / 1000, missing_data="notBreaching"),
            topic_arn=stack.alarm_topic,
            tags=stack.tags,
            opts=self._moved(name="workloads-api-latency-p95"),
        )
        expression_alarm(
            f"{name}-5xx-rate",
            description=f"API 5xx rate > {alarms.error_rate_percent}% for 5 minutes",
            # No requests is no error; FILL turns absent 5xx datapoints into zeros.
            expression=(
                "IF(requests > 0, 100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests, 0)"
            ),
            metrics={
                "requests": ("AWS/ApplicationELB", "RequestCount", lb_dims, "Sum"),
                "target5xx": ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", lb_dims, "Sum"),
                "elb5xx": ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", lb_dims, "Sum"),
            },
            threshold=Threshold(alarms.error_rate_percent, missing_data="notBreaching"),
            topic_arn=stack.alarm_topic,
            tags=stack.tags,
            opts=self._moved(name="workloads-api-5xx-rate"),
        )
