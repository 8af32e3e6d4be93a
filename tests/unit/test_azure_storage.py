"""Azure storage, registry and budget under the Azure mocks: the stack vault is RBAC-only with soft
delete and purge protection and holds an HSM key that rotates; every disk is a zonal Premium SSD v2
under a disk encryption set that follows the key; the offsite account is GZRS, HTTPS/TLS 1.2 only,
private, under the key, with shared keys on for pgBackRest and a lifecycle of online tiers that
deletes no current blob; the only grants on the key are the three services' identities'; stateful
resources are protected in prod only; names fit Azure's global namespaces for every shipped stack;
the registry is Premium under the key with no admin user and pushes with an exchanged token; the
budget counts the stack's tag and tells the listed addresses.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import io
import json
import re
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pulumi
import pytest
import yaml

from components.base import StackContext
from components.budget import BUDGET_ALERTS, Budget, BudgetPlan
from components.registry import ImageList, ImageListPlan, ImageRegistry, RegistryPlan, image_list_value
from components.storage import BucketLifecycle, Storage, StoragePlan
from dpc.render.backup import AzureRepository
from dpc.topology import ProvisionedPerformance, VolumePlan
from providers.azure.budget import build_budget
from providers.azure.mocks import AzureMocks, sdk_class, storage_account_key, uuid_of
from providers.azure.provider import AzureStack, resource_group_name
from providers.azure.registry import EXCHANGE, REFRESH_TOKEN_USER, build_image_list, build_registry
from providers.azure.settings import BLOB_ARCHIVE_TIER, BLOB_INFREQUENT_ACCESS_TIER
from providers.azure.storage import build_storage, offsite_repository
from providers.azure.vault import (
    ACR_PULL,
    ACR_PUSH,
    BUILT_IN_ROLES,
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
    KEY_VAULT_SECRETS_OFFICER,
    KEY_VAULT_SECRETS_USER,
    _parts,  # pyright: ignore[reportPrivateUsage]  # the parser every helper uses
    disk_encryption_set_id,
    global_name,
    key_arm_id,
    key_uri,
    secret_id,
    vault_id,
)
from review.plan import build_plan
from tests.mocked_program import run_mocked

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIPTION, TENANT, LOCATION = "11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-000000000000", "eastus2"
TAGS = {"CostCenter": "database-platform", "Environment": "prod", "ManagedBy": "pulumi", "Owner": "platform-team", "Service": "postgres", "Stack": "azure-prod"}
VOLUMES = (
    VolumePlan("worker-1", "data", "1", 2048, ProvisionedPerformance(7500, 165), "/mnt/postgres-cluster/patroni-1"),
    VolumePlan("worker-1", "wal", "1", 500, ProvisionedPerformance(5000, 125), "/mnt/postgres-cluster/patroni-1-wal"),
    VolumePlan("worker-2", "data", "2", 2048, ProvisionedPerformance(7500, 165), "/mnt/postgres-cluster/patroni-2"),
    VolumePlan("backup-1", "backups", "3", 5120, ProvisionedPerformance(3000, 125), "/mnt/postgres-cluster/backups"),
)
LIFECYCLE = BucketLifecycle(30, 90)
EMAILS = ("dba@example.com", "oncall@example.com")
AAD_TOKEN, REFRESH_TOKEN = "mock-entra-access-token", "mock-acr-refresh-token"

VAULT_NAME = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")
"""Key Vault: 3–24 letters, digits and single hyphens, starting with a letter."""
ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
REGISTRY_NAME = re.compile(r"^[a-zA-Z0-9]{5,50}$")
TAG_NAME_LIMIT = 128

VAULT, KEY, DES, DISK = "azure-native:keyvault:Vault", "azure-native:keyvault:Key", "azure-native:compute:DiskEncryptionSet", "azure-native:compute:Disk"
ACCOUNT, CONTAINER = "azure-native:storage:StorageAccount", "azure-native:storage:BlobContainer"
BLOB_SERVICE, LIFECYCLE_POLICY = "azure-native:storage:BlobServiceProperties", "azure-native:storage:ManagementPolicy"
IDENTITY, GRANT = "azure-native:managedidentity:UserAssignedIdentity", "azure-native:authorization:RoleAssignment"
REGISTRY, SECRET, BUDGET = "azure-native:containerregistry:Registry", "azure-native:keyvault:Secret", "azure-native:consumption:Budget"
STATEFUL = (VAULT, KEY, DES, DISK, ACCOUNT, CONTAINER, REGISTRY)


class Mocks(AzureMocks):
    """The Azure mocks, plus what the registry's push reads: the provider's access token, and the
    exchange (pulumi-command's `local.run`), whose standard input is kept for the tests."""

    def __init__(self) -> None:
        super().__init__(SUBSCRIPTION, TENANT, LOCATION)
        self.exchanges: list[dict[str, Any]] = []

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        arguments = cast(dict[str, Any], args.args)  # pyright: ignore[reportUnknownMemberType]  # the SDK types args as a bare dict
        if args.token == "azure-native:authorization:getClientToken":
            return {"token": AAD_TOKEN}, []
        if args.token == "command:local:run":
            self.exchanges.append(arguments)
            return {"stdout": REFRESH_TOKEN, "stderr": ""}, []
        return super().call(args)


@dataclass
class Built:
    """What a build registered: each resource's inputs and recorded step, by URN, and the results."""

    inputs: dict[str, dict[str, Any]]
    steps: dict[str, dict[str, Any]]
    outputs: dict[str, Any]
    exchanges: list[dict[str, Any]]

    def of_type(self, typ: str) -> dict[str, dict[str, Any]]:
        """Inputs of each resource of `typ`, by its resource name."""
        return {urn.rsplit("::", 1)[-1]: self.inputs[urn] for urn, step in self.steps.items() if step["newState"]["type"] == typ}

    def one(self, typ: str) -> dict[str, Any]:
        [only] = self.of_type(typ).values()
        return only

    def steps_of(self, typ: str) -> dict[str, dict[str, Any]]:
        return {urn.rsplit("::", 1)[-1]: step["newState"] for urn, step in self.steps.items() if step["newState"]["type"] == typ}

    def urn(self, name: str) -> str:
        [urn] = [u for u in self.steps if u.endswith(f"::{name}")]
        return urn


def build(*, prod: bool = True, lifecycle: BucketLifecycle = LIFECYCLE, stack: str = "azure-prod", replica_region: str | None = None) -> Built:
    """Runs storage, registry, image list and budget in their components under mocks, as the
    composition calls them (the registry under the storage's key)."""
    outputs: dict[str, Any] = {}
    mocks = Mocks()

    def program() -> None:
        azure = AzureStack(pulumi.Output.from_input(resource_group_name(stack)), LOCATION, SUBSCRIPTION, TENANT)
        context = StackContext(TAGS | {"Stack": stack}, prod, pulumi.ResourceOptions())
        storage = Storage(f"{stack}-storage", StoragePlan(VOLUMES, lifecycle, replica_region), functools.partial(build_storage, azure), context).result
        registry_plan = RegistryPlan(("postgres", "services"), storage.key_id)
        registry = ImageRegistry(f"{stack}-registry", registry_plan, functools.partial(build_registry, azure), context).result
        references = tuple(registry.repository_urls[image].apply(lambda url: f"{url}@sha256:{'0' * 64}") for image in sorted(registry.repository_urls))
        list_plan = ImageListPlan(registry.image_list_name, references)
        listed = ImageList(f"{stack}-image-list", list_plan, functools.partial(build_image_list, azure), context).result
        budget = Budget(f"{stack}-budget", BudgetPlan(3000.5, EMAILS, BUDGET_ALERTS, (LOCATION,)), functools.partial(build_budget, azure), context).result
        values = {
            "key_id": storage.key_id,
            "volume_ids": storage.volume_ids,
            "bucket": storage.backup_bucket_name,
            "credential": storage.offsite_credential,
            "vault_id": vault_id(azure, storage.key_id),
            "key_arm_id": key_arm_id(azure, storage.key_id),
            "des_id": disk_encryption_set_id(azure, storage.key_id),
            "server": registry.server,
            "username": registry.username,
            "password": registry.password,
            "urls": registry.repository_urls,
            "repository_ids": registry.repository_ids,
            "image_list_name": registry.image_list_name,
            "image_list_id": registry.image_list_id,
            "version": listed.version,
            "budget": budget.name,
        }
        pulumi.Output.all(**values).apply(outputs.update)

    monitor = run_mocked(mocks, program, stack)
    return Built(monitor.revealed, {step["urn"]: step for step in monitor.steps}, outputs, mocks.exchanges)


@pytest.fixture(scope="module")
def prod() -> Built:
    return build()


@pytest.fixture(scope="module")
def dev() -> Built:
    return build(prod=False, stack="azure-dev")


def _arm(kind: str, name: str, stack: str = "azure-prod") -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{resource_group_name(stack)}/providers/{kind}/{name}"


def _principal(identity_arm_id: str) -> str:
    """The principal id the mocks give a managed identity (user-assigned by its id, system-assigned
    by its resource's id)."""
    return uuid_of(f"principal/{identity_arm_id}")


def test_the_vault_is_rbac_only_with_soft_delete_and_purge_protection(prod: Built) -> None:
    vault = prod.one(VAULT)
    properties = vault["properties"]
    assert properties["enableRbacAuthorization"] is True and "accessPolicies" not in properties
    assert (properties["enableSoftDelete"], properties["softDeleteRetentionInDays"], properties["enablePurgeProtection"]) == (True, 90, True)
    assert properties["sku"] == {"family": "A", "name": "premium"}, "HSM-protected keys need Premium"
    assert properties["tenantId"] == TENANT and (vault["resourceGroupName"], vault["location"]) == ("dpc-azure-prod", LOCATION)
    assert not any(properties[f"enabledFor{use}"] for use in ("Deployment", "DiskEncryption", "TemplateDeployment"))
    assert VAULT_NAME.match(vault["vaultName"])


def test_the_stack_key_is_an_hsm_key_that_rotates_and_only_wraps(prod: Built) -> None:
    key = prod.one(KEY)
    properties = key["properties"]
    assert (properties["kty"], properties["keySize"]) == ("RSA-HSM", 3072)
    assert sorted(properties["keyOps"]) == ["unwrapKey", "wrapKey"]
    assert properties["attributes"] == {"enabled": True, "exportable": False}
    policy = properties["rotationPolicy"]
    assert policy["attributes"] == {"expiryTime": "P180D"}
    rotate = [a["trigger"] for a in policy["lifetimeActions"] if a["action"]["type"] == "rotate"]
    assert rotate == [{"timeAfterCreate": "P90D"}], "a new version at most every 90 days"
    assert [a["trigger"] for a in policy["lifetimeActions"] if a["action"]["type"] == "notify"] == [{"timeBeforeExpiry": "P30D"}]
    assert key["vaultName"] == prod.one(VAULT)["vaultName"]
    assert prod.outputs["key_id"] == f"https://{key['vaultName']}.vault.azure.net/keys/{key['keyName']}", "the versionless key URI"


def test_the_vault_helpers_read_the_key_uri(prod: Built) -> None:
    vault, key = prod.one(VAULT)["vaultName"], prod.one(KEY)["keyName"]
    assert prod.outputs["vault_id"] == _arm("Microsoft.KeyVault/vaults", vault)
    assert prod.outputs["key_arm_id"] == _arm("Microsoft.KeyVault/vaults", vault) + f"/keys/{key}"
    assert prod.outputs["des_id"] == _arm("Microsoft.Compute/diskEncryptionSets", f"{vault}-disks")


@pytest.mark.parametrize("uri", ["https://v.vault.azure.net/keys/k/0123", "http://v.vault.azure.net/keys/k", "https://v.example.com/keys/k", "https://v.vault.azure.net/secrets/k"])
def test_only_a_versionless_key_uri_names_the_vault(uri: str) -> None:
    with pytest.raises(ValueError, match="versionless"):
        _parts(uri)
    assert _parts(key_uri("dpcvault", "stack-key")) == ("dpcvault", "stack-key")


def test_the_disk_encryption_set_follows_the_keys_latest_version(prod: Built) -> None:
    encryption_set = prod.one(DES)
    assert encryption_set["encryptionType"] == "EncryptionAtRestWithCustomerKey"
    assert encryption_set["rotationToLatestKeyVersionEnabled"] is True
    assert encryption_set["activeKey"]["sourceVault"] == {"id": prod.outputs["vault_id"]}
    assert re.fullmatch(re.escape(prod.outputs["key_id"]) + "/[0-9a-f]{32}", encryption_set["activeKey"]["keyUrl"]), "a set takes a versioned key URI"
    assert prod.steps_of(DES)["azure-prod-storage-disks"]["ignoreChanges"] == ["activeKey"], "Azure moves it to each new version"
    assert encryption_set["identity"] == {"type": "SystemAssigned"}
    assert prod.outputs["des_id"].endswith(f"/diskEncryptionSets/{encryption_set['diskEncryptionSetName']}")


def test_whoever_uses_the_key_waits_until_the_encryption_set_may_use_it(prod: Built) -> None:
    """A VM's OS disk names the set by an id made from `key_id` (a bastion has no data disk to wait
    for): the registry, built on `key_id`, depends on the set's grant like any user of it."""
    [grant] = [prod.urn(n) for n in prod.of_type(GRANT) if n.endswith("disks-key-user")]
    for name in ("azure-prod-registry-acr", "azure-prod-registry-identity-key-user", "azure-prod-registry-images"):
        assert grant in prod.steps[prod.urn(name)]["newState"]["dependencies"], name


def test_every_disk_is_a_zonal_premium_ssd_v2_under_the_encryption_set(prod: Built) -> None:
    disks = prod.of_type(DISK)
    assert sorted(disks) == sorted(f"azure-prod-storage-{v.name}" for v in VOLUMES)
    [grant] = [urn for urn in (prod.urn(n) for n in prod.of_type(GRANT)) if urn.endswith("disks-key-user")]
    for volume in VOLUMES:
        disk = disks[f"azure-prod-storage-{volume.name}"]
        assert volume.performance is not None
        assert (disk["sku"], disk["zones"], disk["diskSizeGB"]) == ({"name": "PremiumV2_LRS"}, [volume.zone], volume.size_gb)
        assert (disk["diskIOPSReadWrite"], disk["diskMBpsReadWrite"]) == (volume.performance.iops, volume.performance.throughput_mbps)
        assert disk["creationData"] == {"createOption": "Empty"}
        assert disk["encryption"] == {"type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": prod.outputs["des_id"]}
        assert (disk["networkAccessPolicy"], disk["publicNetworkAccess"]) == ("DenyAll", "Disabled")
        assert (disk["tags"]["Node"], disk["tags"]["Purpose"]) == (volume.node, volume.purpose)
        assert prod.outputs["volume_ids"][volume.name] == _arm("Microsoft.Compute/disks", f"azure-prod-storage-{volume.name}")
        assert grant in prod.steps_of(DISK)[f"azure-prod-storage-{volume.name}"]["dependencies"], "created only once the set may use the key"


def test_the_offsite_account_is_geo_zone_redundant_private_and_under_the_key(prod: Built) -> None:
    account = prod.one(ACCOUNT)
    assert (account["kind"], account["sku"], account["accessTier"]) == ("StorageV2", {"name": "Standard_GZRS"}, "Hot")
    assert (account["minimumTlsVersion"], account["enableHttpsTrafficOnly"], account["allowBlobPublicAccess"]) == ("TLS1_2", True, False)
    assert account["allowSharedKeyAccess"] is True, "pgBackRest 2.45 authenticates with the account key"
    assert (account["allowCrossTenantReplication"], account["isLocalUserEnabled"], account["isSftpEnabled"]) == (False, False, False)
    assert account["keyPolicy"] == {"keyExpirationPeriodInDays": 90}
    identity = _arm("Microsoft.ManagedIdentity/userAssignedIdentities", "azure-prod-storage-backups-identity")
    assert account["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity]}
    encryption = account["encryption"]
    vault, key = prod.one(VAULT)["vaultName"], prod.one(KEY)["keyName"]
    assert encryption["keySource"] == "Microsoft.Keyvault" and encryption["requireInfrastructureEncryption"] is True
    assert encryption["keyVaultProperties"] == {"keyName": key, "keyVaultUri": f"https://{vault}.vault.azure.net"}, "no version: follows rotation"
    assert encryption["encryptionIdentity"] == {"encryptionUserAssignedIdentity": identity}
    assert all(service == {"enabled": True, "keyType": "Account"} for service in encryption["services"].values())
    [grant] = [prod.urn(n) for n in prod.of_type(GRANT) if n.endswith("backups-identity-key-user")]
    assert grant in prod.steps_of(ACCOUNT)["azure-prod-storage-backups"]["dependencies"]
    assert ACCOUNT_NAME.match(account["accountName"])


def test_pgbackrest_gets_a_private_container_and_the_account_key_as_a_secret(prod: Built) -> None:
    container = prod.one(CONTAINER)
    account = prod.one(ACCOUNT)["accountName"]
    assert (container["containerName"], container["publicAccess"], container["accountName"]) == ("pgbackrest", "None", account)
    assert prod.outputs["bucket"] == f"{account}/pgbackrest"
    assert offsite_repository(cast(Any, None), prod.outputs["bucket"]) == AzureRepository(account=account, container="pgbackrest")
    assert prod.outputs["credential"] == storage_account_key(account, "key1")
    key = storage_account_key(account, "key1")
    assert key not in str([step["newState"]["inputs"] for step in prod.steps.values()]), "the key is no resource's input here"


def test_the_offsite_credential_is_a_pulumi_secret() -> None:
    seen: list[bool] = []

    def program() -> None:
        azure = AzureStack(pulumi.Output.from_input("dpc-azure-dev"), LOCATION, SUBSCRIPTION, TENANT)
        context = StackContext(TAGS, False, pulumi.ResourceOptions())
        result = Storage("azure-dev-storage", StoragePlan(VOLUMES[:1], LIFECYCLE, None), functools.partial(build_storage, azure), context).result
        assert result.offsite_credential is not None
        pulumi.Output.all(result.offsite_credential.is_secret()).apply(seen.extend)

    run_mocked(Mocks(), program, "azure-dev")
    assert seen == [True]


def test_the_lifecycle_tiers_online_and_deletes_only_old_versions(prod: Built) -> None:
    [rule] = prod.one(LIFECYCLE_POLICY)["policy"]["rules"]
    assert prod.one(LIFECYCLE_POLICY)["managementPolicyName"] == "default"
    assert rule["enabled"] is True and rule["definition"]["filters"] == {"blobTypes": ["blockBlob"]}
    actions = rule["definition"]["actions"]
    assert (BLOB_INFREQUENT_ACCESS_TIER, BLOB_ARCHIVE_TIER) == ("Cool", "Cold")
    assert actions["baseBlob"] == {
        "tierToCool": {"daysAfterModificationGreaterThan": LIFECYCLE.infrequent_access_after_days},
        "tierToCold": {"daysAfterModificationGreaterThan": LIFECYCLE.archive_after_days},
    }, "no delete of a current blob, no Archive tier"
    assert actions["version"] == {"delete": {"daysAfterCreationGreaterThan": LIFECYCLE.noncurrent_expire_after_days}}
    blob_service = prod.one(BLOB_SERVICE)
    retention = {"enabled": True, "days": LIFECYCLE.noncurrent_expire_after_days}
    assert blob_service["isVersioningEnabled"] is True
    assert (blob_service["deleteRetentionPolicy"], blob_service["containerDeleteRetentionPolicy"]) == (retention, retention)


def test_a_lifecycle_from_other_settings_moves_on_other_days() -> None:
    built = build(prod=False, lifecycle=BucketLifecycle(45, 180, noncurrent_expire_after_days=14), stack="azure-dev")
    [rule] = built.one(LIFECYCLE_POLICY)["policy"]["rules"]
    actions = rule["definition"]["actions"]
    assert {tier: t["daysAfterModificationGreaterThan"] for tier, t in actions["baseBlob"].items()} == {"tierToCool": 45, "tierToCold": 180}
    assert actions["version"]["delete"]["daysAfterCreationGreaterThan"] == 14
    assert built.one(BLOB_SERVICE)["deleteRetentionPolicy"]["days"] == 14


def test_a_replica_region_is_refused() -> None:
    with pytest.raises(Exception, match="GZRS"):
        build(prod=False, replica_region="westus2", stack="azure-dev")


def test_only_the_three_services_may_use_the_key_and_nothing_else_is_granted(prod: Built) -> None:
    """The disk encryption set's, the offsite account's and the registry's identities hold Key Vault
    Crypto Service Encryption User on the key alone; storage, registry and budget grant nothing else."""
    grants = prod.of_type(GRANT)
    role = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER.guid}"
    assert {(g["roleDefinitionId"], g["scope"], g["principalType"]) for g in grants.values()} == {(role, prod.outputs["key_arm_id"], "ServicePrincipal")}
    des = _arm("Microsoft.Compute/diskEncryptionSets", prod.one(DES)["diskEncryptionSetName"])
    identities = [_arm("Microsoft.ManagedIdentity/userAssignedIdentities", f"azure-prod-{n}") for n in ("storage-backups-identity", "registry-identity")]
    assert sorted(g["principalId"] for g in grants.values()) == sorted(_principal(i) for i in [des, *identities])


def test_the_built_in_roles_are_microsofts() -> None:
    """GUIDs as Microsoft's list of built-in roles gives them (checked against it; a typo would
    grant another role or none)."""
    assert {role.name: role.guid for role in BUILT_IN_ROLES}.items() >= {
        "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
        "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        "Key Vault Crypto Service Encryption User": "e147488a-f6f5-4113-8e2d-b22465e65bf6",
        "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
        "AcrPush": "8311e382-0749-4cb8-b61a-304f252e45ec",
    }.items()
    assert {KEY_VAULT_SECRETS_USER, KEY_VAULT_SECRETS_OFFICER, ACR_PULL, ACR_PUSH} <= set(BUILT_IN_ROLES)
    assert len({role.guid for role in BUILT_IN_ROLES}) == len(BUILT_IN_ROLES)


def test_stateful_resources_are_protected_in_prod_only(prod: Built, dev: Built) -> None:
    for typ in STATEFUL:
        assert prod.steps_of(typ) and all(state["protect"] for state in prod.steps_of(typ).values()), typ
        assert dev.steps_of(typ) and not any(state["protect"] for state in dev.steps_of(typ).values()), typ


def _taggable(typ: str) -> bool:
    cls = sdk_class(typ)
    return cls is not None and "tags" in inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]  # every generated resource class has it


