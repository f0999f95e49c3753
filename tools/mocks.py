"""The mocks the harness runs the program against: they echo inputs and add the computed
outputs real providers return (ids, ARNs, endpoints, the EKS certificate and OIDC issuer...),
so that no ``apply`` in the program sees ``None``."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from pulumi.output import Unknown
from pulumi.runtime import mocks, rpc

from tools.mock_account import (
    ACCOUNT,
    CALLER_ARN,
    STACK_REFERENCE,
    availability_zones,
    hosted_zone,
    session_issuer,
    stack_outputs,
)


def _unknown(value: Any) -> bool:
    return isinstance(value, Unknown)


def _fake_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:17]


def _password(name: str, inputs: dict[str, Any]) -> str:
    """A fixed fake password per resource, and a new one when its keepers change (as the
    provider generates a new one then)."""
    keepers = inputs.get("keepers")
    salt = json.dumps(keepers, sort_keys=True) if keepers else ""
    return "mock-" + _fake_id(name + salt) + "-" + _fake_id(name[::-1])


def _kubernetes_name(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """pulumi-kubernetes names an object without a name after its resource, plus a random
    suffix (replacements get a new one)."""
    metadata = inputs.get("metadata")
    if typ.startswith("kubernetes:") and isinstance(metadata, dict) and not metadata.get("name"):
        return {"metadata": {**metadata, "name": f"{name}-{_fake_id(typ + name)[:8]}"}}
    return {}


class AwsMocks(mocks.Mocks):
    """Echo inputs and add the computed outputs real providers return."""

    def __init__(
        self,
        region: str,
        *,
        preview: bool = False,
        stack: str = "",
        deployed: dict[str, Any] | None = None,
    ):
        self.region = region
        self.preview = preview
        """Answer as a first preview of a new stack does: computed outputs unknown."""
        self.stack = stack
        self.deployed = dict(deployed or {})
        """What ``stack``'s last ``up`` exported, as its reference to itself reads it (none:
        a stack never brought up)."""
        self.registering = threading.local()
        """``identity``: name the resource this thread registers was first deployed with."""
        self.provider_regions: dict[str, str] = {}
        """Region of each explicit AWS provider, by its id (CloudFront's us-east-1 one)."""
        self.invokes: list[tuple[str, dict[str, Any]]] = []
        """Every data source the program read: its token and arguments."""

    def _arn(self, service: str, resource: str, region: str | None = None) -> str:
        return f"arn:aws:{service}:{region or self.region}:{ACCOUNT}:{resource}"

    def _region_of(self, args: mocks.MockResourceArgs) -> str:
        """Where a resource lives: its own ``region`` input, its provider's, or the stack's."""
        provider_id = (args.provider or "").rsplit("::", 1)[-1]
        region = args.inputs.get("region") or self.provider_regions.get(provider_id)
        return str(region) if region and not _unknown(region) else self.region

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == STACK_REFERENCE:
            # The engine reads the other stack's state, in a preview as in an update.
            name = str(args.inputs.get("name", args.name))
            own = name.rsplit("/", 1)[-1] == self.stack
            outputs = self.deployed if own else stack_outputs(name)
            return name, {"name": name, "outputs": outputs, "secretOutputNames": []}
        if not self.preview:
            return self._created(args)
        # A first preview: the provider knows the inputs it was given (and the names it gives
        # in its check, as pulumi-kubernetes does); ids and every computed output are unknown.
        inputs = dict(args.inputs)
        args.inputs = {k: "" if _unknown(v) else v for k, v in inputs.items()}
        _, state = self._created(args)
        known = {
            k: v
            for k, v in state.items()
            if k in inputs and not _unknown(inputs[k]) and v == inputs[k]
        }
        if args.typ.startswith("kubernetes:") and "metadata" in state:
            known["metadata"] = state["metadata"]
        return "", {k: known.get(k, rpc.UNKNOWN) for k in state}

    def _created(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        # The name the resource was first deployed with: its id and computed values keep it.
        name, typ = getattr(self.registering, "identity", "") or args.name, args.typ
        inputs = dict(args.inputs)
        region = self._region_of(args)
        rid = f"{name}-{_fake_id(typ + name)}"
        service = typ.split(":")[1].split("/")[0] if typ.count(":") >= 2 else "mock"
        state: dict[str, Any] = {
            **inputs,
            "arn": self._arn(service, f"{typ.rsplit(':', 1)[-1].lower()}/{rid}", region),
            "id": rid,
            # name_prefix: the provider appends a unique 26-character suffix.
            "name": inputs.get("name")
            or (
                inputs["namePrefix"] + _fake_id(name)[:26].ljust(26, "0")
                if "namePrefix" in inputs
                else rid
            ),
            "tagsAll": inputs.get("tags", {}),
        }
        host = f"{rid}.{region}"
        bucket = inputs.get("bucket", rid)
        bucket_state = {
            "bucket": bucket,
            "arn": f"arn:aws:s3:::{bucket}",
            "bucketRegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com",
        }
        ecr_host = f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com"
        k8s_load_balancer = {
            "loadBalancer": {"ingress": [{"hostname": f"k8s-{rid}.elb.{region}.amazonaws.com"}]}
        }
        # A name, a prefix plus the provider's random suffix, or the autoname.
        log_group_name = inputs.get("name") or (
            f"{inputs['namePrefix']}{_fake_id(name)[:8]}" if inputs.get("namePrefix") else rid
        )
        computed: dict[str, dict[str, Any]] = {
            "aws:ec2/vpc:Vpc": {"defaultSecurityGroupId": f"sg-{_fake_id(name)}"},
            "aws:iam/role:Role": {
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{inputs.get('name', rid)}",
                "name": inputs.get("name", rid),
            },
            "aws:iam/policy:Policy": {"arn": f"arn:aws:iam::{ACCOUNT}:policy/{rid}"},
            "aws:kms/key:Key": {"keyId": _fake_id(name)},
            "aws:cloudwatch/logGroup:LogGroup": {
                "arn": self._arn("logs", f"log-group:{log_group_name}", region),
                "name": log_group_name,
            },
            "aws:ecr/repository:Repository": {
                "repositoryUrl": f"{ecr_host}/{inputs.get('name', rid)}"
            },
            "aws:s3/bucket:Bucket": bucket_state,
            "aws:s3/bucketV2:BucketV2": bucket_state,
            "aws:cloudfront/distribution:Distribution": {
                # Each stack's distribution has a name of its own (tier 4 routes to several).
                "domainName": f"d{_fake_id(region + name)[:13]}.cloudfront.net",
                "hostedZoneId": "Z2FDTNDATAQYW2",
                # CloudFront is global: its ARNs carry no region.
                "arn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/{rid}",
            },
            "aws:lb/loadBalancer:LoadBalancer": {
                "dnsName": f"{rid}.elb.{region}.amazonaws.com",
                "arnSuffix": f"app/{name}/{_fake_id(name)}",
                "zoneId": "Z35SXDOTRQ7X7K",
            },
            **self._tls(name, inputs),
            "aws:lb/targetGroup:TargetGroup": {"arnSuffix": f"targetgroup/{name}/{_fake_id(name)}"},
            "aws:sagemaker/endpoint:Endpoint": {
                "name": inputs.get("name", rid),
                # SageMaker lower-cases the endpoint name in its ARN.
                "arn": self._arn(
                    "sagemaker", f"endpoint/{inputs.get('name', rid).lower()}", region
                ),
            },
            "aws:route53/zone:Zone": {"zoneId": f"Z{_fake_id(name).upper()}"},
            "aws:route53/record:Record": {"fqdn": inputs.get("name", rid)},
            "aws:route53/keySigningKey:KeySigningKey": {
                "dsRecord": f"40335 13 2 {hashlib.sha256(name.encode()).hexdigest().upper()}"
            },
            "aws:secretsmanager/secret:Secret": {
                "arn": self._arn("secretsmanager", f"secret:{rid}", region)
            },
            "random:index/randomPassword:RandomPassword": {"result": _password(name, inputs)},
            "kubernetes:core/v1:Service": {"status": k8s_load_balancer},
            "kubernetes:networking.k8s.io/v1:Ingress": {"status": k8s_load_balancer},
        }
        computed.update(self._monitoring(name, rid) | self._queue(inputs.get("name", rid)))
        computed.update(self._data_stores(name, rid, host, inputs, region))
        computed.update(self._cluster(name, inputs, region))
        if typ == "pulumi:providers:aws" and inputs.get("region"):
            self.provider_regions[rid] = str(inputs["region"])
        state.update(computed.get(typ, {}))
        state.update(_kubernetes_name(typ, name, inputs))
        return rid, state

    def _data_stores(
        self, name: str, rid: str, host: str, inputs: dict[str, Any], region: str
    ) -> dict[str, dict[str, Any]]:
        """Computed outputs of the database and the cache, by type."""
        return {
            "aws:rds/instance:Instance": {
                "address": f"{host}.rds.amazonaws.com",
                "endpoint": f"{host}.rds.amazonaws.com:5432",
                "port": 5432,
                "identifier": inputs.get("identifier", rid),
                "resourceId": f"db-{_fake_id(name).upper()}",
                "masterUserSecrets": [
                    {
                        "secretArn": self._arn("secretsmanager", f"secret:rds!{rid}", region),
                        "secretStatus": "active",
                        "kmsKeyId": self._arn("kms", "key/mock"),
                    }
                ],
            },
            "aws:rds/proxy:Proxy": {"endpoint": f"{rid}.proxy-{host}.rds.amazonaws.com"},
            "aws:rds/proxyEndpoint:ProxyEndpoint": {
                "endpoint": f"{rid}.endpoint.proxy-{host}.rds.amazonaws.com"
            },
            "aws:elasticache/replicationGroup:ReplicationGroup": {
                "primaryEndpointAddress": f"master.{host}.cache.amazonaws.com",
                "readerEndpointAddress": f"replica.{host}.cache.amazonaws.com",
                "port": 6379,
            },
        }

    def _cluster(self, name: str, inputs: dict[str, Any], region: str) -> dict[str, dict[str, Any]]:
        """Computed outputs of the EKS cluster, its node groups and its OIDC provider."""
        return {
            # The first version of a new template; the program's node groups read it.
            "aws:ec2/launchTemplate:LaunchTemplate": {"latestVersion": 1, "defaultVersion": 1},
            "aws:eks/cluster:Cluster": {
                "endpoint": f"https://{_fake_id(name).upper()}.gr7.{region}.eks.amazonaws.com",
                "certificateAuthority": {
                    "data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1PQ0sKLS0tLS1FTkQ="
                },
                "identities": [
                    {
                        "oidcs": [
                            {
                                "issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{_fake_id(name).upper()}"
                            }
                        ]
                    }
                ],
                "version": inputs.get("version", "1.33"),
                "clusterSecurityGroupId": f"sg-{_fake_id(name + 'cluster')}",
                "vpcConfig": {
                    **inputs.get("vpcConfig", {}),
                    "clusterSecurityGroupId": f"sg-{_fake_id(name + 'cluster')}",
                },
            },
            "aws:eks/nodeGroup:NodeGroup": {"status": "ACTIVE"},
            "aws:iam/openIdConnectProvider:OpenIdConnectProvider": {
                "arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{inputs.get('url', '').removeprefix('https://')}"
            },
        }

    def _monitoring(self, name: str, rid: str) -> dict[str, dict[str, Any]]:
        """Computed outputs of the Prometheus and Grafana resources, by type."""
        return {
            "aws:amp/workspace:Workspace": {
                # Amazon Managed Service for Prometheus signs its ARNs "aps".
                "arn": self._arn("aps", f"workspace/{rid}"),
                "prometheusEndpoint": f"https://aps-workspaces.{self.region}.amazonaws.com"
                f"/workspaces/{rid}/",
            },
            "aws:grafana/workspace:Workspace": {
                "endpoint": f"g-{_fake_id(name)[:10]}.grafana-workspace.{self.region}.amazonaws.com"
            },
            "aws:grafana/workspaceServiceAccount:WorkspaceServiceAccount": {
                "serviceAccountId": str(int(_fake_id(name)[:6], 16))
            },
            "aws:grafana/workspaceServiceAccountToken:WorkspaceServiceAccountToken": {
                "key": "glsa_mock_" + _fake_id(name)
            },
            "time:index/rotating:Rotating": {"unix": 1_764_633_600},
            # The scraper's service-linked role, which EKS must map to a cluster user.
            "aws:amp/scraper:Scraper": {
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/"
                f"scraper.aps.amazonaws.com/AWSServiceRoleForAmazonPrometheusScraper_{rid[-15:]}"
            },
        }

    def _queue(self, queue_name: str) -> dict[str, dict[str, Any]]:
        """An SQS queue's ARN and URL, both from its name."""
        return {
            "aws:sqs/queue:Queue": {
                "arn": self._arn("sqs", queue_name),
                "url": f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT}/{queue_name}",
            }
        }

    @staticmethod
    def _tls(name: str, inputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """ACM's answer to a DNS-validated request: the CNAME to publish, then the ARN."""
        domain = inputs.get("domainName", "")
        return {
            "aws:acm/certificate:Certificate": {
                "domainValidationOptions": [
                    {
                        "domainName": domain,
                        "resourceRecordName": f"_{_fake_id(name)}.{domain}.",
                        "resourceRecordType": "CNAME",
                        "resourceRecordValue": f"_{_fake_id(name[::-1])}.acm-validations.aws.",
                    }
                ],
                "status": "PENDING_VALIDATION",
            },
            "aws:acm/certificateValidation:CertificateValidation": {
                "certificateArn": inputs.get("certificateArn", ""),
            },
        }

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        token, a = args.token, dict(args.args)
        self.invokes.append((token, a))
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return availability_zones(str(a.get("region") or self.region), a), []
        if token == "aws:route53/getZone:getZone":
            return hosted_zone(a)
        results: dict[str, dict[str, Any]] = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT,
                "arn": CALLER_ARN,
                "userId": "MOCK",
            },
            "aws:iam/getSessionContext:getSessionContext": {
                "arn": a.get("arn"),
                "issuerArn": session_issuer(str(a.get("arn") or "")),
            },
            "aws:ssoadmin/getInstances:getInstances": {
                "arns": ["arn:aws:sso:::instance/ssoins-72230f4f7a4b6bd5"],
                "identityStoreIds": ["d-9067c1b0a2"],
            },
            "aws:index/getRegion:getRegion": {
                "region": self.region,
                "name": self.region,
                "id": self.region,
            },
            "aws:index/getPartition:getPartition": {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
            },
            "aws:iam/getPolicyDocument:getPolicyDocument": {"json": json.dumps(a)},
            "aws:eks/getClusterAuth:getClusterAuth": {
                "token": "k8s-aws-v1.mock",
                "id": a.get("name", ""),
            },
            "aws:eks/getAddonVersion:getAddonVersion": {
                "version": "v0.0.0-eksbuild.1",
                "addonName": a.get("addonName"),
            },
            "aws:cloudfront/getCachePolicy:getCachePolicy": {"id": f"cache-{a.get('name', '')}"},
            "aws:cloudfront/getOriginRequestPolicy:getOriginRequestPolicy": {
                "id": f"orp-{a.get('name', '')}"
            },
            "aws:ec2/getManagedPrefixList:getManagedPrefixList": {
                "id": "pl-3b927c52",
                "name": a.get("name"),
            },
            "aws:elb/getServiceAccount:getServiceAccount": {
                "arn": "arn:aws:iam::127311923021:root"
            },
        }
        return results.get(token, {}), []
