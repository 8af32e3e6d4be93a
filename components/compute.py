"""Compute: the Swarm nodes and the bastion, each with its least-privilege identity."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from components.base import Component
from dpc.model import Capability, Node, Role
from dpc.settings import ImageSettings


@dataclass(frozen=True)
class Attachment:
    """A volume attached to a node at a device slot (0 is the first data disk)."""

    volume_id: pulumi.Output[str]
    slot: int


@dataclass(frozen=True)
class ComputePlan:
    """The machines and everything they are plugged into."""

    nodes: tuple[Node, ...]
    bastion: Node
    hostname_prefix: str
    image: ImageSettings
    private_subnet_ids: Mapping[str, pulumi.Output[str]]
    public_subnet_ids: Mapping[str, pulumi.Output[str]]
    firewall_group_ids: Mapping[str, pulumi.Output[str]]
    user_data: Mapping[str, pulumi.Output[str]]
    bastion_user_data: str
    attachments: Mapping[str, tuple[Attachment, ...]]
    key_arn: pulumi.Output[str]
    bootstrap_secret_ids: Mapping[str, pulumi.Output[str]]
    backup_bucket_arn: pulumi.Output[str]
    image_repository_ids: tuple[pulumi.Output[str], ...]
    """The registry's repositories, which the nodes pull from (`Capability.PULL_IMAGES`)."""
    image_list_id: pulumi.Output[str]
    """The list of the images the nodes pull, which they may read."""
    capabilities: Mapping[Role, tuple[Capability, ...]]
    """What each role's machine identity may do (`dpc.model.role_capabilities`)."""


@dataclass(frozen=True)
class ComputeResult:
    """Machine ids and private addresses by node name."""

    instance_ids: dict[str, pulumi.Output[str]]
    private_ips: dict[str, pulumi.Output[str]]
    bastion_public_ip: pulumi.Output[str]


class Compute(Component[ComputePlan, ComputeResult]):
    """The cluster's machines."""

    type_token = "dpc:compute:Compute"
