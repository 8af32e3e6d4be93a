"""Azure resources for the policy tests, in the shapes the Azure builders make them (design §9.8):
one application security group per role (and the load balancer's), tagged with its role; the
firewall matrix as inbound rules of a network security group on those groups, inside the group
(`securityRules`, naming the groups by id) or as SecurityRule resources of their own (naming them
through the engine's property dependencies), closed by an explicit deny-all; interfaces in their
role's group, machines running as their role's user-assigned identity; the stack's vault, key,
disk encryption set and registry; role assignments on the one resource they concern.
"""

from __future__ import annotations

import base64
from typing import Any

from review.policy import PlannedResource
from tests.unit.policy_cases import ADMIN, TAGS, Case, res

SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000"
GROUP = f"{SUBSCRIPTION}/resourceGroups/dpc-azure-prod"
VNET_RANGE = "10.30.0.0/16"
ROLES = ("manager", "worker", "app", "backup", "bastion")

ASG = "azure-native:network:ApplicationSecurityGroup"
NSG = "azure-native:network:NetworkSecurityGroup"
RULE = "azure-native:network:SecurityRule"
NIC = "azure-native:network:NetworkInterface"
VM = "azure-native:compute:VirtualMachine"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
ASSIGNMENT = "azure-native:authorization:RoleAssignment"
KEY = "azure-native:keyvault:Key"
SECRETS_USER = f"{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6"
CONTRIBUTOR = f"{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"


def made(typ: str, name: str, inputs: dict[str, Any], arm_id: str, *, deps: dict[str, list[PlannedResource]] | None = None) -> PlannedResource:
    """A resource as the engine hands it at `up`: its outputs echo its inputs and give its ARM id."""
    planned = res(typ, name, inputs, deps=deps)
    return PlannedResource(planned.urn, typ, name, inputs, property_dependencies=planned.property_dependencies, outputs={**inputs, "id": arm_id})


def asg_id(group: str) -> str:
    return f"{GROUP}/providers/Microsoft.Network/applicationSecurityGroups/azure-prod-network-{group}"


def asg(group: str, name: str | None = None) -> PlannedResource:
    """The application security group of `group`, tagged with it (a copy when `name` differs)."""
    asg_name = name or f"azure-prod-network-{group}"
    return made(ASG, f"{name or group}-asg", {"applicationSecurityGroupName": asg_name, "tags": {**TAGS, "Role": group}},
                f"{GROUP}/providers/Microsoft.Network/applicationSecurityGroups/{asg_name}")


ASGS = {group: asg(group) for group in (*ROLES, "load-balancer")}
NAMED_ASGS = [res(ASG, f"{group}-asg", {"applicationSecurityGroupName": f"azure-prod-network-{group}", "resourceGroupName": "dpc-azure-prod",
                                        "tags": {**TAGS, "Role": group}}) for group in (*ROLES, "load-balancer")]
"""The groups as a first preview shows them: no id yet, their names and resource group known."""
VNET = res("azure-native:network:VirtualNetwork", "vnet", {"addressSpace": {"addressPrefixes": [VNET_RANGE]}, "tags": TAGS})


def rule(name: str, priority: int, to: str | None, ports: str | list[str], *, protocol: str = "Tcp", access: str = "Allow", **source: Any) -> dict[str, Any]:
    """An inbound rule into the group `to` (None: to every address, `*`), on one port range or several."""
    port_key = "destinationPortRanges" if isinstance(ports, list) else "destinationPortRange"
    destination = {"destinationApplicationSecurityGroups": [{"id": asg_id(to)}]} if to else {"destinationAddressPrefix": "*"}
    return {"name": name, "priority": priority, "direction": "Inbound", "access": access, "protocol": protocol, "sourcePortRange": "*",
            port_key: ports, **destination, **source}


def from_groups(*groups: str) -> dict[str, Any]:
    return {"sourceApplicationSecurityGroups": [{"id": asg_id(g)} for g in groups]}


