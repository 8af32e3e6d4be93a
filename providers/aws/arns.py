"""ARNs the program can name before the cloud makes the resource. An SSM parameter's and an ECR
repository's ARN follow from the partition, the region, the account and the name the program
chooses, so the policies that grant them are whole documents at a stack's first preview, where
the resources' own `arn` outputs are still unknown and the policy pack could not judge them
(design §10.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.base import Scope


def bucket_arn(partition: str, name: str) -> str:
    """An S3 bucket's ARN: global, so its partition and its (globally unique) name alone."""
    return f"arn:{partition}:s3:::{name}"


@dataclass(frozen=True)
class Account:
    """Where the stack's resources live: their partition, region and account."""

    partition: str
    region: str
    account_id: str

    def arn(self, service: str, resource: str) -> str:
        """The ARN of a regional resource of this account: `arn:partition:service:region:account:resource`."""
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"

    def parameter(self, name: str) -> str:
        """An SSM parameter's ARN; a hierarchical name (`/dpc/...`) keeps its leading slash."""
        if not name.startswith("/"):
            raise ValueError(f"SSM parameter {name!r}: the stack's parameters are hierarchical, under /dpc/")
        return self.arn("ssm", f"parameter{name}")

    def bucket(self, name: str) -> str:
        """An S3 bucket's ARN (`bucket_arn`)."""
        return bucket_arn(self.partition, name)

    def repository(self, name: str) -> str:
        """An ECR repository's ARN."""
        return self.arn("ecr", f"repository/{name}")


def account_of(scope: Scope) -> pulumi.Output[Account]:
    """The account the program runs in, from the provider's own invokes (known at preview)."""
    invoke = pulumi.InvokeOutputOptions(parent=scope.component)
    return pulumi.Output.all(
        aws.get_partition_output(opts=invoke).partition,
        aws.get_region_output(opts=invoke).region,
        aws.get_caller_identity_output(opts=invoke).account_id,
    ).apply(lambda args: Account(*args))
