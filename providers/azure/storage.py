"""Azure storage (design §9.8): the stack's Key Vault and its rotated key, a disk encryption set
under that key, Premium SSD v2 data, WAL and backup disks under the set, and the offsite storage
account for pgBackRest's repo2.

The vault: Azure RBAC (no access policies: every grant is a role assignment at the narrowest scope,
which the policy pack reads), soft delete for 90 days (the longest Azure keeps) with purge
protection, so that neither a deleted vault nor a deleted key can be purged before then. Premium
SKU, the only one that holds HSM-protected keys: the stack key is an RSA-HSM key, as AWS KMS keeps
its keys in HSMs; Azure bills such a key (each version) monthly, a few dollars beside the disks.

The stack key wraps and unwraps only (every service using it holds its own data keys under it),
and rotates by its own rotation policy: a new version every `KEY_ROTATION`, each version expiring
`KEY_EXPIRY` after its creation. The services follow its latest version themselves: the storage
account and the registry take it without a version, the disk encryption set (which takes only a
versioned URI) with `rotation_to_latest_key_version_enabled`. Each re-wraps its own data keys under
a new version (Microsoft documents the set's disks within an hour, the account within a day), long
before the version it leaves expires.

Disks are zonal Premium SSD v2, in their node's zone (design §9.8: size, IOPS and throughput bought
apart, as gp3 on AWS; `providers/azure/settings.py` says why), not exportable (`DenyAll` network
access: no SAS can be made to copy a disk out).

The offsite account: StorageV2, geo-zone-redundant (GZRS: three zones here, and a copy in the
region's pair, Azure's counterpart of the geo copy the other clouds make to a second region),
encrypted with the stack key through a user-assigned identity (the account must read the key
before it exists, which only an identity created first can) and again at the infrastructure layer,
HTTPS only with TLS 1.2 at least (Azure has no TLS 1.3 minimum), no public blob access, no
cross-tenant copies. Shared-key access stays on: pgBackRest 2.45 reaches Azure only with the
account's key or a SAS (`dpc.render.backup.AzureRepository` says why not a SAS), so the account key
is the backup agent's credential (`StorageResult.offsite_credential`, a Pulumi secret that reaches
pgBackRest only as a Docker secret). The key's age is policed (`ACCOUNT_KEY_EXPIRY_DAYS`) and the
operator rotates it (README).

Its lifecycle moves blobs to Cool and then Cold, online tiers pgBackRest reads at once
(`providers/azure/settings.py` says why not Archive), and deletes no current blob (pgBackRest's
`expire` owns retention); blob versioning keeps what pgBackRest overwrote or deleted for
`noncurrent_expire_after_days`, after which the lifecycle deletes those versions only, and the
container's and blobs' soft delete keep a deleted container or version as long.

Reaching the vault, the account and the registry only from the stack's network is not done here:
storage is built before the network (the network's flow logs are encrypted with the stack key), so
these services answer on their public endpoints, authenticated (design §9.8).
"""

from __future__ import annotations

from typing import cast

import pulumi
from pulumi_azure_native import compute, keyvault, storage

from components.base import Scope
from components.storage import StoragePlan, StorageResult
from dpc.render.backup import AzureRepository
from dpc.settings import Settings
from dpc.topology import VolumePlan
from providers.azure.provider import AzureStack
from providers.azure.settings import BLOB_ARCHIVE_TIER, BLOB_INFREQUENT_ACCESS_TIER
from providers.azure.vault import (
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
    disk_encryption_set_name,
    global_name,
    key_arm_id,
    key_name,
    key_uri,
    key_user,
    once_created,
    role_assignment,
    vault_id,
    vault_uri,
)

VAULT_NAME_LIMIT, STORAGE_ACCOUNT_NAME_LIMIT = 24, 24
"""Key Vault names take 3–24 characters, storage account names 3–24 lowercase letters and digits."""

VAULT_SKU = keyvault.SkuName.PREMIUM
"""Premium: the only Key Vault SKU that holds HSM-protected keys."""
SOFT_DELETE_DAYS = 90
"""How long a deleted vault, key or secret can be recovered (Azure's longest)."""

