"""AWS network: VPC, subnets, internet and NAT gateways, routes, one security group per role
generated from the model's firewall matrix, the default security group closed, VPC flow logs, and
the VPC endpoints that keep the nodes' AWS traffic (backups, images, bootstrap secrets) off NAT.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pulumi
import pulumi_aws as aws

from components.base import Scope
from components.network import ENDPOINTS_GROUP, NetworkPlan, NetworkResult
from dpc.model import FromCidrs, Rule
from providers.aws.arns import Account, account_of
from providers.aws.iam import service_trust_policy
from providers.common.firewall import FIREWALL_GROUPS, ports_label, source_cidrs, source_group, target_group

ALL_TRAFFIC = "-1"
ESP = "50"
HTTPS = 443

ENDPOINTS: dict[str, tuple[str, str]] = {
    "s3": ("Gateway", "Offsite backups by pgBackRest and ECR image layers"),
    "ecr.api": ("Interface", "Registry sign-in by the ECR credential helper"),
    "ecr.dkr": ("Interface", "Image pulls from the stack registry"),
    "ssm": ("Interface", "Bootstrap secrets and the image list in SSM"),
}
"""The AWS services the nodes call, by endpoint type, with what uses them (a tag value, so within
the characters every AWS service accepts in tags). A gateway endpoint sits in the private route
tables and is free; an interface endpoint sits in every private subnet, with private DNS so the
clients' usual names resolve to it, and is billed per zone-hour (README). No KMS and no STS
endpoint: no node calls them; SSM and S3 decrypt with the key on the nodes' behalf, and every
client takes its credentials from the instance metadata, not from STS."""


def _ingress(scope: Scope, group: str, group_id: pulumi.Input[str], rule: Rule, *, peer: dict[str, pulumi.Input[str]], source: str) -> None:
    esp = rule.protocol == "esp"
    name = scope.child(f"{group}-in-{ports_label(rule)}-from-{source}")
    aws.vpc.SecurityGroupIngressRule(
        name,
        security_group_id=group_id,
        ip_protocol=ESP if esp else rule.protocol,
        from_port=None if esp else rule.port,
        to_port=None if esp else rule.to_port,
        description=rule.purpose,
        tags=scope.tags_with(Name=name),
        opts=scope.opts(),
        **peer,
    )


def _security_groups(scope: Scope, plan: NetworkPlan, vpc: aws.ec2.Vpc) -> dict[str, aws.ec2.SecurityGroup]:
    groups: dict[str, aws.ec2.SecurityGroup] = {}
    for group in FIREWALL_GROUPS:
        groups[group] = aws.ec2.SecurityGroup(
            scope.child(f"{group}-sg"),
            vpc_id=vpc.id,
            description=f"dpc {group} machines: inbound only as the firewall matrix allows",
            tags=scope.tags_with(Name=scope.child(f"{group}-sg"), Role=group),
            opts=scope.opts(),
        )
        aws.vpc.SecurityGroupEgressRule(
            scope.child(f"{group}-out-all"),
            security_group_id=groups[group].id,
            ip_protocol=ALL_TRAFFIC,
            cidr_ipv4="0.0.0.0/0",
            description="All outbound traffic (packages, AWS APIs, backups)",
            tags=scope.tags_with(Name=scope.child(f"{group}-out-all")),
            opts=scope.opts(),
        )
    for rule in plan.rules:
        group = target_group(rule)
        source = rule.source
        if isinstance(source, FromCidrs):
            for index, cidr in enumerate(source_cidrs(plan, source)):
                _ingress(scope, group, groups[group].id, rule, peer={"cidr_ipv4": cidr}, source=f"{source.kind}{index}")
        else:
            peer = source_group(source)
            _ingress(scope, group, groups[group].id, rule, peer={"referenced_security_group_id": groups[peer].id}, source=peer)
    return groups


def _endpoints(
    scope: Scope, plan: NetworkPlan, vpc: aws.ec2.Vpc, *, region: pulumi.Input[str], subnets: list[pulumi.Output[str]], route_tables: list[pulumi.Output[str]]
) -> None:
    """The gateway and interface endpoints of the AWS services the nodes use, so their traffic
    stays inside the VPC; the interface endpoints accept HTTPS from the VPC only.
    """
    group = aws.ec2.SecurityGroup(
        scope.child("endpoints-sg"),
        vpc_id=vpc.id,
        description="dpc VPC interface endpoints: HTTPS from the VPC only",
        tags=scope.tags_with(Name=scope.child("endpoints-sg"), Role=ENDPOINTS_GROUP),
        opts=scope.opts(),
    )
    aws.vpc.SecurityGroupIngressRule(
        scope.child("endpoints-in-https-from-vpc"),
        security_group_id=group.id,
        ip_protocol="tcp",
        from_port=HTTPS,
        to_port=HTTPS,
        cidr_ipv4=plan.cidr,
        description="HTTPS to the AWS service endpoints from the VPC",
        tags=scope.tags_with(Name=scope.child("endpoints-in-https-from-vpc")),
        opts=scope.opts(),
    )
    for service, (kind, purpose) in ENDPOINTS.items():
        name = scope.child(f"{service.replace('.', '-')}-endpoint")
        placement: dict[str, Any] = (
            {"route_table_ids": route_tables}
            if kind == "Gateway"
            else {"subnet_ids": subnets, "security_group_ids": [group.id], "private_dns_enabled": True}
        )
        aws.ec2.VpcEndpoint(
            name,
            vpc_id=vpc.id,
            service_name=pulumi.Output.concat("com.amazonaws.", region, ".", service),
            vpc_endpoint_type=kind,
            tags=scope.tags_with(Name=name, Purpose=purpose),
            opts=scope.opts(),
            **placement,
        )


def _flow_logs_permissions(group_arn: str) -> str:
    """What the VPC guide lists for publishing flow logs to CloudWatch Logs, on the stack's log group
    (CreateLogGroup is called only when the group is missing, which it never is: it is created
    here). DescribeLogGroups lists groups and takes no resource but "*" (IAM's service authorization
    reference, which the plan's IAM linter checks).
    """
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                "Resource": [group_arn, f"{group_arn}:*"],
            },
            {"Effect": "Allow", "Action": ["logs:DescribeLogGroups"], "Resource": "*"},
        ],
    })


def _flow_logs(scope: Scope, plan: NetworkPlan, vpc: aws.ec2.Vpc, account: pulumi.Output[Account]) -> None:
    """Every flow of the VPC into an encrypted log group, published by a role only this account's
    flow logs may assume.
    """
    log_group = aws.cloudwatch.LogGroup(
        scope.child("flow-logs"),
        retention_in_days=plan.flow_log_retention_days,
        kms_key_id=plan.key_id,
        tags=scope.tags_with(Name=scope.child("flow-logs")),
        opts=scope.opts(),
    )
    role = aws.iam.Role(
        scope.child("flow-logs-role"),
        assume_role_policy=account.apply(
            lambda where: service_trust_policy("vpc-flow-logs.amazonaws.com", where.account_id, where.arn("ec2", "vpc-flow-log/*"))
        ),
        tags=scope.tags_with(Name=scope.child("flow-logs-role")),
        opts=scope.opts(),
    )
    # The group's ARN from its name, which the provider sets before a preview (the ARN it returns
    # is known only once the group exists): the permissions can be reviewed at preview.
    group_arn = pulumi.Output.all(account, log_group.name).apply(lambda a: cast(Account, a[0]).arn("logs", f"log-group:{a[1]}"))
    aws.iam.RolePolicy(
        scope.child("flow-logs-write"),
        role=role.id,
        policy=group_arn.apply(_flow_logs_permissions),
        opts=scope.opts(),
    )
    aws.ec2.FlowLog(
        scope.child("flow-log"),
        vpc_id=vpc.id,
        traffic_type="ALL",
        log_destination_type="cloud-watch-logs",
        log_destination=log_group.arn,
        iam_role_arn=role.arn,
        max_aggregation_interval=60,
        tags=scope.tags_with(Name=scope.child("flow-log")),
        opts=scope.opts(),
    )


def _subnet(scope: Scope, vpc: aws.ec2.Vpc, zone: str, cidr: str, tier: str) -> aws.ec2.Subnet:
    """A subnet of one zone; no machine gets a public address by default, even in a public subnet."""
    return aws.ec2.Subnet(
        scope.child(f"{tier}-{zone}"),
        vpc_id=vpc.id,
        cidr_block=cidr,
        availability_zone=zone,
        map_public_ip_on_launch=False,
        tags=scope.tags_with(Name=scope.child(f"{tier}-{zone}"), Tier=tier),
        opts=scope.opts(),
    )


def build_network(scope: Scope, plan: NetworkPlan) -> NetworkResult:
    """Creates the VPC and everything in it."""
    vpc = aws.ec2.Vpc(
        scope.child("vpc"),
        cidr_block=plan.cidr,
        enable_dns_hostnames=True,
        enable_dns_support=True,
        tags=scope.tags_with(Name=scope.child("vpc")),
        opts=scope.opts(),
    )
    aws.ec2.DefaultSecurityGroup(
        scope.child("default-sg-closed"),
        vpc_id=vpc.id,
        ingress=[],
        egress=[],
        tags=scope.tags_with(Name=scope.child("default-sg-closed")),
        opts=scope.opts(),
    )
    gateway = aws.ec2.InternetGateway(scope.child("igw"), vpc_id=vpc.id, tags=scope.tags_with(Name=scope.child("igw")), opts=scope.opts())
    public_routes = aws.ec2.RouteTable(
        scope.child("public-rt"), vpc_id=vpc.id, tags=scope.tags_with(Name=scope.child("public-rt")), opts=scope.opts()
    )
    aws.ec2.Route(
        scope.child("public-default"), route_table_id=public_routes.id, destination_cidr_block="0.0.0.0/0", gateway_id=gateway.id, opts=scope.opts()
    )

    public: dict[str, pulumi.Output[str]] = {}
    nats: dict[str, aws.ec2.NatGateway] = {}
    for index, (zone, cidr) in enumerate(zip(plan.zones, plan.public_cidrs, strict=True)):
        public_subnet = _subnet(scope, vpc, zone, cidr, "public")
        aws.ec2.RouteTableAssociation(
            scope.child(f"public-{zone}-rt"), subnet_id=public_subnet.id, route_table_id=public_routes.id, opts=scope.opts()
        )
        if plan.nat_per_zone or index == 0:
            address = aws.ec2.Eip(
                scope.child(f"nat-{zone}-ip"), domain="vpc", tags=scope.tags_with(Name=scope.child(f"nat-{zone}-ip")), opts=scope.opts()
            )
            nats[zone] = aws.ec2.NatGateway(
                scope.child(f"nat-{zone}"),
                allocation_id=address.id,
                subnet_id=public_subnet.id,
                tags=scope.tags_with(Name=scope.child(f"nat-{zone}")),
                opts=scope.opts(depends_on=[gateway]),
            )
        public[zone] = public_subnet.id

    shared_nat = nats[plan.zones[0]]
    private: dict[str, pulumi.Output[str]] = {}
    route_tables: list[pulumi.Output[str]] = []
    egress: dict[str, list[pulumi.Resource]] = {}
    for zone, cidr in zip(plan.zones, plan.private_cidrs, strict=True):
        nat = nats.get(zone, shared_nat)
        private_subnet = _subnet(scope, vpc, zone, cidr, "private")
        routes = aws.ec2.RouteTable(
            scope.child(f"private-{zone}-rt"), vpc_id=vpc.id, tags=scope.tags_with(Name=scope.child(f"private-{zone}-rt")), opts=scope.opts()
        )
        route_tables.append(routes.id)
        route = aws.ec2.Route(
            scope.child(f"private-{zone}-default"), route_table_id=routes.id, destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id, opts=scope.opts()
        )
        association = aws.ec2.RouteTableAssociation(
            scope.child(f"private-{zone}-rt-assoc"), subnet_id=private_subnet.id, route_table_id=routes.id, opts=scope.opts()
        )
        egress[zone] = [route, association]
        private[zone] = private_subnet.id

    groups = _security_groups(scope, plan, vpc)
    account = account_of(scope)
    _endpoints(scope, plan, vpc, region=account.apply(lambda where: where.region), subnets=list(private.values()), route_tables=route_tables)
    _flow_logs(scope, plan, vpc, account)
    return NetworkResult(
        network_id=vpc.id,
        public_subnet_ids=public,
        private_subnet_ids=private,
        firewall_group_ids={name: group.id for name, group in groups.items()},
        private_egress=egress,
    )
