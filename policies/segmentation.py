"""Segmentation: nothing reachable from the internet but the listeners a stack allows, every port
reachable only from where the firewall matrix of `dpc/model.py` says, SSH only from the admins to
the bastion, no public address on a node, the default security group closed, flow logs on; inside
the Swarm, each service only on the overlay networks whose members (`dpc/tiers.py`) include it.

The matrix is read as data, but the check works on the flows the planned rules allow, whichever
code made them: on AWS each security-group rule's target and source are found through the engine's
property dependencies and named by the `Role` tag of their security group; on GCP each firewall
rule's targets and sources are its network tags (named after the roles) and service accounts, a
rule naming no source admitting 0.0.0.0/0 as GCP does. What differs by cloud (where the load
balancer's traffic comes from) is translated as data (`CloudMatrix`), never read from the providers.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Iterator, Sequence
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
_PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "esp": "esp", "50": "esp", "-1": "all", "all": "all"}
_AZURE_ANYWHERE = ("*", "0.0.0.0/0", "::/0", "internet", "any")


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
    found: list[Ingress] = []

    def collect(resource: PolicyResource) -> list[str]:
        found.extend(_flows_of(args, resource))
        return []

    for _ in judge_each(of_type(args, INGRESS_RULE, LEGACY_RULE, SECURITY_GROUP), collect):
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
    found: list[Ingress] = []
    accounts = of_type(args, GCP_SERVICE_ACCOUNT)

    def collect(firewall: PolicyResource) -> list[str]:
        if get(firewall.props, "direction") not in (None, "INGRESS") or get(firewall.props, "disabled") is True:
            return []
        targets, sources = _gcp_targets(accounts, firewall), _gcp_sources(accounts, firewall)
        for allow in items(get(firewall.props, "allows")):
            protocol = _protocol(get(allow, "protocol"))
            for ports in ([(0, 0)] if protocol == "esp" else _gcp_port_ranges(allow)):
                found.extend(Ingress(firewall.urn, firewall.name, target, group, protocol, ports, cidr, source, from_group=cidr is None)
                             for target, group in targets for cidr, source in sources)
        return []

    for _ in judge_each(of_type(args, GCP_FIREWALL), collect):
        pass
    return found


def _azure_port_texts(rule: Any) -> list[Any]:
    """A security rule's destination ports as written: one range, several, or `*`."""
    return [r for r in (get(rule, "destinationPortRange"), *items(get(rule, "destinationPortRanges"))) if r is not None]


def _azure_ports(text: Any) -> tuple[int, int]:
    return _ALL_PORTS if text == "*" else _parse_range(str(text))


def _azure_prefixes(rule: Any) -> list[str]:
    return [str(p) for p in (get(rule, "sourceAddressPrefix"), *items(get(rule, "sourceAddressPrefixes"))) if p is not None]


def _azure_open_to_internet(rule: Any) -> bool:
    """An Azure rule's sources reach the internet: `*`, the Internet or Any tag, or ranges that cover public space."""
    prefixes = _azure_prefixes(rule)
    return any(p.lower() in _AZURE_ANYWHERE for p in prefixes) or covers_public_space(prefixes)


def _azure_open(name: str, rule: Any, allowed: list[int]) -> Iterator[str]:
    if get(rule, "direction") != "Inbound" or get(rule, "access") != "Allow" or not _azure_open_to_internet(rule):
        return
    protocol = _protocol(get(rule, "protocol"))
    for text in _azure_port_texts(rule):
        if not _allowed_publicly(allowed, protocol, _azure_ports(text)):
            yield f"rule {get(rule, 'name') or name} allows {text} from the internet"


def azure_rules(declared: PolicyResource) -> list[tuple[PolicyResource | None, Any]]:
    """The Azure security rules a resource declares, each with its network security group: the
    rules inside a group, or a separately managed SecurityRule, whose group is the one its
    networkSecurityGroupName was computed from.
    """
    if declared.resource_type == AZURE_NSG:
        return [(declared, rule) for rule in items(get(declared.props, "securityRules"))]
    groups = depends_through(declared, "networkSecurityGroupName", AZURE_NSG)
    return [(groups[0] if groups else None, declared.props)]


