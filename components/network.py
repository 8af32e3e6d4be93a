"""Network: the VPC, its public and private subnets per zone, NAT, the firewall groups generated
from the model's matrix, the closed default group, flow logs, and endpoints of the cloud's services
the nodes call, which keep that traffic inside the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.base import Component
from dpc.model import Role, Rule


@dataclass(frozen=True)
class ZoneSubnets:
    """The two subnets of one zone: public (NAT, bastion, load balancer) and private (nodes)."""

    zone: str
    public_cidr: str
    private_cidr: str


@dataclass(frozen=True)
class NetworkPlan:
    """What the network must provide, independent of the cloud."""

    cidr: str
    zones: tuple[ZoneSubnets, ...]
    nat_per_zone: bool
    rules: tuple[Rule, ...]
    admin_cidrs: tuple[str, ...]
    client_cidrs: tuple[str, ...]
    """Empty means the endpoint is internal: the clients are the VPC itself."""
    flow_log_retention_days: int
    key_arn: pulumi.Output[str]
    """The customer-managed key that encrypts the flow logs."""


LOAD_BALANCER_GROUP = "load-balancer"
"""Firewall group of the load balancer, beside one group per role."""

ENDPOINTS_GROUP = "endpoints"
"""Firewall group of the cloud's service endpoints in the VPC: HTTPS from the VPC only."""


@dataclass(frozen=True)
class NetworkResult:
    """What the other components need: subnet ids per zone and firewall group ids per role."""

    network_id: pulumi.Output[str]
    public_subnet_ids: dict[str, pulumi.Output[str]]
    private_subnet_ids: dict[str, pulumi.Output[str]]
    firewall_group_ids: dict[str, pulumi.Output[str]]
    private_egress: dict[str, list[pulumi.Resource]]
    """By zone, what gives the private subnet its way out (its route table's association and its
    route to the NAT gateway): a machine there must not boot before them."""

    def group_of(self, role: Role) -> pulumi.Output[str]:
        """The firewall group of a role's machines."""
        return self.firewall_group_ids[role.value]


class Network(Component[NetworkPlan, NetworkResult]):
    """The cluster's network."""

    type_token = "dpc:network:Network"
