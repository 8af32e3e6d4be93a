"""Segmentation: nothing reachable from the internet but the listeners a stack allows, every port
reachable only from where the firewall matrix of `dpc/model.py` says, SSH only from the admins to
the bastion, no public address on a node, the default security group closed, flow logs on; inside
the Swarm, each service only on the overlay networks whose members (`dpc/tiers.py`) include it.

The matrix is read as data, but the check works on the flows the planned rules allow, whichever
code made them: on AWS each security-group rule's target and source are found through the engine's
property dependencies and named by the `Role` tag of their security group; on GCP each firewall
rule's targets and sources are its network tags (named after the roles) and service accounts, a
rule naming no source admitting 0.0.0.0/0 as GCP does; on Azure each security rule's targets and
sources are application security groups (named by their `Role` tag, found through the engine's
property dependencies for a SecurityRule resource and by id inside a network security group) and
address prefixes, Azure's service tags read as the ranges they stand for. What differs by cloud
(where the load balancer's traffic comes from) is translated as data (`CloudMatrix`), never read
from the providers.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyConfigSchema, PolicyResource, Severity, StackValidationArgs

from dpc.model import FIREWALL_MATRIX, FromCidrs, FromLoadBalancer, FromRole, Role, Rule
from dpc.services import BUILT_IMAGES, ServiceSpec
from dpc.tiers import TIERS, service_kind
from policies.common import (
    admin_cidrs,
    attached_to,
    client_cidrs,
    depends_through,
    get,
    inline_rules,
    items,
    judge_each,
    mapping,
    of_type,
    stack_policy,
    stack_setting,
    within,
)
from policies.identity import UNKNOWN, covers_public_space, known_items, length, peek, program_services

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
GCP_SERVICE_ACCOUNT = "gcp:serviceaccount/account:Account"
GCP_INSTANCE = "gcp:compute/instance:Instance"
AZURE_NSG = "azure-native:network:NetworkSecurityGroup"
AZURE_RULE = "azure-native:network:SecurityRule"
AZURE_ASG = "azure-native:network:ApplicationSecurityGroup"
AZURE_NIC = "azure-native:network:NetworkInterface"
AZURE_VNET = "azure-native:network:VirtualNetwork"
AZURE_SUBNET = "azure-native:network:Subnet"
AZURE_VM = "azure-native:compute:VirtualMachine"
AZURE_IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
DOCKER_SERVICE = "docker:index/service:Service"
DOCKER_NETWORK = "docker:index/network:Network"
DOCKER_IMAGE = "docker:index/image:Image"
LOAD_BALANCER_ROLE = "load-balancer"
"""The `Role` tag of the load balancer's own security group (the matrix's rules with no target role)."""
SERVICE_ENDPOINTS_ROLE = "endpoints"
"""The `Role` tag of the group of the cloud's service endpoints (VPC interface endpoints): no
machine of the firewall matrix; it accepts HTTPS from inside the VPC and nothing else."""

SSH_PORT = 22
_GROUPS = frozenset({*(role.value for role in Role), LOAD_BALANCER_ROLE})
"""The firewall groups of the model: one per role and the load balancer's."""
_ALL_PORTS = (0, 65535)
_PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "esp": "esp", "50": "esp", "-1": "all", "all": "all", "*": "all"}
"""Each cloud's protocol names (AWS's numbers and -1, GCP's names, Azure's Tcp/Udp/Esp and `*`), as one."""
_AZURE_ANYWHERE = ("*", "0.0.0.0/0", "::/0", "internet", "any")
"""Azure's names for every address, lowercased: `*`, the Internet and Any service tags."""
AZURE_VNET_TAG = "virtualnetwork"
AZURE_PROBE_TAG = "azureloadbalancer"
AZURE_PROBE_RANGE = "168.63.129.16/32"
"""The address behind Azure's `AzureLoadBalancer` service tag: where a load balancer's health probes
come from (a Standard load balancer passes the clients' own addresses through, which the clients'
rows admit)."""


@dataclass(frozen=True)
class Ingress:
    """One planned inbound flow, on any cloud: into the machines of role `target` (grouped with the
    other flows into the same group by `group`), from a network (`cidr`) or from the machines of role
    `source` (`from_group`: the flow names a group, tag or service account as its source, whose role
    `source` is, or None when that source is of no role of this stack).
    """

    urn: str
    name: str
    target: str | None
    group: str
    protocol: str
    ports: tuple[int, int]
    cidr: str | None
    source: str | None = None
    from_group: bool = False

    def covers(self, port: int) -> bool:
        """Whether the flow lets TCP traffic reach `port`."""
        return self.protocol in ("tcp", "all") and self.ports[0] <= port <= self.ports[1]

    def describe(self) -> str:
        """The flow as a reviewer reads it: `name: tcp 5432 from 0.0.0.0/0 to manager`."""
        ports = "" if self.protocol == "esp" else f" {self.ports[0]}" if self.ports[0] == self.ports[1] else f" {self.ports[0]}-{self.ports[1]}"
        origin = self.cidr or self.source or "an unresolvable source"
        return f"{self.name}: {self.protocol}{ports} from {origin} to {self.target or 'an unknown group'}"


def role_of(group: PolicyResource | None) -> str | None:
    """The role a security group guards, from its `Role` tag: the group is the identity (the rule
    machines-identified-by-their-groups holds each role to one group, made by the program).
    """
    return get(group.props, "tags", "Role") if group else None


def _protocol(value: Any) -> str:
    return _PROTOCOLS.get(str(value).lower(), str(value))


def _ports(protocol: str, props: Any) -> tuple[int, int]:
    if protocol == "esp":
        return (0, 0)
    if protocol == "all" or get(props, "fromPort") is None:
        return _ALL_PORTS
    return (int(get(props, "fromPort")), int(get(props, "toPort")))


def _one_group(resource: PolicyResource, prop: str) -> PolicyResource | None:
    groups = depends_through(resource, prop, SECURITY_GROUP)
    return groups[0] if groups else None


def ingresses(args: StackValidationArgs) -> list[Ingress]:
    """Every inbound flow the stack's AWS security groups allow, whichever resource declares it. A
    rule whose values are unknown at preview is set aside (the policy says so) and the others count.
    """
    return collected(of_type(args, INGRESS_RULE, LEGACY_RULE, SECURITY_GROUP), lambda resource: _flows_of(args, resource))


def collected(resources: Iterable[PolicyResource], flows_of: Callable[[PolicyResource], list[Ingress]]) -> list[Ingress]:
    """The flows each resource declares, gathered; a resource whose values are unknown at a preview
    is set aside (`judge_each`: the policy says so) and the others count.
    """
    found: list[Ingress] = []

    def collect(resource: PolicyResource) -> list[str]:
        found.extend(flows_of(resource))
        return []

    for _ in judge_each(resources, collect):
        pass
    return found


def _flow(declared: PolicyResource, target: PolicyResource | None, protocol: str, ports: tuple[int, int], *, cidr: str | None = None,
          source: PolicyResource | None = None, from_group: bool = False) -> Ingress:
    """An AWS flow into a security group, the groups named by their roles (`role_of`)."""
    return Ingress(declared.urn, declared.name, role_of(target), target.urn if target else declared.urn, protocol, ports, cidr, role_of(source),
                   from_group)


