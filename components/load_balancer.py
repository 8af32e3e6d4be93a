"""Load balancer: the database endpoint, TCP 5432 to the HAProxy nodes (design §2.4)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.base import Component
from dpc.model import HealthCheck


@dataclass(frozen=True)
class LoadBalancerPlan:
    """Where the endpoint listens and what it forwards to."""

    internal: bool
    port: int
    health_check: HealthCheck
    subnet_ids: tuple[pulumi.Output[str], ...]
    firewall_group_id: pulumi.Output[str]
    network_id: pulumi.Output[str]
    target_ids: dict[str, pulumi.Output[str]]
    deletion_protection: bool


@dataclass(frozen=True)
class LoadBalancerResult:
    """The endpoint's DNS name, which clients connect to."""

    dns_name: pulumi.Output[str]


class LoadBalancer(Component[LoadBalancerPlan, LoadBalancerResult]):
    """The database endpoint."""

    type_token = "dpc:loadbalancer:LoadBalancer"
