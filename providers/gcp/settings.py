"""GCP's settings profile: the defaults of each environment in GCE's machine types and pd-ssd disks,
and what GCP sells and refuses (pd-ssd, whose performance follows its size; what Cloud Storage
bills for leaving a class early; GCP's region and zone names; what its labels take). It imports
no GCP SDK: settings are data and rules, whoever reads them.

The offsite bucket's classes: Nearline for infrequent access and Archive for archive. Every Cloud
Storage class answers reads at once (no restore step, unlike S3 Glacier Flexible Retrieval:
design §11.6), so pgBackRest reads its repository in any of them. Archive over Coldline: the offsite
fulls stay 7 years (design §4.4) and are read only to restore from an old backup, so Archive's
storage price (about a third of Coldline's) outweighs its retrieval price, and its 365-day minimum
is far shorter than the retention; `_check_lifecycle` refuses a retention that would undercut it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from dpc.environments import Environment, node_groups
from dpc.settings import PROGRAM_TAG_KEYS, CloudProfile, Problem, Rules, Settings, minimum_stay_problems
from providers.gcp.labels import LABEL_LIMIT, label_key, label_value

GCS_INFREQUENT_ACCESS_CLASS, GCS_ARCHIVE_CLASS = "NEARLINE", "ARCHIVE"
"""The storage classes the offsite bucket's lifecycle moves objects to (the module's docstring says why)."""
GCS_MINIMUM_STORAGE_DAYS = {"NEARLINE": 30, "COLDLINE": 90, "ARCHIVE": 365}
"""Cloud Storage bills an object of these classes for at least this many days in the class:
deleting or moving it sooner costs the remaining days anyway."""

MULTI_REGIONS = {"us": ("US", "us"), "europe": ("EU", "europe"), "asia": ("ASIA", "asia")}
"""By a region's prefix: the Cloud Storage multi-region and the Cloud KMS location of a dual-region
bucket there. The offsite geo copy is a dual-region bucket (`providers.gcp.storage`): Cloud Storage
pairs two regions of one multi-region only, and takes its key only from that multi-region."""

BUDGET_CHANNEL_LIMIT = 5
"""The most Cloud Monitoring channels a budget notifies: one per alert e-mail (`providers.gcp.budget`)."""


def multi_region(region: str, replica_region: str) -> tuple[str, str] | None:
    """The multi-region and Cloud KMS location of the dual-region of two regions; None for a pair
    Cloud Storage does not make into one.
    """
    continent = region.split("-", maxsplit=1)[0]
    return MULTI_REGIONS.get(continent) if replica_region.split("-", maxsplit=1)[0] == continent else None


PD_SSD_MIN_GB = 10
"""The smallest pd-ssd disk GCE creates (its largest, 65 536 GB, is every cloud's `PositiveGib` bound)."""

GCP_REGION_PATTERN = r"[a-z]+-[a-z]+\d+"
"""`us-central1`, `europe-west4`, `northamerica-northeast2`."""

_IMAGE = {"owner": "ubuntu-os-cloud", "name": "ubuntu-2404-noble-amd64-v20241219"}
"""Ubuntu 24.04 LTS for amd64 from Canonical's image project: its GCE images run cloud-init from
the `user-data` metadata key, so the AWS bootstrap serves GCP too. An exact name, as on AWS; it
could not be checked against GCE here (no cloud access)."""

DEFAULTS: dict[Environment, dict[str, object]] = {
    "prod": {
        "nodes": node_groups("n2-standard-4", "n2-highmem-8", "n2-standard-2", "e2-small", backup_count=1, manager_root=500, node_root=100),
        "storage": {"data": {"sizeGb": 2048}, "wal": {"sizeGb": 500}, "backup": {"sizeGb": 5120}},
        "image": _IMAGE,
    },
    "staging": {
        "nodes": node_groups("e2-medium", "n2-highmem-2", "e2-medium", "e2-small", backup_count=0, manager_root=100, node_root=40),
        "storage": {"data": {"sizeGb": 200}, "wal": {"sizeGb": 50}, "backup": {"sizeGb": 500}},
        "image": _IMAGE,
    },
    "dev": {
        "nodes": node_groups("e2-small", "e2-standard-2", "e2-small", "e2-small", backup_count=0, manager_root=40, node_root=30),
        "storage": {"data": {"sizeGb": 50}, "wal": {"sizeGb": 20}, "backup": {"sizeGb": 100}},
        "image": _IMAGE,
    },
}
"""Design §1.2 on GCP: prod as the original GCP sizing (3 × n2-standard-4 managers, 3 × n2-highmem-8
workers, 2 × n2-standard-2 app nodes, 2 TB of pd-ssd per PostgreSQL node), with AWS's WAL and backup
volumes; staging and dev the machines closest to AWS's (same vCPUs and memory)."""

_rule = Rules()


@_rule("storage")
def _check_storage(s: Settings) -> Iterator[Problem]:
    """pd-ssd sells size only: a disk's IOPS and throughput follow its size (and the machine's vCPUs)."""
    for name, volume in (("data", s.storage.data), ("wal", s.storage.wal), ("backup", s.storage.backup)):
        for key, value in (("iops", volume.iops), ("throughputMbps", volume.throughput_mbps)):
            if value is not None:
                yield Problem(
                    f"storage.{name}.{key}",
                    "pd-ssd disks are not provisioned with IOPS or throughput: their performance follows their size",
                    f"remove {key}; for more performance grow dpc:storage.{name}.sizeGb (or the node's machine type)",
                )
        if volume.size_gb < PD_SSD_MIN_GB:
            yield Problem(
                f"storage.{name}.sizeGb", f"{volume.size_gb} GB is below the {PD_SSD_MIN_GB} GB a pd-ssd disk has at least", f"use at least {PD_SSD_MIN_GB}"
            )


@_rule("network")
def _check_nat(s: Settings) -> Iterator[Problem]:
    if s.network.nat_gateway_per_zone:
        yield Problem(
            "network.natGatewayPerZone",
            "Cloud NAT is regional: one gateway serves every zone and has no single zone to lose",
            "set natGatewayPerZone: false",
        )


@_rule("backup")
def _check_lifecycle(s: Settings) -> Iterator[Problem]:
    """What Cloud Storage bills for leaving Nearline or Archive early."""
    yield from minimum_stay_problems(
        s,
        ("Nearline", GCS_MINIMUM_STORAGE_DAYS[GCS_INFREQUENT_ACCESS_CLASS]),
        ("Archive", GCS_MINIMUM_STORAGE_DAYS[GCS_ARCHIVE_CLASS]),
    )


@_rule("backup")
def _check_geo_copy(s: Settings) -> Iterator[Problem]:
    replica = s.backup.offsite_replica_region
    if replica is not None and multi_region(s.region, replica) is None:
        continent = s.region.split("-", maxsplit=1)[0]
        fix = (
            f"name another {continent}-* region"
            if continent in MULTI_REGIONS
            else f"run the stack in a region of {', '.join(f'{c}-*' for c in sorted(MULTI_REGIONS))}: {s.region} is in no multi-region"
        )
        yield Problem(
            "backup.offsiteReplicaRegion",
            f"the geo copy is a dual-region bucket, which Cloud Storage makes only of two regions of one multi-region ({', '.join(sorted(MULTI_REGIONS))}): "
            f"{s.region} and {replica} are not",
            fix,
        )


@_rule("budget")
def _check_budget_emails(s: Settings) -> Iterator[Problem]:
    if len(s.budget.alert_emails) > BUDGET_CHANNEL_LIMIT:
        yield Problem(
            "budget.alertEmails",
            f"a GCP budget notifies at most {BUDGET_CHANNEL_LIMIT} channels, one per address: {len(s.budget.alert_emails)} given",
            f"list at most {BUDGET_CHANNEL_LIMIT} addresses (a group address reaches more people)",
        )


@_rule("tags")
def _check_labels(s: Settings) -> Iterator[Problem]:
    """Tags become labels (`providers.gcp.labels`), which take at most 63 characters and keys that
    start with a letter: a longer tag would be cut, and two tags with one label key would collide,
    with each other or with a tag the program sets.
    """
    seen: dict[str, str] = {}
    program = {label_key(key): key for key in PROGRAM_TAG_KEYS}
    for key, value in s.tags.items():
        label = label_key(key)
        if len(key) > LABEL_LIMIT or len(value) > LABEL_LIMIT or not re.match("[a-z]", label):
            yield Problem(
                f"tags.{key}",
                f"becomes the GCP label {label}={label_value(value)}, and labels take at most {LABEL_LIMIT} characters and keys that start with a letter",
                f"shorten the tag to {LABEL_LIMIT} characters or fewer, its key starting with a letter",
            )
        if label in seen or (label in program and key != program[label]):
            other = f"as dpc:tags.{seen[label]} does" if label in seen else f"which the program sets for its {program[label]} tag"
            yield Problem(f"tags.{key}", f"becomes the GCP label key {label}, {other}", "rename the tag")
        seen.setdefault(label, key)


PROFILE = CloudProfile(
    cloud="gcp",
    defaults=DEFAULTS,
    rules=_rule.rules,
    region_pattern=GCP_REGION_PATTERN,
    region_example="us-central1",
    zone_pattern="{region}-[a-z]",
    zone_form="{region}-<letter>, for example {region}-a",
    regional_subnets=True,
    smallest_subnet_prefix=29,
    geo_copy_example="us-east1",
)
