"""AWS's settings profile: the defaults of each environment in AWS's machine types and gp3 volumes,
and what AWS sells and refuses (gp3's IOPS and throughput, what one instance drives of EBS, S3's
lifecycle minimums, AWS's region and zone names, its tag limits). It imports no AWS SDK: settings
are data and rules, whoever reads them.

Prod's data volume has the original size and IOPS but 690 MiB/s, not 1000 (design §11.7): an
r6i.2xlarge drives at most 10 Gbps (1192 MiB/s) of EBS for all its volumes together, so data and
WAL (500 MiB/s) share that; more would be paid for and never reach the machine. Its sustained
figures are lower still (12 000 IOPS, 298 MiB/s); the maximum holds for at least 30 minutes a day, which is
what checkpoints and backups need.
"""

from __future__ import annotations

from collections.abc import Iterator

from dpc.catalog import BlockStorageLimits, ProvisionedDisk
from dpc.environments import Environment, node_groups
from dpc.settings import CloudProfile, Problem, Rules, Settings, provisioned_disk_problems
from providers.common.machine_storage import machine_storage_problems

S3_INFREQUENT_ACCESS_CLASS = "STANDARD_IA"
"""The offsite repository's infrequent-access class (the storage builder's lifecycle, the cost review)."""

ARCHIVE_STORAGE_CLASS = "GLACIER_IR"
"""The offsite repository's cold class: Glacier Instant Retrieval, read like any other object.

Not GLACIER (Flexible Retrieval) nor DEEP_ARCHIVE, the seed's "Glacier": their objects answer a
GET with InvalidObjectState until restored, hours later. pgBackRest reads `archive.info` and
`backup.info` (and their copies) on every archive push and backup, and a restore reads a backup's
every file: a repository in those classes fails every backup after the transition and every
restore (tests/contract/test_backup_s3.py shows both with pgBackRest against an S3 emulator).
Instant Retrieval keeps the seed's cost intent, old backups in cold storage at about a sixth of
Standard's price, with a 90-day minimum that settings check against the retention.
"""

GP3 = ProvisionedDisk("gp3", min_iops=3000, max_iops=80000, iops_per_gib=500, min_throughput=125, max_throughput=2000, throughput_per_iops=0.25)
"""gp3: 3000 IOPS and 125 MiB/s included, up to 500 IOPS per GiB and 0.25 MiB/s per IOPS."""

S3_INFREQUENT_ACCESS_MIN_AGE_DAYS = 30
"""S3 lifecycle rejects a transition to STANDARD_IA sooner than 30 days after an object's creation."""
S3_INFREQUENT_ACCESS_MIN_STAY_DAYS = 30
"""S3 lifecycle rejects a further transition of an object that has been less than 30 days in STANDARD_IA."""
S3_ARCHIVE_MIN_STORAGE_DAYS = 90
"""S3 Glacier Instant Retrieval, the offsite bucket's archive class, bills every object for at least
90 days: deleting one sooner costs the remaining days anyway."""

AWS_REGION_PATTERN = r"[a-z]{2}(-[a-z]+)+-\d+"
"""`us-east-1`, `ap-southeast-2`, `us-gov-west-1`."""

_IMAGE = {"owner": "136693071363", "name": "debian-12-amd64-20241201-1948"}


def _gp3(size_gb: int, iops: int = GP3.min_iops, throughput_mbps: int = GP3.min_throughput) -> dict[str, int]:
    """A gp3 volume, at gp3's included baseline unless more is provisioned."""
    return {"sizeGb": size_gb, "iops": iops, "throughputMbps": throughput_mbps}


