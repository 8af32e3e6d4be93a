"""Azure's Swarm formation under the offline plan's Azure mocks (providers/azure/swarm.py): the
bootstrap secrets and the reached machines' host keys are secrets of the stack's vault, the
placeholder never written again by Pulumi, the results their Resource Manager ids; every node's
user data names the vault, its role's identity and the stack's registry, finds its data disks at
their LUNs, keeps every container (the backup agent's too) from the instance metadata, and holds no
secret; all of it known in a stack's first preview."""

from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.swarm import BASTION_HOST_KEY, BOOTSTRAP_SECRETS, MANAGER_TOKEN, PLACEHOLDER, WORKER_TOKEN, Mount, SshHostKey, Swarm, SwarmLayout, SwarmPlan
from dpc.config import settings_from_stack_file
from dpc.model import Role
from dpc.topology import derive
from providers.azure.compute import identity_name
from providers.azure.swarm import PUBLISHED_BY_NODES, build_swarm, disk_device
from tests.mocked_program import run_mocked
from tests.unit.azure_program import GROUP, PREFIX, STACK, SUBSCRIPTION, TENANT, azure_home, mocks
from tests.unit.conftest import planned

ROOT = Path(__file__).resolve().parents[2]
VAULT_NAME = "dpcazureprod0a1b2c3d"
KEY = f"https://{VAULT_NAME}.vault.azure.net/keys/stack"
VAULT = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.KeyVault/vaults/{VAULT_NAME}"
REGISTRY = "dpcazureprod0a1b2c3d.azurecr.io"
IMAGE_LIST = f"{VAULT_NAME}-images"
SECRETS_URI = f"https://{VAULT_NAME}.vault.azure.net/secrets"
"""Where the nodes read each secret: its identifier, `<vault URI>/secrets/<name>`."""
DEPLOY_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRlcGxveWtleWZvcnRlc3Rpbmdvbmx5MTIzNDU2Nzg5MA"
PRIVATE_KEY_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQ"
SECRET = "azure-native:keyvault:Secret"
READER = "test:index:Machine"
"""A stand-in for a machine that reads its user data: the engine orders it after what that names."""
TOPOLOGY = derive(settings_from_stack_file(ROOT / f"Pulumi.{STACK}.yaml"))


def private_key(machine: str) -> str:
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PRIVATE_KEY_BODY}{machine}\n-----END OPENSSH PRIVATE KEY-----\n"


@dataclass
class Built:
    inputs: dict[str, dict[str, Any]]
    steps: dict[str, dict[str, Any]]
    user_data: dict[str, str] = field(default_factory=dict[str, str])
    """Each node's user data, decompressed, and the bastion's (`bastion-1`)."""
    ids: dict[str, str] = field(default_factory=dict[str, str])
    """The bootstrap secrets' and the host keys' (`host-key-<machine>`) Resource Manager ids."""

    def secrets(self) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """Each secret's (revealed inputs, recorded state) by its name without the component's."""
        return {
            urn.rsplit("::", 1)[-1].removeprefix(f"{STACK}-swarm-"): (self.inputs[urn], step["newState"])
            for urn, step in self.steps.items() if step["newState"]["type"] == SECRET
        }


def build(*, preview: bool = False) -> Built:
    """Runs the Azure swarm builder inside its component under the Azure mocks (as a first preview with `preview`)."""
    built = Built({}, {})
    settings = TOPOLOGY.settings

    def program() -> None:
        home, context = azure_home(settings)
        out = pulumi.Output.from_input
        mounts: dict[str, tuple[Mount, ...]] = {}
        for volume in TOPOLOGY.volumes:
            mounts[volume.node] = (*mounts.get(volume.node, ()), Mount(out(f"disk-{volume.name}"), volume.mount_point))
        plan = SwarmPlan(
            layout=SwarmLayout(TOPOLOGY.nodes, PREFIX, (), TOPOLOGY.bastion, TOPOLOGY.backup_agent),
            mounts=mounts,
            secrets_key_id=out(KEY),
            deploy_public_key=out(DEPLOY_KEY),
            host_keys={machine: SshHostKey(pulumi.Output.secret(private_key(machine)), out(DEPLOY_KEY)) for machine in ("manager-1", BASTION_HOST_KEY)},
            images_parameter_name=out(IMAGE_LIST),
            registry_server=out(REGISTRY),
        )
        result = Swarm(f"{STACK}-swarm", plan, lambda scope, p: build_swarm(home, scope, p), context).result
        for name, data in (*result.user_data_base64.items(), (TOPOLOGY.bastion.name, result.bastion_user_data)):
            pulumi.CustomResource(READER, f"{STACK}-reader-{name}", {"userData": data})
        for name, data in result.user_data_base64.items():
            data.apply(lambda value, name=name: built.user_data.__setitem__(name, gzip.decompress(base64.b64decode(value)).decode()))
        result.bastion_user_data.apply(lambda value: built.user_data.__setitem__(TOPOLOGY.bastion.name, value))
        for name, arm_id in result.bootstrap_secret_ids.items():
            arm_id.apply(lambda value, name=name: built.ids.__setitem__(name, value))
        for machine, arm_id in result.host_key_ids.items():
            arm_id.apply(lambda value, machine=machine: built.ids.__setitem__(f"host-key-{machine}", value))

    monitor = run_mocked(mocks(preview=preview), program, STACK)
    built.inputs = monitor.revealed
    built.steps = {step["urn"]: step for step in monitor.steps}
    return built


