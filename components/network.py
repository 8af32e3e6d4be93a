"""Network: the VPC, its public and private subnets per zone, NAT, the firewall groups generated
from the model's matrix, the closed default group, flow logs, and endpoints of the cloud's services
the nodes call, which keep that traffic inside the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.base import Component
from dpc.model import Rule


@dataclass(frozen=True)
class NetworkPlan:
    """What the network must provide, independent of the cloud."""

    cidr: str
    zones: tuple[str, ...]
    private_cidrs: tuple[str, ...]
    """The nodes' ranges: one per zone, in zone order, where subnets are zonal (AWS); one regional
    range where they are regional (GCP). Each cloud's settings check the count."""
    public_cidrs: tuple[str, ...]
    """The ranges of what faces the internet (bastion, NAT, a public endpoint), counted like `private_cidrs`."""
    nat_per_zone: bool
    """Egress survives a zone's loss: a NAT per zone where NAT is zonal (AWS); a regional NAT (GCP) always does."""
    rules: tuple[Rule, ...]
    admin_cidrs: tuple[str, ...]
    client_cidrs: tuple[str, ...]
    """Empty means the endpoint is internal: the clients are the VPC itself."""
    flow_log_retention_days: int
    key_id: pulumi.Output[str]
    """The customer-managed key that encrypts the flow logs where the cloud lets a key do so."""


LOAD_BALANCER_GROUP = "load-balancer"
"""Firewall group of the load balancer, beside one group per role."""

ENDPOINTS_GROUP = "endpoints"
"""Firewall group of the cloud's service endpoints in the VPC: HTTPS from the VPC only."""


@dataclass(frozen=True)
class NetworkResult:
    """What the other components need: the subnet a machine of each zone joins and the firewall
    group of each role.
    """

    network_id: pulumi.Output[str]
    public_subnet_ids: dict[str, pulumi.Output[str]]
    """By zone, the subnet a public-facing machine there joins (regional subnets: the same one for every zone)."""
    private_subnet_ids: dict[str, pulumi.Output[str]]
    """By zone, the subnet a node there joins (regional subnets: the same one for every zone)."""
    firewall_group_ids: dict[str, pulumi.Output[str]]
    """By group (a role's value, `LOAD_BALANCER_GROUP`), what places a machine under the group's rules:
    a security group id on AWS, a network tag on GCP."""
    private_egress: dict[str, list[pulumi.Resource]]
    """By zone, what gives the private subnet its way out (its route table's association and its
    route to the NAT gateway): a machine there must not boot before them."""


class Network(Component[NetworkPlan, NetworkResult]):
    """The cluster's network."""

    type_token = "dpc:network:Network"
