"""Azure compute under the offline plan's Azure mocks: each role's managed identity holds exactly the
role assignments of its capabilities, on single secrets and the registry; machines are zonal, log in
by key only, have no public address (but the bastion, whose address is the stack's only one), join
their role's application security group and forward nothing; data disks sit at LUN = slot; what only
a replacement applies is held back and reported."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.compute import Attachment, Compute, ComputePlan, ComputeResult
from components.swarm import BOOTSTRAP_SECRETS, MANAGER_ADDRESS, MANAGER_TOKEN, WORKER_TOKEN, hostname
from dpc.config import settings_from_stack_file
from dpc.model import Capability, Role
from dpc.settings import Settings
from dpc.topology import derive
from providers.azure.compute import ADMIN_USER, IGNORED, bootstrap_digest, build_compute, identity_id, identity_name
from providers.azure.mocks import AzureMocks, uuid_of
from providers.azure.provider import AzureStack
from providers.azure.vault import ACR_PULL, KEY_VAULT_SECRETS_OFFICER, KEY_VAULT_SECRETS_USER, BuiltInRole
from tests.mocked_program import run_mocked
from tests.unit.azure_program import GROUP, LOCATION, PREFIX, STACK, SUBSCRIPTION, TENANT, azure_home, mocks

ROOT = Path(__file__).resolve().parents[2]
VAULT = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.KeyVault/vaults/dpcazureprod"
KEY = "https://dpcazureprod.vault.azure.net/keys/stack"
REGISTRY = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.ContainerRegistry/registries/dpcazureprod"
DISK_ENCRYPTION_SET = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Compute/diskEncryptionSets/dpcazureprod-disks"
IMAGE_LIST = f"{VAULT}/secrets/{STACK}-registry-images"
DEPLOY_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRlcGxveWtleWZvcnRlc3Rpbmdvbmx5MTIzNDU2Nzg5MA"
VM = "azure-native:compute:VirtualMachine"
NIC = "azure-native:network:NetworkInterface"
PUBLIC_IP = "azure-native:network:PublicIPAddress"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
ASSIGNMENT = "azure-native:authorization:RoleAssignment"


def secret_id(name: str) -> str:
    return f"{VAULT}/secrets/{STACK}-swarm-{name}"


def disk_id(name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Compute/disks/{STACK}-storage-{name}"


HOST_KEYS = {Role.MANAGER: (secret_id("host-key-manager-1"),), Role.BASTION: (secret_id("host-key-bastion"),)}


def role_id(role: BuiltInRole) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{role.guid}"


READER, OFFICER = KEY_VAULT_SECRETS_USER.guid, KEY_VAULT_SECRETS_OFFICER.guid
EXPECTED: dict[Capability, Callable[[Role], set[tuple[str, str]]]] = {
    Capability.READ_MANAGER_JOIN: lambda _: {(secret_id(MANAGER_TOKEN), READER), (secret_id(MANAGER_ADDRESS), READER)},
    Capability.READ_WORKER_JOIN: lambda _: {(secret_id(WORKER_TOKEN), READER), (secret_id(MANAGER_ADDRESS), READER)},
    Capability.PUBLISH_JOIN: lambda _: {(secret_id(name), OFFICER) for name in BOOTSTRAP_SECRETS},
    Capability.WRITE_BACKUPS: lambda _: set(),
    Capability.PULL_IMAGES: lambda _: {(REGISTRY, ACR_PULL.guid), (IMAGE_LIST, READER)},
    Capability.READ_HOST_KEY: lambda role: {(key, READER) for key in HOST_KEYS[role]},
}
"""What each capability must grant (scope, built-in role), written apart from the builder that grants
it. Writing backups grants nothing: pgBackRest signs in to the offsite account with its key."""


def stack_settings(stack: str = STACK) -> Settings:
    return settings_from_stack_file(ROOT / f"Pulumi.{stack}.yaml")


class RunningMocks(AzureMocks):
    """The Azure mocks, with some machines reporting other values than asked for (as deployed earlier)."""

    def __init__(self, running: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__(SUBSCRIPTION, TENANT, LOCATION)
        self.running = running

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        resource_id, state = super().new_resource(args)
        if args.typ == VM:
            for key, value in self.running.get(str(state["vmName"]), {}).items():
                state[key] = value(state[key]) if callable(value) else value
        return resource_id, state


@dataclass
class Built:
    settings: Settings
    plan: ComputePlan
    inputs: dict[str, dict[str, Any]]
    steps: dict[str, dict[str, Any]]
    outputs: dict[str, Any]

    def of_type(self, typ: str) -> dict[str, dict[str, Any]]:
        return {urn.rsplit("::", 1)[-1]: self.inputs[urn] for urn, step in self.steps.items() if step["newState"]["type"] == typ}

    def state(self, typ: str, name: str) -> dict[str, Any]:
        [state] = [step["newState"] for urn, step in self.steps.items() if step["newState"]["type"] == typ and urn.endswith(f"::{name}")]
        return state

    def machine(self, node: str) -> dict[str, Any]:
        return self.of_type(VM)[f"{STACK}-compute-{node}"]

    def interface(self, node: str) -> dict[str, Any]:
        return self.of_type(NIC)[f"{STACK}-compute-{node}-nic"]


def compute_plan(settings: Settings, boot_after: pulumi.Resource, capabilities: Mapping[Role, tuple[Capability, ...]] | None = None) -> ComputePlan:
    topology = derive(settings)
    out = pulumi.Output.from_input
    attachments: dict[str, tuple[Attachment, ...]] = {}
    for volume in topology.volumes:
        slot = len(attachments.get(volume.node, ()))
        attachments[volume.node] = (*attachments.get(volume.node, ()), Attachment(out(disk_id(volume.name)), slot))
    registry = out(REGISTRY)
    """Every image's repository is the registry on Azure, as its builder gives them: one output."""
    network = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Network/virtualNetworks/vnet/subnets"
    return ComputePlan(
        nodes=topology.nodes,
        bastion=topology.bastion,
        hostname_prefix=PREFIX,
        image=settings.image,
        private_subnet_ids={zone: out(f"{network}/private-{zone}") for zone in settings.zones},
        public_subnet_ids={zone: out(f"{network}/public-{zone}") for zone in settings.zones},
        firewall_group_ids={group: out(f"asg-{group}") for group in (*(r.value for r in Role), "load-balancer")},
        user_data_base64={node.name: out(f"H4sI-{node.name}") for node in topology.nodes},
        bastion_user_data=out("#cloud-config\n"),
        boot_after={zone: (boot_after,) for zone in settings.zones},
        backup_agent_node=topology.backup_agent.name,
        attachments=attachments,
        key_id=out(KEY),
        bootstrap_secret_ids={name: out(secret_id(name)) for name in BOOTSTRAP_SECRETS},
        backup_bucket_name=out("dpcazureprodbackups/backups"),
        image_repository_ids=(registry, registry),
        image_list_id=out(IMAGE_LIST),
        host_key_ids={role: tuple(out(k) for k in keys) for role, keys in HOST_KEYS.items()},
        capabilities=capabilities or topology.capabilities,
        deploy_public_key=out(DEPLOY_KEY),
    )


