"""Training rolls the SageMaker endpoint: the served models as a generation's archive, a model
and configuration copied from the program's base ones, UpdateEndpoint with the endpoint's own
blue/green policy; a refused update leaves the old configuration in service. SageMaker's API is
a botocore Stubber (moto has no UpdateEndpoint): every request is checked as sent."""

from __future__ import annotations

import argparse
import datetime
import json
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from app.core.settings import Settings
from app.jobs.sagemaker_rollout import BASE_TAG, RolloutFailedError, config_name, rollout
from app.model.artifacts import ModelStore
from tests.app.conftest import District

ENDPOINT = "ssp-tier3-predict"
BASE = "ssp-tier3-predict-20261202004500000000000001"
BASE_MODEL = "inference-model-5e1c0a9"
ROLE = "arn:aws:iam::123456789012:role/inference-role"
KEY = "arn:aws:kms:us-east-1:123456789012:key/models"
NOW = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)
ARN = "arn:aws:sagemaker:us-east-1:123456789012"
VARIANT = {
    "VariantName": "primary",
    "ModelName": BASE_MODEL,
    "InitialInstanceCount": 1,
    "InstanceType": "ml.m5.large",
    "InitialVariantWeight": 1.0,
}
CAPTURE = {
    "EnableCapture": True,
    "InitialSamplingPercentage": 20,
    "DestinationS3Uri": "s3://models/data-capture",
    "KmsKeyId": KEY,
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
}
CONTAINER = {
    "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ssp:0.1.0",
    "ModelDataUrl": "s3://models/sagemaker/model.tar.gz",
    "Environment": {"SERVE_MODE": "inference", "WORKERS": "2"},
}
VPC = {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1", "subnet-2"]}


@pytest.fixture
def settings(district: District, tmp_path: Path) -> Settings:
    return district.trainer_with(
        sagemaker_endpoint_name=ENDPOINT,
        sagemaker_base_config_name=BASE,
        sagemaker_archive_url=str(tmp_path / "sagemaker"),
    )


def endpoint(config: str) -> dict[str, Any]:
    return {
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
        "EndpointConfigName": config,
        "EndpointStatus": "InService",
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
    }


def expect_copy(stub: Stubber, name: str, archive: str, create_model: Any = None) -> None:
    """The base configuration and model read, then copied with the new model data only."""
    stub.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": BASE,
            "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{BASE}",
            "ProductionVariants": [VARIANT],
            "DataCaptureConfig": CAPTURE,
            "KmsKeyId": KEY,
            "CreationTime": NOW,
        },
        {"EndpointConfigName": BASE},
    )
    stub.add_response(
        "describe_model",
        {
            "ModelName": BASE_MODEL,
            "PrimaryContainer": CONTAINER,
            "ExecutionRoleArn": ROLE,
            "VpcConfig": VPC,
            "CreationTime": NOW,
            "ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{BASE_MODEL}",
        },
        {"ModelName": BASE_MODEL},
    )
    tags = [{"Key": BASE_TAG, "Value": BASE}]
    model_request = {
        "ModelName": name,
        "PrimaryContainer": {**CONTAINER, "ModelDataUrl": archive},
        "ExecutionRoleArn": ROLE,
        "VpcConfig": VPC,
        "Tags": tags,
    }
    if create_model is not None:
        stub.add_client_error(
            "create_model", "ValidationException", create_model, 400, expected_params=model_request
        )
    else:
        stub.add_response("create_model", {"ModelArn": f"{ARN}:model/{name}"}, model_request)
    stub.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"{ARN}:endpoint-config/{name}"},
        {
            "EndpointConfigName": name,
            "ProductionVariants": [{**VARIANT, "ModelName": name}],
            "DataCaptureConfig": CAPTURE,
            "KmsKeyId": KEY,
            "Tags": tags,
        },
    )


def update_request(name: str) -> dict[str, Any]:
    return {
        "EndpointName": ENDPOINT,
        "EndpointConfigName": name,
        "RetainDeploymentConfig": True,
        "RetainAllVariantProperties": True,
    }


def stubbed() -> tuple[Any, Stubber]:
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client, Stubber(client)


def test_a_new_generation_is_published_and_rolled_out_blue_green(settings: Settings) -> None:
    pointer = ModelStore(settings.model_store_url).pointer()
    name = config_name(ENDPOINT, pointer.generation, BASE)
    archive = f"{settings.sagemaker_archive_url}/g{pointer.generation}/model.tar.gz"
    older = config_name(ENDPOINT, pointer.generation - 1 if pointer.generation > 1 else 0, BASE)
    client, stub = stubbed()
    stub.add_response("describe_endpoint", endpoint(BASE), {"EndpointName": ENDPOINT})
    expect_copy(stub, name, archive)
    stub.add_response(
        "update_endpoint", {"EndpointArn": f"{ARN}:endpoint/{ENDPOINT}"}, update_request(name)
    )
    stub.add_response(
        "list_endpoint_configs",
        {
            "EndpointConfigs": [
                {
                    "EndpointConfigName": n,
                    "EndpointConfigArn": f"{ARN}:endpoint-config/{n}",
                    "CreationTime": NOW,
                }
                for n in (older, name)
            ]
        },
        {"NameContains": f"{ENDPOINT}-g", "MaxResults": 100},
    )
    # Only the older generation's configuration and model go; never the new or the previous.
    stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": older})
    stub.add_response("delete_model", {}, {"ModelName": older})
    with stub:
        done = rollout(settings, pointer, client=client)
        stub.assert_no_pending_responses()
    assert done.started and done.config == name and done.previous == BASE
    with tarfile.open(archive) as tar:  # what SageMaker unpacks into /opt/ml/model
        served = json.loads(tar.extractfile("current.json").read())  # type: ignore[union-attr]
    assert served["scopes"] == pointer.scopes and served["generation"] == pointer.generation


