"""Tagging: every taggable AWS resource says whose it is, which stack and tier it belongs to
and how sensitive its data is; data stores are classified ``ferpa`` (student records).

A resource is taggable when its type is in ``TAGGABLE_TYPES`` (the AWS types this product uses
that accept ``tags``; tests/policies check the list against pulumi_aws) or when it sets ``tags``.
Tags set as the provider's ``default_tags`` count too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs

from ._util import REQUIRED_TAGS, TIERS, get, rule, stack_of_urn, tags_of

TAGGABLE_TYPES = frozenset(
    {
        "aws:acm/certificate:Certificate",
        "aws:alb/listener:Listener",
        "aws:alb/listenerRule:ListenerRule",
        "aws:alb/loadBalancer:LoadBalancer",
        "aws:alb/targetGroup:TargetGroup",
        "aws:amp/ruleGroupNamespace:RuleGroupNamespace",
        "aws:amp/scraper:Scraper",
        "aws:amp/workspace:Workspace",
        "aws:appautoscaling/target:Target",
        "aws:grafana/workspace:Workspace",
        "aws:backup/plan:Plan",
        "aws:backup/vault:Vault",
        "aws:cloudfront/distribution:Distribution",
        "aws:cloudwatch/compositeAlarm:CompositeAlarm",
        "aws:cloudwatch/eventRule:EventRule",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:cloudwatch/metricStream:MetricStream",
        "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl",
        "aws:ec2/defaultRouteTable:DefaultRouteTable",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
        "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
        "aws:ec2/eip:Eip",
        "aws:ec2/flowLog:FlowLog",
        "aws:ec2/instance:Instance",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/managedPrefixList:ManagedPrefixList",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/networkAcl:NetworkAcl",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/vpc:Vpc",
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:ecr/repository:Repository",
        "aws:eks/accessEntry:AccessEntry",
        "aws:eks/addon:Addon",
        "aws:eks/cluster:Cluster",
        "aws:eks/fargateProfile:FargateProfile",
        "aws:eks/identityProviderConfig:IdentityProviderConfig",
        "aws:eks/nodeGroup:NodeGroup",
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",
        "aws:elasticache/cluster:Cluster",
        "aws:elasticache/parameterGroup:ParameterGroup",
        "aws:elasticache/replicationGroup:ReplicationGroup",
        "aws:elasticache/serverlessCache:ServerlessCache",
        "aws:elasticache/subnetGroup:SubnetGroup",
        "aws:elasticache/user:User",
        "aws:elasticache/userGroup:UserGroup",
        "aws:iam/instanceProfile:InstanceProfile",
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
        "aws:iam/policy:Policy",
        "aws:iam/role:Role",
        "aws:iam/user:User",
        "aws:kms/externalKey:ExternalKey",
        "aws:kms/key:Key",
        "aws:kms/replicaKey:ReplicaKey",
        "aws:lb/listener:Listener",
        "aws:lb/listenerRule:ListenerRule",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        "aws:rds/cluster:Cluster",
        "aws:rds/clusterParameterGroup:ClusterParameterGroup",
        "aws:rds/eventSubscription:EventSubscription",
        "aws:rds/instance:Instance",
        "aws:rds/optionGroup:OptionGroup",
        "aws:rds/parameterGroup:ParameterGroup",
        "aws:rds/proxy:Proxy",
        "aws:rds/proxyEndpoint:ProxyEndpoint",
        "aws:rds/subnetGroup:SubnetGroup",
        "aws:route53/healthCheck:HealthCheck",
        "aws:route53/zone:Zone",
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketObject:BucketObject",
        "aws:s3/bucketObjectv2:BucketObjectv2",
        "aws:s3/bucketV2:BucketV2",
        "aws:sagemaker/endpoint:Endpoint",
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "aws:sagemaker/model:Model",
        "aws:secretsmanager/secret:Secret",
        "aws:sns/topic:Topic",
        "aws:sqs/queue:Queue",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:wafv2/ipSet:IpSet",
        "aws:wafv2/regexPatternSet:RegexPatternSet",
        "aws:wafv2/ruleGroup:RuleGroup",
        "aws:wafv2/webAcl:WebAcl",
    }
)
DATA_STORES = frozenset(
    {
        "aws:rds/instance:Instance",
        "aws:rds/cluster:Cluster",
        "aws:elasticache/replicationGroup:ReplicationGroup",
        "aws:elasticache/serverlessCache:ServerlessCache",
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketV2:BucketV2",
        "aws:secretsmanager/secret:Secret",
    }
)
CLASSIFICATIONS = frozenset({"public", "internal", "confidential", "ferpa"})


def effective_tags(args: ResourceValidationArgs) -> dict[str, Any]:
    """The resource's tags over its provider's ``default_tags``."""
    defaults = get(args.provider.props, "defaultTags.tags") if args.provider else None
    merged: dict[str, Any] = dict(defaults) if isinstance(defaults, Mapping) else {}
    merged.update(tags_of(args.props))
    return merged


def _taggable(args: ResourceValidationArgs) -> bool:
    if not args.resource_type.startswith("aws:"):
        return False
    return args.resource_type in TAGGABLE_TYPES or "tags" in args.props


def _required_tags(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _taggable(args):
        return
    tags = effective_tags(args)
    missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
    if missing:
        report(
            f"{args.resource_type.rsplit(':', 1)[-1]} '{args.name}' lacks the tag(s) "
            f"{', '.join(missing)}; pass tags=spec.tags(...) (data stores: spec.tags('ferpa')).",
            None,
        )
        return
    problems = []
    if tags["tier"] not in TIERS:
        problems.append(f"tier={tags['tier']!r} is not one of {', '.join(TIERS)}")
    stack = stack_of_urn(args.urn)
    if stack and tags["stack"] != stack:
        problems.append(f"stack={tags['stack']!r} but the resource is in stack {stack!r}")
    if tags["data-classification"] not in CLASSIFICATIONS:
        problems.append(
            f"data-classification={tags['data-classification']!r} is not one of "
            f"{', '.join(sorted(CLASSIFICATIONS))}"
        )
    if problems:
        report(
            f"{args.resource_type.rsplit(':', 1)[-1]} '{args.name}' has wrong tags: "
            f"{'; '.join(problems)}; build them with spec.tags(...).",
            None,
        )


def _ferpa(args: ResourceValidationArgs, report: ReportViolation) -> None:
    classification = effective_tags(args).get("data-classification")
    if classification != "ferpa":
        report(
            f"{args.resource_type.rsplit(':', 1)[-1]} '{args.name}' stores student data but is "
            f"classified {classification or '(untagged)'!s}; tag it data-classification=ferpa "
            "(spec.tags('ferpa')).",
            None,
        )


M = EnforcementLevel.MANDATORY

POLICIES = [
    rule(
        "tagging-required-tags",
        "Taggable AWS resources carry project, stack, tier, owner and data-classification.",
        None,  # every type: _taggable() also catches AWS types outside the list that set tags
        _required_tags,
        M,
    ),
    rule(
        "tagging-data-stores-ferpa",
        "Data stores (RDS, ElastiCache, S3, Secrets Manager) are classified ferpa.",
        sorted(DATA_STORES),
        _ferpa,
        M,
    ),
]
