"""GCP's Swarm secrets in the gcp-prod plan (providers/gcp/swarm.py under the offline plan's mocks):
each a Secret Manager secret replicated only to the stack's region under the stack's key, labelled;
the bootstrap secrets' first version the placeholder, never rewritten by Pulumi; the host keys'
versions the generated keys; and every machine created only after the versions it reads."""

from __future__ import annotations

from typing import Any

import pytest

from components.swarm import BOOTSTRAP_SECRETS, PLACEHOLDER
from providers.gcp.swarm import disk_device, secret_name
from tests.plan_graph import PlanGraph, Resource
from tests.unit.conftest import planned

STACK = "gcp-prod"
SECRET = "gcp:secretmanager/secret:Secret"
VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
REQUIRED_LABELS = {"cost_center", "environment", "managed_by", "owner", "service", "stack"}


@pytest.fixture(scope="module")
def plan() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    return planned(STACK)


@pytest.fixture(scope="module")
def graph(plan: tuple[dict[str, Any], dict[str, dict[str, Any]]]) -> PlanGraph:
    return PlanGraph(plan[0])


def _swarm(graph: PlanGraph, typ: str) -> list[Resource]:
    return [r for r in graph.of_type(typ) if r.name.startswith(f"{STACK}-swarm-")]


def _state(plan: tuple[dict[str, Any], dict[str, dict[str, Any]]], urn: str) -> dict[str, Any]:
    """A resource's planned state: its options (`ignoreChanges`) and `dependencies` besides its inputs."""
    [state] = [step["newState"] for step in plan[0]["steps"] if step["urn"] == urn]
    return state


def test_the_swarms_secrets_are_the_bootstrap_secrets_and_the_reached_machines_host_keys(graph: PlanGraph) -> None:
    names = sorted(r.name.removeprefix(f"{STACK}-swarm-") for r in _swarm(graph, SECRET))
    assert names == sorted([*BOOTSTRAP_SECRETS, "host-key-bastion", "host-key-manager-1"])
    for secret in _swarm(graph, SECRET):
        assert secret.inputs["secretId"] == secret.name, "the id Secret Manager knows it by is its resource name"


def test_each_secret_stays_in_the_stacks_region_under_the_stacks_key(graph: PlanGraph) -> None:
    [key] = [r for r in graph.of_type("gcp:kms/cryptoKey:CryptoKey") if r.name == f"{STACK}-storage-key"]
    for secret in _swarm(graph, SECRET):
        replicas = secret.inputs["replication"]["userManaged"]["replicas"]
        assert "auto" not in secret.inputs["replication"], secret.name
        assert [replica["location"] for replica in replicas] == ["us-central1"], f"{secret.name}: user-managed, in the stack's region only"
        assert [replica["customerManagedEncryption"]["kmsKeyName"] for replica in replicas] == [key.id], secret.name
        assert secret.inputs["labels"].keys() >= REQUIRED_LABELS, secret.name
        assert secret.inputs["labels"]["name"] == secret.name


def test_the_placeholder_version_is_never_rewritten_and_the_host_keys_are_the_generated_keys(
    graph: PlanGraph, plan: tuple[dict[str, Any], dict[str, dict[str, Any]]]
) -> None:
    """A placeholder written again would be the latest version, and a replaced manager-1 would take
    the Swarm for unformed and initialise a second one."""
    revealed = plan[1]
    versions = {r.name.removeprefix(f"{STACK}-swarm-").removesuffix("-value"): r for r in _swarm(graph, VERSION)}
    assert sorted(versions) == sorted([*BOOTSTRAP_SECRETS, "host-key-bastion", "host-key-manager-1"])
    for name, version in versions.items():
        data = revealed[version.urn]["secretData"]
        assert version.inputs["secretData"] == "[secret]", f"{name}: shown as a secret"
        assert version.inputs["enabled"] is True
        if name in BOOTSTRAP_SECRETS:
            assert data == PLACEHOLDER
            assert _state(plan, version.urn)["ignoreChanges"] == ["secretData"], f"{name}: the managers publish new versions; Pulumi keeps its own"
        else:
            assert data.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
            assert not _state(plan, version.urn).get("ignoreChanges"), f"{name}: a new key is a new version"


def test_every_machine_is_created_after_the_versions_it_reads(graph: PlanGraph, plan: tuple[dict[str, Any], dict[str, dict[str, Any]]]) -> None:
    """Otherwise a manager could publish before the placeholder's version exists, and be overwritten by it."""
    versions = {r.name.removeprefix(f"{STACK}-swarm-").removesuffix("-value"): r.urn for r in _swarm(graph, VERSION)}
    machines = graph.of_type("gcp:compute/instance:Instance")
    assert len(machines) == 10
    for machine in machines:
        if machine.name.endswith("bastion-1"):
            reads = {versions["host-key-bastion"]}
        else:
            reads = {versions[secret] for secret in BOOTSTRAP_SECRETS} | ({versions["host-key-manager-1"]} if machine.name.endswith("manager-1") else set())
        assert reads <= set(_state(plan, machine.urn)["dependencies"]), machine.name


def test_secret_names_and_disk_devices_are_what_the_apis_and_udev_take() -> None:
    assert secret_name("p-1", "s") == "projects/p-1/secrets/s"
    assert disk_device("projects/p/zones/us-central1-a/disks/gcp-prod-storage-worker-1-data") == "/dev/disk/by-id/google-gcp-prod-storage-worker-1-data"
