"""What every policy of the pack shares: how a policy is declared (name, description, severity,
remediation; the enforcement level is left to the pack's config) and how properties are read.

Properties reach a policy as the engine hands them over: camelCase keys, wrapped in pulumi_policy's
unknown-checking proxy, which is a `Mapping`/`Sequence` but not a `dict`/`list`. Reading a value
that is unknown during preview raises, and the engine then reports that the policy could not run;
the helpers here therefore read only what a check needs, never whole subtrees.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
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

ResourceCheck = Callable[[ResourceValidationArgs], Iterable[str]]
"""Checks one resource of a type; yields one message per violation."""

StackCheck = Callable[[StackValidationArgs], Iterable[tuple[str, str]]]
"""Checks the whole stack; yields (message, URN of the offending resource)."""


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
) -> StackValidationPolicy:
    """A stack policy, for rules that span resources (a bucket and its encryption configuration)."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for message, urn in check(args):
            report_violation(message, urn)

    return StackValidationPolicy(name, description, validate, severity=severity, remediation_steps=remediation, tags=sorted(clouds))


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

