"""Load balancer: the database endpoint, TCP 5432 to the HAProxy nodes (design §2.4)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.base import Component
from components.network import NetworkResult
from dpc.model import HealthCheck


@dataclass(frozen=True)
class LoadBalancerTarget:
    """A machine the endpoint forwards to, with the zone it runs in (GCP groups targets by zone) and
    its private address (Azure's load balancer lists its backends by address in the network).
    """

    node: str
    zone: str
    machine_id: pulumi.Output[str]
    address: pulumi.Output[str]


@dataclass(frozen=True)
class LoadBalancerPlan:
    """Where the endpoint listens and what it forwards to. Internal: in the private subnets, for the
    network's own clients; otherwise in the public ones, for the listed client ranges.
    """

    internal: bool
    port: int
    health_check: HealthCheck
    network: NetworkResult
    zones: tuple[str, ...]
    targets: tuple[LoadBalancerTarget, ...]
    deletion_protection: bool


@dataclass(frozen=True)
class LoadBalancerResult:
    """What clients connect to: a DNS name where the cloud gives the endpoint one (AWS; GCP's
    internal endpoint through its service label), else its address.
    """

    address: pulumi.Output[str]


class LoadBalancer(Component[LoadBalancerPlan, LoadBalancerResult]):
    """The database endpoint."""

    type_token = "dpc:loadbalancer:LoadBalancer"
