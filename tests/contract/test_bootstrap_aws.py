"""The Swarm bootstrap scripts, run for real with Debian's awscli against a local AWS API (moto's SSM
and KMS) and a modelled Swarm (tests/contract/swarm_model.py says what it models and what not):
first boots in any order, the replacement of manager-1 and of a worker, transient failures, and
no join token in any command line or log.

Each machine gets the files of its own rendered user data (the prod stack's), with the SSM
parameters as the deployment creates them: SecureString, under a KMS key, holding the placeholder.
What moto does differently from AWS, and what this relies on: it accepts any credentials (IAM is
not enforced here; the instance roles' grants are checked against the same parameters in the plan
tests), it encrypts SecureString values with its own KMS key material, and it answers at once
(no throttling unless injected: the secret store's outage here is the real client failing to connect).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from components.swarm import MANAGER_ADDRESS, MANAGER_TOKEN, PLACEHOLDER, WORKER_TOKEN, labels_table
from tests.contract.aws_emulator import DEBIAN_AWS_CLI, REGION, ROOT_CREDENTIALS, Emulator, aws_emulator
from tests.contract.cloud_init_cases import PREFIX, SECRET_NAMES, prod_nodes, render_node
from tests.contract.swarm_model import Machine, World, tokens_in

pytestmark = [pytest.mark.contract, pytest.mark.formation]

NODES = ("manager-1", "manager-2", "manager-3", "worker-1", "worker-2")
"""A smaller Swarm than prod's nine nodes, to keep the runs short on a shared machine: three
managers (a quorum that survives one) and two workers are every case the scripts tell apart."""
ADDRESSES = {name: f"10.20.{index}.{10 + index}" for index, name in enumerate(NODES)}
TABLE = labels_table(PREFIX, tuple(node for name, node in prod_nodes().items() if name in NODES))
EXPECTED_LABELS: dict[str, dict[str, str]] = {}
for _host, _label in (line.split("\t") for line in TABLE.splitlines()):
    EXPECTED_LABELS.setdefault(_host, {}).__setitem__(*_label.split("=", 1))
BOOT_SECONDS = 240


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with aws_emulator() as emu:
        yield emu


def _ssm(emu: Emulator) -> object:
    return boto3.client("ssm", region_name=REGION, endpoint_url=emu.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def world(emulator: Emulator, tmp_path: Path) -> Iterator[World]:
    """A fresh AWS account (moto reset), the stack's key and placeholder parameters, an empty Swarm."""
    urllib.request.urlopen(urllib.request.Request(f"{emulator.endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    kms = boto3.client("kms", region_name=REGION, endpoint_url=emulator.endpoint, **{k.lower(): v for k, v in ROOT_CREDENTIALS.items()})
    key_arn = kms.create_key(Description="dpc test stack key")["KeyMetadata"]["Arn"]
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=emulator.endpoint, **{k.lower(): v for k, v in ROOT_CREDENTIALS.items()})
    for name in SECRET_NAMES.values():
        ssm.put_parameter(Name=name, Value=PLACEHOLDER, Type="SecureString", KeyId=key_arn)
    created = World(tmp_path, DEBIAN_AWS_CLI, emulator.endpoint, emulator.environment())
    created.key_arn = key_arn  # type: ignore[attr-defined]
    created.ssm = ssm  # type: ignore[attr-defined]
    yield created


def parameter(world: World, secret: str) -> str:
    return str(world.ssm.get_parameter(Name=SECRET_NAMES[secret], WithDecryption=True)["Parameter"]["Value"])  # type: ignore[attr-defined]


def boot(world: World, name: str, address: str | None = None) -> Machine:
    return world.boot(f"{PREFIX}-{name}", address or ADDRESSES[name], render_node(name, key_arn=world.key_arn, only=NODES))  # type: ignore[attr-defined]


def wait_until_waiting(world: World, machines: list[Machine], deadline: float = BOOT_SECONDS) -> None:
    """Until each machine has slept at least once waiting for manager-1's publication."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        sleeping = {call["machine"] for call in world.calls() if call["argv"][0] == "sleep"} if (world.root / "calls.jsonl").exists() else set()
        if all(m.directory.name in sleeping for m in machines):
            return
        time.sleep(0.5)
    pytest.fail("the nodes never waited for manager-1")


def converge(world: World, managers: list[Machine]) -> None:
    """One run of every live manager's convergence timer."""
    for manager in managers:
        result = manager.run("dpc-swarm-converge")
        assert result.returncode == 0, result.stderr


def form(world: World, *, manager_1_late: bool, converged: bool = True) -> dict[str, Machine]:
    """All nodes' first boot, the others in parallel: manager-1 first, or last (the others waiting
    for it); then (if `converged`) one run of the managers' timers."""
    machines = {name: boot(world, name) for name in NODES}
    others = [machines[name] for name in NODES if name != "manager-1"]
    if not manager_1_late:
        first = machines["manager-1"].run("dpc-swarm-bootstrap")
        assert first.returncode == 0, first.stderr
    started = [(m, m.start("dpc-swarm-bootstrap")) for m in others]
    if manager_1_late:
        wait_until_waiting(world, others)
        first = machines["manager-1"].run("dpc-swarm-bootstrap")
        assert first.returncode == 0, first.stderr
    for machine, process in started:
        stdout, stderr = process.communicate(timeout=BOOT_SECONDS)
        world.outputs.append(stdout + stderr)
        assert process.returncode == 0, f"{machine.hostname}: {stderr}"
    if converged:
        converge(world, [machines[n] for n in NODES if n.startswith("manager-")])
    return machines


def assert_converged(world: World, manager: Machine) -> None:
    """The Swarm is the plan: one Ready node per host, with exactly its labels; the published
    addresses are the live managers'; the published tokens the Swarm's; no second Swarm."""
    swarm = world.swarm
    assert swarm["splits"] == 0, "a second `swarm init`: the Swarm split"
    nodes = swarm["nodes"]
    assert sorted(n["hostname"] for n in nodes) == sorted(f"{PREFIX}-{name}" for name in NODES), "one node per host, no stale one"
    assert all(n["state"] == "ready" for n in nodes)
    assert {n["hostname"]: n["labels"] for n in nodes} == EXPECTED_LABELS
    managers = sorted(n["address"] for n in nodes if n["role"] == "manager")
    assert sorted(n["hostname"] for n in nodes if n["role"] == "manager") == [f"{PREFIX}-manager-{i}" for i in (1, 2, 3)]
    assert sorted(parameter(world, MANAGER_ADDRESS).split()) == managers
    assert parameter(world, MANAGER_TOKEN).strip() == swarm["tokens"]["manager"]
    assert parameter(world, WORKER_TOKEN).strip() == swarm["tokens"]["worker"]
    ready = manager.run("dpc-swarm-ready", "--timeout", "0")
    assert ready.returncode == 0, ready.stderr


def assert_no_token_shown(world: World) -> None:
    """No join token in any command line of any stand-in or of the AWS CLI, nor in any output."""
    tokens = world.swarm["tokens"]
    for call in world.calls():
        assert not tokens_in(" ".join(call["argv"]), tokens), f"a join token on the command line of {call['argv'][0]} on {call['machine']}"
    for output in world.outputs:
        assert not tokens_in(output, tokens), "a join token in a script's output"


def test_first_boot_forms_one_labelled_swarm_with_manager_1_booting_last(world: World) -> None:
    """The other nodes boot first and wait for manager-1 (the replacement tests below form the Swarm
    with manager-1 first); the readiness gate names what is missing until the timers have run."""
    machines = form(world, manager_1_late=True, converged=False)
    early = machines["manager-1"].run("dpc-swarm-ready", "--timeout", "10")
    assert early.returncode == 1
    assert f"{PREFIX}-worker-2: label postgres.patroni-id=2 not applied yet" in early.stderr
    assert "waiting (0s of 10s)" in early.stderr, "progress while it waits"
    assert machines["manager-1"].run("dpc-swarm-ready", "--timeout", "x").returncode == 2
    converge(world, [machines[n] for n in NODES if n.startswith("manager-")])
    assert_converged(world, machines["manager-1"])
    inits = [c for c in world.calls() if c["argv"][0] == "curl" and c["argv"][-1].endswith("/swarm/init")]
    assert [c["machine"] for c in inits] == [machines["manager-1"].directory.name], "only manager-1 initialises, once"
    for name, machine in machines.items():
        enabled = {c["argv"][-1] for c in world.calls() if c["machine"] == machine.directory.name and c["argv"][:3] == ["systemctl", "enable", "--now"]}
        guard = {"dpc-metadata-guard.service"}  # every node here: the backup agent's node, the one without it, is not booted
        assert enabled == {"docker", "dpc-image-pull.timer"} | guard | ({"dpc-swarm-converge.timer"} if name.startswith("manager-") else set()), name
        own = [c["argv"] for c in world.calls() if c["machine"] == machine.directory.name]
        assert ["image-pull"] in own, f"{name} pulls its images once at boot"
        assert own.index(["usermod", "--append", "--groups", "docker", "admin"]) > max(i for i, argv in enumerate(own) if argv[0] == "apt-get"), (
            f"{name}: the deploy user joins the docker group once docker.io has created it"
        )
    for call in world.calls():
        argv = call["argv"]
        if argv[0] == "aws":
            assert argv[1:3] in (["ssm", "get-parameter"], ["ssm", "put-parameter"]), argv
            assert (argv[argv.index("--name") + 1], argv[argv.index("--region") + 1]) in {(name, REGION) for name in SECRET_NAMES.values()}, argv
    assert_no_token_shown(world)


def test_replaced_manager_1_joins_the_existing_swarm_and_membership_converges(world: World) -> None:
    machines = form(world, manager_1_late=False)
    old = machines["manager-1"]
    world.kill(old)
    new = boot(world, "manager-1", "10.20.9.99")
    result = new.run("dpc-swarm-bootstrap")
    assert result.returncode == 0, result.stderr
    assert "joined the Swarm through" in result.stderr
    assert not [c for c in world.calls() if c["machine"] == new.directory.name and c["argv"][-1].endswith("/swarm/init")], "a replacement never re-initialises"
    stale = world.swarm
    followers = [m for m in (machines["manager-2"], machines["manager-3"], new) if not m.is_leader()]
    assert len(followers) == 2
    converge(world, followers)
    assert world.swarm == stale, "a manager that is not the leader changes nothing"
    converge(world, [machines["manager-2"], machines["manager-3"], new])
    assert_converged(world, new)
    assert "10.20.9.99" in parameter(world, MANAGER_ADDRESS).split()
    assert ADDRESSES["manager-1"] not in parameter(world, MANAGER_ADDRESS).split(), "the dead manager's address is no longer published"
    assert_no_token_shown(world)


def test_replaced_worker_gets_its_labels_and_its_stale_node_is_removed(world: World) -> None:
    machines = form(world, manager_1_late=False)
    world.kill(machines["worker-2"])
    new = boot(world, "worker-2", "10.20.9.42")
    assert new.run("dpc-swarm-bootstrap").returncode == 0
    before = machines["manager-1"].run("dpc-swarm-ready", "--timeout", "0")
    assert before.returncode == 1
    assert f"{PREFIX}-worker-2: label postgres.patroni-id=2 not applied yet" in before.stderr
    assert f"{PREFIX}-worker-2: 1 stale node(s) of a replaced machine not removed yet" in before.stderr
    converge(world, [machines[n] for n in ("manager-1", "manager-2", "manager-3")])
    assert_converged(world, machines["manager-1"])
    [worker_2] = [n for n in world.swarm["nodes"] if n["hostname"] == f"{PREFIX}-worker-2"]
    assert worker_2["address"] == "10.20.9.42" and worker_2["labels"]["postgres.patroni-id"] == "2"


def test_transient_failures_are_retried_and_logged_without_secrets(world: World) -> None:
    world.inject("apt-failures", 2)
    world.inject("aws-outage", 3)
    world.inject("join-failures", 1)
    machines = form(world, manager_1_late=False)
    assert_converged(world, machines["manager-1"])
    logs = "\n".join(world.outputs)
    assert "apt-get update failed (exit 1, attempt 1 of 20); retrying in 30s" in logs
    assert "from the secret store failed (exit 255, attempt 1 of 60); retrying in 10s" in logs
    assert "engine POST /swarm/join: " in logs and "Timeout was reached before node joined" in logs
    assert_no_token_shown(world)


def test_a_replaced_manager_1_with_no_live_manager_fails_loudly_and_never_splits(world: World) -> None:
    machines = {name: boot(world, name) for name in ("manager-1", "worker-1")}
    for machine in machines.values():
        assert machine.run("dpc-swarm-bootstrap").returncode == 0
    world.kill(machines["manager-1"])
    new = boot(world, "manager-1", "10.20.9.98")
    result = new.run("dpc-swarm-bootstrap")
    assert result.returncode == 1
    assert "docker swarm init --force-new-cluster" in result.stderr
    assert world.swarm["splits"] == 0
    assert not [c for c in world.calls() if c["machine"] == new.directory.name and c["argv"][-1].endswith("/swarm/init")]


def test_a_kernel_without_encrypted_overlays_never_joins(world: World) -> None:
    manager = boot(world, "manager-1")
    assert manager.run("dpc-swarm-bootstrap").returncode == 0
    worker = boot(world, "worker-1")
    result = worker.run("dpc-swarm-bootstrap", FAKE_KERNEL_MISSING="esp")
    assert result.returncode == 1
    assert "rfc4106(gcm(aes))" in result.stderr and "does not join the Swarm" in result.stderr
    assert result.stderr.rstrip().endswith("dpc-swarm-bootstrap again or replace the machine"), "the last word says what to do"
    assert not [c for c in world.calls() if c["machine"] == worker.directory.name and c["argv"][0] == "curl" and "--unix-socket" in c["argv"]]
    assert [n["hostname"] for n in world.swarm["nodes"]] == [f"{PREFIX}-manager-1"]


