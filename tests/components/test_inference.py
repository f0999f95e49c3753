"""Inference: the SageMaker model, endpoint, autoscaling and rollback alarms, and who may
invoke it."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from app.core.settings import Settings
from components import inference
from components.config.capacity import sagemaker_max_rps_per_instance
from components.config.catalog import TIERS
from tests.shared import (
    METRIC_ALARM,
    ROLE_POLICY,
    SAGEMAKER_ENDPOINT,
    SAGEMAKER_ENDPOINT_CONFIG,
    SAGEMAKER_MODEL,
    SCALING_POLICY,
    SCALING_TARGET,
    StackRunner,
)

# -- pure functions ------------------------------------------------------------------------


def test_invocations_target_follows_aws_guidance() -> None:
    # max RPS x 0.5 safety x 60 s = invocations per minute per instance.
    assert inference.invocations_per_instance_target(20) == 600.0
    assert inference.invocations_per_instance_target(7) == 210.0
    assert inference.invocations_per_instance_target(0.5) == 15.0
    with pytest.raises(ValueError):
        inference.invocations_per_instance_target(0)


def test_an_instance_is_planned_at_the_capacity_models_peak_unless_measured() -> None:
    """A load test of the endpoint replaces the model; without one, an ml.m5.large serves
    2 vCPUs / 460 us per request at 60 %, not the in-process benchmark's 2,000/s per vCPU."""
    size = TIERS["tier3"].inference
    assert size.instance_type == "ml.m5.large"
    assert sagemaker_max_rps_per_instance(size) == pytest.approx(2 * 0.6 / 460e-6)
    assert sagemaker_max_rps_per_instance(size) < 2 * 2_000
    assert sagemaker_max_rps_per_instance(replace(size, measured_max_rps=900)) == 900.0
    assert inference.invocations_per_instance_target(900) == 27_000.0


def test_model_latency_threshold_is_in_microseconds() -> None:
    assert inference.model_latency_threshold_us(100) == 100_000.0
    assert inference.model_latency_threshold_us(TIERS["tier3"].alarms.model_latency_p95_ms) == (
        TIERS["tier3"].alarms.model_latency_p95_ms * 1000
    )
    with pytest.raises(ValueError):
        inference.model_latency_threshold_us(-1)


def test_scaling_resource_id_and_model_url() -> None:
    assert inference.scalable_resource_id("ssp-tier3") == "endpoint/ssp-tier3/variant/primary"
    assert inference.model_data_url("b") == "s3://b/sagemaker/model.tar.gz"


BUCKET_ARN = "arn:aws:s3:::models-abc"


def test_execution_policy_is_least_privilege() -> None:
    doc = json.loads(
        inference.execution_policy(
            repository_arn="arn:aws:ecr:us-east-1:1:repository/app",
            bucket_arn=BUCKET_ARN,
            kms_key_arn="arn:aws:kms:us-east-1:1:key/k",
            region="us-east-1",
            account_id="1",
            endpoint_name="ep",
        )
    )
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["PullAppImage"]["Resource"] == "arn:aws:ecr:us-east-1:1:repository/app"
    assert by_sid["EcrLogin"]["Action"] == "ecr:GetAuthorizationToken"
    assert by_sid["ReadModelArchive"]["Resource"] == f"{BUCKET_ARN}/sagemaker/*"
    assert by_sid["WriteDataCapture"]["Resource"] == f"{BUCKET_ARN}/data-capture/*"
    assert by_sid["UseBucketKey"]["Resource"] == "arn:aws:kms:us-east-1:1:key/k"
    assert all(
        r.startswith("arn:aws:logs:us-east-1:1:log-group:/aws/sagemaker/Endpoints/ep")
        for r in by_sid["EndpointLogs"]["Resource"]
    )
    wildcard = {s["Sid"] for s in doc["Statement"] if s["Resource"] == "*"}
    assert wildcard == {"EcrLogin", "VpcNetworkInterfaces"}
    assert not any(a.endswith("*") for s in doc["Statement"] for a in _actions(s))


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


