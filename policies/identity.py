"""What makes a resource what it is, for the pack's identity rules: the key a disk is encrypted
with is the key its property was computed from (the engine's property dependencies), not the text
of an ARN; a machine's role is the security group it is attached to, not a tag; an address range
is open to the internet when it covers the public address space, however it is split up.

Values read here may be unknown in a first preview (ids, ARNs): `peek` reads them without raising,
so that a rule which can decide from dependencies alone still decides, and one unknown value does
not stop a whole-stack rule from judging the other resources.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, cast

from pulumi.runtime.config import CONFIG, get_config_env
from pulumi_policy.proxy import UnknownValueError

from dpc.config import load_settings
from dpc.services import ServiceSpec, database_services, placement_of
from dpc.settings import SettingsError
from dpc.topology import derive
from policies.common import get

UNKNOWN: Any = object()
"""What `peek` returns for a value the engine cannot know yet (the preview's unknown sentinel)."""

_NON_PUBLIC_V4 = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
))
"""IPv4 space no internet host has (RFC 6890: private, shared, loopback, link-local, documentation,
benchmarking, multicast and reserved): a set of ranges that covers everything else is open."""
_PUBLIC_V6 = ipaddress.IPv6Network("2000::/3")
"""IPv6 global unicast, where every internet host's address lies."""


def peek(value: Any, *path: str | int) -> Any:
    """`get`, but a value unknown during preview comes back as UNKNOWN instead of raising."""
    try:
        return get(value, *path)
    except UnknownValueError:
        return UNKNOWN


def known_items(value: Any) -> list[Any]:
    """The elements of a list property that are known (a preview's unknown elements are left out)."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    found: list[Any] = []
    for index in range(len(cast(Sequence[Any], value))):
        element = peek(value, index)
        if element is not UNKNOWN:
            found.append(element)
    return found


def length(value: Any) -> int:
    """How many elements a list property has, known or not (0 when it is missing or not a list)."""
    return len(cast(Sequence[Any], value)) if isinstance(value, Sequence) and not isinstance(value, str) else 0


def policy_statements(document: Any) -> list[Any]:
    """The statements of a JSON policy document (IAM, KMS key or bucket policy text), or none when
    it is not one.
    """
    if not isinstance(document, str):
        return []
    try:
        parsed: Any = json.loads(document)
    except json.JSONDecodeError:
        return []
    listed: Any = get(parsed, "Statement")
    return cast(list[Any], listed) if isinstance(listed, list) else [listed] if listed is not None else []


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def covers_public_space(ranges: Iterable[Any]) -> bool:
    """Whether the union of the address ranges reaches every internet host, of IPv4 or IPv6:
    `0.0.0.0/0`, but also `0.0.0.0/1` with `128.0.0.0/1`, or every public block but one private one.
    Texts that are not ranges (a cloud's service tag) are left to the caller.
    """
    networks = [n for n in (_network(str(r)) for r in ranges if r is not UNKNOWN) if n is not None]
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    if v4 and list(ipaddress.collapse_addresses([*v4, *_NON_PUBLIC_V4])) == [ipaddress.IPv4Network("0.0.0.0/0")]:
        return True
    return any(_PUBLIC_V6.subnet_of(n) for n in ipaddress.collapse_addresses(v6))


def is_prod() -> bool:
    """Whether the stack under review is a prod stack (`dpc:environment`), for the rules that hold
    prod alone to more (replicated backups, deletion protection).
    """
    return {**get_config_env(), **CONFIG.get()}.get("dpc:environment") == "prod"


def program_services() -> tuple[ServiceSpec, ...] | None:
    """The Swarm services the program itself deploys for the stack under review (dpc/services.py,
    from the stack's `dpc:` config as the engine hands it to the pack), or None when that config
    does not validate: then no planned service can be identified.
    """
    config = {**get_config_env(), **CONFIG.get()}
    return _program_services(tuple(sorted((k, str(v)) for k, v in config.items() if k.startswith("dpc:"))))


@cache
def _program_services(config: tuple[tuple[str, str], ...]) -> tuple[ServiceSpec, ...] | None:
    """`program_services` for one config (the cache key: the pack sees one stack per process, the
    tests several).
    """
    del config  # load_settings reads the same config
    try:
        settings = load_settings()
    except SettingsError:
        return None
    return database_services(derive(settings), placement_of(settings))