@pytest.fixture(scope="module")
def prod() -> Built:
    return build()


def files(user_data: str) -> dict[str, str]:
    return {entry["path"]: entry["content"] for entry in yaml.safe_load(user_data).get("write_files", [])}


def env(content: str) -> dict[str, str]:
    return {key: value.strip("'") for key, _, value in (line.partition("=") for line in content.splitlines())}


def test_the_swarms_secrets_are_the_bootstrap_secrets_and_the_reached_machines_host_keys_in_the_stack_vault(prod: Built) -> None:
    secrets = prod.secrets()
    assert sorted(secrets) == sorted([*BOOTSTRAP_SECRETS, "host-key-bastion", "host-key-manager-1"])
    for name, (inputs, _) in secrets.items():
        assert inputs["vaultName"] == VAULT_NAME and inputs["resourceGroupName"] == GROUP, name
        assert inputs["secretName"] == f"{STACK}-swarm-{name}", "the name the nodes read it by is its resource name"
        assert inputs["tags"]["Name"] == inputs["secretName"] and inputs["tags"]["Stack"] == STACK
        assert prod.ids[name] == f"{VAULT}/secrets/{STACK}-swarm-{name}", "the grants' scope: this secret alone"


def test_the_placeholder_is_never_written_again_and_the_host_keys_are_the_generated_keys(prod: Built) -> None:
    """Resource Manager writes a secret's value with every update (a tag's too): a placeholder written
    again would be the latest version, and a replaced manager-1 would initialise a second Swarm."""
    for name, (inputs, state) in prod.secrets().items():
        if name in BOOTSTRAP_SECRETS:
            assert inputs["properties"] == {"value": PLACEHOLDER}
            assert state["ignoreChanges"] == sorted(PUBLISHED_BY_NODES) == ["properties", "tags"], name
        else:
            machine = name.removeprefix("host-key-")
            assert inputs["properties"] == {"value": private_key(machine)}
            assert state["inputs"]["properties"] == {"value": "[secret]"}, f"{name}: shown as a secret"
            assert not state.get("ignoreChanges"), f"{name}: a new key is a new value"


def test_each_node_names_the_vault_its_roles_identity_the_registry_and_the_secrets_it_reads(prod: Built) -> None:
    for node in TOPOLOGY.nodes:
        written = files(prod.user_data[node.name])
        settings = env(written["/etc/dpc/node.env"])
        identity = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
        identity += identity_name(PREFIX, node.role)
        assert settings["DPC_IDENTITY"] == identity, node.name
        assert settings["DPC_REGISTRY"] == REGISTRY and settings["DPC_TENANT_ID"] == TENANT
        assert settings["DPC_IMAGES_PARAMETER"] == f"{SECRETS_URI}/{IMAGE_LIST}", "the registry builder's secret, by its identifier"
        token = MANAGER_TOKEN if node.role is Role.MANAGER else WORKER_TOKEN
        assert settings["DPC_JOIN_TOKEN"] == f"{SECRETS_URI}/{STACK}-swarm-{token}"
        assert written["/root/.docker/config.json"] == '{"credsStore": "dpc-azure"}\n'
        assert "/usr/local/bin/docker-credential-dpc-azure" in written


def test_data_disks_are_found_at_the_luns_compute_attaches_them_at(prod: Built) -> None:
    for node in TOPOLOGY.nodes:
        volumes = [volume for volume in TOPOLOGY.volumes if volume.node == node.name]
        lines = files(prod.user_data[node.name])["/etc/dpc/mounts.tsv"].splitlines()
        assert [line.split("\t")[:2] for line in lines] == [[f"/dev/disk/azure/scsi1/lun{slot}", v.mount_point] for slot, v in enumerate(volumes)]
    assert disk_device(3) == "/dev/disk/azure/scsi1/lun3"


