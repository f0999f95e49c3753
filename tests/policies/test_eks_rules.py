"""The EKS rules beyond the table of tests/policies/test_rules.py: the public endpoint's CIDRs
against the allowed networks, the control plane's logs as configured, Secrets' envelope
encryption, IMDSv2 on the nodes."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import resource_messages

EKS = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
KEY = "arn:aws:kms:us-east-1:123456789012:key/abc"
PUBLIC = "eks-public-access-cidrs"


def _public(cidrs: list[str] | None, allowed: list[str] | None = None) -> list[str]:
    vpc: dict[str, Any] = {"endpointPrivateAccess": True, "endpointPublicAccess": True}
    if cidrs is not None:
        vpc["publicAccessCidrs"] = cidrs
    config = None if allowed is None else {"allowedPublicCidrs": allowed}
    return resource_messages(PUBLIC, EKS, {"vpcConfig": vpc}, config, resource_name="apps")


def test_a_private_endpoint_is_required_even_beside_a_public_one() -> None:
    rule = "eks-private-endpoint"
    for vpc in ({}, {"endpointPrivateAccess": False}, {"endpointPublicAccess": True}):
        (message,) = resource_messages(rule, EKS, {"vpcConfig": vpc}, resource_name="apps")
        assert message.startswith("EKS cluster 'apps' has no private API endpoint")
        assert "endpoint_private_access=True" in message
    private = {"vpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": True}}
    assert resource_messages(rule, EKS, private) == []


@pytest.mark.parametrize("cidrs", [None, [], ["0.0.0.0/0"], ["198.51.100.0/24", "::/0"]])
def test_a_public_endpoint_open_to_the_world_is_refused(cidrs: list[str] | None) -> None:
    (message,) = _public(cidrs, allowed=["0.0.0.0/0"])
    assert message.startswith("EKS cluster 'apps' exposes its public API endpoint to 0.0.0.0/0")
    assert "config clusterPublicAccessCidrs" in message


def test_a_public_endpoint_counts_as_on_unless_switched_off() -> None:
    # AWS turns the public endpoint on when the property is left out.
    assert resource_messages(PUBLIC, EKS, {"vpcConfig": {"endpointPrivateAccess": True}})
    assert resource_messages(PUBLIC, EKS, {}) != []
    off = {"vpcConfig": {"endpointPublicAccess": False, "publicAccessCidrs": ["0.0.0.0/0"]}}
    assert resource_messages(PUBLIC, EKS, off) == []


@pytest.mark.parametrize(
    ("cidrs", "allowed", "outside"),
    [
        (["198.51.100.0/24"], [], []),  # no allowed networks configured: any office CIDR
        (["198.51.100.0/24"], ["198.51.100.0/24"], []),
        (["198.51.100.128/25"], ["198.51.100.0/24"], []),
        (["198.51.100.7"], ["203.0.113.0/24", "198.51.100.0/24"], []),
        (["198.51.0.0/16"], ["198.51.100.0/24"], ["198.51.0.0/16"]),
        (
            ["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"],
            ["198.51.100.0/24", "2001:db8::/48"],
            ["203.0.113.0/24", "2001:db8::/32"],
        ),
        (["2001:db8::/48"], ["0.0.0.0/1"], ["2001:db8::/48"]),  # another IP version
        (["office"], ["198.51.100.0/24"], ["office"]),  # no CIDR at all
    ],
)
def test_a_public_endpoint_stays_inside_the_allowed_networks(
    cidrs: list[str], allowed: list[str], outside: list[str]
) -> None:
    messages = _public(cidrs, allowed)
    if not outside:
        assert messages == []
        return
    assert messages == [
        f"EKS cluster 'apps' opens its public API endpoint to {', '.join(outside)}, outside the "
        f"allowed networks {', '.join(allowed)}; remove them or extend allowedPublicCidrs in "
        "the policy config."
    ]


def test_the_control_plane_logs_are_those_configured() -> None:
    rule = "eks-control-plane-logs"
    logs = {"enabledClusterLogTypes": ["api", "audit"]}
    (message,) = resource_messages(rule, EKS, logs, resource_name="apps")
    assert message.startswith("EKS cluster 'apps' does not log authenticator from its control")
    assert "enabled_cluster_log_types" in message
    (message,) = resource_messages(rule, EKS, {}, resource_name="apps")
    assert "does not log api, audit, authenticator from" in message
    relaxed = {"requiredLogTypes": ["api"]}
    assert resource_messages(rule, EKS, {"enabledClusterLogTypes": ["api"]}, relaxed) == []
    stricter = {"requiredLogTypes": ["api", "scheduler"]}
    (message,) = resource_messages(rule, EKS, logs, stricter)
    assert "does not log scheduler from" in message


@pytest.mark.parametrize(
    ("encryption", "encrypted"),
    [
        ({"resources": ["secrets"], "provider": {"keyArn": KEY}}, True),
        ({"resources": ["secrets"], "provider": {}}, False),
        ({"resources": ["configmaps"], "provider": {"keyArn": KEY}}, False),
        ({"provider": {"keyArn": KEY}}, False),
        (None, False),
    ],
)
def test_secrets_are_envelope_encrypted_with_a_key(
    encryption: dict[str, Any] | None, encrypted: bool
) -> None:
    props = {} if encryption is None else {"encryptionConfig": encryption}
    messages = resource_messages("eks-secrets-encryption", EKS, props, resource_name="apps")
    if encrypted:
        assert messages == []
    else:
        (message,) = messages
        assert message.startswith("EKS cluster 'apps' does not envelope-encrypt Kubernetes")


@pytest.mark.parametrize(
    ("options", "tokens"),
    [
        ({"httpTokens": "required"}, None),
        ({"httpEndpoint": "disabled"}, None),  # no metadata service at all
        ({"httpEndpoint": "disabled", "httpTokens": "optional"}, None),
        ({"httpEndpoint": "enabled", "httpTokens": "optional"}, "optional"),
        ({}, "optional"),
        (None, "optional"),
    ],
)
def test_node_launch_templates_require_imdsv2(
    options: dict[str, Any] | None, tokens: str | None
) -> None:
    props = {} if options is None else {"metadataOptions": options}
    messages = resource_messages(
        "eks-launch-template-imdsv2", LAUNCH_TEMPLATE, props, resource_name="nodes"
    )
    if tokens is None:
        assert messages == []
    else:
        (message,) = messages
        assert message.startswith(
            f"Launch template 'nodes' allows IMDSv1 (http_tokens={tokens}), so a pod with SSRF"
        )
        assert "'http_tokens': 'required'" in message


def test_a_cidr_with_host_bits_is_read_as_its_network() -> None:
    assert _public(["198.51.100.7/25"], ["198.51.100.1/24"]) == []
    (message,) = _public(["198.51.100.7/23"], ["198.51.100.1/24"])
    assert "opens its public API endpoint to 198.51.100.7/23, outside" in message
