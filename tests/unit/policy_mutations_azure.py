"""Realistic mutations of the azure-prod plan (`AZURE_MUTATIONS`), each one violation, judged by the
harness of tests/unit/policy_mutations.py in both shapes: careless changes and evasions of the
firewall matrix (rules inside the network security group and SecurityRule resources of their own,
application security groups, Azure's service tags), machine identity (a machine is its interface's
application security group's role and runs as that role's identity), keys, the vault, role
assignments and tags (design §9.8).

A rule added as its own SecurityRule names its groups through the engine's property dependencies,
which a first preview knows; a change inside the network security group's own rules names groups
by id, which a first preview does not know for groups still to be made, so those mutations are
chosen where the rule's sources alone decide (the internet, Azure's service tags).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from tests.unit.policy_mutations import Apply, Edit, Mutation, mutation

AZURE_STACK = "azure-prod"
AZURE_MUTATIONS: list[Mutation] = []
"""The catalogue of the Azure prod plan, judged apart so that the AWS and GCP catalogues' rates stay their own."""

NSG = "azure-native:network:NetworkSecurityGroup"
RULE = "azure-native:network:SecurityRule"
ASG = "azure-native:network:ApplicationSecurityGroup"
NIC = "azure-native:network:NetworkInterface"
VM = "azure-native:compute:VirtualMachine"
ASSIGNMENT = "azure-native:authorization:RoleAssignment"
SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000"
GROUP = f"{SUBSCRIPTION}/resourceGroups/dpc-azure-prod"
NETWORK_SECURITY_GROUP = "azure-prod-network-nsg"
ADMIN = "203.0.113.0/28"
CONTRIBUTOR = f"{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"
OWNER = f"{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
SECRETS_USER = f"{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6"


def _azure(klass: str, *, evasion: bool = False) -> Callable[[Apply], Apply]:
    return mutation(klass, evasion=evasion, into=AZURE_MUTATIONS)


def _asg_id(role: str) -> str:
    return f"{GROUP}/providers/Microsoft.Network/applicationSecurityGroups/azure-prod-network-{role}-asg"


def _rule(edit: Edit, name: str, ports: str, *, to: str | None, sources: tuple[str, ...] = (), **inputs: Any) -> str:
    """A new inbound Allow rule of the stack's network security group, as a SecurityRule resource of
    its own: into the application security group of `to` (None: to `*`), from the groups of `sources`
    or the prefixes in `inputs`."""
    rule: dict[str, Any] = {"networkSecurityGroupName": edit.computed("azure-prod-network-nsg"), "resourceGroupName": "dpc-azure-prod",
                            "securityRuleName": name, "priority": 300 + len(edit.targets), "direction": "Inbound", "access": "Allow",
                            "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": ports, **inputs}
    deps: dict[str, list[str]] = {"networkSecurityGroupName": [edit.urn(NETWORK_SECURITY_GROUP)]}
    if to is None:
        rule["destinationAddressPrefix"] = "*"
    else:
        rule["destinationApplicationSecurityGroups"] = [{"id": edit.computed(_asg_id(to))}]
        deps["destinationApplicationSecurityGroups"] = [edit.urn(f"azure-prod-network-{to}-asg")]
    if sources:
        rule["sourceApplicationSecurityGroups"] = [{"id": edit.computed(_asg_id(s))} for s in sources]
        deps["sourceApplicationSecurityGroups"] = [edit.urn(f"azure-prod-network-{s}-asg") for s in sources]
    return edit.add(RULE, name, rule, like=NETWORK_SECURITY_GROUP, deps=deps)


def _inline_rules(edit: Edit) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], edit.inputs(NETWORK_SECURITY_GROUP, NSG)["securityRules"])


def _inline(edit: Edit, name: str) -> dict[str, Any]:
    return next(r for r in _inline_rules(edit) if r["name"] == name)


def _configuration(edit: Edit, nic: str) -> dict[str, Any]:
    return cast(dict[str, Any], edit.inputs(nic, NIC)["ipConfigurations"][0])


def _tags(edit: Edit, name: str, typ: str | None = None) -> dict[str, Any]:
    return cast(dict[str, Any], edit.inputs(name, typ)["tags"])


