"""The offline plan's Azure (`review.mocks` hands it every `azure-native:` resource and data source):
ARM ids, names, key and vault URIs, identities' principal and client ids, addresses and storage
keys, each derived from names, so that every dependent value of the program resolves as it would
on Azure.

A resource's id is its ARM id, `/subscriptions/{subscription}/resourceGroups/{group}/providers/
{Namespace}/{type}/{name}`, read from the pulumi-azure-native class of its type token: the class's
name gives the type (`VirtualNetwork` → `virtualNetworks`), its required `*_name` inputs the parent
resources it lives under (a `Subnet` needs `virtual_network_name`: `virtualNetworks/{vnet}/subnets/
{name}`), its `scope` input the resource an extension resource hangs on (role assignments, budgets).
So the SDK says what each id is, also for a type no builder used when this was written. Only what
the SDK does not state is written here: the casing of the namespaces (the SDK names its modules in
lowercase) and the few types ARM nests otherwise (a blob container lives under
`blobServices/default`).

A name the program leaves out is generated as azure-native does before a preview: the logical name
and eight hex digits (here derived from the name, so plans do not change), the logical name alone for
a child resource (a subnet, a secret), or a GUID where the SDK documents the name as one (role
assignments).

With `preview`, it answers as the engine does in a stack's first `pulumi preview`: no id, the
inputs alone (with the generated name), every other output unknown.
"""

from __future__ import annotations

import base64
import datetime
import importlib
import inspect
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import pulumi

from review.mocks import ProviderMocks, digest

PUBLIC_RANGE = ipaddress.ip_network("203.0.113.0/24")
"""Where the mocks' public addresses come from (TEST-NET-3, RFC 5737: never a real host)."""
FALLBACK_RANGE = ipaddress.ip_network("10.0.0.0/16")
"""Private addresses of an interface in a subnet the mocks did not see created."""
AZURE_RESERVED_LOW, AZURE_RESERVED_HIGH = 4, 1
"""Azure reserves a subnet's first four addresses and its last
(https://learn.microsoft.com/en-us/azure/virtual-network/virtual-networks-faq#are-there-any-restrictions-on-using-ip-addresses-within-these-subnets)."""
PROVIDER_TOKEN = "pulumi:providers:azure-native"

NAMESPACES = {
    "authorization": "Microsoft.Authorization",
    "compute": "Microsoft.Compute",
    "consumption": "Microsoft.Consumption",
    "containerregistry": "Microsoft.ContainerRegistry",
    "insights": "Microsoft.Insights",
    "keyvault": "Microsoft.KeyVault",
    "managedidentity": "Microsoft.ManagedIdentity",
    "monitor": "Microsoft.Insights",
    "network": "Microsoft.Network",
    "operationalinsights": "Microsoft.OperationalInsights",
    "resources": "Microsoft.Resources",
    "storage": "Microsoft.Storage",
}
"""The resource provider namespace of each SDK module, as ARM spells it
(https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/azure-services-resource-providers);
another module's is `Microsoft.` and the module's name, which ARM matches without regard to case."""

_NESTED = {
    "azure-native:storage:BlobContainer": "blobServices/default/containers",
    "azure-native:storage:BlobServiceProperties": "blobServices",
    "azure-native:storage:ManagementPolicy": "managementPolicies",
}
"""Types whose ARM path is not the plural of their class: a storage account's blob service is its
single child `blobServices/default`, which holds the containers."""

_PARENT_CLASSES = {("storage", "account_name"): "StorageAccount", ("compute", "vm_name"): "VirtualMachine"}
"""Parent inputs not named as their class (the SDK's others are: `virtual_network_name`). Scanning a
module for the class instead would load all of its classes (hundreds: seconds of plan time)."""

_STORAGE_SERVICES = ("blob", "dfs", "file", "queue", "table", "web")
"""A storage account's endpoints, each `https://<account>.<service>.core.windows.net/`."""

_FIXED_NAMES = {"azure-native:storage:BlobServiceProperties": "default", "azure-native:storage:ManagementPolicy": "default"}
"""Singleton children: ARM accepts only `default` as their name."""


@dataclass(frozen=True)
class ArmShape:
    """What an ARM id of a type is made of: its namespace, its path's type segment, the inputs naming
    its parents (in path order) and itself, whether it hangs on a `scope`, whether its name is a GUID.
    """

    namespace: str
    segment: str
    parents: tuple[str, ...]
    name_input: str | None
    scoped: bool
    guid_name: bool


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _plural(word: str) -> str:
    """ARM's plural of a type: `Registry` → `registries`, `PublicIPAddress` → `publicIPAddresses`."""
    lower = word[:1].lower() + word[1:]
    if lower.endswith("y") and not lower.endswith(("ay", "ey", "oy")):
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x", "sh", "ch")):
        return lower + "es"
    return lower + "s"


