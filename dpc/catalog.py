"""Machine types each cloud offers to this product, with the figures sizing needs.

Settings are checked against this catalogue so that a typo in a machine type fails
before anything is created, the PostgreSQL sizing (design §6.1) reads memory from
here rather than from a second, hand-kept table, and the volumes a node carries are
checked against the block-storage bandwidth its machine type can drive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Cloud = Literal["aws", "gcp", "azure", "local"]
"""`local`: the database stack alone, on the Docker engine the program runs next to."""


@dataclass(frozen=True)
class BlockStorageLimits:
    """What one machine can drive of its attached volumes, all of them together.

    `baseline_*` is sustained; `maximum_*` the burst the machine reaches for at least 30 minutes
    once every 24 hours (AWS's words; Azure's: up to 30 minutes at a time) and never exceeds.
    Bandwidth in megabits per second as AWS publishes it (Azure's MB/s times 8); `mib_per_second`
    and `megabytes_per_second` convert it to the unit volumes are provisioned in.
    """

    baseline_mbps: int
    maximum_mbps: int
    baseline_iops: int
    maximum_iops: int

    @staticmethod
    def mib_per_second(mbps: int) -> int:
        """Megabits (10^6 bits) per second in whole MiB (2^20 bytes) per second, rounded down."""
        return mbps * 1_000_000 // 8 // 2**20

    @staticmethod
    def megabytes_per_second(mbps: int) -> int:
        """Megabits per second in whole MB (10^6 bytes) per second, rounded down: Azure's unit."""
        return mbps // 8


@dataclass(frozen=True)
class ProvisionedDisk:
    """A disk type sold by size, IOPS and throughput apart (AWS gp3, Azure Premium SSD v2): what it
    includes at no charge and the most it provisions, which follows the size (IOPS) and the IOPS
    (throughput). Throughput in MiB/s as AWS states it, MB/s as Azure does; the settings' figure
    is read in the disk's own unit.
    """

    name: str
    min_iops: int
    max_iops: int
    iops_per_gib: int
    min_throughput: int
    max_throughput: int
    throughput_per_iops: float

    def max_iops_for(self, size_gb: int) -> int:
        """The most IOPS a disk of that size takes (never below what every size includes)."""
        return min(self.max_iops, max(self.min_iops, size_gb * self.iops_per_gib))

    def max_throughput_for(self, iops: int) -> int:
        """The most throughput a disk of that many IOPS takes (never below what every disk includes)."""
        return min(self.max_throughput, max(self.min_throughput, int(iops * self.throughput_per_iops)))


@dataclass(frozen=True)
class MachineType:
    """One machine type: its vCPUs, memory in GiB and, where known, its block-storage limits."""

    name: str
    vcpus: int
    memory_gib: float
    storage: BlockStorageLimits | None = None


def _table(*rows: tuple[str, int, float]) -> dict[str, MachineType]:
    return {name: MachineType(name, vcpus, memory) for name, vcpus, memory in rows}


def _aws_table(*rows: tuple[str, int, float, int, int, int, int]) -> dict[str, MachineType]:
    return {
        name: MachineType(name, vcpus, memory, BlockStorageLimits(base_mbps, max_mbps, base_iops, max_iops))
        for name, vcpus, memory, base_mbps, max_mbps, base_iops, max_iops in rows
    }


def _azure_table(*rows: tuple[str, int, float, float, int, float, int]) -> dict[str, MachineType]:
    """Azure's rows: throughput in MB/s (10^6 bytes) as Microsoft publishes it, kept in megabits."""
    return {
        name: MachineType(name, vcpus, memory, BlockStorageLimits(round(base_mb * 8), round(burst_mb * 8), base_iops, burst_iops))
        for name, vcpus, memory, base_mb, base_iops, burst_mb, burst_iops in rows
    }


MACHINE_TYPES: dict[Cloud, dict[str, MachineType]] = {
    "aws": _aws_table(
        # name, vCPUs, GiB, EBS baseline/maximum bandwidth (Mbps), baseline/maximum IOPS (16 KiB I/O)
        ("t3.micro", 2, 1, 87, 2085, 500, 11800),
        ("t3.small", 2, 2, 174, 2085, 1000, 11800),
        ("t3.medium", 2, 4, 347, 2085, 2000, 11800),
        ("t3.large", 2, 8, 695, 2780, 4000, 15700),
        ("t3.xlarge", 4, 16, 695, 2780, 4000, 15700),
        ("t3.2xlarge", 8, 32, 695, 2780, 4000, 15700),
        ("m6i.large", 2, 8, 650, 10000, 3600, 40000),
        ("m6i.xlarge", 4, 16, 1250, 10000, 6000, 40000),
        ("m6i.2xlarge", 8, 32, 2500, 10000, 12000, 40000),
        ("m6i.4xlarge", 16, 64, 5000, 10000, 20000, 40000),
        ("r6i.large", 2, 16, 650, 10000, 3600, 40000),
        ("r6i.xlarge", 4, 32, 1250, 10000, 6000, 40000),
        ("r6i.2xlarge", 8, 64, 2500, 10000, 12000, 40000),
        ("r6i.4xlarge", 16, 128, 5000, 10000, 20000, 40000),
        ("r6i.8xlarge", 32, 256, 10000, 10000, 40000, 40000),
    ),
    "gcp": _table(
        ("e2-small", 2, 2),
        ("e2-medium", 2, 4),
        ("e2-standard-2", 2, 8),
        ("e2-standard-4", 4, 16),
        ("n2-standard-2", 2, 8),
        ("n2-standard-4", 4, 16),
        ("n2-standard-8", 8, 32),
        ("n2-standard-16", 16, 64),
        ("n2-highmem-2", 2, 16),
        ("n2-highmem-4", 4, 32),
        ("n2-highmem-8", 8, 64),
        ("n2-highmem-16", 16, 128),
    ),
    "azure": _azure_table(
        # name, vCPUs, GiB, uncached disk throughput (MB/s) and IOPS, then their burst maximums
        ("Standard_B1s", 1, 1, 10, 320, 100, 4000),
        ("Standard_B2s", 2, 4, 15, 1280, 100, 4000),
        ("Standard_B2ms", 2, 8, 22.5, 1920, 100, 4000),
        ("Standard_D2s_v5", 2, 8, 85, 3750, 1200, 10000),
        ("Standard_D4s_v5", 4, 16, 145, 6400, 1200, 20000),
        ("Standard_D8s_v5", 8, 32, 290, 12800, 1200, 20000),
        ("Standard_D16s_v5", 16, 64, 600, 25600, 1200, 40000),
        ("Standard_E2s_v5", 2, 16, 85, 3750, 1200, 10000),
        ("Standard_E4s_v5", 4, 32, 145, 6400, 1200, 20000),
        ("Standard_E8s_v5", 8, 64, 290, 12800, 1200, 20000),
        ("Standard_E16s_v5", 16, 128, 600, 25600, 1200, 40000),
    ),
    "local": _table(
        ("local", 2, 2),
    ),
}
"""`local` has one "machine type": the share of the developer's engine each role's services may use.

AWS's block-storage figures are EC2's `DescribeInstanceTypes` answer (`EbsInfo.EbsOptimizedInfo`:
baseline and maximum bandwidth in Mbps, baseline and maximum IOPS), the figures of the EC2
documentation's table "Amazon EBS-optimized instance types"; copied on 2026-12-01 from the API's
recording that moto 5.2.5 ships, which a unit test compares them with. Azure's are the "Remote
Storage" tables of Microsoft's size pages (uncached Premium SSD IOPS and MB/s, and their burst,
which Azure holds up to 30 minutes at a time): learn.microsoft.com/azure/virtual-machines/sizes/
general-purpose/bv1-series, .../dsv5-series and .../memory-optimized/esv5-series (pages dated
2026-03-10, 2026-02-27 and 2026-03-10), read on 2026-12-02 from their sources in the
MicrosoftDocs/azure-compute-docs repository. The GCP rows have none: GCP sells no disk performance
apart from size (pd-ssd), so there is nothing provisioned to hold against what a machine drives.
"""


def machine_type(cloud: Cloud, name: str) -> MachineType:
    """The catalogue entry; settings validation guarantees it exists."""
    return MACHINE_TYPES[cloud][name]
