"""What every policy of the pack shares: how a policy is declared (name, description, severity,
remediation; the enforcement level is left to the pack's config) and how properties are read.

Properties reach a policy as the engine hands them over: camelCase keys, wrapped in pulumi_policy's
unknown-checking proxy, which is a `Mapping`/`Sequence` but not a `dict`/`list`. Reading a value
that is unknown during preview raises, and the engine then reports that the policy could not run;
the helpers here therefore read only what a check needs, never whole subtrees.

A whole-stack policy judges many resources in one call, and the engine turns an unknown read anywhere
in that call into one advisory note for the whole policy: a violation on a resource judged after it
would go unreported. Stack checks therefore judge each resource through `judge_each`, which sets a
resource whose values are unknown aside, goes on with the others, and has the policy end with one
note naming every resource it could not judge (`UnjudgedResourcesError`, which the engine reports as it
reports any unknown).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, cast

import pulumi
from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

ResourceCheck = Callable[[ResourceValidationArgs], Iterable[str]]
"""Checks one resource of a type; yields one message per violation."""

StackCheck = Callable[[StackValidationArgs], Iterable[tuple[str, str]]]
"""Checks the whole stack; yields (message, URN of the offending resource)."""

Judgement = Callable[[PolicyResource], Iterable[str | tuple[str, str]]]
"""Judges one resource of a stack check: yields a message about that resource, or (message, URN)
for a violation found on another resource while judging this one (a rule judged with its group).
"""


class UnjudgedResourcesError(UnknownValueError):
    """The resources a stack policy could not judge because values they depend on are unknown
    during preview. An UnknownValueError, so that the engine's policy host reports it as it reports
    any unknown (an advisory "can't run policy ... during preview" note) after the violations the
    policy found on the resources it could judge.
    """

    def __init__(self, unjudged: Sequence[tuple[str, str]]) -> None:
        super().__init__(UNKNOWN_STRING_VALUE, [])
        self.unjudged = list(unjudged)
        """(URN, why) of each resource left unjudged."""
        self.message = f"{len(self.unjudged)} resource(s) not judged: " + "; ".join(f"{urn}: {why}" for urn, why in self.unjudged)


_UNJUDGED: ContextVar[list[tuple[str, str]] | None] = ContextVar("unjudged", default=None)
"""The resources the running stack policy has set aside so far; None outside a stack policy."""


def judge_each(resources: Iterable[PolicyResource], judgement: Judgement) -> Iterator[tuple[str, str]]:
    """Each resource judged on its own, as (message, URN) violations: a resource whose judgement
    reads an unknown value is set aside (its violations found before the unknown are kept) and the
    others are judged, where one unknown would otherwise end the whole stack policy. Outside a
    stack policy (no one to tell), the unknown goes up as the engine expects it.
    """
    for resource in resources:
        found: list[tuple[str, str]] = []
        try:
            for verdict in judgement(resource):
                found.append((verdict, resource.urn) if isinstance(verdict, str) else verdict)
        except UnknownValueError as error:
            unjudged = _UNJUDGED.get()
            if unjudged is None:
                raise
            unjudged.append((resource.urn, error.message))
        yield from found


def resource_policy(
    name: str,
    description: str,
    *,
    severity: Severity,
    remediation: str,
    checks: Mapping[str, ResourceCheck],
    config_schema: PolicyConfigSchema | None = None,
) -> ResourceValidationPolicy:
    """A resource policy that runs the check registered for the resource's type token, so that
    the types a rule covers (AWS, GCP, Azure, Docker) are listed in one place, next to their check.
    """

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        check = checks.get(args.resource_type)
        if check is not None:
            for message in check(args):
                report_violation(message, None)

    return ResourceValidationPolicy(
        name, description, validate, severity=severity, remediation_steps=remediation, config_schema=config_schema,
        tags=sorted({token.split(":")[0] for token in checks}),
    )


def stack_policy(
    name: str,
    description: str,
    *,
    severity: Severity,
    remediation: str,
    check: StackCheck,
    clouds: Sequence[str],
    config_schema: PolicyConfigSchema | None = None,
) -> StackValidationPolicy:
    """A stack policy, for rules that span resources (a bucket and its encryption configuration).
    The check judges each resource through `judge_each`; the resources it set aside are reported
    once it is done (`UnjudgedResourcesError`), after every violation it found.
    """

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        unjudged: list[tuple[str, str]] = []
        token = _UNJUDGED.set(unjudged)
        try:
            for message, urn in check(args):
                report_violation(message, urn)
        finally:
            _UNJUDGED.reset(token)
        if unjudged:
            raise UnjudgedResourcesError(unjudged)

    return StackValidationPolicy(name, description, validate, severity=severity, remediation_steps=remediation, tags=sorted(clouds),
                                 config_schema=config_schema)


def get(value: Any, *path: str | int) -> Any:
    """The value at `path` inside nested properties, or None where any step is missing."""
    for step in path:
        if isinstance(step, int):
            if not is_sequence(value) or step >= len(cast(Sequence[Any], value)):
                return None
            value = cast(Sequence[Any], value)[step]
        else:
            if not isinstance(value, Mapping) or step not in value:
                return None
            value = cast(Mapping[str, Any], value)[step]
    return value


def is_sequence(value: Any) -> bool:
    """A list of properties (the proxy's list is a Sequence); strings are not lists here."""
    return isinstance(value, Sequence) and not isinstance(value, str)


def items(value: Any) -> list[Any]:
    """The elements of a list property, or none when it is missing."""
    return list(cast(Sequence[Any], value)) if is_sequence(value) else []


def mapping(value: Any) -> Mapping[str, Any]:
    """A map property (tags, labels, options), or an empty one when it is missing."""
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}


