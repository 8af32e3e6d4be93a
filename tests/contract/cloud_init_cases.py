"""The prod stacks' user data as each cloud's swarm builder renders it (providers/aws/swarm.py for
`prod`, providers/gcp/swarm.py for `gcp-prod`, providers/azure/swarm.py for `azure-prod`), with stable stand-ins for what the cloud assigns (the
key id, volume ids) and what the deployment generates (the deploy key, the names of the host keys'
secrets and of the image list): shared by the cloud-init checks, the host key's installation and
the bootstrap runs. The module-level names are the AWS prod stack's (`AWS`), which most tests use;
`CLOUDS` holds every cloud's case for the checks that run on each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import yaml

from components.swarm import (
    BASTION_HOST_KEY,
    BOOTSTRAP_SECRETS,
    CloudHooks,
    SshAccess,
    SwarmLayout,
    render_bastion_cloud_init,
    render_node_cloud_init,
)
from dpc.config import settings_from_stack_file
from dpc.model import Node, Role
from dpc.settings import Settings
from dpc.topology import Topology, derive
from providers.aws.swarm import aws_hooks, ebs_device
from providers.azure.compute import identity_name
from providers.azure.provider import AzureStack, resource_group_name
from providers.azure.registry import REGISTRY_NAME_LIMIT, image_list_name
from providers.azure.storage import VAULT_NAME_LIMIT
from providers.azure.swarm import Where, azure_hooks, secret_identifier
from providers.azure.swarm import disk_device as lun_device
from providers.azure.vault import global_name
from providers.gcp.swarm import disk_device, gcp_hooks, secret_name

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx6ZXN0a2V5Zm9ydGVzdGluZ29ubHkxMjM0NTY3ODkw admin@example.com"
DEPLOY_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRlcGxveWtleWZvcnRlc3Rpbmdvbmx5MTIzNDU2Nzg5MA"
"""The deployment's identity (a public key; its private half is only in the Pulumi state)."""
HOST_KEY_MACHINES = ("manager-1", BASTION_HOST_KEY)
"""The machines `pulumi up` reaches over SSH, whose host keys the deployment generates."""


