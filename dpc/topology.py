"""What follows from a stack's settings, derived once: the machines and their zones, where the
backup agent runs, what each role's machine identity may do, the volumes with their mount points,
and the database cluster's layout (design §1, §4.1).

The composition, the database stack, the stack-file export, the local Swarm lab and the policy
pack all read one `Topology` made by `derive`, so none recomputes a fact another could disagree with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dpc.cluster import ClusterLayout, backup_mount_point, patroni_mount_points, swarm_layout
from dpc.model import Capability, Node, Role, bastion_node, plan_nodes, role_capabilities
from dpc.settings import Settings, VolumeSettings


@dataclass(frozen=True)
class ProvisionedPerformance:
    """Performance bought separately from a disk's size (AWS gp3: IOPS and throughput)."""

    iops: int
    throughput_mbps: int


@dataclass(frozen=True)
class VolumePlan:
    """One block volume, created in its node's zone and mounted at `mount_point` there.

    `performance` is None on a cloud whose SSD class derives performance from size (GCP's pd-ssd):
    the settings of such a cloud refuse IOPS and throughput figures (`providers/<cloud>/settings.py`).
    """

    node: str
    purpose: str
    zone: str
    size_gb: int
    performance: ProvisionedPerformance | None
    mount_point: str

    @property
    def name(self) -> str:
        """`worker-1-data`."""
        return f"{self.node}-{self.purpose}"


@dataclass(frozen=True)
class Topology:
    """Everything the stack's parts share that follows from its settings."""

    settings: Settings
    nodes: tuple[Node, ...]
    """The Swarm's nodes, each role spread round-robin over the zones (`dpc.model.plan_nodes`)."""
    bastion: Node
    backup_agent: Node
    """The node the backup agent (pgBackRest's repository host) runs on: the backup node when the
    stack has one (design §1.1: optional), otherwise the first manager. It holds the backup volume,
    and only its containers may act with the node's identity."""
    capabilities: Mapping[Role, tuple[Capability, ...]]
    volumes: tuple[VolumePlan, ...]
    layout: ClusterLayout

    def of_role(self, role: Role) -> tuple[Node, ...]:
        """The nodes of one role, in index order."""
        return tuple(node for node in self.nodes if node.role is role)

    @property
    def swarm_initialiser(self) -> Node:
        """manager-1, which initialises the Swarm and which `pulumi up` reaches."""
        return next(node for node in self.nodes if node.swarm_init)


def _volume(node: Node, purpose: str, spec: VolumeSettings, mount_point: str) -> VolumePlan:
    performance = None if spec.iops is None or spec.throughput_mbps is None else ProvisionedPerformance(spec.iops, spec.throughput_mbps)
    return VolumePlan(node.name, purpose, node.zone, spec.size_gb, performance, mount_point)


def _volumes(settings: Settings, nodes: tuple[Node, ...], agent: Node) -> tuple[VolumePlan, ...]:
    """Design §4.1: per worker a data and a WAL volume; the backup volume where the backup agent runs."""
    storage = settings.storage
    volumes: list[VolumePlan] = []
    for node in nodes:
        if node.role is Role.WORKER:
            data, wal = patroni_mount_points(node.index)
            volumes += [_volume(node, "data", storage.data, data), _volume(node, "wal", storage.wal, wal)]
        if node == agent:
            volumes.append(_volume(node, "backups", storage.backup, backup_mount_point()))
    return tuple(volumes)


def backup_agent_role(settings: Settings) -> Role:
    """Where the backup agent runs (`Topology.backup_agent`): the backup node's role when the stack
    has one, else the managers'. Settings rules that weigh the agent's volume read it too.
    """
    return Role.BACKUP if settings.nodes.backup.count > 0 else Role.MANAGER


def derive(settings: Settings) -> Topology:
    """The stack's topology; validated settings guarantee every role it reads has its members."""
    nodes = tuple(plan_nodes(settings))
    agent_role = backup_agent_role(settings)
    agent = next(node for node in nodes if node.role is agent_role)
    return Topology(
        settings=settings,
        nodes=nodes,
        bastion=bastion_node(settings),
        backup_agent=agent,
        capabilities=role_capabilities(agent_role),
        volumes=_volumes(settings, nodes, agent),
        layout=swarm_layout(settings, nodes),
    )
