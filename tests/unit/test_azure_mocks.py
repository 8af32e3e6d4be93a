"""The offline plan's Azure mocks (`providers/azure/mocks.py`): a small program of the resources the
Azure builders use, run under them, resolves every value a builder reads as Azure would (ARM ids
from the SDK's classes, key and vault URIs, identities, addresses in their subnet, storage keys),
and at a first preview leaves all of it unknown but the names azure-native generates.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_azure_native as azure_native
import pytest
from pulumi_azure_native import authorization, containerregistry, keyvault, managedidentity, network, storage

from providers.azure.mocks import AzureMocks, arm_shape, autoname, for_stack, mock_id, uuid_of, vault_uri
from review.mocks import PlanMocks
from tests.mocked_program import run_mocked

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
TENANT = "66666666-7777-8888-9999-000000000000"
GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/dpc-azure-test"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Seen:
    """The resolved values the program read."""

    values: dict[str, Any] = field(default_factory=dict[str, Any])


def _program(seen: Seen) -> None:
    provider = azure_native.Provider("azure", subscription_id=SUBSCRIPTION, tenant_id=TENANT, location="eastus2")
    opts = pulumi.ResourceOptions(provider=provider)
    group = azure_native.resources.ResourceGroup("group", resource_group_name="dpc-azure-test", location="eastus2", opts=opts)
    vault = keyvault.Vault(
        "vault", resource_group_name=group.name, vault_name="dpc-test-kv",
        properties=keyvault.VaultPropertiesArgs(tenant_id=TENANT, sku=keyvault.SkuArgs(family="A", name="premium"), enable_rbac_authorization=True),
        opts=opts,
    )
    key = keyvault.Key(
        "key", resource_group_name=group.name, vault_name=vault.name, key_name="stack", properties=keyvault.KeyPropertiesArgs(kty="RSA-HSM"), opts=opts
    )
    secret = keyvault.Secret("secret", resource_group_name=group.name, vault_name=vault.name, properties=keyvault.SecretPropertiesArgs(value="x"), opts=opts)
    identity = managedidentity.UserAssignedIdentity("identity", resource_group_name=group.name, opts=opts)
    vnet = network.VirtualNetwork("vnet", resource_group_name=group.name, address_space=network.AddressSpaceArgs(address_prefixes=["10.9.0.0/16"]), opts=opts)
    subnet = network.Subnet("subnet", resource_group_name=group.name, virtual_network_name=vnet.name, address_prefix="10.9.4.0/24", opts=opts)
    nic = network.NetworkInterface(
        "nic", resource_group_name=group.name,
        ip_configurations=[network.NetworkInterfaceIPConfigurationArgs(name="primary", subnet=network.SubnetArgs(id=subnet.id))],
        opts=opts,
    )
    public = network.PublicIPAddress("public", resource_group_name=group.name, sku=network.PublicIPAddressSkuArgs(name="Standard"), opts=opts)
    balancer = network.LoadBalancer(
        "balancer", resource_group_name=group.name,
        frontend_ip_configurations=[network.FrontendIPConfigurationArgs(name="front", subnet=network.SubnetArgs(id=subnet.id))],
        opts=opts,
    )
    registry = containerregistry.Registry(
        "registry", resource_group_name=group.name, registry_name="dpcTestAcr", sku=containerregistry.SkuArgs(name="Premium"), opts=opts
    )
    account = storage.StorageAccount(
        "account", resource_group_name=group.name, kind="StorageV2", sku=storage.SkuArgs(name="Standard_GZRS"),
        identity=storage.IdentityArgs(type="UserAssigned", user_assigned_identities=[identity.id]), opts=opts,
    )
    invoke = pulumi.InvokeOutputOptions(provider=provider)
    keys = storage.list_storage_account_keys_output(resource_group_name=group.name, account_name=account.name, opts=invoke)
    grant = authorization.RoleAssignment(
        "grant", scope=secret.id, principal_id=identity.principal_id, principal_type="ServicePrincipal", role_definition_id="reader", opts=opts
    )
    client = authorization.get_client_config_output(opts=invoke)
    outputs: dict[str, pulumi.Output[Any]] = {
        "group": group.id, "vault": vault.id, "vault_uri": vault.properties.vault_uri, "key": key.id, "key_uri": key.key_uri,
        "key_uri_version": key.key_uri_with_version, "secret": secret.id, "secret_uri": secret.properties.secret_uri,
        "identity": identity.id, "principal": identity.principal_id, "client": identity.client_id, "subnet": subnet.id,
        "nic": nic.ip_configurations, "public": public.ip_address, "frontends": balancer.frontend_ip_configurations,
        "login": registry.login_server, "account": account.name, "account_identity": account.identity, "keys": keys.keys,
        "grant": grant.id, "grant_name": grant.name, "client_config": client.subscription_id, "tenant": client.tenant_id,
    }
    for name, output in outputs.items():
        output.apply(lambda value, name=name: seen.values.__setitem__(name, value))


@pytest.fixture(scope="module")
def seen() -> Seen:
    seen = Seen()
    run_mocked(AzureMocks(SUBSCRIPTION, TENANT, "eastus2"), lambda: _program(seen), "azure-test")
    return seen


def test_ids_are_arm_ids_of_the_resource_group_and_their_parents(seen: Seen) -> None:
    values = seen.values
    assert values["group"] == GROUP
    assert values["vault"] == f"{GROUP}/providers/Microsoft.KeyVault/vaults/dpc-test-kv"
    assert values["key"] == f"{values['vault']}/keys/stack"
    assert values["secret"] == f"{values['vault']}/secrets/secret", "a child keeps its logical name"
    assert values["identity"] == f"{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{autoname('identity')}"
    assert values["subnet"] == f"{GROUP}/providers/Microsoft.Network/virtualNetworks/{autoname('vnet')}/subnets/subnet"


def test_a_role_assignment_hangs_on_its_scope_under_a_guid(seen: Seen) -> None:
    assert GUID.fullmatch(seen.values["grant_name"])
    assert seen.values["grant"] == f"{seen.values['secret']}/providers/Microsoft.Authorization/roleAssignments/{seen.values['grant_name']}"


def test_keys_and_secrets_have_their_vaults_uris(seen: Seen) -> None:
    assert seen.values["vault_uri"] == "https://dpc-test-kv.vault.azure.net/" == vault_uri("dpc-test-kv")
    assert seen.values["key_uri"] == "https://dpc-test-kv.vault.azure.net/keys/stack"
    assert re.fullmatch(r"https://dpc-test-kv\.vault\.azure\.net/keys/stack/[0-9a-f]{32}", seen.values["key_uri_version"])
    assert seen.values["secret_uri"] == "https://dpc-test-kv.vault.azure.net/secrets/secret"


def test_identities_have_principal_and_client_ids_also_where_a_resource_uses_them(seen: Seen) -> None:
    principal, client = seen.values["principal"], seen.values["client"]
    assert GUID.fullmatch(principal) and GUID.fullmatch(client) and principal != client
    used = seen.values["account_identity"]["user_assigned_identities"][seen.values["identity"]]
    assert (used["principal_id"], used["client_id"]) == (principal, client)


def test_private_addresses_are_in_their_subnet_past_azures_reserved_ones(seen: Seen) -> None:
    subnet = ipaddress.ip_network("10.9.4.0/24")
    for configuration in (*seen.values["nic"], *seen.values["frontends"]):
        address = ipaddress.ip_address(configuration["private_ip_address"])
        assert address in subnet and address not in {subnet.network_address + n for n in range(4)} and address != subnet.broadcast_address
    assert seen.values["frontends"][0]["id"].endswith("/loadBalancers/" + autoname("balancer") + "/frontendIPConfigurations/front")


def test_public_addresses_come_from_test_net_3(seen: Seen) -> None:
    assert ipaddress.ip_address(seen.values["public"]) in ipaddress.ip_network("203.0.113.0/24")


def test_the_registry_storage_keys_and_client_config(seen: Seen) -> None:
    assert seen.values["login"] == "dpctestacr.azurecr.io"
    assert [key["key_name"] for key in seen.values["keys"]] == ["key1", "key2"]
    assert len({key["value"] for key in seen.values["keys"]}) == 2
    assert (seen.values["client_config"], seen.values["tenant"]) == (SUBSCRIPTION, TENANT)


@pytest.mark.parametrize(
    ("typ", "path"),
    [
        ("azure-native:storage:BlobContainer", "Microsoft.Storage/storageAccounts/acct/blobServices/default/containers/"),
        ("azure-native:storage:ManagementPolicy", "Microsoft.Storage/storageAccounts/acct/managementPolicies/default"),
        ("azure-native:compute:VirtualMachineExtension", "Microsoft.Compute/virtualMachines/vm1/extensions/"),
        ("azure-native:network:SecurityRule", "Microsoft.Network/networkSecurityGroups/nsg/securityRules/"),
        ("azure-native:network:FlowLog", "Microsoft.Network/networkWatchers/nw/flowLogs/"),
        ("azure-native:compute:Disk", "Microsoft.Compute/disks/"),
    ],
)
def test_children_are_named_under_their_parents_as_arm_nests_them(typ: str, path: str) -> None:
    inputs = {"resourceGroupName": "rg", "accountName": "acct", "vmName": "vm1", "networkSecurityGroupName": "nsg", "networkWatcherName": "nw"}
    assert mock_id(typ, "x", inputs, {"subscriptionId": "s"}).startswith(f"/subscriptions/s/resourceGroups/rg/providers/{path}")


def test_a_budget_hangs_on_the_subscription() -> None:
    shape = arm_shape("azure-native:consumption:Budget")
    assert shape is not None and shape.scoped
    assert mock_id("azure-native:consumption:Budget", "b", {"scope": "/subscriptions/s", "budgetName": "b1"}, {}) == (
        "/subscriptions/s/providers/Microsoft.Consumption/budgets/b1"
    )


def test_at_a_first_preview_only_generated_names_are_known() -> None:
    mocks = for_stack({"dpc:azure": f'{{"subscriptionId": "{SUBSCRIPTION}", "tenantId": "{TENANT}"}}', "dpc:region": "eastus2"}, None, preview=True)  # type: ignore[arg-type]  # the day plays no part
    args = pulumi.runtime.MockResourceArgs("azure-native:authorization:RoleAssignment", "grant", {"scope": "/x", "principalId": "p"}, None, None, None)
    resource_id, state = mocks.new_resource(args)
    assert resource_id == "" and state == {"scope": "/x", "principalId": "p", "roleAssignmentName": uuid_of("grant"), "name": uuid_of("grant")}
    identity = pulumi.runtime.MockResourceArgs("azure-native:managedidentity:UserAssignedIdentity", "id", {"resourceGroupName": "rg"}, None, None, None)
    assert "principalId" not in mocks.new_resource(identity)[1]


def test_the_plan_mocks_hand_azure_to_these_mocks() -> None:
    plan = PlanMocks({"dpc:azure": f'{{"subscriptionId": "{SUBSCRIPTION}"}}'})
    call = pulumi.runtime.MockCallArgs("azure-native:authorization:getClientConfig", {}, None)
    assert plan.call(call)[0]["subscriptionId"] == SUBSCRIPTION
    with pytest.raises(NotImplementedError):
        plan.call(pulumi.runtime.MockCallArgs("azure-native:compute:getVirtualMachine", {}, None))
