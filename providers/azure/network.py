"""Azure network (design §9.8): a virtual network, one private and one public subnet per zone, zonal
NAT gateways for the private subnets only, one network security group whose rules are generated
from the model's matrix on application security groups (one per role and the load balancer's),
closed by an explicit deny-all, and the virtual network's flow logs in a log storage account of the
stack under its key.

The counterparts of AWS's pieces (`providers/aws/network.py`): Azure's subnets are regional, but
the settings give one range per zone as on AWS, so each zone's machines have their own subnet and,
with `nat_per_zone`, their own NAT gateway, which is zonal and dies with its zone. Security groups
become application security groups: a machine's interface joins its role's group, and the rules,
which name groups as sources and targets, live in one network security group on every subnet.
Azure's default rules admit everything from the virtual network (65000 `AllowVnetInBound`) and the
load balancer's probes everywhere (65001 `AllowAzureLoadBalancerInBound`); a deny-all at the
lowest custom priority, under the matrix's rules, closes both, as AWS closes its default security
group. Service endpoints of Storage and Key Vault on the private subnets keep the nodes' backups
and secret reads off NAT, as AWS's VPC endpoints and GCP's Private Google Access do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import network, storage

from components.base import Scope
from components.network import NetworkPlan, NetworkResult
from dpc.model import FromCidrs, FromLoadBalancer, FromRole
from providers.azure.provider import AzureStack
from providers.azure.storage import STORAGE_ACCOUNT_NAME_LIMIT
from providers.azure.vault import (
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    global_name,
    key_name,
    key_user,
    once_created,
    resource_id,
    role_assignment,
    user_identity,
    vault_uri,
)
from providers.common.firewall import FIREWALL_GROUPS, port_range, ports_label, source_cidrs, source_group, target_group

APPLICATION_SECURITY_GROUP_KIND, STORAGE_ACCOUNT_KIND = "Microsoft.Network/applicationSecurityGroups", "Microsoft.Storage/storageAccounts"
"""The Resource Manager types of what the security rules and the flow log's grant name by id."""
NAME_LIMIT = 80
"""The longest name Azure takes for a subnet, security group and rule, NAT gateway, public IP
address, load balancer, flow log or managed identity."""
NETWORK_NAME_LIMIT = 64
"""The longest name of a virtual network."""
DESCRIPTION_LIMIT = 140
"""The longest description of a security rule."""

FIRST_PRIORITY, DENY_ALL_PRIORITY = 100, 4096
"""The range of custom rules' priorities (lower first): the matrix's rules from the first, the
deny-all at the last, under every allow and above Azure's default rules (65000 and up)."""

PROTOCOLS = {"tcp": "Tcp", "udp": "Udp", "esp": "Esp"}
"""The matrix's protocols as a security rule names them."""

LOAD_BALANCER_PROBES = "AzureLoadBalancer"
"""The service tag of the address Azure's load balancer probes from (168.63.129.16)."""

SERVICE_ENDPOINTS = ("Microsoft.Storage", "Microsoft.KeyVault")
"""The services the nodes reach from the private subnets over Azure's backbone rather than NAT:
the offsite backups (Blob Storage) and the bootstrap secrets and image list (Key Vault). No
registry endpoint: Container Registry's is in preview, so image pulls go through NAT."""

NETWORK_WATCHER_GROUP = "NetworkWatcherRG"
"""Where Azure creates a region's Network Watcher (`NetworkWatcher_<location>`) when the
subscription's first virtual network there is created: a subscription has one per region, and
a stack's flow log lives in it (README: what a new subscription needs)."""

FLOW_LOG_RETENTION_LIMIT = 365
"""The longest retention a flow log takes, in days."""


def azure_name(name: str, limit: int = NAME_LIMIT) -> str:
    """`name` within Azure's `limit`: a name that had to be cut ends in a digest of the whole, so
    that two long names never become the same one; the same name always gives the same result.
    """
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(digest) - 1].rstrip('-')}-{digest}"


def public_address(azure: AzureStack, scope: Scope, suffix: str, zones: list[str], opts: pulumi.ResourceOptions, **tags: str) -> network.PublicIPAddress:
    """A Standard static IPv4 public address in `zones` (one: zonal; all the stack's: zone-redundant),
    closed until a security rule opens it, tagged with the stack's tags and `tags`.
    """
    name = scope.child(suffix)
    return network.PublicIPAddress(
        name,
        public_ip_address_name=azure_name(name),
        resource_group_name=azure.resource_group,
        location=azure.location,
        sku=network.PublicIPAddressSkuArgs(name=network.PublicIPAddressSkuName.STANDARD, tier=network.PublicIPAddressSkuTier.REGIONAL),
        public_ip_allocation_method=network.IPAllocationMethod.STATIC,
        public_ip_address_version=network.IPVersion.I_PV4,
        zones=zones,
        tags=scope.tags_with(Name=name, **tags),
        opts=opts,
    )


