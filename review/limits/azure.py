"""Azure's documented API limits, as checks over a plan (`review.limits`).

Each limit names the page of Microsoft's documentation (or the pulumi-azure-native SDK's own text,
which the provider copies from Azure's REST specifications) it comes from. Names azure-native
generates where the program gives none (the logical name and eight hex digits, a child's logical
name as it is, a GUID for a role assignment) are checked as generated, read from the SDK as the offline plan's mocks read them;
everything else as the plan gives it. Inputs are read by the property paths of the
pulumi-azure-native SDK (camelCase, as the engine records them).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any, cast

from dpc.catalog import MACHINE_TYPES, BlockStorageLimits
from providers.azure.mocks import arm_shape, generated_name
from providers.azure.settings import AZURE_TAG_NAME_FORBIDDEN, PREMIUM_SSD_V2
from review.limits import Breach, Check, Network, PlanIndex, TextLimit, known, subnet_range, text_checks, values_at
from review.policy import PlannedResource

VM = "azure-native:compute:VirtualMachine"
DISK = "azure-native:compute:Disk"
DISK_ENCRYPTION_SET = "azure-native:compute:DiskEncryptionSet"
NSG = "azure-native:network:NetworkSecurityGroup"
SECURITY_RULE = "azure-native:network:SecurityRule"
ASG = "azure-native:network:ApplicationSecurityGroup"
VNET = "azure-native:network:VirtualNetwork"
SUBNET = "azure-native:network:Subnet"
NIC = "azure-native:network:NetworkInterface"
PUBLIC_IP = "azure-native:network:PublicIPAddress"
NAT_GATEWAY = "azure-native:network:NatGateway"
LOAD_BALANCER = "azure-native:network:LoadBalancer"
NETWORK_WATCHER = "azure-native:network:NetworkWatcher"
FLOW_LOG = "azure-native:network:FlowLog"
STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
BLOB_CONTAINER = "azure-native:storage:BlobContainer"
MANAGEMENT_POLICY = "azure-native:storage:ManagementPolicy"
VAULT = "azure-native:keyvault:Vault"
KEY = "azure-native:keyvault:Key"
SECRET = "azure-native:keyvault:Secret"
REGISTRY = "azure-native:containerregistry:Registry"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
BUDGET = "azure-native:consumption:Budget"
RESOURCE_GROUP = "azure-native:resources:ResourceGroup"

_NAME_RULES = "https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/resource-name-rules"
_TAG_DOCS = "https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/tag-resources#limitations"
MAX_TAGS = 50
"""Tag name/value pairs one resource takes."""
TAG_NAME_MAX, STORAGE_TAG_NAME_MAX, TAG_VALUE_MAX = 512, 128, 256
"""A tag name's length (128 on a storage account) and a value's."""
_NSG_DOCS = "https://learn.microsoft.com/en-us/azure/virtual-network/network-security-groups-overview#security-rules"
RULE_PRIORITIES = (100, 4096)
"""The priorities a security rule takes: unique within its group and direction."""
_SDK_RULE_DOCS = "pulumi-azure-native network.SecurityRule: description 'Restricted to 140 chars.'"
_SDK_DES_DOCS = "pulumi-azure-native compute.DiskEncryptionSet: disk_encryption_set_name 'a-z, A-Z, 0-9, _ and -', at most 80"
_SDK_LIFECYCLE_DOCS = "pulumi-azure-native storage.ManagementPolicyRule: name 'any combination of alpha numeric characters', unique within a policy"
_CUSTOM_DATA_DOCS = "https://learn.microsoft.com/en-us/azure/virtual-machines/custom-data"
CUSTOM_DATA_MAX_BYTES = 65535
"""Custom data, decoded from its base64, is a binary array of at most 65,535 bytes (the SDK's osProfile.customData says so too)."""
_OS_PROFILE_DOCS = "https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/create-or-update#osprofile"
DISALLOWED_ADMIN_NAMES = frozenset({
    "administrator", "admin", "user", "user1", "test", "user2", "test1", "user3", "admin1", "1", "123", "a", "actuser", "adm", "admin2",
    "aspnet", "backup", "console", "david", "guest", "john", "owner", "root", "server", "sql", "support", "support_388945a0", "sys",
    "test2", "test3", "user4", "user5",
})
"""Administrator names Azure refuses (osProfile.adminUsername, as the REST reference lists them)."""
_V2_DOCS = "https://learn.microsoft.com/en-us/azure/virtual-machines/disks-types#premium-ssd-v2-limitations"
_V2_PERFORMANCE = "https://learn.microsoft.com/en-us/azure/virtual-machines/disks-types#premium-ssd-v2-performance"
PREMIUM_V2 = "PremiumV2_LRS"
V2_SIZE_GIB = (1, 65536)
"""A Premium SSD v2 disk's size: 1 GiB to 64 TiB."""
_SIZES_DOCS = "https://learn.microsoft.com/en-us/azure/virtual-machines/sizes/overview (each size's Remote Storage table)"
_ROLE_DOCS = "https://learn.microsoft.com/en-us/azure/role-based-access-control/scope-overview#scope-format"
_ROLE_REST = "https://learn.microsoft.com/en-us/rest/api/authorization/role-assignments/create"
PRINCIPAL_TYPES = frozenset({"User", "Group", "ServicePrincipal", "ForeignGroup", "Device"})
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_SCOPE = re.compile(
    rf"/providers/Microsoft\.Management/managementGroups/[^/]+|/subscriptions/{_GUID}(/resourceGroups/[^/]+(/providers/[A-Za-z.]+/[^/]+/[^/]+(/[^/]+/[^/]+)*)?)?"
)
_ROLE_DEFINITION = re.compile(rf"(/subscriptions/{_GUID})?/providers/Microsoft\.Authorization/roleDefinitions/{_GUID}")
_ROTATION_DOCS = "https://learn.microsoft.com/en-us/azure/key-vault/keys/how-to-configure-key-rotation#key-rotation-policy"
_EXPIRY_DOCS = "https://learn.microsoft.com/en-us/dotnet/api/azure.security.keyvault.keys.keyrotationpolicy.expiresin"
KEY_EXPIRY_MIN_DAYS, ROTATION_MIN_DAYS = 28, 7
"""A rotation policy's expiry is at least 28 days; a rotation at least 7 days after creation or before expiry."""
_KEY_DOCS = "https://learn.microsoft.com/en-us/azure/key-vault/keys/about-keys-details"
RSA_KEY_SIZES = frozenset({2048, 3072, 4096})
_VAULT_DOCS = "https://learn.microsoft.com/en-us/azure/key-vault/general/soft-delete-overview"
SOFT_DELETE_DAYS = (7, 90)
_SUBNET_DOCS = "https://learn.microsoft.com/en-us/azure/virtual-network/virtual-networks-faq#how-small-and-how-large-can-virtual-networks-and-subnets-be"
SMALLEST_SUBNET_PREFIX = 29
_PROBE_DOCS = "https://learn.microsoft.com/en-us/azure/load-balancer/load-balancer-custom-probe-overview#probe-properties"
PROBE_MIN_INTERVAL_SECONDS = 5
_NAT_DOCS = "https://learn.microsoft.com/en-us/azure/nat-gateway/nat-gateway-resource#tcp-idle-timeout"
NAT_IDLE_MINUTES = (4, 120)
_PUBLIC_IP_DOCS = "https://learn.microsoft.com/en-us/azure/virtual-network/ip-services/public-ip-addresses#sku"
_FLOW_LOG_DOCS = "https://learn.microsoft.com/en-us/azure/network-watcher/vnet-flow-logs-overview"
FLOW_LOG_RETENTION_DAYS = (0, 365)
_LIFECYCLE_DOCS = "https://learn.microsoft.com/en-us/azure/storage/blobs/lifecycle-management-overview#lifecycle-management-rule-definition"
MAX_LIFECYCLE_RULES = 100
_TLS_DOCS = "https://learn.microsoft.com/en-us/azure/storage/common/transport-layer-security-configure-minimum-version"
STORAGE_TLS_VERSIONS = frozenset({"TLS1_0", "TLS1_1", "TLS1_2"})
_BUDGET_DOCS = "https://learn.microsoft.com/en-us/rest/api/consumption/budgets/create-or-update"
MAX_BUDGET_NOTIFICATIONS, MAX_BUDGET_EMAILS = 5, 50
BUDGET_THRESHOLD = (0, 1000)
"""A notification's threshold: a percentage above 0 and at most 1000."""
_ACR_DOCS = "https://learn.microsoft.com/en-us/azure/container-registry/tutorial-customer-managed-keys"

_NETWORK_NAME = re.compile(r"[a-zA-Z0-9](?:[\w.-]*\w)?")
_NETWORK_NAME_SAID = "letters, digits, _, . and -, a letter or digit first, a letter, digit or _ last"
_NETWORK_NAMES = (_NETWORK_NAME, _NETWORK_NAME_SAID)
_VM_FORBIDDEN = r"\s~!@#$%^&*()=+_\[\]{}\\|;:.'\",<>/?"
_VM_NAME = re.compile(rf"[^{_VM_FORBIDDEN}](?:[^{_VM_FORBIDDEN}]*[^{_VM_FORBIDDEN}-])?")
_VM_NAME_SAID = "no spaces, control characters nor ~!@#$%^&*()=+_[]{}\\|;:.'\",<>/?, not ending in -"
_KEY_VAULT_NAME = re.compile(r"[a-zA-Z](?!.*--)[a-zA-Z0-9-]*[a-zA-Z0-9]")
_CONTAINER_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]*[a-z0-9]")