DENY_ALL = {"name": "deny-all-in", "priority": 4096, "direction": "Inbound", "access": "Deny", "protocol": "*", "sourcePortRange": "*",
            "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "destinationPortRange": "*"}


def nsg(*rules: dict[str, Any], name: str = "nsg") -> PlannedResource:
    """A network security group with rules inside it; their groups' ids pooled in one dependency, as the engine records them."""
    return made(NSG, name, {"securityRules": list(rules), "tags": TAGS}, f"{GROUP}/providers/Microsoft.Network/networkSecurityGroups/{name}",
                deps={"securityRules": list(ASGS.values())})


EMPTY_NSG = nsg(DENY_ALL)


def separate(name: str, priority: int, to: str | PlannedResource | None, ports: str | list[str], *, group: PlannedResource = EMPTY_NSG,
             sources: tuple[PlannedResource, ...] = (), **inputs: Any) -> PlannedResource:
    """A SecurityRule resource of the network security group `group`; its groups named through its property dependencies."""
    target = ASGS[to] if isinstance(to, str) else to
    body = rule(name, priority, None, ports, **inputs)
    deps: dict[str, list[PlannedResource]] = {"networkSecurityGroupName": [group]}
    if target is not None:
        del body["destinationAddressPrefix"]
        body["destinationApplicationSecurityGroups"] = [{"id": "computed"}]
        deps["destinationApplicationSecurityGroups"] = [target]
    if sources:
        body["sourceApplicationSecurityGroups"] = [{"id": "computed"} for _ in sources]
        deps["sourceApplicationSecurityGroups"] = list(sources)
    del body["name"]
    return res(RULE, name, {"networkSecurityGroupName": "nsg", "resourceGroupName": "dpc-azure-prod", **body}, deps=deps)


NETWORK = [*ASGS.values(), VNET, EMPTY_NSG]


def identity(role: str) -> PlannedResource:
    return made(IDENTITY, f"{role}-identity", {"resourceName": f"azure-prod-compute-{role}", "tags": TAGS},
                f"{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/azure-prod-compute-{role}")


IDENTITIES = {role: identity(role) for role in ROLES}


def nic(name: str, *groups: PlannedResource, literal: int = 0, public: bool = False, **tags: str) -> PlannedResource:
    """An interface whose one IP configuration is in `groups` (and `literal` groups the stack did not make)."""
    configuration: dict[str, Any] = {"name": "ip", "applicationSecurityGroups": [{"id": "computed"} for _ in groups] + [
        {"id": f"{SUBSCRIPTION}/resourceGroups/other/providers/Microsoft.Network/applicationSecurityGroups/x"}] * literal}
    if public:
        configuration["publicIPAddress"] = {"id": "computed"}
    return res(NIC, name, {"ipConfigurations": [configuration], "tags": {**TAGS, **tags}}, deps={"ipConfigurations": list(groups)})


def vm(name: str, interface: PlannedResource, *identities: PlannedResource, **inputs: Any) -> PlannedResource:
    """A machine on `interface`, running as `identities` (user-assigned, listed by ARM id as pulumi-azure-native 3 takes them)."""
    props = {"networkProfile": {"networkInterfaces": [{"id": "computed", "primary": True}]},
             "identity": {"type": "UserAssigned", "userAssignedIdentities": [f"computed-{i.name}" for i in identities]}, "tags": TAGS, **inputs}
    return res(VM, name, props, deps={"networkProfile": [interface], "identity": list(identities)})


def assignment(name: str, scope: str, role: str = SECRETS_USER, principal: PlannedResource | None = None) -> PlannedResource:
    principal = principal or IDENTITIES["worker"]
    return res(ASSIGNMENT, name, {"principalId": "computed", "principalType": "ServicePrincipal", "roleDefinitionId": role, "scope": scope},
               deps={"principalId": [principal]})


def rotated(name: str, trigger: dict[str, str] | None, *, action: str = "rotate", expiry: str | None = None) -> PlannedResource:
    policy: dict[str, Any] = {"lifetimeActions": [{"action": {"type": action}, **({"trigger": trigger} if trigger else {})}]}
    if expiry:
        policy["attributes"] = {"expiryTime": expiry}
    return res(KEY, name, {"properties": {"kty": "RSA-HSM", "rotationPolicy": policy}, "tags": TAGS})


VAULT = {"enablePurgeProtection": True, "enableSoftDelete": True, "enableRbacAuthorization": True, "tenantId": "t", "sku": {"family": "A", "name": "standard"}}
TRUSTED = {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}, "encryptionAtHost": True}
SECRET_SCOPE = f"{GROUP}/providers/Microsoft.KeyVault/vaults/dpc-azure-prod/secrets/worker-token"
MATRIX_NSG = nsg(
    rule("manager-in-tcp2379-2380-from-roles", 100, "manager", "2379-2380", **from_groups("manager")),
    rule("manager-in-tcp5432-from-load-balancer", 110, "manager", "5432", sourceAddressPrefix="AzureLoadBalancer"),
    rule("manager-in-tcp5432-from-clients", 120, "manager", "5432", sourceAddressPrefix="VirtualNetwork"),
    rule("worker-in-esp-from-roles", 130, "worker", "*", protocol="Esp", **from_groups("manager", "worker", "app", "backup")),
    rule("worker-in-udp-from-roles", 140, "worker", ["7946", "4789"], protocol="Udp", **from_groups("manager", "worker")),
    rule("bastion-in-tcp22-from-admin", 150, "bastion", "22", sourceAddressPrefixes=[ADMIN]),
    DENY_ALL,
)

