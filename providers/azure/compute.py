"""Azure compute (design §9.8): one zonal VM per node on its zone's private subnet, with no public
address; a user-assigned managed identity per role, granted exactly its capabilities as role
assignments on this stack's secrets and registry (never a resource group or subscription); the
bastion, the one machine with a public address (Standard, static, in its zone), on its zone's public
subnet. Each network interface joins its role's application security group, which the network's
security rules name, and forwards nothing.

Password login is off. Azure then wants an SSH key for the admin user it creates
(`osProfile.adminUsername`), and refuses `admin`, the deploy user, as that name: the admin user is
`ADMIN_USER`, given the deployment's own public key, and the user data (cloud-init's `users`,
without the image's default user) creates the deploy user in its place, so the user Azure names
is never created and no key but the deployment's and the admins' is authorised (design §9.8).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
from pulumi_azure_native import compute, managedidentity, network

from components.base import Scope
from components.compute import Attachment, ComputePlan, ComputeResult, MachineSpec, machines_awaiting
from components.swarm import MANAGER_ADDRESS, MANAGER_TOKEN, WORKER_TOKEN, hostname
from dpc.model import SWARM_ROLES, Capability, Node, Role
from providers.azure.network import public_address
from providers.azure.provider import AzureStack
from providers.azure.vault import (
    ACR_PULL,
    KEY_VAULT_SECRETS_OFFICER,
    KEY_VAULT_SECRETS_USER,
    BuiltInRole,
    disk_encryption_set_id,
    resource_id,
    role_assignment,
    user_identity,
)

ADMIN_USER = "azureuser"
"""The admin user Azure's provisioning names (Azure refuses `admin`); the user data creates the
deploy user instead of it (`CloudHooks.image_default_user`)."""

OS_DISK_TYPE = "Premium_LRS"
"""Premium SSD for the root: Premium SSD v2 cannot boot a VM, and the root holds Docker's images,
where a Standard disk's latency slows every pull and start."""

IGNORED = ["hardwareProfile.vmSize", "osProfile.customData", "storageProfile.imageReference", "storageProfile.osDisk.diskSizeGB", 'tags["Bootstrap"]']
"""What reaches a machine only when it is replaced (`_machine`); Azure replaces a VM for new custom
data or a new image, and restarts it for a new size. The `Bootstrap` tag records the custom data
the machine booted from: Azure never returns custom data, so the tag is what tells a machine
awaiting its new bootstrap."""

BOOTSTRAP_DIGEST_LENGTH = 16
IDENTITY_KIND = "Microsoft.ManagedIdentity/userAssignedIdentities"


def identity_name(prefix: str, role: Role) -> str:
    """The user-assigned identity of a role's machines, named after the stack's machines
    (`dpc-azure-prod-manager`), which keeps two stacks in one resource group apart.
    """
    return f"{prefix}-{role.value}"


def identity_id(azure: AzureStack, prefix: str, role: Role) -> pulumi.Output[str]:
    """A role's identity's resource id, known from names before the identity exists: the user data
    names it to the instance metadata service (`msi_res_id`), since its client id is only known
    once it exists, after the user data is rendered.
    """
    return resource_id(azure, IDENTITY_KIND, identity_name(prefix, role))


def image_reference(owner: str, name: str) -> compute.ImageReferenceArgsDict:
    """The pinned Marketplace image, `image.owner` the publisher and `image.name` `offer:sku:version`,
    never `latest`: a moving version changes under a running stack.
    """
    offer, sku, version = name.split(":")
    return {"publisher": owner, "offer": offer, "sku": sku, "version": version}


def bootstrap_digest(custom_data: str) -> str:
    """A short digest of a machine's custom data, for its `Bootstrap` tag."""
    return hashlib.sha256(custom_data.encode()).hexdigest()[:BOOTSTRAP_DIGEST_LENGTH]


@dataclass(frozen=True)
class Grant:
    """One role assignment of a role's identity: a built-in role on one secret or the registry."""

    name: str
    """The assignment's part of the resource name, stable across runs."""
    role: BuiltInRole
    on: pulumi.Input[str]