def test_every_taggable_resource_carries_the_stacks_tags(prod: Built) -> None:
    types = {step["newState"]["type"] for step in prod.steps.values() if step["newState"]["custom"]}
    taggable = sorted(typ for typ in types if _taggable(typ))
    assert {VAULT, KEY, DES, DISK, ACCOUNT, IDENTITY, REGISTRY, SECRET} <= set(taggable)
    for typ in taggable:
        for name, inputs in prod.of_type(typ).items():
            assert TAGS.items() <= inputs["tags"].items() and inputs["tags"]["Name"] == name, name
            assert all(len(k) <= TAG_NAME_LIMIT for k in inputs["tags"]), name


def _shipped_stacks() -> list[str]:
    stacks: list[str] = []
    for path in sorted(ROOT.glob("Pulumi.*.yaml")):
        config = yaml.safe_load(path.read_text())["config"]
        if config.get("dpc:cloud") == "azure":
            stacks.append(path.name.removeprefix("Pulumi.").removesuffix(".yaml"))
    return stacks


@pytest.mark.parametrize("stack", [max(_shipped_stacks(), key=len), "a-rather-long-stack-name-for-the-analytics-team", "7-digits-first"])
def test_global_names_fit_azure_for_the_longest_shipped_and_any_stack_name(stack: str) -> None:
    built = build(prod=False, stack=stack)
    vault, account, registry = built.one(VAULT)["vaultName"], built.one(ACCOUNT)["accountName"], built.one(REGISTRY)["registryName"]
    assert VAULT_NAME.match(vault) and ACCOUNT_NAME.match(account) and REGISTRY_NAME.match(registry), (vault, account, registry)
    assert built.of_type(SECRET)[f"{stack}-registry-images"]["secretName"] == f"{vault}-images" and len(f"{vault}-images") <= 127
    assert AzureRepository.from_bucket_name(built.outputs["bucket"]).account == account