# -- the whole program, per stack ----------------------------------------------------------


def _alarm_metrics(alarm: Any) -> set[str]:
    """Metric names an alarm watches, directly or through metric math."""
    names = {alarm.inputs.get("metricName")}
    for query in alarm.inputs.get("metricQueries") or []:
        names.add((query.get("metric") or {}).get("metricName"))
    return names - {None}


def test_tier3_sagemaker_endpoint_scaling_and_rollback(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    tier = TIERS["tier3"]
    model = run.one(SAGEMAKER_MODEL)
    image = model.get("primaryContainer.image")
    assert re.fullmatch(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/.+:0\.1\.0", image), image
    assert model.get("primaryContainer.modelDataUrl").endswith("/sagemaker/model.tar.gz")
    assert model.get("vpcConfig.subnets") and model.get("vpcConfig.securityGroupIds")
    environment = model.get("primaryContainer.environment")
    # One API worker per vCPU of the instance (ml.m5.large: 2).
    assert environment["WORKERS"] == "2"
    # Scores from the archive alone: no database to reach, so no embedded one is started.
    assert environment["SERVE_MODE"] == "inference" and "DATABASE_URL" not in environment
    assert set(environment) <= {name.upper() for name in Settings.model_fields}
    Settings.model_validate({k.lower(): v for k, v in environment.items()})  # the app accepts it

    config = run.one(SAGEMAKER_ENDPOINT_CONFIG)
    assert config.inputs["namePrefix"].endswith("-") and "name" not in config.inputs
    variant = config.inputs["productionVariants"][0]
    assert variant["instanceType"] == tier.inference.instance_type
    assert variant["initialInstanceCount"] == tier.inference.min_instances
    capture = config.inputs["dataCaptureConfig"]
    assert capture["initialSamplingPercentage"] == tier.inference.data_capture_percent
    assert capture["destinationS3Uri"].endswith("/data-capture")
    assert config.inputs["kmsKeyArn"].startswith("arn:aws:kms:")

    endpoint = run.one(SAGEMAKER_ENDPOINT)
    routing = endpoint.get("deploymentConfig.blueGreenUpdatePolicy.trafficRoutingConfiguration")
    assert routing["type"] == "CANARY" and routing["canarySize"]["value"] == 10
    rollback = [
        a["alarmName"] for a in endpoint.get("deploymentConfig.autoRollbackConfiguration.alarms")
    ]
    watched = set()
    for name in rollback:
        alarm = next(a for a in run.of_type(METRIC_ALARM) if name.startswith(a.name + "-"))
        watched |= _alarm_metrics(alarm)
    assert {"ModelLatency", "Invocation5XXErrors"} <= watched

    target = run.one(SCALING_TARGET)
    assert target.inputs["serviceNamespace"] == "sagemaker"
    assert target.inputs["resourceId"] == f"endpoint/{endpoint.inputs['name']}/variant/primary"
    assert target.inputs["scalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == (
        tier.inference.min_instances,
        tier.inference.max_instances,
    )
    scaling = run.one(SCALING_POLICY).inputs["targetTrackingScalingPolicyConfiguration"]
    assert scaling["predefinedMetricSpecification"]["predefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )
    # ml.m5.large: 2 vCPUs at 60 % of 460 us per request, half of that, per minute.
    assert scaling["targetValue"] == 78_260
    assert (scaling["scaleInCooldown"], scaling["scaleOutCooldown"]) == (600, 120)


@pytest.mark.parametrize("stack", ["tier1", "tier3"])
def test_api_may_invoke_the_endpoint_only_where_it_exists(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    invoke = [
        (p.name, s)
        for p in run.of_type(ROLE_POLICY)
        for s in json.loads(p.inputs["policy"])["Statement"]
        if "sagemaker:InvokeEndpoint" in _actions(s)
    ]
    if run.count(SAGEMAKER_ENDPOINT) == 0:
        assert invoke == []
    else:
        # The API, and the event worker rescoring students.
        assert sorted(name for name, _ in invoke) == [
            "workloads-api-policy",
            "workloads-worker-policy",
        ]
        for _, statement in invoke:
            assert re.fullmatch(
                rf"arn:aws:sagemaker:[a-z0-9-]+:\d{{12}}:endpoint/ssp-{stack}-predict",
                statement["Resource"],
            )


def test_the_trainer_rolls_the_endpoint_and_pulumi_does_not_revert_it(
    stack_run: StackRunner,
) -> None:
    """The endpoint's configuration is the trainer's after the first rollout: Pulumi ignores
    it, and keeps a replaced model or configuration in AWS (the endpoint may still serve it)."""
    run = stack_run("tier3")
    endpoint, config, model = (
        run.one(SAGEMAKER_ENDPOINT), run.one(SAGEMAKER_ENDPOINT_CONFIG), run.one(SAGEMAKER_MODEL)
    )  # fmt: skip
    assert endpoint.options.ignore_changes == ("endpointConfigName",)
    assert config.options.retain_on_delete and model.options.retain_on_delete
    trainer = run.one("kubernetes:batch/v1:CronJob", "workloads-trainer")
    (container,) = trainer.get("spec.jobTemplate.spec.template.spec.containers")
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SAGEMAKER_ENDPOINT_NAME"] == endpoint.get("name")
    assert env["SAGEMAKER_BASE_CONFIG_NAME"].startswith(config.inputs["namePrefix"])
    assert env["SAGEMAKER_ARCHIVE_URL"] == model.get("primaryContainer.modelDataUrl").removesuffix(
        "/model.tar.gz"
    )
    assert set(env) <= {name.upper() for name in Settings.model_fields}


@pytest.mark.parametrize("stack", ["tier2", "tier3"])
def test_only_a_stack_with_an_endpoint_lets_the_trainer_touch_sagemaker(
    stack_run: StackRunner, stack: str
) -> None:
    run = stack_run(stack)
    policy = json.loads(run.one(ROLE_POLICY, "workloads-trainer-policy").get("policy"))
    actions = {
        a
        for s in policy["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    sagemaker = {a for a in actions if a.startswith(("sagemaker:", "iam:"))}
    if stack == "tier2":
        assert not sagemaker
        return
    assert sagemaker == {
        "sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint",
        "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel",
        "sagemaker:CreateModel", "sagemaker:DeleteModel",
        "sagemaker:CreateEndpointConfig", "sagemaker:DeleteEndpointConfig", "sagemaker:AddTags",
        "sagemaker:ListEndpointConfigs", "iam:PassRole",
    }  # fmt: skip
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["ReadEndpoint"]["Resource"].endswith(":endpoint/ssp-tier3-predict")
    # UpdateEndpoint is authorized on the endpoint and on the configuration it moves to.
    endpoint, config = by_sid["RollEndpoint"]["Resource"]
    assert endpoint.endswith(":endpoint/ssp-tier3-predict")
    assert config.endswith(":endpoint-config/ssp-tier3-predict-g*")
    # DescribeKey requests carry no kms:GrantIsForAWSResource: it is granted unconditioned.
    assert by_sid["DescribeModelsKey"]["Action"] == "kms:DescribeKey"
    assert "Condition" not in by_sid["DescribeModelsKey"]
    assert by_sid["GrantModelsKeyToSageMaker"]["Action"] == "kms:CreateGrant"
    assert all(r.endswith(("endpoint-config/ssp-tier3-predict-g*", "model/ssp-tier3-predict-g*"))
               for r in by_sid["ManageOwnGenerations"]["Resource"])  # fmt: skip
    role = run.one("aws:iam/role:Role", "inference-role")
    assert by_sid["PassContainerRole"]["Resource"].endswith(f":role/{role.id}")
    assert by_sid["PassContainerRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