@dataclass(frozen=True)
class SecurityRule:
    """One inbound allow of the network security group: one row of the matrix, to the group of its
    target, from a group or from address ranges (or a service tag).
    """

    name: str
    """`manager-in-tcp5432-from-load-balancer`: unique in the group, the matrix's names."""
    target: str
    protocol: str
    ports: str
    """`5432`, `2379-2380`, `*` for ESP, which has no ports."""
    source_group: str | None
    source_prefixes: tuple[str, ...]
    description: str


def _sources(plan: NetworkPlan, source: FromCidrs | FromLoadBalancer) -> tuple[str, tuple[str, ...]]:
    """The kind of source a rule's name gives and its prefixes. Azure's load balancer keeps the
    clients' addresses, which the rows from the clients admit; what comes from the balancer itself
    is its probes, from the `AzureLoadBalancer` service tag.
    """
    if isinstance(source, FromCidrs):
        return source.kind, source_cidrs(plan, source)
    return source_group(source), (LOAD_BALANCER_PROBES,)


def security_rules(plan: NetworkPlan) -> tuple[SecurityRule, ...]:
    """The matrix as security rules, one per row, in the matrix's order (their priorities follow it).

    Rows to no role (`to=None`, the load balancer itself) have no counterpart: Azure's load balancer
    is no machine and has no security group; the clients it admits are admitted by the managers'
    rules, which see the clients' own addresses.
    """
    rules: list[SecurityRule] = []
    for row in plan.rules:
        if row.to is None:
            continue
        source = row.source
        if isinstance(source, FromRole):
            kind, group, prefixes = source_group(source), source_group(source), ()
        else:
            (kind, prefixes), group = _sources(plan, source), None
        rules.append(
            SecurityRule(
                name=f"{target_group(row)}-in-{ports_label(row)}-from-{kind}",
                target=target_group(row),
                protocol=PROTOCOLS[row.protocol],
                ports="*" if row.protocol == "esp" else port_range(row),
                source_group=group,
                source_prefixes=prefixes,
                description=row.purpose[:DESCRIPTION_LIMIT],
            )
        )
    return tuple(rules)


def _security_group(azure: AzureStack, scope: Scope, plan: NetworkPlan, groups: Mapping[str, pulumi.Output[str]]) -> network.NetworkSecurityGroup:
    """The one network security group of every subnet: the matrix's rules on the groups, then the
    deny-all.

    One group for all subnets, not one per tier: the rules name their targets by application
    security group, so every subnet's group would hold the same rules. The rules are inline, so a
    change of the matrix (which renumbers the priorities after it) is one update of the group, never
    two separate rules holding the same priority for a moment. Flows are re-evaluated when the rules
    change (`flush_connection`), so a removed rule also ends the connections it admitted.
    """
    rules = [
        network.SecurityRuleArgs(
            name=rule.name,
            priority=FIRST_PRIORITY + index,
            direction=network.SecurityRuleDirection.INBOUND,
            access=network.SecurityRuleAccess.ALLOW,
            protocol=rule.protocol,
            source_port_range="*",
            destination_port_range=rule.ports,
            destination_application_security_groups=[network.ApplicationSecurityGroupArgs(id=groups[rule.target])],
            description=rule.description,
            source_application_security_groups=[network.ApplicationSecurityGroupArgs(id=groups[rule.source_group])] if rule.source_group else None,
            # One prefix (or service tag) alone, several as the list: how Azure writes a rule back, so a refresh shows no difference.
            source_address_prefix=rule.source_prefixes[0] if len(rule.source_prefixes) == 1 else None,
            source_address_prefixes=list(rule.source_prefixes) if len(rule.source_prefixes) > 1 else None,
        )
        for index, rule in enumerate(security_rules(plan))
    ]
    if FIRST_PRIORITY + len(rules) > DENY_ALL_PRIORITY:
        raise ValueError(f"{len(rules)} security rules do not fit between priorities {FIRST_PRIORITY} and {DENY_ALL_PRIORITY}")
    deny = network.SecurityRuleArgs(
        name="all-in-deny",
        priority=DENY_ALL_PRIORITY,
        direction=network.SecurityRuleDirection.INBOUND,
        access=network.SecurityRuleAccess.DENY,
        protocol=network.SecurityRuleProtocol.ASTERISK,
        source_port_range="*",
        source_address_prefix="*",
        destination_port_range="*",
        destination_address_prefix="*",
        description="Everything the firewall matrix does not allow, the virtual network and the load balancer's probes included (design §2.5)",
    )
    name = scope.child("nsg")
    return network.NetworkSecurityGroup(
        name,
        network_security_group_name=azure_name(name),
        resource_group_name=azure.resource_group,
        location=azure.location,
        security_rules=[*rules, deny],
        flush_connection=True,
        tags=scope.tags_with(Name=name),
        opts=scope.opts(),
    )


