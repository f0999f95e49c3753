"""The ECR repository of the app image (API, trainer and SageMaker serving share one image)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.shared.contract import owned
from components.shared.iam import service_trust_policy
from components.shared.kms import account_key_policy, customer_key
from components.shared.stack import StackContext

# Tagged images kept: a release per school day for six weeks, so any release the API,
# the trainer or the SageMaker endpoint may still run (or roll back to) stays pullable.
KEEP_IMAGES = 30
# Untagged layers come from failed or superseded pushes only.
UNTAGGED_EXPIRY_DAYS = 7


def lifecycle_policy(keep_images: int = KEEP_IMAGES) -> str:
    """Expire untagged images after a week and keep the newest ``keep_images`` images.

    ECR requires the ``tagStatus: any`` rule to have the highest ``rulePriority``.
    """
    if keep_images < 1:
        raise ValueError(f"keep_images={keep_images}: must be at least 1")
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"Expire untagged images after {UNTAGGED_EXPIRY_DAYS} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": UNTAGGED_EXPIRY_DAYS,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"Keep the last {keep_images} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": keep_images,
                    },
                    "action": {"type": "expire"},
                },
            ]
        }
    )


def replica_creation_policy(prefix: str, regions: tuple[str, ...], account_id: str) -> str:
    """What ECR may do with the role of the replicas' creation template, as AWS documents it
    for templates with resource tags or KMS encryption (ECR User Guide, "Repository creation
    template IAM role"): create, tag and fill the replicas under ``prefix`` in ``regions``,
    and have KMS grant ECR the region's key for them. The AWS-managed key's ARN is not known
    in advance: KMS is limited to requests ECR makes in those regions."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "CreateReplicas",
                    "Effect": "Allow",
                    "Action": ["ecr:CreateRepository", "ecr:ReplicateImage", "ecr:TagResource"],
                    "Resource": [
                        f"arn:aws:ecr:{region}:{account_id}:repository/{prefix}/*"
                        for region in regions
                    ],
                },
                {
                    "Sid": "EncryptReplicas",
                    "Effect": "Allow",
                    "Action": ["kms:CreateGrant", "kms:RetireGrant", "kms:DescribeKey"],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {
                            "kms:ViaService": [f"ecr.{region}.amazonaws.com" for region in regions]
                        }
                    },
                },
            ],
        }
    )


@dataclass(frozen=True)
class ImageRepository:
    """Where a stack pulls the app image from."""

    url: pulumi.Output[str]
    arn: pulumi.Output[str]


def replica_repository(repository_name: pulumi.Input[str], region: str) -> ImageRepository:
    """The copy ECR replication keeps of a repository in ``region`` (same name, same
    account): tier 4's regional stacks pull the global registry's images from it."""
    account = aws.get_caller_identity_output().account_id
    parts = pulumi.Output.all(account, repository_name)
    return ImageRepository(
        url=parts.apply(lambda v: f"{v[0]}.dkr.ecr.{region}.amazonaws.com/{v[1]}"),
        arn=parts.apply(lambda v: f"arn:aws:ecr:{region}:{v[0]}:repository/{v[1]}"),
    )


@dataclass
class RegistryArgs:
    stack: StackContext
    """The stack: tags, and ``protect`` on the repository and its key (False on dev only)."""
    repository_name: str
    """ECR repository name, e.g. ``student-success/tier3/app``."""
    keep_images: int = KEEP_IMAGES
    """Images kept by the lifecycle policy."""
    replica_regions: tuple[str, ...] = ()
    """Regions every pushed image is replicated to (tier 4's global registry): each regional
    stack pulls from the copy in its own region."""


class Registry(pulumi.ComponentResource):
    repository_url: pulumi.Output[str]
    """``<account>.dkr.ecr.<region>.amazonaws.com/<name>``; images are ``<url>:<tag>``."""
    repository_arn: pulumi.Output[str]
    """ARN of the repository."""
    repository_name: pulumi.Output[str]
    """Name of the repository."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:registry:Registry", name, None, opts)
        protect, tags = args.stack.protect, args.stack.tags
        stateful = pulumi.ResourceOptions(parent=self, protect=protect)
        key = customer_key(
            f"{name}-key",
            description=f"Encrypts the {args.repository_name} image repository",
            policy=account_key_policy(),
            tags=tags,
            opts=stateful,
        )
        repository = aws.ecr.Repository(
            f"{name}-repository",
            name=args.repository_name,
            # A tag names one build forever: deployments and rollbacks are reproducible.
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": key.arn}],
            # Dev may be destroyed with its images; elsewhere protect stops it first.
            force_delete=not protect,
            tags=tags,
            opts=stateful,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository.name,
            policy=lifecycle_policy(args.keep_images),
            opts=owned(self, was=repository, protect=protect),
        )
        if args.replica_regions:
            self._replicate(
                name, args.repository_name, args.replica_regions, args.keep_images, tags, repository
            )
        self.repository_url = repository.repository_url
        self.repository_arn = repository.arn
        self.repository_name = repository.name
        self.register_outputs(
            {
                "repository_url": self.repository_url,
                "repository_arn": self.repository_arn,
                "repository_name": self.repository_name,
            }
        )

    def _replicate(
        self,
        name: str,
        repository_name: str,
        regions: tuple[str, ...],
        keep_images: int,
        tags: dict[str, str],
        repository: aws.ecr.Repository,
    ) -> None:
        """Replication to ``regions``, and the settings ECR gives the copies it creates there
        (``keep_images`` kept, ``tags``)."""
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        # The replication configuration is the registry's (one per account and region):
        # this stack owns it, so the account's other repositories are not replicated.
        aws.ecr.ReplicationConfiguration(
            f"{name}-replication",
            replication_configuration={
                "rules": [
                    {
                        "destinations": [
                            {"region": region, "registry_id": account.account_id}
                            for region in regions
                        ],
                        "repository_filters": [
                            {"filter": repository_name, "filter_type": "PREFIX_MATCH"}
                        ],
                    }
                ]
            },
            opts=owned(self, depends_on=[repository]),
        )
        # ECR creates the copies with this role: a template that tags them or encrypts them
        # with KMS must name one (pulumi-aws RepositoryCreationTemplate.custom_role_arn).
        prefix = repository_name.rsplit("/", 1)[0]
        role = aws.iam.Role(
            f"{name}-replica-creation-role",
            assume_role_policy=service_trust_policy("ecr.amazonaws.com"),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-replica-creation-policy",
            role=role.id,
            policy=account.account_id.apply(
                lambda account_id: replica_creation_policy(prefix, regions, account_id)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The copies ECR creates in each region (a template acts in its own region):
        # immutable tags, that region's AWS-managed key (a customer key is regional), the same
        # lifecycle.
        for region in regions:
            aws.ecr.RepositoryCreationTemplate(
                f"{name}-replica-template-{region}",
                region=region,
                prefix=prefix,
                applied_fors=["REPLICATION"],
                custom_role_arn=role.arn,
                description=f"Replicas of {repository_name}",
                image_tag_mutability="IMMUTABLE",
                encryption_configurations=[{"encryption_type": "KMS"}],
                lifecycle_policy=lifecycle_policy(keep_images),
                resource_tags=tags,
                opts=owned(self, depends_on=[role_policy]),
            )