def _flows_of(args: StackValidationArgs, resource: PolicyResource) -> list[Ingress]:
    """The inbound flows one rule or group declares."""
    if resource.resource_type == INGRESS_RULE:
        protocol = _protocol(get(resource.props, "ipProtocol"))
        cidr = get(resource.props, "cidrIpv4") or get(resource.props, "cidrIpv6")
        source = _one_group(resource, "referencedSecurityGroupId")
        return [_flow(resource, _one_group(resource, "securityGroupId"), protocol, _ports(protocol, resource.props), cidr=cidr, source=source,
                      from_group=source is not None)]
    if resource.resource_type == LEGACY_RULE:
        if get(resource.props, "type") != "ingress":
            return []
        target, protocol = _one_group(resource, "securityGroupId"), _protocol(get(resource.props, "protocol"))
        source = _one_group(resource, "sourceSecurityGroupId")
        named = source is not None or bool(get(resource.props, "sourceSecurityGroupId"))
        return _cidr_and_group_flows(resource, target, protocol, resource.props, source=source, names_group=named)
    return [flow for entry in inline_rules(args, resource, "ingress")
            for flow in _cidr_and_group_flows(resource, resource, _protocol(get(entry, "protocol")), entry,
                                              names_group=bool(items(get(entry, "securityGroups"))))]


def _cidr_and_group_flows(declared: PolicyResource, target: PolicyResource | None, protocol: str, props: Any, *,
                          source: PolicyResource | None = None, names_group: bool) -> list[Ingress]:
    """The flows of a rule that lists CIDR blocks and may name a group, itself (`self`) or others
    (`names_group`; `source` when the stack made it).
    """
    ports = _ports(protocol, props)
    cidrs = [*items(get(props, "cidrBlocks")), *items(get(props, "ipv6CidrBlocks"))]
    flows = [_flow(declared, target, protocol, ports, cidr=str(cidr)) for cidr in cidrs]
    if get(props, "self") is True:
        flows.append(_flow(declared, target, protocol, ports, source=target, from_group=True))
    if names_group:
        flows.append(_flow(declared, target, protocol, ports, source=source, from_group=True))
    return flows


def _parse_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return (int(low), int(high or low))


def _allowed_publicly(allowed: list[int], protocol: str, ports: tuple[int, int]) -> bool:
    return protocol in ("tcp", "udp") and all(port in allowed for port in range(ports[0], ports[1] + 1))


def _open_flows(flows: list[Ingress], allowed: list[int]) -> Iterator[tuple[str, str]]:
    """The flows into one group that together open a port range to the internet: for each span of
    ports, the ranges of every flow that covers it are taken together (two halves of the address
    space in two rules are the whole of it).
    """
    reported: set[str] = set()
    for protocol in sorted({f.protocol for f in flows}):
        members = [f for f in flows if f.protocol in (protocol, "all")]
        cuts = sorted({f.ports[0] for f in members} | {f.ports[1] + 1 for f in members})
        for low, end in itertools.pairwise(cuts):
            covering = [f for f in members if f.ports[0] <= low and end - 1 <= f.ports[1]]
            if not covers_public_space(f.cidr for f in covering) or _allowed_publicly(allowed, protocol, (low, end - 1)):
                continue
            offenders = [f for f in covering if f.urn not in reported]
            ranges = ", ".join(sorted({str(f.cidr) for f in covering}))
            for flow in offenders:
                reported.add(flow.urn)
                yield (f"{flow.name}: {protocol} {low}-{end - 1} into {flow.target or 'a group'} is open to the internet ({ranges})", flow.urn)


def _open(flows: list[Ingress], allowed: list[int]) -> Iterator[tuple[str, str]]:
    """The flows from networks, taken together per group they enter (`_open_flows`)."""
    by_group: dict[str, list[Ingress]] = {}
    for flow in flows:
        if flow.cidr is not None:
            by_group.setdefault(flow.group, []).append(flow)
    for grouped in by_group.values():
        yield from _open_flows(grouped, allowed)


def _gcp_port_ranges(allow: Any) -> list[tuple[int, int]]:
    """The port ranges of a firewall's `allows` entry: each of its `ports`, or every port when it lists none."""
    return [_parse_range(str(p)) for p in items(get(allow, "ports"))] or [_ALL_PORTS]


GCP_ANYWHERE = "0.0.0.0/0"
"""The source of an ingress firewall rule that names none (no ranges, tags or service accounts):
GCP then admits every IPv4 address."""


def _gcp_role_of_tag(tag: Any) -> str | None:
    """The group a network tag stands for: the firewall groups are tags named after the roles and
    the load balancer (the tag alone says nothing of a machine: `machines-identified-by-their-groups` holds each
    tag to the service account of its role).
    """
    return str(tag) if str(tag) in _GROUPS else None


def _gcp_targets(accounts: Sequence[PolicyResource], firewall: PolicyResource) -> list[tuple[str | None, str]]:
    """(role, group key) of the machines a rule applies to: its target tags, its target service
    accounts (by the roles of the accounts of this stack they were computed from, None for one it
    did not make), or every machine of the network when it names neither.
    """
    tags = [(_gcp_role_of_tag(t), f"tag:{t}") for t in items(get(firewall.props, "targetTags"))]
    roles = gcp_account_roles(accounts, firewall, "targetServiceAccounts", items(get(firewall.props, "targetServiceAccounts")))
    by_account = [(role, f"tag:{role}" if role else f"account:{firewall.urn}") for role in roles]
    return tags + by_account or [(role, f"tag:{role}") for role in sorted(_MACHINE_ROLES)]


def _gcp_sources(accounts: Sequence[PolicyResource], firewall: PolicyResource) -> list[tuple[str | None, str | None]]:
    """(cidr, role) of where a rule admits traffic from: each source range, each source tag's or
    service account's role (None for a tag of no role or an account the stack did not make), or
    every IPv4 address when it names no source.
    """
    ranges: list[tuple[str | None, str | None]] = [(str(c), None) for c in items(get(firewall.props, "sourceRanges"))]
    tags: list[tuple[str | None, str | None]] = [(None, _gcp_role_of_tag(t)) for t in items(get(firewall.props, "sourceTags"))]
    roles = gcp_account_roles(accounts, firewall, "sourceServiceAccounts", items(get(firewall.props, "sourceServiceAccounts")))
    named: list[tuple[str | None, str | None]] = [(None, role) for role in roles]
    return ranges + tags + named or [(GCP_ANYWHERE, None)]


def gcp_ingresses(args: StackValidationArgs) -> list[Ingress]:
    """Every inbound flow the stack's GCP firewall rules allow: each enabled INGRESS rule's allows
    (protocol, each port range) into each of its targets, from each of its sources. Deny rules and
    EGRESS rules allow nothing in (the matrix leaves outbound open, design §2.5).
    """
    accounts = of_type(args, GCP_SERVICE_ACCOUNT)
    return collected(of_type(args, GCP_FIREWALL), lambda firewall: _gcp_flows(accounts, firewall))


def _gcp_flows(accounts: Sequence[PolicyResource], firewall: PolicyResource) -> list[Ingress]:
    if get(firewall.props, "direction") not in (None, "INGRESS") or get(firewall.props, "disabled") is True:
        return []
    targets, sources = _gcp_targets(accounts, firewall), _gcp_sources(accounts, firewall)
    found: list[Ingress] = []
    for allow in items(get(firewall.props, "allows")):
        protocol = _protocol(get(allow, "protocol"))
        for ports in ([(0, 0)] if protocol == "esp" else _gcp_port_ranges(allow)):
            found.extend(Ingress(firewall.urn, firewall.name, target, group, protocol, ports, cidr, source, from_group=cidr is None)
                         for target, group in targets for cidr, source in sources)
    return found


def _azure_port_texts(rule: Any) -> list[Any]:
    """A security rule's destination ports as written: one range, several, or `*`."""
    return [r for r in (get(rule, "destinationPortRange"), *items(get(rule, "destinationPortRanges"))) if r is not None]


def _azure_ports(text: Any) -> tuple[int, int]:
    return _ALL_PORTS if str(text) == "*" else _parse_range(str(text))


def _azure_prefixes(rule: Any, side: str) -> list[str]:
    """The address prefixes (ranges or service tags) a rule names on its `source` or `destination` side."""
    return [str(p) for p in (get(rule, f"{side}AddressPrefix"), *items(get(rule, f"{side}AddressPrefixes"))) if p is not None]


