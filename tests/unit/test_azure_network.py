"""The Azure network and endpoint (`providers/azure/network.py`, `providers/azure/load_balancer.py`),
built under mocks as components of a stack and read as a plan: the security rules are exactly the
model's matrix (design §2.5) under a deny-all, the load balancer's probes reach only 5432 on the
managers, subnets and NAT follow the zones, flow logs are kept as the environment says under the
stack's key, names fit Azure's limits, and the Standard load balancer is wired as design §2.4 says.
"""

from __future__ import annotations

import inspect
import ipaddress
import itertools
import re
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_azure_native as azure_native
import pytest

from components.base import StackContext
from components.load_balancer import LoadBalancer, LoadBalancerPlan, LoadBalancerTarget
from components.network import LOAD_BALANCER_GROUP, Network, NetworkPlan
from dpc.model import FIREWALL_MATRIX, LOAD_BALANCER_HEALTH_CHECK, LOAD_BALANCER_PORT, FromCidrs, FromLoadBalancer, FromRole, HealthCheck, Role
from providers.azure.load_balancer import build_load_balancer
from providers.azure.mocks import AzureMocks, sdk_class
from providers.azure.network import azure_name, build_network
from providers.azure.provider import AzureStack
from tests.mocked_program import run_mocked
from tests.plan_graph import PlanGraph, Resource

STACK = "azure-prod"
SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
TENANT = "00000000-0000-4000-8000-000000000002"
LOCATION = "eastus2"
GROUP = f"dpc-{STACK}"
ZONES = ("1", "2", "3")
VNET = "10.100.0.0/16"
PRIVATE = ("10.100.0.0/20", "10.100.16.0/20", "10.100.32.0/20")
PUBLIC = ("10.100.128.0/24", "10.100.129.0/24", "10.100.130.0/24")
ADMINS = ("198.51.100.0/24", "203.0.113.7/32")
CLIENTS = ("192.0.2.0/24",)
VAULT, KEY = "dpc-azure-prod-kv", "stack"
KEY_URI = f"https://{VAULT}.vault.azure.net/keys/{KEY}"
TAGS = {"CostCenter": "Platform Team", "Environment": "prod", "ManagedBy": "pulumi", "Project": "dpc", "Stack": STACK}
PROBES = "AzureLoadBalancer"
"""Azure's service tag of its load balancers' probe address (168.63.129.16), written apart from the code."""

NSG = "azure-native:network:NetworkSecurityGroup"
VNET_TYPE = "azure-native:network:VirtualNetwork"
ASG = "azure-native:network:ApplicationSecurityGroup"
SUBNET = "azure-native:network:Subnet"
NAT = "azure-native:network:NatGateway"
PUBLIC_IP = "azure-native:network:PublicIPAddress"
LOAD_BALANCER = "azure-native:network:LoadBalancer"
FLOW_LOG = "azure-native:network:FlowLog"
ACCOUNT = "azure-native:storage:StorageAccount"
GRANT = "azure-native:authorization:RoleAssignment"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
CRYPTO_USER, BLOB_CONTRIBUTOR = "e147488a-f6f5-4113-8e2d-b22465e65bf6", "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
"""The built-in roles' GUIDs as Microsoft lists them, written apart from the code."""
RULE_NAME = re.compile(r"\w[\w.-]*\w|\w")
"""What Azure takes as a security rule's name: word characters, `.` and `-`, starting and ending with a word character."""
NAME_LIMITS = {"virtualNetworkName": 64, "accountName": 24}
"""Azure's limits on names (80 for every other name here)."""


@dataclass
class Built:
    """The recorded resources of one stack's network and endpoint, and their results resolved."""

    graph: PlanGraph
    client_cidrs: tuple[str, ...]
    nat_per_zone: bool
    groups: dict[str, str] = field(default_factory=dict[str, str])
    egress: dict[str, list[str]] = field(default_factory=dict[str, list[str]])
    private: dict[str, str] = field(default_factory=dict[str, str])
    address: str = ""

    @property
    def internal(self) -> bool:
        return not self.client_cidrs