def of_type(args: StackValidationArgs, *tokens: str) -> list[PolicyResource]:
    """The stack's resources of the given type tokens."""
    return [r for r in args.resources if r.resource_type in tokens]


def depends_through(resource: PolicyResource, prop: str, *tokens: str) -> list[PolicyResource]:
    """The resources of the given types that `resource`'s property `prop` was computed from.

    During a preview the ids that link resources (a rule's security group, a policy's bucket) are
    unknown, but the engine always knows which resource each property came from.
    """
    return [d for d in resource.property_dependencies.get(prop, []) if d.resource_type in tokens]


def attached_to(args: StackValidationArgs, target: PolicyResource, prop: str, *tokens: str) -> list[PolicyResource]:
    """The resources of the given types whose property `prop` was computed from `target`."""
    return [r for r in of_type(args, *tokens) if any(d.urn == target.urn for d in r.property_dependencies.get(prop, []))]


def stack_setting(key: str) -> Any:
    """A `dpc:` setting of the stack under review, as the engine hands the stack's config to the
    pack; None when the stack does not set it.
    """
    return pulumi.Config("dpc").get_object(key)


def admin_cidrs() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks the stack lets administer the bastion (`dpc:access.adminCidrs`)."""
    return [ipaddress.ip_network(c) for c in items(get(stack_setting("access"), "adminCidrs"))]


def client_cidrs() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks the stack names as database clients (`dpc:access.clientCidrs`)."""
    return [ipaddress.ip_network(c) for c in items(get(stack_setting("access"), "clientCidrs"))]