def test_global_names_are_the_same_every_run_and_differ_by_subscription() -> None:
    here = AzureStack(cast(Any, "dpc-g"), LOCATION, SUBSCRIPTION, TENANT)
    there = AzureStack(cast(Any, "dpc-g"), LOCATION, "99999999-2222-3333-4444-555555555555", TENANT)
    assert global_name(here, "azure-prod-storage-vault", 24) == global_name(here, "azure-prod-storage-vault", 24)
    assert global_name(here, "azure-prod-storage-vault", 24) != global_name(there, "azure-prod-storage-vault", 24)
    assert global_name(here, "azure-prod-storage-backups", 24) != global_name(here, "azure-prod-storage-vault", 24)


def test_the_registry_is_premium_under_the_key_with_no_admin_user_or_anonymous_pull(prod: Built) -> None:
    registry = prod.one(REGISTRY)
    identity = _arm("Microsoft.ManagedIdentity/userAssignedIdentities", "azure-prod-registry-identity")
    assert registry["sku"] == {"name": "Premium"} and registry["zoneRedundancy"] == "Enabled"
    assert (registry["adminUserEnabled"], registry["anonymousPullEnabled"], registry["dataEndpointEnabled"]) == (False, False, False)
    assert registry["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}
    assert registry["encryption"] == {
        "status": "enabled",
        "keyVaultProperties": {"keyIdentifier": prod.outputs["key_id"], "identity": uuid_of(f"client/{identity}")},
    }, "the versionless key: the registry follows its rotation"
    [grant] = [prod.urn(n) for n in prod.of_type(GRANT) if n.endswith("registry-identity-key-user")]
    assert grant in prod.steps_of(REGISTRY)["azure-prod-registry-acr"]["dependencies"]
    server = f"{registry['registryName'].lower()}.azurecr.io"
    assert prod.outputs["urls"] == {image: f"{server}/{image}" for image in ("postgres", "services")}
    registry_id = _arm("Microsoft.ContainerRegistry/registries", registry["registryName"])
    assert prod.outputs["repository_ids"] == {"postgres": registry_id, "services": registry_id}, "AcrPull is granted on the registry"


def test_the_deploy_host_pushes_with_an_exchanged_refresh_token(prod: Built) -> None:
    server = prod.outputs["server"]
    assert (prod.outputs["username"], prod.outputs["password"]) == (REFRESH_TOKEN_USER, REFRESH_TOKEN)
    [exchange] = prod.exchanges
    assert exchange["command"] == EXCHANGE and exchange["interpreter"] == ["python3", "-c"] and exchange["logging"] == "none"
    assert exchange["stdin"] == f"{server} {TENANT} {AAD_TOKEN}", "the token on standard input, never an argument"
    inputs = str([step["newState"]["inputs"] for step in prod.steps.values()])
    assert AAD_TOKEN not in inputs and REFRESH_TOKEN not in inputs


def test_the_exchange_script_posts_the_token_to_the_registrys_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    """The script, run against a fake `urlopen`: the form ACR's /oauth2/exchange takes, the refresh
    token printed alone.
    """
    posted: list[tuple[str, dict[str, list[str]], float]] = []

    def urlopen(url: str, body: bytes, timeout: float) -> io.BytesIO:
        posted.append((url, urllib.parse.parse_qs(body.decode()), timeout))
        return io.BytesIO(json.dumps({"refresh_token": REFRESH_TOKEN}).encode())

    out = io.StringIO()
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"reg.azurecr.io {TENANT} {AAD_TOKEN}"))
    with contextlib.redirect_stdout(out):
        exec(compile(EXCHANGE, "exchange", "exec"), {})  # the script the deploy host runs
    assert out.getvalue() == REFRESH_TOKEN
    form = {"grant_type": ["access_token"], "service": ["reg.azurecr.io"], "tenant": [TENANT], "access_token": [AAD_TOKEN]}
    assert posted == [("https://reg.azurecr.io/oauth2/exchange", form, 60)]


