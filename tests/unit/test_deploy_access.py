"""How `pulumi up` reaches the Swarm (`components.access`, `components.readiness`): with an identity
the stack owns, host keys known in advance, and nothing on the Swarm before it is whole.
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
from pathlib import Path

import pytest

from components.access import OFFLINE_PLAN_VARIABLE, _written, known_hosts, write_client_files  # pyright: ignore[reportPrivateUsage]
from components.compute import awaiting_replacement
from providers.aws.mocks import AwsMocks
from review.mocks import _generated  # pyright: ignore[reportPrivateUsage]  # the mocks' own stand-in
from tests.plan_graph import PlanGraph
from tests.unit.conftest import planned

COMMAND = "command:remote:Command"
DOCKER_PROVIDER = "pulumi:providers:docker"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"


def _mock_public_key(graph: PlanGraph, name: str) -> str:
    return str(_generated(PRIVATE_KEY, graph.named(name, PRIVATE_KEY).name, {})["publicKeyOpenssh"])


def test_the_gate_waits_on_manager_1_for_every_node_through_the_bastion_with_known_host_keys(graph: PlanGraph, stack: str) -> None:
    _, revealed = planned(stack)
    gate = graph.named("swarm-ready-nodes", COMMAND)
    connection = revealed[gate.urn]["connection"]
    assert gate.inputs["create"] == "/usr/local/sbin/dpc-swarm-ready --timeout 1800"
    assert gate.inputs["connection"] == "[secret]"
    assert connection["user"] == connection["proxy"]["user"] == "admin"
    assert connection["hostKey"] == _mock_public_key(graph, "access-manager-1-host-key")
    assert connection["proxy"]["hostKey"] == _mock_public_key(graph, "access-bastion-host-key")
    assert connection["privateKey"] == connection["proxy"]["privateKey"] != ""
    instances = {r.name: r.id for r in graph.of_type("aws:ec2/instance:Instance") if not r.name.endswith("bastion-1")}
    assert gate.inputs["triggers"] == [instances[name] for name in sorted(instances, key=lambda n: n.split("-", 2)[2])]


def test_the_docker_provider_checks_host_keys_strictly_on_both_hops_and_waits_for_the_gate(graph: PlanGraph, stack: str) -> None:
    plan, _ = planned(stack)
    provider = graph.named(f"{stack}-docker", DOCKER_PROVIDER)
    options = provider.inputs["sshOpts"] if isinstance(provider.inputs["sshOpts"], list) else json.loads(provider.inputs["sshOpts"])
    values = [options[i + 1] for i, flag in enumerate(options) if flag == "-o"]
    assert f"IdentityFile=~/.ssh/dpc/{stack}/deploy_key" in values
    assert f"UserKnownHostsFile=~/.ssh/dpc/{stack}/known_hosts" in values
    assert "StrictHostKeyChecking=yes" in values and not any("accept-new" in v or "ProxyJump" in v for v in values)
    jump = next(v for v in values if v.startswith("ProxyCommand="))
    assert all(f"-o {v}" in jump for v in values if not v.startswith("ProxyCommand="))
    step = next(s for s in plan["steps"] if s["urn"] == provider.urn)
    assert graph.named("swarm-ready-nodes", COMMAND).urn in step["newState"]["dependencies"]


def test_every_docker_resource_goes_through_the_provider_that_waits(graph: PlanGraph, stack: str) -> None:
    provider = graph.named(f"{stack}-docker", DOCKER_PROVIDER)
    docker = [r for r in graph.resources if r.type.startswith("docker:")]
    assert docker and all(r.provider.startswith(provider.urn) for r in docker)


def test_services_wait_until_every_node_holds_the_images(graph: PlanGraph) -> None:
    gate = graph.named("images-ready-nodes", COMMAND)
    assert gate.inputs["create"].startswith("DPC_IMAGES_READY_WAIT_SECONDS=1200 /usr/local/sbin/dpc-images-ready ")
    references = gate.inputs["create"].split()[2:]
    assert references == sorted(references) and all("@sha256:" in r for r in references)


def test_the_identities_are_protected_in_prod_only(graph: PlanGraph, stack: str) -> None:
    keys = [r for r in graph.of_type(PRIVATE_KEY) if "-access-" in r.name]
    assert sorted(r.name.removeprefix(f"{stack}-access-") for r in keys) == ["bastion-host-key", "deploy-key", "manager-1-host-key"]
    assert all(r.inputs["algorithm"] == "ED25519" and r.protect is (stack == "prod") for r in keys)


def test_no_machine_is_protected_against_termination(graph: PlanGraph) -> None:
    """A replacement must be able to delete the machine it replaces; the data is on protected volumes."""
    assert all("disableApiTermination" not in r.inputs for r in graph.of_type("aws:ec2/instance:Instance"))


def test_the_offline_plan_writes_nothing_into_the_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFFLINE_PLAN_VARIABLE, "1")
    assert _written("unit-no-files", ["KEY", "10.0.0.5", "198.51.100.1", "ssh-ed25519 B", "ssh-ed25519 A"]) == "ssh://admin@10.0.0.5"
    assert not (Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh" / "dpc" / "unit-no-files").exists()


def test_the_client_files_are_written_private(tmp_path: Path) -> None:
    write_client_files("s", "KEY\n", known_hosts({"10.0.0.5": "ssh-ed25519 B\n", "198.51.100.1": "ssh-ed25519 A"}), home=tmp_path)
    directory = tmp_path / ".ssh" / "dpc" / "s"
    assert (directory / "deploy_key").read_text() == "KEY\n"
    assert (directory / "known_hosts").read_text() == "10.0.0.5 ssh-ed25519 B\n198.51.100.1 ssh-ed25519 A\n"
    assert {p.stat().st_mode & 0o777 for p in directory.iterdir()} == {0o600} and directory.stat().st_mode & 0o777 == 0o700


def test_machines_whose_type_image_or_bootstrap_changed_are_listed_not_restarted() -> None:
    wanted = {"worker-1": ("r6i.4xlarge", "ami-1", "boot"), "worker-2": ("r6i.4xlarge", "ami-1", "boot"), "worker-3": ("r6i.4xlarge", "ami-1", "boot")}
    running = {"worker-1": ("r6i.2xlarge", "ami-1", "boot"), "worker-2": ("r6i.4xlarge", "ami-1", "old boot"), "worker-3": ("r6i.4xlarge", "ami-1", "boot")}
    assert awaiting_replacement(wanted, running) == ["worker-1", "worker-2"]
    assert awaiting_replacement(wanted, {"worker-1": (None, None, None)}) == [], "a machine being created waits for nothing"


def test_a_new_stack_has_no_machine_awaiting_replacement(graph: PlanGraph, stack: str) -> None:
    plan, _ = planned(stack)
    outputs = next(s for s in plan["steps"] if s["newState"]["type"] == "pulumi:pulumi:Stack")["newState"]["outputs"]
    assert outputs["machinesAwaitingReplacement"] == []


def test_the_pinned_image_resolves_although_ec2_has_deprecated_it() -> None:
    """The default pin was made on 2024-12-01: EC2 deprecates it two years later, and a lookup that
    leaves deprecated images out (as the program did) then finds nothing."""
    pinned = {"owners": ["136693071363"], "filters": [{"name": "name", "values": ["debian-12-amd64-20241201-1948"]}]}
    before, after = AwsMocks("us-east-1", datetime.date(2026, 11, 30)), AwsMocks("us-east-1", datetime.date(2026, 12, 2))
    assert before._answer("aws:ec2/getAmi:getAmi", pinned)["id"].startswith("ami-")  # pyright: ignore[reportPrivateUsage]
    with pytest.raises(ValueError, match="deprecated"):
        after._answer("aws:ec2/getAmi:getAmi", pinned)  # pyright: ignore[reportPrivateUsage]
    assert after._answer("aws:ec2/getAmi:getAmi", pinned | {"includeDeprecated": True})["id"].startswith("ami-")  # pyright: ignore[reportPrivateUsage]
