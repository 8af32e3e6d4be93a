"""Segmentation: nothing reachable from the internet but the listeners a stack allows, every port
reachable only from where the firewall matrix of `dpc/model.py` says, SSH only from the admins to
the bastion, no public address on a node, the default security group closed, flow logs on; inside
the Swarm, each service only on the overlay networks whose members (`dpc/tiers.py`) include it.

The matrix is read as data, but the check works on the security-group rules actually planned:
each rule's target and source are found through the engine's property dependencies and named by
the `Role` tag of their security group, so a rule the program should not have made is caught
whichever code made it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyConfigSchema, PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs

from dpc.model import FIREWALL_MATRIX, FromCidrs, FromLoadBalancer, FromRole, Role, Rule
from dpc.tiers import TIERS, service_kind
from policies.common import admin_cidrs, attached_to, client_cidrs, depends_through, get, items, mapping, of_type, resource_policy, stack_policy, within

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
AZURE_NSG = "azure-native:network:NetworkSecurityGroup"
DOCKER_SERVICE = "docker:index/service:Service"
DOCKER_NETWORK = "docker:index/network:Network"
LOAD_BALANCER_ROLE = "load-balancer"
"""The `Role` tag of the load balancer's own security group (the matrix's rules with no target role)."""
SERVICE_ENDPOINTS_ROLE = "endpoints"
"""The `Role` tag of the group of the cloud's service endpoints (VPC interface endpoints): no
machine of the firewall matrix; it accepts HTTPS from inside the VPC and nothing else."""

SSH_PORT = 22
_ALL_PORTS = (0, 65535)
_PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "esp": "esp", "50": "esp", "-1": "all", "all": "all"}
_AZURE_ANYWHERE = ("*", "0.0.0.0/0", "::/0", "internet", "any")


@dataclass(frozen=True)
class Ingress:
    """One planned inbound flow on AWS: into `target`'s machines, from a network or a group."""

    urn: str
    name: str
    target: PolicyResource | None
    protocol: str
    ports: tuple[int, int]
    cidr: str | None
    source: PolicyResource | None

    def covers(self, port: int) -> bool:
        """Whether the flow lets TCP traffic reach `port`."""
        return self.protocol in ("tcp", "all") and self.ports[0] <= port <= self.ports[1]

    def describe(self) -> str:
        """The flow as a reviewer reads it: `name: tcp 5432 from 0.0.0.0/0 to manager`."""
        ports = "" if self.protocol == "esp" else f" {self.ports[0]}" if self.ports[0] == self.ports[1] else f" {self.ports[0]}-{self.ports[1]}"
        origin = self.cidr or (role_of(self.source) if self.source else "an unresolvable source")
        return f"{self.name}: {self.protocol}{ports} from {origin} to {role_of(self.target) if self.target else 'an unknown group'}"


def role_of(group: PolicyResource | None) -> str | None:
    """The role a security group guards, from its `Role` tag."""
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
    """Every inbound flow the stack's AWS security groups allow, whichever resource declares it."""
    found: list[Ingress] = []
    for rule in of_type(args, INGRESS_RULE):
        protocol = _protocol(get(rule.props, "ipProtocol"))
        cidr = get(rule.props, "cidrIpv4") or get(rule.props, "cidrIpv6")
        found.append(Ingress(rule.urn, rule.name, _one_group(rule, "securityGroupId"), protocol, _ports(protocol, rule.props), cidr,
                             _one_group(rule, "referencedSecurityGroupId")))
    for rule in of_type(args, LEGACY_RULE):
        if get(rule.props, "type") != "ingress":
            continue
        target, protocol = _one_group(rule, "securityGroupId"), _protocol(get(rule.props, "protocol"))
        found.extend(_cidr_and_group_flows(rule, target, protocol, rule.props, _one_group(rule, "sourceSecurityGroupId")))
    for group in of_type(args, SECURITY_GROUP):
        for entry in items(get(group.props, "ingress")):
            protocol = _protocol(get(entry, "protocol"))
            found.extend(_cidr_and_group_flows(group, group, protocol, entry, None))
    return found


