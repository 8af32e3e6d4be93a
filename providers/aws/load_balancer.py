"""AWS load balancer: a network load balancer on TCP 5432 to the HAProxy nodes, cross-zone, with
its own security group; internal unless the stack lists client CIDRs.
"""

from __future__ import annotations

import pulumi_aws as aws

from components.base import Scope
from components.load_balancer import LoadBalancerPlan, LoadBalancerResult
from components.network import LOAD_BALANCER_GROUP


def build_load_balancer(scope: Scope, plan: LoadBalancerPlan) -> LoadBalancerResult:
    """Creates the load balancer, its target group with health check, listener and targets."""
    check = plan.health_check
    subnets = plan.network.private_subnet_ids if plan.internal else plan.network.public_subnet_ids
    balancer = aws.lb.LoadBalancer(
        scope.child("nlb"),
        load_balancer_type="network",
        internal=plan.internal,
        subnets=[subnets[zone] for zone in plan.zones],
        security_groups=[plan.network.firewall_group_ids[LOAD_BALANCER_GROUP]],
        enable_cross_zone_load_balancing=True,
        enable_deletion_protection=plan.deletion_protection,
        tags=scope.tags_with(Name=scope.child("nlb")),
        opts=scope.opts(),
    )
    targets = aws.lb.TargetGroup(
        scope.child("haproxy"),
        port=plan.port,
        protocol="TCP",
        target_type="instance",
        vpc_id=plan.network.network_id,
        deregistration_delay=30,
        health_check={
            "enabled": True,
            "protocol": check.protocol,
            "port": str(check.port),
            "interval": check.interval_seconds,
            "healthy_threshold": check.healthy_threshold,
            "unhealthy_threshold": check.unhealthy_threshold,
        },
        tags=scope.tags_with(Name=scope.child("haproxy")),
        opts=scope.opts(),
    )
    aws.lb.Listener(
        scope.child("postgres"),
        load_balancer_arn=balancer.arn,
        port=plan.port,
        protocol="TCP",
        default_actions=[{"type": "forward", "target_group_arn": targets.arn}],
        tags=scope.tags_with(Name=scope.child("postgres")),
        opts=scope.opts(),
    )
    for target in plan.targets:
        aws.lb.TargetGroupAttachment(
            scope.child(f"haproxy-{target.node}"),
            target_group_arn=targets.arn,
            target_id=target.machine_id,
            port=plan.port,
            opts=scope.opts(),
        )
    return LoadBalancerResult(address=balancer.dns_name)