@dataclass(frozen=True)
class AzureRule:
    """One security rule of the stack, wherever it is declared: inside a network security group
    (`securityRules`) or as a SecurityRule resource of its own; `group` is the network security
    group it belongs to (the NSG itself, or the one a separate rule's `networkSecurityGroupName`
    was computed from; None for a group the stack did not make).
    """

    declared: PolicyResource
    group: PolicyResource | None
    props: Any

    @property
    def name(self) -> str:
        """The rule's name: its own inside a group, the resource's for a SecurityRule."""
        return str(peek(self.props, "name") or self.declared.name) if self.declared.resource_type == AZURE_NSG else self.declared.name

    def allows_inbound(self) -> bool:
        """Whether the rule lets traffic in (deny rules and outbound ones let nothing in)."""
        return get(self.props, "direction") == "Inbound" and get(self.props, "access") == "Allow"


def azure_rules(declared: PolicyResource) -> list[AzureRule]:
    """The Azure security rules a resource declares: the rules inside a group, or a separately
    managed SecurityRule, whose group is the one its networkSecurityGroupName was computed from.
    """
    if declared.resource_type == AZURE_NSG:
        return [AzureRule(declared, declared, rule) for rule in items(get(declared.props, "securityRules"))]
    groups = depends_through(declared, "networkSecurityGroupName", AZURE_NSG)
    return [AzureRule(declared, groups[0] if groups else None, declared.props)]


def _azure_open_flows(rules: Sequence[AzureRule]) -> list[Ingress]:
    """The inbound Allow flows of Azure rules from address prefixes, for `no-ingress-from-anywhere`:
    Azure's names for everywhere (`*`, `Internet`, `Any`) read as 0.0.0.0/0, other service tags left
    out (none of them is the internet at large). Grouped by network security group and destination
    as written, so that two rules into the same machines that each admit half of the address space
    are taken together; the destination's ids are not resolved (a preview does not know them), so
    the check needs no more than the rules themselves.
    """
    flows: list[Ingress] = []
    for rule in rules:
        if not rule.allows_inbound():
            continue
        protocol = _protocol(get(rule.props, "protocol"))
        prefixes = ["0.0.0.0/0" if p.lower() in _AZURE_ANYWHERE else p for p in _azure_prefixes(rule.props, "source")]
        destination = (rule.group.urn if rule.group else rule.declared.urn, repr(_azure_destination_key(rule)))
        flows.extend(Ingress(rule.declared.urn, rule.name, None, "|".join(destination), protocol, ports, prefix)
                     for prefix in prefixes if _is_cidr(prefix) for ports in _azure_rule_ports(rule, protocol))
    return flows


def _azure_destination_key(rule: AzureRule) -> tuple[str, ...]:
    """What a rule's destination is, as far as it can be told without resolving ids: the groups its
    destination ids were computed from (a separate rule), else the ids and prefixes as written
    (an unknown id reads as the same unknown everywhere, which takes more rules together, not fewer).
    """
    made = [g.urn for g in depends_through(rule.declared, "destinationApplicationSecurityGroups", AZURE_ASG)]
    if rule.declared.resource_type == AZURE_RULE and made:
        return tuple(sorted(made))
    ids = [str(peek(entry, "id")) for entry in known_items(peek(rule.props, "destinationApplicationSecurityGroups"))]
    return tuple(sorted(ids + _azure_prefixes(rule.props, "destination")))


def _azure_groups(asgs: Sequence[PolicyResource], rule: AzureRule, prop: str) -> list[tuple[str | None, str]]:
    """(role, group key) of each application security group a rule names in `prop`: for a separate
    SecurityRule, the groups of this stack the property was computed from (the engine knows them at
    a preview too), one None for each further id it lists (a group the stack did not make); inside
    a network security group, where the dependencies of all its rules are pooled, the group of this
    stack whose id each entry is (an id unknown at a preview sets the whole group aside).
    """
    listed = items(get(rule.props, prop))
    if rule.declared.resource_type == AZURE_RULE:
        made = depends_through(rule.declared, prop, AZURE_ASG)
        unmade = [(None, f"{rule.declared.urn}#{prop}{index}") for index in range(max(len(listed) - len(made), 0))]
        return [(role_of(group), group.urn) for group in made] + unmade
    found: list[tuple[str | None, str]] = []
    for entry in listed:
        asg_id = get(entry, "id")
        group = next((g for g in asgs if _is_asg(g, str(asg_id))), None)
        found.append((role_of(group), group.urn) if group else (None, f"{rule.declared.urn}#{asg_id}"))
    return found


def _is_asg(group: PolicyResource, asg_id: str) -> bool:
    """Whether an ARM id names the application security group `group`: its id where the engine
    knows it; before it exists (a first preview), the id the program can write from names, that
    of a group of its name in its resource group.
    """
    known = peek(group.props, "id")
    if isinstance(known, str) and known:
        return known.lower() == asg_id.lower()
    name, resource_group = peek(group.props, "applicationSecurityGroupName"), peek(group.props, "resourceGroupName")
    suffix = f"/resourceGroups/{resource_group}/providers/Microsoft.Network/applicationSecurityGroups/{name}"
    return isinstance(name, str) and isinstance(resource_group, str) and asg_id.lower().endswith(suffix.lower())


def _azure_targets(asgs: Sequence[PolicyResource], rule: AzureRule) -> list[tuple[str | None, str]]:
    """(role, group key) of the machines a rule admits traffic into: its destination application
    security groups, or, where it names addresses (`*`, VirtualNetwork, a range), every machine the
    network security group may guard.
    """
    groups = _azure_groups(asgs, rule, "destinationApplicationSecurityGroups")
    everyone = [(role, f"asg-role:{role}") for role in sorted(_MACHINE_ROLES)] if _azure_prefixes(rule.props, "destination") else []
    return [(role, f"asg-role:{role}" if role else key) for role, key in groups] + everyone


def _azure_sources(args: StackValidationArgs, asgs: Sequence[PolicyResource], rule: AzureRule) -> list[tuple[str | None, str | None, bool]]:
    """(cidr, role, from a group) of where a rule admits traffic from: each source application
    security group's role; each prefix as a range, Azure's everywhere as 0.0.0.0/0, VirtualNetwork
    as the stack's address space, AzureLoadBalancer as its probes' address; any other service tag
    resolves to nothing (and so matches no row of the matrix).
    """
    sources: list[tuple[str | None, str | None, bool]] = [(None, role, True) for role, _ in _azure_groups(asgs, rule, "sourceApplicationSecurityGroups")]
    for prefix in _azure_prefixes(rule.props, "source"):
        lowered = prefix.lower()
        if lowered in _AZURE_ANYWHERE:
            sources.append(("0.0.0.0/0", None, False))
        elif lowered == AZURE_VNET_TAG:
            sources.extend((str(n), None, False) for n in _azure_address_space(args))
        elif lowered == AZURE_PROBE_TAG:
            sources.append((AZURE_PROBE_RANGE, None, False))
        else:
            sources.append((prefix if _is_cidr(prefix) else None, None, False))
    return sources


def _azure_address_space(args: StackValidationArgs) -> Networks:
    """The stack's virtual networks' address prefixes (what Azure's VirtualNetwork tag covers at least)."""
    return [ipaddress.ip_network(str(p)) for v in of_type(args, AZURE_VNET) for p in items(get(v.props, "addressSpace", "addressPrefixes"))]


def azure_ingresses(args: StackValidationArgs) -> list[Ingress]:
    """Every inbound flow the stack's Azure security rules allow: each inbound Allow rule's protocol
    and port ranges into each of its targets, from each of its sources. Deny rules allow nothing
    (the explicit deny-all under the matrix is `default-security-group-closed`'s), and outbound is
    open (design §2.5). A resource whose rules are unknown at a preview is set aside.
    """
    asgs = of_type(args, AZURE_ASG)
    return collected(of_type(args, AZURE_NSG, AZURE_RULE), lambda declared: [flow for rule in azure_rules(declared) for flow in _azure_flows(args, asgs, rule)])


