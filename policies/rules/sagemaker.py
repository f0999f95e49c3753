"""SageMaker: endpoint storage and captured predictions encrypted with KMS, data capture on,
models inside the VPC."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs

from ._util import get, label, num, present, rule

ENDPOINT_CONFIGURATION = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
MODEL = "aws:sagemaker/model:Model"


def _config(args: ResourceValidationArgs) -> str:
    return label("SageMaker endpoint configuration", args.name)


def _kms(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not present(args.props, "kmsKeyArn"):
        report(
            f"{_config(args)} leaves the endpoint's ML storage volumes on the AWS-owned key; set "
            "kms_key_arn to the stack's customer-managed KMS key.",
            None,
        )
    capture = args.props.get("dataCaptureConfig")
    if capture and get(capture, "enableCapture") is not False and not present(capture, "kmsKeyId"):
        report(
            f"{_config(args)} captures predictions about students without a KMS key; set "
            "data_capture_config.kms_key_id.",
            None,
        )


def _data_capture(args: ResourceValidationArgs, report: ReportViolation) -> None:
    capture = args.props.get("dataCaptureConfig")
    percent = num(get(capture, "initialSamplingPercentage"), 0.0) or 0.0
    if not capture or get(capture, "enableCapture") is False or percent <= 0:
        report(
            f"{_config(args)} does not capture inference data, so model drift per school goes "
            "unnoticed; set data_capture_config with enable_capture=True, "
            "initial_sampling_percentage from the catalog (sagemaker_data_capture_percent) and "
            "an S3 destination.",
            None,
        )


def _model_vpc(args: ResourceValidationArgs, report: ReportViolation) -> None:
    in_vpc = present(args.props, "vpcConfig.subnets")
    if not in_vpc and args.props.get("enableNetworkIsolation") is not True:
        report(
            f"SageMaker model '{args.name}' runs outside the VPC with internet access; set "
            "vpc_config (private subnets, app security group) or enable_network_isolation=True.",
            None,
        )


M, A = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY

POLICIES = [
    rule(
        "sagemaker-endpoint-kms",
        "SageMaker endpoint configurations encrypt storage and captured data with KMS.",
        [ENDPOINT_CONFIGURATION],
        _kms,
        M,
    ),
    rule(
        "sagemaker-data-capture",
        "SageMaker endpoint configurations capture a sample of inference data.",
        [ENDPOINT_CONFIGURATION],
        _data_capture,
        A,
    ),
    rule(
        "sagemaker-model-in-vpc",
        "SageMaker models run in the VPC or with network isolation.",
        [MODEL],
        _model_vpc,
        A,
    ),
]