def _names(types: tuple[str, ...], path: str, what: str, lengths: tuple[int, int], allowed: tuple[re.Pattern[str], str]) -> TextLimit:
    """A resource name's limit as the naming-rules page states it: lengths, characters and how to say them."""
    return TextLimit(types, path, what, lengths[1], _NAME_RULES, allowed[0], allowed[1], lengths[0])


def _mapping(value: object) -> Mapping[str, Any]:
    """An input read as an object: empty where it is none."""
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}


NETWORK_NAMED = {
    NSG: "networkSecurityGroupName", SECURITY_RULE: "securityRuleName", ASG: "applicationSecurityGroupName", NIC: "networkInterfaceName",
    PUBLIC_IP: "publicIpAddressName", NAT_GATEWAY: "natGatewayName", LOAD_BALANCER: "loadBalancerName", SUBNET: "subnetName",
    NETWORK_WATCHER: "networkWatcherName", FLOW_LOG: "flowLogName",
}
"""Network resources whose names take 1–80 of `_NETWORK_NAME`, by their name input."""

TEXT_LIMITS = (
    *(_names((typ,), path, "network resource name", (1, 80), _NETWORK_NAMES) for typ, path in NETWORK_NAMED.items()),
    _names((NSG,), "securityRules[].name", "security rule name", (1, 80), _NETWORK_NAMES),
    _names((VNET,), "virtualNetworkName", "virtual network name", (2, 64), _NETWORK_NAMES),
    _names((STORAGE_ACCOUNT,), "accountName", "storage account name", (3, 24), (re.compile(r"[a-z0-9]+"), "lowercase letters and digits")),
    _names((BLOB_CONTAINER,), "containerName", "blob container name", (3, 63), (_CONTAINER_NAME,
           "lowercase letters, digits and -, a letter or digit at each end, no --")),
    _names((VAULT,), "vaultName", "key vault name", (3, 24), (_KEY_VAULT_NAME, "letters, digits and -, a letter first, a letter or digit last, no --")),
    _names((KEY,), "keyName", "key name", (1, 127), (re.compile(r"[a-zA-Z0-9-]+"), "letters, digits and -")),
    _names((SECRET,), "secretName", "secret name", (1, 127), (re.compile(r"[a-zA-Z0-9-]+"), "letters, digits and -")),
    _names((REGISTRY,), "registryName", "container registry name", (5, 50), (re.compile(r"[a-zA-Z0-9]+"), "letters and digits")),
    _names((IDENTITY,), "resourceName", "managed identity name", (3, 128),
           (re.compile(r"[a-zA-Z0-9][\w-]*"), "letters, digits, - and _, a letter or digit first")),
    _names((VM,), "vmName", "virtual machine name", (1, 64), (_VM_NAME, _VM_NAME_SAID)),
    _names((VM,), "osProfile.computerName", "computer (host) name", (1, 64), (_VM_NAME, _VM_NAME_SAID)),
    _names((DISK,), "diskName", "disk name", (1, 80), _NETWORK_NAMES),
    TextLimit((DISK_ENCRYPTION_SET,), "diskEncryptionSetName", "disk encryption set name", 80, _SDK_DES_DOCS,
              re.compile(r"[\w-]+"), "letters, digits, _ and -"),
    _names((RESOURCE_GROUP,), "resourceGroupName", "resource group name", (1, 90), (re.compile(r"[-\w.()]*[-\w()]"),
           "letters, digits, -, _, ., ( and ), not ending in .")),
    _names((BUDGET,), "budgetName", "budget name", (1, 63), (re.compile(r"[\w-]+"), "letters, digits, _ and -")),
    TextLimit((SECURITY_RULE,), "description", "security rule description", 140, _SDK_RULE_DOCS, None, "", 0),
    TextLimit((NSG,), "securityRules[].description", "security rule description", 140, _SDK_RULE_DOCS, None, "", 0),
    TextLimit((VM,), "osProfile.adminUsername", "administrator name", 64, _OS_PROFILE_DOCS, None, "", 1),
)