KEY_TYPE, KEY_SIZE = "RSA-HSM", 3072
"""An HSM-protected RSA key of 3,072 bits, which disk encryption sets, storage accounts and
registries all take for customer-managed keys."""
KEY_OPERATIONS = ("wrapKey", "unwrapKey")
"""What the services do with the stack key: wrap and unwrap their own data keys, nothing else."""
KEY_ROTATION, KEY_EXPIRY, KEY_EXPIRY_NOTICE = "P90D", "P180D", "P30D"
"""A new version every 90 days (as on AWS and GCP), each valid for 180 days, so that a rotation
that fails leaves 90 days to notice (Event Grid tells 30 days before a version expires)."""

DISK_SKU = "PremiumV2_LRS"
"""Premium SSD v2 (`providers/azure/settings.py`)."""
DISK_ENCRYPTION = "EncryptionAtRestWithCustomerKey"

ACCOUNT_KIND, ACCOUNT_SKU = "StorageV2", "Standard_GZRS"
MINIMUM_TLS = "TLS1_2"
ACCOUNT_KEY_EXPIRY_DAYS = 90
"""How old an account key may grow before Azure Policy and Defender report it (the account's key
policy): the operator's reminder to rotate the key pgBackRest uses."""
TIER_ACTIONS = {"Hot": "tier_to_hot", "Cool": "tier_to_cool", "Cold": "tier_to_cold", "Archive": "tier_to_archive"}
"""The lifecycle action moving a base blob to each access tier."""
BACKUP_CONTAINER = "pgbackrest"
"""The private container pgBackRest's repo2 lives in."""


def _vault(azure: AzureStack, scope: Scope) -> keyvault.Vault:
    """The stack's vault: RBAC, soft delete and purge protection, reachable by Azure's trusted
    services; no deployment or template may read its secrets.
    """
    return keyvault.Vault(
        scope.child("vault"),
        vault_name=global_name(azure, scope.child("vault"), VAULT_NAME_LIMIT),
        resource_group_name=azure.resource_group,
        location=azure.location,
        properties={
            "tenant_id": azure.tenant_id,
            "sku": {"family": keyvault.SkuFamily.A, "name": VAULT_SKU},
            "enable_rbac_authorization": True,
            "enable_soft_delete": True,
            "soft_delete_retention_in_days": SOFT_DELETE_DAYS,
            "enable_purge_protection": True,
            "enabled_for_deployment": False,
            "enabled_for_disk_encryption": False,
            "enabled_for_template_deployment": False,
            "network_acls": {"bypass": "AzureServices", "default_action": "Allow"},
        },
        tags=scope.tags_with(Name=scope.child("vault")),
        opts=scope.stateful_opts(),
    )


def _key(azure: AzureStack, scope: Scope, vault: keyvault.Vault) -> keyvault.Key:
    """The stack key, rotated by its own policy, never exportable."""
    return keyvault.Key(
        scope.child("key"),
        key_name=scope.child("key"),
        vault_name=vault.name,
        resource_group_name=azure.resource_group,
        properties={
            "kty": KEY_TYPE,
            "key_size": KEY_SIZE,
            "key_ops": list(KEY_OPERATIONS),
            "attributes": {"enabled": True, "exportable": False},
            "rotation_policy": {
                "attributes": {"expiry_time": KEY_EXPIRY},
                "lifetime_actions": [
                    {"action": {"type": keyvault.KeyRotationPolicyActionType.ROTATE}, "trigger": {"time_after_create": KEY_ROTATION}},
                    {"action": {"type": keyvault.KeyRotationPolicyActionType.NOTIFY}, "trigger": {"time_before_expiry": KEY_EXPIRY_NOTICE}},
                ],
            },
        },
        tags=scope.tags_with(Name=scope.child("key")),
        opts=scope.stateful_opts(),
    )


def _disk_encryption_set(azure: AzureStack, scope: Scope, key: keyvault.Key, key_id: pulumi.Output[str]) -> tuple[compute.DiskEncryptionSet, pulumi.Resource]:
    """The set every disk of the stack is encrypted through, following the key's latest version,
    and its identity's grant on the key (a disk under the set can be created only after it).

    A set takes its key by a versioned URI only (the key's current version at creation); Azure
    then moves it to each new version itself (`rotation_to_latest_key_version_enabled`), so the
    program never writes the active key again (`ignore_changes`): it would set back a version
    Azure has rotated away from.
    """
    encryption_set = compute.DiskEncryptionSet(
        scope.child("disks"),
        disk_encryption_set_name=disk_encryption_set_name(key_id),
        resource_group_name=azure.resource_group,
        location=azure.location,
        identity={"type": "SystemAssigned"},
        encryption_type=DISK_ENCRYPTION,
        active_key={"key_url": key.key_uri_with_version, "source_vault": {"id": vault_id(azure, key_id)}},
        rotation_to_latest_key_version_enabled=True,
        tags=scope.tags_with(Name=scope.child("disks")),
        opts=scope.stateful_opts(ignore_changes=["activeKey"]),
    )
    grant = role_assignment(
        azure,
        scope,
        "disks-key-user",
        role=KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
        principal_id=encryption_set.identity.apply(_system_principal),
        on=key_arm_id(azure, key_id),
    )
    return encryption_set, grant


