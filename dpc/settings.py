"""Stack settings: everything a `Pulumi.<stack>.yaml` may say, validated before anything is created.

Settings are read from the `dpc` config namespace, merged over the defaults of the stack's
environment and those of its cloud for that environment, and validated in two passes that together
report every problem at once:

1. shape: pydantic checks each section (types, ranges, unknown keys);
2. meaning: cross-field rules run on every section that passed the first pass, so one broken
   section does not hide the others. The rules every cloud shares are here (CIDRs, quorum, zones,
   machine types, retention, tags, alerting, the CPU rule); what a cloud sells and refuses (gp3
   and S3's minimums on AWS, pd-ssd and GCS's on GCP, its region and zone names, its own section)
   is that cloud's `CloudProfile`, in `providers/<cloud>/settings.py`.

Profiles are looked up by cloud name when a stack is validated (`cloud_profile`), never imported
here at module level: `dpc` stays below `providers`, and a stack loads only its own cloud's code.

Each problem names its key as written in the stack file (`dpc:storage.data.iops`) and says
what to write instead.
"""

from __future__ import annotations

import copy
import importlib
import ipaddress
import math
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from dpc.catalog import MACHINE_TYPES, Cloud, ProvisionedDisk
from dpc.environments import DEFAULT_CLOUD, ENVIRONMENT_DEFAULTS, LOCAL_DEFAULTS, Environment
from dpc.sizing import MAX_WAL_SIZE_MB, MIN_WAL_CAP_MB, MIN_WAL_VOLUME_GIB, WAL_KEEP_SIZE_MB, cores_needed
from dpc.tiers import OVERLAY_RANGES

CONFIG_NAMESPACE = "dpc"
REQUIRED_TAG_KEYS = ("Environment", "Service", "Owner", "CostCenter")
PROGRAM_TAG_KEYS = ("ManagedBy", "Stack")

DAYS_PER_MONTH = 31
"""Months of retention counted as 31 days, so that a month's retention never falls short."""


class Section(BaseModel):
    """Base of every settings section: camelCase keys as in YAML, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


Cidr = Annotated[str, Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")]
PositiveGib = Annotated[int, Field(ge=1, le=65536)]


class NetworkSettings(Section):
    """Host networks. Where a cloud's subnets are zonal (AWS) the subnet lists hold one CIDR per
    zone, in zone order; where they are regional (GCP) one range each that serves every zone.
    """

    vpc_cidr: Cidr
    private_subnet_cidrs: list[Cidr]
    public_subnet_cidrs: list[Cidr]
    nat_gateway_per_zone: bool


class NodeGroup(Section):
    """A group of identical machines of one role."""

    count: Annotated[int, Field(ge=0, le=15)]
    machine_type: str
    root_volume_gb: Annotated[int, Field(ge=20, le=2048)]


class BastionSettings(Section):
    """The only machine with a public address; SSH from the admin CIDRs."""

    machine_type: str
    root_volume_gb: Annotated[int, Field(ge=8, le=256)]


class NodesSettings(Section):
    """Node groups of design §1.1: managers (etcd), workers (Patroni), app (PgBouncer, Redis), backup."""

    managers: NodeGroup
    workers: NodeGroup
    app: NodeGroup
    backup: NodeGroup
    bastion: BastionSettings


class VolumeSettings(Section):
    """A block volume: size in GiB, and where the cloud sells performance apart from size (AWS gp3)
    provisioned IOPS and throughput in MiB/s; each cloud's profile says whether it takes them.
    """

    size_gb: PositiveGib
    iops: Annotated[int, Field(ge=1)] | None = None
    throughput_mbps: Annotated[int, Field(ge=1)] | None = None


class StorageSettings(Section):
    """Per worker a data and a WAL volume (design §4.1); `backup` is the backup node's volume."""

    data: VolumeSettings
    wal: VolumeSettings
    backup: VolumeSettings


