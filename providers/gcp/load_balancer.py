"""GCP load balancer: a passthrough Network Load Balancer on TCP 5432 to the HAProxy nodes, with the
health check of design §2.4; internal (in the private subnetwork, named in the VPC's DNS by its
service label) unless the stack lists client CIDRs, then external.

A passthrough load balancer is no proxy and no machine: the managers see the clients' own
addresses, so the managers' firewall rules (`providers.gcp.network`) admit the clients and Google's
health checks, and the balancer has no firewall group of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_gcp as gcp

from components.base import Scope
from components.load_balancer import LoadBalancerPlan, LoadBalancerResult, LoadBalancerTarget
from providers.gcp.labels import scope_labels
from providers.gcp.network import gcp_name

SERVICE_LABEL = "postgres"
"""The first label of the internal endpoint's DNS name:
`postgres.<forwarding rule>.il4.<region>.lb.<project>.internal`."""

DRAINING_SECONDS = 30
"""How long a target leaving the group keeps its established connections (AWS's deregistration delay)."""


def _by_zone(targets: tuple[LoadBalancerTarget, ...]) -> Mapping[str, list[pulumi.Output[str]]]:
    zones: dict[str, list[pulumi.Output[str]]] = {}
    for target in targets:
        zones.setdefault(target.zone, []).append(target.machine_id)
    return zones


def build_load_balancer(scope: Scope, plan: LoadBalancerPlan) -> LoadBalancerResult:
    """Creates the health check, an unmanaged instance group per zone of the targets, the regional
    backend service over them and the forwarding rule clients connect to.

    GCP has no deletion protection on forwarding rules: in prod the forwarding rule (its address and
    DNS name are what clients hold) is protected in the stack instead (`protect`), which makes an
    update that would delete or replace it fail, as AWS's deletion protection does.
    """
    check = plan.health_check
    if check.protocol != "TCP":
        raise ValueError(f"the GCP load balancer checks its targets over TCP, not {check.protocol}")
    health = gcp.compute.RegionHealthCheck(
        scope.child("health"),
        check_interval_sec=check.interval_seconds,
        healthy_threshold=check.healthy_threshold,
        unhealthy_threshold=check.unhealthy_threshold,
        tcp_health_check=gcp.compute.RegionHealthCheckTcpHealthCheckArgs(port=check.port),
        description="HAProxy accepts PostgreSQL connections (design §2.4)",
        opts=scope.opts(),
    )
    groups = [
        gcp.compute.InstanceGroup(
            scope.child(f"haproxy-{zone}"),
            zone=zone,
            network=plan.network.network_id,
            instances=instances,
            description=f"dpc HAProxy nodes in {zone}",
            opts=scope.opts(),
        )
        for zone, instances in _by_zone(plan.targets).items()
    ]
    scheme = "INTERNAL" if plan.internal else "EXTERNAL"
    backend = gcp.compute.RegionBackendService(
        scope.child("haproxy"),
        load_balancing_scheme=scheme,
        protocol="TCP",
        health_checks=health.id,
        backends=[gcp.compute.RegionBackendServiceBackendArgs(group=group.self_link, balancing_mode="CONNECTION") for group in groups],
        connection_draining_timeout_sec=DRAINING_SECONDS,
        network=plan.network.network_id if plan.internal else None,
        description="dpc HAProxy nodes, TCP 5432",
        opts=scope.opts(),
    )
    name = scope.child("postgres")
    rule = gcp.compute.ForwardingRule(
        name,
        name=gcp_name(name),
        load_balancing_scheme=scheme,
        backend_service=backend.id,
        ip_protocol="TCP",
        ports=[str(plan.port)],
        # Internal: an address of the private subnetwork (every zone's), and a DNS name in the VPC.
        network=plan.network.network_id if plan.internal else None,
        subnetwork=plan.network.private_subnet_ids[plan.zones[0]] if plan.internal else None,
        service_label=SERVICE_LABEL if plan.internal else None,
        labels=scope_labels(scope, Name=name),
        description="dpc PostgreSQL endpoint (design §2.4)",
        # Named by the program: the name is part of the DNS name clients use, and stays across updates.
        opts=scope.opts(protect=plan.deletion_protection, delete_before_replace=True),
    )
    return LoadBalancerResult(address=rule.service_name if plan.internal else rule.ip_address)