LOG_ACCOUNT = res("azure-native:storage:StorageAccount", "flow-logs", {"sku": {"name": "Standard_ZRS"}, "tags": TAGS})
DEPLOY_KEY = res("tls:index/privateKey:PrivateKey", "deploy-key", {"algorithm": "ED25519"})
PASSWORD = res("random:index/randomPassword:RandomPassword", "pw", {"length": 32})


def flow_log(name: str, retention: dict[str, Any], account: PlannedResource = LOG_ACCOUNT) -> PlannedResource:
    return res("azure-native:network:FlowLog", name, {"targetResourceId": "computed", "storageId": "computed", "enabled": True,
                                                      "retentionPolicy": retention, "networkWatcherName": "NetworkWatcher_eastus2",
                                                      "resourceGroupName": "NetworkWatcherRG", "tags": TAGS},
               deps={"storageId": [account], "targetResourceId": [VNET]})


def custom_data(token: str) -> dict[str, Any]:
    script = f"#cloud-config\nwrite_files:\n  - path: /etc/dpc/node.env\n    content: |\n      DPC_JOIN_TOKEN='{token}'\n"
    return {"customData": base64.b64encode(script.encode()).decode(), "adminUsername": "azureuser"}


AZURE_CASES = [
    Case(
        "ports-only-from-firewall-matrix",
        "azure: rules inside the group and separate ones, on application security groups and service tags",
        [*NETWORK, MATRIX_NSG, separate("worker-in-tcp8008-from-manager", 200, "worker", "8008", sources=(ASGS["manager"],))],
        [*NETWORK,
         nsg(rule("patroni-api-range", 100, "worker", "8000-8010", **from_groups("manager")), DENY_ALL, name="wide-nsg"),
         separate("probes-to-pgbouncer", 200, "app", "6432", sourceAddressPrefix="AzureLoadBalancer"),
         separate("etcd-from-the-vnet", 210, "manager", "2379", sourceAddressPrefix="VirtualNetwork"),
         separate("every-machine", 220, None, "8008", sources=(ASGS["manager"],)),
         res(RULE, "unmade-target", {**rule("unmade-target", 230, "manager", "5432", **from_groups("app")), "networkSecurityGroupName": "nsg"},
             deps={"networkSecurityGroupName": [EMPTY_NSG], "sourceApplicationSecurityGroups": [ASGS["app"]]}),
         separate("storage-tag", 240, "manager", "2379", sourceAddressPrefix="Storage")],
        offenders=6,
    ),
    Case(
        "ports-only-from-firewall-matrix",
        "azure at a first preview: groups inside a network security group named by the ids the program writes from their names",
        [*NAMED_ASGS, VNET, MATRIX_NSG],
        [*NAMED_ASGS, VNET, nsg({**rule("etcd-from-a-lookalike", 100, "manager", "2379", **from_groups("manager")),
                                "destinationApplicationSecurityGroups": [{"id": asg_id("manager").replace("dpc-azure-prod", "elsewhere")}]},
                               DENY_ALL, name="lookalike-nsg")],
    ),
    Case(
        "ssh-only-from-admins-to-bastion",
        "azure: the bastion from the admins, the nodes from the bastion's group",
        [*NETWORK, MATRIX_NSG, separate("worker-in-tcp22-from-bastion", 200, "worker", "22", sources=(ASGS["bastion"],)),
         separate("app-in-tcp6432-from-clients", 210, "app", "6432", sourceAddressPrefix="VirtualNetwork")],
        [*NETWORK, separate("bastion-from-a-wider-range", 200, "bastion", "22", sourceAddressPrefix="198.51.100.0/24"),
         separate("worker-from-the-vnet", 210, "worker", "22", sourceAddressPrefix="VirtualNetwork"),
         separate("manager-every-port-from-admins", 220, "manager", "*", sourceAddressPrefix=ADMIN),
         separate("worker-from-the-app-group", 230, "worker", ["20-25"], sources=(ASGS["app"],)),
         nsg(rule("ssh-range-from-everywhere", 100, "bastion", "1-1024", sourceAddressPrefix="*"), DENY_ALL, name="open-nsg")],
        offenders=5,
    ),
    Case(
        "no-ingress-from-anywhere",
        "azure: halves of the address space in two rules into one group",
        [*NETWORK, separate("lo", 200, "manager", "5432", sourceAddressPrefix="0.0.0.0/1"),
         separate("hi", 210, "worker", "5432", sourceAddressPrefix="128.0.0.0/1")],
        [*NETWORK, separate("lo", 200, "manager", "5432", sourceAddressPrefix="0.0.0.0/1"),
         separate("hi", 210, "manager", "5432", sourceAddressPrefix="128.0.0.0/1"),
         nsg(rule("pg-from-internet", 100, "manager", "5432", sourceAddressPrefix="Internet"), DENY_ALL, name="open-nsg")],
        offenders=3,
    ),
    Case(
        "machines-identified-by-their-groups",
        "azure: an interface is its application security group's role, a machine runs as that role's identity",
        [*NETWORK, *IDENTITIES.values(), worker := nic("worker-1-nic", ASGS["worker"], Role="worker"), vm("worker-1", worker, IDENTITIES["worker"])],
        [*NETWORK, *IDENTITIES.values(), asg("bastion", "azure-prod-network-bastion-copy"),
         nic("two-groups", ASGS["worker"], ASGS["bastion"]),
         nic("literal-group", ASGS["worker"], literal=1),
         nic("liar", ASGS["worker"], Role="bastion"),
         app := nic("app-1-nic", ASGS["app"]), vm("app-as-the-worker", app, IDENTITIES["worker"]),
         backup := nic("backup-1-nic", ASGS["backup"]), vm("backup-as-two", backup, IDENTITIES["backup"], IDENTITIES["manager"]),
         manager := nic("manager-1-nic", ASGS["manager"]), vm("manager-as-nobody", manager)],
        offenders=7,
    ),
    Case(
        "no-public-ip-on-nodes",
        "azure: by the application security group, interfaces and machines' own configurations",
        [*NETWORK, nic("bastion-nic", ASGS["bastion"], public=True, Role="bastion")],
        [*NETWORK, nic("worker-nic", ASGS["worker"], public=True, Role="bastion"),
         res(VM, "inline", {"networkProfile": {"networkInterfaceConfigurations": [{"name": "nic", "ipConfigurations": [
             {"name": "ip", "applicationSecurityGroups": [{"id": "computed"}], "publicIPAddressConfiguration": {"name": "pip"}}]}]}},
             deps={"networkProfile": [ASGS["app"]]})],
        offenders=2,
    ),
    Case(
        "default-security-group-closed",
        "azure: every subnet under a group that ends in an explicit deny-all",
        [MATRIX_NSG, separated := nsg(name="separate-nsg"), res(RULE, "deny", {**DENY_ALL, "networkSecurityGroupName": "n", "resourceGroupName": "g"},
                                                                 deps={"networkSecurityGroupName": [separated]}),
         res("azure-native:network:Subnet", "private-1", {"addressPrefix": "10.30.0.0/24", "networkSecurityGroup": {"id": "computed"}},
             deps={"networkSecurityGroup": [MATRIX_NSG]}),
         res("azure-native:network:VirtualNetwork", "inline", {"subnets": [{"name": "s", "networkSecurityGroup": {"id": "computed"}}]},
             deps={"subnets": [MATRIX_NSG]})],
        [nsg({**DENY_ALL, "destinationPortRange": "22"}, name="ssh-only-deny"),
         res("azure-native:network:Subnet", "bare", {"addressPrefix": "10.30.1.0/24"}),
         res("azure-native:network:VirtualNetwork", "inline", {"subnets": [{"name": "s"}]})],
        offenders=3,
    ),
    Case(
        "iam-least-privilege",
        "azure: no role on a subscription, resource group or vault, no Contributor",
        [assignment("read-worker-token", SECRET_SCOPE)],
        [assignment("on-the-group", GROUP), assignment("on-the-subscription", f"{SUBSCRIPTION}/"),
         assignment("contributor", SECRET_SCOPE, CONTRIBUTOR), assignment("on-the-vault", SECRET_SCOPE.rsplit("/secrets/", 1)[0])],
        offenders=4,
    ),
    Case(
        "keys-rotated",
        "azure: a rotate action at most 90 days after each version",
        [rotated("quarterly", {"timeAfterCreate": "P90D"}), rotated("before-expiry", {"timeBeforeExpiry": "P7D"}, expiry="P90D")],
        [rotated("yearly", {"timeAfterCreate": "P1Y"}), rotated("three-months", {"timeAfterCreate": "P3M"}),
         rotated("notify-only", {"timeBeforeExpiry": "P30D"}, action="notify", expiry="P90D"), rotated("no-period", None)],
        offenders=4,
    ),
    Case(
        "azure-key-vault-protected",
        "azure",
        [res("azure-native:keyvault:Vault", "vault", {"properties": VAULT, "tags": TAGS})],
        [res("azure-native:keyvault:Vault", "purgeable", {"properties": {**VAULT, "enablePurgeProtection": False}}),
         res("azure-native:keyvault:Vault", "policies", {"properties": {**VAULT, "enableRbacAuthorization": False,
                                                                         "accessPolicies": [{"objectId": "o", "tenantId": "t", "permissions": {}}]}}),
         res("azure-native:keyvault:Vault", "no-soft-delete", {"properties": {**VAULT, "enableSoftDelete": False}})],
        offenders=3,
    ),
    Case(
        "registries-immutable-and-scanned",
        "azure: customer key, no admin user, no anonymous pull",
        [res("azure-native:containerregistry:Registry", "r", {"encryption": {"status": "enabled"}, "adminUserEnabled": False})],
        [res("azure-native:containerregistry:Registry", "admin", {"encryption": {"status": "enabled"}, "adminUserEnabled": True}),
         res("azure-native:containerregistry:Registry", "anonymous", {"encryption": {"status": "enabled"}, "anonymousPullEnabled": True})],
        offenders=2,
    ),
    Case(
        "disks-encrypted-with-customer-key",
        "azure disk encryption set: the customer key, following its rotation",
        [res("azure-native:compute:DiskEncryptionSet", "des", {"encryptionType": "EncryptionAtRestWithCustomerKey",
                                                              "rotationToLatestKeyVersionEnabled": True})],
        [res("azure-native:compute:DiskEncryptionSet", "pinned", {"encryptionType": "EncryptionAtRestWithCustomerKey"}),
         res("azure-native:compute:DiskEncryptionSet", "confidential", {"encryptionType": "ConfidentialVmEncryptedWithCustomerKey",
                                                                        "rotationToLatestKeyVersionEnabled": True})],
        offenders=2,
    ),
    Case(
        "log-groups-retained",
        "azure flow logs: their own retention in the account they write",
        [flow_log("vnet-flows", {"enabled": True, "days": 365})],
        [flow_log("off", {"enabled": False, "days": 365}), flow_log("a-week", {"enabled": True, "days": 7})],
        offenders=2,
    ),
    Case(
        "buckets-versioned-and-replicated",
        "azure: the accounts that hold backups geo-redundant in prod, the flow logs' account a log store",
        [LOG_ACCOUNT, flow_log("vnet-flows", {"enabled": True, "days": 365}),
         res("azure-native:storage:StorageAccount", "backups", {"sku": {"name": "Standard_GZRS"}, "tags": TAGS})],
        [LOG_ACCOUNT, res("azure-native:storage:StorageAccount", "backups", {"sku": {"name": "Standard_ZRS"}, "tags": TAGS})],
        offenders=2,
    ),
    Case(
        "disks-encrypted-with-customer-key",
        "azure vm: a managed disk it attaches is judged as that disk",
        [res(VM, "worker-1", {"storageProfile": {"osDisk": {"managedDisk": {"diskEncryptionSet": {"id": "computed"}}}, "dataDisks": [
            {"lun": 0, "createOption": "Attach", "managedDisk": {"id": "computed"}}]}})],
        [res(VM, "worker-1", {"storageProfile": {"osDisk": {"managedDisk": {"diskEncryptionSet": {"id": "computed"}}}, "dataDisks": [
            {"lun": 0, "createOption": "Empty", "diskSizeGB": 64, "managedDisk": {"storageAccountType": "PremiumV2_LRS"}}]}})],
    ),
    Case(
        "no-secret-in-rendered-config",
        "azure custom data: a Key Vault secret's identifier, not a literal",
        [res(VM, "node", {"osProfile": custom_data("https://azureprodvault.vault.azure.net/secrets/azure-prod-swarm-worker-token")})],
        [res(VM, "node", {"osProfile": custom_data("SWMTKNx1x2x3x4x5x6")}),
         res(VM, "not-key-vault", {"osProfile": custom_data("https://azureprodvault.vault.example.net/secrets/worker-token")})],
        offenders=2,
    ),
    Case(
        "no-generated-secret-outside-secret-stores",
        "azure: a machine's Bootstrap tag, a digest of custom data holding the deploy key's public half; never from a password",
        [DEPLOY_KEY, res(VM, "node", {"tags": {**TAGS, "Bootstrap": "3218c35d39bd1f05"}}, deps={"tags": [DEPLOY_KEY]})],
        [DEPLOY_KEY, PASSWORD, res(VM, "node", {"tags": {**TAGS, "Bootstrap": "3218c35d39bd1f05"}}, deps={"tags": [DEPLOY_KEY, PASSWORD]})],
    ),
    Case(
        "azure-trusted-launch",
        "azure: secure boot, vTPM, encryption at host",
        [res(VM, "node", {"securityProfile": TRUSTED})],
        [res(VM, "standard", {"securityProfile": {**TRUSTED, "securityType": "Standard"}}),
         res(VM, "no-secure-boot", {"securityProfile": {**TRUSTED, "uefiSettings": {"vTpmEnabled": True}}}),
         res(VM, "cache-in-clear", {"securityProfile": {**TRUSTED, "encryptionAtHost": False}})],
        offenders=3,
    ),
    Case(
        "machines-identified-by-their-groups",
        "azure: no system-assigned identity beside the role's",
        [*NETWORK, *IDENTITIES.values(), worker := nic("worker-1-nic", ASGS["worker"]), vm("worker-1", worker, IDENTITIES["worker"])],
        [*NETWORK, *IDENTITIES.values(), worker, res(VM, "worker-1", {**vm("worker-1", worker, IDENTITIES["worker"]).inputs, "identity": {
            "type": "SystemAssigned, UserAssigned", "userAssignedIdentities": ["computed"]}},
            deps={"networkProfile": [worker], "identity": [IDENTITIES["worker"]]})],
    ),
    Case(
        "stateful-resources-protected",
        "azure: what makes data unreadable when it goes",
        [res("azure-native:compute:DiskEncryptionSet", "des", {}, protect=True), res("azure-native:resources:ResourceGroup", "group", {}, protect=True)],
        [res("azure-native:compute:DiskEncryptionSet", "des", {}), res("azure-native:containerregistry:Registry", "acr", {}),
         res("azure-native:storage:BlobContainer", "backups", {"accountName": "a", "resourceGroupName": "g"}),
         res("azure-native:resources:ResourceGroup", "group", {})],
        offenders=4,
    ),
]