def _grants(plan: ComputePlan, role: Role, capability: Capability) -> list[Grant]:
    """The role assignments that give `role`'s identity one capability, on this stack's resources only.

    ACR grants pull on the whole registry (it has no roles per repository), so the registry builder
    gives every image's repository the registry's id, one output: it is granted once, an assignment
    repeated on the same scope being refused by Azure. `WRITE_BACKUPS` needs none: pgBackRest signs in to the offsite account with its key (a Docker
    secret), never as the node. No grant on the stack's key: the disks, vault and registry encrypt
    with it through their own identities (the storage and registry builders grant those).
    """
    secrets = plan.bootstrap_secret_ids
    match capability:
        case Capability.READ_MANAGER_JOIN | Capability.READ_WORKER_JOIN:
            token = MANAGER_TOKEN if capability is Capability.READ_MANAGER_JOIN else WORKER_TOKEN
            return [Grant(f"read-{name}", KEY_VAULT_SECRETS_USER, secrets[name]) for name in (token, MANAGER_ADDRESS)]
        case Capability.PUBLISH_JOIN:
            return [Grant(f"publish-{name}", KEY_VAULT_SECRETS_OFFICER, secrets[name]) for name in sorted(secrets)]
        case Capability.WRITE_BACKUPS:
            return []
        case Capability.PULL_IMAGES:
            return [
                *(Grant(f"pull-images-{index}", ACR_PULL, registry) for index, registry in enumerate(dict.fromkeys(plan.image_repository_ids))),
                Grant("read-image-list", KEY_VAULT_SECRETS_USER, plan.image_list_id),
            ]
        case Capability.READ_HOST_KEY:
            return [Grant(f"read-host-key-{index}", KEY_VAULT_SECRETS_USER, key) for index, key in enumerate(plan.host_key_ids.get(role, ()))]


def role_grants(plan: ComputePlan, role: Role) -> list[Grant]:
    """Everything a role's identity is granted: its capabilities' grants, nothing else."""
    return [grant for capability in plan.capabilities[role] for grant in _grants(plan, role, capability)]


@dataclass(frozen=True)
class Identity:
    """A role's identity and the assignments it must hold before its machines boot."""

    identity: managedidentity.UserAssignedIdentity
    grants: tuple[pulumi.Resource, ...]


def _identity(azure: AzureStack, scope: Scope, plan: ComputePlan, role: Role) -> Identity:
    """The role's identity, granted its capabilities on the resources themselves."""
    identity = user_identity(azure, scope, f"{role.value}-identity", resource_name=identity_name(plan.hostname_prefix, role), Role=role.value)
    grants = tuple(
        role_assignment(azure, scope, f"{role.value}-{grant.name}", role=grant.role, principal_id=identity.principal_id, on=grant.on)
        for grant in role_grants(plan, role)
    )
    return Identity(identity, grants)


def _interface(
    azure: AzureStack, scope: Scope, plan: ComputePlan, node: Node, *, subnet: pulumi.Input[str], public_ip: network.PublicIPAddress | None
) -> network.NetworkInterface:
    """The machine's one interface: a dynamic private address in its zone's subnet, its role's
    application security group, no forwarding; a public address only for the bastion.
    """
    name = scope.child(f"{node.name}-nic")
    configuration: network.NetworkInterfaceIPConfigurationArgsDict = {
        "name": "primary",
        "primary": True,
        "subnet": {"id": subnet},
        "private_ip_allocation_method": network.IPAllocationMethod.DYNAMIC,
        "application_security_groups": [{"id": plan.firewall_group_ids[node.role.value]}],
    }
    if public_ip is not None:
        configuration["public_ip_address"] = {"id": public_ip.id}
    return network.NetworkInterface(
        name,
        network_interface_name=name,
        resource_group_name=azure.resource_group,
        location=azure.location,
        ip_configurations=[configuration],
        enable_ip_forwarding=False,
        tags=scope.tags_with(Name=name, Role=node.role.value, Node=node.name),
        opts=scope.opts(),
    )