def test_every_node_keeps_its_containers_from_the_instance_metadata_the_backup_agents_too(prod: Built) -> None:
    """pgBackRest signs in to the offsite account with its key, so no container needs the node's identity."""
    assert TOPOLOGY.backup_agent in TOPOLOGY.nodes
    for node in TOPOLOGY.nodes:
        written = files(prod.user_data[node.name])
        assert env(written["/etc/dpc/node.env"])["DPC_METADATA_GUARD"] == "true", node.name
        assert "/usr/local/sbin/dpc-metadata-guard" in written


def test_the_deploy_user_is_created_in_place_of_azures_admin_user_and_the_reached_machines_read_their_host_keys(prod: Built) -> None:
    for machine in (*TOPOLOGY.nodes, TOPOLOGY.bastion):
        document = yaml.safe_load(prod.user_data[machine.name])
        assert document["hostname"] == f"{PREFIX}-{machine.name}"
        [user] = document["users"]
        assert user["name"] == "admin" and user["lock_passwd"] is True and user["ssh_authorized_keys"] == [DEPLOY_KEY]
        written = files(prod.user_data[machine.name])
        reached = machine.name in ("manager-1", TOPOLOGY.bastion.name)
        assert ("/etc/dpc/host-key.env" in written) is reached, machine.name
        if reached:
            key = "bastion" if machine.role is Role.BASTION else machine.name
            assert env(written["/etc/dpc/host-key.env"])["DPC_HOST_KEY_SECRET"] == f"{SECRETS_URI}/{STACK}-swarm-host-key-{key}"
        assert PRIVATE_KEY_BODY not in prod.user_data[machine.name], f"{machine.name}: its user data holds a private key"


def test_every_machine_is_created_after_the_secrets_it_reads(prod: Built) -> None:
    """The user data names each secret through the secret itself, so no machine reads or publishes
    before the secret and its first value exist."""
    secrets = {urn.rsplit("::", 1)[-1].removeprefix(f"{STACK}-swarm-"): urn for urn, step in prod.steps.items() if step["newState"]["type"] == SECRET}
    for urn, step in prod.steps.items():
        if step["newState"]["type"] != READER:
            continue
        machine = urn.rsplit("-", 2)[-2] + "-" + urn.rsplit("-", 1)[-1]
        reads = {"host-key-bastion"} if machine == TOPOLOGY.bastion.name else {*BOOTSTRAP_SECRETS, *(("host-key-manager-1",) if machine == "manager-1" else ())}
        assert {secrets[name] for name in reads} <= set(step["newState"]["dependencies"]), machine


def test_the_user_data_is_known_in_a_first_preview() -> None:
    """Everything it names comes from names, so the policy pack reads it before anything exists."""
    preview = build(preview=True)
    assert sorted(preview.user_data) == sorted([*(node.name for node in TOPOLOGY.nodes), TOPOLOGY.bastion.name])
    assert preview.user_data == build().user_data


def test_in_the_stacks_plan_each_node_mounts_at_each_lun_the_volume_compute_attaches_there() -> None:
    """Both ends through the composition: the VM's data disk at LUN n is the volume whose mount point
    the node's user data gives `/dev/disk/azure/scsi1/lun<n>`."""
    plan, revealed = planned(STACK)
    volumes = {f"{STACK}-storage-{volume.name}": volume for volume in TOPOLOGY.volumes}
    checked = 0
    for step in plan["steps"]:
        if step["newState"]["type"] != "azure-native:compute:VirtualMachine" or step["urn"].endswith("-bastion-1"):
            continue
        inputs = revealed[step["urn"]]
        user_data = gzip.decompress(base64.b64decode(inputs["osProfile"]["customData"])).decode()
        mounted = dict(line.split("\t")[:2] for line in files(user_data)["/etc/dpc/mounts.tsv"].splitlines())
        for disk in inputs["storageProfile"].get("dataDisks", []):
            volume = volumes[disk["managedDisk"]["id"].rsplit("/", 1)[-1]]
            assert mounted[disk_device(disk["lun"])] == volume.mount_point, (step["urn"], disk["lun"])
            checked += 1
        assert len(mounted) == len(inputs["storageProfile"].get("dataDisks", [])), step["urn"]
    assert checked == len(TOPOLOGY.volumes)