def _assignment(edit: Edit, name: str, role: str, scope: str, *, scope_from: tuple[str, ...] = ()) -> str:
    """A role assignment to the worker nodes' identity."""
    inputs = {"principalId": edit.computed("1c955339-7e23-b507-f33f-02751263ff10"), "principalType": "ServicePrincipal", "roleDefinitionId": role,
              "scope": scope}
    deps = {"principalId": [edit.urn("azure-prod-compute-worker-identity")], **({"scope": [edit.urn(s) for s in scope_from]} if scope_from else {})}
    return edit.add(ASSIGNMENT, name, inputs, like="azure-prod-compute-worker-read-worker-token", deps=deps)


# --- careless changes -------------------------------------------------------------------------------


@_azure("careless")
def _azure_postgres_open_to_the_internet(edit: Edit) -> None:
    """The clients' rule into HAProxy opened to the Internet service tag."""
    _inline(edit, "manager-in-tcp5432-from-clients")["sourceAddressPrefix"] = "Internet"


@_azure("careless")
def _azure_worker_with_a_public_address(edit: Edit) -> None:
    """A database machine's interface given a public IP address."""
    _configuration(edit, "azure-prod-compute-worker-1-nic")["publicIPAddress"] = {"id": f"{GROUP}/providers/Microsoft.Network/publicIPAddresses/debug"}


@_azure("careless")
def _azure_disk_under_the_platform_key(edit: Edit) -> None:
    """A data disk encrypted with Azure's platform-managed key instead of the disk encryption set."""
    edit.set("azure-prod-storage-worker-1-data", "encryption", {"type": "EncryptionAtRestWithPlatformKey"})


@_azure("careless")
def _azure_os_disk_under_the_platform_key(edit: Edit) -> None:
    """A machine's OS disk left to the platform-managed key."""
    del edit.inputs("azure-prod-compute-worker-2", VM)["storageProfile"]["osDisk"]["managedDisk"]["diskEncryptionSet"]


@_azure("careless")
def _azure_backups_public_blobs(edit: Edit) -> None:
    """The offsite account allows public blob access."""
    edit.set("azure-prod-storage-backups", "allowBlobPublicAccess", True)


@_azure("careless")
def _azure_backups_over_tls_1_0(edit: Edit) -> None:
    """The offsite account accepts TLS 1.0."""
    edit.set("azure-prod-storage-backups", "minimumTlsVersion", "TLS1_0")


@_azure("careless")
def _azure_backups_over_http(edit: Edit) -> None:
    """The offsite account accepts plain HTTP."""
    edit.set("azure-prod-storage-backups", "enableHttpsTrafficOnly", False)


@_azure("careless")
def _azure_backups_under_microsofts_key(edit: Edit) -> None:
    """The offsite account encrypted with Microsoft-managed keys."""
    edit.set("azure-prod-storage-backups", "encryption", {"keySource": "Microsoft.Storage", "services": {"blob": {"enabled": True}}})


@_azure("careless")
def _azure_backups_in_one_region(edit: Edit) -> None:
    """The offsite account made zone-redundant only, with no geo copy."""
    edit.set("azure-prod-storage-backups", "sku", {"name": "Standard_ZRS"})


@_azure("careless")
def _azure_key_rotated_yearly(edit: Edit) -> None:
    """The stack key rotated once a year."""
    edit.inputs("azure-prod-storage-key")["properties"]["rotationPolicy"]["lifetimeActions"][0]["trigger"] = {"timeAfterCreate": "P1Y"}


@_azure("careless")
def _azure_key_only_notifies(edit: Edit) -> None:
    """The stack key's rotate action dropped, its expiry notification kept."""
    actions = edit.inputs("azure-prod-storage-key")["properties"]["rotationPolicy"]["lifetimeActions"]
    actions[:] = [a for a in actions if a["action"]["type"] != "rotate"]


@_azure("careless")
def _azure_vault_purgeable(edit: Edit) -> None:
    """The vault's purge protection off."""
    edit.inputs("azure-prod-storage-vault")["properties"]["enablePurgeProtection"] = False


@_azure("careless")
def _azure_vault_soft_delete_off(edit: Edit) -> None:
    """The vault's soft delete off."""
    edit.inputs("azure-prod-storage-vault")["properties"]["enableSoftDelete"] = False


@_azure("careless")
def _azure_vault_on_access_policies(edit: Edit) -> None:
    """The vault switched to access policies, one granting every secret to the workers."""
    properties = edit.inputs("azure-prod-storage-vault")["properties"]
    properties["enableRbacAuthorization"] = False
    properties["accessPolicies"] = [{"objectId": "1c955339-7e23-b507-f33f-02751263ff10", "tenantId": "00000000-0000-0000-0000-000000000000",
                                     "permissions": {"secrets": ["get", "list"]}}]