def _with_generated_names(resource: PlannedResource) -> PlannedResource:
    """The resource as Azure receives it: its name input filled as azure-native generates it where
    the program gives none.
    """
    shape = arm_shape(resource.type) if resource.type.startswith("azure-native:") else None
    if shape is None or shape.name_input is None:
        return resource
    key = "".join(part if position == 0 else part[:1].upper() + part[1:] for position, part in enumerate(shape.name_input.split("_")))
    if key in resource.inputs:
        return resource
    generated = generated_name(resource.type, resource.name)
    return replace(resource, inputs={**resource.inputs, key: generated}) if generated else resource


def _names_as_sent(plan: PlanIndex) -> Iterator[Breach]:
    """Every text limit, names generated from logical names included."""
    check = text_checks(TEXT_LIMITS)
    yield from check(PlanIndex([_with_generated_names(resource) for resource in plan.resources]))


def _tags(plan: PlanIndex) -> Iterator[Breach]:
    """At most 50 tags; names 1–512 characters (128 on a storage account) without Azure's forbidden characters, values at most 256."""
    for resource in plan.resources:
        tags = resource.inputs.get("tags") if resource.type.startswith("azure-native:") else None
        if not isinstance(tags, Mapping):
            continue
        tag_map = cast(Mapping[str, Any], tags)
        if len(tag_map) > MAX_TAGS:
            yield Breach(resource.urn, "tags", f"{len(tag_map)} tags; an Azure resource takes at most {MAX_TAGS}", _TAG_DOCS)
        longest = STORAGE_TAG_NAME_MAX if resource.type == STORAGE_ACCOUNT else TAG_NAME_MAX
        for key, value in tag_map.items():
            if not 1 <= len(key) <= longest or any(c in AZURE_TAG_NAME_FORBIDDEN for c in key):
                yield Breach(resource.urn, f"tags.{key}", f"tag names take 1–{longest} characters, none of {AZURE_TAG_NAME_FORBIDDEN}", _TAG_DOCS)
            if isinstance(value, str) and known(value) and len(value) > TAG_VALUE_MAX:
                yield Breach(resource.urn, f"tags.{key}", f"tag value of {len(value)} characters; Azure takes at most {TAG_VALUE_MAX}", _TAG_DOCS)


