"""Mocks that answer like AWS would, so that every dependent value of the program resolves:
deterministic ids, ARNs, DNS names and addresses derived from each resource's name.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

import pulumi

ACCOUNT = "123456789012"
PARTITION = "aws"

_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc-",
    "aws:ec2/subnet:Subnet": "subnet-",
    "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg-",
    "aws:ec2/internetGateway:InternetGateway": "igw-",
    "aws:ec2/natGateway:NatGateway": "nat-",
    "aws:ec2/eip:Eip": "eipalloc-",
    "aws:ec2/routeTable:RouteTable": "rtb-",
    "aws:ec2/instance:Instance": "i-",
    "aws:ebs/volume:Volume": "vol-",
    "aws:ec2/flowLog:FlowLog": "fl-",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr-",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr-",
}

_ARN_SERVICE = {
    "aws:kms/key:Key": ("kms", "key/"),
    "aws:s3/bucket:Bucket": ("s3", ""),
    "aws:iam/role:Role": ("iam", "role/"),
    "aws:iam/instanceProfile:InstanceProfile": ("iam", "instance-profile/"),
    "aws:cloudwatch/logGroup:LogGroup": ("logs", "log-group:"),
    "aws:lb/loadBalancer:LoadBalancer": ("elasticloadbalancing", "loadbalancer/net/"),
    "aws:lb/targetGroup:TargetGroup": ("elasticloadbalancing", "targetgroup/"),
    "aws:lb/listener:Listener": ("elasticloadbalancing", "listener/net/"),
    "aws:ssm/parameter:Parameter": ("ssm", "parameter"),
    "aws:ec2/instance:Instance": ("ec2", "instance/"),
}


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def mock_id(typ: str, name: str) -> str:
    """The id the mocks give a resource of this type and name: shaped like the cloud's, stable."""
    prefix = _ID_PREFIX.get(typ)
    return f"{prefix}{_digest(name, 17)}" if prefix else f"{name}-{_digest(name, 8)}"


class AwsMocks(pulumi.runtime.Mocks):
    """Realistic answers for the resources and data sources the program uses."""

    def __init__(self, region: str) -> None:
        self.region = region

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        """An id shaped like the cloud's, and the outputs dependent resources read."""
        state: dict[str, Any] = dict(cast(dict[str, Any], args.inputs))  # pyright: ignore[reportUnknownMemberType]  # the SDK types inputs as a bare dict
        resource_id = mock_id(args.typ, args.name)
        if args.typ == "aws:s3/bucket:Bucket":
            state["bucket"] = resource_id
        if args.typ == "aws:ssm/parameter:Parameter":
            resource_id = str(state["name"])
        if args.typ == "aws:kms/key:Key":
            digest = _digest(args.name, 32)
            resource_id = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"
            state["keyId"] = resource_id
        if args.typ in _ARN_SERVICE:
            service, kind = _ARN_SERVICE[args.typ]
            if service == "s3":
                state["arn"] = f"arn:{PARTITION}:s3:::{resource_id}"
            elif service == "ssm":
                state["arn"] = f"arn:{PARTITION}:ssm:{self.region}:{ACCOUNT}:parameter{resource_id}"
            else:
                region = "" if service == "iam" else self.region
                state["arn"] = f"arn:{PARTITION}:{service}:{region}:{ACCOUNT}:{kind}{resource_id}"
        if args.typ in {"aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile"}:
            state.setdefault("name", resource_id)
        if args.typ == "aws:ec2/instance:Instance":
            state["privateIp"] = f"10.0.{int(_digest(args.name, 2), 16) % 250}.{int(_digest(args.name + 'x', 2), 16) % 250 + 4}"
            state["publicIp"] = "198.51.100.10" if state.get("associatePublicIpAddress") else ""
        if args.typ == "aws:lb/loadBalancer:LoadBalancer":
            state["dnsName"] = f"{resource_id}.elb.{self.region}.amazonaws.com"
        if args.typ == "aws:budgets/budget:Budget":
            state.setdefault("name", resource_id)
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """The data sources: who we are, where we are, which image; no check failures."""
        return self._answer(args.token, cast(dict[str, Any], args.args)), []  # pyright: ignore[reportUnknownMemberType]  # the SDK types args as a bare dict

    def _answer(self, token: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:{PARTITION}:iam::{ACCOUNT}:user/planner", "userId": "AIDAPLANNER", "id": ACCOUNT}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": PARTITION, "dnsSuffix": "amazonaws.com", "id": PARTITION}
        if token == "aws:index/getRegion:getRegion":
            return {"region": self.region, "name": self.region, "id": self.region}
        if token == "aws:ec2/getAmi:getAmi":
            name = str(arguments["filters"][0]["values"][0])
            return {"id": f"ami-{_digest(name, 17)}", "name": name, "architecture": "x86_64"}
        raise NotImplementedError(f"the offline plan has no answer for data source {token}")
