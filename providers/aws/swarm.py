"""AWS side of the Swarm's formation: the bootstrap secrets as SSM SecureString parameters under
the stack's KMS key, and each node's user data rendered with the AWS CLI, the ECR credential helper
and device paths, gzip-compressed (a manager's scripts are more than EC2's 16 KiB of user data;
cloud-init reads gzip); secret where it holds an SSH host key.
"""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.base import Scope
from components.swarm import (
    BASTION_HOST_KEY,
    BOOTSTRAP_SECRETS,
    PLACEHOLDER,
    CloudHooks,
    SshAccess,
    SshHostKey,
    SwarmPlan,
    SwarmResult,
    hostname,
    render_bastion_cloud_init,
    render_node_cloud_init,
)

SECRET_STORE_SCRIPT = (Path(__file__).parent / "scripts" / "secret-store.sh").read_text()


def aws_hooks(region: str, key_arn: str) -> CloudHooks:
    """The AWS CLI and the SSM-backed secret store, for the node's region and key; ECR pulls through
    Debian's credential helper, which signs in with the node's own role (no stored registry token).
    """
    return CloudHooks(
        packages=("awscli", "amazon-ecr-credential-helper"),
        secret_store_script=SECRET_STORE_SCRIPT,
        environment={"DPC_REGION": region, "DPC_KEY_ID": key_arn},
        docker_credentials_store="ecr-login",
    )


def ebs_device(volume_id: str) -> str:
    """The stable device path of an EBS volume on a Nitro machine (NVMe serial is the volume id)."""
    return f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}"


def gzip_base64(user_data: str) -> str:
    """User data as EC2's `user_data_base64` takes it, gzip-compressed with no timestamp, so the same
    document always gives the same bytes (and no spurious instance change).
    """
    return base64.b64encode(gzip.compress(user_data.encode(), compresslevel=9, mtime=0)).decode()


def _access(plan: SwarmPlan, machine: str) -> pulumi.Output[SshAccess]:
    """The deploy key, the admins' keys and the machine's host key (if it has one), resolved."""
    key: SshHostKey | None = plan.host_keys.get(machine)
    host_key = pulumi.Output.all(key.private_openssh, key.public_openssh) if key else pulumi.Output.from_input(None)
    return pulumi.Output.all(plan.deploy_public_key, host_key).apply(
        lambda args: SshAccess(args[0], plan.layout.ssh_public_keys, (args[1][0], args[1][1]) if args[1] else None)
    )


def _secret_if_host_key(plan: SwarmPlan, machine: str, user_data: pulumi.Output[str]) -> pulumi.Output[str]:
    """Secret where the user data holds a host's private key; the others stay readable in previews
    (and to the policy pack), since they hold no secret: only the names of the secrets.
    """
    return pulumi.Output.secret(user_data) if machine in plan.host_keys else user_data


def build_swarm(scope: Scope, plan: SwarmPlan) -> SwarmResult:
    """Creates the bootstrap parameters and renders every node's and the bastion's user data."""
    parameters = {
        secret: aws.ssm.Parameter(
            scope.child(secret),
            name=f"/dpc/{scope.name}/{secret}",
            type="SecureString",
            key_id=plan.secrets_key_arn,
            value=PLACEHOLDER,
            description=f"Swarm bootstrap: {secret}, published by the managers",
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
        rendered = pulumi.Output.all(
            region, plan.secrets_key_arn, secret_names, volume_ids, _access(plan, node.name), plan.images_parameter_name
        ).apply(
            lambda args, node=node, mounts=mounts: gzip_base64(render_node_cloud_init(
                node=node,
                layout=plan.layout,
                hooks=aws_hooks(args[0], args[1]),
                secret_names=args[2],
                devices=[(ebs_device(volume_id), mount.mount_point) for volume_id, mount in zip(args[3], mounts, strict=True)],
                access=args[4],
                images_parameter=args[5],
            ))
        )
        user_data[node.name] = _secret_if_host_key(plan, node.name, rendered)
    bastion = _access(plan, BASTION_HOST_KEY).apply(
        lambda access: render_bastion_cloud_init(host=hostname(plan.layout.hostname_prefix, plan.layout.bastion), access=access)
    )
    return SwarmResult(
        user_data_base64=user_data,
        bastion_user_data=_secret_if_host_key(plan, BASTION_HOST_KEY, bastion),
        bootstrap_secret_ids={secret: p.arn for secret, p in parameters.items()},
    )