def _rules(plan: PlanIndex) -> Iterator[tuple[str, str, str, Mapping[str, Any]]]:
    """Every security rule (urn, where, its group, its inputs): separate resources and a group's own."""
    for rule in plan.of_type(SECURITY_RULE):
        yield rule.urn, "priority", _group_of(rule), rule.inputs
    for group in plan.of_type(NSG):
        for where, rule in values_at(group.inputs, "securityRules[]"):
            if isinstance(rule, Mapping):
                yield group.urn, f"{where}.priority", group.urn, cast(Mapping[str, Any], rule)


def _group_of(rule: PlannedResource) -> str:
    """The group a separate rule belongs to: the resource its group name came from, else the name."""
    sources = (rule.property_dependencies or {}).get("networkSecurityGroupName")
    return sources[0] if sources else str(rule.inputs.get("networkSecurityGroupName"))


def _priorities(plan: PlanIndex) -> Iterator[Breach]:
    """A security rule's priority is 100–4096 and no other rule of its group and direction has it."""
    seen: dict[tuple[str, str, int], str] = {}
    low, high = RULE_PRIORITIES
    for urn, where, group, rule in _rules(plan):
        priority = rule.get("priority")
        if not isinstance(priority, int):
            continue
        if not low <= priority <= high:
            yield Breach(urn, where, f"priority {priority}; a security rule takes {low}–{high}", _NSG_DOCS)
        slot = (group, str(rule.get("direction")), priority)
        if slot in seen:
            yield Breach(urn, where, f"priority {priority} {rule.get('direction')} is also {seen[slot]}'s in the same group", _NSG_DOCS)
        seen.setdefault(slot, str(rule.get("name") or urn.split("::")[-1]))


def _custom_data(plan: PlanIndex) -> Iterator[Breach]:
    """Custom data is base64 of at most 65,535 bytes once decoded."""
    for machine in plan.of_type(VM):
        for where, data in values_at(machine.inputs, "osProfile.customData"):
            if not isinstance(data, str) or not known(data):
                continue
            try:
                size = len(base64.b64decode(data, validate=True))
            except (binascii.Error, ValueError):
                yield Breach(machine.urn, where, "custom data must be base64-encoded", _CUSTOM_DATA_DOCS)
                continue
            if size > CUSTOM_DATA_MAX_BYTES:
                yield Breach(machine.urn, where, f"{size} bytes of custom data; Azure takes at most {CUSTOM_DATA_MAX_BYTES}", _CUSTOM_DATA_DOCS)


def _os_profiles(plan: PlanIndex) -> Iterator[Breach]:
    """An administrator name Azure refuses; a Linux machine without passwords needs an SSH key."""
    for machine in plan.of_type(VM):
        profile = cast(Mapping[str, Any], machine.inputs.get("osProfile") or {})
        admin = profile.get("adminUsername")
        if isinstance(admin, str) and admin.lower() in DISALLOWED_ADMIN_NAMES:
            yield Breach(machine.urn, "osProfile.adminUsername", f"{admin!r} is a name Azure refuses for the administrator", _OS_PROFILE_DOCS)
        linux = cast(Mapping[str, Any], profile.get("linuxConfiguration") or {})
        keys = cast(Mapping[str, Any], linux.get("ssh") or {}).get("publicKeys")
        if linux.get("disablePasswordAuthentication") is True and not keys:
            yield Breach(machine.urn, "osProfile.linuxConfiguration.ssh.publicKeys", "password authentication is off but no SSH key is given", _OS_PROFILE_DOCS)


def _disk_sku(disk: PlannedResource) -> str:
    return str(cast(Mapping[str, Any], disk.inputs.get("sku") or {}).get("name", ""))