def build(
    settings: Settings | None = None,
    *,
    azure_mocks: AzureMocks | None = None,
    change: Callable[[ComputePlan], ComputePlan] = lambda plan: plan,
    stack: str = STACK,
) -> Built:
    """Runs the Azure compute builder inside its component under the Azure mocks."""
    settings = settings or stack_settings()
    outputs: dict[str, Any] = {}
    plans: list[ComputePlan] = []

    def program() -> None:
        home, context = azure_home(settings, stack)
        nat = pulumi.CustomResource("azure-native:network:NatGateway", f"{stack}-network-nat", {"natGatewayName": "nat", "resourceGroupName": GROUP})
        plan = change(compute_plan(settings, nat))
        plans.append(plan)
        result: ComputeResult = Compute(f"{stack}-compute", plan, lambda scope, p: build_compute(home, scope, p), context).result
        pulumi.Output.all(result.instance_ids, result.private_ips, result.bastion_public_ip, result.awaiting_replacement).apply(
            lambda values: outputs.update(zip(("instance_ids", "private_ips", "bastion_public_ip", "awaiting_replacement"), values, strict=True))
        )

    monitor = run_mocked(azure_mocks or mocks(), program, stack)
    return Built(settings, plans[0], monitor.revealed, {step["urn"]: step for step in monitor.steps}, outputs)


