"""The stack's Key Vault as the other Azure builders name it, and the one way they grant a managed
identity a built-in role (design §9.8).

The storage builder creates the vault and its key (`providers.azure.storage`); every other builder
knows the vault only from `StorageResult.key_id`, the key's versionless URI
`https://<vault>.vault.azure.net/keys/<key>`, which the storage builder makes from the names it
chooses (not from what the API returns), so that the grants built on it are known at a first
preview, where the policy pack judges them.

API (all ids are Azure Resource Manager ids, the scopes of role assignments):
- `vault_name(key_id)`, `key_name(key_id)`, `vault_uri(key_id)`: the vault's and the key's names
  and the vault's data-plane URI
  (`https://<vault>.vault.azure.net`, where the nodes read secrets over REST); `key_uri(vault,
  key)` the versionless URI itself.
- `vault_id(azure, key_id)`: the vault's id; `resource_id(azure, kind, name)` any resource's of
  the stack's resource group (`kind` as `Microsoft.ContainerRegistry/registries`).
- `once_created(resource, value)`: a value made from names (known at a first preview) that still
  waits for `resource`, so its users are created after it.
- `key_arm_id(azure, key_id)`: the key's id (the narrowest scope of a
  `KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER` grant).
- `secret_id(azure, key_id, secret_name)`: a secret's id (the narrowest scope of a
  `KEY_VAULT_SECRETS_USER` or `KEY_VAULT_SECRETS_OFFICER` grant).
- `disk_encryption_set_name(key_id)`, `disk_encryption_set_id(azure, key_id)`: the stack's disk
  encryption set (the stack key's, created by the storage builder), which every managed disk of
  the stack names, OS disks included.
- `global_name(azure, name, limit)`: a name for a resource Azure names globally (vault, storage
  account, registry): lowercase letters and digits, at most `limit`, unique per subscription and
  stack, the same on every run.
- `user_identity(azure, scope, name, resource_name=..., **tags)`: a user-assigned identity; `key_user(azure, scope, name,
  key_id)` one granted the key (`KeyUser`).
- `role_assignment(azure, scope, name, role=..., principal_id=..., on=...)`: grants the managed
  identity `principal_id` the built-in `role` on the resource id `on`.
- The built-in roles the stack grants, as `BuiltInRole` constants: `KEY_VAULT_SECRETS_USER`,
  `KEY_VAULT_SECRETS_OFFICER`, `KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER`, `ACR_PULL`, `ACR_PUSH`,
  `STORAGE_BLOB_DATA_CONTRIBUTOR`;
  `BUILT_IN_ROLES` lists them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi
from pulumi_azure_native import authorization, managedidentity

from components.base import Scope
from providers.azure.provider import AzureStack


@dataclass(frozen=True)
class BuiltInRole:
    """An Azure built-in role: its name as the portal shows it and its definition's GUID, the same
    in every subscription and tenant.
    """

    name: str
    guid: str


KEY_VAULT_SECRETS_USER = BuiltInRole("Key Vault Secrets User", "4633458b-17de-408a-b874-0445c86b69e6")
"""Reads secret values: what a node needs of each secret it reads (join tokens, the image list)."""
KEY_VAULT_SECRETS_OFFICER = BuiltInRole("Key Vault Secrets Officer", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7")
"""Reads and writes secrets: what a node needs of a secret it publishes (a host key, the manager's
join tokens)."""
KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER = BuiltInRole("Key Vault Crypto Service Encryption User", "e147488a-f6f5-4113-8e2d-b22465e65bf6")
"""Reads a key and wraps and unwraps with it, nothing else: what an Azure service encrypting with a
customer-managed key (disk encryption set, storage account, registry) needs of the key."""
ACR_PULL = BuiltInRole("AcrPull", "7f951dda-4ed3-4680-a7ca-43fe172d538d")
"""Pulls images from a container registry."""
ACR_PUSH = BuiltInRole("AcrPush", "8311e382-0749-4cb8-b61a-304f252e45ec")
"""Pushes and pulls images of a container registry."""
STORAGE_BLOB_DATA_CONTRIBUTOR = BuiltInRole("Storage Blob Data Contributor", "ba92f5b4-2d11-453d-a403-e96b0029c9fe")
"""Reads, writes and deletes blobs: what the flow log's identity needs of the log storage account."""

