"""Stack settings: everything a `Pulumi.<stack>.yaml` may say, validated before anything is created.

Settings are read from the `dpc` config namespace, merged over the defaults of the stack's
environment, and validated in two passes that together report every problem at once:

1. shape: pydantic checks each section (types, ranges, unknown keys);
2. meaning: cross-field rules (CIDRs, quorum, zones, machine types, gp3 limits, volumes against
   what their machine drives, S3's lifecycle minimums, tags) run on every section that passed
   the first pass, so one broken section does not hide the others.

Each problem names its key as written in the stack file (`dpc:storage.data.iops`) and says
what to write instead.
"""

from __future__ import annotations

import copy
import ipaddress
import math
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from dpc.catalog import MACHINE_TYPES, BlockStorageLimits, Cloud
from dpc.environments import ENVIRONMENT_DEFAULTS, LOCAL_DEFAULTS, Environment
from dpc.sizing import cores_needed
from dpc.tiers import OVERLAY_RANGES

CONFIG_NAMESPACE = "dpc"
REQUIRED_TAG_KEYS = ("Environment", "Service", "Owner", "CostCenter")
PROGRAM_TAG_KEYS = ("ManagedBy", "Stack")

GP3_MIN_IOPS, GP3_MAX_IOPS, GP3_IOPS_PER_GIB = 3000, 80000, 500
GP3_MIN_THROUGHPUT, GP3_MAX_THROUGHPUT, GP3_THROUGHPUT_PER_IOPS = 125, 2000, 0.25

S3_INFREQUENT_ACCESS_MIN_AGE_DAYS = 30
"""S3 lifecycle rejects a transition to STANDARD_IA sooner than 30 days after an object's creation."""
S3_INFREQUENT_ACCESS_MIN_STAY_DAYS = 30
"""S3 lifecycle rejects a further transition of an object that has been less than 30 days in STANDARD_IA."""
S3_ARCHIVE_MIN_STORAGE_DAYS = 90
"""S3 Glacier Instant Retrieval, the offsite bucket's archive class, bills every object for at least
90 days: deleting one sooner costs the remaining days anyway."""
DAYS_PER_MONTH = 31
"""Months of retention counted as 31 days, so that a month's retention never falls short."""


class Section(BaseModel):
    """Base of every settings section: camelCase keys as in YAML, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


Cidr = Annotated[str, Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")]
PositiveGib = Annotated[int, Field(ge=1, le=65536)]


class NetworkSettings(Section):
    """Host networks. Subnet lists hold one CIDR per zone, in zone order."""

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
    provisioned IOPS and throughput in MiB/s; each cloud's settings say whether it takes them.
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
    reads at once (Glacier Instant Retrieval on AWS)."""
    offsite_expire_after_days: Annotated[int, Field(ge=1)]
    """Days the offsite repository keeps a full backup before pgBackRest's expire deletes it (design §4.4:
    7 years in archive storage). The bucket's lifecycle never expires a current object; it
    removes only the versions pgBackRest has deleted or overwritten."""
    offsite_replica_region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")] | None = None
    """A second region the offsite bucket is replicated to (design §4.4: geo-replicated); required in prod."""


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
    """The machine image, looked up by exact name so that it never drifts under a running stack."""

    owner: str
    name: str


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

    @property
    def is_prod(self) -> bool:
        """Production stacks protect stateful resources and require three zones."""
        return self.environment == "prod"


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


