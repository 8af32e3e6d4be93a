"""Azure load balancer (design §2.4, §9.8): a Standard load balancer on TCP 5432 to the HAProxy
nodes with the health probe of design §2.4; internal (a zone-redundant address of the private
subnets) unless the stack lists client CIDRs, then a zone-redundant Standard public address.

Azure's load balancer is no proxy and no machine: the managers see the clients' own addresses, so
the managers' security rules (`providers.azure.network`) admit the clients and the balancer's
probes (the `AzureLoadBalancer` service tag), and the balancer has no security group of its own.
A Standard load balancer admits nothing the targets' security rules do not, public or not.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
from pulumi_azure_native import network

from components.base import Scope
from components.load_balancer import LoadBalancerPlan, LoadBalancerResult
from providers.azure.network import azure_name, public_address
from providers.azure.provider import AzureStack
from providers.azure.vault import resource_id

FRONTEND, POOL, PROBE, RULE = "postgres", "haproxy", "haproxy", "postgres"
"""The names of the balancer's parts, which refer to each other by id under the balancer's."""

IDLE_TIMEOUT_MINUTES = 30
"""How long an idle connection stays open (Azure's default is 4 minutes, shorter than a pooled
PostgreSQL connection may rest); at the end the balancer resets it on both sides (`enable_tcp_reset`)
rather than dropping it silently."""


def _part(balancer: pulumi.Output[str], kind: str, name: str) -> network.SubResourceArgs:
    """A reference to a part of the balancer declared inline: its id under the balancer's."""
    return network.SubResourceArgs(id=pulumi.Output.concat(balancer, f"/{kind}/{name}"))


def build_load_balancer(azure: AzureStack, scope: Scope, plan: LoadBalancerPlan) -> LoadBalancerResult:
    """Creates the balancer with its frontend, the pool of the targets' addresses, the probe and the
    rule, and in the public case its public address.

    The parts are inline, so the balancer is one resource that refers to its own parts by id; the
    pool lists the targets by private address in the stack's virtual network (an IP-based pool),
    so the machines need not know the balancer. Azure's load balancer has no deletion protection: in
    prod the balancer and its public address (what clients hold) are protected in the stack instead.
    Outbound SNAT through the balancer is off: the nodes leave through NAT.
    """
    check = plan.health_check
    if check.protocol != "TCP":
        raise ValueError(f"the Azure load balancer probes its targets over TCP, not {check.protocol}")
    if check.healthy_threshold != check.unhealthy_threshold:
        raise ValueError("an Azure probe has one threshold for turning healthy and unhealthy")
    zones = list(plan.zones)
    public: network.PublicIPAddress | None = None
    if plan.internal:
        frontend = network.FrontendIPConfigurationArgs(
            name=FRONTEND,
            subnet=network.SubnetArgs(id=plan.network.private_subnet_ids[plan.zones[0]]),
            private_ip_allocation_method=network.IPAllocationMethod.DYNAMIC,
            private_ip_address_version=network.IPVersion.I_PV4,
            zones=zones,
        )
    else:
        public = public_address(azure, scope, "ip", zones, scope.opts(protect=plan.deletion_protection))
        frontend = network.FrontendIPConfigurationArgs(name=FRONTEND, public_ip_address=network.PublicIPAddressArgs(id=public.id))
    name = azure_name(scope.child("lb"))
    own_id = resource_id(azure, "Microsoft.Network/loadBalancers", name)
    balancer = network.LoadBalancer(
        scope.child("lb"),
        load_balancer_name=name,
        resource_group_name=azure.resource_group,
        location=azure.location,
        sku=network.LoadBalancerSkuArgs(name=network.LoadBalancerSkuName.STANDARD, tier=network.LoadBalancerSkuTier.REGIONAL),
        frontend_ip_configurations=[frontend],
        backend_address_pools=[
            network.BackendAddressPoolArgs(
                name=POOL,
                load_balancer_backend_addresses=[
                    network.LoadBalancerBackendAddressArgs(
                        name=target.node, ip_address=target.address, virtual_network=network.SubResourceArgs(id=plan.network.network_id)
                    )
                    for target in plan.targets
                ],
            )
        ],
        probes=[
            network.ProbeArgs(
                name=PROBE,
                protocol=network.ProbeProtocol.TCP,
                port=check.port,
                interval_in_seconds=check.interval_seconds,
                probe_threshold=check.unhealthy_threshold,
            )
        ],
        load_balancing_rules=[
            network.LoadBalancingRuleArgs(
                name=RULE,
                protocol=network.TransportProtocol.TCP,
                frontend_port=plan.port,
                backend_port=plan.port,
                frontend_ip_configuration=_part(own_id, "frontendIPConfigurations", FRONTEND),
                backend_address_pool=_part(own_id, "backendAddressPools", POOL),
                probe=_part(own_id, "probes", PROBE),
                load_distribution=network.LoadDistribution.DEFAULT,
                idle_timeout_in_minutes=IDLE_TIMEOUT_MINUTES,
                enable_tcp_reset=True,
                enable_floating_ip=False,
                disable_outbound_snat=True,
            )
        ],
        tags=scope.tags_with(Name=name),
        opts=scope.opts(protect=plan.deletion_protection),
    )
    if public is not None:
        return LoadBalancerResult(address=public.ip_address.apply(_known))
    return LoadBalancerResult(address=balancer.frontend_ip_configurations.apply(_private_address))


def _private_address(frontends: Sequence[network.outputs.FrontendIPConfigurationResponse] | None) -> str:
    """The internal frontend's address, which Azure assigns on creation and keeps while the frontend lives."""
    return _known(frontends[0].private_ip_address if frontends else None)


def _known(address: str | None) -> str:
    if not address:
        raise ValueError("Azure gave the load balancer's frontend no address")
    return address