class BackupSettings(Section):
    """Retention of design §4.2, in days, and the offsite lifecycle of design §4.4."""

    wal_retention_days: Annotated[int, Field(ge=1, le=3650)]
    daily_retention_days: Annotated[int, Field(ge=1, le=3650)]
    weekly_retention_weeks: Annotated[int, Field(ge=1, le=520)]
    monthly_retention_months: Annotated[int, Field(ge=1, le=120)]
    offsite_infrequent_access_after_days: Annotated[int, Field(ge=1)]
    """Days after which the bucket's lifecycle moves an object to infrequent-access storage."""
    offsite_archive_after_days: Annotated[int, Field(ge=1)]
    """Days after which the lifecycle moves an object to archive storage, one that pgBackRest still
    reads at once (Glacier Instant Retrieval on AWS, Archive on GCP)."""
    offsite_expire_after_days: Annotated[int, Field(ge=1)]
    """Days the offsite repository keeps a full backup before pgBackRest's expire deletes it (design §4.4:
    7 years in archive storage). The bucket's lifecycle never expires a current object; it
    removes only the versions pgBackRest has deleted or overwritten."""
    offsite_replica_region: Annotated[str, Field(min_length=1)] | None = None
    """A second region the offsite bucket is replicated to (design §4.4: geo-replicated); required in
    prod. Named as the stack's cloud names regions (its profile checks the form)."""


class AccessSettings(Section):
    """Who may reach what from outside: admins reach the bastion, clients the database endpoint."""

    admin_cidrs: list[Cidr]
    client_cidrs: list[Cidr]
    ssh_public_keys: list[Annotated[str, Field(pattern=r"^(ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) \S+")]]


class BudgetSettings(Section):
    """Monthly cost budget and who is told when it is at risk (design §8.5)."""

    monthly_usd: float
    alert_emails: Annotated[list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]], Field(min_length=1)]


class DatabaseSettings(Section):
    """Workload figures that the sizing formula of design §6.1 starts from."""

    expected_concurrent_users: Annotated[int, Field(ge=1, le=100000)]
    expected_tps: Annotated[int, Field(ge=1)]


class AlertingSettings(Section):
    """Where Alertmanager sends alerts: a webhook (e.g. an incident tool's endpoint). Without one,
    alerts are grouped and shown in Alertmanager's UI and API only. A bearer token for the endpoint
    is a secret: set it with `pulumi config set --secret`; it reaches Alertmanager as a Docker secret.
    """

    webhook_url: str | None = None
    webhook_token: str | None = None


class ImageSettings(Section):
    """The machine image, looked up by exact name so that it never drifts under a running stack:
    `owner` is the account (AWS) or image project (GCP) that publishes it.
    """

    owner: str
    name: str


GCP_PROJECT_PATTERN = r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"
"""GCP's project id: 6 to 30 lowercase letters, digits and hyphens, starting with a letter and not
ending with a hyphen."""
GCP_BILLING_ACCOUNT_PATTERN = r"^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$"
"""A Cloud Billing account id as the console shows it: three groups of six hexadecimal digits."""


class GcpSettings(Section):
    """What a GCP stack needs that no other cloud has (`dpc:gcp`): the project every resource is
    created in, and the billing account its budget (design §8.5) watches.
    """

    project: Annotated[str, Field(pattern=GCP_PROJECT_PATTERN)]
    billing_account: Annotated[str, Field(pattern=GCP_BILLING_ACCOUNT_PATTERN)]


AZURE_UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
"""A subscription or tenant id as Azure writes it: a GUID in lowercase hexadecimal."""


class AzureSettings(Section):
    """What an Azure stack needs that no other cloud has (`dpc:azure`): the subscription every
    resource is created in (and its budget watches, design §8.5), and the Microsoft Entra tenant
    whose identities Key Vault trusts. Named in the stack file, not taken from whoever runs
    `pulumi up`, so that a stack never lands in the wrong subscription.
    """

    subscription_id: Annotated[str, Field(pattern=AZURE_UUID_PATTERN)]
    tenant_id: Annotated[str, Field(pattern=AZURE_UUID_PATTERN)]