def _storage(azure: AzureStack, name: str, plan: ComputePlan, node: Node, attachments: Sequence[Attachment]) -> compute.StorageProfileArgsDict:
    """The pinned image, the OS disk (deleted with the machine, encrypted under the stack's disk
    encryption set as the data disks are) and the data disks at LUN = slot (detached, never deleted,
    when the machine goes), uncached as Premium SSD v2 requires.
    """
    return {
        "image_reference": image_reference(plan.image.owner, plan.image.name),
        "os_disk": {
            "name": f"{name}-os",
            "create_option": compute.DiskCreateOptionTypes.FROM_IMAGE,
            "caching": compute.CachingTypes.READ_WRITE,
            "delete_option": compute.DiskDeleteOptionTypes.DELETE,
            "disk_size_gb": node.root_volume_gb,
            "managed_disk": {"storage_account_type": OS_DISK_TYPE, "disk_encryption_set": {"id": disk_encryption_set_id(azure, plan.key_id)}},
        },
        "data_disks": [
            {
                "lun": attachment.slot,
                "create_option": compute.DiskCreateOptionTypes.ATTACH,
                "managed_disk": {"id": attachment.volume_id},
                "caching": compute.CachingTypes.NONE,
                "delete_option": compute.DiskDeleteOptionTypes.DETACH,
            }
            for attachment in sorted(attachments, key=lambda attachment: attachment.slot)
        ],
    }


def _machine(
    azure: AzureStack,
    scope: Scope,
    plan: ComputePlan,
    node: Node,
    *,
    identity: Identity,
    interface: network.NetworkInterface,
    custom_data: pulumi.Input[str],
    attachments: Sequence[Attachment],
    boot_after: Sequence[pulumi.Resource],
) -> compute.VirtualMachine:
    """One machine in its zone, named after its host name. Its first boot installs packages, so it
    waits for its zone's way out (`boot_after`) and for its identity's grants. Changes to its image,
    size, root size or custom data never touch a running machine (`IGNORED`): every node of a role
    at once would take the etcd quorum or the database down; they reach a machine when it is
    replaced, one node at a time (`components.compute.machines_awaiting`). A replacement deletes
    first: the node's disks and host name pass to its successor, which cannot attach a disk still
    attached to its predecessor. Data disks are attached at LUN = slot (where the bootstrap looks
    for them) and only detached when the machine goes; the OS disk is deleted with it.

    Trusted launch (secure boot, vTPM) as GCP's Shielded VMs; encryption at host covers the temp
    disk and caches, which the disks' own encryption does not; boot diagnostics in Azure's managed
    storage, so no storage account of the stack is opened for them; no VM extensions.
    """
    name = scope.child(node.name)
    host = hostname(plan.hostname_prefix, node)
    return compute.VirtualMachine(
        name,
        vm_name=host,
        resource_group_name=azure.resource_group,
        location=azure.location,
        zones=[node.zone],
        hardware_profile={"vm_size": node.machine_type},
        identity={"type": compute.ResourceIdentityType.USER_ASSIGNED, "user_assigned_identities": [identity.identity.id]},
        os_profile={
            "computer_name": host,
            "admin_username": ADMIN_USER,
            "custom_data": custom_data,
            "allow_extension_operations": False,
            "linux_configuration": {
                "disable_password_authentication": True,
                "provision_vm_agent": True,
                "ssh": {"public_keys": [{"path": f"/home/{ADMIN_USER}/.ssh/authorized_keys", "key_data": plan.deploy_public_key}]},
            },
        },
        storage_profile=_storage(azure, name, plan, node, attachments),
        network_profile={"network_interfaces": [{"id": interface.id, "primary": True, "delete_option": compute.DeleteOptions.DETACH}]},
        security_profile={
            "security_type": compute.SecurityTypes.TRUSTED_LAUNCH,
            "uefi_settings": {"secure_boot_enabled": True, "v_tpm_enabled": True},
            "encryption_at_host": True,
        },
        diagnostics_profile={"boot_diagnostics": {"enabled": True}},
        # Each tag its own value, so a first preview, where the custom data is unknown, knows every tag but the digest.
        tags={**scope.tags_with(Name=host, Role=node.role.value, Node=node.name), "Bootstrap": pulumi.Output.from_input(custom_data).apply(bootstrap_digest)},
        opts=scope.stateful_opts(
            ignore_changes=IGNORED, depends_on=[identity.identity, *identity.grants, *boot_after], delete_before_replace=True
        ),
    )


