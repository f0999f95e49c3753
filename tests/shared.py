"""What the infrastructure tests share: the ``stack_run`` fixture's type, the stacks, the
fixtures' paths, the resource type tokens resources are looked up by, and a few lookups."""

from __future__ import annotations

from collections.abc import Callable

from tools.harness import ROOT, Resource, StackRun, stacks

StackRunner = Callable[[str], StackRun]
"""The ``stack_run`` fixture (tests/conftest.py): ``stack_run("tier3")`` gives the stack's
mocked evaluation, computed once per session."""

STACKS = [s for s in stacks() if "stackRole: global" not in (ROOT / f"Pulumi.{s}.yaml").read_text()]
"""Every stack of a tier (``Pulumi.<stack>.yaml``): all but tier 4's global stack, which
deploys no tier (tests/components/test_global.py)."""

FIXTURES = ROOT / "tests" / "fixtures"
OPTIONS_PROGRAM = FIXTURES / "options_program" / "__main__.py"
"""A tiny program exercising resource options, secrets and aliases, for the harness's tests."""


API_ACCESS = {"clusterPublicAccessCidrs": ["203.0.113.10/32"]}
"""A path to the cluster's API, which every regional stack's config names (the example
stack files give the same documentation address)."""


def tier_of(run: StackRun) -> str:
    """The tier a stack runs (its ``student-success:tier`` config)."""
    return run.config["student-success:tier"]


# -- resource type tokens ----------------------------------------------------------------

# Networking
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
DNS_RECORD = "aws:route53/record:Record"

# Keys, secrets and IAM
KMS_KEY = "aws:kms/key:Key"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SECRETS_MANAGER_SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
SSM_PARAMETER = "aws:ssm/parameter:Parameter"

# Storage
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"

# Data stores
DB_INSTANCE = "aws:rds/instance:Instance"
DB_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
DB_PROXY = "aws:rds/proxy:Proxy"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"

# The cluster
EKS_CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"

# Kubernetes objects
NAMESPACE = "kubernetes:core/v1:Namespace"
K8S_SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
CRON_JOB = "kubernetes:batch/v1:CronJob"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"

# The load balancer
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"

# The edge
AWS_PROVIDER = "pulumi:providers:aws"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
ACM_CERTIFICATE = "aws:acm/certificate:Certificate"
ACM_VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
DNS_RECORD = "aws:route53/record:Record"
RESPONSE_HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"

# Inference
SAGEMAKER_MODEL = "aws:sagemaker/model:Model"
SAGEMAKER_ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
SAGEMAKER_ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
SCALING_TARGET = "aws:appautoscaling/target:Target"
SCALING_POLICY = "aws:appautoscaling/policy:Policy"

# Observability
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"


# -- lookups -----------------------------------------------------------------------------


def alarm(run: StackRun, name: str) -> Resource:
    """The CloudWatch alarm of that resource name."""
    return run.one(METRIC_ALARM, name)


def ingress_of(run: StackRun, sg_name: str) -> list[Resource]:
    """What attaches to the security group of that resource name (its ingress rules)."""
    return run.attached_to(run.one(SECURITY_GROUP, sg_name), "securityGroupId")
