"""The clouds' own API limits, checked on a plan before anything reaches a cloud.

Pulumi's mocks accept any input, so a plan can pass every test of the program and still be refused
by the cloud at `pulumi up` (a character EC2 rejects in a rule description, a lifecycle S3 refuses)
or deploy in an order that cannot work (a machine that boots before its route to the internet).
Each cloud module here (`aws`, `gcp`, `azure`, `docker`) states the limits
its API documents, with the page they come from, as checks over the plan's resources (read as the
policy harness reads them, `review.policy.plan_resources`); the plan command runs them all but the
IAM linter, and the tests run every one of them on every stack.

A value the plan does not know (`[unknown]` in a preview) or hides (`[secret]`) cannot be judged
and is passed over, unless the caller hands the revealed inputs of an offline plan
(`review.plan.build_plan_revealed`), which the offline plan command and the tests do.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

from review.policy import PlannedResource, plan_resources

HIDDEN = ("[unknown]", "[secret]")


@dataclass(frozen=True)
class Breach:
    """One input a cloud would refuse, or an order it cannot work in: where, why, and the source."""

    urn: str
    field: str
    message: str
    source: str

    def __str__(self) -> str:
        return f"{self.urn.split('::')[-1]} ({self.urn.split('::')[-2].split('$')[-1]}) {self.field}: {self.message} [{self.source}]"


@dataclass
class PlanIndex:
    """The plan's resources, with the lookups the checks share."""

    resources: list[PlannedResource]
    by_urn: dict[str, PlannedResource] = field(init=False)
    _closure: dict[str, frozenset[str]] = field(init=False, default_factory=dict[str, frozenset[str]])

    def __post_init__(self) -> None:
        self.by_urn = {r.urn: r for r in self.resources}

    def of_type(self, *types: str) -> list[PlannedResource]:
        """The resources of the given type tokens."""
        return [r for r in self.resources if r.type in types]

    def waits_for(self, urn: str) -> frozenset[str]:
        """Every resource this one waits for before it is created, directly or through others."""
        if urn not in self._closure:
            self._closure[urn] = frozenset()
            direct = self.by_urn[urn].dependencies if urn in self.by_urn else ()
            found = set(direct)
            for dependency in direct:
                found |= self.waits_for(dependency)
            self._closure[urn] = frozenset(found)
        return self._closure[urn]


def index(plan: Mapping[str, Any], revealed: Mapping[str, Mapping[str, Any]] | None = None) -> PlanIndex:
    """The plan's resources as the policy harness reads them; an offline plan's revealed inputs
    replace the masked ones.
    """
    shown = revealed or {}
    return PlanIndex([replace(r, inputs=shown[r.urn]) if r.urn in shown else r for r in plan_resources(plan)])


def known(value: object) -> bool:
    """Whether a value can be judged: present, and neither unknown nor hidden."""
    return value is not None and value not in HIDDEN


def values_at(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """The values under a dotted path, `[]` stepping into every item of a list: `ingress[].description`."""
    if not path:
        yield "", value
        return
    head, _, rest = path.partition(".")
    many = head.endswith("[]")
    key = head.removesuffix("[]")
    if not isinstance(value, Mapping):
        return
    found = cast(Mapping[str, Any], value).get(key)
    if many:
        for position, item in enumerate(cast(list[Any], found) if isinstance(found, list) else []):
            for sub, leaf in values_at(item, rest):
                yield f"{key}[{position}]" + (f".{sub}" if sub else ""), leaf
    elif found is not None:
        for sub, leaf in values_at(found, rest):
            yield key + (f".{sub}" if sub else ""), leaf


@dataclass(frozen=True)
class TextLimit:
    """A string input's documented length and characters, for the types that share it."""

    types: tuple[str, ...]
    path: str
    what: str
    max_length: int
    source: str
    allowed: re.Pattern[str] | None = None
    """A full match of the allowed characters; None: any."""
    allowed_said: str = ""
    min_length: int = 1

    def breaches(self, resource: PlannedResource) -> Iterator[Breach]:
        """What of the resource's value the API would refuse."""
        for where, value in values_at(resource.inputs, self.path):
            if not isinstance(value, str) or not known(value):
                continue
            if not self.min_length <= len(value) <= self.max_length:
                yield Breach(resource.urn, where, f"{self.what} is {len(value)} characters; the API takes {self.min_length}–{self.max_length}", self.source)
            if self.allowed is not None and not self.allowed.fullmatch(value):
                bad = sorted({c for c in value if not self.allowed.fullmatch(c)})
                said = f" ({self.allowed_said})" if self.allowed_said else ""
                yield Breach(resource.urn, where, f"{self.what} {value!r} has characters the API refuses: {''.join(bad)!r}{said}", self.source)


Check = Callable[[PlanIndex], Iterable[Breach]]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def subnet_range(urn: str, where: str, cidr: str, smallest_prefix: int, source: str) -> tuple[Network | None, list[Breach]]:
    """A subnet's range as the cloud reads it (None where it is no network address with its prefix)
    and what the cloud refuses of it: not a network, or smaller than its smallest subnet.
    """
    try:
        network = ipaddress.ip_network(cidr)
    except ValueError:
        return None, [Breach(urn, where, f"{cidr!r} is not a network address with its prefix", source)]
    if network.prefixlen > smallest_prefix:
        return network, [Breach(urn, where, f"{cidr}: a subnet's range is at most /{smallest_prefix}", source)]
    return network, []


def text_checks(limits: Iterable[TextLimit]) -> Check:
    """One check running every text limit on the resources of its types."""
    table = tuple(limits)

    def check(plan: PlanIndex) -> Iterator[Breach]:
        for limit in table:
            for resource in plan.of_type(*limit.types):
                yield from limit.breaches(resource)

    return check


def check_plan(plan: Mapping[str, Any], revealed: Mapping[str, Mapping[str, Any]] | None = None, *, lint_iam: bool = False) -> list[Breach]:
    """Every limit of every cloud the plan's resources belong to, in a stable order; with
    `lint_iam`, every IAM policy through the linter too (the tests always ask for it).
    """
    from review.limits import aws, azure, docker, gcp  # noqa: PLC0415  (the cloud modules import this one)

    planned = index(plan, revealed)
    checks = (*aws.CHECKS, *gcp.CHECKS, *azure.CHECKS, *docker.CHECKS, *(aws.IAM_LINT if lint_iam else ()))
    breaches = [breach for check in checks for breach in check(planned)]
    return sorted(breaches, key=lambda b: (b.urn, b.field, b.message))


def report(breaches: list[Breach]) -> str:
    """What the plan command prints: each breach, or that there is none."""
    if not breaches:
        return "cloud API limits: no breaches"
    return "\n".join([f"cloud API limits: {len(breaches)} input(s) the clouds would refuse or an order that cannot work:", *(f"  - {b}" for b in breaches)])
