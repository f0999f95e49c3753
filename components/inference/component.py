"""The SageMaker endpoint serving the app image's ``/ping`` and ``/invocations`` contract.

Model (the app image from ECR + the promoted model archive from the models bucket) ->
endpoint configuration (one production variant, data capture, KMS) -> endpoint with
blue/green canary deployments that roll back on the latency and 5xx alarms, and
target-tracking autoscaling on invocations per instance.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config.capacity import SAGEMAKER_INSTANCE_VCPUS, sagemaker_max_rps_per_instance
from components.config.tier import AlarmThresholds, InferenceSize
from components.inference.settings import (
    BAKE_SECONDS,
    CANARY_PERCENT,
    CONTAINER_PORT,
    DATA_CAPTURE_PREFIX,
    ENDPOINT_NAME_PATTERN,
    MAX_NAME_PREFIX,
    MODEL_PREFIX,
    SCALE_IN_COOLDOWN_SECONDS,
    SCALE_OUT_COOLDOWN_SECONDS,
    VARIANT_NAME,
    execution_policy,
    invocations_per_instance_target,
    model_data_url,
    model_latency_threshold_us,
    scalable_resource_id,
)
from components.shared.alarms import Threshold, expression_alarm, metric_alarm
from components.shared.contract import BucketRef, NetworkRef, SageMakerEndpoint, owned
from components.shared.iam import service_trust_policy
from components.shared.log_groups import encrypted_logs
from components.shared.stack import StackContext


@dataclass
class InferenceArgs:
    stack: StackContext
    """The stack: tags (the data capture is student data: ``ferpa``), the alarm topic, and the
    retention of the endpoint's log group."""
    network: NetworkRef
    """The VPC: the endpoint's ENIs take its private subnets and the app tier's group (the
    data stores admit it)."""
    endpoint_name: str
    """Name of the endpoint (fixed: its alarms and scaling target are named after it)."""
    image_uri: pulumi.Input[str]
    """``<repository_url>:<tag>`` of the app image."""
    repository_arn: pulumi.Input[str]
    """ECR repository the image is pulled from."""
    models_bucket: BucketRef
    """Models bucket: the archive at ``sagemaker/model.tar.gz``, capture under
    ``data-capture/``; its key also encrypts the endpoint's storage volumes."""
    size: InferenceSize
    """The tier's inference slice: instance type and count, data capture, throughput."""
    alarms: AlarmThresholds
    """The tier's alarm thresholds: model latency and error rate (they roll deployments back)."""


