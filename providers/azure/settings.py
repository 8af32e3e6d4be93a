"""Azure's settings profile: the defaults of each environment in Azure's VM sizes and Premium SSD v2
disks, and what Azure sells and refuses (Premium SSD v2's IOPS and throughput, what Blob Storage
bills for leaving a tier early, Azure's region and zone names, what its tags take). It imports no
Azure SDK: settings are data and rules, whoever reads them.

Data, WAL and backup disks are Premium SSD v2 (design §9.8), not the original architecture's
Premium SSD P40: v2 sells size, IOPS and throughput apart, as gp3 does on AWS, so
`dpc:storage.*.iops` and `throughputMbps` mean the same on both clouds; 7,500 IOPS on a 2 TiB v2
disk cost less than a P40 of the same size, and v2 needs a zonal machine, which every node is. Its
throughput is in MB/s, as Azure sells it. OS disks stay Premium SSD (v2 cannot boot a VM).

The offsite account's tiers: Cool for infrequent access and Cold for archive. Both are online
tiers that answer reads at once; Azure's Archive tier must be rehydrated (hours) before a read,
which pgBackRest, reading `backup.info` on every backup and every file of a restore, cannot wait
for (design §11.6).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from dpc.catalog import BlockStorageLimits, ProvisionedDisk
from dpc.environments import Environment, node_groups
from dpc.settings import CloudProfile, Problem, Rules, Settings, minimum_stay_problems, provisioned_disk_problems
from providers.common.machine_storage import machine_storage_problems

PREMIUM_SSD_V2 = ProvisionedDisk(
    "Premium SSD v2", min_iops=3000, max_iops=80000, iops_per_gib=500, min_throughput=125, max_throughput=1200, throughput_per_iops=0.25
)
"""Premium SSD v2: 3,000 IOPS and 125 MB/s included, up to 500 IOPS per GiB and 0.25 MB/s per IOPS."""

BLOB_INFREQUENT_ACCESS_TIER, BLOB_ARCHIVE_TIER = "Cool", "Cold"
"""The access tiers the offsite account's lifecycle moves blobs to (the module's docstring says why)."""
BLOB_MINIMUM_STORAGE_DAYS = {"Cool": 30, "Cold": 90}
"""Blob Storage bills a blob of these tiers for at least this many days (early deletion)."""

AZURE_REGION_PATTERN = r"[a-z]+[0-9]?"
"""`eastus2`, `westeurope`, `germanywestcentral`."""

AZURE_TAG_NAME_LIMIT, AZURE_TAG_VALUE_LIMIT = 128, 256
"""Azure takes tag names of 512 characters on most resources but 128 on storage accounts, which
every stack has; values take 256."""
AZURE_TAG_NAME_FORBIDDEN = "<>%&\\?/"
"""Characters Azure refuses in a tag name."""

_IMAGE = {"owner": "Canonical", "name": "ubuntu-24_04-lts:server:24.04.202411030"}
"""Ubuntu 24.04 LTS from Canonical's Marketplace images as `offer:sku:version` (the publisher is the
owner): it runs cloud-init from custom data, so the AWS bootstrap serves Azure too. An exact
version, as on AWS and GCP; it could not be checked against Azure here (no cloud access)."""


def _premium_v2(size_gb: int, iops: int = PREMIUM_SSD_V2.min_iops, throughput: int = PREMIUM_SSD_V2.min_throughput) -> dict[str, int]:
    """A Premium SSD v2 disk, at its included baseline unless more is provisioned."""
    return {"sizeGb": size_gb, "iops": iops, "throughputMbps": throughput}


DEFAULTS: dict[Environment, dict[str, object]] = {
    "prod": {
        "nodes": node_groups("Standard_D4s_v5", "Standard_E8s_v5", "Standard_D2s_v5", "Standard_B1s", backup_count=1, manager_root=500, node_root=100),
        "storage": {"data": _premium_v2(2048, 7500, 165), "wal": _premium_v2(500, 5000, 125), "backup": _premium_v2(5120)},
        "image": _IMAGE,
    },
    "staging": {
        "nodes": node_groups("Standard_B2s", "Standard_E2s_v5", "Standard_B2s", "Standard_B1s", backup_count=0, manager_root=100, node_root=40),
        "storage": {"data": _premium_v2(200), "wal": _premium_v2(50), "backup": _premium_v2(500)},
        "image": _IMAGE,
    },
    "dev": {
        "nodes": node_groups("Standard_B2s", "Standard_B2ms", "Standard_B2s", "Standard_B1s", backup_count=0, manager_root=40, node_root=30),
        "storage": {"data": _premium_v2(50), "wal": _premium_v2(20), "backup": _premium_v2(100)},
        "image": _IMAGE,
    },
}
"""Design §1.2 on Azure: prod as the original Azure sizing (3 × Standard_D4s_v5 managers, 3 ×
Standard_E8s_v5 workers, 2 × Standard_D2s_v5 app nodes, 2 TiB and 7,500 IOPS per PostgreSQL node);
the data and WAL disks together provision 12,500 IOPS and 290 MB/s, what one Standard_E8s_v5
drives of uncached disks. Staging and dev the sizes closest to AWS's (same vCPUs and memory)."""