BUILT_IN_ROLES: tuple[BuiltInRole, ...] = (
    KEY_VAULT_SECRETS_USER,
    KEY_VAULT_SECRETS_OFFICER,
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
    ACR_PULL,
    ACR_PUSH,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
)
"""Every built-in role the stack grants (GUIDs as Microsoft's list of Azure built-in roles gives them)."""

KEY_VAULT_DNS_SUFFIX = ".vault.azure.net"
"""Azure's public cloud: a vault's data plane is `https://<vault>.vault.azure.net`."""


def key_uri(vault: str, key: str) -> str:
    """The versionless URI of key `key` in vault `vault`: `StorageResult.key_id` on Azure. A
    service given it uses the key's latest version, so a rotation needs no change of its settings.
    """
    return f"https://{vault}{KEY_VAULT_DNS_SUFFIX}/keys/{key}"


def _parts(uri: str) -> tuple[str, str]:
    """The vault's and the key's names of a versionless key URI; anything else is refused."""
    parsed = urlsplit(uri)
    host, path = parsed.hostname or "", parsed.path.strip("/").split("/")
    if parsed.scheme != "https" or not host.endswith(KEY_VAULT_DNS_SUFFIX) or len(path) != 2 or path[0] != "keys":
        raise ValueError(f"{uri!r} is not a versionless Key Vault key URI (https://<vault>{KEY_VAULT_DNS_SUFFIX}/keys/<key>)")
    return host.removesuffix(KEY_VAULT_DNS_SUFFIX), path[1]


def resource_id(azure: AzureStack, kind: str, name: pulumi.Input[str]) -> pulumi.Output[str]:
    """The Resource Manager id of the resource `name` of type `kind` (`Microsoft.KeyVault/vaults`)
    in the stack's resource group: what the API will call it, known before it exists.
    """
    return pulumi.Output.all(azure.resource_group, name).apply(
        lambda a: f"/subscriptions/{azure.subscription_id}/resourceGroups/{a[0]}/providers/{kind}/{a[1]}"
    )


def once_created(resource: pulumi.Resource, value: pulumi.Input[str]) -> pulumi.Output[str]:
    """`value`, made from names, as an output of `resource`: a first preview knows it (an id the API
    returns is unknown there, and the policy pack could not judge what names it), and whoever uses
    it is still created after `resource` (the dependency travels with the resource's URN).
    """
    return pulumi.Output.all(resource.urn, value).apply(lambda ready: str(ready[1]))


