"""Azure side of the Swarm's formation (design §9.8): the bootstrap secrets and the generated SSH
host keys as secrets of the stack's Key Vault (RBAC: each one its own scope, so each identity is
granted exactly the secrets it touches), and each node's user data rendered with the Key Vault
store (curl against the REST API with a token of the machine's managed identity from the instance
metadata service: no Azure CLI on the node), the Azure Container Registry credential helper, and
the data disks' device paths; gzip-compressed like every cloud's, and given to the machine as
custom data (which, unlike the VM's `userData`, the instance metadata service never serves).
The user data names secrets and holds none.

The user data names each secret by its identifier, `https://<vault>.vault.azure.net/secrets/<name>`
(what Key Vault's REST API and the policy pack take for a reference to a secret, where a bare name
is any short literal). Everything this builder adds to it is known from names before anything is
created (the vault's name from the stack key's URI, the secrets' names, the identity's resource
id), so a preview shows it whole and the policy pack reads it once the deployment's key and the
registry's login server are known (a stack's first preview knows neither).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pulumi
from pulumi_azure_native import keyvault

from components.base import Scope
from components.swarm import (
    BASTION_HOST_KEY,
    BOOTSTRAP_SECRETS,
    PLACEHOLDER,
    CloudHooks,
    SwarmPlan,
    SwarmResult,
    gzip_base64,
    hostname,
    render_bastion_cloud_init,
    render_node_cloud_init,
    ssh_access,
)
from dpc.model import Role
from providers.azure.compute import ADMIN_USER, identity_id
from providers.azure.provider import AzureStack
from providers.azure.vault import KEY_VAULT_DNS_SUFFIX, once_created, secret_id, vault_name

SCRIPTS = Path(__file__).parent / "scripts"
SECRET_STORE_SCRIPT = (SCRIPTS / "secret-store.sh").read_text()
CREDENTIAL_STORE = "dpc-azure"
"""The docker CLI's credential store on an Azure node: the helper `docker-credential-dpc-azure`."""
CREDENTIAL_HELPER = (SCRIPTS / f"docker-credential-{CREDENTIAL_STORE}").read_text()

PUBLISHED_BY_NODES = ["properties", "tags"]
"""What Pulumi never sends again for a bootstrap secret. Resource Manager writes a secret with a PUT
of its value, so any update (a tag's too) would write the placeholder back as the latest version
over what manager-1 published, and a replaced manager-1 would take the Swarm for unformed and split it."""


@dataclass(frozen=True)
class Where:
    """What an Azure machine's store and credential helper need besides the secrets' identifiers:
    the machine's identity, the tenant, and the registry it pulls from.
    """

    identity: str
    """The resource id of the machine's user-assigned identity (IMDS's `msi_res_id`)."""
    tenant_id: str
    registry: str
    """The registry's login server, `<registry>.azurecr.io`: the only host the credential helper answers for."""


def azure_hooks(where: Where) -> CloudHooks:
    """The Key Vault store over curl and jq, the credential helper that signs the docker CLI in to
    the stack's registry as the machine's identity, and the admin user Azure creates, which is not
    the deploy user (`ADMIN_USER`). Every node keeps its containers from the instance metadata,
    the backup agent's too: pgBackRest signs in to the offsite account with its key (a Docker
    secret), so no container needs the node's identity.
    """
    return CloudHooks(
        secret_store_packages=("curl", "jq"),
        registry_packages=(),
        secret_store_script=SECRET_STORE_SCRIPT,
        environment={"DPC_IDENTITY": where.identity, "DPC_TENANT_ID": where.tenant_id, "DPC_REGISTRY": where.registry},
        docker_credentials_store=CREDENTIAL_STORE,
        image_default_user=ADMIN_USER,
        credential_helpers={CREDENTIAL_STORE: CREDENTIAL_HELPER},
        metadata_guard_everywhere=True,
    )


def secret_identifier(vault: str, name: str) -> str:
    """A secret of vault `vault` as the nodes' store takes it: its versionless identifier, whose
    reads are the latest version and whose writes add one.
    """
    return f"https://{vault}{KEY_VAULT_DNS_SUFFIX}/secrets/{name}"


def disk_device(slot: int) -> str:
    """The stable device path of the data disk attached at LUN `slot` (the compute builder attaches
    each at its `Attachment.slot`), the link Azure's udev rules on Ubuntu's images make.
    """
    return f"/dev/disk/azure/scsi1/lun{slot}"