def _premium_v2_disks(plan: PlanIndex) -> Iterator[Breach]:
    """A Premium SSD v2 disk is zonal, 1 GiB–64 TiB, 3,000–80,000 IOPS (500 per GiB) and 125–1,200
    MB/s (0.25 per IOPS), and never an OS disk.
    """
    for disk in plan.of_type(DISK):
        if _disk_sku(disk) != PREMIUM_V2:
            continue
        zones = disk.inputs.get("zones")
        if not isinstance(zones, list) or len(cast(list[Any], zones)) != 1:
            yield Breach(disk.urn, "zones", "a Premium SSD v2 disk is zonal: it needs exactly one zone", _V2_DOCS)
        if disk.inputs.get("osType") is not None:
            yield Breach(disk.urn, "osType", "a Premium SSD v2 disk cannot be an OS disk", _V2_DOCS)
        size, iops, mbps = (disk.inputs.get(key) for key in ("diskSizeGB", "diskIOPSReadWrite", "diskMBpsReadWrite"))
        if isinstance(size, int) and not V2_SIZE_GIB[0] <= size <= V2_SIZE_GIB[1]:
            yield Breach(disk.urn, "diskSizeGB", f"{size} GiB; Premium SSD v2 takes {V2_SIZE_GIB[0]}–{V2_SIZE_GIB[1]}", _V2_PERFORMANCE)
        if isinstance(size, int) and isinstance(iops, int) and not PREMIUM_SSD_V2.min_iops <= iops <= PREMIUM_SSD_V2.max_iops_for(size):
            most = PREMIUM_SSD_V2.max_iops_for(size)
            yield Breach(disk.urn, "diskIOPSReadWrite", f"{iops} IOPS; a {size} GiB Premium SSD v2 takes {PREMIUM_SSD_V2.min_iops}–{most}", _V2_PERFORMANCE)
        provisioned = iops if isinstance(iops, int) else PREMIUM_SSD_V2.min_iops
        if isinstance(mbps, int) and not PREMIUM_SSD_V2.min_throughput <= mbps <= PREMIUM_SSD_V2.max_throughput_for(provisioned):
            most = PREMIUM_SSD_V2.max_throughput_for(provisioned)
            message = f"{mbps} MB/s; at {provisioned} IOPS Premium SSD v2 takes {PREMIUM_SSD_V2.min_throughput}–{most}"
            yield Breach(disk.urn, "diskMBpsReadWrite", message, _V2_PERFORMANCE)
    for machine in plan.of_type(VM):
        storage_profile = cast(Mapping[str, Any], machine.inputs.get("storageProfile") or {})
        for where, kind in values_at(storage_profile, "osDisk.managedDisk.storageAccountType"):
            if kind == PREMIUM_V2:
                yield Breach(machine.urn, f"storageProfile.{where}", "a Premium SSD v2 disk cannot be an OS disk", _V2_DOCS)


def _attached_disks(plan: PlanIndex) -> Iterator[tuple[PlannedResource, str, Mapping[str, Any], PlannedResource]]:
    """Each data disk a machine attaches (machine, where, the attachment, the disk), the disk found
    by the resource its id came from, else by the name its id ends in.
    """
    disks = plan.of_type(DISK)
    by_name = {str(d.inputs.get("diskName", generated_name(DISK, d.name))): d for d in disks}
    for machine in plan.of_type(VM):
        storage_profile = cast(Mapping[str, Any], machine.inputs.get("storageProfile") or {})
        sources = [plan.by_urn[urn] for urn in (machine.property_dependencies or {}).get("storageProfile", ()) if urn in plan.by_urn]
        linked = [d for d in sources if d.type == DISK]
        for where, attachment in values_at(storage_profile, "dataDisks[]"):
            if not isinstance(attachment, Mapping):
                continue
            attached = cast(Mapping[str, Any], attachment)
            disk_id = cast(Mapping[str, Any], attached.get("managedDisk") or {}).get("id")
            disk = by_name.get(disk_id.rsplit("/", 1)[-1]) if isinstance(disk_id, str) and known(disk_id) else None
            if disk is None and len(linked) == 1:
                disk = linked[0]
            if disk is not None:
                yield machine, f"storageProfile.{where}", attached, disk


def _v2_attachments(plan: PlanIndex) -> Iterator[Breach]:
    """A Premium SSD v2 disk attaches without host caching, to a machine in its own zone."""
    for machine, where, attachment, disk in _attached_disks(plan):
        if _disk_sku(disk) != PREMIUM_V2:
            continue
        if attachment.get("caching") not in (None, "None"):
            yield Breach(machine.urn, f"{where}.caching", f"{disk.name} is Premium SSD v2, which takes no host caching", _V2_DOCS)
        disk_zones, machine_zones = disk.inputs.get("zones"), machine.inputs.get("zones")
        if isinstance(disk_zones, list) and isinstance(machine_zones, list) and disk_zones != machine_zones:
            zone_of = ",".join(map(str, cast(list[Any], disk_zones))), ",".join(map(str, cast(list[Any], machine_zones)))
            message = f"{disk.name} is in zone {zone_of[0]}, the machine in {zone_of[1]}"
            yield Breach(machine.urn, where, message, _V2_DOCS)


def _disks_within_the_machine(plan: PlanIndex) -> Iterator[Breach]:
    """A VM's data disks together within the uncached IOPS and MB/s its size drives at its burst
    (`dpc.catalog`): what is provisioned beyond it is paid for and never reaches the machine.
    """
    attached: dict[str, list[PlannedResource]] = {}
    for machine, _, _, disk in _attached_disks(plan):
        attached.setdefault(machine.urn, []).append(disk)
    for urn, disks in attached.items():
        size = _mapping(plan.by_urn[urn].inputs.get("hardwareProfile")).get("vmSize")
        machine_type = MACHINE_TYPES["azure"].get(str(size))
        limits = machine_type.storage if machine_type else None
        if limits is None:
            continue
        names = ", ".join(d.name for d in disks)
        iops = sum(int(d.inputs.get("diskIOPSReadWrite") or 0) for d in disks)
        mbps = sum(int(d.inputs.get("diskMBpsReadWrite") or 0) for d in disks)
        if iops > limits.maximum_iops and any(int(d.inputs.get("diskIOPSReadWrite") or 0) > PREMIUM_SSD_V2.min_iops for d in disks):
            yield Breach(urn, "hardwareProfile.vmSize", f"{size} drives at most {limits.maximum_iops} uncached disk IOPS; its disks ({names}) ask {iops}",
                         _SIZES_DOCS)
        ceiling = BlockStorageLimits.megabytes_per_second(limits.maximum_mbps)
        if mbps > ceiling and any(int(d.inputs.get("diskMBpsReadWrite") or 0) > PREMIUM_SSD_V2.min_throughput for d in disks):
            yield Breach(urn, "hardwareProfile.vmSize", f"{size} drives at most {ceiling} uncached disk MB/s; its disks ({names}) ask {mbps}", _SIZES_DOCS)