def _network_plan(client_cidrs: tuple[str, ...], nat_per_zone: bool, retention: int = 365) -> NetworkPlan:
    return NetworkPlan(
        cidr=VNET,
        zones=ZONES,
        private_cidrs=PRIVATE,
        public_cidrs=PUBLIC,
        nat_per_zone=nat_per_zone,
        rules=FIREWALL_MATRIX,
        admin_cidrs=ADMINS,
        client_cidrs=client_cidrs,
        flow_log_retention_days=retention,
        key_id=pulumi.Output.from_input(KEY_URI),
    )


MANAGER_ADDRESSES = {"manager-1": "10.100.0.10", "manager-2": "10.100.16.10", "manager-3": "10.100.32.10"}


def _build(
    client_cidrs: tuple[str, ...] = (), *, nat_per_zone: bool = True, stack: str = STACK, retention: int = 365, private: tuple[str, ...] = PRIVATE
) -> Built:
    """Runs the two builders as the composition does, under the offline plan's Azure mocks, with the
    stack's provider and resource group as `providers.azure.provider` makes them."""
    built = Built(PlanGraph({"steps": []}), client_cidrs, nat_per_zone)

    def program() -> None:
        provider = azure_native.Provider(f"{stack}-azure", subscription_id=SUBSCRIPTION, tenant_id=TENANT, location=LOCATION)
        home = AzureStack(pulumi.Output.from_input(GROUP), LOCATION, SUBSCRIPTION, TENANT)
        context = StackContext(TAGS, protect_state=True, opts=pulumi.ResourceOptions(provider=provider))
        network_plan = replace(_network_plan(client_cidrs, nat_per_zone, retention), private_cidrs=private)
        network = Network(f"{stack}-network", network_plan, lambda scope, p: build_network(home, scope, p), context).result
        targets = tuple(
            LoadBalancerTarget(node, zone, pulumi.Output.from_input(f"vm-{node}"), pulumi.Output.from_input(MANAGER_ADDRESSES[node]))
            for node, zone in zip(MANAGER_ADDRESSES, ZONES, strict=True)
        )
        lb_plan = LoadBalancerPlan(not client_cidrs, LOAD_BALANCER_PORT, LOAD_BALANCER_HEALTH_CHECK, network, ZONES, targets, deletion_protection=True)
        endpoint = LoadBalancer(f"{stack}-endpoint", lb_plan, lambda scope, p: build_load_balancer(home, scope, p), context).result
        for group, asg in network.firewall_group_ids.items():
            asg.apply(lambda value, group=group: built.groups.__setitem__(group, value))
        for zone, subnet in network.private_subnet_ids.items():
            subnet.apply(lambda value, zone=zone: built.private.__setitem__(zone, value))
        for zone, resources in network.private_egress.items():
            pulumi.Output.all(*(r.urn for r in resources)).apply(lambda urns, zone=zone: built.egress.__setitem__(zone, list(urns)))
        endpoint.address.apply(lambda value: setattr(built, "address", value))

    monitor = run_mocked(AzureMocks(SUBSCRIPTION, TENANT, LOCATION), program, stack)
    built.graph = PlanGraph({"steps": monitor.steps})
    return built


@pytest.fixture(scope="module", params=[((), True), (CLIENTS, False)], ids=["internal-nat-per-zone", "public-one-nat"])
def built(request: pytest.FixtureRequest) -> Built:
    clients, per_zone = request.param
    return _build(clients, nat_per_zone=per_zone)


def _rules(built: Built) -> list[dict[str, Any]]:
    (nsg,) = built.graph.of_type(NSG)
    return nsg.inputs["securityRules"]


def _allows(built: Built) -> list[dict[str, Any]]:
    return [r for r in _rules(built) if r["access"] == "Allow"]


def _group_of(built: Built) -> dict[str, str]:
    """Each application security group's id to its firewall group, by the group's own name."""
    return {asg.id: asg.name.removeprefix(f"{STACK}-network-").removesuffix("-asg") for asg in built.graph.of_type(ASG)}


