"""Every resource rule reports a bad resource (naming it and the fix) and stays silent on a
good one. Table-driven: (policy, resource type, good props, bad props, message fragment)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pulumi_policy import ResourceValidationArgs
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE as UNKNOWN
from pulumi_policy.proxy import unknown_checking_proxy

from policies.rules import RESOURCE_POLICIES

from .helpers import TAGS, resource_messages


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with the value at a dotted path replaced (None deletes it)."""
    result = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = result
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return result


FERPA = {**TAGS, "data-classification": "ferpa"}
KEY = "arn:aws:kms:us-east-1:123456789012:key/abc"

RDS = "aws:rds/instance:Instance"
DB: dict[str, Any] = {
    "engine": "postgres",
    "instanceClass": "db.r6g.2xlarge",
    "storageEncrypted": True,
    "kmsKeyId": KEY,
    "publiclyAccessible": False,
    "backupRetentionPeriod": 35.0,
    "multiAz": True,
    "deletionProtection": True,
    "skipFinalSnapshot": False,
    "iamDatabaseAuthenticationEnabled": True,
    "performanceInsightsEnabled": True,
    "enabledCloudwatchLogsExports": ["postgresql", "upgrade"],
    "tags": FERPA,
}
RG = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE: dict[str, Any] = {
    "atRestEncryptionEnabled": True,
    "transitEncryptionEnabled": True,
    "authToken": "generated-secret",
    "automaticFailoverEnabled": True,
    "multiAzEnabled": True,
    "numCacheClusters": 3.0,
    "tags": FERPA,
}
EKS = "aws:eks/cluster:Cluster"
CLUSTER: dict[str, Any] = {
    "vpcConfig": {
        "endpointPrivateAccess": True,
        "endpointPublicAccess": False,
        "subnetIds": ["subnet-1", "subnet-2"],
    },
    "enabledClusterLogTypes": ["api", "audit", "authenticator"],
    "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": KEY}},
}
CF = "aws:cloudfront/distribution:Distribution"
DISTRIBUTION: dict[str, Any] = {
    "defaultCacheBehavior": {
        "viewerProtocolPolicy": "redirect-to-https",
        "responseHeadersPolicyId": "rhp-1",
    },
    "orderedCacheBehaviors": [
        {
            "pathPattern": "/api/*",
            "viewerProtocolPolicy": "https-only",
            "responseHeadersPolicyId": "rhp-1",
        }
    ],
    "tags": TAGS,
    "viewerCertificate": {
        "acmCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/x",
        "minimumProtocolVersion": "TLSv1.2_2021",
        "sslSupportMethod": "sni-only",
    },
    "webAclId": "arn:aws:wafv2:us-east-1:123456789012:global/webacl/edge/1",
    "origins": [
        {
            "originId": "api-alb",
            "domainName": "alb.example.org",
            "customOriginConfig": {
                "originProtocolPolicy": "https-only",
                "originSslProtocols": ["TLSv1.2"],
                "httpPort": 80.0,
                "httpsPort": 443.0,
            },
        }
    ],
}
EPC = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ENDPOINT_CONFIG: dict[str, Any] = {
    "kmsKeyArn": KEY,
    "dataCaptureConfig": {
        "enableCapture": True,
        "initialSamplingPercentage": 20.0,
        "destinationS3Uri": "s3://models/capture",
        "kmsKeyId": KEY,
        "captureOptions": [{"captureMode": "Input"}, {"captureMode": "Output"}],
    },
}
ECR = "aws:ecr/repository:Repository"
REPOSITORY: dict[str, Any] = {
    "imageTagMutability": "IMMUTABLE",
    "imageScanningConfiguration": {"scanOnPush": True},
    "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": KEY}],
}
CONTAINER: dict[str, Any] = {
    "name": "api",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/student-success:0.1.0",
    "resources": {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    },
    "readinessProbe": {"httpGet": {"path": "/health/ready", "port": 8080.0}},
    "livenessProbe": {"httpGet": {"path": "/health/live", "port": 8080.0}},
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    },
}
POD_SPEC: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001.0},
    "containers": [CONTAINER],
    "volumes": [{"name": "tmp", "emptyDir": {}}],
}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DEPLOY: dict[str, Any] = {"spec": {"replicas": 2.0, "template": {"spec": POD_SPEC}}}
CRON_JOB = "kubernetes:batch/v1:CronJob"
CRON: dict[str, Any] = {
    "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": {"spec": POD_SPEC}}}}
}
POD0 = "spec.template.spec"
CRON_POD0 = "spec.jobTemplate.spec.template.spec"
TLS_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::models", "arn:aws:s3:::models/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
)


def _doc(action: Any, resource: Any) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
        }
    )