def _application_security_groups(azure: AzureStack, scope: Scope) -> dict[str, pulumi.Output[str]]:
    """One application security group per firewall group, by its id made from its name (which a
    first preview knows, so the policy pack judges the rules naming it): a machine's interface joins
    its role's. The load balancer's has no member (Azure's load balancer has no interface) and no
    rule targets it; it is there because every cloud names every group.
    """
    groups: dict[str, pulumi.Output[str]] = {}
    for group in FIREWALL_GROUPS:
        name = scope.child(f"{group}-asg")
        asg = network.ApplicationSecurityGroup(
            name,
            application_security_group_name=azure_name(name),
            resource_group_name=azure.resource_group,
            location=azure.location,
            tags=scope.tags_with(Name=name, Role=group),
            opts=scope.opts(),
        )
        groups[group] = once_created(asg, resource_id(azure, APPLICATION_SECURITY_GROUP_KIND, azure_name(name)))
    return groups


def _nat_gateways(azure: AzureStack, scope: Scope, plan: NetworkPlan) -> dict[str, network.NatGateway]:
    """By zone, the NAT gateway its private subnet leaves through: with `nat_per_zone` one in each
    zone, each with its own zonal public address, so that a zone's loss takes only its own egress;
    else one, in the first zone, for every private subnet.
    """
    gateways: dict[str, network.NatGateway] = {}
    for zone in plan.zones if plan.nat_per_zone else plan.zones[:1]:
        name = scope.child(f"nat-{zone}")
        address = public_address(azure, scope, f"nat-{zone}-ip", [zone], scope.opts())
        gateways[zone] = network.NatGateway(
            name,
            nat_gateway_name=azure_name(name),
            resource_group_name=azure.resource_group,
            location=azure.location,
            sku=network.NatGatewaySkuArgs(name=network.NatGatewaySkuName.STANDARD),
            zones=[zone],
            public_ip_addresses=[network.SubResourceArgs(id=address.id)],
            tags=scope.tags_with(Name=name),
            opts=scope.opts(),
        )
    return {zone: gateways.get(zone, gateways[plan.zones[0]]) for zone in plan.zones}


def _flow_logs(azure: AzureStack, scope: Scope, plan: NetworkPlan, vnet: network.VirtualNetwork) -> None:
    """The virtual network's flow logs (Azure creates no new network security group flow logs) in
    a log storage account of the stack under the stack's key (design §2.1), kept as long as the
    environment keeps them.

    Two managed identities, each with one grant: the account's, which wraps its data key with the
    stack's key, and the flow log's, which writes the logs into the account. The account takes no
    shared key: Network Watcher writes with the flow log's identity. The flow log lives in the
    region's Network Watcher, outside the stack's resource group (`NETWORK_WATCHER_GROUP`), under a
    name of the stack's, since every stack of the subscription in that region shares the watcher.
    """
    if plan.flow_log_retention_days > FLOW_LOG_RETENTION_LIMIT:
        raise ValueError(f"Azure keeps flow logs at most {FLOW_LOG_RETENTION_LIMIT} days, not {plan.flow_log_retention_days}")
    key_identity = key_user(azure, scope, "flow-logs-key-identity", plan.key_id)
    writer = user_identity(azure, scope, "flow-logs-writer-identity")
    name = scope.child("flow-logs")
    account_name = global_name(azure, name, STORAGE_ACCOUNT_NAME_LIMIT)
    account = storage.StorageAccount(
        name,
        account_name=account_name,
        resource_group_name=azure.resource_group,
        location=azure.location,
        kind=storage.Kind.STORAGE_V2,
        sku=storage.SkuArgs(name=storage.SkuName.STANDARD_ZRS),
        access_tier=storage.AccessTier.HOT,
        minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
        enable_https_traffic_only=True,
        allow_blob_public_access=False,
        allow_shared_key_access=False,
        default_to_o_auth_authentication=True,
        allow_cross_tenant_replication=False,
        identity=storage.IdentityArgs(type=storage.IdentityType.USER_ASSIGNED, user_assigned_identities=[key_identity.identity.id]),
        encryption=storage.EncryptionArgs(
            key_source=storage.KeySource.MICROSOFT_KEYVAULT,
            key_vault_properties=storage.KeyVaultPropertiesArgs(key_name=key_name(plan.key_id), key_vault_uri=vault_uri(plan.key_id)),
            encryption_identity=storage.EncryptionIdentityArgs(encryption_user_assigned_identity=key_identity.identity.id),
            require_infrastructure_encryption=True,
        ),
        allowed_copy_scope=storage.AllowedCopyScope.AAD,
        tags=scope.tags_with(Name=name),
        opts=scope.stateful_opts(depends_on=[key_identity.grant]),
    )
    account_id = once_created(account, resource_id(azure, STORAGE_ACCOUNT_KIND, account_name))
    writer_grant = role_assignment(azure, scope, "flow-logs-writer-grant", role=STORAGE_BLOB_DATA_CONTRIBUTOR, principal_id=writer.principal_id, on=account_id)
    log_name = scope.child("vnet-flow-log")
    network.FlowLog(
        log_name,
        flow_log_name=azure_name(log_name),
        network_watcher_name=f"NetworkWatcher_{azure.location}",
        resource_group_name=NETWORK_WATCHER_GROUP,
        location=azure.location,
        target_resource_id=vnet.id,
        storage_id=account_id,
        enabled=True,
        format=network.FlowLogFormatParametersArgs(type=network.FlowLogFormatType.JSON, version=2),
        retention_policy=network.RetentionPolicyParametersArgs(days=plan.flow_log_retention_days, enabled=True),
        identity=network.ManagedServiceIdentityArgs(type=network.ResourceIdentityType.USER_ASSIGNED, user_assigned_identities=[writer.id]),
        tags=scope.tags_with(Name=log_name),
        opts=scope.opts(depends_on=[writer_grant]),
    )


