"""The prod stack's user data as providers/aws/swarm.py renders it, with stable stand-ins for what
the cloud assigns (the KMS key ARN, volume ids) and what the deployment generates (the deploy key,
the names of the host keys' parameters and of the image list): shared by the cloud-init checks,
the host key's installation and the bootstrap runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import yaml

from components.swarm import BASTION_HOST_KEY, BOOTSTRAP_SECRETS, SshAccess, SwarmLayout, render_bastion_cloud_init, render_node_cloud_init
from dpc.config import settings_from_stack_file
from dpc.model import Node, bastion_node, plan_nodes
from dpc.settings import Settings
from providers.aws.swarm import aws_hooks, ebs_device
from providers.composition import volume_plans

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STACK = "prod"
PREFIX = f"dpc-{STACK}"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET_NAMES = {secret: f"/dpc/{STACK}-swarm/{secret}" for secret in BOOTSTRAP_SECRETS}
"""As providers/aws/swarm.py names the SSM parameters: /dpc/<Swarm component name>/<secret>."""
IMAGES_PARAMETER = f"/dpc/{STACK}-registry/images"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx6ZXN0a2V5Zm9ydGVzdGluZ29ubHkxMjM0NTY3ODkw admin@example.com"
DEPLOY_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRlcGxveWtleWZvcnRlc3Rpbmdvbmx5MTIzNDU2Nzg5MA"
"""The deployment's identity (a public key; its private half is only in the Pulumi state)."""


HOST_KEY_MACHINES = ("manager-1", BASTION_HOST_KEY)
"""The machines `pulumi up` reaches over SSH, whose host keys the deployment generates."""
HOST_KEY_SECRETS = {machine: f"/dpc/{STACK}-swarm/host-keys/{machine}" for machine in HOST_KEY_MACHINES}
"""As providers/aws/swarm.py names the host keys' SSM parameters: /dpc/<Swarm component name>/host-keys/<machine>."""


def volume_id(volume_name: str) -> str:
    """A well-formed, stable EBS volume id (`vol-0` and 16 hex digits) standing in for the cloud's."""
    return "vol-0" + hashlib.sha256(volume_name.encode()).hexdigest()[:16]


@cache
def prod_settings() -> Settings:
    return settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{STACK}.yaml")


def prod_nodes() -> dict[str, Node]:
    return {node.name: node for node in plan_nodes(prod_settings())}


@cache
def swarm_layout(ssh_public_keys: tuple[str, ...], only: tuple[str, ...] | None = None) -> SwarmLayout:
    """The prod Swarm's layout, as the composition builds it (or with `only` these nodes, for runs
    that boot a smaller Swarm)."""
    settings = prod_settings()
    nodes = tuple(node for node in plan_nodes(settings) if only is None or node.name in only)
    return SwarmLayout(nodes, PREFIX, ssh_public_keys, bastion_node(settings))


def access(machine: str, ssh_public_keys: Sequence[str] = ()) -> SshAccess:
    """Who logs in to a machine and where its host key waits, as the composition plans them."""
    return SshAccess(DEPLOY_KEY, tuple(ssh_public_keys), HOST_KEY_SECRETS.get(machine))


def render_node(
    name: str,
    *,
    ssh_public_keys: Sequence[str] = (),
    key_arn: str = KEY_ARN,
    volume_id_of: Callable[[str], str] = volume_id,
    node_access: SshAccess | None = None,
    images_parameter: str = IMAGES_PARAMETER,
    only: tuple[str, ...] | None = None,
) -> str:
    """A node's user data as providers/aws/swarm.py renders it (before compression), with the composition's volumes."""
    settings = prod_settings()
    devices = [
        (ebs_device(volume_id_of(volume.name)), volume.mount_point)
        for volume in volume_plans(settings, plan_nodes(settings))
        if volume.node == name
    ]
    return render_node_cloud_init(
        node=prod_nodes()[name],
        layout=swarm_layout(tuple(ssh_public_keys), only),
        hooks=aws_hooks(settings.region, key_arn),
        secret_names=SECRET_NAMES,
        devices=devices,
        access=node_access or access(name, ssh_public_keys),
        images_parameter=images_parameter,
    )


def render_bastion(ssh_public_keys: Sequence[str] = (), bastion_access: SshAccess | None = None, key_arn: str = KEY_ARN) -> str:
    """The bastion's user data as providers/aws/swarm.py renders it."""
    settings = prod_settings()
    return render_bastion_cloud_init(
        host=f"{PREFIX}-{bastion_node(settings).name}",
        access=bastion_access or access(BASTION_HOST_KEY, ssh_public_keys),
        hooks=aws_hooks(settings.region, key_arn),
    )


def write_files(user_data: str) -> dict[str, str]:
    """The files a user data writes, by path."""
    document = yaml.safe_load(user_data)
    return {entry["path"]: entry["content"] for entry in document.get("write_files", [])}