def _role_assignments(plan: PlanIndex) -> Iterator[Breach]:
    """A role assignment's scope is a management group, subscription, group or resource path; its
    role a role definition's id; its principal type one Azure knows; its name a GUID.
    """
    for grant in plan.of_type(ROLE_ASSIGNMENT):
        scope, role = grant.inputs.get("scope"), grant.inputs.get("roleDefinitionId")
        if isinstance(scope, str) and known(scope) and not _SCOPE.fullmatch(scope):
            yield Breach(grant.urn, "scope", f"{scope!r} is not a scope Azure takes (/subscriptions/<guid>[/resourceGroups/<g>[/providers/...]])", _ROLE_DOCS)
        if isinstance(role, str) and known(role) and not _ROLE_DEFINITION.fullmatch(role):
            message = f"{role!r} is not a role definition id (.../providers/Microsoft.Authorization/roleDefinitions/<guid>)"
            yield Breach(grant.urn, "roleDefinitionId", message, _ROLE_REST)
        principal_type = grant.inputs.get("principalType")
        if isinstance(principal_type, str) and principal_type not in PRINCIPAL_TYPES:
            yield Breach(grant.urn, "principalType", f"{principal_type!r}; Azure takes {', '.join(sorted(PRINCIPAL_TYPES))}", _ROLE_REST)
        name = grant.inputs.get("roleAssignmentName")
        if isinstance(name, str) and known(name) and not re.fullmatch(_GUID, name):
            yield Breach(grant.urn, "roleAssignmentName", f"{name!r}: a role assignment's name is a GUID", _ROLE_REST)


_DURATION = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def iso_days(value: object) -> float | None:
    """An ISO 8601 duration (`P90D`, `P1Y`, `PT48H`) in days, a month as 30 and a year as 365; None
    for anything else.
    """
    match = _DURATION.fullmatch(value) if isinstance(value, str) and value not in ("P", "PT") else None
    if match is None:
        return None
    years, months, weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return years * 365 + months * 30 + weeks * 7 + days + hours / 24 + minutes / 1440 + seconds / 86400


def _keys(plan: PlanIndex) -> Iterator[Breach]:
    """A key's type and RSA size, and its rotation policy: expiry at least 28 days, each action one
    trigger, rotation at least 7 days after creation or before expiry, a trigger before expiry only
    with an expiry.
    """
    for key in plan.of_type(KEY):
        properties = cast(Mapping[str, Any], key.inputs.get("properties") or {})
        size = properties.get("keySize")
        if str(properties.get("kty", "")).startswith("RSA") and isinstance(size, int) and size not in RSA_KEY_SIZES:
            yield Breach(key.urn, "properties.keySize", f"{size}-bit RSA; Key Vault makes {', '.join(map(str, sorted(RSA_KEY_SIZES)))}", _KEY_DOCS)
        policy = cast(Mapping[str, Any], properties.get("rotationPolicy") or {})
        if not policy:
            continue
        expiry_text = cast(Mapping[str, Any], policy.get("attributes") or {}).get("expiryTime")
        expiry = iso_days(expiry_text)
        if expiry_text is not None and (expiry is None or expiry < KEY_EXPIRY_MIN_DAYS):
            yield Breach(key.urn, "properties.rotationPolicy.attributes.expiryTime",
                         f"{expiry_text!r}: an ISO 8601 duration of at least {KEY_EXPIRY_MIN_DAYS} days", _EXPIRY_DOCS)
        yield from _lifetime_actions(key.urn, policy, expiry)


def _lifetime_actions(urn: str, policy: Mapping[str, Any], expiry: float | None) -> Iterator[Breach]:
    for where, action in values_at(policy, "lifetimeActions[]"):
        trigger = _mapping(_mapping(action).get("trigger"))
        field = f"properties.rotationPolicy.{where}.trigger"
        after, before = trigger.get("timeAfterCreate"), trigger.get("timeBeforeExpiry")
        if after is not None and before is not None:
            yield Breach(urn, field, "a lifetime action has one trigger: after creation or before expiry", _ROTATION_DOCS)
        for name, value in (("timeAfterCreate", after), ("timeBeforeExpiry", before)):
            days = iso_days(value)
            if value is not None and (days is None or days < ROTATION_MIN_DAYS):
                yield Breach(urn, f"{field}.{name}", f"{value!r}: an ISO 8601 duration of at least {ROTATION_MIN_DAYS} days", _ROTATION_DOCS)
        if before is not None and expiry is None:
            yield Breach(urn, f"{field}.timeBeforeExpiry", "a trigger before expiry needs the policy's expiry time", _ROTATION_DOCS)