DEFAULTS: dict[Environment, dict[str, object]] = {
    "prod": {
        "nodes": node_groups("t3.xlarge", "r6i.2xlarge", "t3.large", "t3.micro", backup_count=1, manager_root=500, node_root=100),
        "storage": {"data": _gp3(2048, 16000, 690), "wal": _gp3(500, 6000, 500), "backup": _gp3(5120, 3000, 250)},
        "image": _IMAGE,
    },
    "staging": {
        "nodes": node_groups("t3.medium", "r6i.large", "t3.medium", "t3.micro", backup_count=0, manager_root=100, node_root=40),
        "storage": {"data": _gp3(200), "wal": _gp3(50), "backup": _gp3(500)},
        "image": _IMAGE,
    },
    "dev": {
        "nodes": node_groups("t3.small", "t3.large", "t3.small", "t3.micro", backup_count=0, manager_root=40, node_root=30),
        "storage": {"data": _gp3(50), "wal": _gp3(20), "backup": _gp3(100)},
        "image": _IMAGE,
    },
}
"""Design §1.2: prod is the original AWS sizing and storage; staging and dev smaller and cheaper."""

_rule = Rules()


@_rule("storage")
def _check_storage(s: Settings) -> Iterator[Problem]:
    volumes = {"data": s.storage.data, "wal": s.storage.wal, "backup": s.storage.backup}
    for name, volume in volumes.items():
        yield from provisioned_disk_problems(f"storage.{name}", volume, GP3, "MiB/s")


@_rule("storage", "nodes")
def _check_storage_against_machines(s: Settings) -> Iterator[Problem]:
    """The volumes of one node together against the most its machine type drives of EBS."""
    yield from machine_storage_problems(s, "aws", GP3, "MiB/s", BlockStorageLimits.mib_per_second)


@_rule("backup")
def _check_lifecycle(s: Settings) -> Iterator[Problem]:
    """S3's documented lifecycle minimums, which S3 enforces by rejecting the rule, and the archive
    class's minimum storage duration, which the offsite retention must not undercut.
    """
    b = s.backup
    infrequent, archive, expire = b.offsite_infrequent_access_after_days, b.offsite_archive_after_days, b.offsite_expire_after_days
    if infrequent < S3_INFREQUENT_ACCESS_MIN_AGE_DAYS:
        yield Problem(
            "backup.offsiteInfrequentAccessAfterDays",
            f"S3 moves nothing to infrequent access sooner than {S3_INFREQUENT_ACCESS_MIN_AGE_DAYS} days after its creation and rejects this lifecycle rule",
            f"use at least {S3_INFREQUENT_ACCESS_MIN_AGE_DAYS}",
        )
    if archive < infrequent + S3_INFREQUENT_ACCESS_MIN_STAY_DAYS:
        yield Problem(
            "backup.offsiteArchiveAfterDays",
            f"S3 archives an object only after {S3_INFREQUENT_ACCESS_MIN_STAY_DAYS} days in infrequent access "
            f"(from day {infrequent}) and rejects this lifecycle rule",
            f"use at least {infrequent + S3_INFREQUENT_ACCESS_MIN_STAY_DAYS}",
        )
    if expire < archive + S3_ARCHIVE_MIN_STORAGE_DAYS:
        yield Problem(
            "backup.offsiteExpireAfterDays",
            f"archive storage bills at least {S3_ARCHIVE_MIN_STORAGE_DAYS} days, so a backup must be kept "
            f"{S3_ARCHIVE_MIN_STORAGE_DAYS} days after archiving (from day {archive})",
            f"use at least {archive + S3_ARCHIVE_MIN_STORAGE_DAYS}",
        )


@_rule("tags")
def _check_tags(s: Settings) -> Iterator[Problem]:
    for key, value in s.tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256 or key.lower().startswith("aws:"):
            yield Problem(f"tags.{key}", "tag keys take 1–128 characters (not starting with aws:) and values at most 256", "shorten or rename the tag")


PROFILE = CloudProfile(
    cloud="aws",
    defaults=DEFAULTS,
    rules=_rule.rules,
    region_pattern=AWS_REGION_PATTERN,
    region_example="us-east-1",
    zone_pattern="{region}.+",
    zone_form="{region}<letter>, or the region's zone names",
    regional_subnets=False,
    smallest_subnet_prefix=28,
    geo_copy_example="us-west-2",
)
