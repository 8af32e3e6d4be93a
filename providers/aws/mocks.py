"""The offline plan's AWS (`review.mocks` hands it every `aws:` resource and data source): deterministic
ids, ARNs, DNS names and addresses derived from each resource's name, so that every dependent value
of the program resolves as it would against AWS.

With `preview`, it answers as the engine does in a stack's first `pulumi preview` instead: a
resource to be created has no id yet and its provider computes nothing, so it echoes its inputs and
every other output (ids, ARNs, addresses, generated names) stays unknown.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any, cast

import pulumi

from review.mocks import digest

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


_AUTONAMED = {
    "aws:s3/bucket:Bucket": "bucket",
    "aws:iam/role:Role": "name",
    "aws:iam/instanceProfile:InstanceProfile": "name",
    "aws:cloudwatch/logGroup:LogGroup": "name",
}
"""The name property the AWS provider fills when the program leaves it out: its Check does, before a
preview, so the name is known at preview where the id and the ARN are not.
"""


def mock_id(typ: str, name: str, *_context: Mapping[str, Any]) -> str:
    """The id the mocks give an AWS resource of this type and name: shaped like AWS's, stable (AWS's
    ids name no region or account, so the inputs and the provider's, `_context`, play no part).
    """
    prefix = _ID_PREFIX.get(typ)
    return f"{prefix}{digest(name, 17)}" if prefix else f"{name}-{digest(name, 8)}"


PUBLIC_IMAGE_LIFETIME = datetime.timedelta(days=2 * 365)
"""EC2 deprecates a public AMI two years after it is made; filtered lookups then leave it out."""


def _deprecated(image_name: str, today: datetime.date) -> bool:
    """Whether an image named with its build date (Debian's `debian-12-amd64-20241201-1948`) is past
    EC2's default deprecation, as the real lookup would see it today.
    """
    match = re.search(r"-(\d{8})-\d{4}$", image_name)
    if match is None:
        return False
    made = datetime.datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=datetime.UTC).date()
    return today - made > PUBLIC_IMAGE_LIFETIME


def _arn(typ: str, resource_id: str, region: str) -> str:
    """The ARN of a resource of one of the types in _ARN_SERVICE, in its provider's region."""
    service, kind = _ARN_SERVICE[typ]
    if service == "s3":
        return f"arn:{PARTITION}:s3:::{resource_id}"
    if service == "ssm":
        return f"arn:{PARTITION}:ssm:{region}:{ACCOUNT}:parameter{resource_id}"
    return f"arn:{PARTITION}:{service}:{'' if service == 'iam' else region}:{ACCOUNT}:{kind}{resource_id}"


class AwsMocks(pulumi.runtime.Mocks):
    """Realistic answers for the AWS resources and data sources the program uses."""

    def __init__(self, region: str, today: datetime.date | None = None, *, preview: bool = False) -> None:
        self.region = region
        self.preview = preview
        """Answer as a first preview: every resource is a create, known only by its inputs."""
        self.today = today or datetime.datetime.now(datetime.UTC).date()
        """The day the lookups answer for (images deprecate with time)."""
        self.provider_regions: dict[str, str] = {}
        """Region of each explicit AWS provider, by name: a resource's ARN names its provider's region."""

    def _region_of(self, provider: str | None) -> str:
        """The region of the provider a resource uses (a reference `urn::id`); the stack's by default."""
        name = provider.split("::")[-2] if provider else ""
        return self.provider_regions.get(name, self.region)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        """An id shaped like AWS's, and the outputs dependent resources read; at preview no id (the
        SDK then resolves it unknown, as it does for the empty id a provider sends for a create it
        previews) and the inputs alone, every output missing from them left unknown.
        """
        state: dict[str, Any] = dict(cast(dict[str, Any], args.inputs))  # pyright: ignore[reportUnknownMemberType]  # the SDK types inputs as a bare dict
        if args.typ in _AUTONAMED:
            state.setdefault(_AUTONAMED[args.typ], mock_id(args.typ, args.name))
        if self.preview:
            return "", state
        if args.typ == "pulumi:providers:aws" and "region" in state:
            self.provider_regions[args.name] = str(state["region"])
        region = self._region_of(args.provider)
        resource_id = mock_id(args.typ, args.name)
        if args.typ == "aws:s3/bucket:Bucket":
            resource_id = str(state["bucket"])
        if args.typ == "aws:ssm/parameter:Parameter":
            resource_id = str(state["name"])
            state["version"] = 1
        if args.typ == "aws:kms/key:Key":
            key = digest(args.name, 32)
            resource_id = f"{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:20]}-{key[20:]}"
            state["keyId"] = resource_id
        if args.typ in _ARN_SERVICE:
            state["arn"] = _arn(args.typ, resource_id, region)
        if args.typ == "aws:ec2/instance:Instance":
            state["privateIp"] = f"10.0.{int(digest(args.name, 2), 16) % 250}.{int(digest(args.name + 'x', 2), 16) % 250 + 4}"
            state["publicIp"] = "198.51.100.10" if state.get("associatePublicIpAddress") else ""
        if args.typ == "aws:lb/loadBalancer:LoadBalancer":
            state["dnsName"] = f"{resource_id}.elb.{region}.amazonaws.com"
        if args.typ == "aws:budgets/budget:Budget":
            state.setdefault("name", resource_id)
        if args.typ == "aws:ecr/repository:Repository":
            state["registryId"] = ACCOUNT
            state["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{state['name']}"
            state["arn"] = f"arn:{PARTITION}:ecr:{region}:{ACCOUNT}:repository/{state['name']}"
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
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com",
                "userName": "AWS",
                "password": "mock-registry-token",
                "authorizationToken": "mock-registry-token",
                "expiresAt": "2026-01-01T00:00:00Z",
                "id": self.region,
            }
        if token == "aws:ec2/getAmi:getAmi":
            name = str(arguments["filters"][0]["values"][0])
            if _deprecated(name, self.today) and not arguments.get("includeDeprecated"):
                raise ValueError(f"Your query returned no results: {name} is deprecated (over two years old); the lookup leaves those out")
            return {"id": f"ami-{digest(name, 17)}", "name": name, "architecture": "x86_64"}
        raise NotImplementedError(f"the offline plan has no answer for data source {token}")


def for_stack(config: Mapping[str, str], today: datetime.date, *, preview: bool) -> AwsMocks:
    """The AWS mocks of a stack: its region from its config (`dpc:region`)."""
    return AwsMocks(config.get("dpc:region", "us-east-1"), today, preview=preview)