def _vaults(plan: PlanIndex) -> Iterator[Breach]:
    """Soft-deleted vault objects are kept 7–90 days; purge protection, once on, cannot be turned off."""
    low, high = SOFT_DELETE_DAYS
    for vault in plan.of_type(VAULT):
        properties = cast(Mapping[str, Any], vault.inputs.get("properties") or {})
        days = properties.get("softDeleteRetentionInDays")
        if isinstance(days, int) and not low <= days <= high:
            yield Breach(vault.urn, "properties.softDeleteRetentionInDays", f"{days} days; Key Vault keeps deleted objects {low}–{high}", _VAULT_DOCS)
        if properties.get("enablePurgeProtection") is False:
            yield Breach(vault.urn, "properties.enablePurgeProtection", "purge protection takes true or nothing: Azure refuses to set it false", _VAULT_DOCS)


def _address_prefixes(resource: PlannedResource) -> list[str]:
    inputs = resource.inputs
    listed = cast(list[object], inputs.get("addressPrefixes") or [inputs.get("addressPrefix")])
    return [p for p in listed if isinstance(p, str) and known(p)]


def _subnets(plan: PlanIndex) -> Iterator[Breach]:
    """A subnet's range is a network no smaller than /29, inside its virtual network, overlapping no other subnet's."""
    spaces = {str(v.inputs.get("virtualNetworkName", generated_name(VNET, v.name))): v for v in plan.of_type(VNET)}
    taken: list[tuple[Network, str]] = []
    for subnet in plan.of_type(SUBNET):
        vnet = spaces.get(str(subnet.inputs.get("virtualNetworkName")))
        space = cast(Mapping[str, Any], vnet.inputs.get("addressSpace") or {}).get("addressPrefixes") if vnet else None
        for prefix in _address_prefixes(subnet):
            network, refused = subnet_range(subnet.urn, "addressPrefix", prefix, SMALLEST_SUBNET_PREFIX, _SUBNET_DOCS)
            yield from refused
            if network is None:
                continue
            ranges = [ipaddress.ip_network(r) for r in cast(list[str], space or []) if known(r)]
            if ranges and not any(network.version == r.version and network.subnet_of(r) for r in ranges):  # type: ignore[arg-type]  # same version checked
                yield Breach(subnet.urn, "addressPrefix", f"{prefix} is outside its virtual network's {', '.join(map(str, ranges))}", _SUBNET_DOCS)
            for other, name in taken:
                if network.overlaps(other):
                    yield Breach(subnet.urn, "addressPrefix", f"{prefix} overlaps {name}'s {other}", _SUBNET_DOCS)
            taken.append((network, subnet.name))


def _load_balancers(plan: PlanIndex) -> Iterator[Breach]:
    """A probe every 5 s or slower, on a port; a Standard load balancer's public frontends Standard."""
    for balancer in plan.of_type(LOAD_BALANCER):
        for where, probe in values_at(balancer.inputs, "probes[]"):
            probe_map = _mapping(probe)
            interval, port = probe_map.get("intervalInSeconds"), probe_map.get("port")
            if isinstance(interval, int) and interval < PROBE_MIN_INTERVAL_SECONDS:
                message = f"{interval} s; a probe's interval is at least {PROBE_MIN_INTERVAL_SECONDS}"
                yield Breach(balancer.urn, f"{where}.intervalInSeconds", message, _PROBE_DOCS)
            if isinstance(port, int) and not 1 <= port <= 65535:
                yield Breach(balancer.urn, f"{where}.port", f"port {port}", _PROBE_DOCS)


def _public_addresses(plan: PlanIndex) -> Iterator[Breach]:
    """A Standard public address is static."""
    for address in plan.of_type(PUBLIC_IP):
        sku = cast(Mapping[str, Any], address.inputs.get("sku") or {}).get("name")
        if sku == "Standard" and address.inputs.get("publicIPAllocationMethod") not in (None, "Static"):
            yield Breach(address.urn, "publicIPAllocationMethod", "a Standard public address is Static", _PUBLIC_IP_DOCS)


def _nat_gateways(plan: PlanIndex) -> Iterator[Breach]:
    """A NAT gateway's idle timeout is 4–120 minutes; it lives in one zone at most."""
    low, high = NAT_IDLE_MINUTES
    for gateway in plan.of_type(NAT_GATEWAY):
        minutes = gateway.inputs.get("idleTimeoutInMinutes")
        if isinstance(minutes, int) and not low <= minutes <= high:
            yield Breach(gateway.urn, "idleTimeoutInMinutes", f"{minutes} minutes; a NAT gateway takes {low}–{high}", _NAT_DOCS)
        zones = gateway.inputs.get("zones")
        if isinstance(zones, list) and len(cast(list[Any], zones)) > 1:
            yield Breach(gateway.urn, "zones", "a NAT gateway is zonal: one zone or none", "https://learn.microsoft.com/en-us/azure/nat-gateway/nat-availability-zones")


