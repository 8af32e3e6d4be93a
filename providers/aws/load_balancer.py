"""AWS load balancer: a network load balancer on TCP 5432 to the HAProxy nodes, cross-zone, with
its own security group; internal unless the stack lists client CIDRs.
"""

from __future__ import annotations

import pulumi_aws as aws

from components.base import Scope
from components.load_balancer import LoadBalancerPlan, LoadBalancerResult


def build_load_balancer(scope: Scope, plan: LoadBalancerPlan) -> LoadBalancerResult:
    """Creates the load balancer, its target group with health check, listener and targets."""
    check = plan.health_check
    balancer = aws.lb.LoadBalancer(
        scope.child("nlb"),
        load_balancer_type="network",
        internal=plan.internal,
        subnets=list(plan.subnet_ids),
        security_groups=[plan.firewall_group_id],
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
        vpc_id=plan.network_id,
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
    for node, instance_id in plan.target_ids.items():
        aws.lb.TargetGroupAttachment(
            scope.child(f"haproxy-{node}"),
            target_group_arn=targets.arn,
            target_id=instance_id,
            port=plan.port,
            opts=scope.opts(),
        )
    return LoadBalancerResult(dns_name=balancer.dns_name)
