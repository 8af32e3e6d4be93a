"""The four segmented Swarm overlay networks of design §2.2, as data: subnets, encryption, ports and
the kinds of service that may join each.

Kept apart from the model so that settings validation can check host networks against the same
subnets the database stack creates, without importing the model that is built from the settings.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum


class Tier(StrEnum):
    """The four segmented networks of design §2.2."""

    COORDINATOR = "coordinator"
    DATA = "data"
    APP = "app"
    MONITORING = "monitoring"


@dataclass(frozen=True)
class TierSpec:
    """One Swarm overlay network: its subnet, whether IPsec is mandatory, the ports it carries, and
    the kinds of service allowed to join it.

    `members` is the single source of truth for who may join the network. The program's services
    (dpc/services.py) are checked against it by a unit test, and the policy pack's
    `services-only-on-their-overlay-networks` checks every planned Swarm service against it, so a
    service attached to a network it has no business on is caught on both sides. A member is a
    service kind (`service_kind`): the service's name without its member index.
    """

    tier: Tier
    network_name: str
    subnet: str
    encrypted: bool
    ports: tuple[int, ...]
    members: tuple[str, ...]


def service_kind(service_name: str) -> str:
    """The kind of a Swarm service, as `TierSpec.members` names it: its name without a trailing
    member index (`etcd-2` → `etcd`, `postgres-exporter-3` → `postgres-exporter`).

    Exporters have no collective kind (the seed's "exporters"): each is listed by its own name
    (`postgres-exporter`, `redis-exporter`, `node-exporter`, and `cadvisor`, the containers'
    exporter), because each sits beside what it exports and so joins different networks.
    """
    return re.sub(r"-\d+$", "", service_name)


# The original architecture's "Access" lines name each network's members in prose; the deployment
# needs more (design §11.3):
# - data-net: Redis, as the original's own topology diagram and data-net port list (6379) place it;
#   the backup agent, whose pgBackRest reaches the Patroni members' PostgreSQL; one
#   postgres-exporter per member, which connects to that member's PostgreSQL.
# - app-net: the redis-exporter, which reaches Redis where its clients do. Applications join from
#   their own stacks, which this one does not check.
# - monitoring-net: Prometheus scrapes etcd, Patroni and HAProxy (its built-in exporter) directly,
#   so they join; Alertmanager receives Prometheus's alerts; node-exporter and cAdvisor run on
#   every node for Prometheus.
TIERS: tuple[TierSpec, ...] = (
    TierSpec(Tier.COORDINATOR, "coordinator-net", "10.10.0.0/24", True, (2379, 2380, 8008), ("etcd", "patroni")),
    TierSpec(
        Tier.DATA, "data-net", "10.10.1.0/24", True, (5432, 6379),
        ("patroni", "haproxy", "pgbouncer", "redis", "backup", "postgres-exporter"),
    ),
    TierSpec(Tier.APP, "app-net", "10.10.2.0/24", False, (5432, 6432, 6379), ("haproxy", "pgbouncer", "redis", "redis-exporter")),
    TierSpec(
        Tier.MONITORING, "monitoring-net", "10.10.3.0/24", False, (9090, 3000, 9187),
        ("prometheus", "alertmanager", "grafana", "postgres-exporter", "redis-exporter", "node-exporter", "cadvisor", "etcd", "patroni", "haproxy"),
    ),
)

OVERLAY_RANGES: tuple[ipaddress.IPv4Network, ...] = tuple(ipaddress.collapse_addresses(ipaddress.IPv4Network(spec.subnet) for spec in TIERS))
"""The ranges the overlay subnets fill (10.10.0.0/22); host networks must stay outside them."""