class _Secrets:
    """The stack vault's secrets of one Swarm component, tagged, each created with a first value."""

    def __init__(self, azure: AzureStack, scope: Scope, plan: SwarmPlan) -> None:
        self.azure = azure
        self.scope = scope
        self.key_id = plan.secrets_key_id
        self.vault = vault_name(plan.secrets_key_id)

    def create(self, name: str, value: pulumi.Input[str], opts: pulumi.ResourceOptions) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """The secret `<component>-<name>` holding `value`; returns its identifier (as the nodes'
        store takes it) and its Resource Manager id (the scope of its grants). Both depend on the
        secret through its URN, which a preview knows: no machine reads or publishes, and no grant
        is made, before the secret and its first value exist.
        """
        scope, secret_name = self.scope, self.scope.child(name)
        secret = keyvault.Secret(
            secret_name,
            resource_group_name=self.azure.resource_group,
            vault_name=self.vault,
            secret_name=secret_name,
            properties={"value": value},
            tags=scope.tags_with(Name=secret_name),
            opts=opts,
        )
        named = once_created(secret, secret_name)
        return pulumi.Output.all(self.vault, named).apply(lambda a: secret_identifier(*a)), secret_id(self.azure, self.key_id, named)


def _where(azure: AzureStack, plan: SwarmPlan, role: Role) -> pulumi.Output[Where]:
    return pulumi.Output.all(identity_id(azure, plan.layout.hostname_prefix, role), plan.registry_server).apply(
        lambda args: Where(cast(str, args[0]), azure.tenant_id, cast(str, args[1]))
    )


def build_swarm(azure: AzureStack, scope: Scope, plan: SwarmPlan) -> SwarmResult:
    """Creates the bootstrap secrets (holding the placeholder, then what the managers publish as new
    versions, which Pulumi never overwrites: `PUBLISHED_BY_NODES`) and the host keys' secrets, and
    renders every node's and the bastion's user data. A node's data disks are listed in the order
    the composition attaches them, so the n-th mount is at LUN n (`disk_device`). The image list is
    named by the registry builder as its secret's name in the stack vault, and read by its identifier.
    """
    secrets = _Secrets(azure, scope, plan)
    bootstrap = {secret: secrets.create(secret, PLACEHOLDER, scope.opts(ignore_changes=PUBLISHED_BY_NODES)) for secret in BOOTSTRAP_SECRETS}
    host_keys = {machine: secrets.create(f"host-key-{machine}", key.private_openssh, scope.opts()) for machine, key in sorted(plan.host_keys.items())}
    names: Mapping[str, pulumi.Output[str]] = {secret: named for secret, (named, _) in bootstrap.items()}
    host_key_names = {machine: named for machine, (named, _) in host_keys.items()}
    secret_names = pulumi.Output.all(**names)
    images = pulumi.Output.all(secrets.vault, plan.images_parameter_name).apply(lambda a: secret_identifier(*a))
    user_data: dict[str, pulumi.Output[str]] = {}
    for node in plan.layout.nodes:
        mounts = plan.mounts.get(node.name, ())
        devices = [(disk_device(slot), mount.mount_point) for slot, mount in enumerate(mounts)]
        user_data[node.name] = pulumi.Output.all(
            secret_names, ssh_access(plan, node.name, host_key_names), images, _where(azure, plan, node.role)
        ).apply(
            lambda args, node=node, devices=devices: gzip_base64(render_node_cloud_init(
                node=node,
                layout=plan.layout,
                hooks=azure_hooks(args[3]),
                secret_names=args[0],
                devices=devices,
                access=args[1],
                images_parameter=args[2],
            ))
        )
    bastion = pulumi.Output.all(ssh_access(plan, BASTION_HOST_KEY, host_key_names), _where(azure, plan, Role.BASTION)).apply(
        lambda args: render_bastion_cloud_init(host=hostname(plan.layout.hostname_prefix, plan.layout.bastion), access=args[0], hooks=azure_hooks(args[1]))
    )
    return SwarmResult(
        user_data_base64=user_data,
        bastion_user_data=bastion,
        bootstrap_secret_ids={secret: arm_id for secret, (_, arm_id) in bootstrap.items()},
        host_key_ids={machine: arm_id for machine, (_, arm_id) in host_keys.items()},
    )