def _system_principal(identity: compute.outputs.EncryptionSetIdentityResponse | None) -> str:
    """The principal of a resource's system-assigned identity, which Azure creates with it."""
    if identity is None:
        raise ValueError("the disk encryption set was created without its system-assigned identity")
    return identity.principal_id


def _disk(azure: AzureStack, scope: Scope, volume: VolumePlan, encryption_set: compute.DiskEncryptionSet, grant: pulumi.Resource) -> compute.Disk:
    """A Premium SSD v2 disk in its node's zone, at the plan's size, IOPS and throughput."""
    performance = volume.performance
    if performance is None:
        raise ValueError(f"{volume.name}: a Premium SSD v2 disk needs its IOPS and throughput (providers/azure/settings.py)")
    return compute.Disk(
        scope.child(volume.name),
        disk_name=scope.child(volume.name),
        resource_group_name=azure.resource_group,
        location=azure.location,
        zones=[volume.zone],
        sku={"name": DISK_SKU},
        creation_data={"create_option": "Empty"},
        disk_size_gb=volume.size_gb,
        disk_iops_read_write=performance.iops,
        disk_m_bps_read_write=performance.throughput_mbps,
        encryption={"type": DISK_ENCRYPTION, "disk_encryption_set_id": encryption_set.id},
        network_access_policy="DenyAll",
        public_network_access="Disabled",
        tags=scope.tags_with(Name=scope.child(volume.name), Node=volume.node, Purpose=volume.purpose),
        opts=scope.stateful_opts(depends_on=[grant]),
    )


def lifecycle_policy(plan: StoragePlan) -> storage.ManagementPolicySchemaArgsDict:
    """Design §4.4 as Blob Storage applies it: current blobs to Cool, then to Cold, on the
    settings' days after their last write, never deleted; versions pgBackRest overwrote or deleted
    removed `noncurrent_expire_after_days` after they became versions.
    """
    lifecycle = plan.lifecycle
    return {
        "rules": [
            {
                "name": "offsiteTiers",
                "type": "Lifecycle",
                "enabled": True,
                "definition": {
                    "filters": {"blob_types": ["blockBlob"]},
                    "actions": {
                        "base_blob": cast(
                            storage.ManagementPolicyBaseBlobArgsDict,
                            {
                                TIER_ACTIONS[BLOB_INFREQUENT_ACCESS_TIER]: {"days_after_modification_greater_than": lifecycle.infrequent_access_after_days},
                                TIER_ACTIONS[BLOB_ARCHIVE_TIER]: {"days_after_modification_greater_than": lifecycle.archive_after_days},
                            },
                        ),
                        "version": {"delete": {"days_after_creation_greater_than": lifecycle.noncurrent_expire_after_days}},
                    },
                },
            }
        ]
    }


def _offsite_account(azure: AzureStack, scope: Scope, key_id: pulumi.Output[str]) -> storage.StorageAccount:
    """The offsite account under the stack key, through an identity granted the key first."""
    user = key_user(azure, scope, "backups-identity", key_id)
    identity = user.identity
    account_key_service: storage.EncryptionServiceArgsDict = {"enabled": True, "key_type": "Account"}
    return storage.StorageAccount(
        scope.child("backups"),
        account_name=global_name(azure, scope.child("backups"), STORAGE_ACCOUNT_NAME_LIMIT),
        resource_group_name=azure.resource_group,
        location=azure.location,
        kind=ACCOUNT_KIND,
        sku={"name": ACCOUNT_SKU},
        access_tier=storage.AccessTier.HOT,
        identity={"type": "UserAssigned", "user_assigned_identities": [identity.id]},
        encryption={
            "key_source": "Microsoft.Keyvault",
            "key_vault_properties": {"key_name": key_name(key_id), "key_vault_uri": vault_uri(key_id)},
            "encryption_identity": {"encryption_user_assigned_identity": identity.id},
            "require_infrastructure_encryption": True,
            "services": {"blob": account_key_service, "file": account_key_service, "queue": account_key_service, "table": account_key_service},
        },
        minimum_tls_version=MINIMUM_TLS,
        enable_https_traffic_only=True,
        allow_blob_public_access=False,
        allow_shared_key_access=True,
        allow_cross_tenant_replication=False,
        allowed_copy_scope="AAD",
        is_local_user_enabled=False,
        is_sftp_enabled=False,
        is_hns_enabled=False,
        key_policy={"key_expiration_period_in_days": ACCOUNT_KEY_EXPIRY_DAYS},
        network_rule_set={"default_action": storage.DefaultAction.ALLOW, "bypass": "AzureServices"},
        tags=scope.tags_with(Name=scope.child("backups"), Purpose="offsite-backups"),
        opts=scope.stateful_opts(depends_on=[user.grant]),
    )