def test_the_image_list_is_a_secret_in_the_stack_vault_the_nodes_read_by_name(prod: Built) -> None:
    vault = prod.one(VAULT)["vaultName"]
    secrets = prod.of_type(SECRET)
    created, written = secrets["azure-prod-registry-images"], secrets["azure-prod-image-list-references"]
    assert (created["secretName"], created["vaultName"], created["properties"]["value"]) == (f"{vault}-images", vault, "")
    assert prod.steps_of(SECRET)["azure-prod-registry-images"]["ignoreChanges"] == ["properties"]
    assert prod.outputs["image_list_name"] == f"{vault}-images"
    assert prod.outputs["image_list_id"] == _arm("Microsoft.KeyVault/vaults", vault) + f"/secrets/{vault}-images"
    assert (written["secretName"], written["vaultName"]) == (f"{vault}-images", vault)
    assert written["properties"]["value"] == image_list_value([f"{url}@sha256:{'0' * 64}" for url in prod.outputs["urls"].values()])
    assert prod.outputs["version"].startswith(f"https://{vault}.vault.azure.net/secrets/{vault}-images/")


def test_the_image_list_writer_never_deletes_the_secret() -> None:
    """Its secret is the registry's: deleting a Key Vault secret holds its name for 90 days."""
    retained: dict[str, bool] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        if args.type_ == SECRET:
            retained[args.name] = bool(args.opts.retain_on_delete)

    def program() -> None:
        pulumi.runtime.register_stack_transformation(record)
        azure = AzureStack(pulumi.Output.from_input("dpc-azure-dev"), LOCATION, SUBSCRIPTION, TENANT)
        context = StackContext(TAGS, False, pulumi.ResourceOptions())
        registry = ImageRegistry("azure-dev-registry", RegistryPlan(("postgres",), key_uri("v", "k")), functools.partial(build_registry, azure), context).result
        ImageList("azure-dev-image-list", ImageListPlan(registry.image_list_name, ("r@sha256:0",)), functools.partial(build_image_list, azure), context)

    run_mocked(Mocks(), program, "azure-dev")
    assert retained == {"azure-dev-registry-images": False, "azure-dev-image-list-references": True}