_rule = Rules()


@_rule("storage")
def _check_storage(s: Settings) -> Iterator[Problem]:
    for name, volume in (("data", s.storage.data), ("wal", s.storage.wal), ("backup", s.storage.backup)):
        yield from provisioned_disk_problems(f"storage.{name}", volume, PREMIUM_SSD_V2, "MB/s")


@_rule("storage", "nodes")
def _check_storage_against_machines(s: Settings) -> Iterator[Problem]:
    """The disks of one node together against the uncached disk IOPS and MB/s its VM size drives
    (`dpc.catalog`): Premium SSD v2 bought beyond them never reaches the machine.
    """
    yield from machine_storage_problems(s, "azure", PREMIUM_SSD_V2, "MB/s", BlockStorageLimits.megabytes_per_second)


@_rule("backup")
def _check_lifecycle(s: Settings) -> Iterator[Problem]:
    """What Blob Storage bills for leaving Cool or Cold early."""
    yield from minimum_stay_problems(
        s,
        (BLOB_INFREQUENT_ACCESS_TIER, BLOB_MINIMUM_STORAGE_DAYS[BLOB_INFREQUENT_ACCESS_TIER]),
        (BLOB_ARCHIVE_TIER, BLOB_MINIMUM_STORAGE_DAYS[BLOB_ARCHIVE_TIER]),
    )


@_rule("backup")
def _check_geo_copy(s: Settings) -> Iterator[Problem]:
    """The offsite account is geo-zone-redundant (GZRS): Azure copies it to the region's pair, which
    no setting chooses.
    """
    if s.backup.offsite_replica_region is not None:
        yield Problem(
            "backup.offsiteReplicaRegion",
            f"Azure copies the offsite storage account to {s.region}'s paired region itself (geo-zone-redundant storage); no other region can be named",
            "remove offsiteReplicaRegion",
        )


@_rule("tags")
def _check_tags(s: Settings) -> Iterator[Problem]:
    for key, value in s.tags.items():
        if not 1 <= len(key) <= AZURE_TAG_NAME_LIMIT or len(value) > AZURE_TAG_VALUE_LIMIT or re.search(f"[{re.escape(AZURE_TAG_NAME_FORBIDDEN)}]", key):
            yield Problem(
                f"tags.{key}",
                f"Azure tag names take 1–{AZURE_TAG_NAME_LIMIT} characters without any of {AZURE_TAG_NAME_FORBIDDEN}, "
                f"and values at most {AZURE_TAG_VALUE_LIMIT}",
                "shorten or rename the tag",
            )


PROFILE = CloudProfile(
    cloud="azure",
    defaults=DEFAULTS,
    rules=_rule.rules,
    region_pattern=AZURE_REGION_PATTERN,
    region_example="eastus2",
    zone_pattern="[1-3]",
    zone_form="1, 2 and 3 (Azure numbers a region's zones)",
    regional_subnets=False,
    smallest_subnet_prefix=29,
    geo_copy_example=None,
)