def _module_of(typ: str) -> str:
    return typ.split(":")[1].split("/", maxsplit=1)[0]


@cache
def sdk_class(typ: str) -> type | None:
    """The pulumi-azure-native class of a type token, `azure-native:network:Subnet` →
    `pulumi_azure_native.network.Subnet`.
    """
    _, module_name, class_name = typ.split(":")
    try:
        module = importlib.import_module(f"pulumi_azure_native.{module_name.split('/')[0]}")
    except ImportError:
        return None
    found: object = getattr(module, class_name, None)
    return found if isinstance(found, type) else None


def _inputs(cls: type) -> list[str]:
    """The class's inputs by their Python names, without the logical name and options every class
    takes first (an input the SDK renames to keep them apart, `resource_name_`, by its own name).
    """
    parameters = list(inspect.signature(cls._internal_init).parameters)[3:]  # type: ignore[attr-defined]  # every generated resource class has it
    return [name.rstrip("_") for name in parameters if name != "__props__"]


def _arguments_class(typ: str) -> type | None:
    """The type's arguments class (`SubnetInitArgs` where `SubnetArgs` is the inline subnet's)."""
    _, module_name, class_name = typ.split(":")
    module = importlib.import_module(f"pulumi_azure_native.{module_name}")
    args: object = getattr(module, f"{class_name}InitArgs", None) or getattr(module, f"{class_name}Args", None)
    return args if isinstance(args, type) else None


def _required(typ: str) -> set[str]:
    """The inputs the type's arguments class requires (those without a default)."""
    args = _arguments_class(typ)
    if args is None:
        return set()
    parameters = inspect.signature(args.__init__).parameters.items()
    return {name.rstrip("_") for name, parameter in parameters if parameter.default is inspect.Parameter.empty and name != "__self__"}


def _documentation(typ: str) -> str:
    """What the SDK says of the type's inputs (`:param ... role_assignment_name: ... any valid GUID.`)."""
    args = _arguments_class(typ)
    return (inspect.getdoc(args.__init__) or "") if args is not None else ""




@cache
def _name_inputs(typ: str) -> tuple[list[str], str | None]:
    """The inputs naming the type's parents (required) and the one naming itself (optional: the
    provider generates it).
    """
    cls = sdk_class(typ)
    if cls is None:
        return [], None
    required = _required(typ)
    names = [name for name in _inputs(cls) if name.endswith("_name")]
    own = [name for name in names if name not in required]
    return [name for name in names if name in required and name != "resource_group_name"], (own[-1] if own else None)


@cache
def arm_shape(typ: str) -> ArmShape | None:
    """How the type's ARM id is made, read from its SDK class (None for a type the SDK lacks)."""
    if sdk_class(typ) is None:
        return None
    parent_inputs, name_input = _name_inputs(typ)
    required = _required(typ)
    guid = name_input is not None and re.search(rf":param [^\n]*\b{name_input}:[^\n]*\bGUID\b", _documentation(typ)) is not None
    module_name = _module_of(typ)
    class_name = typ.split(":")[2]
    return ArmShape(
        namespace=NAMESPACES.get(module_name, f"Microsoft.{module_name.title()}"),
        segment=_NESTED.get(typ, _plural(_own_part(typ, class_name, parent_inputs))),
        parents=tuple(parent_inputs),
        name_input=name_input,
        scoped="scope" in required,
        guid_name=guid,
    )


def _owner(typ: str, parent_input: str) -> str | None:
    """The class a parent input names (`virtual_network_name` → `VirtualNetwork`), checked against
    that class's own name input.
    """
    module_name = _module_of(typ)
    guess = _PARENT_CLASSES.get((module_name, parent_input)) or "".join(part.title() for part in parent_input.removesuffix("_name").split("_"))
    return guess if _name_inputs(f"azure-native:{module_name}:{guess}")[1] == parent_input else None


def _own_part(typ: str, class_name: str, parent_inputs: list[str]) -> str:
    """A child's type without its parent's name, which ARM does not repeat (`VirtualMachineExtension`
    under `virtualMachines` is `extensions`).
    """
    owner = _owner(typ, parent_inputs[-1]) if parent_inputs else None
    return class_name.removeprefix(owner) if owner and class_name != owner and class_name.startswith(owner) else class_name


