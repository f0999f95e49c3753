"""The Kubernetes workload rules beyond the table of tests/policies/test_rules.py: the user a
container runs as (pod or container context), each missing resource, probe and privilege
named, init containers checked too, image references read by tag or digest."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policies.rules.kubernetes import image_tag

from .helpers import resource_messages

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/student-success:0.1.0"
CONTAINER: dict[str, Any] = {
    "name": "api",
    "image": IMAGE,
    "resources": {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    },
    "readinessProbe": {"httpGet": {"path": "/health/ready", "port": 8080.0}},
    "livenessProbe": {"httpGet": {"path": "/health/live", "port": 8080.0}},
    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
}


def _pod(**spec: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": spec}}}


def _container(**changes: Any) -> dict[str, Any]:
    container = copy.deepcopy(CONTAINER)
    for key, value in changes.items():
        if value is None:
            container.pop(key, None)
        else:
            container[key] = value
    return container


def _messages(rule: str, resource_type: str = DEPLOYMENT, **spec: Any) -> list[str]:
    return resource_messages(rule, resource_type, _pod(**spec), resource_name="api")


@pytest.mark.parametrize(
    ("pod", "container", "root"),
    [
        ({"runAsNonRoot": True}, {}, False),
        ({}, {"runAsNonRoot": True}, False),
        ({}, {"runAsUser": 10001.0}, False),
        ({"runAsUser": 10001.0}, {}, False),
        ({"runAsUser": 1.0}, {}, False),
        ({"runAsNonRoot": False}, {"runAsNonRoot": True}, False),  # the container's wins
        ({}, {}, True),
        ({"runAsNonRoot": True}, {"runAsNonRoot": False}, True),
        ({"runAsNonRoot": True}, {"runAsUser": 0.0}, True),  # non-root with UID 0 fails to run
        ({"runAsNonRoot": True, "runAsUser": 0.0}, {}, True),
        ({"runAsUser": 10001.0}, {"runAsUser": 0.0}, True),
    ],
)
def test_a_container_runs_as_non_root_from_its_own_or_the_pods_context(
    pod: dict[str, Any], container: dict[str, Any], root: bool
) -> None:
    spec_container = _container(securityContext=container or None)
    messages = _messages(
        "k8s-run-as-non-root", securityContext=pod or None, containers=[spec_container]
    )
    if root:
        assert messages == [
            "Deployment 'api' container 'api' may run as root; set "
            "security_context.run_as_non_root=True (and run_as_user to the image's non-root "
            "UID) on the pod or the container."
        ]
    else:
        assert messages == []


def test_init_containers_are_checked_too() -> None:
    init = _container(name="migrate", securityContext=None, resources=None)
    spec = {"securityContext": {"runAsNonRoot": True}, "initContainers": [init, "not a map"]}
    assert _messages("k8s-run-as-non-root", **spec) == []
    (message,) = _messages("k8s-resource-limits", **spec)
    assert message.startswith("Deployment 'api' container 'migrate' has no requests.cpu")
    (message,) = _messages("k8s-read-only-root-filesystem", **spec)
    assert "container 'migrate' has a writable root filesystem" in message
    privileged = _container(name="migrate", securityContext={"privileged": True})
    assert _messages("k8s-no-privileged", initContainers=[privileged])
    # An init container runs to completion: no probes.
    unprobed = _container(name="migrate", readinessProbe=None, livenessProbe=None)
    assert _messages("k8s-probes", initContainers=[unprobed], containers=[CONTAINER]) == []


def test_each_missing_request_and_limit_is_named() -> None:
    resources = {"requests": {"cpu": "1"}, "limits": {"memory": "4Gi"}}
    (message,) = _messages("k8s-resource-limits", containers=[_container(resources=resources)])
    assert message == (
        "Deployment 'api' container 'api' has no requests.memory, limits.cpu; set resources "
        "from the catalog (api_cpu_request/limit, api_memory_request/limit) so the scheduler "
        "and the HPA can reason about it."
    )
    assert _messages("k8s-resource-limits", containers=[CONTAINER]) == []


def test_long_running_containers_need_both_probes_and_batch_pods_none() -> None:
    rule = "k8s-probes"
    (message,) = _messages(rule, containers=[_container(livenessProbe=None)])
    assert message.startswith("Deployment 'api' container 'api' has no livenessProbe; add HTTP")
    unprobed = _container(livenessProbe=None, readinessProbe=None)
    (message,) = _messages(rule, containers=[unprobed])
    assert "has no readinessProbe or livenessProbe;" in message
    assert _messages(rule, JOB, containers=[unprobed]) == []
    assert _messages(rule, containers=[CONTAINER]) == []


def test_host_namespaces_and_privilege_are_named() -> None:
    rule = "k8s-no-privileged"
    (message,) = _messages(rule, hostNetwork=True, hostIPC=True, containers=[CONTAINER])
    assert message == "Deployment 'api' shares the node's hostNetwork, hostIPC; remove it."
    assert _messages(rule, hostPID=False, containers=[CONTAINER]) == []
    escalating = _container(securityContext={"allowPrivilegeEscalation": True})
    (message,) = _messages(rule, containers=[escalating])
    assert message.startswith("Deployment 'api' container 'api' is privileged or may escalate")
    assert _messages(rule, containers=[_container(securityContext=None)]) == []


def test_a_host_path_volume_is_named_with_its_path() -> None:
    volumes = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}},
    ]
    (message,) = _messages("k8s-no-host-path", volumes=volumes, containers=[CONTAINER])
    assert message.startswith(
        "Deployment 'api' mounts the node's /var/run/docker.sock through hostPath volume 'docker'"
    )


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("busybox", "latest"),
        ("busybox:latest", "latest"),
        ("busybox:1.36", "1.36"),
        ("registry:5000/team/app", "latest"),  # a registry's port is no tag
        ("registry:5000/team/app:2.0", "2.0"),
        ("app:1.0:extra", "1.0:extra"),
        (f"{IMAGE}@sha256:abc", None),
        ("busybox@sha256:abc", None),
    ],
)
def test_an_image_reference_is_read_by_tag_or_digest(image: str, tag: str | None) -> None:
    assert image_tag(image) == tag


def test_an_unpinned_image_is_named() -> None:
    (message,) = _messages("k8s-image-not-latest", containers=[_container(image="busybox")])
    assert message.startswith("Deployment 'api' container 'api' runs 'busybox', an implicit or")
    assert _messages("k8s-image-not-latest", containers=[_container(image=None)]) == []


def test_a_secret_in_the_environment_is_refused_other_variables_are_not() -> None:
    rule = "k8s-secrets-as-files"
    plain = [{"name": "MODE", "value": "api"}, {"name": "NODE", "valueFrom": {"fieldRef": {}}}]
    config = [{"configMapRef": {"name": "settings"}}]
    assert _messages(rule, containers=[_container(env=plain, envFrom=config)]) == []
    secret_env = [*plain, {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db"}}}]
    (message,) = _messages(rule, containers=[_container(env=secret_env)])
    assert message.startswith("Deployment 'api' container 'api' takes a Secret into its")
    assert _messages(rule, containers=[_container(envFrom=[{"secretRef": {"name": "db"}}])])
