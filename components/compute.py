"""Compute: the Swarm nodes and the bastion, each with its least-privilege identity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    user_data_base64: Mapping[str, pulumi.Output[str]]
    """Each node's user data, gzip-compressed and base64-encoded (`components.swarm`)."""
    bastion_user_data: pulumi.Output[str]
    boot_after: Mapping[str, Sequence[pulumi.Resource]]
    """By zone, what a node of the zone's private subnet must not boot before: its way out to the
    package archive (a node that boots first fails its first apt run)."""
    backup_agent_node: str
    """The one node whose containers act with its identity (`dpc.model.backup_agent_node`)."""
    attachments: Mapping[str, tuple[Attachment, ...]]
    key_id: pulumi.Output[str]
    bootstrap_secret_ids: Mapping[str, pulumi.Output[str]]
    backup_bucket_name: pulumi.Output[str]
    image_repository_ids: tuple[pulumi.Output[str], ...]
    """The registry's repositories, which the nodes pull from (`Capability.PULL_IMAGES`)."""
    image_list_id: pulumi.Output[str]
    """The list of the images the nodes pull, which they may read."""
    host_key_ids: Mapping[Role, tuple[pulumi.Output[str], ...]]
    """The host keys each role's identity may read: those of its machines `pulumi up` reaches."""
    capabilities: Mapping[Role, tuple[Capability, ...]]
    """What each role's machine identity may do (`dpc.model.role_capabilities`)."""
    deploy_public_key: pulumi.Output[str]
    """The deployment's own SSH key (`SwarmPlan.deploy_public_key`): where a cloud requires a key for
    a machine's first user (Azure), it gets this one, so no key but the deployment's and the admins'
    is ever authorised."""


@dataclass(frozen=True)
class ComputeResult:
    """Machine ids and private addresses by node name."""

    instance_ids: dict[str, pulumi.Output[str]]
    private_ips: dict[str, pulumi.Output[str]]
    bastion_public_ip: pulumi.Output[str]
    awaiting_replacement: pulumi.Output[list[str]]
    """Nodes whose running machine is not what the settings ask (`awaiting_replacement`)."""


MachineSpec = tuple[str | None, ...]
"""What a machine is made of, compared as a whole: its type, image and bootstrap (user data)."""


def awaiting_replacement(wanted: Mapping[str, MachineSpec], running: Mapping[str, MachineSpec]) -> list[str]:
    """The machines a plain `pulumi up` leaves as they are although the settings changed them: their
    machine type, image or bootstrap (user data). Applying such a change in place restarts the machine,
    and every node of a role at once would take the etcd quorum or the database down, so the
    program never does; each is applied by replacing that one node (README, "Changing machines"),
    and this list, in every preview, says which are waiting. A machine being created (its running
    values unknown) is waiting for nothing.
    """
    return sorted(
        node for node, spec in wanted.items()
        if node in running and None not in running[node] and running[node] != spec
    )


def machines_awaiting(wanted: pulumi.Input[Mapping[str, MachineSpec]], running: Mapping[str, pulumi.Output[MachineSpec]]) -> pulumi.Output[list[str]]:
    """`awaiting_replacement` of what each cloud's machines run, warned about in every preview. The
    list holds node names only, so it is not secret, whatever secret bootstraps the specs compared.
    """
    waiting = pulumi.Output.all(wanted, pulumi.Output.all(**running)).apply(lambda args: _warn(awaiting_replacement(args[0], args[1])))
    return pulumi.Output.unsecret(waiting)


def _warn(waiting: list[str]) -> list[str]:
    if waiting:
        pulumi.log.warn(
            f"machines not yet as the settings ask (what only a replacement applies, such as the machine type, image or bootstrap): {', '.join(waiting)}. "
            "They keep running as they are; replace them one at a time (README, \"Changing machines\")."
        )
    return waiting


class Compute(Component[ComputePlan, ComputeResult]):
    """The cluster's machines."""

    type_token = "dpc:compute:Compute"