def _azure_rule_ports(rule: AzureRule, protocol: str) -> list[tuple[int, int]]:
    return [(0, 0)] if protocol == "esp" else [_azure_ports(t) for t in _azure_port_texts(rule.props)]


def _azure_flows(args: StackValidationArgs, asgs: Sequence[PolicyResource], rule: AzureRule) -> list[Ingress]:
    if not rule.allows_inbound():
        return []
    protocol = _protocol(get(rule.props, "protocol"))
    targets, sources = _azure_targets(asgs, rule), _azure_sources(args, asgs, rule)
    return [Ingress(rule.declared.urn, rule.name, target, group, protocol, ports, cidr, source, from_group)
            for ports in _azure_rule_ports(rule, protocol) for target, group in targets for cidr, source, from_group in sources]


def _open_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    allowed: list[int] = list(args.get_config()["allowedPorts"])
    yield from _open(ingresses(args), allowed)
    yield from _open(gcp_ingresses(args), allowed)
    yield from _open(collected(of_type(args, AZURE_NSG, AZURE_RULE), lambda declared: _azure_open_flows(azure_rules(declared))), allowed)


NO_INGRESS_FROM_ANYWHERE = stack_policy(
    "no-ingress-from-anywhere",
    "No inbound rule, alone or with the other rules into the same group, is open to the internet (ranges that together cover the "
    "public address space: 0.0.0.0/0, ::/0, their halves, Azure's * / Internet / Any), except on the listener ports the config allows.",
    severity=Severity.CRITICAL,
    remediation="Narrow the source to the networks that need the port (dpc:access.clientCidrs or adminCidrs), "
    "or list the port in this policy's allowedPorts if it is a deliberate public listener.",
    check=_open_violations,
    clouds=("aws", "gcp", "azure-native"),
    config_schema=PolicyConfigSchema({"allowedPorts": {"type": "array", "items": {"type": "integer"}, "default": []}}),
)


Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]

GCP_HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22", "209.85.152.0/22", "209.85.204.0/22")
"""Where Google's load-balancer health checks come from (Google's documented probe ranges: an
internal passthrough Network Load Balancer's 35.191.0.0/16 and 130.211.0.0/22; an external one's
35.191.0.0/16, 209.85.152.0/22 and 209.85.204.0/22)."""


@dataclass(frozen=True)
class CloudMatrix:
    """How one cloud's firewall spells the matrix's rows that involve the load balancer: the rest
    (roles, the admins' and the clients' networks) every cloud spells alike.
    """

    balancer_target: str | None
    """The group the rows to no role (`Rule.to` None: the balancer itself) enter; None where the
    balancer is no machine and has no firewall of its own (GCP's passthrough balancer)."""
    balancer_group: str | None
    """The group the balancer's traffic comes from (AWS: its own security group), or None."""
    balancer_ranges: tuple[str, ...]
    """The ranges the balancer's traffic comes from where it has no group: on GCP its health checks
    (a passthrough balancer keeps the clients' own addresses, which the clients' rows admit)."""


AWS_MATRIX = CloudMatrix(balancer_target=LOAD_BALANCER_ROLE, balancer_group=LOAD_BALANCER_ROLE, balancer_ranges=())
GCP_MATRIX = CloudMatrix(balancer_target=None, balancer_group=None, balancer_ranges=GCP_HEALTH_CHECK_RANGES)
AZURE_MATRIX = CloudMatrix(balancer_target=None, balancer_group=None, balancer_ranges=(AZURE_PROBE_RANGE,))
"""Azure's Standard load balancer is a passthrough, as GCP's: no machine, no security group of its
own; its probes come from the AzureLoadBalancer service tag."""


def _client_networks(args: StackValidationArgs) -> Networks:
    """Where clients may come from: the stack's client CIDRs, or the VPC itself when it lists none
    (the model keeps the endpoint internal then).
    """
    return client_cidrs() or _vpc_networks(args)


def _vpc_networks(args: StackValidationArgs) -> Networks:
    """The stack's own address space: its AWS VPCs' blocks; on GCP, whose networks have no range of
    their own, its subnetworks' ranges and the range the stack gives its network (`dpc:network.vpcCidr`);
    its Azure virtual networks' address prefixes.
    """
    aws = [ipaddress.ip_network(str(get(v.props, "cidrBlock"))) for v in of_type(args, "aws:ec2/vpc:Vpc") if get(v.props, "cidrBlock")]
    subnetworks = of_type(args, "gcp:compute/subnetwork:Subnetwork")
    gcp = [ipaddress.ip_network(str(get(s.props, "ipCidrRange"))) for s in subnetworks if get(s.props, "ipCidrRange")]
    stated = get(stack_setting("network"), "vpcCidr") if subnetworks else None
    return [*aws, *gcp, *([ipaddress.ip_network(str(stated))] if stated else []), *_azure_address_space(args)]


def _source_matches(rule: Rule, flow: Ingress, networks: dict[str, Networks], cloud: CloudMatrix) -> bool:
    match rule.source:
        case FromRole(role):
            return flow.from_group and flow.source == role.value
        case FromLoadBalancer():
            if flow.from_group:
                return cloud.balancer_group is not None and flow.source == cloud.balancer_group
            return flow.cidr is not None and bool(cloud.balancer_ranges) and within(flow.cidr, [ipaddress.ip_network(r) for r in cloud.balancer_ranges])
        case FromCidrs(kind):
            return flow.cidr is not None and within(flow.cidr, networks[kind])


def _in_matrix(flow: Ingress, networks: dict[str, Networks], cloud: CloudMatrix) -> bool:
    for rule in FIREWALL_MATRIX:
        rule_target = rule.to.value if rule.to else cloud.balancer_target
        if (rule_target == flow.target and rule.protocol == flow.protocol and rule.port <= flow.ports[0] and flow.ports[1] <= rule.to_port
                and _source_matches(rule, flow, networks, cloud)):
            return True
    return False


def _matrix_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    networks = {"admin": admin_cidrs(), "clients": _client_networks(args)}
    for flow in ingresses(args):
        if flow.target is None:
            yield (f"{flow.name}: the rule's security group is not one of the stack's role groups (no Role tag), so nothing says what it may open", flow.urn)
        elif flow.target == SERVICE_ENDPOINTS_ROLE:
            if (flow.protocol, flow.ports) != ("tcp", (443, 443)) or flow.cidr is None or not within(flow.cidr, _vpc_networks(args)):
                yield (f"{flow.describe()}: the service endpoints accept HTTPS from the VPC only", flow.urn)
        elif not _in_matrix(flow, networks, AWS_MATRIX):
            yield (f"{flow.describe()} is not in the firewall matrix", flow.urn)
    yield from _tagged_matrix_violations(gcp_ingresses(args), networks, GCP_MATRIX, "a tag or service account")
    yield from _tagged_matrix_violations(azure_ingresses(args), networks, AZURE_MATRIX, "an application security group")


def _tagged_matrix_violations(flows: Iterable[Ingress], networks: dict[str, Networks], cloud: CloudMatrix, what: str) -> Iterator[tuple[str, str]]:
    """GCP's and Azure's flows against the matrix, each problem once: a rule there applies to many
    targets and sources at once, and one row of it would otherwise be reported per pair.
    """
    reported: set[tuple[str, str]] = set()
    for flow in flows:
        if flow.target is None:
            problem = (f"{flow.name}: the rule applies to {what} of no role of this stack, so nothing says what it may open", flow.urn)
        elif not _in_matrix(flow, networks, cloud):
            problem = (f"{flow.describe()} is not in the firewall matrix", flow.urn)
        else:
            continue
        if problem not in reported:
            reported.add(problem)
            yield problem