@_azure("careless")
def _azure_disks_pinned_to_one_key_version(edit: Edit) -> None:
    """The disk encryption set no longer follows the key's rotation."""
    edit.set("azure-prod-storage-disks", "rotationToLatestKeyVersionEnabled", False)


@_azure("careless")
def _azure_password_login(edit: Edit) -> None:
    """Password authentication turned on for a machine."""
    edit.inputs("azure-prod-compute-app-1", VM)["osProfile"]["linuxConfiguration"] = {"disablePasswordAuthentication": False}


@_azure("careless")
def _azure_secure_boot_off(edit: Edit) -> None:
    """A machine's secure boot turned off (a driver that is not signed)."""
    edit.inputs("azure-prod-compute-worker-1", VM)["securityProfile"]["uefiSettings"]["secureBootEnabled"] = False


@_azure("careless")
def _azure_encryption_at_host_off(edit: Edit) -> None:
    """A machine's encryption at host off: its temporary disk and caches in clear."""
    edit.inputs("azure-prod-compute-manager-2", VM)["securityProfile"]["encryptionAtHost"] = False


@_azure("identity", evasion=True)
def _azure_system_assigned_identity_beside_the_role(edit: Edit) -> None:
    """A machine given a system-assigned identity too, a principal outside its role's that someone may grant later."""
    edit.inputs("azure-prod-compute-manager-3", VM)["identity"]["type"] = "SystemAssigned, UserAssigned"


@_azure("careless")
def _azure_registry_admin_user(edit: Edit) -> None:
    """The registry's admin user turned on."""
    edit.set("azure-prod-registry-acr", "adminUserEnabled", True)


@_azure("careless")
def _azure_registry_anonymous_pull(edit: Edit) -> None:
    """Anonymous pull turned on for the registry."""
    edit.set("azure-prod-registry-acr", "anonymousPullEnabled", True)


@_azure("careless")
def _azure_flow_log_dropped(edit: Edit) -> None:
    """The virtual network's flow log removed."""
    edit.remove("azure-prod-network-vnet-flow-log")
    edit.target(edit.urn("azure-prod-network-vnet"))


@_azure("careless")
def _azure_flow_log_kept_a_week(edit: Edit) -> None:
    """The flow log's retention cut to a week."""
    edit.set("azure-prod-network-vnet-flow-log", "retentionPolicy", {"days": 7, "enabled": True})


@_azure("careless")
def _azure_subnet_without_a_security_group(edit: Edit) -> None:
    """A private subnet left without the network security group."""
    edit.set("azure-prod-network-private-2", "networkSecurityGroup", None)


@_azure("careless")
def _azure_deny_all_dropped(edit: Edit) -> None:
    """The deny-all under the matrix removed: Azure's AllowVnetInBound admits the whole VNet."""
    rules = _inline_rules(edit)
    rules[:] = [r for r in rules if r["access"] != "Deny"]


@_azure("careless")
def _azure_disk_unprotected(edit: Edit) -> None:
    """A data disk no longer protected from deletion."""
    edit.state("azure-prod-storage-worker-1-data")["protect"] = False


@_azure("careless")
def _azure_encryption_set_unprotected(edit: Edit) -> None:
    """The disk encryption set no longer protected: deleting it leaves every disk unreadable."""
    edit.state("azure-prod-storage-disks")["protect"] = False


@_azure("careless")
def _azure_owner_tag_dropped(edit: Edit) -> None:
    """A machine's interface without its Owner tag."""
    del _tags(edit, "azure-prod-compute-worker-3-nic", NIC)["Owner"]


@_azure("careless")
def _azure_cost_center_n_a(edit: Edit) -> None:
    """The vault's CostCenter tag set to n/a."""
    _tags(edit, "azure-prod-storage-vault")["CostCenter"] = "n/a"


@_azure("careless")
def _azure_load_balancer_public_without_clients(edit: Edit) -> None:
    """The database endpoint given a public frontend while the stack names no client networks."""
    frontend = edit.inputs("azure-prod-endpoint-lb")["frontendIPConfigurations"][0]
    frontend["publicIPAddress"] = {"id": f"{GROUP}/providers/Microsoft.Network/publicIPAddresses/endpoint"}


# --- open to the internet: the union of the ranges, Azure's names for everywhere -------------------