class Settings(Section):
    """All settings of one stack."""

    cloud: Cloud
    environment: Environment
    region: Annotated[str, Field(min_length=1)]
    zones: Annotated[list[str], Field(min_length=1)]
    tags: dict[str, str]
    network: NetworkSettings
    nodes: NodesSettings
    storage: StorageSettings
    backup: BackupSettings
    access: AccessSettings
    budget: BudgetSettings
    database: DatabaseSettings
    image: ImageSettings
    alerting: AlertingSettings = AlertingSettings()
    gcp: GcpSettings | None = None
    """Set on GCP stacks only (`CLOUD_SECTIONS`)."""
    azure: AzureSettings | None = None
    """Set on Azure stacks only (`CLOUD_SECTIONS`)."""

    @property
    def is_prod(self) -> bool:
        """Production stacks protect stateful resources and require three zones."""
        return self.environment == "prod"


CLOUD_SECTIONS: Mapping[str, Cloud] = {"gcp": "gcp", "azure": "azure"}
"""Sections of `Settings` that belong to one cloud: required on its stacks, refused on every other,
so that a stack moved between clouds does not silently carry settings nothing reads."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a stack's settings: where, what, and what to write instead."""

    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{CONFIG_NAMESPACE}:{self.path}: {self.message} — {self.fix}"


class SettingsError(ValueError):
    """Every problem found in a stack's settings."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{len(problems)} problem(s) in the stack settings:\n{lines}")


Check = Callable[[Settings], Iterator[Problem]]


@dataclass(frozen=True)
class Rule:
    """A meaning check and the sections it reads, which must have passed the shape pass for it to run."""

    needs: frozenset[str]
    check: Check


class Rules:
    """Rules collected by decorating their checks (`@rules("storage", "nodes")`): the shared rules
    below, and each cloud profile's own.
    """

    def __init__(self) -> None:
        self._rules: list[Rule] = []

    def __call__(self, *sections: str) -> Callable[[Check], Check]:
        """A decorator that registers its check as needing `sections`."""

        def register(check: Check) -> Check:
            self._rules.append(Rule(frozenset(sections), check))
            return check

        return register

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules in the order they were registered, which is the order their problems are reported in."""
        return tuple(self._rules)


@dataclass(frozen=True)
class CloudProfile:
    """What one cloud adds to the shared settings: its defaults per environment, its own rules, and
    the names and shapes the shared rules ask of it. Each cloud's `providers/<cloud>/settings.py`
    defines one as `PROFILE`, importing no cloud SDK.
    """

    cloud: Cloud
    defaults: Mapping[Environment, Mapping[str, object]]
    """Per environment, what this cloud's stacks need not say: machine types, volumes, the image."""
    rules: tuple[Rule, ...]
    """What the cloud sells and refuses, checked after the shared rules."""
    region_pattern: str
    """A region name of this cloud (`dpc:region`, `dpc:backup.offsiteReplicaRegion`), matched whole."""
    region_example: str
    zone_pattern: str
    """A zone name of region `{region}` (filled in escaped), matched whole."""
    zone_form: str
    """How the fix names the zones of region `{region}`."""
    regional_subnets: bool
    """Subnets span the region, so each subnet list holds one range (GCP); else one subnet per zone (AWS)."""
    smallest_subnet_prefix: int
    """The longest prefix a subnet may have: /28 on AWS, /29 on GCP."""
    geo_copy_example: str | None
    """A region to suggest when prod lacks its offsite copy (design §4.4); None where the cloud has
    no offsite bucket to copy (local)."""