def _parent_segment(typ: str, parent_input: str) -> str:
    """The path segment of a parent named by this input: the plural of the class whose own name
    input it is (`account_name` in `storage` → `storageAccounts`).
    """
    owner = _owner(typ, parent_input)
    return _plural(owner or "".join(part.title() for part in parent_input.removesuffix("_name").split("_")))


def uuid_of(text: str) -> str:
    """A GUID stable for a text."""
    value = digest(text, 32)
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def autoname(name: str) -> str:
    """The name azure-native generates from a logical name where the program gives none: the name and
    eight random hex digits (here derived from the name, so plans do not change).
    """
    return f"{name}{digest(name, 8)}"


def generated_name(typ: str, name: str) -> str | None:
    """The name azure-native fills in for a resource of this type whose program gives none, or None
    for a type without a name input: a GUID where the SDK documents one; a child resource (a subnet,
    a secret, a blob container: its name need be unique only in its parent) the logical name as it
    is; any other the logical name with a random suffix (pulumi-azure-native#519).
    """
    shape = arm_shape(typ)
    if shape is None or shape.name_input is None:
        return None
    if typ in _FIXED_NAMES:
        return _FIXED_NAMES[typ]
    if shape.guid_name:
        return uuid_of(name)
    return name if shape.parents else autoname(name)


def resource_group_id(subscription: str, group: str) -> str:
    """A resource group's ARM id: where every resource of the stack's id starts."""
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def mock_id(typ: str, name: str, inputs: Mapping[str, Any], provider_inputs: Mapping[str, Any]) -> str:
    """The ARM id the mocks give an Azure resource: its subscription (its provider's), resource group
    or scope, parents and name from its inputs, as the provider's id of it.
    """
    subscription = str(provider_inputs.get("subscriptionId", ""))
    if typ == "azure-native:resources:ResourceGroup":
        return resource_group_id(subscription, str(inputs.get("resourceGroupName") or autoname(name)))
    shape = arm_shape(typ)
    if shape is None:
        return f"{name}-{digest(name, 8)}"
    own = str(inputs.get(_camel(shape.name_input), "")) if shape.name_input else ""
    own = own or generated_name(typ, name) or name
    base = str(inputs.get("scope", "")).rstrip("/") if shape.scoped else resource_group_id(subscription, str(inputs.get("resourceGroupName", "")))
    path = [base, "providers", shape.namespace]
    for parent in shape.parents:
        path += [_parent_segment(typ, parent), str(inputs.get(_camel(parent), ""))]
    return "/".join([*path, shape.segment, own])


def vault_uri(vault: str) -> str:
    """A vault's URI in Azure's public cloud."""
    return f"https://{vault}.vault.azure.net/"


def _host(network: ipaddress.IPv4Network | ipaddress.IPv6Network, name: str) -> str:
    """An address of the range for the named resource, past the addresses Azure reserves."""
    usable = max(network.num_addresses - AZURE_RESERVED_LOW - AZURE_RESERVED_HIGH, 1)
    return str(network.network_address + AZURE_RESERVED_LOW + int(digest(name, 8), 16) % usable)


def private_address(subnet: ipaddress.IPv4Network | ipaddress.IPv6Network, resource_id: str, position: int) -> str:
    """The private address the mocks give IP configuration `position` of a resource (an interface,
    a load balancer's frontend) in its subnet: tests find a machine's address as the plan gives it.
    """
    return _host(subnet, f"{resource_id}/{position}")


@dataclass(frozen=True)
class _Created:
    """A resource the mocks create: what its computed outputs derive from."""

    name: str
    resource_id: str
    state: Mapping[str, Any]
    tenant: str