SG_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
WEB_IN = {"ipProtocol": "tcp", "fromPort": 443.0, "toPort": 443.0, "cidrIpv4": "0.0.0.0/0"}
PG_FROM_APP = {
    "ipProtocol": "tcp",
    "fromPort": 5432.0,
    "toPort": 5432.0,
    "referencedSecurityGroupId": "sg-app",
}

LST = "aws:lb/listener:Listener"
HTTPS_LISTENER: dict[str, Any] = {
    "port": 443.0,
    "protocol": "HTTPS",
    "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/x",
    "defaultActions": [{"type": "forward", "targetGroupArn": "arn:tg"}],
    "tags": TAGS,
}
HTTP_FORWARD = {**HTTPS_LISTENER, "port": 80.0, "protocol": "HTTP"}
HTTP_REDIRECT = {
    **HTTP_FORWARD,
    "defaultActions": [{"type": "redirect", "redirect": {"port": "443", "protocol": "HTTPS"}}],
}

# (policy, resource type, good props, bad props, fragment of the message)
SQS = "aws:sqs/queue:Queue"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:ssp-tier3-events-dlq"
QUEUE: dict[str, Any] = {
    "name": "ssp-tier3-events",
    "kmsMasterKeyId": KEY,
    "redrivePolicy": json.dumps({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5}),
    "tags": FERPA,
}
DEAD_LETTER_QUEUE: dict[str, Any] = {
    "name": "ssp-tier3-events-dlq",
    "kmsMasterKeyId": KEY,
    "redriveAllowPolicy": json.dumps(
        {"redrivePermission": "byQueue", "sourceQueueArns": [DLQ_ARN.removesuffix("-dlq")]}
    ),
    "tags": FERPA,
}

CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], str]] = [
    (
        "s3-object-lock-retention",
        "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
        {"bucket": "b", "rule": {"defaultRetention": {"mode": "COMPLIANCE", "days": 365}}},
        {"bucket": "b", "rule": {"defaultRetention": {"mode": "COMPLIANCE", "days": 0}}},
        "for no time",
    ),
    ("sqs-customer-managed-key", SQS, QUEUE, with_(QUEUE, "kmsMasterKeyId", None), "set kms"),
    (
        "sqs-customer-managed-key",
        SQS,
        DEAD_LETTER_QUEUE,
        with_(DEAD_LETTER_QUEUE, "kmsMasterKeyId", "alias/aws/sqs"),
        "AWS-managed key",
    ),
    ("sqs-dead-letter-queue", SQS, QUEUE, with_(QUEUE, "redrivePolicy", None), "no dead-letter"),
    (
        "sqs-dead-letter-queue",
        SQS,
        DEAD_LETTER_QUEUE,
        with_(QUEUE, "redrivePolicy", json.dumps({"deadLetterTargetArn": DLQ_ARN})),
        "maxReceiveCount",
    ),
    ("alb-https-listener", LST, HTTPS_LISTENER, HTTP_FORWARD, "plain HTTP on port 80"),
    ("alb-https-listener", LST, HTTP_REDIRECT, HTTP_FORWARD, "set apiDomainName and hostedZoneId"),
    (
        "alb-tls-policy",
        LST,
        {**HTTPS_LISTENER, "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"},
        {**HTTPS_LISTENER, "sslPolicy": "ELBSecurityPolicy-2016-08"},
        "ssl_policy=ELBSecurityPolicy-2016-08",
    ),
    ("alb-tls-policy", LST, HTTP_REDIRECT, HTTPS_LISTENER, "ssl_policy=(default)"),
    (
        "alb-access-logs",
        "aws:lb/loadBalancer:LoadBalancer",
        {"internal": False, "accessLogs": {"bucket": "logs", "prefix": "alb", "enabled": True}},
        {"internal": False, "accessLogs": {"bucket": "logs", "enabled": False}},
        "keeps no access logs",
    ),
    (
        "alb-access-logs",
        "aws:lb/loadBalancer:LoadBalancer",
        {"internal": True},
        {"internal": False},
        "set access_logs",
    ),
    (
        "acm-dns-validation",
        "aws:acm/certificate:Certificate",
        {"domainName": "api.example.org", "validationMethod": "DNS"},
        {"domainName": "api.example.org", "validationMethod": "EMAIL"},
        "validation_method=EMAIL",
    ),
    (
        "log-group-encrypted",
        "aws:cloudwatch/logGroup:LogGroup",
        {"retentionInDays": 30.0, "kmsKeyId": KEY},
        {"retentionInDays": 30.0},
        "set kms_key_id",
    ),
    (
        "log-group-retention",
        "aws:cloudwatch/logGroup:LogGroup",
        {"retentionInDays": 30.0, "kmsKeyId": KEY},
        {"kmsKeyId": KEY},
        "keeps its logs forever",
    ),
    (
        "sg-egress-restricted",
        "aws:ec2/securityGroup:SecurityGroup",
        {
            "egress": [
                {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "cidrBlocks": ["10.20.0.0/16"]},
                {
                    "protocol": "tcp",
                    "fromPort": 443.0,
                    "toPort": 443.0,
                    "cidrBlocks": ["0.0.0.0/0"],
                },
            ]
        },
        {
            "egress": [
                {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "cidrBlocks": ["0.0.0.0/0"]}
            ]
        },
        "lets everything out to 0.0.0.0/0",
    ),
    (
        "sg-egress-restricted",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        {"ipProtocol": "tcp", "fromPort": 443.0, "toPort": 443.0, "cidrIpv4": "0.0.0.0/0"},
        {"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0"},
        "all ports",
    ),
    ("rds-storage-encrypted", RDS, DB, with_(DB, "storageEncrypted", False), "unencrypted"),
    ("rds-not-publicly-accessible", RDS, DB, with_(DB, "publiclyAccessible", True), "publicly"),
    ("rds-backup-retention", RDS, DB, with_(DB, "backupRetentionPeriod", 1.0), ">= 7"),
    ("rds-multi-az", RDS, DB, with_(DB, "multiAz", False), "requires a Multi-AZ primary"),
    (
        "rds-deletion-protection",
        RDS,
        DB,
        with_(DB, "deletionProtection", False),
        "deletion_protection=True",
    ),
    ("rds-deletion-protection", RDS, DB, with_(DB, "skipFinalSnapshot", True), "final snapshot"),
    (
        "rds-iam-authentication",
        RDS,
        DB,
        with_(DB, "iamDatabaseAuthenticationEnabled", None),
        "IAM database",
    ),
    (
        "rds-performance-insights",
        RDS,
        DB,
        with_(DB, "performanceInsightsEnabled", False),
        "Performance Insights",
    ),
    (
        "rds-log-exports",
        RDS,
        DB,
        with_(DB, "enabledCloudwatchLogsExports", ["upgrade"]),
        "postgresql",
    ),
    (
        "rds-instance-class-allowed",
        RDS,
        DB,
        with_(DB, "instanceClass", "db.t4g.micro"),
        "not allowed on tier tier3",
    ),
    (
        "rds-force-ssl",
        "aws:rds/parameterGroup:ParameterGroup",
        {"family": "postgres16", "parameters": [{"name": "rds.force_ssl", "value": "1"}]},
        {"family": "postgres16", "parameters": [{"name": "rds.force_ssl", "value": "0"}]},
        "rds.force_ssl=0",
    ),
    (
        "rds-proxy-require-tls",
        "aws:rds/proxy:Proxy",
        {"requireTls": True},
        {"requireTls": False},
        "require_tls=True",
    ),
    (
        "elasticache-encrypted-at-rest",
        RG,
        CACHE,
        with_(CACHE, "atRestEncryptionEnabled", False),
        "at rest",
    ),
    (
        "elasticache-encrypted-in-transit",
        RG,
        CACHE,
        with_(CACHE, "transitEncryptionEnabled", False),
        "plaintext",
    ),
    (
        "elasticache-encrypted-in-transit",
        RG,
        CACHE,
        with_(CACHE, "transitEncryptionMode", "preferred"),
        "'required'",
    ),
    ("elasticache-auth-token", RG, CACHE, with_(CACHE, "authToken", None), "auth_token"),
    (
        "elasticache-automatic-failover",
        RG,
        CACHE,
        with_(CACHE, "automaticFailoverEnabled", False),
        "automatic_failover_enabled=True",
    ),
    (
        "elasticache-automatic-failover",
        RG,
        CACHE,
        with_(CACHE, "multiAzEnabled", False),
        "multi_az_enabled=True",
    ),
    (
        "s3-public-access-block",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        {
            "bucket": "b",
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        },
        {
            "bucket": "b",
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
        },
        "restrict_public_buckets",
    ),
    (
        "s3-no-public-acl",
        "aws:s3/bucket:Bucket",
        {"tags": FERPA},
        {"acl": "public-read", "tags": FERPA},
        "public-read",
    ),
    (
        "s3-model-bucket-versioning",
        "aws:s3/bucketVersioning:BucketVersioning",
        {"bucket": "b", "versioningConfiguration": {"status": "Enabled"}},
        {"bucket": "b", "versioningConfiguration": {"status": "Suspended"}},
        "'Suspended'",
    ),
    (
        "s3-sse-kms",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        {
            "bucket": "b",
            "rules": [
                {
                    "applyServerSideEncryptionByDefault": {
                        "sseAlgorithm": "aws:kms",
                        "kmsMasterKeyId": KEY,
                    }
                }
            ],
        },
        {
            "bucket": "b",
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
        },
        "AES256",
    ),
    (
        "s3-tls-only-policy",
        "aws:s3/bucketPolicy:BucketPolicy",
        {"bucket": "b", "policy": TLS_POLICY},
        {"bucket": "b", "policy": _doc("s3:GetObject", "arn:aws:s3:::b/*")},
        "plain-HTTP",
    ),
    (
        "eks-private-endpoint",
        EKS,
        CLUSTER,
        with_(CLUSTER, "vpcConfig.endpointPrivateAccess", False),
        "private API endpoint",
    ),
    (
        "eks-public-access-cidrs",
        EKS,
        CLUSTER,
        with_(CLUSTER, "vpcConfig.endpointPublicAccess", True),
        "0.0.0.0/0",
    ),
    (
        "eks-control-plane-logs",
        EKS,
        CLUSTER,
        with_(CLUSTER, "enabledClusterLogTypes", ["api"]),
        "audit, authenticator",
    ),
    ("eks-secrets-encryption", EKS, CLUSTER, with_(CLUSTER, "encryptionConfig", None), "Secrets"),
    (
        "eks-launch-template-imdsv2",
        "aws:ec2/launchTemplate:LaunchTemplate",
        {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1.0}},
        {"metadataOptions": {"httpTokens": "optional"}},
        "IMDSv1",
    ),
    (
        "sg-no-public-ingress",
        SG_RULE,
        WEB_IN,
        {**WEB_IN, "fromPort": 22.0, "toPort": 22.0},
        "port 22",
    ),
    ("sg-no-public-ingress", SG_RULE, WEB_IN, {**WEB_IN, "ipProtocol": "-1"}, "all ports"),
    (
        "sg-data-ports-no-cidr",
        SG_RULE,
        PG_FROM_APP,
        {**PG_FROM_APP, "referencedSecurityGroupId": None, "cidrIpv4": "10.20.0.0/16"},
        "PostgreSQL",
    ),
    (
        "cloudfront-https-only",
        CF,
        DISTRIBUTION,
        with_(DISTRIBUTION, "orderedCacheBehaviors.0.viewerProtocolPolicy", "allow-all"),
        "/api/*",
    ),
    (
        "cloudfront-tls-minimum",
        CF,
        DISTRIBUTION,
        with_(DISTRIBUTION, "viewerCertificate.minimumProtocolVersion", "TLSv1"),
        "down to TLSv1",
    ),
    (
        "cloudfront-custom-certificate",
        CF,
        DISTRIBUTION,
        with_(DISTRIBUTION, "viewerCertificate", {"cloudfrontDefaultCertificate": True}),
        "*.cloudfront.net",
    ),
    ("cloudfront-waf-attached", CF, DISTRIBUTION, with_(DISTRIBUTION, "webAclId", None), "no WAF"),
    (
        "cloudfront-security-headers",
        CF,
        DISTRIBUTION,
        with_(DISTRIBUTION, "orderedCacheBehaviors.0.responseHeadersPolicyId", None),
        "ordered_cache_behaviors[/api/*] without security headers",
    ),
    (
        "cloudfront-origin-https",
        CF,
        DISTRIBUTION,
        with_(DISTRIBUTION, "origins.0.customOriginConfig.originProtocolPolicy", "http-only"),
        "http-only",
    ),
    (
        "sagemaker-endpoint-kms",
        EPC,
        ENDPOINT_CONFIG,
        with_(ENDPOINT_CONFIG, "kmsKeyArn", None),
        "kms_key_arn",
    ),
    (
        "sagemaker-endpoint-kms",
        EPC,
        ENDPOINT_CONFIG,
        with_(ENDPOINT_CONFIG, "dataCaptureConfig.kmsKeyId", None),
        "data_capture_config.kms_key_id",
    ),
    (
        "sagemaker-data-capture",
        EPC,
        ENDPOINT_CONFIG,
        with_(ENDPOINT_CONFIG, "dataCaptureConfig", None),
        "does not capture",
    ),
    (
        "sagemaker-model-in-vpc",
        "aws:sagemaker/model:Model",
        {"vpcConfig": {"subnets": ["subnet-1"], "securityGroupIds": ["sg-app"]}},
        {"primaryContainer": {"image": "x:1"}},
        "outside the VPC",
    ),
    (
        "ecr-immutable-tags",
        ECR,
        REPOSITORY,
        with_(REPOSITORY, "imageTagMutability", "MUTABLE"),
        "MUTABLE tags",
    ),
    (
        "ecr-scan-on-push",
        ECR,
        REPOSITORY,
        with_(REPOSITORY, "imageScanningConfiguration.scanOnPush", False),
        "scan images on push",
    ),
    (
        "ecr-kms-encryption",
        ECR,
        REPOSITORY,
        with_(REPOSITORY, "encryptionConfigurations", None),
        "AES256",
    ),
    (
        "kms-key-rotation",
        "aws:kms/key:Key",
        {"enableKeyRotation": True},
        {"enableKeyRotation": False},
        "enable_key_rotation=True",
    ),
    (
        "kms-key-explicit-policy",
        "aws:kms/key:Key",
        {"enableKeyRotation": True, "policy": '{"Statement": []}'},
        {"enableKeyRotation": True},
        "implicit default key policy",
    ),
    (
        "secrets-customer-managed-key",
        "aws:secretsmanager/secret:Secret",
        {"kmsKeyId": KEY, "tags": FERPA},
        {"tags": FERPA},
        "aws/secretsmanager",
    ),
    (
        "iam-no-admin-inline-policy",
        "aws:iam/rolePolicy:RolePolicy",
        {"role": "r", "policy": _doc(["s3:GetObject"], "arn:aws:s3:::models/*")},
        {"role": "r", "policy": _doc("*", "*")},
        "Action '*' on Resource '*'",
    ),
    (
        "iam-no-admin-inline-policy",
        "aws:iam/role:Role",
        {"inlinePolicies": [{"name": "read", "policy": _doc("s3:GetObject", "*")}], "tags": TAGS},
        {"inlinePolicies": [{"name": "god", "policy": _doc(["*:*"], ["*"])}], "tags": TAGS},
        "'god'",
    ),
    (
        # UpdateEndpoint is authorized on the endpoint and the configuration it moves to.
        "iam-actions-as-authorized",
        "aws:iam/rolePolicy:RolePolicy",
        {
            "role": "r",
            "policy": _doc(
                "sagemaker:UpdateEndpoint",
                [
                    "arn:aws:sagemaker:us-east-1:123456789012:endpoint/predict",
                    "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/predict-g*",
                ],
            ),
        },
        {
            "role": "r",
            "policy": _doc(
                "sagemaker:UpdateEndpoint",
                "arn:aws:sagemaker:us-east-1:123456789012:endpoint/predict",
            ),
        },
        "endpoint-config",
    ),
    (
        # DescribeKey requests never carry kms:GrantIsForAWSResource: never granted.
        "iam-actions-as-authorized",
        "aws:iam/rolePolicy:RolePolicy",
        {"role": "r", "policy": _doc("kms:DescribeKey", KEY)},
        {
            "role": "r",
            "policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["kms:CreateGrant", "kms:DescribeKey"],
                            "Resource": KEY,
                            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                        }
                    ],
                }
            ),
        },
        "kms:DescribeKey: its requests never carry the condition key kms:GrantIsForAWSResource",
    ),
    (
        "iam-actions-as-authorized",
        "aws:iam/role:Role",
        {
            "inlinePolicies": [{"name": "pull", "policy": _doc("ecr:GetAuthorizationToken", "*")}],
            "tags": TAGS,
        },
        {
            "inlinePolicies": [
                {
                    "name": "pull",
                    "policy": _doc(
                        "ecr:GetAuthorizationToken",
                        "arn:aws:ecr:us-east-1:123456789012:repository/app",
                    ),
                }
            ],
            "tags": TAGS,
        },
        'takes no resource ARNs: its Resource must be "*"',
    ),
    (
        "iam-actions-as-authorized",
        "aws:iam/policy:Policy",
        {"policy": _doc("s3:GetObject", "arn:aws:s3:::models/*"), "tags": TAGS},
        {"policy": _doc(["s3:GetObjects", "s3:Fetch*"], "arn:aws:s3:::models/*"), "tags": TAGS},
        "s3:GetObjects is not an action",
    ),
    (
        "iam-no-object-lock-bypass",
        "aws:iam/rolePolicy:RolePolicy",
        {"role": "r", "policy": _doc("s3:DeleteObjectVersion", "arn:aws:s3:::archive/audit/*")},
        {"role": "r", "policy": _doc("s3:*", "arn:aws:s3:::archive/audit/*")},
        "allows s3:BypassGovernanceRetention",
    ),
    (
        "iam-no-object-lock-bypass",
        "aws:iam/policy:Policy",
        {"policy": _doc("s3:GetObject", "arn:aws:s3:::archive/*"), "tags": TAGS},
        {"policy": _doc("s3:Bypass*", "arn:aws:s3:::archive/*"), "tags": TAGS},
        "statement",
    ),
    (
        "iam-no-admin-managed-policy",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"},
        {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        "administrator-equivalent",
    ),
    (
        "iam-no-admin-managed-policy",
        "aws:iam/policy:Policy",
        {
            "policy": _doc("sagemaker:InvokeEndpoint", "arn:aws:sagemaker:*:*:endpoint/x"),
            "tags": TAGS,
        },
        {"policy": _doc("*", "*"), "tags": TAGS},
        "Managed IAM policy 'offender'",
    ),
    (
        "k8s-run-as-non-root",
        DEPLOYMENT,
        DEPLOY,
        with_(DEPLOY, f"{POD0}.securityContext", None),
        "may run as root",
    ),
    (
        "k8s-run-as-non-root",
        CRON_JOB,
        CRON,
        with_(CRON, f"{CRON_POD0}.securityContext.runAsUser", 0.0),
        "may run as root",
    ),
    (
        "k8s-resource-limits",
        DEPLOYMENT,
        DEPLOY,
        with_(DEPLOY, f"{POD0}.containers.0.resources.limits", None),
        "limits.cpu, limits.memory",
    ),
    (
        "k8s-probes",
        DEPLOYMENT,
        DEPLOY,
        with_(DEPLOY, f"{POD0}.containers.0.readinessProbe", None),
        "readinessProbe",
    ),
    (
        "k8s-no-privileged",
        DEPLOYMENT,
        DEPLOY,
        with_(DEPLOY, f"{POD0}.containers.0.securityContext.privileged", True),
        "privileged",
    ),
    (
        "k8s-no-privileged",
        DEPLOYMENT,
        DEPLOY,
        with_(DEPLOY, f"{POD0}.hostNetwork", True),
        "hostNetwork",
    ),
    (
        "k8s-no-host-path",
        DEPLOYMENT,
        DEPLOY,
        with_(DEPLOY, f"{POD0}.volumes", [{"name": "docker", "hostPath": {"path": "/var/run"}}]),
        "/var/run",
    ),
    (
        "k8s-image-not-latest",
        DEPLOYMENT,
        DEPLOY,
        with_(DEPLOY, f"{POD0}.containers.0.image", "nginx"),
        ":latest",
    ),
    (
        "k8s-image-not-latest",
        CRON_JOB,
        CRON,
        with_(CRON, f"{CRON_POD0}.containers.0.image", "repo/app:latest"),
        ":latest",
    ),
    (
        "k8s-secrets-as-files",
        DEPLOYMENT,
        DEPLOY,
        with_(DEPLOY, f"{POD0}.containers.0.envFrom", [{"secretRef": {"name": "db-1a2b"}}]),
        "envFrom secretRef",
    ),
    (
        "k8s-secrets-as-files",
        CRON_JOB,
        CRON,
        with_(
            CRON,
            f"{CRON_POD0}.containers.0.env",
            [{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "u"}}}],
        ),
        "container 'api' takes a Secret",
    ),
    (
        "k8s-read-only-root-filesystem",
        DEPLOYMENT,
        DEPLOY,
        with_(DEPLOY, f"{POD0}.containers.0.securityContext.readOnlyRootFilesystem", False),
        "writable root",
    ),
    (
        "tagging-required-tags",
        "aws:sns/topic:Topic",
        {"tags": TAGS},
        {"tags": with_(TAGS, "owner", None)},
        "owner",
    ),
    (
        "tagging-required-tags",
        "aws:sns/topic:Topic",
        {"tags": TAGS},
        {"tags": {**TAGS, "tier": "gold"}},
        "tier='gold'",
    ),
    (
        "tagging-required-tags",
        "aws:sns/topic:Topic",
        {"tags": TAGS},
        {"tags": {**TAGS, "stack": "tier1"}},
        "in stack 'tier3'",
    ),
    ("tagging-data-stores-ferpa", RDS, DB, with_(DB, "tags", TAGS), "classified internal"),
    ("tagging-data-stores-ferpa", "aws:s3/bucket:Bucket", {"tags": FERPA}, {"tags": TAGS}, "ferpa"),
]