def _deep_merge(base: Mapping[str, object], override: Mapping[str, object]) -> dict[str, object]:
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = _deep_merge(cast(Mapping[str, object], current), cast(Mapping[str, object], value))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _path(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


_FIX_BY_ERROR = {
    "extra_forbidden": "remove this key; it is not a setting of this program (check its spelling)",
    "missing": "add this key",
    "literal_error": "use one of the values listed",
    "string_pattern_mismatch": "write it in the expected form",
}
_FIX_BY_PATH = {
    "gcp.project": "write the project's id (not its name or number): 6–30 lowercase letters, digits or hyphens, starting with a letter",
    "gcp.billingAccount": "write the billing account's id as the console's Billing page shows it, XXXXXX-XXXXXX-XXXXXX in hexadecimal digits",
}
"""Fixes for keys whose expected form a pattern alone does not explain."""


def _shape_problems(error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for detail in error.errors():
        path = _path(detail["loc"])
        fix = _FIX_BY_PATH.get(path) or _FIX_BY_ERROR.get(detail["type"], "correct the value")
        problems.append(Problem(path, detail["msg"], fix))
    return problems


_check = Rules()


def _network(path: str, cidr: str) -> tuple[ipaddress.IPv4Network | None, Problem | None]:
    try:
        return ipaddress.IPv4Network(cidr), None
    except ValueError as exc:
        return None, Problem(path, f"{cidr!r} is not a network address ({exc})", "write the network address with its prefix, for example 10.20.0.0/16")


def _subnet_count_problem(s: Settings, key: str, cidrs: list[str]) -> Problem | None:
    if cloud_profile(s.cloud).regional_subnets:
        if len(cidrs) != 1:
            return Problem(
                f"network.{key}",
                f"{len(cidrs)} range(s); {s.cloud}'s subnetworks are regional, so one range serves every zone",
                "list exactly one range",
            )
    elif len(cidrs) != len(s.zones):
        return Problem(f"network.{key}", f"{len(cidrs)} subnet(s) for {len(s.zones)} zone(s)", "list exactly one subnet per zone, in the order of `zones`")
    return None


@_check("network", "zones", "cloud")
def _check_network(s: Settings) -> Iterator[Problem]:
    vpc, problem = _network("network.vpcCidr", s.network.vpc_cidr)
    if problem or vpc is None:
        yield from filter(None, [problem])
        return
    if not vpc.is_private:
        yield Problem("network.vpcCidr", f"{vpc} is not a private range", "use a range inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
    if any(vpc.overlaps(overlay) for overlay in OVERLAY_RANGES):
        overlays = ", ".join(map(str, OVERLAY_RANGES))
        yield Problem(
            "network.vpcCidr",
            f"{vpc} overlaps the Swarm overlay networks {overlays} of design §2.2",
            f"choose a range outside {overlays}, for example 10.20.0.0/16",
        )
    if not 16 <= vpc.prefixlen <= 24:
        yield Problem("network.vpcCidr", f"/{vpc.prefixlen} is outside the /16–/24 a VPC may have", "use a prefix between /16 and /24")
    smallest = cloud_profile(s.cloud).smallest_subnet_prefix
    seen: list[tuple[str, ipaddress.IPv4Network]] = []
    for key in ("privateSubnetCidrs", "publicSubnetCidrs"):
        cidrs: list[str] = s.network.private_subnet_cidrs if key == "privateSubnetCidrs" else s.network.public_subnet_cidrs
        yield from filter(None, [_subnet_count_problem(s, key, cidrs)])
        for index, cidr in enumerate(cidrs):
            path = f"network.{key}[{index}]"
            subnet, problem = _network(path, cidr)
            if problem or subnet is None:
                yield from filter(None, [problem])
                continue
            if not subnet.subnet_of(vpc):
                yield Problem(path, f"{subnet} is outside the VPC {vpc}", f"choose a subnet inside {vpc}")
            elif subnet.prefixlen > smallest:
                yield Problem(path, f"/{subnet.prefixlen} is smaller than the /{smallest} a subnet may have", f"use a prefix of /{smallest} or shorter")
            for other_path, other in seen:
                if subnet.overlaps(other):
                    yield Problem(path, f"{subnet} overlaps {other} at dpc:{other_path}", "give each subnet its own range")
            seen.append((path, subnet))


def _region_problem(path: str, region: str, profile: CloudProfile) -> Problem | None:
    if re.fullmatch(profile.region_pattern, region):
        return None
    return Problem(path, f"{region!r} is not a region name of {profile.cloud}", f"write a region name like {profile.region_example}")


@_check("zones", "environment", "region", "cloud")
def _check_zones(s: Settings) -> Iterator[Problem]:
    profile = cloud_profile(s.cloud)
    yield from filter(None, [_region_problem("region", s.region, profile)])
    if len(set(s.zones)) != len(s.zones):
        yield Problem("zones", "a zone is listed twice", "list each zone once")
    if s.is_prod and len(set(s.zones)) < 3:
        yield Problem(
            "zones",
            f"prod needs 3 zones so that each etcd and Patroni member sits in its own zone; {len(set(s.zones))} given",
            "list three zones of the region",
        )
    zone_pattern = profile.zone_pattern.format(region=re.escape(s.region))
    for index, zone in enumerate(s.zones):
        if not re.fullmatch(zone_pattern, zone):
            yield Problem(f"zones[{index}]", f"{zone!r} is not a zone of region {s.region!r}", f"use zones named {profile.zone_form.format(region=s.region)}")


@_check("nodes", "cloud", "zones", "environment")
def _check_nodes(s: Settings) -> Iterator[Problem]:
    known = MACHINE_TYPES[s.cloud]
    groups = {"managers": s.nodes.managers, "workers": s.nodes.workers, "app": s.nodes.app, "backup": s.nodes.backup}
    machine_types = {f"nodes.{name}.machineType": group.machine_type for name, group in groups.items()}
    machine_types["nodes.bastion.machineType"] = s.nodes.bastion.machine_type
    for path, name in machine_types.items():
        if name not in known:
            yield Problem(path, f"{name!r} is not a machine type this program knows for {s.cloud}", "use one of: " + ", ".join(sorted(known)))
    managers = s.nodes.managers.count
    if managers < 3 or managers % 2 == 0:
        yield Problem("nodes.managers.count", f"{managers} etcd members cannot keep a quorum through a failure", "use an odd count of at least 3 (3 or 5)")
    if s.nodes.workers.count < 3:
        yield Problem("nodes.workers.count", f"{s.nodes.workers.count} Patroni members; synchronous replication with failover needs 3", "use at least 3")
    if s.nodes.app.count < 2:
        yield Problem("nodes.app.count", f"{s.nodes.app.count} app node(s); PgBouncer runs on 2 separate nodes (design §1.1)", "use at least 2")
    if s.nodes.backup.count > 1:
        yield Problem("nodes.backup.count", "at most one dedicated backup node is supported", "use 0 or 1")
    for name, group in (("managers", s.nodes.managers), ("workers", s.nodes.workers)):
        if group.count > len(set(s.zones)) and s.is_prod:
            yield Problem(
                f"nodes.{name}.count",
                f"{group.count} members over {len(set(s.zones))} zones puts two in one zone",
                "list as many zones as members, or use 3 members",
            )


@_check("storage")
def _check_wal_volume(s: Settings) -> Iterator[Problem]:
    """Design §5.3: nothing may fill a member's WAL volume, so it holds PostgreSQL's own WAL
    (max_wal_size, wal_keep_size), caps on what a lagging replication slot and an unarchived queue
    may keep, each a share of what is left, and headroom (`dpc.sizing.WalBudget`). A volume too
    small for caps of `MIN_WAL_CAP_MB` is refused here, before anything is created.
    """
    size = s.storage.wal.size_gb
    if size < MIN_WAL_VOLUME_GIB:
        yield Problem(
            "storage.wal.sizeGb",
            f"{size} GiB cannot hold PostgreSQL's max_wal_size ({MAX_WAL_SIZE_MB // 1024} GiB) and wal_keep_size "
            f"({WAL_KEEP_SIZE_MB // 1024} GiB) besides the filesystem's share and leave caps of at least {MIN_WAL_CAP_MB} MB on the WAL "
            "a lagging replication slot and a backup repository that cannot take WAL may keep (design §5.3)",
            f"use at least {MIN_WAL_VOLUME_GIB}",
        )


@_check("backup", "region", "environment", "cloud")
def _check_backup(s: Settings) -> Iterator[Problem]:
    b, profile = s.backup, cloud_profile(s.cloud)
    replica = b.offsite_replica_region
    if profile.geo_copy_example is not None and s.is_prod and replica is None:
        yield Problem(
            "backup.offsiteReplicaRegion",
            "prod keeps its offsite backups in one region only; design §4.4 asks for geo-replicated backups",
            f"name a second region for the copy, for example {profile.geo_copy_example}",
        )
    if replica is not None:
        yield from filter(None, [_region_problem("backup.offsiteReplicaRegion", replica, profile)])
    if replica == s.region:
        yield Problem("backup.offsiteReplicaRegion", "is the stack's own region", "name a different region, so one region's loss keeps the copy")
    if b.offsite_expire_after_days < b.monthly_retention_months * DAYS_PER_MONTH:
        yield Problem(
            "backup.offsiteExpireAfterDays",
            f"the offsite repository holds the monthly fulls, which design §4.2 keeps {b.monthly_retention_months} months",
            f"use at least {b.monthly_retention_months * DAYS_PER_MONTH}, or lower dpc:backup.monthlyRetentionMonths",
        )
    if b.daily_retention_days > b.wal_retention_days:
        yield Problem(
            "backup.walRetentionDays",
            "point-in-time recovery from the oldest daily backup needs WAL kept at least as long",
            f"use at least {b.daily_retention_days}",
        )


@_check("access")
def _check_access(s: Settings) -> Iterator[Problem]:
    for key, cidrs in (("adminCidrs", s.access.admin_cidrs), ("clientCidrs", s.access.client_cidrs)):
        for index, cidr in enumerate(cidrs):
            path = f"access.{key}[{index}]"
            network, problem = _network(path, cidr)
            if problem or network is None:
                yield from filter(None, [problem])
            elif network.prefixlen < 8:
                yield Problem(path, f"{network} opens the endpoint to a large part of the internet", "list the specific networks (a /8 or narrower)")


@_check("tags", "environment")
def _check_tags(s: Settings) -> Iterator[Problem]:
    for key in REQUIRED_TAG_KEYS:
        if not s.tags.get(key, "").strip():
            yield Problem(f"tags.{key}", "a required tag is missing or empty", f"add `{key}: <value>` under dpc:tags")
    for key in PROGRAM_TAG_KEYS:
        if key in s.tags:
            yield Problem(f"tags.{key}", "this tag is set by the program itself", "remove it")


@_check("alerting")
def _check_alerting(s: Settings) -> Iterator[Problem]:
    url, token = s.alerting.webhook_url, s.alerting.webhook_token
    if url is not None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            yield Problem("alerting.webhookUrl", "is not an https:// URL", "give the endpoint's https:// address; alerts carry the cluster's details")
        if parts.username or parts.password or parts.query:
            yield Problem(
                "alerting.webhookUrl",
                "carries credentials or a query string, which would sit in a plain config",
                "give the bare URL and put the token in dpc:alerting.webhookToken with `pulumi config set --secret`",
            )
    if token is not None and url is None:
        yield Problem("alerting.webhookToken", "is set without a webhook to send it to", "set dpc:alerting.webhookUrl too, or remove the token")


@_check("budget")
def _check_budget(s: Settings) -> Iterator[Problem]:
    if not 0 < s.budget.monthly_usd < math.inf:
        yield Problem("budget.monthlyUsd", f"{s.budget.monthly_usd} is not a budget", "set a positive monthly amount in USD")


@_check("database", "nodes", "cloud", "environment")
def _check_database(s: Settings) -> Iterator[Problem]:
    """Design §6.2 CPU rule; dev and staging are allowed to be undersized on purpose."""
    if not s.is_prod:
        return
    worker = MACHINE_TYPES[s.cloud].get(s.nodes.workers.machine_type)
    cores = cores_needed(s.database.expected_tps)
    if worker is not None and worker.vcpus < cores:
        yield Problem(
            "nodes.workers.machineType",
            f"{worker.name} has {worker.vcpus} vCPUs; {s.database.expected_tps} TPS needs {cores} (design §6.2: max(4, tps/500))",
            "choose a larger machine type or lower database.expectedTps",
        )


LOCAL_PROFILE = CloudProfile(
    cloud="local",
    defaults=dict.fromkeys(get_args(Environment), LOCAL_DEFAULTS),
    rules=(),
    region_pattern=r"[a-z0-9-]+",
    region_example="local",
    zone_pattern="{region}.+",
    zone_form="{region}-<number>",
    regional_subnets=False,
    smallest_subnet_prefix=28,
    geo_copy_example=None,
)
"""The local engine: placeholders only (`LOCAL_DEFAULTS`), no volumes, bucket or machines to check."""

def provisioned_disk_problems(path: str, volume: VolumeSettings, disk: ProvisionedDisk, unit: str) -> Iterator[Problem]:
    """A volume against a disk type sold by size, IOPS and throughput (`ProvisionedDisk`): both
    figures set, and each within what the disk type takes at that size. `unit` names the
    throughput's unit as the cloud sells it.
    """
    if volume.iops is None or volume.throughput_mbps is None:
        yield Problem(path, f"{disk.name} volumes are sold by size, IOPS and throughput; this volume lacks the latter", "set iops and throughputMbps")
        return
    max_iops = disk.max_iops_for(volume.size_gb)
    if not disk.min_iops <= volume.iops <= max_iops:
        yield Problem(
            f"{path}.iops",
            f"{volume.iops} IOPS is outside what {disk.name} allows for {volume.size_gb} GiB ({disk.min_iops}–{max_iops})",
            f"set iops between {disk.min_iops} and {max_iops}, or grow sizeGb",
        )
    max_throughput = disk.max_throughput_for(volume.iops)
    if not disk.min_throughput <= volume.throughput_mbps <= max_throughput:
        yield Problem(
            f"{path}.throughputMbps",
            f"{volume.throughput_mbps} {unit} is outside what {disk.name} allows at {volume.iops} IOPS ({disk.min_throughput}–{max_throughput})",
            f"set throughputMbps between {disk.min_throughput} and {max_throughput}, or raise iops",
        )


def minimum_stay_problems(s: Settings, infrequent: tuple[str, int], archive: tuple[str, int]) -> Iterator[Problem]:
    """The offsite lifecycle against what an object store bills for leaving a class early: each
    `(class, days)` is a class and the days it bills an object at least. An object spends at least
    the infrequent class's minimum there before it is archived, and the archive class's minimum
    before pgBackRest deletes it. Counted from the day the object enters the class, which never
    undercuts the minimum however the store counts it.
    """
    b = s.backup
    (infrequent_class, infrequent_days), (archive_class, archive_days) = infrequent, archive
    moved, archived, expire = b.offsite_infrequent_access_after_days, b.offsite_archive_after_days, b.offsite_expire_after_days
    if archived < moved + infrequent_days:
        yield Problem(
            "backup.offsiteArchiveAfterDays",
            f"{infrequent_class} bills every object at least {infrequent_days} days, so archiving it sooner than {infrequent_days} days after it "
            f"moved there (day {moved}) pays for days it no longer spends there",
            f"use at least {moved + infrequent_days}",
        )
    if expire < archived + archive_days:
        yield Problem(
            "backup.offsiteExpireAfterDays",
            f"{archive_class} storage bills at least {archive_days} days, so a backup must be kept {archive_days} days after archiving (from day {archived})",
            f"use at least {archived + archive_days}",
        )


_PROFILE_MODULES: Mapping[Cloud, str] = {"aws": "providers.aws.settings", "gcp": "providers.gcp.settings", "azure": "providers.azure.settings"}
"""Where each deployable cloud's profile lives; imported on first use only."""


def cloud_profile(cloud: str) -> CloudProfile:
    """The profile of a deployable cloud; raises KeyError for any other (`settings_from_config`
    refuses those before asking).
    """
    if cloud == "local":
        return LOCAL_PROFILE
    module = _PROFILE_MODULES[cast(Cloud, cloud)]
    profile: object = importlib.import_module(module).PROFILE
    if not isinstance(profile, CloudProfile) or profile.cloud != cloud:
        raise TypeError(f"{module}.PROFILE is not the CloudProfile of {cloud}")
    return profile


def _config_key_path(key: str) -> str:
    return key.split(":", 1)[1] if ":" in key else key


def _cloud_problem(cloud: object) -> Problem | None:
    if isinstance(cloud, str) and (cloud == "local" or cloud in _PROFILE_MODULES):
        return None
    deployable = ", ".join(repr(name) for name in (*_PROFILE_MODULES, "local"))
    return Problem("cloud", f"{cloud!r} is not a cloud this program knows; it deploys to {deployable}", "use one of the values listed")


def _cloud_section_problems(cloud: str, given: dict[str, object]) -> Iterator[Problem]:
    """A cloud's own section is required on its stacks and refused on others'; a refused section is
    taken out of `given` so that its keys are not judged against a cloud it does not belong to.
    """
    for section, owner in CLOUD_SECTIONS.items():
        if owner == cloud and given.get(section) is None:
            model = cast(type[Section], get_args(Settings.model_fields[section].annotation)[0])
            keys = " and ".join(f"`{field.alias}`" for field in model.model_fields.values())
            yield Problem(section, f"a {cloud} stack needs this section", f"add dpc:{section} with {keys} (see the README)")
        elif owner != cloud and given.pop(section, None) is not None:
            yield Problem(section, f"is the section of {owner} stacks; this stack's cloud is {cloud}", f"remove dpc:{section}, or set dpc:cloud to {owner}")


def settings_from_config(values: Mapping[str, object]) -> Settings:
    """Validates the `dpc:*` config values of one stack (keys without namespace) into Settings.

    Missing keys take the defaults of the stack's environment and those of its cloud for that
    environment. Raises SettingsError with every problem found; an unknown environment or a cloud
    that is not deployable is the only problem reported, as it decides which defaults and rules apply.
    """
    environment = values.get("environment")
    if not isinstance(environment, str) or environment not in ENVIRONMENT_DEFAULTS:
        raise SettingsError(
            [Problem("environment", f"{environment!r} is not an environment", "set dpc:environment to one of: " + ", ".join(ENVIRONMENT_DEFAULTS))]
        )
    given = {_config_key_path(k): v for k, v in values.items()}
    cloud = given.setdefault("cloud", DEFAULT_CLOUD)
    if problem := _cloud_problem(cloud):
        raise SettingsError([problem])
    profile = cloud_profile(cast(str, cloud))
    problems: list[Problem] = list(_cloud_section_problems(profile.cloud, given))
    merged = _deep_merge(_deep_merge(ENVIRONMENT_DEFAULTS[environment], profile.defaults[environment]), given)
    valid: dict[str, Any] = {}
    try:
        settings = Settings.model_validate(merged)
        valid = dict(settings)
    except ValidationError as error:
        problems.extend(_shape_problems(error))
        broken = {str(detail["loc"][0]) for detail in error.errors() if detail["loc"]}
        for name, field in Settings.model_fields.items():
            alias = field.alias or name
            if alias in broken or field.annotation is None:
                continue
            if alias in merged:
                valid[name] = TypeAdapter(field.annotation).validate_python(merged[alias])
            elif not field.is_required():
                valid[name] = field.get_default(call_default_factory=True)
    partial = Settings.model_construct(set(valid), **valid)
    for rule in (*_check.rules, *profile.rules):
        if rule.needs <= valid.keys():
            problems.extend(rule.check(partial))
    if problems:
        raise SettingsError(problems)
    return Settings.model_validate(merged)
