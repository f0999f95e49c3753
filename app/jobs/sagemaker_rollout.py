"""Roll the SageMaker endpoint to the models the pointer serves.

After a training run or a rollback changes the pointer, `train` and `rollback` (or
`rollout-sagemaker` by hand) publish the served models as an archive of that generation, make a
SageMaker model and an endpoint configuration from the program's base ones (the same image,
role, network, instances and data capture; only the model data differs) and call
UpdateEndpoint. The endpoint's own blue/green deployment then shifts traffic in canary steps
and rolls back by itself when its latency or error alarm fires; the old configuration stays in
service until the new one has taken over.

Each generation gets its own archive, model and configuration, named
``<endpoint>-g<generation>-<hash of the base configuration's name>``: instances started during
a deployment (autoscaling) load the models of their own fleet; a re-run after a crash finds
what it already made; and a new base (a `pulumi up` that changed the image or the instances)
rolls out with the next rollout even when the models did not change. Models and
configurations that no longer serve are deleted by the next rollout.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from app.core.settings import Settings
from app.model.artifacts import ModelStore, Pointer, backend_for

log = logging.getLogger("app.sagemaker")

ARCHIVE = "model.tar.gz"
BASE_TAG = "ssp:base-config"  # which of the program's configurations a rollout copied
# What a configuration of ours copies from the base one besides its variants.
CONFIG_FIELDS = ("DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig")


class RolloutFailedError(RuntimeError):
    """UpdateEndpoint was refused: the configuration in service is still the old one."""


@dataclass(frozen=True)
class Rollout:
    endpoint: str
    config: str
    """The configuration the endpoint is deploying (or already serving)."""
    previous: str
    """The configuration it served before."""
    archive: str
    started: bool
    """False when the endpoint already served this generation from this base."""


def config_name(endpoint: str, generation: int, base_name: str) -> str:
    """The name of the model and configuration serving ``generation`` from ``base_name``."""
    name = f"{endpoint}-g{generation}-{hashlib.sha256(base_name.encode()).hexdigest()[:8]}"
    if len(name) > 63:
        raise ValueError(f"{name}: SageMaker names are at most 63 characters")
    return name


def rollout(settings: Settings, pointer: Pointer, *, client: Any = None) -> Rollout:
    """Deploy ``pointer``'s models to the endpoint, unless it serves them already from the
    current base configuration. Raises RolloutFailedError when SageMaker refuses the update;
    the endpoint then keeps its configuration."""
    endpoint, base_name = settings.sagemaker_endpoint_name, settings.sagemaker_base_config_name
    archive_url = settings.sagemaker_archive_url
    if not (endpoint and base_name and archive_url):
        raise ValueError(
            "SAGEMAKER_ENDPOINT_NAME, SAGEMAKER_BASE_CONFIG_NAME and SAGEMAKER_ARCHIVE_URL"
            " name the endpoint to roll"
        )
    if not pointer.scopes:
        raise ValueError("nothing to deploy: no model has been promoted yet")
    if client is None:
        import boto3  # Imported lazily: only stacks with an endpoint roll one.

        client = boto3.client("sagemaker")
    name = config_name(endpoint, pointer.generation, base_name)
    key = f"g{pointer.generation}/{ARCHIVE}"
    archive = f"{archive_url.rstrip('/')}/{key}"
    previous = client.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    if previous == name:
        return Rollout(endpoint, name, previous, archive, started=False)

    backend_for(archive_url).write(key, ModelStore(settings.model_store_url).export_archive())
    base = client.describe_endpoint_config(EndpointConfigName=base_name)
    tags = [{"Key": BASE_TAG, "Value": base_name}]
    _create_model(client, name, base["ProductionVariants"][0]["ModelName"], archive, tags)
    _create_config(client, name, base, tags)
    try:
        client.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=name,
            # The blue/green policy and alarm rollback the program set, and the instance
            # count autoscaling reached, carry over to the new fleet.
            RetainDeploymentConfig=True,
            RetainAllVariantProperties=True,
        )
    except ClientError as exc:
        _delete(client, name)  # nothing refers to them: the endpoint kept `previous`
        raise RolloutFailedError(
            f"SageMaker refused to update {endpoint} to {name}: {exc}; it keeps serving {previous}"
        ) from exc
    log.info(
        "endpoint update started",
        extra={"endpoint": endpoint, "config": name, "previous": previous, "archive": archive},
    )
    _prune(client, endpoint, keep={name, previous})
    return Rollout(endpoint, name, previous, archive, started=True)


def _create_model(
    client: Any, name: str, base_model_name: str, archive: str, tags: list[dict[str, str]]
) -> None:
    base = client.describe_model(ModelName=base_model_name)
    container = {
        k: v for k, v in base["PrimaryContainer"].items() if k in ("Image", "Environment", "Mode")
    }
    request: dict[str, Any] = {
        "ModelName": name,
        "PrimaryContainer": {**container, "ModelDataUrl": archive},
        "ExecutionRoleArn": base["ExecutionRoleArn"],
        "Tags": tags,
    }
    if base.get("VpcConfig"):
        request["VpcConfig"] = base["VpcConfig"]
    _create_once(client.create_model, request)


def _create_config(
    client: Any, name: str, base: dict[str, Any], tags: list[dict[str, str]]
) -> None:
    variants = [{**v, "ModelName": name} for v in base["ProductionVariants"]]
    fields = {k: base[k] for k in CONFIG_FIELDS if k in base}
    _create_once(
        client.create_endpoint_config,
        {"EndpointConfigName": name, "ProductionVariants": variants, **fields, "Tags": tags},
    )


def _create_once(create: Any, request: dict[str, Any]) -> None:
    """Create, or find it made by an earlier attempt of this generation (a re-run)."""
    try:
        create(**request)
    except ClientError as exc:
        if "already exist" not in str(exc):
            raise


def _delete(client: Any, name: str) -> None:
    for delete, key in (
        (client.delete_endpoint_config, "EndpointConfigName"),
        (client.delete_model, "ModelName"),
    ):
        try:
            delete(**{key: name})
        except ClientError as exc:
            log.warning("could not delete", extra={"name": name, "error": str(exc)[:300]})


def _prune(client: Any, endpoint: str, keep: set[str]) -> None:
    """Delete our configurations and models of older generations (never ``keep``)."""
    configs = client.list_endpoint_configs(NameContains=f"{endpoint}-g", MaxResults=100)
    for config in configs.get("EndpointConfigs", []):
        if config["EndpointConfigName"] not in keep:
            _delete(client, config["EndpointConfigName"])