def test_an_endpoint_serving_the_generation_is_left_alone(settings: Settings) -> None:
    pointer = ModelStore(settings.model_store_url).pointer()
    client, stub = stubbed()
    stub.add_response(
        "describe_endpoint",
        endpoint(config_name(ENDPOINT, pointer.generation, BASE)),
        {"EndpointName": ENDPOINT},
    )
    with stub:
        done = rollout(settings, pointer, client=client)
        stub.assert_no_pending_responses()  # nothing published, made or updated
    assert not done.started


def test_a_refused_update_leaves_the_old_configuration_in_service(settings: Settings) -> None:
    pointer = ModelStore(settings.model_store_url).pointer()
    name = config_name(ENDPOINT, pointer.generation, BASE)
    archive = f"{settings.sagemaker_archive_url}/g{pointer.generation}/model.tar.gz"
    client, stub = stubbed()
    stub.add_response("describe_endpoint", endpoint(BASE), {"EndpointName": ENDPOINT})
    expect_copy(stub, name, archive)
    stub.add_client_error(
        "update_endpoint",
        "ValidationException",
        "Cannot update in-progress endpoint",
        400,
        expected_params=update_request(name),
    )
    # What it made is removed again; the configuration in service is never touched.
    stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": name})
    stub.add_response("delete_model", {}, {"ModelName": name})
    with stub, pytest.raises(RolloutFailedError, match=f"it keeps serving {BASE}"):
        rollout(settings, pointer, client=client)
    stub.assert_no_pending_responses()


def test_a_rerun_finds_the_model_it_made(settings: Settings) -> None:
    pointer = ModelStore(settings.model_store_url).pointer()
    name = config_name(ENDPOINT, pointer.generation, BASE)
    archive = f"{settings.sagemaker_archive_url}/g{pointer.generation}/model.tar.gz"
    client, stub = stubbed()
    stub.add_response("describe_endpoint", endpoint(BASE), {"EndpointName": ENDPOINT})
    expect_copy(stub, name, archive, create_model=f"Cannot create already existing model {name}")
    stub.add_response(
        "update_endpoint", {"EndpointArn": f"{ARN}:endpoint/{ENDPOINT}"}, update_request(name)
    )
    stub.add_response(
        "list_endpoint_configs", {"EndpointConfigs": []}, {"NameContains": ANY, "MaxResults": 100}
    )
    with stub:
        assert rollout(settings, pointer, client=client).started
        stub.assert_no_pending_responses()


def test_a_new_base_configuration_rolls_out_the_same_models() -> None:
    assert config_name(ENDPOINT, 3, BASE) != config_name(ENDPOINT, 3, BASE[:-1] + "2")
    with pytest.raises(ValueError, match="at most 63"):
        config_name("x" * 60, 3, BASE)


def test_without_an_endpoint_named_there_is_nothing_to_roll(district: District) -> None:
    with pytest.raises(ValueError, match="SAGEMAKER_ENDPOINT_NAME"):
        rollout(district.trainer, ModelStore(district.trainer.model_store_url).pointer())


def test_train_and_rollback_roll_the_endpoint_and_a_refusal_fails_the_job(
    fresh_district: District, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
    from app.cli.main import run

    rolled: list[int] = []

    def refuse(settings: Settings, pointer: Any, **_: Any) -> None:
        rolled.append(pointer.generation)
        raise RolloutFailedError("SageMaker refused")

    monkeypatch.setattr("app.jobs.sagemaker_rollout.rollout", refuse)
    plain = fresh_district.trainer
    with_endpoint = plain.model_copy(
        update={
            "sagemaker_endpoint_name": ENDPOINT,
            "sagemaker_base_config_name": BASE,
            "sagemaker_archive_url": str(tmp_path / "sagemaker"),
        }
    )
    train = argparse.Namespace(command="train")
    assert run(train, plain) == EXIT_OK and rolled == []  # no endpoint: no rollout
    assert run(train, with_endpoint) == EXIT_FAILED  # the alarm on failed runs fires
    back = argparse.Namespace(command="rollback", to_version=None)
    assert run(back, with_endpoint) == EXIT_FAILED
    assert len(rolled) == 2 and rolled[1] > rolled[0]  # then the rolled-back pointer's
    monkeypatch.undo()  # the real rollout: without an endpoint named, a usage error
    assert run(argparse.Namespace(command="rollout-sagemaker"), plain) == EXIT_USAGE