class AzureMocks(ProviderMocks):
    """Realistic answers for the Azure resources and data sources the program uses: its providers'
    subscription, tenant and location; its subnets' ranges by id (interfaces and frontends get
    addresses in them).
    """

    def __init__(self, subscription: str, tenant: str, location: str, *, preview: bool = False) -> None:
        super().__init__({"subscriptionId": subscription, "tenantId": tenant, "location": location}, preview=preview)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        """The ARM id and the outputs dependent resources read; at preview no id and the inputs
        alone, with the name azure-native generates.
        """
        state: dict[str, Any] = dict(cast(dict[str, Any], args.inputs))  # pyright: ignore[reportUnknownMemberType]  # the SDK types inputs as a bare dict
        if args.typ == PROVIDER_TOKEN:
            self.providers[args.name] = self.defaults | {k: v for k, v in state.items() if k in self.defaults and v}
            return ("" if self.preview else f"{args.name}-{digest(args.name, 8)}"), state
        shape = arm_shape(args.typ)
        if shape is not None and shape.name_input is not None:
            key = _camel(shape.name_input)
            state.setdefault(key, generated_name(args.typ, args.name))
            state["name"] = state[key]
        if self.preview:
            return "", state | _preview_identity(state)
        provider = self._provider(args.provider)
        resource_id = mock_id(args.typ, args.name, state, provider)
        made = _Created(args.name, resource_id, state, str(provider.get("tenantId", "")))
        state |= _child_ids(resource_id, state) | _identity(made)
        computed = self._outputs.get(args.typ)
        if computed is not None:
            state |= computed(made)
        return resource_id, state

    @property
    def _outputs(self) -> dict[str, Callable[[_Created], dict[str, Any]]]:
        """What Azure computes, by type."""
        return {
            "azure-native:keyvault:Vault": lambda made: {"properties": {**made.state.get("properties", {}), "vaultUri": vault_uri(str(made.state["name"]))}},
            "azure-native:keyvault:Key": _key_uris,
            "azure-native:keyvault:Secret": lambda made: {"properties": {**made.state.get("properties", {}), **_secret_uris(made)}},
            "azure-native:managedidentity:UserAssignedIdentity": lambda made: {
                "principalId": uuid_of(f"principal/{made.resource_id}"), "clientId": uuid_of(f"client/{made.resource_id}"), "tenantId": made.tenant,
            },
            "azure-native:storage:StorageAccount": lambda made: {
                "primaryEndpoints": {service: f"https://{made.state['name']}.{service}.core.windows.net/" for service in _STORAGE_SERVICES},
                "primaryLocation": made.state.get("location", ""),
            },
            "azure-native:containerregistry:Registry": lambda made: {"loginServer": f"{str(made.state['name']).lower()}.azurecr.io"},
            "azure-native:network:PublicIPAddress": lambda made: {"ipAddress": made.state.get("ipAddress") or _host(PUBLIC_RANGE, made.resource_id)},
            "azure-native:network:Subnet": self._subnet,
            "azure-native:network:VirtualNetwork": self._network,
            "azure-native:network:NetworkInterface": lambda made: {"ipConfigurations": self._addressed(made, "ipConfigurations")},
            "azure-native:network:LoadBalancer": lambda made: {"frontendIPConfigurations": self._addressed(made, "frontendIPConfigurations")},
            "azure-native:compute:VirtualMachine": lambda made: {"vmId": uuid_of(made.resource_id)},
            "azure-native:compute:Disk": lambda made: {"uniqueId": uuid_of(made.resource_id)},
        }

    def _subnet(self, made: _Created) -> dict[str, Any]:
        """A subnet's range kept, so that interfaces in it get addresses from it."""
        prefixes = cast(list[str], made.state.get("addressPrefixes") or [made.state.get("addressPrefix")])
        if prefixes and prefixes[0]:
            self.ranges[made.resource_id.lower()] = ipaddress.ip_network(str(prefixes[0]))
        return {}

    def _network(self, made: _Created) -> dict[str, Any]:
        """A virtual network's inline subnets kept as separate ones are."""
        for subnet in cast(list[Mapping[str, Any]], made.state.get("subnets") or []):
            self._subnet(_Created(str(subnet.get("name", "")), f"{made.resource_id}/subnets/{subnet.get('name', '')}", subnet, made.tenant))
        return {}

    def _addressed(self, made: _Created, key: str) -> list[dict[str, Any]]:
        """IP configurations with their private address in their subnet, where they have a subnet
        and no static address.
        """
        out: list[dict[str, Any]] = []
        for position, configuration in enumerate(cast(list[Mapping[str, Any]], made.state.get(key) or [])):
            item = dict(configuration)
            subnet = cast(Mapping[str, Any], item.get("subnet") or {})
            if subnet and not item.get("privateIPAddress"):
                network = self.ranges.get(str(subnet.get("id", "")).lower(), FALLBACK_RANGE)
                item["privateIPAddress"] = private_address(network, made.resource_id, position)
            out.append(item)
        return out

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """The data sources: who we are, our token, the storage account's keys; no check failures."""
        arguments = cast(dict[str, Any], args.args)  # pyright: ignore[reportUnknownMemberType]  # the SDK types args as a bare dict
        provider = self._provider(args.provider)
        if args.token not in _DATA_SOURCES:
            raise NotImplementedError(f"the offline plan has no answer for data source {args.token}")
        return _DATA_SOURCES[args.token](arguments, provider), []