def _open_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    allowed: list[int] = list(args.get_config()["allowedPorts"])
    yield from _open(ingresses(args), allowed)
    yield from _open(gcp_ingresses(args), allowed)
    yield from judge_each(of_type(args, AZURE_NSG, AZURE_RULE),
                          lambda declared: [m for _, rule in azure_rules(declared) for m in _azure_open(declared.name, rule, allowed)])


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


def _client_networks(args: StackValidationArgs) -> Networks:
    """Where clients may come from: the stack's client CIDRs, or the VPC itself when it lists none
    (the model keeps the endpoint internal then).
    """
    return client_cidrs() or _vpc_networks(args)


def _vpc_networks(args: StackValidationArgs) -> Networks:
    """The stack's own address space: its AWS VPCs' blocks; on GCP, whose networks have no range of
    their own, its subnetworks' ranges and the range the stack gives its network (`dpc:network.vpcCidr`).
    """
    aws = [ipaddress.ip_network(str(get(v.props, "cidrBlock"))) for v in of_type(args, "aws:ec2/vpc:Vpc") if get(v.props, "cidrBlock")]
    subnetworks = of_type(args, "gcp:compute/subnetwork:Subnetwork")
    gcp = [ipaddress.ip_network(str(get(s.props, "ipCidrRange"))) for s in subnetworks if get(s.props, "ipCidrRange")]
    stated = get(stack_setting("network"), "vpcCidr") if subnetworks else None
    return [*aws, *gcp, *([ipaddress.ip_network(str(stated))] if stated else [])]


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
    reported: set[tuple[str, str]] = set()
    for flow in gcp_ingresses(args):
        if flow.target is None:
            problem = (f"{flow.name}: the rule applies to a tag or service account of no role of this stack, so nothing says what it may open", flow.urn)
        elif not _in_matrix(flow, networks, GCP_MATRIX):
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
    clouds=("aws", "gcp"),
)