FIREWALL_MATRIX_ONLY = stack_policy(
    "ports-only-from-firewall-matrix",
    "Database, pooler, etcd, Patroni API, Redis, Swarm and monitoring ports are reachable only from what the firewall matrix (dpc/model.py) allows.",
    severity=Severity.CRITICAL,
    remediation="Remove the rule, or add the flow to FIREWALL_MATRIX in dpc/model.py with its purpose if it is really needed.",
    check=_matrix_violations,
    clouds=("aws", "gcp", "azure-native"),
)


def _ssh_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    """Every cloud alike, on the flows its rules allow (a GCP machine's tag is held to its service
    account's role, an Azure machine's application security group to its identity's, by
    `machines-identified-by-their-groups`).
    """
    admins = admin_cidrs()
    for flow in [*ingresses(args), *gcp_ingresses(args), *azure_ingresses(args)]:
        if not flow.covers(SSH_PORT):
            continue
        if flow.cidr is not None and (flow.target != Role.BASTION.value or not within(flow.cidr, admins)):
            yield (f"{flow.describe()}: SSH from a network may only reach the bastion, from the admin CIDRs", flow.urn)
        if flow.cidr is None and flow.source != Role.BASTION.value:
            yield (f"{flow.describe()}: SSH between machines may only come from the bastion", flow.urn)


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


SSH_ONLY_TO_BASTION = stack_policy(
    "ssh-only-from-admins-to-bastion",
    "SSH reaches the bastion only from the admin CIDRs (dpc:access.adminCidrs), and the other machines only from the bastion.",
    severity=Severity.CRITICAL,
    remediation="Open port 22 only on the bastion's group (GCP: the bastion's network tag or service account; Azure: its application security group) "
    "from dpc:access.adminCidrs, and on the nodes only from the bastion (GCP: its tag or service account; Azure: its application security group).",
    check=_ssh_violations,
    clouds=("aws", "gcp", "azure-native"),
)