def _child_ids(resource_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
    """Ids of the sub-resources a resource declares inline (a load balancer's frontends, pools,
    probes and rules; an interface's IP configurations): ARM names each under its parent.
    """
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, list) and value and all(isinstance(item, Mapping) and "name" in item for item in cast(list[object], value)):
            items = cast(list[Mapping[str, Any]], value)
            out[key] = [{"id": f"{resource_id}/{key}/{item['name']}", **item} for item in items]
    return out


def _identity(made: _Created) -> dict[str, Any]:
    """A managed identity's principal: its system-assigned one's id and, for each user-assigned
    identity, that identity's principal and client ids (as the identity resource itself has them).
    """
    identity = made.state.get("identity")
    if not isinstance(identity, Mapping):
        return {}
    out = dict(cast(Mapping[str, Any], identity))
    if "SystemAssigned" in str(out.get("type", "")):
        out |= {"principalId": uuid_of(f"principal/{made.resource_id}"), "tenantId": made.tenant}
    users = cast(list[str] | Mapping[str, Any], out.get("userAssignedIdentities") or [])
    if users:
        out["userAssignedIdentities"] = {
            user: {"principalId": uuid_of(f"principal/{user}"), "clientId": uuid_of(f"client/{user}")} for user in users
        }
    return {"identity": out}


def _preview_identity(state: Mapping[str, Any]) -> dict[str, Any]:
    """At preview, user-assigned identities as the output lists them (by id, a map) where the input
    lists them (a storage account's: a list of ids); their principals stay unknown.
    """
    identity = state.get("identity")
    if not isinstance(identity, Mapping) or not isinstance(users := cast(Mapping[str, Any], identity).get("userAssignedIdentities"), list):
        return {}
    return {"identity": {**cast(Mapping[str, Any], identity), "userAssignedIdentities": {str(user): {} for user in cast(list[object], users)}}}


def _vault_of(made: _Created) -> str:
    return str(made.state.get("vaultName", ""))


def _key_uris(made: _Created) -> dict[str, str]:
    """A key's versionless URI (what rotation-following consumers use) and its current version's."""
    uri = f"{vault_uri(_vault_of(made))}keys/{made.state['name']}"
    return {"keyUri": uri, "keyUriWithVersion": f"{uri}/{digest(made.resource_id, 32)}"}


def _secret_uris(made: _Created) -> dict[str, str]:
    uri = f"{vault_uri(_vault_of(made))}secrets/{made.state['name']}"
    return {"secretUri": uri, "secretUriWithVersion": f"{uri}/{digest(made.resource_id, 32)}"}


def storage_account_key(account: str, key_name: str) -> str:
    """A storage account key's stand-in: 64 bytes, base64, as Azure's are; tests look for it where it must not be."""
    return base64.b64encode(bytes.fromhex(digest(f"{account}/{key_name}", 64) * 2)).decode()


def _keys(arguments: Mapping[str, Any], _provider: Mapping[str, Any]) -> dict[str, Any]:
    account = str(arguments.get("accountName", ""))
    return {
        "keys": [
            {"keyName": key, "value": storage_account_key(account, key), "permissions": "FULL", "creationTime": "2025-01-01T00:00:00Z"}
            for key in ("key1", "key2")
        ]
    }


_PLANNER_CLIENT = "planner"

_DATA_SOURCES: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]] = {
    "azure-native:authorization:getClientConfig": lambda _, provider: {
        "clientId": uuid_of(f"client/{_PLANNER_CLIENT}"),
        "objectId": uuid_of(f"principal/{_PLANNER_CLIENT}"),
        "subscriptionId": provider.get("subscriptionId", ""),
        "tenantId": provider.get("tenantId", ""),
    },
    "azure-native:authorization:getClientToken": lambda arguments, _: {"token": f"mock-access-token-for-{arguments.get('endpoint') or 'management'}"},
    "azure-native:storage:listStorageAccountKeys": _keys,
}
"""The data sources the Azure builders read, answered as Azure would for the mocks' subscription."""


def for_stack(config: Mapping[str, str], _today: datetime.date, *, preview: bool) -> AzureMocks:
    """The Azure mocks of a stack: its subscription and tenant (`dpc:azure`) and location (`dpc:region`)."""
    section: object = json.loads(config.get("dpc:azure", "{}"))
    known: Mapping[str, Any] = cast(Mapping[str, Any], section) if isinstance(section, Mapping) else {}
    return AzureMocks(str(known.get("subscriptionId", "")), str(known.get("tenantId", "")), config.get("dpc:region", ""), preview=preview)