def _offsite_container(azure: AzureStack, scope: Scope, plan: StoragePlan, account: storage.StorageAccount) -> storage.BlobContainer:
    """Versioning, soft delete and the lifecycle on the account, and pgBackRest's private container."""
    retention: storage.DeleteRetentionPolicyArgsDict = {"enabled": True, "days": plan.lifecycle.noncurrent_expire_after_days}
    storage.BlobServiceProperties(
        scope.child("backups-blob-service"),
        blob_services_name="default",
        account_name=account.name,
        resource_group_name=azure.resource_group,
        is_versioning_enabled=True,
        delete_retention_policy=retention,
        container_delete_retention_policy=retention,
        opts=scope.opts(),
    )
    storage.ManagementPolicy(
        scope.child("backups-lifecycle"),
        management_policy_name="default",
        account_name=account.name,
        resource_group_name=azure.resource_group,
        policy=lifecycle_policy(plan),
        opts=scope.opts(),
    )
    return storage.BlobContainer(
        scope.child("backups-container"),
        container_name=BACKUP_CONTAINER,
        account_name=account.name,
        resource_group_name=azure.resource_group,
        public_access=storage.PublicAccess.NONE,
        opts=scope.stateful_opts(),
    )


def build_storage(azure: AzureStack, scope: Scope, plan: StoragePlan) -> StorageResult:
    """Creates the vault and the stack key, the disk encryption set and the disks, and the offsite
    account with its container.

    `key_id` is the key's versionless URI made from the vault's and the key's names (known at a
    first preview, where the policy pack judges the grants scoped by it). It is an output of the
    vault, the key and the disk encryption set's grant on the key (through the grant's URN, which a
    preview knows), so whoever uses it waits until the stack's disk encryption set may use the key:
    a machine's OS disk is encrypted through the set (`providers.azure.vault.disk_encryption_set_id`,
    made from `key_id`), also on a machine with no data disk to wait for.
    """
    if plan.replica_region is not None:
        raise ValueError("Azure copies the offsite account to the region's pair itself (GZRS); providers/azure/settings.py refuses a replica region")
    vault = _vault(azure, scope)
    key = _key(azure, scope, vault)
    own_key_id = pulumi.Output.all(vault.name, key.name).apply(lambda names: key_uri(str(names[0]), str(names[1])))
    encryption_set, grant = _disk_encryption_set(azure, scope, key, own_key_id)
    key_id = once_created(grant, own_key_id)
    volume_ids = {volume.name: _disk(azure, scope, volume, encryption_set, grant).id for volume in plan.volumes}
    account = _offsite_account(azure, scope, own_key_id)
    container = _offsite_container(azure, scope, plan, account)
    keys = storage.list_storage_account_keys_output(
        account_name=account.name, resource_group_name=azure.resource_group, opts=pulumi.InvokeOutputOptions(parent=scope.component, depends_on=[account])
    )
    return StorageResult(
        key_id=key_id,
        volume_ids=volume_ids,
        backup_bucket_name=pulumi.Output.all(account.name, container.name).apply(lambda names: f"{names[0]}/{names[1]}"),
        offsite_credential=pulumi.Output.secret(keys.keys[0].value),
    )


def offsite_repository(_settings: Settings, bucket_name: str) -> AzureRepository:
    """PgBackRest's repo2 in the container `StorageResult.backup_bucket_name` names (`<account>/<container>`)."""
    return AzureRepository.from_bucket_name(bucket_name)