def _expected(built: Built) -> set[tuple[str, str, str, str]]:
    """The matrix's rows to machines as (target group, protocol, ports, source), each source group
    or range one entry: what the security rules must allow, and all they may."""
    clients = built.client_cidrs or (VNET,)
    expected: set[tuple[str, str, str, str]] = set()
    for rule in FIREWALL_MATRIX:
        if rule.to is None:
            continue
        ports = "*" if rule.protocol == "esp" else f"{rule.port}" if rule.port == rule.to_port else f"{rule.port}-{rule.to_port}"
        source = rule.source
        if isinstance(source, FromRole):
            sources = {f"group:{source.role.value}"}
        elif isinstance(source, FromCidrs):
            sources = {f"prefix:{c}" for c in (ADMINS if source.kind == "admin" else clients)}
        else:
            assert isinstance(source, FromLoadBalancer)
            sources = {f"prefix:{PROBES}"}
        expected |= {(rule.to.value, rule.protocol, ports, s) for s in sources}
    return expected


def _allowed(built: Built, rule: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    groups = _group_of(built)
    sources = {f"group:{groups[g['id']]}" for g in rule.get("sourceApplicationSecurityGroups", [])}
    sources |= {f"prefix:{p}" for p in [*rule.get("sourceAddressPrefixes", []), *filter(None, [rule.get("sourceAddressPrefix")])]}
    targets = [groups[target["id"]] for target in rule["destinationApplicationSecurityGroups"]]
    return {(target, rule["protocol"].lower(), rule["destinationPortRange"], source) for target in targets for source in sources}


def test_the_security_rules_allow_exactly_the_matrix(built: Built) -> None:
    allowed: set[tuple[str, str, str, str]] = set()
    for rule in _allows(built):
        assert rule["direction"] == "Inbound" and rule["sourcePortRange"] == "*"
        assert len(rule["destinationApplicationSecurityGroups"]) == 1 and "destinationAddressPrefix" not in rule, rule["name"]
        assert ("sourceApplicationSecurityGroups" in rule) != ("sourceAddressPrefix" in rule or "sourceAddressPrefixes" in rule), rule["name"]
        allowed |= _allowed(built, rule)
    assert allowed == _expected(built)
    assert len(_allows(built)) == sum(1 for rule in FIREWALL_MATRIX if rule.to is not None), "one rule per row of the matrix"


def test_every_group_has_its_application_security_group_and_only_roles_are_targets(built: Built) -> None:
    groups = _group_of(built)
    assert {group: groups[asg] for group, asg in built.groups.items()} == {group: group for group in (*(r.value for r in Role), LOAD_BALANCER_GROUP)}
    targets = {groups[t["id"]] for r in _allows(built) for t in r["destinationApplicationSecurityGroups"]}
    assert targets == {role.value for role in Role}, "the load balancer is no machine: no rule targets its group"
    for asg in built.graph.of_type(ASG):
        assert asg.inputs["resourceGroupName"] == GROUP and asg.inputs["location"] == LOCATION


def test_everything_else_is_denied_at_the_lowest_priority(built: Built) -> None:
    rules = _rules(built)
    denies = [r for r in rules if r["access"] == "Deny"]
    assert len(denies) == 1
    deny = denies[0]
    assert (deny["priority"], deny["direction"], deny["protocol"]) == (4096, "Inbound", "*")
    assert (deny["sourceAddressPrefix"], deny["destinationAddressPrefix"], deny["sourcePortRange"], deny["destinationPortRange"]) == ("*", "*", "*", "*")
    assert all(r["direction"] == "Inbound" for r in rules), "outbound stays Azure's default: open (design §2.5)"
    assert max(r["priority"] for r in rules) == deny["priority"]


def test_priorities_are_unique_and_within_azures_range(built: Built) -> None:
    priorities = [r["priority"] for r in _rules(built)]
    assert len(set(priorities)) == len(priorities)
    assert all(100 <= p <= 4096 for p in priorities)
    assert sorted(r["priority"] for r in _allows(built)) == list(range(100, 100 + len(_allows(built))))


def test_no_allow_rule_is_open_to_the_internet(built: Built) -> None:
    for rule in _allows(built):
        for prefix in [*rule.get("sourceAddressPrefixes", []), *filter(None, [rule.get("sourceAddressPrefix")])]:
            assert prefix == PROBES or ipaddress.ip_network(prefix).prefixlen >= 16, f"{rule['name']} allows {prefix}"


def test_the_probes_reach_only_5432_on_the_managers(built: Built) -> None:
    groups = _group_of(built)
    carrying = [r for r in _allows(built) if PROBES in (r.get("sourceAddressPrefix"), *r.get("sourceAddressPrefixes", []))]
    assert len(carrying) == 1
    probe = carrying[0]
    assert [groups[t["id"]] for t in probe["destinationApplicationSecurityGroups"]] == ["manager"]
    assert (probe["protocol"], probe["destinationPortRange"], probe["sourceAddressPrefix"]) == ("Tcp", "5432", PROBES)
    assert probe["name"] == "manager-in-tcp5432-from-load-balancer"


def test_admins_reach_only_ssh_on_the_bastion_and_clients_only_their_rows(built: Built) -> None:
    groups = _group_of(built)
    clients = set(built.client_cidrs or (VNET,))

    def reached(prefixes: set[str]) -> set[tuple[str, str]]:
        return {
            (groups[t["id"]], r["destinationPortRange"])
            for r in _allows(built)
            if prefixes & {*r.get("sourceAddressPrefixes", []), r.get("sourceAddressPrefix")}
            for t in r["destinationApplicationSecurityGroups"]
        }

    assert reached(set(ADMINS)) == {("bastion", "22")}
    assert reached(clients) == {("manager", "5432"), ("app", "6432"), ("app", "6379")}
    if not built.internal:
        assert not any(VNET in {*r.get("sourceAddressPrefixes", []), r.get("sourceAddressPrefix")} for r in _allows(built)), "public: the listed clients only"


def test_rule_names_and_descriptions_fit_azure(built: Built) -> None:
    names = [r["name"] for r in _rules(built)]
    assert len(set(names)) == len(names) and all(len(n) <= 80 and RULE_NAME.fullmatch(n) for n in names), names
    assert all(0 < len(r["description"]) <= 140 for r in _rules(built))
    rule = next(r for r in _allows(built) if r["name"] == "worker-in-tcp5432-from-backup")
    assert rule["description"] == "PostgreSQL replication (backup agent)"
    esp = [r for r in _allows(built) if r["protocol"] == "Esp"]
    assert esp and all(r["destinationPortRange"] == "*" for r in esp)


def _names(graph: PlanGraph) -> list[tuple[str, str, int]]:
    """Every name the program gives an Azure resource, with its input and Azure's limit."""
    return [
        (key, value, NAME_LIMITS.get(key, 80))
        for r in graph.resources
        if r.type.startswith("azure-native:") and r.type != GRANT
        for key, value in r.inputs.items()
        if key.endswith("Name") and key != "resourceGroupName" and (key != "virtualNetworkName" or r.type == VNET_TYPE)
    ]


def test_every_name_fits_azure_under_a_long_stack_name() -> None:
    long = "azure-production-germanywestcentral-blue"
    graph = _build(CLIENTS, stack=long).graph
    names = _names(graph)
    assert names and all(len(value) <= limit for _, value, limit in names), [n for n in names if len(n[1]) > n[2]]
    own = [value for key, value, _ in names if key != "networkWatcherName"]
    assert len(set(own)) == len(own)
    (account,) = graph.of_type(ACCOUNT)
    assert account.inputs["accountName"].isalnum() and account.inputs["accountName"].islower() and 3 <= len(account.inputs["accountName"]) <= 24


def test_long_names_are_cut_deterministically_and_stay_apart() -> None:
    long = "azure-production-germanywestcentral-blue-network-manager-in-tcp2379-2380-from-roles"
    cut = azure_name(long)
    assert len(cut) == 80 and cut == azure_name(long) and cut.startswith("azure-production-germanywestcentral-blue-network")
    assert azure_name(long.replace("2379", "2378")) != cut
    assert azure_name("short") == "short"
    assert len(azure_name(long, 64)) <= 64


def test_one_private_and_one_public_subnet_per_zone_in_zone_order(built: Built) -> None:
    graph = built.graph
    (nsg,) = graph.of_type(NSG)
    subnets = graph.of_type(SUBNET)
    assert sorted(s.inputs["subnetName"] for s in subnets) == sorted(f"{tier}-{zone}" for tier in ("private", "public") for zone in ZONES)
    by_name = {s.inputs["subnetName"]: s for s in subnets}
    for zone, private, public in zip(ZONES, PRIVATE, PUBLIC, strict=True):
        assert by_name[f"private-{zone}"].inputs["addressPrefix"] == private and by_name[f"public-{zone}"].inputs["addressPrefix"] == public
        assert built.private[zone] == by_name[f"private-{zone}"].id
    (vnet,) = graph.of_type(VNET_TYPE)
    assert vnet.inputs["addressSpace"] == {"addressPrefixes": [VNET]} and "subnets" not in vnet.inputs
    for subnet in subnets:
        assert subnet.inputs["virtualNetworkName"] == vnet.inputs["virtualNetworkName"]
        assert subnet.inputs["networkSecurityGroup"] == {"id": nsg.id}, "every subnet under the one security group"
        assert subnet.inputs["defaultOutboundAccess"] is False
        private = subnet.inputs["subnetName"].startswith("private")
        assert ("natGateway" in subnet.inputs) == private, "NAT for the private subnets only"
        assert subnet.inputs.get("serviceEndpoints") == ([{"service": "Microsoft.Storage"}, {"service": "Microsoft.KeyVault"}] if private else None)


def test_subnets_are_created_one_after_the_other(built: Built) -> None:
    steps = {s["urn"]: s["newState"] for s in built.graph.plan["steps"]}
    subnets = built.graph.of_type(SUBNET)
    for before, after in itertools.pairwise(subnets):
        assert before.urn in steps[after.urn]["dependencies"]


def test_nat_per_zone_or_one_for_every_private_subnet(built: Built) -> None:
    graph = built.graph
    gateways, addresses = graph.of_type(NAT), graph.of_type(PUBLIC_IP)
    nat_zones = ZONES if built.nat_per_zone else ZONES[:1]
    assert sorted(g.inputs["zones"][0] for g in gateways) == list(nat_zones)
    nat_addresses = [a for a in addresses if "-nat-" in a.name]
    assert len(nat_addresses) == len(nat_zones)
    for gateway in gateways:
        (zone,) = gateway.inputs["zones"]
        assert gateway.inputs["sku"] == {"name": "Standard"}
        (address,) = [a for a in nat_addresses if a.id == gateway.inputs["publicIpAddresses"][0]["id"]]
        assert len(gateway.inputs["publicIpAddresses"]) == 1
        assert address.inputs["zones"] == [zone] and address.inputs["sku"] == {"name": "Standard", "tier": "Regional"}
        assert address.inputs["publicIPAllocationMethod"] == "Static"
    gateway_of = {g.id: g.inputs["zones"][0] for g in gateways}
    for zone in ZONES:
        subnet = graph.named(f"network-private-{zone}", SUBNET)
        assert gateway_of[subnet.inputs["natGateway"]["id"]] == (zone if built.nat_per_zone else ZONES[0])


def test_a_node_boots_after_its_zones_nat_gateway_and_subnet(built: Built) -> None:
    graph = built.graph
    for zone in ZONES:
        nat_zone = zone if built.nat_per_zone else ZONES[0]
        assert built.egress[zone] == [graph.named(f"network-nat-{nat_zone}", NAT).urn, graph.named(f"network-private-{zone}", SUBNET).urn]


def test_flow_logs_of_the_network_are_kept_as_the_environment_says_under_the_stack_key(built: Built) -> None:
    graph = built.graph
    (log,) = graph.of_type(FLOW_LOG)
    (account,) = graph.of_type(ACCOUNT)
    (vnet,) = graph.of_type(VNET_TYPE)
    inputs = log.inputs
    assert inputs["retentionPolicy"] == {"days": 365, "enabled": True} and inputs["enabled"] is True
    assert (inputs["resourceGroupName"], inputs["networkWatcherName"]) == ("NetworkWatcherRG", f"NetworkWatcher_{LOCATION}")
    assert (inputs["targetResourceId"], inputs["storageId"]) == (vnet.id, account.id)
    assert inputs["format"] == {"type": "JSON", "version": 2}
    writer = graph.named("network-flow-logs-writer-identity", IDENTITY)
    assert inputs["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [writer.id]}
    a = account.inputs
    assert (a["kind"], a["sku"], a["minimumTlsVersion"]) == ("StorageV2", {"name": "Standard_ZRS"}, "TLS1_2")
    assert a["enableHttpsTrafficOnly"] is True and a["allowBlobPublicAccess"] is False and a["allowSharedKeyAccess"] is False
    key_identity = graph.named("network-flow-logs-key-identity", IDENTITY)
    assert a["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [key_identity.id]}
    assert a["encryption"] == {
        "keySource": "Microsoft.Keyvault",
        "keyVaultProperties": {"keyName": KEY, "keyVaultUri": f"https://{VAULT}.vault.azure.net"},
        "encryptionIdentity": {"encryptionUserAssignedIdentity": key_identity.id},
        "requireInfrastructureEncryption": True,
    }
    assert a["allowedCopyScope"] == "AAD"
    assert account.protect, "the logs are protected in prod"


def test_each_flow_log_identity_holds_one_grant_on_one_resource_before_it_is_used(built: Built) -> None:
    graph = built.graph
    steps = {s["urn"]: s["newState"] for s in graph.plan["steps"]}
    (account,) = graph.of_type(ACCOUNT)
    (log,) = graph.of_type(FLOW_LOG)
    vault_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.KeyVault/vaults/{VAULT}"
    roles = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions"
    grants = {g.name.removeprefix(f"{STACK}-network-"): g for g in graph.of_type(GRANT)}
    assert set(grants) == {"flow-logs-key-identity-key-user", "flow-logs-writer-grant"}
    key, writer = grants["flow-logs-key-identity-key-user"].inputs, grants["flow-logs-writer-grant"].inputs
    principal = {i.name.removeprefix(f"{STACK}-network-"): i for i in graph.of_type(IDENTITY)}
    assert key["scope"] == f"{vault_id}/keys/{KEY}" and key["roleDefinitionId"] == f"{roles}/{CRYPTO_USER}"
    assert writer["scope"] == account.id and writer["roleDefinitionId"] == f"{roles}/{BLOB_CONTRIBUTOR}"
    assert {key["principalType"], writer["principalType"]} == {"ServicePrincipal"}
    assert principal["flow-logs-key-identity"].urn in steps[grants["flow-logs-key-identity-key-user"].urn]["dependencies"]
    assert principal["flow-logs-writer-identity"].urn in steps[grants["flow-logs-writer-grant"].urn]["dependencies"]
    assert grants["flow-logs-key-identity-key-user"].urn in steps[account.urn]["dependencies"], "the account's identity holds the key first"
    assert grants["flow-logs-writer-grant"].urn in steps[log.urn]["dependencies"], "the writer holds the account first"


@pytest.mark.parametrize("days", [30, 90])
def test_flow_log_retention_follows_the_plan(days: int) -> None:
    graph = _build(retention=days).graph
    (log,) = graph.of_type(FLOW_LOG)
    assert log.inputs["retentionPolicy"] == {"days": days, "enabled": True}


def test_a_retention_azure_cannot_keep_is_refused() -> None:
    with pytest.raises(Exception, match="at most 365 days"):
        _build(retention=400)


def test_a_plan_without_a_subnet_per_zone_is_refused() -> None:
    with pytest.raises(Exception, match="one private and one public subnet per zone"):
        _build(private=PRIVATE[:1])


def test_the_endpoint_is_a_standard_balancer_of_the_managers_addresses_probed_as_design_2_4_says(built: Built) -> None:
    graph = built.graph
    (balancer,) = graph.of_type(LOAD_BALANCER)
    (vnet,) = graph.of_type(VNET_TYPE)
    inputs = balancer.inputs
    assert inputs["sku"] == {"name": "Standard", "tier": "Regional"} and balancer.protect
    (pool,) = inputs["backendAddressPools"]
    assert pool["loadBalancerBackendAddresses"] == [
        {"name": node, "ipAddress": address, "virtualNetwork": {"id": vnet.id}} for node, address in MANAGER_ADDRESSES.items()
    ]
    (probe,) = inputs["probes"]
    assert (probe["protocol"], probe["port"], probe["intervalInSeconds"], probe["probeThreshold"]) == ("Tcp", 5432, 10, 3)
    (rule,) = inputs["loadBalancingRules"]
    assert (rule["protocol"], rule["frontendPort"], rule["backendPort"]) == ("Tcp", 5432, 5432)
    assert rule["enableTcpReset"] is True and rule["disableOutboundSnat"] is True and rule["enableFloatingIP"] is False
    own = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Network/loadBalancers/{inputs['loadBalancerName']}"
    assert own == balancer.id
    assert rule["frontendIPConfiguration"] == {"id": f"{own}/frontendIPConfigurations/{inputs['frontendIPConfigurations'][0]['name']}"}
    assert rule["backendAddressPool"] == {"id": f"{own}/backendAddressPools/{pool['name']}"}
    assert rule["probe"] == {"id": f"{own}/probes/{probe['name']}"}


def test_the_frontend_is_internal_and_zone_redundant_unless_clients_are_listed(built: Built) -> None:
    graph = built.graph
    (balancer,) = graph.of_type(LOAD_BALANCER)
    (frontend,) = balancer.inputs["frontendIPConfigurations"]
    endpoint_addresses = [a for a in graph.of_type(PUBLIC_IP) if "-endpoint-" in a.name]
    if built.internal:
        assert not endpoint_addresses
        assert frontend["subnet"]["id"] == built.private[ZONES[0]] and frontend["zones"] == list(ZONES)
        assert frontend["privateIPAllocationMethod"] == "Dynamic" and "publicIPAddress" not in frontend
        assert ipaddress.ip_address(built.address) in ipaddress.ip_network(PRIVATE[0])
    else:
        (address,) = endpoint_addresses
        assert frontend == {"name": frontend["name"], "publicIPAddress": {"id": address.id}}
        assert address.inputs["zones"] == list(ZONES) and address.inputs["sku"] == {"name": "Standard", "tier": "Regional"}
        assert address.inputs["publicIPAllocationMethod"] == "Static" and address.protect
        assert ipaddress.ip_address(built.address) in ipaddress.ip_network("203.0.113.0/24"), "the mocks' public range"


def test_a_probe_azure_cannot_express_is_refused() -> None:
    def program() -> None:
        home = AzureStack(pulumi.Output.from_input(GROUP), LOCATION, SUBSCRIPTION, TENANT)
        context = StackContext(TAGS, protect_state=True, opts=pulumi.ResourceOptions())
        network = Network(f"{STACK}-network", _network_plan((), True), lambda scope, p: build_network(home, scope, p), context).result
        uneven = HealthCheck("TCP", 5432, interval_seconds=10, healthy_threshold=2, unhealthy_threshold=3)
        plan = LoadBalancerPlan(True, 5432, uneven, network, ZONES, (), True)
        LoadBalancer(f"{STACK}-endpoint", plan, lambda scope, p: build_load_balancer(home, scope, p), context)

    with pytest.raises(Exception, match="one threshold"):
        run_mocked(AzureMocks(SUBSCRIPTION, TENANT, LOCATION), program, STACK)


def _taggable(token: str) -> bool:
    """Whether the SDK's resource takes `tags`: decided by pulumi-azure-native itself."""
    cls = sdk_class(token)
    return cls is not None and "tags" in inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]  # every generated resource class has it


def test_every_taggable_resource_carries_the_stack_tags(built: Built) -> None:
    azure = [r for r in built.graph.resources if r.type.startswith("azure-native:") and r.type != "pulumi:providers:azure-native"]
    taggable = [r for r in azure if _taggable(r.type)]
    assert {r.type for r in azure} - {r.type for r in taggable} == {SUBNET, GRANT}, "subnets and role assignments take no tags"
    for resource in taggable:
        assert TAGS.items() <= resource.inputs["tags"].items(), resource.name
        assert resource.inputs["tags"]["Name"], resource.name


def test_every_resource_lives_in_the_stack_group_but_the_flow_log(built: Built) -> None:
    placed: list[Resource] = [r for r in built.graph.resources if r.type.startswith("azure-native:") and "resourceGroupName" in r.inputs]
    assert {r.type for r in placed if r.inputs["resourceGroupName"] != GROUP} == {FLOW_LOG}
    assert all(r.inputs.get("location", LOCATION) == LOCATION for r in placed)