def within(cidr: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether every address of `cidr` lies inside one of `networks`."""
    network = ipaddress.ip_network(cidr, strict=False)
    return any(network.version == n.version and network.subnet_of(n) for n in networks)  # pyright: ignore[reportArgumentType]  # versions are compared first



_PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "all": "-1"}
_SEPARATE_RULES = {"ingress": "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "egress": "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"}
_LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
_PORTED = frozenset({"tcp", "udp", "icmp", "icmpv6"})
"""The protocols whose rules have ports (ICMP's type and code in their place): EC2 lists no ports
for the others, and the provider then shows 0 to 0 where the program may have set none."""
Flow = tuple[str, Any, Any, str, str]
"""One flow of a security group rule: (protocol, from port, to port, kind of peer, peer)."""


def _flows(props: Any, own_id: Any, kind: str) -> list[Flow]:
    """The flows of a rule as EC2 lists them, one per peer, read in the rule's own shape (`kind`): a
    group's inline entry (`inline`: lists of CIDRs, groups, `self`), a legacy SecurityGroupRule
    (`legacy`: lists of CIDRs, one source group, `self`) or a SecurityGroupIngress/EgressRule (`rule`: one peer).
    """
    one_peer = kind == "rule"
    protocol = str(get(props, "ipProtocol" if one_peer else "protocol") or "-1").lower()
    protocol = _PROTOCOL_NAMES.get(protocol, protocol)
    low, high = (get(props, "fromPort"), get(props, "toPort")) if protocol in _PORTED else (None, None)
    if one_peer:
        peers = [
            *(("cidr", str(get(props, key))) for key in ("cidrIpv4", "cidrIpv6") if get(props, key)),
            *(("prefix", str(p)) for p in [get(props, "prefixListId")] if p),
            *(("group", str(g)) for g in [get(props, "referencedSecurityGroupId")] if g),
        ]
    else:
        groups = items(get(props, "securityGroups")) if kind == "inline" else [get(props, "sourceSecurityGroupId")]
        peers = [
            *(("cidr", str(c)) for key in ("cidrBlocks", "ipv6CidrBlocks") for c in items(get(props, key))),
            *(("prefix", str(p)) for p in items(get(props, "prefixListIds"))),
            *(("group", str(g)) for g in groups if g),
            *([("group", str(own_id))] if get(props, "self") is True else []),
        ]
    return [(protocol, low, high, peer_kind, peer) for peer_kind, peer in peers]


def _flow_entry(flow: Flow) -> dict[str, Any]:
    """A flow as a one-peer inline entry, in the shape of the group's `ingress`/`egress` items."""
    protocol, low, high, kind, peer = flow
    entry: dict[str, Any] = {"protocol": protocol, "fromPort": low, "toPort": high}
    key = {"cidr": "ipv6CidrBlocks" if ":" in peer else "cidrBlocks", "prefix": "prefixListIds", "group": "securityGroups"}[kind]
    entry[key] = [peer]
    return entry


def inline_rules(args: StackValidationArgs, group: PolicyResource, direction: str) -> list[Any]:
    """The rules of a security group's `ingress` or `egress` the program declared inline on it.

    A whole-stack policy reads a group's outputs, and after `pulumi refresh` the provider lists
    there every rule EC2 holds for the group, those managed as their own resources too (a
    SecurityGroupIngressRule, a SecurityGroupRule): read as inline, each would count twice, and its
    peer group only by id. When the group lists such a rule, its entries come back one flow each,
    less the flows of the separately managed rules attached to it (judged as those resources);
    otherwise they come back as declared.
    """
    declared = items(get(group.props, direction))
    separate = [
        rule for rule in of_type(args, _SEPARATE_RULES[direction], _LEGACY_RULE)
        if any(d.urn == group.urn for d in rule.property_dependencies.get("securityGroupId", []))
        and (rule.resource_type != _LEGACY_RULE or get(rule.props, "type") == direction)
    ]
    if not declared or not separate:
        return declared
    own_id = get(group.props, "id")
    elsewhere = [flow for rule in separate for flow in _flows(rule.props, own_id, "legacy" if rule.resource_type == _LEGACY_RULE else "rule")]
    inline: list[Any] = []
    for entry in declared:
        for flow in _flows(entry, own_id, "inline"):
            if flow in elsewhere:
                elsewhere.remove(flow)
            else:
                inline.append(_flow_entry(flow))
    return inline