def _id(case: tuple[str, str, Any, Any, str]) -> str:
    return f"{case[0]}:{case[1].rsplit(':', 1)[-1]}:{case[4][:20]}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_silent_on_good_resource(
    case: tuple[str, str, dict[str, Any], dict[str, Any], str],
) -> None:
    name, resource_type, good, _bad, _fragment = case
    assert resource_messages(name, resource_type, good) == []


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_reports_bad_resource(case: tuple[str, str, dict[str, Any], dict[str, Any], str]) -> None:
    name, resource_type, _good, bad, fragment = case
    messages = resource_messages(name, resource_type, bad, resource_name="offender")
    assert messages, f"{name} stayed silent on {bad}"
    assert any(fragment in m for m in messages), messages
    assert all("offender" in m for m in messages), "messages name the resource"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_engine_defaults_config_gives_same_result(
    case: tuple[str, str, dict[str, Any], dict[str, Any], str],
) -> None:
    """The engine passes the schema defaults as config; the result must not change."""
    from tools.policy import policy_config

    from .helpers import policy

    name, resource_type, good, bad, _fragment = case
    defaults = policy_config(policy(name), {})
    assert resource_messages(name, resource_type, good, defaults) == []
    assert resource_messages(name, resource_type, bad, defaults) == resource_messages(
        name, resource_type, bad
    )