@_azure("open-to-internet", evasion=True)
def _azure_postgres_open_in_two_halves(edit: Edit) -> None:
    """PostgreSQL opened to the internet in two rules of half the address space each."""
    _rule(edit, "pg-low", "5432", to="manager", sourceAddressPrefix="0.0.0.0/1")
    _rule(edit, "pg-high", "5432", to="manager", sourceAddressPrefix="128.0.0.0/1")


@_azure("open-to-internet", evasion=True)
def _azure_every_port_from_any(edit: Edit) -> None:
    """Every port opened to Azure's `Any` tag, the word the pack might not know."""
    _rule(edit, "debug-any", "*", to="app", sourceAddressPrefix="Any")


@_azure("open-to-internet", evasion=True)
def _azure_pgbouncer_from_a_list_of_the_whole_space(edit: Edit) -> None:
    """PgBouncer opened by a prefix list whose ranges cover the address space."""
    _rule(edit, "pool-everyone", "6432", to="app", sourceAddressPrefixes=["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"])


@_azure("open-to-internet")
def _azure_bastion_ssh_from_anywhere(edit: Edit) -> None:
    """The bastion's SSH rule opened to every address (`*`)."""
    _inline(edit, "bastion-in-tcp22-from-admin")["sourceAddressPrefix"] = "*"


# --- identity: the matrix and SSH by application security group and service tag -----------------------


@_azure("identity", evasion=True)
def _azure_etcd_from_the_vnet(edit: Edit) -> None:
    """etcd opened to the VirtualNetwork tag: every machine of the network, not the roles the matrix names."""
    _rule(edit, "etcd-from-the-vnet", "2379", to="manager", sourceAddressPrefix="VirtualNetwork")


@_azure("identity", evasion=True)
def _azure_probes_to_pgbouncer(edit: Edit) -> None:
    """PgBouncer opened to the AzureLoadBalancer tag, which the matrix admits to HAProxy only."""
    _rule(edit, "probes-to-pgbouncer", "6432", to="app", sourceAddressPrefix="AzureLoadBalancer")


@_azure("identity", evasion=True)
def _azure_patroni_api_on_every_machine(edit: Edit) -> None:
    """Patroni's API opened from the managers to `*` rather than to the workers' group."""
    _rule(edit, "patroni-everywhere", "8008", to=None, sources=("manager",))


@_azure("identity", evasion=True)
def _azure_redis_from_the_backup_group(edit: Edit) -> None:
    """Redis opened to the backup machines' group, which the matrix does not name."""
    _rule(edit, "redis-from-backup", "6379", to="app", sources=("backup",))


@_azure("identity", evasion=True)
def _azure_storage_tag_to_etcd(edit: Edit) -> None:
    """etcd opened to an Azure service tag (Storage): public addresses of every tenant's accounts."""
    _rule(edit, "etcd-from-storage", "2379", to="manager", sourceAddressPrefix="Storage")


@_azure("identity")
def _azure_ssh_from_the_admins_to_a_worker(edit: Edit) -> None:
    """SSH to the workers straight from the admin range, around the bastion."""
    _rule(edit, "ssh-to-workers", "22", to="worker", sourceAddressPrefix=ADMIN)


@_azure("identity", evasion=True)
def _azure_ssh_from_the_app_group(edit: Edit) -> None:
    """SSH to the workers from the app nodes' group, in a port range that hides 22."""
    _rule(edit, "ops-range-from-app", "20-25", to="worker", sources=("app",))


@_azure("identity", evasion=True)
def _azure_worker_in_the_bastion_group_with_a_public_address(edit: Edit) -> None:
    """A worker's interface moved into the bastion's group and given a public address: the group says bastion, the machine's identity worker."""
    configuration = _configuration(edit, "azure-prod-compute-worker-2-nic")
    configuration["applicationSecurityGroups"] = [{"id": edit.computed(_asg_id("bastion"))}]
    configuration["publicIPAddress"] = {"id": f"{GROUP}/providers/Microsoft.Network/publicIPAddresses/w2"}
    nic = edit.state("azure-prod-compute-worker-2-nic", NIC)
    nic["propertyDependencies"]["ipConfigurations"] = [edit.urn("azure-prod-network-bastion-asg"), edit.urn("azure-prod-network-private-2")]
    edit.target(edit.urn("azure-prod-compute-worker-2", VM))


@_azure("identity", evasion=True)
def _azure_worker_tagged_bastion_with_a_public_address(edit: Edit) -> None:
    """A worker's interface tagged Role bastion and given a public address."""
    _tags(edit, "azure-prod-compute-worker-3-nic", NIC)["Role"] = "bastion"
    _configuration(edit, "azure-prod-compute-worker-3-nic")["publicIPAddress"] = {"id": f"{GROUP}/providers/Microsoft.Network/publicIPAddresses/w3"}