class Inference(pulumi.ComponentResource):
    endpoint_name: pulumi.Output[str]
    """Name of the SageMaker endpoint (``InvokeEndpoint`` target, metrics dimension)."""
    endpoint_arn: pulumi.Output[str]
    """ARN of the endpoint (for the API's ``sagemaker:InvokeEndpoint`` permission)."""
    variant_name: pulumi.Output[str]
    """Name of the production variant (metrics dimension, scaling target)."""
    rollout: SageMakerEndpoint
    """What the API needs to invoke it and the trainer to roll it to new models."""

    def __init__(self, name: str, args: InferenceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:inference:Inference", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        endpoint_name = args.endpoint_name
        fits = len(endpoint_name) + 1 <= MAX_NAME_PREFIX
        if not ENDPOINT_NAME_PATTERN.match(endpoint_name) or not fits:
            raise ValueError(
                f"endpoint_name={endpoint_name!r}: letters, digits and hyphens, at most "
                f"{MAX_NAME_PREFIX - 1} characters"
            )
        size = args.size
        if not 1 <= size.min_instances <= size.max_instances:
            raise ValueError(
                f"min_instances={size.min_instances}, max_instances={size.max_instances}: "
                "need 1 <= min <= max"
            )

        role, role_policy = self._role(name, args, child)
        # Created before the endpoint so its retention applies (SageMaker would create it
        # without one).
        log_group_name = f"/aws/sagemaker/Endpoints/{endpoint_name}"
        log_group = encrypted_logs(
            f"{name}-logs-key",
            log_group_prefixes=[log_group_name],
            description=f"Encrypts the log group of {endpoint_name}",
            retention_days=args.stack.log_retention_days,
            tags=args.stack.tags,
            opts=child,
        ).group(f"{name}-logs", name=log_group_name)
        config = self._model_and_config(name, args, role, role_policy, child)
        rollback_alarms = self._alarms(name, endpoint_name, args.alarms, args.stack)
        endpoint = self._endpoint(name, args, config, rollback_alarms, log_group)
        self._autoscaling(name, args.size, args.stack.tags, endpoint)

        self.endpoint_name = endpoint.name
        self.endpoint_arn = endpoint.arn
        self.variant_name = pulumi.Output.from_input(VARIANT_NAME)
        self.rollout = SageMakerEndpoint(
            name=endpoint_name,
            arn=endpoint.arn,
            base_config_name=config.name,
            execution_role_arn=role.arn,
            archive_url=pulumi.Output.from_input(args.models_bucket.name).apply(
                lambda bucket: f"s3://{bucket}/{MODEL_PREFIX}"
            ),
        )
        self.register_outputs(
            {
                "endpoint_name": self.endpoint_name,
                "endpoint_arn": self.endpoint_arn,
                "variant_name": self.variant_name,
                "base_config_name": config.name,
            }
        )

    def _role(
        self, name: str, args: InferenceArgs, child: pulumi.ResourceOptions
    ) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        """The endpoint's execution role and its least-privilege inline policy."""
        endpoint_name = args.endpoint_name
        identity = aws.get_caller_identity_output()
        region = aws.get_region_output()
        role = aws.iam.Role(
            f"{name}-role",
            description=f"SageMaker endpoint {endpoint_name}",
            assume_role_policy=service_trust_policy("sagemaker.amazonaws.com"),
            tags=args.stack.tags,
            opts=child,
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-role-policy",
            role=role.id,
            policy=pulumi.Output.all(
                args.repository_arn,
                args.models_bucket.arn,
                args.models_bucket.kms_key_arn,
                region.region,
                identity.account_id,
            ).apply(
                lambda v: execution_policy(
                    repository_arn=v[0],
                    bucket_arn=v[1],
                    kms_key_arn=v[2],
                    region=v[3],
                    account_id=v[4],
                    endpoint_name=endpoint_name,
                )
            ),
            opts=owned(self, was=role),
        )
        return role, role_policy

    def _model_and_config(
        self,
        name: str,
        args: InferenceArgs,
        role: aws.iam.Role,
        role_policy: aws.iam.RolePolicy,
        child: pulumi.ResourceOptions,
    ) -> aws.sagemaker.EndpointConfiguration:
        """The model (image + archive) and the endpoint configuration serving it."""
        tags = args.stack.tags
        model = aws.sagemaker.Model(
            f"{name}-model",
            execution_role_arn=role.arn,
            primary_container={
                "image": args.image_uri,
                "model_data_url": pulumi.Output.from_input(args.models_bucket.name).apply(
                    model_data_url
                ),
                # SageMaker sends /ping and /invocations to port 8080 on every interface.
                # One API worker per vCPU: the container is the instance's only tenant. The
                # inference mode scores from the archive alone: no database login, no keys.
                "environment": {
                    "ENVIRONMENT": "production",
                    "SERVE_MODE": "inference",
                    "HOST": "0.0.0.0",
                    "PORT": CONTAINER_PORT,
                    "WORKERS": str(SAGEMAKER_INSTANCE_VCPUS[args.size.instance_type]),
                },
            },
            vpc_config={
                "subnets": list(args.network.private_subnet_ids),
                "security_group_ids": [args.network.app_security_group_id],
            },
            tags=tags,
            # Kept in AWS when replaced: the endpoint may still serve it until the trainer's
            # next rollout copies the new one (the endpoint's configuration is not Pulumi's).
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[role_policy], retain_on_delete=True
            ),
        )

        # Every field of an endpoint configuration forces a new one; the prefix gives each
        # a distinct name, so Pulumi can create the new one before deleting the old.
        return aws.sagemaker.EndpointConfiguration(
            f"{name}-config",
            name_prefix=f"{args.endpoint_name}-",
            kms_key_arn=args.models_bucket.kms_key_arn,
            production_variants=[
                {
                    "variant_name": VARIANT_NAME,
                    "model_name": model.name,
                    "instance_type": args.size.instance_type,
                    "initial_instance_count": args.size.min_instances,
                    "initial_variant_weight": 1.0,
                }
            ],
            data_capture_config={
                "enable_capture": True,
                "initial_sampling_percentage": args.size.data_capture_percent,
                "destination_s3_uri": pulumi.Output.from_input(args.models_bucket.name).apply(
                    lambda bucket: f"s3://{bucket}/{DATA_CAPTURE_PREFIX}"
                ),
                "kms_key_id": args.models_bucket.kms_key_arn,
                "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                "capture_content_type_header": {"json_content_types": ["application/json"]},
            },
            tags=tags,
            # Kept in AWS when replaced, like the model: the endpoint may still serve it.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )

    def _alarms(
        self, name: str, endpoint_name: str, alarms: AlarmThresholds, stack: StackContext
    ) -> list[aws.cloudwatch.MetricAlarm]:
        """The model latency and 5xx rate alarms that roll deployments back."""
        # The alarms watch the endpoint by its (fixed) name, so they exist before it and
        # can guard its very first blue/green update.
        dimensions = {"EndpointName": endpoint_name, "VariantName": VARIANT_NAME}
        latency_alarm = metric_alarm(
            f"{name}-model-latency",
            description=(
                f"SageMaker {endpoint_name} p95 ModelLatency above "
                f"{alarms.model_latency_p95_ms} ms, the prediction budget within the API's "
                f"{alarms.latency_p95_ms} ms p95; rolls back deployments"
            ),
            namespace="AWS/SageMaker",
            metric="ModelLatency",
            dimensions=dimensions,
            statistic="p95",
            threshold=Threshold(
                value=model_latency_threshold_us(alarms.model_latency_p95_ms),
                missing_data="notBreaching",
            ),
            topic_arn=stack.alarm_topic,
            tags=stack.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        errors_alarm = expression_alarm(
            f"{name}-5xx-rate",
            description=(
                f"SageMaker {endpoint_name} invocations failing with 5xx above "
                f"{alarms.error_rate_percent}%; rolls back deployments"
            ),
            expression="IF(invocations > 0, 100 * errors / invocations, 0)",
            metrics={
                "errors": ("AWS/SageMaker", "Invocation5XXErrors", dimensions, "Sum"),
                "invocations": ("AWS/SageMaker", "Invocations", dimensions, "Sum"),
            },
            threshold=Threshold(value=alarms.error_rate_percent, missing_data="notBreaching"),
            topic_arn=stack.alarm_topic,
            tags=stack.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return [latency_alarm, errors_alarm]

    def _endpoint(
        self,
        name: str,
        args: InferenceArgs,
        config: aws.sagemaker.EndpointConfiguration,
        rollback_alarms: list[aws.cloudwatch.MetricAlarm],
        log_group: aws.cloudwatch.LogGroup,
    ) -> aws.sagemaker.Endpoint:
        """The endpoint, with canary blue/green updates rolled back on ``rollback_alarms``."""
        return aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=args.endpoint_name,
            endpoint_config_name=config.name,
            deployment_config={
                "blue_green_update_policy": {
                    "traffic_routing_configuration": {
                        "type": "CANARY",
                        "canary_size": {"type": "CAPACITY_PERCENT", "value": CANARY_PERCENT},
                        "wait_interval_in_seconds": BAKE_SECONDS,
                    },
                    "termination_wait_in_seconds": BAKE_SECONDS,
                    "maximum_execution_timeout_in_seconds": 4 * BAKE_SECONDS,
                },
                "auto_rollback_configuration": {
                    "alarms": [{"alarm_name": alarm.name} for alarm in rollback_alarms]
                },
            },
            tags=args.stack.tags,
            # The trainer rolls the endpoint to each new generation's configuration (copied
            # from this one); a `pulumi up` that changes this one reaches the endpoint with
            # the next rollout (`python -m app rollout-sagemaker`), not by reverting it.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[log_group], ignore_changes=["endpointConfigName"]
            ),
        )

    def _autoscaling(
        self,
        name: str,
        size: InferenceSize,
        tags: dict[str, str],
        endpoint: aws.sagemaker.Endpoint,
    ) -> None:
        """Target tracking on invocations per instance, between min and max instances."""
        # Changing the variant's instance type fails while it is a scaling target (AWS:
        # deregister, update, register again); a model or image change is allowed.
        target = aws.appautoscaling.Target(
            f"{name}-scaling-target",
            service_namespace="sagemaker",
            resource_id=endpoint.name.apply(scalable_resource_id),
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=size.min_instances,
            max_capacity=size.max_instances,
            tags=tags,
            opts=owned(self, was=endpoint),
        )
        aws.appautoscaling.Policy(
            f"{name}-scaling-policy",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            target_tracking_scaling_policy_configuration={
                "predefined_metric_specification": {
                    "predefined_metric_type": "SageMakerVariantInvocationsPerInstance"
                },
                "target_value": invocations_per_instance_target(
                    sagemaker_max_rps_per_instance(size)
                ),
                "scale_in_cooldown": SCALE_IN_COOLDOWN_SECONDS,
                "scale_out_cooldown": SCALE_OUT_COOLDOWN_SECONDS,
            },
            opts=owned(self, was=target),
        )