MACHINE_GROUP_PROPS = {
    "aws:ec2/instance:Instance": ("vpcSecurityGroupIds", "securityGroups"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("vpcSecurityGroupIds", "securityGroupNames", "networkInterfaces"),
    "aws:ec2/networkInterface:NetworkInterface": ("securityGroups",),
}
"""Where each kind of AWS machine (or its template, or its interface) names its security groups."""
NON_MACHINE_GROUP_PROPS = {"aws:lb/loadBalancer:LoadBalancer": ("securityGroups",), "aws:ec2/vpcEndpoint:VpcEndpoint": ("securityGroupIds",)}
_NON_MACHINE_ROLES = {LOAD_BALANCER_ROLE: "aws:lb/loadBalancer:LoadBalancer", SERVICE_ENDPOINTS_ROLE: "aws:ec2/vpcEndpoint:VpcEndpoint"}
_MACHINE_ROLES = {role.value for role in Role}


def attached_roles(resource: PolicyResource) -> set[str]:
    """The roles of the role groups an AWS machine, template, interface or balancer is attached to."""
    props = {**MACHINE_GROUP_PROPS, **NON_MACHINE_GROUP_PROPS}.get(resource.resource_type, ())
    return {str(role_of(g)) for prop in props for g in depends_through(resource, prop, SECURITY_GROUP) if role_of(g)}


def machine_role(resource: PolicyResource) -> str | None:
    """The one role an AWS machine has by what it is attached to (its security group), or None
    when it is attached to no role group or to several; its own tags say nothing.
    """
    roles = attached_roles(resource)
    return roles.pop() if len(roles) == 1 else None


def _refuse(resource: PolicyResource, public: list[str], role: str | None, what: str) -> Iterator[str]:
    if role not in public:
        yield f"{resource.name}: {what} of a {role or 'role-less'} machine (by what it is attached to) is public"


def _instance_ip(resource: PolicyResource, public: list[str]) -> Iterator[str]:
    if get(resource.props, "associatePublicIpAddress") is True:
        yield from _refuse(resource, public, machine_role(resource), "the address")


def _template_ip(resource: PolicyResource, public: list[str]) -> Iterator[str]:
    if any(str(get(i, "associatePublicIpAddress")).lower() == "true" for i in items(get(resource.props, "networkInterfaces"))):
        yield from _refuse(resource, public, machine_role(resource), "the launched address")


def _subnet_ip(resource: PolicyResource, public: list[str]) -> Iterator[str]:
    del public  # no machine's
    if get(resource.props, "mapPublicIpOnLaunch") is True:
        yield f"subnet {resource.name} gives every machine launched in it a public IP address: set mapPublicIpOnLaunch to false"


def _gcp_instance_ip(accounts: Sequence[PolicyResource], resource: PolicyResource, public: list[str]) -> Iterator[str]:
    for index, interface in enumerate(items(get(resource.props, "networkInterfaces"))):
        if items(get(interface, "accessConfigs")) or items(get(interface, "ipv6AccessConfigs")):
            yield from _refuse(resource, public, gcp_role(accounts, resource), f"network interface {index}")


def _azure_interface_ip(resource: PolicyResource, public: list[str]) -> Iterator[str]:
    for index, configuration in enumerate(items(get(resource.props, "ipConfigurations"))):
        if get(configuration, "publicIPAddress") is not None:
            yield from _refuse(resource, public, azure_role(resource), f"IP configuration {index}")


def _azure_machine_ip(resource: PolicyResource, public: list[str]) -> Iterator[str]:
    """A machine's own interface configurations (`networkProfile.networkInterfaceConfigurations`)
    that ask Azure for a public address; its separate interfaces are judged as interfaces.
    """
    for interface in items(get(resource.props, "networkProfile", "networkInterfaceConfigurations")):
        for index, configuration in enumerate(items(get(interface, "ipConfigurations"))):
            if get(configuration, "publicIPAddressConfiguration") is not None:
                yield from _refuse(resource, public, azure_role(resource), f"interface {get(interface, 'name')} IP configuration {index}")


_ELASTIC_IP_TARGETS = {
    "aws:ec2/eip:Eip": (("instance", "aws:ec2/instance:Instance"), ("networkInterface", "aws:ec2/networkInterface:NetworkInterface")),
    "aws:ec2/eipAssociation:EipAssociation": (("instanceId", "aws:ec2/instance:Instance"),
                                              ("networkInterfaceId", "aws:ec2/networkInterface:NetworkInterface")),
}
"""Where an Elastic IP, or its association, names the machine or interface it is on."""


def _elastic_ip_problems(resource: PolicyResource, public: list[str]) -> Iterator[str]:
    """An Elastic IP is a public address of the machine or interface it is associated with (a NAT
    gateway's takes it by allocation and is no machine's).
    """
    for prop, token in _ELASTIC_IP_TARGETS[resource.resource_type]:
        if peek(resource.props, prop) is None:
            continue
        machines = depends_through(resource, prop, token)
        if not machines:
            yield f"{resource.name}: an Elastic IP associated by {prop} with a machine this stack did not make"
        for machine in machines:
            if machine_role(machine) not in public:
                yield f"{resource.name}: an Elastic IP on {machine.name}, a {machine_role(machine) or 'role-less'} machine (by its security group)"


def account_role(account: PolicyResource) -> str | None:
    """The role a GCP service account of the stack is made for: the program names each `<stack>-<role>`."""
    role = str(get(account.props, "accountId")).rsplit("-", 1)[-1]
    return role if role in _MACHINE_ROLES else None


def gcp_account_roles(accounts: Sequence[PolicyResource], resource: PolicyResource, prop: str, emails: Sequence[Any]) -> list[str | None]:
    """The role of each service account `resource` names in `prop` (its `emails`): an account of this
    stack that the property was computed from, or whose id the e-mail's name is (the program writes
    the e-mails from the ids it chooses, known before the accounts exist, and an account id is unique in
    its project); None for an e-mail of no account of this stack (a literal one of another project).
    """
    made = depends_through(resource, prop, GCP_SERVICE_ACCOUNT)
    if made:
        return [account_role(a) for a in made] + [None] * max(len(emails) - len(made), 0)
    return [_named_account_role(accounts, email) for email in emails]


def _named_account_role(accounts: Sequence[PolicyResource], email: Any) -> str | None:
    """The role of the stack's account an e-mail names: the account's e-mail where the engine hands it,
    else what GCP makes of its id in its project (the account's own, or the stack's `dpc:gcp.project`;
    where neither is known, the id alone).
    """
    name, _, domain = str(email).partition("@")
    for account in accounts:
        known = peek(account.props, "email")
        if isinstance(known, str) and "@" in known:
            if known == str(email):
                return account_role(account)
            continue
        project = peek(account.props, "project")
        project = project if isinstance(project, str) else get(stack_setting("gcp"), "project")
        expected = f"{project}.iam.gserviceaccount.com" if project else None
        if name == str(peek(account.props, "accountId")) and (domain == expected if expected else domain.endswith(".iam.gserviceaccount.com")):
            return account_role(account)
    return None


def gcp_role(accounts: Sequence[PolicyResource], instance: PolicyResource) -> str | None:
    """A GCP machine's role: that of the service account of this stack it runs as."""
    email = peek(instance.props, "serviceAccount", "email")
    roles = set(gcp_account_roles(accounts, instance, "serviceAccount", [email] if email is not None else [])) - {None}
    return roles.pop() if len(roles) == 1 else None


def azure_group_roles(resource: PolicyResource) -> tuple[set[str], int]:
    """The roles of the application security groups of this stack an Azure interface or machine
    (its inline interface configurations) places its addresses in, and how many groups it lists
    that the stack did not make (a literal id: nothing says what it is).
    """
    prop = "ipConfigurations" if resource.resource_type == AZURE_NIC else "networkProfile"
    configurations = (known_items(peek(resource.props, "ipConfigurations")) if resource.resource_type == AZURE_NIC else
                      [c for i in known_items(peek(resource.props, "networkProfile", "networkInterfaceConfigurations"))
                       for c in known_items(peek(i, "ipConfigurations"))])
    made = depends_through(resource, prop, AZURE_ASG)
    listed = sum(length(peek(c, "applicationSecurityGroups")) for c in configurations)
    return {str(role_of(g)) for g in made if role_of(g)}, max(listed - len(made), 0)


def azure_role(resource: PolicyResource) -> str | None:
    """An Azure machine's role: that of the one application security group of this stack its
    interface (or, for a machine, each interface of this stack it uses) is in; None for none or several.
    """
    if resource.resource_type == AZURE_VM:
        roles = {azure_role(n) for n in depends_through(resource, "networkProfile", AZURE_NIC)} | azure_group_roles(resource)[0]
    else:
        roles = set(azure_group_roles(resource)[0])
    return roles.pop() if len(roles) == 1 and None not in roles else None


def identity_role(identity: PolicyResource) -> str | None:
    """The role a user-assigned identity of the stack is made for: the program names each `<...>-<role>`
    (as GCP's service accounts), and the name is what Azure lists in every grant to it.
    """
    role = str(get(identity.props, "resourceName")).rsplit("-", 1)[-1]
    return role if role in _MACHINE_ROLES else None


def azure_identity_roles(machine: PolicyResource) -> list[str | None]:
    """The roles of the user-assigned identities an Azure machine runs as, by the identities of
    this stack its `identity` was computed from (None for one it did not make: a literal id).
    """
    made = depends_through(machine, "identity", AZURE_IDENTITY)
    listed_ids = peek(machine.props, "identity", "userAssignedIdentities")  # ids as the program lists them; a map by id in Azure's answer
    listed = len(mapping(listed_ids)) or length(listed_ids)
    return [identity_role(i) for i in made] + [None] * max(listed - len(made), 0)


_PUBLIC_IP_CHECKS: dict[str, Callable[[PolicyResource, list[str]], Iterator[str]]] = {
    "aws:ec2/instance:Instance": _instance_ip,
    "aws:ec2/launchTemplate:LaunchTemplate": _template_ip,
    "aws:ec2/eip:Eip": _elastic_ip_problems,
    "aws:ec2/eipAssociation:EipAssociation": _elastic_ip_problems,
    "aws:ec2/subnet:Subnet": _subnet_ip,
    AZURE_NIC: _azure_interface_ip,
    AZURE_VM: _azure_machine_ip,
}


def _public_ip_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    public: list[str] = list(args.get_config()["publicRoles"])
    accounts = of_type(args, GCP_SERVICE_ACCOUNT)
    checks: dict[str, Callable[[PolicyResource, list[str]], Iterator[str]]] = {
        **_PUBLIC_IP_CHECKS, GCP_INSTANCE: lambda resource, roles: _gcp_instance_ip(accounts, resource, roles)}
    yield from judge_each(of_type(args, *checks), lambda resource: checks[resource.resource_type](resource, public))


NO_PUBLIC_IP_ON_NODES = stack_policy(
    "no-public-ip-on-nodes",
    "No machine but the bastion has a public IP address (its own, a launch template's, an Elastic IP's); a machine's role is that of "
    "the security group (GCP: service account, Azure: application security group) it is attached to, never its tag.",
    severity=Severity.HIGH,
    remediation="Remove the public address (associatePublicIpAddress false, no Elastic IP on the node, no GCP access config, no Azure public IP); "
    "reach the node through the bastion.",
    check=_public_ip_violations,
    clouds=("aws", "gcp", "azure-native"),
    config_schema=PolicyConfigSchema({"publicRoles": {"type": "array", "items": {"type": "string"}, "default": [Role.BASTION.value]}}),
)


def _unmade_groups(resource: PolicyResource, props: tuple[str, ...]) -> int:
    """How many of the groups a resource lists by id were not made by this stack (a literal id)."""
    listed = sum(length(peek(resource.props, prop)) for prop in props if prop != "networkInterfaces")
    made = sum(len(depends_through(resource, prop, SECURITY_GROUP)) for prop in props if prop != "networkInterfaces")
    return max(listed - made, 0)


def _attachment_problems(resource: PolicyResource) -> Iterator[str]:
    props = {**MACHINE_GROUP_PROPS, **NON_MACHINE_GROUP_PROPS}[resource.resource_type]
    if resource.resource_type == "aws:ec2/vpcEndpoint:VpcEndpoint" and peek(resource.props, "vpcEndpointType") == "Gateway":
        return  # a gateway endpoint is a route, not an interface: it has no group
    unmade = _unmade_groups(resource, props)
    if unmade:
        yield f"{resource.name} is attached to {unmade} security group(s) this stack did not make, so nothing says what it is"
    roles = attached_roles(resource)
    if len(roles) != 1:
        yield f"{resource.name} is attached to {'role groups ' + ', '.join(sorted(roles)) if roles else 'no role group'}: it must have exactly one role"
        return
    role = next(iter(roles))
    machine = resource.resource_type in MACHINE_GROUP_PROPS
    if machine and role not in _MACHINE_ROLES:
        owner = _NON_MACHINE_ROLES.get(role)
        yield f"{resource.name} is a machine attached to the {role} group, " + (f"which only the {owner} may use" if owner else "which is no role of the model")
    if not machine and _NON_MACHINE_ROLES.get(role) != resource.resource_type:
        yield f"{resource.name} is attached to the {role} group, which only {role} machines may use"
    tagged = peek(resource.props, "tags", "Role")
    if machine and tagged not in (None, UNKNOWN, role):
        yield f"{resource.name} is tagged Role {tagged} but attached to the {role} group: its tag does not make it one"


def _role_group_problems(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    """One group per role, owned by the program: a second group tagged with a role copies it
    (AWS security groups, Azure application security groups).
    """
    for token in (SECURITY_GROUP, AZURE_ASG):
        claimed: dict[str, list[PolicyResource]] = {}
        for group in of_type(args, token):
            if role_of(group):
                claimed.setdefault(str(role_of(group)), []).append(group)
        for role, groups in claimed.items():
            for copy in groups[1:]:
                yield (f"security group {copy.name} claims role {role}, which {groups[0].name} already has: one group per role", copy.urn)


def _azure_interface_problems(interface: PolicyResource) -> Iterator[str]:
    """An Azure interface is the role of its application security group; its own Role tag may only agree."""
    roles, unmade = azure_group_roles(interface)
    if unmade:
        yield f"{interface.name} is in {unmade} application security group(s) this stack did not make, so nothing says what it is"
    role = azure_role(interface)
    if role is None:
        groups = "the groups of " + ", ".join(sorted(roles)) if roles else "no role application security group"
        yield f"{interface.name} is in {groups}: it must have exactly one role"
    tagged = peek(interface.props, "tags", "Role")
    if role is not None and tagged not in (None, UNKNOWN, role):
        yield f"{interface.name} is tagged Role {tagged} but in the {role} application security group: its tag does not make it one"


def _azure_machine_problems(machine: PolicyResource) -> Iterator[str]:
    """An Azure machine is the role of its interface's application security group, and runs as
    that role's user-assigned identity alone (what its grants are given to), as a GCP machine's
    network tag is its service account's role; its Role tag may only agree.
    """
    role = azure_role(machine)
    if role is None:
        yield f"{machine.name} is in no one role's application security group of this stack"
    identities = azure_identity_roles(machine)
    if "systemassigned" in str(peek(machine.props, "identity", "type")).lower():
        yield f"{machine.name} has a system-assigned identity too: a principal of its own, outside its role's, which anything on it can use"
    if role is not None and identities != [role]:
        named = ", ".join(sorted(str(r or "not of this stack") for r in identities)) or "none"
        yield f"{machine.name} is in the {role} application security group but runs as the identities {named}: exactly its role's, {role}"
    tagged = peek(machine.props, "tags", "Role")
    if role is not None and tagged not in (None, UNKNOWN, role):
        yield f"{machine.name} is tagged Role {tagged} but in the {role} application security group: its tag does not make it one"


def _gcp_machine_problems(accounts: Sequence[PolicyResource], instance: PolicyResource) -> Iterator[str]:
    """A GCP machine is the role of the service account it runs as; its network tags, which place it
    under the firewall's rules, must be that role's tag alone, and a `role` label may only agree.
    """
    role = gcp_role(accounts, instance)
    if role is None:
        yield f"{instance.name} runs as no one role's service account of this stack"
    tags = sorted({str(t) for t in known_items(peek(instance.props, "tags"))})
    if role is not None and tags != [role]:
        yield f"{instance.name} runs as the {role} account but carries the network tags {', '.join(tags) or '(none)'}: exactly its role's tag, {role}"
    labelled = peek(instance.props, "labels", "role")
    if role is not None and labelled not in (None, UNKNOWN, role):
        yield f"{instance.name} is labelled role {labelled} but runs as the {role} account: its label does not make it one"


def _identity_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    accounts = of_type(args, GCP_SERVICE_ACCOUNT)
    yield from judge_each(of_type(args, GCP_INSTANCE), lambda instance: _gcp_machine_problems(accounts, instance))
    yield from _role_group_problems(args)
    yield from judge_each(of_type(args, *MACHINE_GROUP_PROPS, *NON_MACHINE_GROUP_PROPS), _attachment_problems)
    yield from judge_each(of_type(args, AZURE_NIC), _azure_interface_problems)
    yield from judge_each(of_type(args, AZURE_VM), _azure_machine_problems)


MACHINES_IDENTIFIED_BY_GROUPS = stack_policy(
    "machines-identified-by-their-groups",
    "A machine's network identity is the one role group it is attached to: each role has one security group, made by the program "
    "and used only by that role's machines (the balancer's and the endpoints' groups by them alone); a tag that says otherwise "
    "or a group id the stack did not make is refused. On GCP a machine is the role of the service account of this stack it runs as, "
    "and carries that role's network tag alone (the tag is what the firewall's rules apply to); on Azure a machine is the role of its "
    "interface's one application security group of this stack, and runs as that role's user-assigned identity alone.",
    severity=Severity.HIGH,
    remediation="Attach each machine (instance, launch template, interface) to the one group the network component made for its role, "
    "never to a second group, a copy of one, or a literal group id; tag no second group with a role. On GCP run each machine as its "
    "role's service account and give it that role's network tag only. On Azure put each interface in its role's application security "
    "group alone and give the machine its role's user-assigned identity alone.",
    check=_identity_violations,
    clouds=("aws", "gcp", "azure-native"),
)


def _default_group_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    default_group = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
    for group in of_type(args, default_group):
        if items(get(group.props, "ingress")) or items(get(group.props, "egress")):
            yield (f"default security group {group.name} still has rules", group.urn)
    for vpc in of_type(args, "aws:ec2/vpc:Vpc"):
        if not attached_to(args, vpc, "vpcId", default_group):
            yield (f"VPC {vpc.name}'s default security group is not adopted and emptied (aws.ec2.DefaultSecurityGroup)", vpc.urn)
    for network in of_type(args, "gcp:compute/network:Network"):
        if get(network.props, "autoCreateSubnetworks") is not False:
            yield (f"network {network.name} is an auto-mode network: set autoCreateSubnetworks to false", network.urn)
    yield from judge_each(of_type(args, AZURE_NSG), lambda group: _azure_group_closed(args, group))
    yield from judge_each(of_type(args, AZURE_VNET, AZURE_SUBNET), _azure_subnet_guarded)


AZURE_DEFAULT_RULES_PRIORITY = 65000
"""Where Azure's default rules begin (AllowVnetInBound, AllowAzureLoadBalancerInBound,
DenyAllInBound): a rule of the stack must come before them to overrule them."""


def _everywhere(rule: AzureRule, side: str) -> bool:
    prefixes = [p.lower() for p in _azure_prefixes(rule.props, side)]
    return bool(prefixes) and all(p in ("*", "any", "0.0.0.0/0") for p in prefixes) and not items(get(rule.props, f"{side}ApplicationSecurityGroups"))


def _denies_everything_in(rule: AzureRule) -> bool:
    """An inbound Deny of every protocol and port, from everywhere to everything, before Azure's defaults."""
    priority = get(rule.props, "priority")
    return (get(rule.props, "direction") == "Inbound" and get(rule.props, "access") == "Deny" and _protocol(get(rule.props, "protocol")) == "all"
            and [str(t) for t in _azure_port_texts(rule.props)] == ["*"] and _everywhere(rule, "source") and _everywhere(rule, "destination")
            and priority is not None and int(priority) < AZURE_DEFAULT_RULES_PRIORITY)


def _azure_group_closed(args: StackValidationArgs, group: PolicyResource) -> Iterator[str]:
    """A network security group ends in an explicit deny-all inbound: Azure's default rule 65000
    (AllowVnetInBound) would otherwise admit every machine of the virtual network (and of the networks
    peered with it) to every port, whatever the matrix says. Its own rules and the SecurityRule
    resources of this stack made for it alike.
    """
    rules = [rule for declared in [group, *attached_to(args, group, "networkSecurityGroupName", AZURE_RULE)] for rule in azure_rules(declared)]
    if not any(_denies_everything_in(rule) for rule in rules):
        yield (f"network security group {group.name} has no explicit deny-all inbound rule before Azure's defaults: "
               "AllowVnetInBound (65000) admits the whole virtual network")


def _azure_subnet_guarded(resource: PolicyResource) -> Iterator[str]:
    """Every subnet is under a network security group (of this stack, for a Subnet resource):
    a machine in a subnet without one is open to the whole virtual network.
    """
    if resource.resource_type == AZURE_SUBNET:
        if not depends_through(resource, "networkSecurityGroup", AZURE_NSG):
            yield f"subnet {resource.name} is under no network security group of this stack"
        return
    for subnet in items(get(resource.props, "subnets")):
        if get(subnet, "networkSecurityGroup") is None:
            yield f"subnet {get(subnet, 'name')} of {resource.name} is under no network security group"


DEFAULT_GROUP_CLOSED = stack_policy(
    "default-security-group-closed",
    "The VPC's default security group allows nothing, so a machine left without a group is isolated; GCP networks are custom-mode; "
    "every Azure subnet is under a network security group that ends in an explicit deny-all inbound (Azure's defaults admit the whole VNet).",
    severity=Severity.MEDIUM,
    remediation="Adopt each VPC's default security group with aws.ec2.DefaultSecurityGroup and no ingress or egress; on GCP set autoCreateSubnetworks false; "
    "on Azure attach a network security group to every subnet with an inbound Deny of * from * to * at a priority under 65000.",
    check=_default_group_violations,
    clouds=("aws", "gcp", "azure-native"),
)


def _flow_log_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    for vpc in of_type(args, "aws:ec2/vpc:Vpc"):
        if not any(get(f.props, "trafficType") == "ALL" for f in attached_to(args, vpc, "vpcId", "aws:ec2/flowLog:FlowLog")):
            yield (f"VPC {vpc.name} has no flow log of ALL traffic", vpc.urn)
    for subnet in of_type(args, "gcp:compute/subnetwork:Subnetwork"):
        if get(subnet.props, "logConfig") is None:
            yield (f"subnetwork {subnet.name} has no flow logs (logConfig)", subnet.urn)
    for network in of_type(args, AZURE_VNET):
        if not attached_to(args, network, "targetResourceId", "azure-native:network:FlowLog"):
            yield (f"virtual network {network.name} has no flow log", network.urn)


FLOW_LOGS_ON = stack_policy(
    "flow-logs-on",
    "Every network records its flows, so that an incident can be traced.",
    severity=Severity.MEDIUM,
    remediation="Add an aws.ec2.FlowLog with trafficType ALL per VPC, logConfig on each GCP subnetwork, an Azure FlowLog per virtual network.",
    check=_flow_log_violations,
    clouds=("aws", "gcp", "azure-native"),
)

_MEMBERS = {spec.network_name: spec.members for spec in TIERS}
"""The kinds of service each overlay network admits, by the network's name."""


def _membership_problem(service: str, kind: str, network: str) -> str | None:
    """Why `service`, of `kind`, may not join the network named `network`; None when it may."""
    if network not in _MEMBERS:
        return f"service {service} joins {network}, which is not one of the overlay networks of design §2.2"
    if kind not in _MEMBERS[network]:
        return f"service {service} (kind {kind}) joins {network}, whose members are {', '.join(_MEMBERS[network])}"
    return None


def service_kinds(service: PolicyResource, specs: Sequence[ServiceSpec]) -> set[str]:
    """What a planned Swarm service is, by the program's own service list (dpc/services.py): the
    kinds of the specs whose image and command it runs. A project image is recognised by the build
    it depends on (`images/<key>`), a vendor image by its reference; the service's name counts for
    nothing, so a service renamed after another is still what it runs.
    """
    container = peek(service.props, "taskSpec", "containerSpec")
    if known_items(peek(container, "commands")):
        return set()
    command = tuple(str(a) for a in known_items(peek(container, "args")))
    image = peek(container, "image")
    builds = {str(peek(i.props, "build", "context")) for i in depends_through(service, "taskSpec", DOCKER_IMAGE)}
    kinds: set[str] = set()
    for spec in specs:
        built = BUILT_IMAGES.get(spec.image)
        if spec.command == command and (built in builds if built else image == spec.image):
            kinds.add(service_kind(spec.name))
    return kinds


def _service_problems(service: PolicyResource, specs: Sequence[ServiceSpec] | None) -> Iterator[str]:
    name = str(peek(service.props, "name"))
    networks = depends_through(service, "taskSpec", DOCKER_NETWORK)
    unresolved = length(peek(service.props, "taskSpec", "networksAdvanceds")) - len(networks)
    if unresolved > 0:
        yield f"service {name} joins {unresolved} network(s) that this stack did not make, so nothing says it may join them"
    kinds = service_kinds(service, specs or ())
    if not kinds:
        yield (f"service {name} runs an image and command that none of the program's services runs (dpc/services.py), "
               "so nothing says which networks it may join")
    for network in networks:
        for kind in sorted(kinds):
            problem = _membership_problem(name, kind, str(peek(network.props, "name")))
            if problem:
                yield problem


def _overlay_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    """Each Swarm service against the members of every overlay network it joins, the service
    known by what it runs (`service_kinds`).

    A service names its networks by id (`taskSpec.networksAdvanceds[].id`), unknown during a
    preview; the networks are found instead through the engine's property dependencies of
    `taskSpec` and named by their `name` input. An attachment that no Network resource of the stack
    accounts for (a literal id, a network made elsewhere) cannot be checked and is reported.
    """
    services = of_type(args, DOCKER_SERVICE)
    specs = program_services() if services else ()
    yield from judge_each(services, lambda service: _service_problems(service, specs))


SERVICES_ONLY_ON_THEIR_NETWORKS = stack_policy(
    "services-only-on-their-overlay-networks",
    "Each Swarm service joins only the overlay networks whose members (dpc/tiers.py, design §2.2) include its kind.",
    severity=Severity.HIGH,
    remediation="Take the network out of the service's networks (dpc/services.py), or, if the service really needs it, "
    "add its kind to that network's TierSpec.members in dpc/tiers.py with the reason.",
    check=_overlay_violations,
    clouds=("docker",),
)

def _balancer_problems(balancer: PolicyResource, clients: bool) -> Iterator[str]:
    match balancer.resource_type:
        case "aws:lb/loadBalancer:LoadBalancer":
            public = get(balancer.props, "internal") is not True
        case "gcp:compute/forwardingRule:ForwardingRule" | "gcp:compute/globalForwardingRule:GlobalForwardingRule":
            public = not str(get(balancer.props, "loadBalancingScheme") or "EXTERNAL").startswith("INTERNAL")
        case _:
            public = any(get(f, "publicIPAddress") is not None for f in items(get(balancer.props, "frontendIPConfigurations")))
    if public and not clients:
        yield f"{balancer.name} faces the internet while the stack names no client networks (dpc:access.clientCidrs): make it internal"


def _balancer_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    clients = bool(client_cidrs())
    balancers = of_type(args, "aws:lb/loadBalancer:LoadBalancer", "gcp:compute/forwardingRule:ForwardingRule",
                        "gcp:compute/globalForwardingRule:GlobalForwardingRule", "azure-native:network:LoadBalancer")
    yield from judge_each(balancers, lambda balancer: _balancer_problems(balancer, clients))


LOAD_BALANCERS_INTERNAL = stack_policy(
    "load-balancers-internal",
    "The database endpoint's load balancer is internal unless the stack names client networks outside the VPC (dpc:access.clientCidrs), "
    "as the model decides (GCP: an INTERNAL scheme; Azure: no public frontend).",
    severity=Severity.HIGH,
    remediation="Set internal=True (GCP load_balancing_scheme INTERNAL, Azure a private frontend), or list the clients in dpc:access.clientCidrs.",
    check=_balancer_violations,
    clouds=("aws", "gcp", "azure-native"),
)

POLICIES = [
    LOAD_BALANCERS_INTERNAL,
    NO_INGRESS_FROM_ANYWHERE, FIREWALL_MATRIX_ONLY, SSH_ONLY_TO_BASTION, NO_PUBLIC_IP_ON_NODES, MACHINES_IDENTIFIED_BY_GROUPS, DEFAULT_GROUP_CLOSED,
    FLOW_LOGS_ON,
    SERVICES_ONLY_ON_THEIR_NETWORKS,
]