def _flow_logs(plan: PlanIndex) -> Iterator[Breach]:
    """A flow log keeps its records 0–365 days (0: for ever)."""
    low, high = FLOW_LOG_RETENTION_DAYS
    for log in plan.of_type(FLOW_LOG):
        days = cast(Mapping[str, Any], log.inputs.get("retentionPolicy") or {}).get("days")
        if isinstance(days, int) and not low <= days <= high:
            yield Breach(log.urn, "retentionPolicy.days", f"{days} days; a flow log keeps records {low}–{high}", _FLOW_LOG_DOCS)


def _storage(plan: PlanIndex) -> Iterator[Breach]:
    """A storage account's minimum TLS is one Azure has (no TLS1_3); a lifecycle policy's rules at
    most 100, each named uniquely with letters and digits.
    """
    for account in plan.of_type(STORAGE_ACCOUNT):
        tls = account.inputs.get("minimumTlsVersion")
        if isinstance(tls, str) and tls not in STORAGE_TLS_VERSIONS:
            yield Breach(account.urn, "minimumTlsVersion", f"{tls!r}; Azure Storage takes {', '.join(sorted(STORAGE_TLS_VERSIONS))}", _TLS_DOCS)
    for policy in plan.of_type(MANAGEMENT_POLICY):
        rules = [cast(Mapping[str, Any], rule) for _, rule in values_at(policy.inputs, "policy.rules[]") if isinstance(rule, Mapping)]
        if len(rules) > MAX_LIFECYCLE_RULES:
            yield Breach(policy.urn, "policy.rules", f"{len(rules)} rules; a policy takes at most {MAX_LIFECYCLE_RULES}", _LIFECYCLE_DOCS)
        names = [str(rule.get("name")) for rule in rules]
        for name in names:
            if not re.fullmatch(r"[a-zA-Z0-9]{1,256}", name) or names.count(name) > 1:
                yield Breach(policy.urn, "policy.rules", f"rule name {name!r}: up to 256 letters and digits, unique in the policy",
                             f"{_LIFECYCLE_DOCS}; {_SDK_LIFECYCLE_DOCS}")


def _registries(plan: PlanIndex) -> Iterator[Breach]:
    """A registry encrypted with a customer-managed key is Premium."""
    for registry in plan.of_type(REGISTRY):
        encryption = cast(Mapping[str, Any], registry.inputs.get("encryption") or {})
        sku = cast(Mapping[str, Any], registry.inputs.get("sku") or {}).get("name")
        if encryption.get("status") == "enabled" and isinstance(sku, str) and sku != "Premium":
            yield Breach(registry.urn, "sku.name", f"a {sku} registry cannot take a customer-managed key: Premium only", _ACR_DOCS)


def _budgets(plan: PlanIndex) -> Iterator[Breach]:
    """A budget: an amount above 0, from the first of a month, at most 5 notifications, each a
    threshold above 0 and at most 1000 percent with at most 50 emails.
    """
    for budget in plan.of_type(BUDGET):
        amount = budget.inputs.get("amount")
        if isinstance(amount, (int, float)) and amount <= 0:
            yield Breach(budget.urn, "amount", f"{amount}: a budget's amount is above 0", _BUDGET_DOCS)
        start = cast(Mapping[str, Any], budget.inputs.get("timePeriod") or {}).get("startDate")
        if isinstance(start, str) and known(start) and not re.fullmatch(r"\d{4}-\d{2}-01(T00:00:00(\.0+)?Z?)?", start):
            yield Breach(budget.urn, "timePeriod.startDate", f"{start!r}: a budget starts on the first of a month", _BUDGET_DOCS)
        notifications = cast(Mapping[str, Any], budget.inputs.get("notifications") or {})
        if len(notifications) > MAX_BUDGET_NOTIFICATIONS:
            yield Breach(budget.urn, "notifications", f"{len(notifications)} notifications; a budget takes at most {MAX_BUDGET_NOTIFICATIONS}", _BUDGET_DOCS)
        for name, notification in notifications.items():
            entry = _mapping(notification)
            threshold, emails = entry.get("threshold"), entry.get("contactEmails")
            if isinstance(threshold, (int, float)) and not BUDGET_THRESHOLD[0] < threshold <= BUDGET_THRESHOLD[1]:
                yield Breach(budget.urn, f"notifications.{name}.threshold", f"{threshold}%; a threshold is above 0 and at most 1000", _BUDGET_DOCS)
            if isinstance(emails, list) and len(cast(list[Any], emails)) > MAX_BUDGET_EMAILS:
                message = f"{len(cast(list[Any], emails))} emails; at most {MAX_BUDGET_EMAILS}"
                yield Breach(budget.urn, f"notifications.{name}.contactEmails", message, _BUDGET_DOCS)


CHECKS: tuple[Check, ...] = (
    _names_as_sent,
    _tags,
    _priorities,
    _custom_data,
    _os_profiles,
    _premium_v2_disks,
    _v2_attachments,
    _disks_within_the_machine,
    _role_assignments,
    _keys,
    _vaults,
    _subnets,
    _load_balancers,
    _public_addresses,
    _nat_gateways,
    _flow_logs,
    _storage,
    _registries,
    _budgets,
)
