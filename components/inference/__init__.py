"""The SageMaker endpoint serving the app image's ``/ping`` and ``/invocations`` contract:
``settings`` holds its fixed choices and pure functions, ``component`` the ``Inference``
component."""

from components.inference.component import Inference, InferenceArgs
from components.inference.settings import (
    MODEL_ARCHIVE,
    VARIANT_NAME,
    execution_policy,
    invocations_per_instance_target,
    model_data_url,
    model_latency_threshold_us,
    scalable_resource_id,
)

__all__ = [
    "MODEL_ARCHIVE",
    "VARIANT_NAME",
    "Inference",
    "InferenceArgs",
    "execution_policy",
    "invocations_per_instance_target",
    "model_data_url",
    "model_latency_threshold_us",
    "scalable_resource_id",
]