@cache
def stack_topology(stack: str) -> Topology:
    return derive(settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml"))


def _gcp_project() -> str:
    gcp = stack_topology("gcp-prod").settings.gcp
    assert gcp is not None, "Pulumi.gcp-prod.yaml names its project"
    return gcp.project


GCP_PROJECT = _gcp_project()
"""The project the GCP secrets are named in: the shipped stack file's (a placeholder to replace)."""


@dataclass(frozen=True)
class CloudCase:
    """One cloud's prod stack as its swarm builder renders it, with the stand-ins named above."""

    cloud: str
    stack: str
    key_id: str
    secret_names: Mapping[str, str]
    """The bootstrap secrets' names as the builder names them."""
    host_key_secrets: Mapping[str, str]
    """The host keys' secrets as the builder names them, by machine."""
    images_parameter: str
    hooks: Callable[[Settings, str, Role], CloudHooks]
    """The cloud's hooks for the stack's settings and key id, on a machine of that role."""
    device: Callable[[str, int], str]
    """A volume's device path from its id and its slot among the node's volumes."""
    volume_id: Callable[[str], str]
    """A well-formed, stable volume id standing in for the cloud's, from the volume's name."""

    @property
    def prefix(self) -> str:
        return f"dpc-{self.stack}"

    @property
    def topology(self) -> Topology:
        return stack_topology(self.stack)

    def nodes(self) -> dict[str, Node]:
        return {node.name: node for node in self.topology.nodes}

    def layout(self, ssh_public_keys: tuple[str, ...], only: tuple[str, ...] | None = None) -> SwarmLayout:
        """The Swarm's layout, as the composition builds it (or with `only` these nodes, for runs
        that boot a smaller Swarm)."""
        topology = self.topology
        nodes = tuple(node for node in topology.nodes if only is None or node.name in only)
        return SwarmLayout(nodes, self.prefix, ssh_public_keys, topology.bastion, topology.backup_agent)

    def access(self, machine: str, ssh_public_keys: Sequence[str] = ()) -> SshAccess:
        """Who logs in to a machine and where its host key waits, as the composition plans them."""
        return SshAccess(DEPLOY_KEY, tuple(ssh_public_keys), self.host_key_secrets.get(machine))

    def render_node(
        self,
        name: str,
        *,
        ssh_public_keys: Sequence[str] = (),
        key_id: str | None = None,
        volume_id_of: Callable[[str], str] | None = None,
        node_access: SshAccess | None = None,
        images_parameter: str | None = None,
        only: tuple[str, ...] | None = None,
    ) -> str:
        """A node's user data as the builder renders it (before compression), with the composition's volumes."""
        topology = self.topology
        volume_id_of = volume_id_of or self.volume_id
        volumes = [volume for volume in topology.volumes if volume.node == name]
        devices = [(self.device(volume_id_of(volume.name), slot), volume.mount_point) for slot, volume in enumerate(volumes)]
        return render_node_cloud_init(
            node=self.nodes()[name],
            layout=self.layout(tuple(ssh_public_keys), only),
            hooks=self.hooks(topology.settings, key_id or self.key_id, self.nodes()[name].role),
            secret_names=self.secret_names,
            devices=devices,
            access=node_access or self.access(name, ssh_public_keys),
            images_parameter=images_parameter or self.images_parameter,
        )

    def render_bastion(self, ssh_public_keys: Sequence[str] = (), bastion_access: SshAccess | None = None, key_id: str | None = None) -> str:
        """The bastion's user data as the builder renders it."""
        topology = self.topology
        return render_bastion_cloud_init(
            host=f"{self.prefix}-{topology.bastion.name}",
            access=bastion_access or self.access(BASTION_HOST_KEY, ssh_public_keys),
            hooks=self.hooks(topology.settings, key_id or self.key_id, Role.BASTION),
        )


def ebs_volume_id(volume_name: str) -> str:
    """`vol-0` and 16 hex digits, as EBS names volumes."""
    return "vol-0" + hashlib.sha256(volume_name.encode()).hexdigest()[:16]


def _gcp_disk_id(volume_name: str) -> str:
    """`projects/p/zones/z/disks/<name>`, the disk named as the GCP storage builder names it (the
    device path takes the name alone)."""
    return f"projects/{GCP_PROJECT}/zones/us-central1-a/disks/gcp-prod-storage-{volume_name}"


AWS = CloudCase(
    cloud="aws",
    stack="prod",
    key_id="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    secret_names={secret: f"/dpc/prod-swarm/{secret}" for secret in BOOTSTRAP_SECRETS},
    host_key_secrets={machine: f"/dpc/prod-swarm/host-keys/{machine}" for machine in HOST_KEY_MACHINES},
    images_parameter="/dpc/prod-registry/images",
    hooks=lambda settings, key_id, _role: aws_hooks(settings.region, key_id),
    device=lambda volume_id, _slot: ebs_device(volume_id),
    volume_id=ebs_volume_id,
)
"""As providers/aws/swarm.py names the SSM parameters: /dpc/<Swarm component name>/<secret>."""

GCP = CloudCase(
    cloud="gcp",
    stack="gcp-prod",
    key_id=f"projects/{GCP_PROJECT}/locations/us-central1/keyRings/gcp-prod-storage-key-ring/cryptoKeys/gcp-prod-storage-key",
    secret_names={secret: secret_name(GCP_PROJECT, f"gcp-prod-swarm-{secret}") for secret in BOOTSTRAP_SECRETS},
    host_key_secrets={machine: secret_name(GCP_PROJECT, f"gcp-prod-swarm-host-key-{machine}") for machine in HOST_KEY_MACHINES},
    images_parameter=secret_name(GCP_PROJECT, "gcp-prod-registry-images"),
    hooks=lambda _settings, _key_id, _role: gcp_hooks(),
    device=lambda volume_id, _slot: disk_device(volume_id),
    volume_id=_gcp_disk_id,
)
"""As providers/gcp/swarm.py names the secrets: projects/<project>/secrets/<Swarm component name>-<secret>."""

def _azure_global_name(name: str, limit: int) -> str:
    """A globally named resource's name as the Azure builders make it for the shipped stack file's
    subscription (`providers.azure.vault.global_name` reads only the subscription)."""
    azure = stack_topology("azure-prod").settings.azure
    assert azure is not None, "Pulumi.azure-prod.yaml names its subscription and tenant"
    return global_name(cast(AzureStack, SimpleNamespace(subscription_id=azure.subscription_id)), name, limit)


AZURE_VAULT = _azure_global_name("azure-prod-storage-vault", VAULT_NAME_LIMIT)
"""The stack vault's name as the storage builder makes it (letters, digits and a digest)."""
AZURE_REGISTRY = f"{_azure_global_name('azure-prod-registry', REGISTRY_NAME_LIMIT)}.azurecr.io"
"""The registry's login server, from the name the registry builder gives it."""


def azure_identity(role: Role) -> str:
    """The resource id of the azure-prod identity of `role`, as Resource Manager names it."""
    azure = stack_topology("azure-prod").settings.azure
    assert azure is not None, "Pulumi.azure-prod.yaml names its subscription and tenant"
    group = f"/subscriptions/{azure.subscription_id}/resourceGroups/{resource_group_name('azure-prod')}"
    return f"{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity_name('dpc-azure-prod', role)}"


def _azure_hooks(settings: Settings, _key_id: str, role: Role) -> CloudHooks:
    """Azure's hooks on a machine of `role`: the role's identity by resource id (the vault is in the secrets' identifiers)."""
    azure = settings.azure
    assert azure is not None, "Pulumi.azure-prod.yaml names its subscription and tenant"
    return azure_hooks(Where(azure_identity(role), azure.tenant_id, AZURE_REGISTRY))


def _azure_disk_id(volume_name: str) -> str:
    """A managed disk's Resource Manager id, named as the Azure storage builder names it (the device
    path takes the slot alone)."""
    group = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/dpc-azure-prod"
    return f"{group}/providers/Microsoft.Compute/disks/azure-prod-storage-{volume_name}"


AZURE = CloudCase(
    cloud="azure",
    stack="azure-prod",
    key_id=f"https://{AZURE_VAULT}.vault.azure.net/keys/azure-prod-storage-key",
    secret_names={secret: secret_identifier(AZURE_VAULT, f"azure-prod-swarm-{secret}") for secret in BOOTSTRAP_SECRETS},
    host_key_secrets={machine: secret_identifier(AZURE_VAULT, f"azure-prod-swarm-host-key-{machine}") for machine in HOST_KEY_MACHINES},
    images_parameter=secret_identifier(AZURE_VAULT, image_list_name(AZURE_VAULT)),
    hooks=_azure_hooks,
    device=lambda _volume_id, slot: lun_device(slot),
    volume_id=_azure_disk_id,
)
"""As providers/azure/swarm.py names the Key Vault secrets: <Swarm component name>-<secret> in the stack vault, by identifier."""

CLOUDS = (AWS, GCP, AZURE)

STACK = AWS.stack
PREFIX = AWS.prefix
KEY_ARN = AWS.key_id
SECRET_NAMES = AWS.secret_names
IMAGES_PARAMETER = AWS.images_parameter
HOST_KEY_SECRETS = AWS.host_key_secrets
volume_id = AWS.volume_id


def prod_settings() -> Settings:
    return AWS.topology.settings


def prod_nodes() -> dict[str, Node]:
    return AWS.nodes()


def render_node(
    name: str,
    *,
    ssh_public_keys: Sequence[str] = (),
    key_arn: str = KEY_ARN,
    volume_id_of: Callable[[str], str] = volume_id,
    node_access: SshAccess | None = None,
    images_parameter: str = IMAGES_PARAMETER,
    only: tuple[str, ...] | None = None,
) -> str:
    """An AWS prod node's user data (`CloudCase.render_node`)."""
    return AWS.render_node(
        name, ssh_public_keys=ssh_public_keys, key_id=key_arn, volume_id_of=volume_id_of, node_access=node_access, images_parameter=images_parameter, only=only
    )


def render_bastion(ssh_public_keys: Sequence[str] = (), bastion_access: SshAccess | None = None, key_arn: str = KEY_ARN) -> str:
    """The AWS prod bastion's user data (`CloudCase.render_bastion`)."""
    return AWS.render_bastion(ssh_public_keys, bastion_access, key_arn)


def write_files(user_data: str) -> dict[str, str]:
    """The files a user data writes, by path."""
    document = yaml.safe_load(user_data)
    return {entry["path"]: entry["content"] for entry in document.get("write_files", [])}