@pytest.fixture(scope="module")
def prod() -> Built:
    return build()


def principal(role: Role) -> str:
    """The principal id the mocks give a role's identity, from its resource id."""
    return uuid_of(f"principal/{identity_id_of(role)}")


def identity_id_of(role: Role) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity_name(PREFIX, role)}"


def granted(built: Built, role: Role) -> set[tuple[str, str]]:
    """(scope, built-in role GUID) of every role assignment the role's identity holds."""
    return {
        (inputs["scope"], inputs["roleDefinitionId"].rsplit("/", 1)[-1])
        for inputs in built.of_type(ASSIGNMENT).values() if inputs["principalId"] == principal(role)
    }


def expected(capabilities: Mapping[Role, tuple[Capability, ...]], role: Role) -> set[tuple[str, str]]:
    return set().union(*(EXPECTED[capability](role) for capability in capabilities[role]))


def test_each_role_holds_exactly_the_role_assignments_of_its_capabilities(prod: Built) -> None:
    capabilities = derive(prod.settings).capabilities
    for role in Role:
        assert granted(prod, role) == expected(capabilities, role), role
    assignments = list(prod.of_type(ASSIGNMENT).values())
    assert len(assignments) == sum(len(expected(capabilities, role)) for role in Role), "an assignment for no role's identity, or one twice"
    for inputs in assignments:
        assert inputs["principalType"] == "ServicePrincipal"
        assert inputs["roleDefinitionId"].startswith(f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/")
        assert inputs["scope"].startswith((f"{VAULT}/secrets/", REGISTRY)), f"never the vault, resource group or subscription: {inputs['scope']}"


def test_a_capability_added_to_a_role_shows_up_as_its_grant_and_nothing_else() -> None:
    settings = stack_settings()
    capabilities = dict(derive(settings).capabilities)
    capabilities[Role.WORKER] = (*capabilities[Role.WORKER], Capability.PUBLISH_JOIN)
    built = build(settings, change=lambda plan: replace(plan, capabilities=capabilities))
    added = granted(built, Role.WORKER) - expected(derive(settings).capabilities, Role.WORKER)
    assert added == {(secret_id(name), OFFICER) for name in BOOTSTRAP_SECRETS}


def test_one_identity_per_role_and_each_machine_runs_as_its_roles(prod: Built) -> None:
    identities = prod.of_type(IDENTITY)
    assert sorted(inputs["resourceName"] for inputs in identities.values()) == sorted(identity_name(PREFIX, role) for role in Role)
    for inputs in identities.values():
        assert inputs["location"] == LOCATION and inputs["resourceGroupName"] == GROUP and inputs["tags"]["Stack"] == STACK
    for node in (*prod.plan.nodes, prod.plan.bastion):
        machine = prod.machine(node.name)
        assert machine["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity_id_of(node.role)]}, node.name


def test_the_user_data_names_each_roles_identity_as_the_compute_builder_creates_it() -> None:
    """The swarm builder renders `identity_id` before the identity exists; the mocks' ARM id of the
    created identity is what it must match."""
    values: dict[Role, str] = {}

    def program() -> None:
        home = AzureStack(pulumi.Output.from_input(GROUP), LOCATION, SUBSCRIPTION, TENANT)
        for role in Role:
            identity_id(home, PREFIX, role).apply(lambda value, role=role: values.__setitem__(role, value))

    run_mocked(mocks(), program, STACK)
    assert values == {role: identity_id_of(role) for role in Role}


def test_no_public_address_but_the_bastions(prod: Built) -> None:
    [(name, address)] = prod.of_type(PUBLIC_IP).items()
    assert name == f"{STACK}-compute-bastion-1-ip"
    assert address["sku"] == {"name": "Standard", "tier": "Regional"} and address["publicIPAllocationMethod"] == "Static"
    assert address["zones"] == [prod.plan.bastion.zone]
    for node in (*prod.plan.nodes, prod.plan.bastion):
        [configuration] = prod.interface(node.name)["ipConfigurations"]
        if node.role is Role.BASTION:
            assert "publicIPAddress" in configuration and configuration["subnet"]["id"].endswith(f"/public-{node.zone}")
        else:
            assert "publicIPAddress" not in configuration and configuration["subnet"]["id"].endswith(f"/private-{node.zone}"), node.name
    assert prod.outputs["bastion_public_ip"].startswith("203.0.113.")


def test_interfaces_join_their_roles_security_group_and_forward_nothing(prod: Built) -> None:
    for node in (*prod.plan.nodes, prod.plan.bastion):
        interface = prod.interface(node.name)
        [configuration] = interface["ipConfigurations"]
        assert configuration["applicationSecurityGroups"] == [{"id": f"asg-{node.role.value}"}]
        assert configuration["privateIPAllocationMethod"] == "Dynamic"
        assert interface["enableIPForwarding"] is False
        assert "networkSecurityGroup" not in interface, "the subnets' security group holds the rules"
        [reference] = prod.machine(node.name)["networkProfile"]["networkInterfaces"]
        assert reference["id"].endswith(f"/networkInterfaces/{STACK}-compute-{node.name}-nic") and reference["primary"] is True


def test_machines_are_zonal_of_their_size_and_image_and_log_in_by_key_only(prod: Built) -> None:
    image = prod.settings.image
    for node in (*prod.plan.nodes, prod.plan.bastion):
        machine = prod.machine(node.name)
        host = hostname(PREFIX, node)
        assert machine["vmName"] == host and machine["zones"] == [node.zone] and machine["hardwareProfile"] == {"vmSize": node.machine_type}
        offer, sku, version = image.name.split(":")
        assert machine["storageProfile"]["imageReference"] == {"publisher": image.owner, "offer": offer, "sku": sku, "version": version}
        profile = machine["osProfile"]
        assert profile["computerName"] == host and profile["adminUsername"] == ADMIN_USER
        assert "adminPassword" not in profile
        linux = profile["linuxConfiguration"]
        assert linux["disablePasswordAuthentication"] is True
        assert linux["ssh"]["publicKeys"] == [{"path": f"/home/{ADMIN_USER}/.ssh/authorized_keys", "keyData": DEPLOY_KEY}], "the deployment's key, no other"
        assert profile["allowExtensionOperations"] is False
        assert machine["securityProfile"] == {
            "securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}, "encryptionAtHost": True,
        }
        assert machine["diagnosticsProfile"] == {"bootDiagnostics": {"enabled": True}}, "managed boot diagnostics: no storage account of the stack"
        assert machine["tags"]["Node"] == node.name and machine["tags"]["Role"] == node.role.value and machine["tags"]["Stack"] == STACK


def test_custom_data_is_the_swarms_user_data(prod: Built) -> None:
    for node in prod.plan.nodes:
        assert prod.machine(node.name)["osProfile"]["customData"] == f"H4sI-{node.name}"
    bastion = prod.machine(prod.plan.bastion.name)["osProfile"]["customData"]
    assert base64.b64decode(bastion).decode() == "#cloud-config\n", "custom data is base64, the bastion's plain user data encoded"


def test_disks_os_premium_deleted_with_the_machine_data_at_their_slots_detached(prod: Built) -> None:
    for node in (*prod.plan.nodes, prod.plan.bastion):
        storage = prod.machine(node.name)["storageProfile"]
        os_disk = storage["osDisk"]
        assert os_disk["managedDisk"]["storageAccountType"] == "Premium_LRS" and os_disk["diskSizeGB"] == node.root_volume_gb
        assert os_disk["managedDisk"]["diskEncryptionSet"] == {"id": DISK_ENCRYPTION_SET}
        assert os_disk["createOption"] == "FromImage" and os_disk["deleteOption"] == "Delete"
        attached = prod.plan.attachments.get(node.name, ())
        wanted = [disk_id(f"{node.name}-{p}") for p in (("data", "wal") if node.role is Role.WORKER else ())]
        wanted += [disk_id(f"{node.name}-backups")] if node.name == prod.plan.backup_agent_node else []
        disks = storage.get("dataDisks", [])
        assert [d["managedDisk"]["id"] for d in disks] == wanted
        assert [d["lun"] for d in disks] == [a.slot for a in attached] == list(range(len(wanted))), "LUN = slot, where the bootstrap looks"
        assert all(d["createOption"] == "Attach" and d["caching"] == "None" and d["deleteOption"] == "Detach" for d in disks), node.name


def test_every_etcd_and_patroni_member_has_a_zone_of_its_own_in_prod(prod: Built) -> None:
    zones = {name: inputs["zones"] for name, inputs in prod.of_type(VM).items()}
    for role in (Role.MANAGER, Role.WORKER):
        members = [zones[f"{STACK}-compute-{n.name}"][0] for n in prod.plan.nodes if n.role is role]
        assert len(members) >= 3 and len(set(members)) == len(members), (role, members)
    assert {zone for [zone] in zones.values()} == set(prod.settings.zones)


def test_machines_wait_for_the_way_out_and_their_grants_and_keep_what_only_a_replacement_applies(prod: Built) -> None:
    nat = next(urn for urn in prod.steps if urn.endswith(f"::{STACK}-network-nat"))
    assignments = {urn: step["newState"]["inputs"]["principalId"] for urn, step in prod.steps.items() if step["newState"]["type"] == ASSIGNMENT}
    for urn, step in prod.steps.items():
        state = step["newState"]
        if state["type"] != VM:
            continue
        assert state["ignoreChanges"] == sorted(IGNORED)
        assert (nat in state["dependencies"]) is not urn.endswith("-bastion-1"), urn
        role = next(node.role for node in (*prod.plan.nodes, prod.plan.bastion) if urn.endswith(f"-compute-{node.name}"))
        grants = {assignment for assignment, who in assignments.items() if who == principal(role)}
        assert grants and grants <= set(state["dependencies"]), urn


def test_machines_are_protected_in_prod_only(prod: Built) -> None:
    assert all(step["newState"]["protect"] is True for step in prod.steps.values() if step["newState"]["type"] == VM)
    dev = build(stack_settings("azure-dev"), stack="azure-dev")
    assert all(not step["newState"].get("protect") for step in dev.steps.values() if step["newState"]["type"] == VM)


def test_results_are_machine_ids_and_private_addresses(prod: Built) -> None:
    for node in prod.plan.nodes:
        assert prod.outputs["instance_ids"][node.name] == (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Compute/virtualMachines/{hostname(PREFIX, node)}"
        )
        assert prod.outputs["private_ips"][node.name].startswith("10.0.")
    assert prod.outputs["awaiting_replacement"] == []


def test_a_machine_running_other_than_asked_awaits_replacement() -> None:
    running: dict[str, Mapping[str, Any]] = {
        f"{PREFIX}-worker-2": {"hardwareProfile": {"vmSize": "Standard_E4s_v5"}},
        f"{PREFIX}-manager-1": {"tags": lambda tags: {**tags, "Bootstrap": bootstrap_digest("H4sI-older")}},
        f"{PREFIX}-app-1": {"tags": lambda tags: {**tags, "Bootstrap": bootstrap_digest("H4sI-app-1")}},
    }
    built = build(azure_mocks=RunningMocks(running))
    assert built.outputs["awaiting_replacement"] == ["manager-1", "worker-2"]