def test_every_resource_rule_has_cases() -> None:
    covered = {case[0] for case in CASES}
    assert {p.name for p in RESOURCE_POLICIES} <= covered


def test_rules_ignore_other_resource_types() -> None:
    for rule in RESOURCE_POLICIES:
        if rule.name.startswith("tagging-required"):
            continue  # applies to any AWS type that sets tags
        assert resource_messages(rule.name, "aws:cloudwatch/dashboard:Dashboard", {}) == []


UNKNOWN_CASES = [
    ("rds-storage-encrypted", RDS, {"replicateSourceDb": UNKNOWN, "tags": FERPA}),
    ("elasticache-auth-token", RG, with_(CACHE, "authToken", UNKNOWN)),
    ("cloudfront-waf-attached", CF, with_(DISTRIBUTION, "webAclId", UNKNOWN)),
    ("kms-key-explicit-policy", "aws:kms/key:Key", {"enableKeyRotation": True, "policy": UNKNOWN}),
    ("log-group-encrypted", "aws:cloudwatch/logGroup:LogGroup", {"kmsKeyId": UNKNOWN}),
    (
        "alb-access-logs",
        "aws:lb/loadBalancer:LoadBalancer",
        {"internal": False, "accessLogs": {"bucket": UNKNOWN, "enabled": True}},
    ),
    ("sagemaker-endpoint-kms", EPC, with_(ENDPOINT_CONFIG, "kmsKeyArn", UNKNOWN)),
    ("eks-secrets-encryption", EKS, with_(CLUSTER, "encryptionConfig.provider.keyArn", UNKNOWN)),
    ("k8s-image-not-latest", DEPLOYMENT, with_(DEPLOY, f"{POD0}.containers.0.image", UNKNOWN)),
    ("sqs-customer-managed-key", SQS, with_(QUEUE, "kmsMasterKeyId", UNKNOWN)),
    ("sqs-dead-letter-queue", SQS, with_(QUEUE, "redrivePolicy", UNKNOWN)),
]