def test_the_budget_counts_the_stacks_tag_and_tells_the_listed_addresses(prod: Built) -> None:
    budget = prod.one(BUDGET)
    assert budget["scope"] == f"/subscriptions/{SUBSCRIPTION}" and budget["budgetName"] == "azure-prod-budget-monthly"
    assert (budget["amount"], budget["category"], budget["timeGrain"]) == (3000.5, "Cost", "Monthly")
    assert budget["filter"] == {"tags": {"name": "Stack", "operator": "In", "values": ["azure-prod"]}}
    start = datetime.date.fromisoformat(budget["timePeriod"]["startDate"])
    assert start.day == 1 and (datetime.datetime.now(datetime.UTC).date() - start).days < 31
    assert prod.steps_of(BUDGET)["azure-prod-budget-monthly"]["ignoreChanges"] == ["timePeriod"]
    assert budget["notifications"] == {
        f"{kind}-{percent}": {
            "enabled": True,
            "operator": "GreaterThanOrEqualTo",
            "threshold": percent,
            "thresholdType": threshold_type,
            "contactEmails": list(EMAILS),
        }
        for kind, percent, threshold_type in (("actual", 80, "Actual"), ("actual", 100, "Actual"), ("forecast", 100, "Forecasted"))
    }


def test_a_grant_names_its_secret_by_id_before_it_exists() -> None:
    ids: list[str] = []

    def program() -> None:
        azure = AzureStack(pulumi.Output.from_input("dpc-s"), LOCATION, SUBSCRIPTION, TENANT)
        secret_id(azure, key_uri("vaultx", "k"), "join-token").apply(ids.append)

    run_mocked(Mocks(), program, "s")
    assert ids == [f"/subscriptions/{SUBSCRIPTION}/resourceGroups/dpc-s/providers/Microsoft.KeyVault/vaults/vaultx/secrets/join-token"]


def test_the_grants_on_the_key_and_the_registry_are_known_at_a_first_preview() -> None:
    """The key's, the registry's and the image list's ids are made from names the program chooses,
    so the grants scoped by them are judged by the pack at a first preview, not left unknown."""
    plan = build_plan("azure-prod", preview=True)
    scopes = {
        step["newState"]["urn"].rsplit("::", 1)[-1]: step["newState"]["inputs"]["scope"]
        for step in plan["steps"]
        if step["newState"]["type"] == GRANT
    }
    on_key = {name: scope for name, scope in scopes.items() if name.endswith("key-user")}
    on_registry = {name: scope for name, scope in scopes.items() if "pull-images" in name or "image-list" in name}
    assert len(on_key) >= 3 and len(set(on_key.values())) == 1 and str(next(iter(on_key.values()))).startswith("/subscriptions/"), on_key
    assert on_registry and all(str(scope).startswith("/subscriptions/") for scope in on_registry.values()), on_registry
