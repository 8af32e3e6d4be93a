"""What one machine drives of its attached disks, held against the volumes the settings put on it:
the same rule for every cloud that sells disk performance apart from size (AWS gp3, Azure Premium
SSD v2), read from each machine type's block-storage limits in `dpc.catalog`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

from dpc.catalog import MACHINE_TYPES, Cloud, ProvisionedDisk
from dpc.model import Role
from dpc.settings import NodeGroup, Problem, Settings, VolumeSettings, provisioned_disk_problems
from dpc.topology import backup_agent_role


def volumes_by_node_group(s: Settings) -> dict[str, dict[str, VolumeSettings]]:
    """The volumes one node of each group carries, by node group and volume key: a worker the data
    and WAL volumes, the backup agent's node (the backup node, or manager-1 without one) the backup
    volume. Root volumes are left out: they idle after boot.
    """
    agent_group = "backup" if backup_agent_role(s) is Role.BACKUP else "managers"
    return {
        "workers": {"data": s.storage.data, "wal": s.storage.wal},
        agent_group: {"backup": s.storage.backup},
    }


def machine_storage_problems(s: Settings, cloud: Cloud, disk: ProvisionedDisk, unit: str, per_second: Callable[[int], int]) -> Iterator[Problem]:
    """The volumes of one node together against the most its machine type can drive (its burst
    maximum, held for at least 30 minutes at a time): IOPS and throughput bought beyond it never
    reach the machine. A figure every volume leaves at what the disk type includes is bought by
    none and passes. `per_second` turns the catalogue's megabits per second into the disk's `unit`.
    """
    for group, volumes in volumes_by_node_group(s).items():
        if any(next(provisioned_disk_problems(volume_name, volume, disk, unit), None) for volume_name, volume in volumes.items()):
            continue  # a volume the disk type cannot provision is reported as such; its sum says nothing more
        name = cast(NodeGroup, getattr(s.nodes, group)).machine_type
        machine = MACHINE_TYPES[cloud].get(name)
        limits = machine.storage if machine else None
        if limits is None:
            continue
        keys, first = " + ".join(f"dpc:storage.{volume}" for volume in volumes), next(iter(volumes))
        iops = sum(volume.iops or 0 for volume in volumes.values())
        if iops > limits.maximum_iops and any((volume.iops or 0) > disk.min_iops for volume in volumes.values()):
            yield Problem(
                f"storage.{first}.iops",
                f"{keys} provision {iops} IOPS on one {group} node; its {name} drives at most {limits.maximum_iops} (sustained {limits.baseline_iops})",
                f"provision at most {limits.maximum_iops} IOPS in total, or a dpc:nodes.{group}.machineType that drives more",
            )
        throughput = sum(volume.throughput_mbps or 0 for volume in volumes.values())
        ceiling = per_second(limits.maximum_mbps)
        if throughput > ceiling and any((volume.throughput_mbps or 0) > disk.min_throughput for volume in volumes.values()):
            yield Problem(
                f"storage.{first}.throughputMbps",
                f"{keys} provision {throughput} {unit} on one {group} node; its {name} drives at most {ceiling} {unit} "
                f"({limits.maximum_mbps} Mbps; sustained {per_second(limits.baseline_mbps)} {unit})",
                f"provision at most {ceiling} {unit} in total, or a dpc:nodes.{group}.machineType that drives more",
            )