def _cidr_and_group_flows(declared: PolicyResource, target: PolicyResource | None, protocol: str, props: Any,
                          source: PolicyResource | None) -> list[Ingress]:
    """The flows of a rule that lists CIDR blocks and may name a group, itself (`self`) or others."""
    ports = _ports(protocol, props)
    cidrs = [*items(get(props, "cidrBlocks")), *items(get(props, "ipv6CidrBlocks"))]
    flows = [Ingress(declared.urn, declared.name, target, protocol, ports, cidr, None) for cidr in cidrs]
    if get(props, "self") is True:
        flows.append(Ingress(declared.urn, declared.name, target, protocol, ports, None, target))
    if source is not None or items(get(props, "securityGroups")) or get(props, "sourceSecurityGroupId"):
        flows.append(Ingress(declared.urn, declared.name, target, protocol, ports, None, source))
    return flows


def _is_anywhere(cidr: str) -> bool:
    return ipaddress.ip_network(cidr, strict=False).prefixlen == 0


def _parse_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return (int(low), int(high or low))


def _allowed_publicly(args: ResourceValidationArgs, protocol: str, ports: tuple[int, int]) -> bool:
    allowed: list[int] = list(args.get_config()["allowedPorts"])
    return protocol in ("tcp", "udp") and all(port in allowed for port in range(ports[0], ports[1] + 1))


def _open_rule(args: ResourceValidationArgs, props: Any, protocol: str, cidrs: list[str]) -> Iterator[str]:
    ports = _ports(protocol, props)
    for cidr in cidrs:
        if _is_anywhere(cidr) and not _allowed_publicly(args, protocol, ports):
            yield f"{protocol} {ports[0]}-{ports[1]} is open to {cidr}"


def _aws_ingress_rule(args: ResourceValidationArgs) -> Iterator[str]:
    cidrs = [c for c in (get(args.props, "cidrIpv4"), get(args.props, "cidrIpv6")) if c]
    yield from _open_rule(args, args.props, _protocol(get(args.props, "ipProtocol")), cidrs)


def _aws_legacy_rule(args: ResourceValidationArgs) -> Iterator[str]:
    if get(args.props, "type") == "ingress":
        cidrs = [*items(get(args.props, "cidrBlocks")), *items(get(args.props, "ipv6CidrBlocks"))]
        yield from _open_rule(args, args.props, _protocol(get(args.props, "protocol")), cidrs)


def _aws_group(args: ResourceValidationArgs) -> Iterator[str]:
    for entry in items(get(args.props, "ingress")):
        cidrs = [*items(get(entry, "cidrBlocks")), *items(get(entry, "ipv6CidrBlocks"))]
        yield from _open_rule(args, entry, _protocol(get(entry, "protocol")), cidrs)


def _gcp_port_ranges(allow: Any) -> list[tuple[int, int]]:
    return [_parse_range(str(p)) for p in items(get(allow, "ports"))] or [_ALL_PORTS]


def _gcp_firewall(args: ResourceValidationArgs) -> Iterator[str]:
    if get(args.props, "direction") not in (None, "INGRESS"):
        return
    open_ranges = [c for c in items(get(args.props, "sourceRanges")) if _is_anywhere(str(c))]
    for allow in items(get(args.props, "allows")):
        protocol = _protocol(get(allow, "protocol"))
        for ports in _gcp_port_ranges(allow):
            if open_ranges and not _allowed_publicly(args, protocol, ports):
                yield f"{protocol} {ports[0]}-{ports[1]} is open to {', '.join(open_ranges)}"


def _azure_port_texts(rule: Any) -> list[Any]:
    """A security rule's destination ports as written: one range, several, or `*`."""
    return [r for r in (get(rule, "destinationPortRange"), *items(get(rule, "destinationPortRanges"))) if r is not None]


def _azure_ports(text: Any) -> tuple[int, int]:
    return _ALL_PORTS if text == "*" else _parse_range(str(text))