def _flow_ssh(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    """AWS and GCP alike, on the flows their rules allow (a GCP machine's tag is held to its service
    account's role by `machines-identified-by-their-groups`).
    """
    admins = admin_cidrs()
    for flow in [*ingresses(args), *gcp_ingresses(args)]:
        if not flow.covers(SSH_PORT):
            continue
        if flow.cidr is not None and (flow.target != Role.BASTION.value or not within(flow.cidr, admins)):
            yield (f"{flow.describe()}: SSH from a network may only reach the bastion, from the admin CIDRs", flow.urn)
        if flow.cidr is None and flow.source != Role.BASTION.value:
            yield (f"{flow.describe()}: SSH between machines may only come from the bastion", flow.urn)


def _admits_ssh(rule: Any) -> bool:
    """An inbound Allow rule that admits TCP port 22."""
    if get(rule, "direction") != "Inbound" or get(rule, "access") != "Allow" or _protocol(get(rule, "protocol")) not in ("tcp", "all", "*"):
        return False
    return any(low <= SSH_PORT <= high for low, high in (_azure_ports(text) for text in _azure_port_texts(rule)))


def _azure_ssh(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    """Azure: the bastion's group admits SSH only from the admin CIDRs; every other group only from
    the bastion's application security group (an address prefix there, even the virtual network's,
    would let any machine in). Rules inside a group and separate SecurityRule resources alike.
    """
    admins = admin_cidrs()
    yield from judge_each(of_type(args, AZURE_NSG, AZURE_RULE), lambda declared: _azure_ssh_problems(declared, admins))


def _azure_ssh_problems(declared: PolicyResource, admins: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> Iterator[str]:
    for group, rule in azure_rules(declared):
        if not _admits_ssh(rule):
            continue
        bastion = group is not None and get(group.props, "tags", "Role") == Role.BASTION.value
        prefixes = _azure_prefixes(rule)
        where = f"network security group {group.name if group else '(not one of this stack)'}, rule {get(rule, 'name') or declared.name}"
        if bastion and (not prefixes or not all(_is_cidr(p) and within(p, admins) for p in prefixes)):
            yield f"{where}: SSH to the bastion only from the admin CIDRs"
        if not bastion and (prefixes or not items(get(rule, "sourceApplicationSecurityGroups"))):
            yield f"{where}: SSH to a node only from the bastion's application security group"


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _ssh_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    yield from _flow_ssh(args)
    yield from _azure_ssh(args)


SSH_ONLY_TO_BASTION = stack_policy(
    "ssh-only-from-admins-to-bastion",
    "SSH reaches the bastion only from the admin CIDRs (dpc:access.adminCidrs), and the other machines only from the bastion.",
    severity=Severity.CRITICAL,
    remediation="Open port 22 only on the bastion's group (GCP: the bastion's network tag or service account; Azure: the NSG tagged Role bastion) "
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


def azure_role(interface: PolicyResource) -> str | None:
    """An Azure interface's role: that of the network security group it is attached to."""
    roles = {str(get(g.props, "tags", "Role")) for g in depends_through(interface, "networkSecurityGroup", AZURE_NSG)} & _MACHINE_ROLES
    return roles.pop() if len(roles) == 1 else None


_PUBLIC_IP_CHECKS: dict[str, Callable[[PolicyResource, list[str]], Iterator[str]]] = {
    "aws:ec2/instance:Instance": _instance_ip,
    "aws:ec2/launchTemplate:LaunchTemplate": _template_ip,
    "aws:ec2/eip:Eip": _elastic_ip_problems,
    "aws:ec2/eipAssociation:EipAssociation": _elastic_ip_problems,
    "aws:ec2/subnet:Subnet": _subnet_ip,
    "azure-native:network:NetworkInterface": _azure_interface_ip,
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
    "the security group (GCP: service account, Azure: network security group) it is attached to, never its tag.",
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
    (AWS security groups, Azure network security groups).
    """
    for token in (SECURITY_GROUP, AZURE_NSG):
        claimed: dict[str, list[PolicyResource]] = {}
        for group in of_type(args, token):
            if role_of(group):
                claimed.setdefault(str(role_of(group)), []).append(group)
        for role, groups in claimed.items():
            for copy in groups[1:]:
                yield (f"security group {copy.name} claims role {role}, which {groups[0].name} already has: one group per role", copy.urn)


def _azure_interface_problems(interface: PolicyResource) -> Iterator[str]:
    """An Azure interface is its network security group's role; its own Role tag may only agree."""
    role = azure_role(interface)
    if role is None:
        yield f"{interface.name} is attached to no one role's network security group of this stack"
    tagged = peek(interface.props, "tags", "Role")
    if role is not None and tagged not in (None, UNKNOWN, role):
        yield f"{interface.name} is tagged Role {tagged} but attached to the {role} network security group: its tag does not make it one"


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
    yield from judge_each(of_type(args, "azure-native:network:NetworkInterface"), _azure_interface_problems)


MACHINES_IDENTIFIED_BY_GROUPS = stack_policy(
    "machines-identified-by-their-groups",
    "A machine's network identity is the one role group it is attached to: each role has one security group, made by the program "
    "and used only by that role's machines (the balancer's and the endpoints' groups by them alone); a tag that says otherwise "
    "or a group id the stack did not make is refused. On GCP a machine is the role of the service account of this stack it runs as, "
    "and carries that role's network tag alone (the tag is what the firewall's rules apply to).",
    severity=Severity.HIGH,
    remediation="Attach each machine (instance, launch template, interface) to the one group the network component made for its role, "
    "never to a second group, a copy of one, or a literal group id; tag no second group with a role. On GCP run each machine as its "
    "role's service account and give it that role's network tag only.",
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


DEFAULT_GROUP_CLOSED = stack_policy(
    "default-security-group-closed",
    "The VPC's default security group allows nothing, so a machine left without a group is isolated; GCP networks are custom-mode.",
    severity=Severity.MEDIUM,
    remediation="Adopt each VPC's default security group with aws.ec2.DefaultSecurityGroup and no ingress or egress; on GCP set autoCreateSubnetworks false.",
    check=_default_group_violations,
    clouds=("aws", "gcp"),
)


def _flow_log_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    for vpc in of_type(args, "aws:ec2/vpc:Vpc"):
        if not any(get(f.props, "trafficType") == "ALL" for f in attached_to(args, vpc, "vpcId", "aws:ec2/flowLog:FlowLog")):
            yield (f"VPC {vpc.name} has no flow log of ALL traffic", vpc.urn)
    for subnet in of_type(args, "gcp:compute/subnetwork:Subnetwork"):
        if get(subnet.props, "logConfig") is None:
            yield (f"subnetwork {subnet.name} has no flow logs (logConfig)", subnet.urn)
    for network in of_type(args, "azure-native:network:VirtualNetwork"):
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