def vault_name(key_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """The name of the vault holding the key `key_id` (a versionless key URI)."""
    return pulumi.Output.from_input(key_id).apply(lambda uri: _parts(uri)[0])


def key_name(key_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """The name of the key `key_id` (a versionless key URI) in its vault."""
    return pulumi.Output.from_input(key_id).apply(lambda uri: _parts(uri)[1])


def vault_uri(key_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """The data-plane URI of the vault holding the key, `https://<vault>.vault.azure.net`."""
    return vault_name(key_id).apply(lambda vault: f"https://{vault}{KEY_VAULT_DNS_SUFFIX}")


def vault_id(azure: AzureStack, key_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """The Resource Manager id of the stack's vault (which lives in the stack's resource group)."""
    return resource_id(azure, "Microsoft.KeyVault/vaults", vault_name(key_id))


def key_arm_id(azure: AzureStack, key_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """The Resource Manager id of the key, the scope of a grant on that key alone."""
    return pulumi.Output.all(vault_id(azure, key_id), key_name(key_id)).apply(lambda a: f"{a[0]}/keys/{a[1]}")


def secret_id(azure: AzureStack, key_id: pulumi.Input[str], secret_name: pulumi.Input[str]) -> pulumi.Output[str]:
    """The Resource Manager id of secret `secret_name` in the stack's vault, the scope of a grant
    on that secret alone; made from names, so known before the secret exists.
    """
    return pulumi.Output.all(vault_id(azure, key_id), secret_name).apply(lambda a: f"{a[0]}/secrets/{a[1]}")


def disk_encryption_set_name(key_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """The stack's disk encryption set, named after the vault whose key it uses: one per stack."""
    return vault_name(key_id).apply(lambda vault: f"{vault}-disks")


def disk_encryption_set_id(azure: AzureStack, key_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """The Resource Manager id of the stack's disk encryption set, which a disk's (or a VM's OS
    disk's) `encryption` names.
    """
    return resource_id(azure, "Microsoft.Compute/diskEncryptionSets", disk_encryption_set_name(key_id))


GLOBAL_NAME_DIGEST, GLOBAL_NAME_ROLE = 8, 8
"""Hex digits of the digest that makes a global name unique; letters kept of the name's last word
(its role: `vault`, `backups`), so that names cut short still say what they are."""


def global_name(azure: AzureStack, name: str, limit: int) -> str:
    """A name for a resource Azure names in one namespace for all its customers (a vault's and a
    storage account's DNS names, a registry's): the letters and digits of `name`, its first words
    cut to leave room for its last (the role) and a digest of the subscription and `name`, within `limit` characters (a storage
    account's 24, lowercase letters and digits only, being the strictest, every such name is made
    so). The same stack in the same subscription always gets the same name, from names alone, so
    the plan and a first preview know it; another subscription's stack of the same name gets
    another.

    A random suffix kept in the state would let a destroyed stack be created again at once under
    new names; a name derived from the stack instead makes the stack's deleted vault, which purge
    protection keeps for its retention period, hold its name meanwhile: recreating the stack then
    means recovering that vault (and its keys, which the destroyed stack's backups need), which is
    what an operator should do anyway (design §9.8).
    """
    words = [re.sub(r"[^a-z0-9]", "", word) for word in name.lower().split("-")]
    role = words[-1][:GLOBAL_NAME_ROLE]
    visible = "".join(words[:-1])
    if not (visible or role)[:1].isalpha():
        visible = f"dpc{visible}"
    digest = hashlib.sha256(f"{azure.subscription_id}/{name}".encode()).hexdigest()[:GLOBAL_NAME_DIGEST]
    return f"{visible[: limit - GLOBAL_NAME_DIGEST - len(role)]}{role}{digest}"


def role_definition_id(subscription_id: str, role: BuiltInRole) -> str:
    """The id of a built-in role's definition as a role assignment in that subscription names it."""
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role.guid}"


def role_assignment(
    azure: AzureStack,
    scope: Scope,
    name: str,
    *,
    role: BuiltInRole,
    principal_id: pulumi.Input[str],
    on: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None = None,
) -> authorization.RoleAssignment:
    """Grants the managed identity `principal_id` the built-in `role` on the resource `on` alone,
    as child `name` of `scope`.

    `principal_type="ServicePrincipal"`: every principal the stack grants is a managed identity,
    and naming its type lets Azure accept an identity created a moment before, which Microsoft
    Entra ID may not replicate yet (without it, the assignment fails with PrincipalNotFound).
    The assignment's own name (a GUID) is left to the provider: a name derived from the grant
    would collide with itself when a replaced identity is granted again before the old grant goes.
    """
    return authorization.RoleAssignment(
        scope.child(name),
        principal_id=principal_id,
        principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
        role_definition_id=role_definition_id(azure.subscription_id, role),
        scope=on,
        description=f"{scope.name}: {role.name}",
        opts=pulumi.ResourceOptions.merge(scope.opts(), opts),
    )


def user_identity(azure: AzureStack, scope: Scope, name: str, *, resource_name: str | None = None, **tags: str) -> managedidentity.UserAssignedIdentity:
    """A user-assigned identity, child `<scope>-<name>` of the stack's resource group, holding no
    grant yet; named in Azure `resource_name` where its id must be known from names before it
    exists (a machine's, which its user data names), else as the child.
    """
    azure_name = resource_name or scope.child(name)
    return managedidentity.UserAssignedIdentity(
        scope.child(name),
        resource_name_=azure_name,
        resource_group_name=azure.resource_group,
        location=azure.location,
        tags=scope.tags_with(Name=azure_name, **tags),
        opts=scope.opts(),
    )


@dataclass(frozen=True)
class KeyUser:
    """A user-assigned identity that may use the stack key, and its grant (whatever encrypts with
    the identity waits for the grant: Azure refuses a key the identity cannot read yet).
    """

    identity: managedidentity.UserAssignedIdentity
    grant: authorization.RoleAssignment


def key_user(azure: AzureStack, scope: Scope, name: str, key_id: pulumi.Input[str]) -> KeyUser:
    """A user-assigned identity `<scope>-<name>` granted Key Vault Crypto Service Encryption User
    on the stack key alone: what a service encrypting with the key through an identity created
    before it (a storage account, a registry) acts as.
    """
    identity = user_identity(azure, scope, name)
    grant = role_assignment(
        azure, scope, f"{name}-key-user", role=KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER, principal_id=identity.principal_id, on=key_arm_id(azure, key_id)
    )
    return KeyUser(identity, grant)