@_azure("identity", evasion=True)
def _azure_copy_of_the_bastion_group(edit: Edit) -> None:
    """A second application security group tagged Role bastion."""
    edit.add(ASG, "azure-prod-network-bastion-2-asg", {"applicationSecurityGroupName": "azure-prod-network-bastion-2-asg", "location": "eastus2",
                                                       "resourceGroupName": "dpc-azure-prod", "tags": {**_tags(edit, "azure-prod-network-bastion-asg")}},
             like="azure-prod-network-bastion-asg")


@_azure("identity", evasion=True)
def _azure_app_node_runs_as_the_workers_identity(edit: Edit) -> None:
    """An app node run as the workers' identity, which reads the workers' secrets."""
    machine = edit.inputs("azure-prod-compute-app-2", VM)
    machine["identity"] = {"type": "UserAssigned", "userAssignedIdentities": [edit.computed(
        f"{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dpc-azure-prod-worker")]}
    edit.state("azure-prod-compute-app-2", VM)["propertyDependencies"]["identity"] = [edit.urn("azure-prod-compute-worker-identity")]


@_azure("identity", evasion=True)
def _azure_interface_in_a_group_of_another_resource_group(edit: Edit) -> None:
    """An interface put in an application security group of another resource group, by literal id."""
    configuration = _configuration(edit, "azure-prod-compute-app-1-nic")
    configuration["applicationSecurityGroups"].append({"id": f"{SUBSCRIPTION}/resourceGroups/shared/providers/Microsoft.Network/applicationSecurityGroups/ops"})


@_azure("identity", evasion=True)
def _azure_disk_under_a_literal_encryption_set(edit: Edit) -> None:
    """A data disk under a disk encryption set named by a literal id, none of this stack's."""
    literal = f"{SUBSCRIPTION}/resourceGroups/shared/providers/Microsoft.Compute/diskEncryptionSets/x"
    edit.set("azure-prod-storage-worker-2-data", "encryption", {"type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": literal})


@_azure("identity", evasion=True)
def _azure_registry_under_a_literal_key(edit: Edit) -> None:
    """The registry encrypted with a key of another vault, named by a literal identifier."""
    encryption = {**edit.inputs("azure-prod-registry-acr")["encryption"]}
    encryption["keyVaultProperties"] = {**encryption["keyVaultProperties"], "keyIdentifier": "https://shared.vault.azure.net/keys/registry"}
    edit.set("azure-prod-registry-acr", "encryption", encryption)


# --- coverage: role assignments, generated secrets ----------------------------------------------------


@_azure("coverage")
def _azure_contributor_for_a_node(edit: Edit) -> None:
    """The workers' identity made Contributor on their join token."""
    _assignment(edit, "worker-contributor", CONTRIBUTOR, f"{GROUP}/providers/Microsoft.KeyVault/vaults/v/secrets/azure-prod-swarm-worker-token")


@_azure("coverage", evasion=True)
def _azure_secrets_user_on_the_resource_group(edit: Edit) -> None:
    """The workers' secret reader granted on the whole resource group, every secret of the vault."""
    _assignment(edit, "worker-reads-everything", SECRETS_USER, GROUP)


@_azure("coverage", evasion=True)
def _azure_secrets_user_on_the_whole_vault(edit: Edit) -> None:
    """The workers' secret reader granted on the vault, every secret in it (the managers' join token too)."""
    _assignment(edit, "worker-reads-the-vault", SECRETS_USER, f"{GROUP}/providers/Microsoft.KeyVault/vaults/azureprodstvaultbe5b4a8d")


@_azure("coverage")
def _azure_owner_on_the_subscription(edit: Edit) -> None:
    """The workers' identity made Owner of the subscription."""
    _assignment(edit, "worker-owner", OWNER, SUBSCRIPTION)


@_azure("secrets", evasion=True)
def _azure_password_in_an_interface_tag(edit: Edit) -> None:
    """A machine's interface tagged with a value computed from the superuser password (a debugging aid)."""
    password = edit.urn("azure-prod-database-postgres-superuser-password")
    _tags(edit, "azure-prod-compute-backup-1-nic", NIC)["Debug"] = edit.password("azure-prod-database-postgres-superuser-password")
    edit.depend("azure-prod-compute-backup-1-nic", "tags", password, typ=NIC)
