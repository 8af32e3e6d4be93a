"""AWS side of the Swarm's formation: the bootstrap secrets as SSM SecureString parameters under
the stack's KMS key, and each node's user data rendered with the AWS CLI and device paths.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.base import Scope
from components.swarm import BOOTSTRAP_SECRETS, PLACEHOLDER, CloudHooks, SwarmPlan, SwarmResult, render_node_cloud_init

SECRET_STORE_SCRIPT = (Path(__file__).parent / "scripts" / "secret-store.sh").read_text()


def aws_hooks(region: str, key_arn: str) -> CloudHooks:
    """The AWS CLI and the SSM-backed secret store, for the node's region and key."""
    return CloudHooks(
        packages=("awscli",),
        secret_store_script=SECRET_STORE_SCRIPT,
        environment={"DPC_REGION": region, "DPC_KEY_ID": key_arn},
    )


def ebs_device(volume_id: str) -> str:
    """The stable device path of an EBS volume on a Nitro machine (NVMe serial is the volume id)."""
    return f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}"


def build_swarm(scope: Scope, plan: SwarmPlan) -> SwarmResult:
    """Creates the bootstrap parameters and renders every node's user data."""
    parameters = {
        secret: aws.ssm.Parameter(
            scope.child(secret),
            name=f"/dpc/{scope.name}/{secret}",
            type="SecureString",
            key_id=plan.secrets_key_arn,
            value=PLACEHOLDER,
            description=f"Swarm bootstrap: {secret}, published by manager-1 at boot",
            tags=scope.tags_with(Name=scope.child(secret)),
            opts=scope.opts(ignore_changes=["value"]),
        )
        for secret in BOOTSTRAP_SECRETS
    }
    names = {secret: parameter.name for secret, parameter in parameters.items()}
    region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=scope.component)).region
    secret_names = pulumi.Output.all(**names)
    user_data: dict[str, pulumi.Output[str]] = {}
    for node in plan.layout.nodes:
        mounts = plan.mounts.get(node.name, ())
        volume_ids = pulumi.Output.all(*(mount.volume_id for mount in mounts))
        user_data[node.name] = pulumi.Output.all(region, plan.secrets_key_arn, secret_names, volume_ids).apply(
            lambda args, node=node, mounts=mounts: render_node_cloud_init(
                node=node,
                layout=plan.layout,
                hooks=aws_hooks(args[0], args[1]),
                secret_names=args[2],
                devices=[(ebs_device(volume_id), mount.mount_point) for volume_id, mount in zip(args[3], mounts, strict=True)],
            )
        )
    return SwarmResult(user_data=user_data, bootstrap_secret_ids={secret: p.arn for secret, p in parameters.items()})