def _shape_problems(error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for detail in error.errors():
        fix = _FIX_BY_ERROR.get(detail["type"], "correct the value")
        problems.append(Problem(_path(detail["loc"]), detail["msg"], fix))
    return problems


Check = Callable[[Settings], Iterator[Problem]]
_CHECKS: list[tuple[frozenset[str], Check]] = []


def _check(*sections: str) -> Callable[[Check], Check]:
    """Registers a meaning check that needs the named sections to have passed the shape pass."""

    def register(check: Check) -> Check:
        _CHECKS.append((frozenset(sections), check))
        return check

    return register


def _network(path: str, cidr: str) -> tuple[ipaddress.IPv4Network | None, Problem | None]:
    try:
        return ipaddress.IPv4Network(cidr), None
    except ValueError as exc:
        return None, Problem(path, f"{cidr!r} is not a network address ({exc})", "write the network address with its prefix, for example 10.20.0.0/16")


@_check("network", "zones")
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
    seen: list[tuple[str, ipaddress.IPv4Network]] = []
    for key in ("privateSubnetCidrs", "publicSubnetCidrs"):
        cidrs: list[str] = s.network.private_subnet_cidrs if key == "privateSubnetCidrs" else s.network.public_subnet_cidrs
        if len(cidrs) != len(s.zones):
            yield Problem(f"network.{key}", f"{len(cidrs)} subnet(s) for {len(s.zones)} zone(s)", "list exactly one subnet per zone, in the order of `zones`")
        for index, cidr in enumerate(cidrs):
            path = f"network.{key}[{index}]"
            subnet, problem = _network(path, cidr)
            if problem or subnet is None:
                yield from filter(None, [problem])
                continue
            if not subnet.subnet_of(vpc):
                yield Problem(path, f"{subnet} is outside the VPC {vpc}", f"choose a subnet inside {vpc}")
            elif subnet.prefixlen > 28:
                yield Problem(path, f"/{subnet.prefixlen} is smaller than the /28 a subnet may have", "use a prefix of /28 or shorter")
            for other_path, other in seen:
                if subnet.overlaps(other):
                    yield Problem(path, f"{subnet} overlaps {other} at dpc:{other_path}", "give each subnet its own range")
            seen.append((path, subnet))


@_check("zones", "environment", "region")
def _check_zones(s: Settings) -> Iterator[Problem]:
    if len(set(s.zones)) != len(s.zones):
        yield Problem("zones", "a zone is listed twice", "list each zone once")
    if s.is_prod and len(set(s.zones)) < 3:
        yield Problem(
            "zones",
            f"prod needs 3 zones so that each etcd and Patroni member sits in its own zone; {len(set(s.zones))} given",
            "list three zones of the region",
        )
    for index, zone in enumerate(s.zones):
        if zone == s.region or not zone.startswith(s.region):
            yield Problem(
                f"zones[{index}]", f"{zone!r} is not a zone of region {s.region!r}", f"use zones named {s.region}<letter>, or the region's zone names"
            )


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


def _gp3_problems(path: str, volume: VolumeSettings) -> Iterator[Problem]:
    if volume.iops is None or volume.throughput_mbps is None:
        yield Problem(path, "gp3 volumes are sold by size, IOPS and throughput; this volume lacks the latter", "set iops and throughputMbps")
        return
    max_iops = min(GP3_MAX_IOPS, max(GP3_MIN_IOPS, volume.size_gb * GP3_IOPS_PER_GIB))
    if not GP3_MIN_IOPS <= volume.iops <= max_iops:
        yield Problem(
            f"{path}.iops",
            f"{volume.iops} IOPS is outside what gp3 allows for {volume.size_gb} GiB ({GP3_MIN_IOPS}–{max_iops})",
            f"set iops between {GP3_MIN_IOPS} and {max_iops}, or grow sizeGb",
        )
    max_throughput = min(GP3_MAX_THROUGHPUT, max(GP3_MIN_THROUGHPUT, int(volume.iops * GP3_THROUGHPUT_PER_IOPS)))
    if not GP3_MIN_THROUGHPUT <= volume.throughput_mbps <= max_throughput:
        yield Problem(
            f"{path}.throughputMbps",
            f"{volume.throughput_mbps} MiB/s is outside what gp3 allows at {volume.iops} IOPS ({GP3_MIN_THROUGHPUT}–{max_throughput})",
            f"set throughputMbps between {GP3_MIN_THROUGHPUT} and {max_throughput}, or raise iops",
        )


@_check("storage", "cloud")
def _check_storage(s: Settings) -> Iterator[Problem]:
    if s.cloud == "aws":
        volumes = {"data": s.storage.data, "wal": s.storage.wal, "backup": s.storage.backup}
        for name, volume in volumes.items():
            yield from _gp3_problems(f"storage.{name}", volume)


@_check("storage", "nodes", "cloud")
def _check_storage_against_machines(s: Settings) -> Iterator[Problem]:
    """The volumes of one node together against the most its machine type can drive (EBS maximum:
    IOPS and throughput provisioned beyond it never reach the machine, and are paid for).

    A worker carries the data and WAL volumes; the backup agent's node (the backup node, or
    manager-1 without one) the backup volume. Root volumes are left out: they idle after boot.
    """
    agent_group = "backup" if s.nodes.backup.count > 0 else "managers"
    carried = {
        "workers": {"data": s.storage.data, "wal": s.storage.wal},
        agent_group: {"backup": s.storage.backup},
    }
    for group, volumes in carried.items():
        if any(next(_gp3_problems(volume_name, volume), None) for volume_name, volume in volumes.items()):
            continue  # a volume gp3 cannot provision is reported as such; its sum says nothing more
        name = cast(NodeGroup, getattr(s.nodes, group)).machine_type
        machine = MACHINE_TYPES[s.cloud].get(name)
        limits = machine.storage if machine else None
        if limits is None:
            continue
        keys, first = " + ".join(f"dpc:storage.{volume}" for volume in volumes), next(iter(volumes))
        iops = sum(volume.iops or 0 for volume in volumes.values())
        if iops > limits.maximum_iops:
            yield Problem(
                f"storage.{first}.iops",
                f"{keys} provision {iops} IOPS on one {group} node; its {name} drives at most {limits.maximum_iops} "
                f"(sustained {limits.baseline_iops})",
                f"provision at most {limits.maximum_iops} IOPS in total, or a dpc:nodes.{group}.machineType that drives more",
            )
        throughput = sum(volume.throughput_mbps or 0 for volume in volumes.values())
        ceiling = BlockStorageLimits.mib_per_second(limits.maximum_mbps)
        if throughput > ceiling:
            yield Problem(
                f"storage.{first}.throughputMbps",
                f"{keys} provision {throughput} MiB/s on one {group} node; its {name} drives at most {ceiling} MiB/s "
                f"({limits.maximum_mbps} Mbps; sustained {BlockStorageLimits.mib_per_second(limits.baseline_mbps)} MiB/s)",
                f"provision at most {ceiling} MiB/s in total, or a dpc:nodes.{group}.machineType that drives more",
            )


def _lifecycle_problems(b: BackupSettings) -> Iterator[Problem]:
    """S3's documented lifecycle minimums, which S3 enforces by rejecting the rule, and the archive
    class's minimum storage duration, which the offsite retention must not undercut.
    """
    infrequent, archive, expire = b.offsite_infrequent_access_after_days, b.offsite_archive_after_days, b.offsite_expire_after_days
    if infrequent < S3_INFREQUENT_ACCESS_MIN_AGE_DAYS:
        yield Problem(
            "backup.offsiteInfrequentAccessAfterDays",
            f"S3 moves nothing to infrequent access sooner than {S3_INFREQUENT_ACCESS_MIN_AGE_DAYS} days after its creation "
            "and rejects this lifecycle rule",
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
    if expire < b.monthly_retention_months * DAYS_PER_MONTH:
        yield Problem(
            "backup.offsiteExpireAfterDays",
            f"the offsite repository holds the monthly fulls, which design §4.2 keeps {b.monthly_retention_months} months",
            f"use at least {b.monthly_retention_months * DAYS_PER_MONTH}, or lower dpc:backup.monthlyRetentionMonths",
        )


@_check("backup", "region", "environment", "cloud")
def _check_backup(s: Settings) -> Iterator[Problem]:
    b = s.backup
    if s.cloud != "local" and s.is_prod and b.offsite_replica_region is None:
        yield Problem(
            "backup.offsiteReplicaRegion",
            "prod keeps its offsite backups in one region only; design §4.4 asks for geo-replicated backups",
            "name a second region for the copy, for example us-west-2",
        )
    if b.offsite_replica_region == s.region:
        yield Problem("backup.offsiteReplicaRegion", "is the stack's own region", "name a different region, so one region's loss keeps the copy")
    yield from _lifecycle_problems(b)
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
    for key, value in s.tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256 or key.lower().startswith("aws:"):
            yield Problem(f"tags.{key}", "tag keys take 1–128 characters (not starting with aws:) and values at most 256", "shorten or rename the tag")


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


def _config_key_path(key: str) -> str:
    return key.split(":", 1)[1] if ":" in key else key


def settings_from_config(values: Mapping[str, object]) -> Settings:
    """Validates the `dpc:*` config values of one stack (keys without namespace) into Settings.

    Missing keys take the defaults of the stack's environment. Raises SettingsError with every
    problem found.
    """
    environment = values.get("environment")
    if not isinstance(environment, str) or environment not in ENVIRONMENT_DEFAULTS:
        raise SettingsError(
            [Problem("environment", f"{environment!r} is not an environment", "set dpc:environment to one of: " + ", ".join(ENVIRONMENT_DEFAULTS))]
        )
    given = {_config_key_path(k): v for k, v in values.items()}
    defaults = ENVIRONMENT_DEFAULTS[environment]
    if given.get("cloud") == "local":
        defaults = _deep_merge(defaults, LOCAL_DEFAULTS)
    merged = _deep_merge(defaults, given)
    problems: list[Problem] = []
    valid: dict[str, Any] = {}
    try:
        settings = Settings.model_validate(merged)
        valid = dict(settings)
    except ValidationError as error:
        problems.extend(_shape_problems(error))
        broken = {str(detail["loc"][0]) for detail in error.errors() if detail["loc"]}
        for name, field in Settings.model_fields.items():
            alias = field.alias or name
            if alias not in broken and alias in merged and field.annotation is not None:
                valid[name] = TypeAdapter(field.annotation).validate_python(merged[alias])
    partial = Settings.model_construct(set(valid), **valid)
    for needs, check in _CHECKS:
        if needs <= valid.keys():
            problems.extend(check(partial))
    if problems:
        raise SettingsError(problems)
    return Settings.model_validate(merged)