@pytest.mark.parametrize("case", UNKNOWN_CASES, ids=lambda c: c[0])
def test_values_unknown_during_a_preview_count_as_set(
    case: tuple[str, str, dict[str, Any]],
) -> None:
    """In a first preview, outputs of other resources (ARNs, generated tokens, the source DB
    of a replica, the image URL) are unknown; presence checks must not fail on them."""
    name, resource_type, props = case
    assert resource_messages(name, resource_type, unknown_checking_proxy(props)) == []


@pytest.mark.parametrize(
    ("resource_type", "path"),
    [
        ("kubernetes:apps/v1:Deployment", "spec.template.spec"),
        ("kubernetes:apps/v1:StatefulSet", "spec.template.spec"),
        ("kubernetes:apps/v1:DaemonSet", "spec.template.spec"),
        ("kubernetes:batch/v1:Job", "spec.template.spec"),
        ("kubernetes:batch/v1:CronJob", "spec.jobTemplate.spec.template.spec"),
        ("kubernetes:core/v1:Pod", "spec"),
    ],
)
def test_pod_rules_find_the_pod_template_of_every_workload_kind(
    resource_type: str, path: str
) -> None:
    good: dict[str, Any] = {}
    node = good
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = POD_SPEC
    assert resource_messages("k8s-run-as-non-root", resource_type, good) == []
    bad = with_(good, f"{path}.containers.0.securityContext.privileged", True)
    assert resource_messages("k8s-no-privileged", resource_type, bad)
    assert resource_messages(
        "k8s-image-not-latest", resource_type, with_(good, f"{path}.containers.0.image", "busybox")
    )