def _azure_rule_problems(args: ResourceValidationArgs, rule: Any) -> Iterator[str]:
    if get(rule, "direction") != "Inbound" or get(rule, "access") != "Allow":
        return
    prefixes = [get(rule, "sourceAddressPrefix"), *items(get(rule, "sourceAddressPrefixes"))]
    if not any(str(p).lower() in _AZURE_ANYWHERE for p in prefixes if p is not None):
        return
    protocol = _protocol(get(rule, "protocol"))
    for text in _azure_port_texts(rule):
        if not _allowed_publicly(args, protocol, _azure_ports(text)):
            yield f"rule {get(rule, 'name') or args.name} allows {text} from anywhere"


def _azure_nsg(args: ResourceValidationArgs) -> Iterator[str]:
    for rule in items(get(args.props, "securityRules")):
        yield from _azure_rule_problems(args, rule)


def _azure_security_rule(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _azure_rule_problems(args, args.props)


NO_INGRESS_FROM_ANYWHERE = resource_policy(
    "no-ingress-from-anywhere",
    "No inbound rule is open to 0.0.0.0/0 or ::/0, except on the listener ports the config allows.",
    severity=Severity.CRITICAL,
    remediation="Narrow the source to the networks that need the port (dpc:access.clientCidrs or adminCidrs), "
    "or list the port in this policy's allowedPorts if it is a deliberate public listener.",
    checks={
        INGRESS_RULE: _aws_ingress_rule,
        LEGACY_RULE: _aws_legacy_rule,
        SECURITY_GROUP: _aws_group,
        GCP_FIREWALL: _gcp_firewall,
        AZURE_NSG: _azure_nsg,
        "azure-native:network:SecurityRule": _azure_security_rule,
    },
    config_schema=PolicyConfigSchema({"allowedPorts": {"type": "array", "items": {"type": "integer"}, "default": []}}),
)


def _client_networks(args: StackValidationArgs) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Where clients may come from: the stack's client CIDRs, or the VPC itself when it lists none
    (the model keeps the endpoint internal then).
    """
    return client_cidrs() or _vpc_networks(args)


def _vpc_networks(args: StackValidationArgs) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(str(get(v.props, "cidrBlock"))) for v in of_type(args, "aws:ec2/vpc:Vpc") if get(v.props, "cidrBlock")]


def _source_matches(rule: Rule, flow: Ingress, networks: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]]) -> bool:
    match rule.source:
        case FromRole(role):
            return flow.source is not None and role_of(flow.source) == role.value
        case FromLoadBalancer():
            return flow.source is not None and role_of(flow.source) == LOAD_BALANCER_ROLE
        case FromCidrs(kind):
            return flow.cidr is not None and within(flow.cidr, networks[kind])


def _in_matrix(flow: Ingress, networks: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]]) -> bool:
    target = role_of(flow.target)
    for rule in FIREWALL_MATRIX:
        rule_target = rule.to.value if rule.to else LOAD_BALANCER_ROLE
        if (rule_target == target and rule.protocol == flow.protocol and rule.port <= flow.ports[0] and flow.ports[1] <= rule.to_port
                and _source_matches(rule, flow, networks)):
            return True
    return False


def _matrix_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    networks = {"admin": admin_cidrs(), "clients": _client_networks(args)}
    for flow in ingresses(args):
        if flow.target is None or role_of(flow.target) is None:
            yield (f"{flow.name}: the rule's security group is not one of the stack's role groups (no Role tag), so nothing says what it may open", flow.urn)
        elif role_of(flow.target) == SERVICE_ENDPOINTS_ROLE:
            if (flow.protocol, flow.ports) != ("tcp", (443, 443)) or flow.cidr is None or not within(flow.cidr, _vpc_networks(args)):
                yield (f"{flow.describe()}: the service endpoints accept HTTPS from the VPC only", flow.urn)
        elif not _in_matrix(flow, networks):
            yield (f"{flow.describe()} is not in the firewall matrix", flow.urn)


FIREWALL_MATRIX_ONLY = stack_policy(
    "ports-only-from-firewall-matrix",
    "Database, pooler, etcd, Patroni API, Redis, Swarm and monitoring ports are reachable only from what the firewall matrix (dpc/model.py) allows.",
    severity=Severity.CRITICAL,
    remediation="Remove the rule, or add the flow to FIREWALL_MATRIX in dpc/model.py with its purpose if it is really needed.",
    check=_matrix_violations,
    clouds=("aws",),
)


def _aws_ssh(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    admins = admin_cidrs()
    for flow in ingresses(args):
        if not flow.covers(SSH_PORT):
            continue
        if flow.cidr is not None and (role_of(flow.target) != Role.BASTION.value or not within(flow.cidr, admins)):
            yield (f"{flow.describe()}: SSH from a network may only reach the bastion, from the admin CIDRs", flow.urn)
        if flow.cidr is None and role_of(flow.source) != Role.BASTION.value:
            yield (f"{flow.describe()}: SSH between machines may only come from the bastion", flow.urn)


def _gcp_ssh(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    admins = admin_cidrs()
    for firewall in of_type(args, GCP_FIREWALL):
        allows_ssh = any(_protocol(get(a, "protocol")) in ("tcp", "all") and any(lo <= SSH_PORT <= hi for lo, hi in _gcp_port_ranges(a))
                         for a in items(get(firewall.props, "allows")))
        if get(firewall.props, "direction") not in (None, "INGRESS") or not allows_ssh:
            continue
        ranges = [str(r) for r in items(get(firewall.props, "sourceRanges"))]
        if ranges and (items(get(firewall.props, "targetTags")) != [Role.BASTION.value] or not all(within(r, admins) for r in ranges)):
            yield (f"firewall {firewall.name}: SSH from a network may only reach the bastion tag, from the admin CIDRs", firewall.urn)
        if any(tag != Role.BASTION.value for tag in items(get(firewall.props, "sourceTags"))):
            yield (f"firewall {firewall.name}: SSH between machines may only come from the bastion tag", firewall.urn)


def _azure_ssh_rules(group: PolicyResource) -> Iterator[Any]:
    """The inbound Allow rules of a network security group that admit TCP port 22."""
    for rule in items(get(group.props, "securityRules")):
        if get(rule, "direction") != "Inbound" or get(rule, "access") != "Allow" or _protocol(get(rule, "protocol")) not in ("tcp", "all", "*"):
            continue
        if any(low <= SSH_PORT <= high for low, high in (_azure_ports(text) for text in _azure_port_texts(rule))):
            yield rule


def _azure_ssh(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    """Azure: the bastion's group admits SSH only from the admin CIDRs; every other group only from
    the bastion's application security group (an address prefix there, even the virtual network's,
    would let any machine in).
    """
    admins = admin_cidrs()
    for group in of_type(args, AZURE_NSG):
        bastion = get(group.props, "tags", "Role") == Role.BASTION.value
        for rule in _azure_ssh_rules(group):
            prefixes = [str(p) for p in (get(rule, "sourceAddressPrefix"), *items(get(rule, "sourceAddressPrefixes"))) if p is not None]
            name = get(rule, "name") or group.name
            if bastion and (not prefixes or not all(_is_cidr(p) and within(p, admins) for p in prefixes)):
                yield (f"network security group {group.name}, rule {name}: SSH to the bastion only from the admin CIDRs", group.urn)
            if not bastion and (prefixes or not items(get(rule, "sourceApplicationSecurityGroups"))):
                yield (f"network security group {group.name}, rule {name}: SSH to a node only from the bastion's application security group", group.urn)


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _ssh_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    yield from _aws_ssh(args)
    yield from _gcp_ssh(args)
    yield from _azure_ssh(args)


SSH_ONLY_TO_BASTION = stack_policy(
    "ssh-only-from-admins-to-bastion",
    "SSH reaches the bastion only from the admin CIDRs (dpc:access.adminCidrs), and the other machines only from the bastion.",
    severity=Severity.CRITICAL,
    remediation="Open port 22 only on the bastion's group (GCP: target tag bastion; Azure: the NSG tagged Role bastion) from dpc:access.adminCidrs, "
    "and on the nodes only from the bastion (Azure: its application security group).",
    check=_ssh_violations,
    clouds=("aws", "gcp", "azure-native"),
)


def _public_role(args: ResourceValidationArgs, role: Any) -> bool:
    return role in args.get_config()["publicRoles"]


def _aws_instance_ip(args: ResourceValidationArgs) -> Iterator[str]:
    role = get(args.props, "tags", "Role")
    if get(args.props, "associatePublicIpAddress") is True and not _public_role(args, role):
        yield f"a {role or 'untagged'} machine gets a public IP address: set associatePublicIpAddress to false"


def _aws_subnet(args: ResourceValidationArgs) -> Iterator[str]:
    if get(args.props, "mapPublicIpOnLaunch") is True:
        yield "the subnet gives every machine launched in it a public IP address: set mapPublicIpOnLaunch to false"


def _gcp_instance_ip(args: ResourceValidationArgs) -> Iterator[str]:
    role = get(args.props, "labels", "role")
    for index, interface in enumerate(items(get(args.props, "networkInterfaces"))):
        if (items(get(interface, "accessConfigs")) or items(get(interface, "ipv6AccessConfigs"))) and not _public_role(args, role):
            yield f"network interface {index} of a {role or 'unlabelled'} machine has an access config (a public IP address)"


def _azure_interface_ip(args: ResourceValidationArgs) -> Iterator[str]:
    role = mapping(get(args.props, "tags")).get("Role")
    for index, configuration in enumerate(items(get(args.props, "ipConfigurations"))):
        if get(configuration, "publicIPAddress") is not None and not _public_role(args, role):
            yield f"IP configuration {index} of a {role or 'untagged'} machine's interface has a public IP address"


NO_PUBLIC_IP_ON_NODES = resource_policy(
    "no-public-ip-on-nodes",
    "No machine but the bastion has a public IP address; nodes reach the internet through NAT.",
    severity=Severity.HIGH,
    remediation="Remove the public address (associatePublicIpAddress false, no GCP access config, no Azure public IP); reach the node through the bastion.",
    checks={
        "aws:ec2/instance:Instance": _aws_instance_ip,
        "aws:ec2/subnet:Subnet": _aws_subnet,
        "gcp:compute/instance:Instance": _gcp_instance_ip,
        "azure-native:network:NetworkInterface": _azure_interface_ip,
    },
    config_schema=PolicyConfigSchema({"publicRoles": {"type": "array", "items": {"type": "string"}, "default": [Role.BASTION.value]}}),
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
        return f"service {service} joins {network}, which is not one of the overlay networks of seed §2.2"
    if kind not in _MEMBERS[network]:
        return f"service {service} (kind {kind}) joins {network}, whose members are {', '.join(_MEMBERS[network])}"
    return None


def _overlay_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    """Each Swarm service against the members of every overlay network it joins.

    A service names its networks by id (`taskSpec.networksAdvanceds[].id`), unknown during a
    preview; the networks are found instead through the engine's property dependencies of
    `taskSpec` and named by their `name` input. An attachment that no Network resource of the stack
    accounts for (a literal id, a network made elsewhere) cannot be checked and is reported.
    """
    for service in of_type(args, DOCKER_SERVICE):
        name = str(get(service.props, "name"))
        networks = depends_through(service, "taskSpec", DOCKER_NETWORK)
        unresolved = len(items(get(service.props, "taskSpec", "networksAdvanceds"))) - len(networks)
        if unresolved > 0:
            yield (f"service {name} joins {unresolved} network(s) that this stack did not make, so nothing says it may join them", service.urn)
        problems = (_membership_problem(name, service_kind(name), str(get(network.props, "name"))) for network in networks)
        yield from ((problem, service.urn) for problem in problems if problem)


SERVICES_ONLY_ON_THEIR_NETWORKS = stack_policy(
    "services-only-on-their-overlay-networks",
    "Each Swarm service joins only the overlay networks whose members (dpc/tiers.py, seed §2.2) include its kind.",
    severity=Severity.HIGH,
    remediation="Take the network out of the service's networks (dpc/services.py), or, if the service really needs it, "
    "add its kind to that network's TierSpec.members in dpc/tiers.py with the reason.",
    check=_overlay_violations,
    clouds=("docker",),
)

POLICIES = [
    NO_INGRESS_FROM_ANYWHERE, FIREWALL_MATRIX_ONLY, SSH_ONLY_TO_BASTION, NO_PUBLIC_IP_ON_NODES, DEFAULT_GROUP_CLOSED, FLOW_LOGS_ON,
    SERVICES_ONLY_ON_THEIR_NETWORKS,
]
