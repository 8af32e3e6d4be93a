"""The four segmented Swarm overlay networks of seed §2.2, as data.

Kept apart from the model so that settings validation can check host networks against the same
subnets the database stack creates, without importing the model that is built from the settings.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum


class Tier(StrEnum):
    """The four segmented networks of seed §2.2."""

    COORDINATOR = "coordinator"
    DATA = "data"
    APP = "app"
    MONITORING = "monitoring"


@dataclass(frozen=True)
class TierSpec:
    """One Swarm overlay network: its subnet, whether IPsec is mandatory, the ports it carries."""

    tier: Tier
    network_name: str
    subnet: str
    encrypted: bool
    ports: tuple[int, ...]
    members: tuple[str, ...]


TIERS: tuple[TierSpec, ...] = (
    TierSpec(Tier.COORDINATOR, "coordinator-net", "10.10.0.0/24", True, (2379, 2380, 8008), ("etcd", "patroni")),
    TierSpec(Tier.DATA, "data-net", "10.10.1.0/24", True, (5432, 6379), ("patroni", "haproxy", "pgbouncer")),
    TierSpec(Tier.APP, "app-net", "10.10.2.0/24", False, (5432, 6432, 6379), ("haproxy", "pgbouncer", "redis")),
    TierSpec(Tier.MONITORING, "monitoring-net", "10.10.3.0/24", False, (9090, 3000, 9187), ("prometheus", "grafana", "exporters")),
)


OVERLAY_RANGES: tuple[ipaddress.IPv4Network, ...] = tuple(ipaddress.collapse_addresses(ipaddress.IPv4Network(spec.subnet) for spec in TIERS))
"""The ranges the overlay subnets fill (10.10.0.0/22); host networks must stay outside them."""