def test_helm_releases_are_opaque() -> None:
    release = {"chart": "aws-load-balancer-controller", "values": {"image": {"tag": "latest"}}}
    for rule in RESOURCE_POLICIES:
        assert resource_messages(rule.name, "kubernetes:helm.sh/v3:Release", release) == []


def test_provider_default_tags_count() -> None:
    from pulumi_policy import PolicyProviderResource, ResourceValidationPolicy

    from .helpers import options, policy, urn

    provider = PolicyProviderResource(
        "pulumi:providers:aws", {"defaultTags": {"tags": TAGS}}, "urn:provider", "aws"
    )
    rule = policy("tagging-required-tags")
    assert isinstance(rule, ResourceValidationPolicy)
    messages: list[str] = []

    def report(message: str, _urn: str | None = None) -> None:
        messages.append(message)

    topic = "aws:sns/topic:Topic"
    args = ResourceValidationArgs(topic, {}, urn(topic, "alarms"), "alarms", options(), provider)
    rule.validate(args, report)
    assert messages == []
    rule.validate(
        ResourceValidationArgs(topic, {}, urn(topic, "alarms"), "alarms", options(), None), report
    )
    assert messages and "lacks the tag(s) project, stack, tier, owner" in messages[0]


def test_tls_rules_leave_dev_alone_and_the_log_bucket_may_use_sse_s3() -> None:
    dev = {**TAGS, "tier": "dev"}
    default_cert = with_(DISTRIBUTION, "viewerCertificate", {"cloudfrontDefaultCertificate": True})
    http_origin = with_(
        DISTRIBUTION, "origins.0.customOriginConfig.originProtocolPolicy", "http-only"
    )
    for name, props in (
        ("cloudfront-custom-certificate", default_cert),
        ("cloudfront-origin-https", http_origin),
    ):
        assert resource_messages(name, CF, {**props, "tags": dev}) == []
        assert resource_messages(name, CF, props)
    sse = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    aes = {
        "bucket": "b",
        "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
    }
    assert resource_messages("s3-sse-kms", sse, aes, resource_name="access-logs-encryption") == []
    assert resource_messages("s3-sse-kms", sse, aes, resource_name="models-encryption")