def _field(value: object, *path: str) -> Any:
    """A nested field of a machine's output, by its Python name (output classes or plain dicts)."""
    for key in path:
        if isinstance(value, Sequence) and not isinstance(value, str):
            items = cast(Sequence[object], value)
            value = items[int(key)] if len(items) > int(key) else None
        elif isinstance(value, Mapping):
            value = cast(Mapping[str, object], value).get(key)
        else:
            value = getattr(value, key, None)
    return value


def _private_ip(interface: network.NetworkInterface) -> pulumi.Output[str]:
    return interface.ip_configurations.apply(lambda configurations: str(_field(configurations, "0", "private_ip_address") or ""))


def _running(machine: compute.VirtualMachine) -> pulumi.Output[MachineSpec]:
    """What the machine runs, in the terms of `wanted` in `build_compute` (unknown parts None: a
    machine being created); its bootstrap by its `Bootstrap` tag.
    """

    def spec(hardware: object, storage: object, tags: Mapping[str, str] | None) -> MachineSpec:
        image = _field(storage, "image_reference")
        parts = [_field(image, key) for key in ("publisher", "offer", "sku", "version")]
        size = _field(storage, "os_disk", "disk_size_gb")
        return (
            cast(str | None, _field(hardware, "vm_size")),
            None if None in parts else f"{parts[0]}:{parts[1]}:{parts[2]}:{parts[3]}",
            None if size is None else str(size),
            (tags or {}).get("Bootstrap"),
        )

    return pulumi.Output.all(machine.hardware_profile, machine.storage_profile, machine.tags).apply(lambda args: spec(*args))


def build_compute(azure: AzureStack, scope: Scope, plan: ComputePlan) -> ComputeResult:
    """Creates the identities with their grants, the nodes with their disks attached, and the bastion
    with its public address.
    """
    identities = {role: _identity(azure, scope, plan, role) for role in (*SWARM_ROLES, Role.BASTION)}
    machines: dict[str, compute.VirtualMachine] = {}
    interfaces: dict[str, network.NetworkInterface] = {}
    for node in plan.nodes:
        interfaces[node.name] = _interface(azure, scope, plan, node, subnet=plan.private_subnet_ids[node.zone], public_ip=None)
        machines[node.name] = _machine(
            azure, scope, plan, node, identity=identities[node.role], interface=interfaces[node.name],
            custom_data=plan.user_data_base64[node.name], attachments=plan.attachments.get(node.name, ()), boot_after=plan.boot_after[node.zone],
        )
    bastion = plan.bastion
    # The stack's only public address, in the bastion's zone.
    address = public_address(azure, scope, f"{bastion.name}-ip", [bastion.zone], scope.opts(), Role=bastion.role.value, Node=bastion.name)
    _machine(
        azure, scope, plan, bastion, identity=identities[Role.BASTION],
        interface=_interface(azure, scope, plan, bastion, subnet=plan.public_subnet_ids[bastion.zone], public_ip=address),
        custom_data=plan.bastion_user_data.apply(lambda text: base64.b64encode(text.encode()).decode()), attachments=(), boot_after=(),
    )
    image = ":".join((plan.image.owner, plan.image.name))
    wanted = pulumi.Output.all(**{node.name: plan.user_data_base64[node.name] for node in plan.nodes}).apply(
        lambda user_data: {
            node.name: (node.machine_type, image, str(node.root_volume_gb), bootstrap_digest(str(user_data[node.name]))) for node in plan.nodes
        }
    )
    return ComputeResult(
        instance_ids={name: machine.id for name, machine in machines.items()},
        private_ips={name: _private_ip(interface) for name, interface in interfaces.items()},
        bastion_public_ip=address.ip_address.apply(lambda ip: ip or ""),
        awaiting_replacement=machines_awaiting(wanted, {name: _running(machine) for name, machine in machines.items()}),
    )