def build_network(azure: AzureStack, scope: Scope, plan: NetworkPlan) -> NetworkResult:
    """Creates the virtual network and everything in it.

    The subnets are separate resources (the virtual network names none, so an update of it keeps
    them) created one after the other: Azure refuses concurrent changes of one network's subnets
    (`AnotherOperationInProgress`). A private subnet is created with its NAT gateway, so a machine
    in it, which waits for its subnet and gateway (`private_egress`), boots with its way out.
    """
    if not len(plan.private_cidrs) == len(plan.public_cidrs) == len(plan.zones):
        raise ValueError("Azure stacks have one private and one public subnet per zone")
    name = scope.child("vnet")
    vnet = network.VirtualNetwork(
        name,
        virtual_network_name=azure_name(name, NETWORK_NAME_LIMIT),
        resource_group_name=azure.resource_group,
        location=azure.location,
        address_space=network.AddressSpaceArgs(address_prefixes=[plan.cidr]),
        tags=scope.tags_with(Name=name),
        opts=scope.opts(),
    )
    groups = _application_security_groups(azure, scope)
    nsg = _security_group(azure, scope, plan, groups)
    nat = _nat_gateways(azure, scope, plan)
    subnets: dict[tuple[str, str], network.Subnet] = {}
    previous: list[pulumi.Resource] = []
    for tier, cidrs in (("private", plan.private_cidrs), ("public", plan.public_cidrs)):
        for zone, cidr in zip(plan.zones, cidrs, strict=True):
            private = tier == "private"
            subnet = network.Subnet(
                scope.child(f"{tier}-{zone}"),
                subnet_name=f"{tier}-{zone}",
                virtual_network_name=vnet.name,
                resource_group_name=azure.resource_group,
                address_prefix=cidr,
                network_security_group=network.NetworkSecurityGroupArgs(id=nsg.id),
                nat_gateway=network.SubResourceArgs(id=nat[zone].id) if private else None,
                service_endpoints=[network.ServiceEndpointPropertiesFormatArgs(service=service) for service in SERVICE_ENDPOINTS] if private else None,
                # No implicit outbound address: the private subnets leave through NAT, the bastion through its own address.
                default_outbound_access=False,
                opts=scope.opts(depends_on=previous),
            )
            subnets[tier, zone] = subnet
            previous = [subnet]
    _flow_logs(azure, scope, plan, vnet)
    return NetworkResult(
        network_id=vnet.id,
        public_subnet_ids={zone: subnets["public", zone].id for zone in plan.zones},
        private_subnet_ids={zone: subnets["private", zone].id for zone in plan.zones},
        firewall_group_ids=groups,
        private_egress={zone: [nat[zone], subnets["private", zone]] for zone in plan.zones},
    )