@pytest.mark.parametrize("spec_key", ["keySpec", "customerMasterKeySpec"])
def test_an_asymmetric_kms_key_need_not_rotate_but_a_symmetric_one_must(spec_key: str) -> None:
    """AWS rotates only symmetric encryption keys; the spec is read from either property
    (``customer_master_key_spec`` is the deprecated name of ``key_spec``)."""
    key = "aws:kms/key:Key"
    assert resource_messages("kms-key-rotation", key, {spec_key: "RSA_2048"}) == []
    assert resource_messages("kms-key-rotation", key, {spec_key: "SYMMETRIC_DEFAULT"})


BUCKET = "aws:s3/bucket:Bucket"
TLS_DENY = json.loads(TLS_POLICY)["Statement"][0]


def _bucket_policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_a_bucket_policy_passes_with_its_tls_deny_after_other_statements() -> None:
    allow = json.loads(_doc("s3:GetObject", "arn:aws:s3:::models/*"))["Statement"][0]
    deny_unconditional = {**TLS_DENY, "Sid": "DenyDeletes", "Action": "s3:DeleteObject"}
    del deny_unconditional["Condition"]
    document = _bucket_policy(allow, deny_unconditional, TLS_DENY)
    props = {"bucket": "b", "policy": document}
    assert resource_messages("s3-tls-only-policy", "aws:s3/bucketPolicy:BucketPolicy", props) == []


@pytest.mark.parametrize(
    ("condition", "denies_plain_http"),
    [
        ({"Bool": {"aws:SecureTransport": "false"}}, True),
        ({"BoolIfExists": {"aws:SecureTransport": ["false"]}}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, False),  # denies the TLS requests instead
    ],
)
def test_a_bucket_policy_must_deny_the_requests_made_without_tls(
    condition: dict[str, Any], denies_plain_http: bool
) -> None:
    props = {"bucket": "b", "policy": _bucket_policy({**TLS_DENY, "Condition": condition})}
    messages = resource_messages("s3-tls-only-policy", "aws:s3/bucketPolicy:BucketPolicy", props)
    assert (messages == []) is denies_plain_http, messages


def test_a_bucket_without_an_inline_policy_is_left_to_its_bucket_policy_resource() -> None:
    # The stack rule s3-bucket-controls-present checks the BucketPolicy exists.
    assert resource_messages("s3-tls-only-policy", BUCKET, {"tags": FERPA}) == []
    inline = {"tags": FERPA, "policy": _doc("s3:GetObject", "arn:aws:s3:::b/*")}
    assert resource_messages("s3-tls-only-policy", BUCKET, inline)
    no_document = {"bucket": "b"}
    assert resource_messages("s3-tls-only-policy", "aws:s3/bucketPolicy:BucketPolicy", no_document)


def test_a_bucket_without_inline_encryption_is_left_to_its_encryption_resource() -> None:
    assert resource_messages("s3-sse-kms", BUCKET, {"tags": FERPA}) == []
    inline = {
        "tags": FERPA,
        "serverSideEncryptionConfiguration": {
            "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
        },
    }
    assert any("AES256" in m for m in resource_messages("s3-sse-kms", BUCKET, inline))
    sse = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    assert any("(none)" in m for m in resource_messages("s3-sse-kms", sse, {"bucket": "b"}))


@pytest.mark.parametrize(
    ("name", "props"),
    [
        ("models", {}),
        ("artifacts", {"bucket": "ssp-models-tier3"}),
        ("artifacts", {"bucketPrefix": "models-"}),
    ],
)
def test_a_model_bucket_is_known_by_its_resource_name_bucket_name_or_prefix(
    name: str, props: dict[str, Any]
) -> None:
    """An inline ``versioning.enabled=False`` on a model bucket is refused; a bucket that is
    no model bucket, or leaves versioning to an aws.s3.BucketVersioning, passes."""
    off = {**props, "tags": FERPA, "versioning": {"enabled": False}}
    rule = "s3-model-bucket-versioning"
    assert resource_messages(rule, BUCKET, off, resource_name=name)
    assert resource_messages(rule, BUCKET, {**props, "tags": FERPA}, resource_name=name) == []
    on = {**off, "versioning": {"enabled": True}}
    assert resource_messages(rule, BUCKET, on, resource_name=name) == []
    assert (
        resource_messages(rule, BUCKET, {"versioning": {"enabled": False}}, resource_name="logs")
        == []
    )
