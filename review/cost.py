"""The monthly cost of a stack after a change, per resource and per component, and its delta.

It reads the change model of `review/steps.py` (a real `pulumi preview --json` or two offline
plans), so that a preview and a plan are priced alike: the state after the change is each step's
new state, the state before it its old state (a digest's `oldState`, the base plan's resource).

Prices come from the tables in `review/prices/` (one file per cloud, each saying where its figures
come from and as of when), loaded once per process. Nothing is fetched at run time:
`review/prices/refresh.py` regenerates the tables where there is network.

Three kinds of resource:
- priced: a type the tables know, with each part of its price on its own line;
- free: a type that costs nothing by nature (security groups, IAM, subnets, generated passwords
  and certificates, Docker objects on machines already paid for), priced 0 with the reason;
- unpriced: any other type, a region the tables lack, or a priced property whose value is not known
  before the update (the engine's unknown value): listed with the reason, never dropped, never
  guessed.

Usage-based parts (NAT and load balancer traffic, backup growth, log volume, registry storage)
cannot be read from a plan: they come from `Usage` (defaults, or a usage file), and the offsite
backups from the stack's own sizing settings (data volume, lifecycle) when they are known; every
such line carries its assumption, printed next to its number.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, cast

from providers.aws.settings import ARCHIVE_STORAGE_CLASS, S3_INFREQUENT_ACCESS_CLASS
from providers.azure.settings import BLOB_ARCHIVE_TIER, BLOB_INFREQUENT_ACCESS_TIER
from providers.gcp.settings import GCS_ARCHIVE_CLASS, GCS_INFREQUENT_ACCESS_CLASS
from review.limits.azure import iso_days
from review.steps import Change, Step, is_unknown, load_change

PRICES_DIR = Path(__file__).with_name("prices")
CLOUD_OF_PACKAGE = {"aws": "aws", "gcp": "gcp", "azure-native": "azure"}
DAYS_PER_MONTH = 365 / 12
FULL_BACKUPS_PER_MONTH = 52 / 12 + 1
"""pgBackRest's offsite fulls (design §4.2, dpc/render/backup.py): every Sunday and on the 1st."""
BACKUP_PURPOSE = "offsite-backups"
"""The `Purpose` tag the program puts on its offsite backup buckets (providers/aws/storage.py)."""
BEFORE_ONLY_OPS = frozenset({"delete", "delete-replaced", "discard", "discard-replaced", "remove-pending-replace"})
"""Ops after which the resource no longer exists (nor costs anything)."""
AFTER_ONLY_OPS = frozenset({"create", "create-replacement"})
"""Ops before which the resource did not exist."""
READ_OPS = frozenset({"read", "read-replacement"})
"""A resource the stack reads but does not manage: someone else's bill (listed as free, with why)."""


class UnpriceableError(Exception):
    """A resource (or one side of it) that the tables cannot price, with the reason."""


class UnknownValueError(UnpriceableError):
    """A priced property whose value the preview does not know: priced on guesswork, it would be wrong."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is not known until the change is applied (the engine's unknown value): not priced rather than guessed")


@dataclass(frozen=True)
class Line:
    """One part of a resource's monthly price, how it is computed and, for usage, what was assumed."""

    label: str
    monthly_usd: float
    assumption: str = ""


@dataclass(frozen=True)
class PriceTable:
    """One cloud's price table file."""

    cloud: str
    as_of: str
    basis: str
    hours_per_month: float
    regions: Mapping[str, Mapping[str, Any]]

    def region(self, name: str) -> Mapping[str, Any]:
        """The prices of one region; a region the file lacks makes the resource unpriced."""
        try:
            return self.regions[name]
        except KeyError:
            known = ", ".join(self.regions)
            raise UnpriceableError(f"no {self.cloud} prices for region {name!r} in review/prices/{self.cloud}.json (it has {known})") from None


@cache
def price_tables(directory: Path = PRICES_DIR) -> Mapping[str, PriceTable]:
    """Every cloud's table, read once per process (a 400-resource plan is priced in milliseconds)."""
    tables: dict[str, PriceTable] = {}
    for path in sorted(directory.glob("*.json")):
        data = cast(dict[str, Any], json.loads(path.read_text()))
        tables[str(data["cloud"])] = PriceTable(
            cloud=str(data["cloud"]),
            as_of=str(data["asOf"]),
            basis=str(data["basis"]),
            hours_per_month=float(data["hoursPerMonth"]),
            regions=cast(dict[str, Mapping[str, Any]], data["regions"]),
        )
    return tables


@dataclass(frozen=True)
class Usage:
    """What a plan cannot say: traffic, stored data, log volume. Each field is a usage file key
    (camelCase); the defaults are deliberately modest and every line that uses one says so.
    """

    nat_gb_per_month: float = 100.0
    """GB processed by each NAT gateway a month (package updates, image pulls outside the VPC endpoints)."""
    internet_egress_gb_per_month: float = 0.0
    """GB a month sent to the internet, shared by the NAT gateways (the shipped stacks serve no internet clients)."""
    load_balancer_lcu: float = 1.0
    """Load balancer capacity units used in an average hour."""
    vpc_endpoint_gb_per_month: float = 10.0
    """GB a month through each interface endpoint."""
    log_gb_per_month: float = 30.0
    """GB a month ingested into each log group (VPC flow logs of ~10 machines at 60 s aggregation)."""
    log_compression_ratio: float = 0.15
    """Stored (compressed) size of log data over its ingested size."""
    months_elapsed: int = 12
    """Age of the stack at which storage that accumulates (backups, logs) is priced."""
    registry_gb_per_repository: float = 2.0
    """GB each image repository holds (a few versions of one image)."""
    kms_requests_per_month: float = 10000.0
    """Requests to each key a month (bucket keys and EBS keep this low)."""
    object_storage_gb: float = 0.0
    """GB stored in each bucket that is not an offsite backup bucket."""
    database_fill_ratio: float = 0.5
    """Share of the data volume the database fills: the size of what a full backup copies."""
    backup_compression_ratio: float = 0.3
    """Size of a compressed (zstd) full backup over the database's size."""
    backup_full_gb: float | None = None
    """Size of one compressed full backup; None derives it from the data volume of the stack's settings."""
    replication_gb_per_month: float | None = None
    """GB a month copied to another region by bucket replication; None: the backup growth."""

    @staticmethod
    def keys() -> dict[str, str]:
        """Usage file key → field name."""
        return {_camel(f.name): f.name for f in fields(Usage)}

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> Usage:
        """A usage file's values over the defaults; an unknown key or a negative number is an error
        (a misspelt key silently ignored would price something else than the reader thinks).
        """
        keys = cls.keys()
        unknown = sorted(set(data) - set(keys))
        if unknown:
            raise ValueError(f"unknown usage key(s) {', '.join(unknown)}; known: {', '.join(sorted(keys))}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
                raise ValueError(f"usage {key}: {value!r} is not a number of at least 0")
            values[keys[key]] = value
        return cls(**values)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class Sizing:
    """What the stack's settings say about its data: the backups' size and the offsite lifecycle."""

    source: str
    data_volume_gb: int
    infrequent_access_after_days: int
    archive_after_days: int
    expire_after_days: int


def sizing_from_config(config: Mapping[str, str], source: str) -> Sizing | None:
    """The sizing of a stack's `dpc:*` config (a digest's `config`, a stack file), None if the config is
    not this program's or does not validate.
    """
    from dpc.config import decode_config_value  # noqa: PLC0415  (only plans of this program need the settings model)
    from dpc.settings import SettingsError, settings_from_config  # noqa: PLC0415

    prefix = "dpc:"
    values = {key.removeprefix(prefix): decode_config_value(value) for key, value in config.items() if key.startswith(prefix)}
    if "environment" not in values:
        return None
    try:
        settings = settings_from_config(values)
    except SettingsError:
        return None
    return Sizing(
        source=source,
        data_volume_gb=settings.storage.data.size_gb,
        infrequent_access_after_days=settings.backup.offsite_infrequent_access_after_days,
        archive_after_days=settings.backup.offsite_archive_after_days,
        expire_after_days=settings.backup.offsite_expire_after_days,
    )


@dataclass(frozen=True)
class BackupModel:
    """The offsite repository's contents after `months_elapsed` months: fulls added every month,
    moved through the lifecycle's classes by age.
    """

    full_gb: float
    monthly_growth_gb: float
    gb_by_tier: Mapping[str, float]
    """By lifecycle tier (`LIFECYCLE_TIERS`): each cloud's pricer names its own class for each."""
    assumption: str


def backup_model(usage: Usage, sizing: Sizing | None) -> BackupModel | None:
    """None when neither the usage nor the stack's settings say how big a full backup is."""
    if usage.backup_full_gb is not None:
        full = usage.backup_full_gb
        origin = f"one full backup {full:g} GB (usage backupFullGb)"
    elif sizing is not None:
        full = sizing.data_volume_gb * usage.database_fill_ratio * usage.backup_compression_ratio
        origin = (
            f"one full backup {full:g} GB = data volume {sizing.data_volume_gb} GB ({sizing.source}) × {usage.database_fill_ratio:g} filled"
            f" × {usage.backup_compression_ratio:g} compressed (usage databaseFillRatio, backupCompressionRatio)"
        )
    else:
        return None
    growth = full * FULL_BACKUPS_PER_MONTH
    months = usage.months_elapsed
    ia_after = (sizing.infrequent_access_after_days if sizing else 30) / DAYS_PER_MONTH
    archive_after = (sizing.archive_after_days if sizing else 90) / DAYS_PER_MONTH
    kept = min(float(months), (sizing.expire_after_days if sizing else 2555) / DAYS_PER_MONTH)
    by_tier = {
        "hot": growth * min(kept, ia_after),
        "infrequent": growth * max(0.0, min(kept, archive_after) - ia_after),
        "archive": growth * max(0.0, kept - archive_after),
    }
    assumption = (
        f"{origin}; {FULL_BACKUPS_PER_MONTH:.2f} fulls a month (Sundays and the 1st) = {growth:,.0f} GB/month;"
        f" month {months} of the stack (usage monthsElapsed): objects move to the infrequent-access class after"
        f" {ia_after * DAYS_PER_MONTH:.0f} days and the archive class after {archive_after * DAYS_PER_MONTH:.0f} days"
    )
    return BackupModel(full, growth, by_tier, assumption)


@dataclass
class Subject:
    """One side (before or after) of one step, as a pricer reads it. With `as_deployed`, the new
    side reads the properties the resource's `ignoreChanges` names from its old state: the engine
    keeps them, so the cloud runs what it ran (an offline plan records what the program asked for).
    """

    step: Step
    side: str
    context: PricingContext
    as_deployed: bool = True

    def get(self, path: str, default: Any = None) -> Any:
        """A property (inputs, else outputs), `default` if absent; an unknown value makes the
        resource unpriced (UnknownValueError) instead of priced on a guess.
        """
        side = "old" if self.as_deployed and self.side == "new" and self.step.old is not None and _ignored(self.step, path) else self.side
        value = self.step.value(path, side)
        if is_unknown(value):
            raise UnknownValueError(path)
        return default if value is None else value

    def number(self, path: str, default: float | None = None) -> float:
        """A numeric property; absent without a default, the resource is unpriced."""
        value = self.get(path, default)
        if value is None:
            raise UnpriceableError(f"{path} is not set and has no documented default")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UnpriceableError(f"{path} is {value!r}, not a number") from None

    def tag(self, key: str) -> str:
        """A tag (AWS) or label (GCP) value, "" if absent or unknown."""
        for path in (f"tags.{key}", f"labels.{key.lower()}"):
            value = self.step.value(path, self.side)
            if isinstance(value, str) and not is_unknown(value):
                return value
        return ""

    @property
    def cloud(self) -> str:
        """The cloud whose table prices this type."""
        return CLOUD_OF_PACKAGE[self.step.type.split(":", 1)[0]]

    @property
    def table(self) -> PriceTable:
        """The cloud's price table."""
        try:
            return self.context.tables[self.cloud]
        except KeyError:
            raise UnpriceableError(f"no price table for {self.cloud} in review/prices/") from None

    @property
    def region_name(self) -> str:
        """The resource's region: its own location property, else its provider's, else the stack config's."""
        return self.context.region_of(self)

    @property
    def prices(self) -> Mapping[str, Any]:
        """The prices of the resource's region."""
        return self.table.region(self.region_name)

    @property
    def hours(self) -> float:
        """Hours billed in a month (730: the clouds' own monthly figure)."""
        return self.table.hours_per_month


Pricer = Callable[[Subject], list[Line]]


def ignored_changes(step: Step) -> tuple[str, ...]:
    """The property paths the new state's `ignoreChanges` option names (offline plans record it)."""
    value = (step.new or {}).get("ignoreChanges")
    return tuple(str(item) for item in cast(list[object], value)) if isinstance(value, list) else ()


def _ignored(step: Step, path: str) -> bool:
    return any(path == prop or path.startswith((f"{prop}.", f"{prop}[")) for prop in ignored_changes(step))


@dataclass
class PricingContext:
    """What pricing a resource may need beyond the resource itself: the change (providers, other
    resources), the tables, the usage and the stack's sizing.
    """

    change: Change
    tables: Mapping[str, PriceTable]
    usage: Usage
    sizing: Sizing | None
    backups: BackupModel | None = field(init=False)
    _regions: dict[tuple[str, str], str] = field(default_factory=dict[tuple[str, str], str])

    def __post_init__(self) -> None:
        """The backup model once for the whole stack."""
        self.backups = backup_model(self.usage, self.sizing)

    def region_of(self, subject: Subject) -> str:
        """See Subject.region_name; cached by provider, so 400 resources look their provider up once."""
        own = _own_region(subject)
        if own:
            return own
        key = (subject.step.provider, subject.side)
        if key not in self._regions:
            self._regions[key] = self._provider_region(subject)
        return self._regions[key]

    def _provider_region(self, subject: Subject) -> str:
        provider_urn = subject.step.provider.rsplit("::", 1)[0]
        provider = self.change.step(provider_urn) if provider_urn else None
        keys = {"aws": ("region",), "gcp": ("region", "zone"), "azure": ("location",)}[subject.cloud]
        if provider is not None:
            side = subject.side if (provider.new if subject.side == "new" else provider.old) is not None else ("old" if subject.side == "new" else "new")
            for key in keys:
                value = provider.value(key, side)
                if isinstance(value, str) and value and not is_unknown(value):
                    return _region_of_zone(value) if key == "zone" else value
        config_keys = {"aws": ("aws:region",), "gcp": ("gcp:region", "gcp:zone"), "azure": ("azure-native:location",)}[subject.cloud]
        for key in config_keys:
            value = self.change.config.get(key)
            if value:
                return _region_of_zone(value) if key.endswith("zone") else value
        raise UnpriceableError("its region is not known: no region on the resource, its provider or the stack's config")


def _region_of_zone(zone: str) -> str:
    """`us-central1-a` → `us-central1`; a region is returned as it is."""
    parts = zone.rsplit("-", 1)
    return parts[0] if len(parts) == 2 and len(parts[1]) == 1 else zone


def _own_region(subject: Subject) -> str:
    """A location the resource itself carries (a GCP zone or region, an Azure location, an AWS zone)."""
    cloud = subject.cloud
    candidates = {"aws": ("availabilityZone",), "gcp": ("zone", "region", "location"), "azure": ("location",)}[cloud]
    for key in candidates:
        value = subject.step.value(key, subject.side)
        if isinstance(value, str) and value and not is_unknown(value):
            if cloud == "aws":
                return value[:-1]
            return _region_of_zone(value.lower()) if cloud == "gcp" else value.replace(" ", "").lower()
    return ""


def _usd(amount: float) -> str:
    """A rate as the table has it (0.1664, 0.0225, 1.00): never rounded, trailing zeros dropped."""
    return f"{amount:.6f}".rstrip("0").rstrip(".") if amount < 1 else f"{amount:,.2f}"


def _hourly(label: str, per_hour: float, hours: float, count: float = 1) -> Line:
    times = f"{count:g} × " if count != 1 else ""
    return Line(f"{label}: {times}{_usd(per_hour)} USD/h × {hours:g} h", count * per_hour * hours)


# --- AWS ---------------------------------------------------------------------------------------


def _ebs(subject: Subject, label: str, volume_type: str, size: float, *, iops: float | None, throughput: float | None) -> list[Line]:
    """An EBS volume: GB, and for gp3 the IOPS and MiB/s above what its GB price includes."""
    ebs = cast(Mapping[str, Mapping[str, Any]], subject.prices["ebs"])
    if volume_type not in ebs:
        raise UnpriceableError(f"EBS volume type {volume_type!r} has no price for {subject.region_name} in review/prices/aws.json")
    rates = ebs[volume_type]
    lines = [Line(f"{label} {volume_type} {size:g} GB × {_usd(rates['gbMonth'])} USD/GB-month", size * float(rates["gbMonth"]))]
    if volume_type == "gp3":
        extra_iops = max(0.0, (iops or 0) - float(rates["includedIops"]))
        extra_mibps = max(0.0, (throughput or 0) - float(rates["includedMibps"]))
        if extra_iops:
            iops_rate = float(rates["iopsMonth"])
            lines.append(Line(f"{label} IOPS above {rates['includedIops']}: {extra_iops:g} × {_usd(iops_rate)} USD", extra_iops * iops_rate))
        if extra_mibps:
            mibps_rate = float(rates["mibpsMonth"])
            lines.append(Line(f"{label} MiB/s above {rates['includedMibps']}: {extra_mibps:g} × {_usd(mibps_rate)} USD", extra_mibps * mibps_rate))
    elif volume_type == "io1":
        lines.append(Line(f"{label} {iops or 0:g} IOPS × {_usd(rates['iopsMonth'])} USD", (iops or 0) * float(rates["iopsMonth"])))
    elif volume_type == "io2":
        lines.extend(_tiered(f"{label} IOPS", iops or 0, cast(list[list[float | None]], rates["iopsTiers"])))
    return lines


def _tiered(label: str, amount: float, tiers: Sequence[Sequence[float | None]]) -> list[Line]:
    lines: list[Line] = []
    floor = 0.0
    for upper, rate in tiers:
        assert rate is not None
        top = amount if upper is None else min(amount, upper)
        if top > floor:
            lines.append(Line(f"{label} {floor:g}–{top:g}: {top - floor:g} × {_usd(rate)} USD", (top - floor) * rate))
        if upper is None or amount <= upper:
            break
        floor = upper
    return lines


def _aws_volume(subject: Subject) -> list[Line]:
    volume_type = str(subject.get("type", "gp2"))
    return _ebs(subject, "volume", volume_type, subject.number("size"), iops=subject.get("iops"), throughput=subject.get("throughput"))


def _aws_instance(subject: Subject) -> list[Line]:
    prices = subject.prices
    instance_type = str(subject.get("instanceType") or "")
    if not instance_type:
        raise UnpriceableError("instanceType is not set (a launch template's is not read)")
    hourly = cast(Mapping[str, float], prices["instanceHourly"]).get(instance_type)
    if hourly is None:
        raise UnpriceableError(f"no price for instance type {instance_type} in {subject.region_name} in review/prices/aws.json")
    lines = [_hourly(f"{instance_type} on demand (Linux)", hourly, subject.hours)]
    root = cast(Mapping[str, Any], subject.get("rootBlockDevice", {}))
    if root:
        lines += _ebs(subject, "root", str(subject.get("rootBlockDevice.volumeType", "gp2")), subject.number("rootBlockDevice.volumeSize", 8),
                      iops=subject.get("rootBlockDevice.iops"), throughput=subject.get("rootBlockDevice.throughput"))
    else:
        lines.append(Line("root volume: the AMI's default, not in the inputs (not priced)", 0.0))
    for index, _ in enumerate(cast(list[Any], subject.get("ebsBlockDevices", []))):
        path = f"ebsBlockDevices[{index}]"
        lines += _ebs(subject, f"block device {index}", str(subject.get(f"{path}.volumeType", "gp2")), subject.number(f"{path}.volumeSize"),
                      iops=subject.get(f"{path}.iops"), throughput=subject.get(f"{path}.throughput"))
    if subject.get("monitoring", False) is True:
        monitoring = cast(Mapping[str, float], prices["detailedMonitoring"])
        lines.append(Line(f"detailed monitoring: {monitoring['metricsPerInstance']:g} metrics × {_usd(monitoring['metricMonth'])} USD",
                          monitoring["metricsPerInstance"] * monitoring["metricMonth"]))
    if subject.get("associatePublicIpAddress", False) is True:
        lines.append(_hourly("public IPv4 address", float(prices["publicIpv4Hourly"]), subject.hours))
    if instance_type.startswith(("t3.", "t3a.", "t4g.")) and subject.get("creditSpecification.cpuCredits", "unlimited") == "unlimited":
        lines.append(Line("CPU credits above the baseline (unlimited mode, the default)", 0.0,
                          "the machine runs at or below its baseline CPU: no surplus credits"))
    return lines


def _aws_nat(subject: Subject) -> list[Line]:
    nat = cast(Mapping[str, float], subject.prices["natGateway"])
    gb = subject.context.usage.nat_gb_per_month
    gateways = max(1, sum(1 for s in subject.context.change.steps if s.type == subject.step.type and (s.new if subject.side == "new" else s.old) is not None))
    egress = subject.context.usage.internet_egress_gb_per_month / gateways
    transfer = cast(Mapping[str, float], subject.prices["dataTransfer"])
    lines = [
        _hourly("NAT gateway", nat["hourly"], subject.hours),
        Line(f"data processed: {gb:g} GB × {_usd(nat['perGb'])} USD", gb * nat["perGb"], f"{gb:g} GB/month through this gateway (usage natGbPerMonth)"),
    ]
    if egress:
        lines.append(Line(f"internet egress: {egress:g} GB × {_usd(transfer['internetEgressGb'])} USD", egress * transfer["internetEgressGb"],
                          f"{subject.context.usage.internet_egress_gb_per_month:g} GB/month to the internet shared by {gateways} gateway(s)"
                          " (usage internetEgressGbPerMonth)"))
    return lines


def _aws_public_ip(subject: Subject) -> list[Line]:
    return [_hourly("public IPv4 address", float(subject.prices["publicIpv4Hourly"]), subject.hours)]


def _aws_load_balancer(subject: Subject) -> list[Line]:
    kind = str(subject.get("loadBalancerType", "application"))
    rates = cast(Mapping[str, Mapping[str, float]], subject.prices["loadBalancer"]).get(kind)
    if rates is None:
        raise UnpriceableError(f"no price for a {kind} load balancer in review/prices/aws.json")
    lcu = subject.context.usage.load_balancer_lcu
    return [
        _hourly(f"{kind} load balancer", rates["hourly"], subject.hours),
        Line(f"capacity units: {lcu:g} LCU × {_usd(rates['lcuHourly'])} USD/h × {subject.hours:g} h", lcu * rates["lcuHourly"] * subject.hours,
             f"{lcu:g} LCU in an average hour (usage loadBalancerLcu)"),
    ]


def _aws_vpc_endpoint(subject: Subject) -> list[Line]:
    if str(subject.get("vpcEndpointType", "Gateway")) == "Gateway":
        return [Line("gateway endpoint: no charge", 0.0)]
    rates = cast(Mapping[str, float], subject.prices["vpcEndpoint"])
    zones = len(cast(list[Any], subject.get("subnetIds", []))) or 1
    gb = subject.context.usage.vpc_endpoint_gb_per_month
    return [
        _hourly("interface endpoint, per zone", rates["interfacePerZoneHourly"], subject.hours, zones),
        Line(f"data processed: {gb:g} GB × {_usd(rates['perGb'])} USD", gb * rates["perGb"],
             f"{gb:g} GB/month through this endpoint (usage vpcEndpointGbPerMonth)"),
    ]


def _storage_lines(subject: Subject, gb_by_class: Mapping[str, float], rates: Mapping[str, float], assumption: str) -> list[Line]:
    lines: list[Line] = []
    for storage_class, gb in gb_by_class.items():
        if gb <= 0:
            continue
        if storage_class not in rates:
            raise UnpriceableError(f"storage class {storage_class} has no price for {subject.region_name}")
        lines.append(Line(f"{storage_class}: {gb:,.0f} GB × {_usd(rates[storage_class])} USD/GB-month", gb * rates[storage_class], assumption))
    return lines or [Line("stored data: 0 GB", 0.0, assumption)]


LIFECYCLE_TIERS: tuple[str, ...] = ("hot", "infrequent", "archive")
"""The offsite lifecycle's tiers (design §4.4), in order."""

AWS_LIFECYCLE_CLASSES: dict[str, str] = dict(zip(LIFECYCLE_TIERS, ("STANDARD", S3_INFREQUENT_ACCESS_CLASS, ARCHIVE_STORAGE_CLASS), strict=True))
GCP_LIFECYCLE_CLASSES: dict[str, str] = dict(zip(LIFECYCLE_TIERS, ("STANDARD", GCS_INFREQUENT_ACCESS_CLASS, GCS_ARCHIVE_CLASS), strict=True))
AZURE_LIFECYCLE_CLASSES: dict[str, str] = dict(zip(LIFECYCLE_TIERS, ("Hot", BLOB_INFREQUENT_ACCESS_TIER, BLOB_ARCHIVE_TIER), strict=True))
"""Azure's online tiers: its Archive tier must be rehydrated before a read, which pgBackRest cannot wait for."""


def _bucket_contents(subject: Subject, default_class: str, classes: Mapping[str, str]) -> tuple[Mapping[str, float], str]:
    """What a bucket holds, by storage class: the offsite backup model for the program's backup
    buckets (each tier in the cloud's `classes`), else the usage's flat figure.
    """
    usage = subject.context.usage
    backups = subject.context.backups
    if subject.tag("Purpose") == BACKUP_PURPOSE and backups is not None:
        return {classes[tier]: gb for tier, gb in backups.gb_by_tier.items()}, backups.assumption
    if subject.tag("Purpose") == BACKUP_PURPOSE:
        return {}, "backup size unknown: no stack settings and no usage backupFullGb (0 GB priced)"
    return {default_class: usage.object_storage_gb}, f"{usage.object_storage_gb:g} GB stored (usage objectStorageGb)"


def _aws_bucket(subject: Subject) -> list[Line]:
    gb_by_class, assumption = _bucket_contents(subject, "STANDARD", AWS_LIFECYCLE_CLASSES)
    return _storage_lines(subject, gb_by_class, cast(Mapping[str, float], subject.prices["s3GbMonth"]), assumption)


def _replicated_gb(subject: Subject) -> tuple[float, str]:
    """What a month copies to another region (S3 replication, Azure's geo-redundant storage): the
    usage's figure, else the backups' growth.
    """
    usage, backups = subject.context.usage, subject.context.backups
    if usage.replication_gb_per_month is not None:
        return usage.replication_gb_per_month, f"{usage.replication_gb_per_month:g} GB/month replicated (usage replicationGbPerMonth)"
    if backups is not None:
        return backups.monthly_growth_gb, f"the backups' growth, {backups.monthly_growth_gb:,.0f} GB/month, copied to the other region"
    return 0.0, "nothing replicated: no usage replicationGbPerMonth and no backup size"


def _aws_replication(subject: Subject) -> list[Line]:
    gb, assumption = _replicated_gb(subject)
    rate = float(cast(Mapping[str, float], subject.prices["dataTransfer"])["interRegionGb"])
    return [Line(f"inter-region transfer: {gb:,.0f} GB × {_usd(rate)} USD", gb * rate, assumption)]


def _aws_kms_key(subject: Subject) -> list[Line]:
    kms = cast(Mapping[str, float], subject.prices["kms"])
    requests = subject.context.usage.kms_requests_per_month
    rotation = " (rotation adds 1 USD/month at each of its first two anniversaries)" if subject.get("enableKeyRotation", False) is True else ""
    return [
        Line(f"customer-managed key: {_usd(kms['keyMonth'])} USD/month{rotation}", kms["keyMonth"]),
        Line(f"requests: {requests:,.0f} × {_usd(kms['per10kRequests'])} USD per 10,000", requests / 10000 * kms["per10kRequests"],
             f"{requests:,.0f} requests/month (usage kmsRequestsPerMonth)"),
    ]


def _aws_log_group(subject: Subject) -> list[Line]:
    logs = cast(Mapping[str, float], subject.prices["logs"])
    usage = subject.context.usage
    retention_days = subject.number("retentionInDays", 0)
    months = min(float(usage.months_elapsed), retention_days / DAYS_PER_MONTH) if retention_days else float(usage.months_elapsed)
    stored = usage.log_gb_per_month * usage.log_compression_ratio * months
    return [
        Line(f"ingestion: {usage.log_gb_per_month:g} GB × {_usd(logs['ingestGb'])} USD", usage.log_gb_per_month * logs["ingestGb"],
             f"{usage.log_gb_per_month:g} GB/month ingested (usage logGbPerMonth)"),
        Line(f"storage: {stored:,.1f} GB × {_usd(logs['storageGbMonth'])} USD/GB-month", stored * logs["storageGbMonth"],
             f"{months:.1f} months kept (retention {retention_days:g} days, month {usage.months_elapsed}),"
             f" compressed to {usage.log_compression_ratio:g} (usage logCompressionRatio)"),
    ]


def _aws_ecr(subject: Subject) -> list[Line]:
    gb = subject.context.usage.registry_gb_per_repository
    rate = float(subject.prices["ecrGbMonth"])
    return [Line(f"image storage: {gb:g} GB × {_usd(rate)} USD/GB-month", gb * rate, f"{gb:g} GB of images (usage registryGbPerRepository)")]


def _aws_ssm_parameter(subject: Subject) -> list[Line]:
    if str(subject.get("tier", "Standard")) == "Standard":
        return [Line("standard parameter: no charge", 0.0)]
    return [Line("advanced parameter", float(subject.prices["ssmAdvancedParameterMonth"]))]


def _aws_secret(subject: Subject) -> list[Line]:
    return [Line("secret", float(subject.prices["secretsManagerSecretMonth"]))]


# --- GCP ---------------------------------------------------------------------------------------

GCP_MEMORY_PER_VCPU = {"standard": 4, "highmem": 8, "highcpu": 1}


def _gcp_machine(subject: Subject, machine_type: str) -> Line:
    prices = subject.prices
    name = machine_type.rsplit("/", 1)[-1]
    shared = cast(Mapping[str, float], prices["sharedCoreHourly"]).get(name)
    if shared is not None:
        return _hourly(f"{name} on demand", shared, subject.hours)
    family, _, rest = name.partition("-")
    shape, _, vcpus_text = rest.rpartition("-")
    rates = cast(Mapping[str, Mapping[str, float]], prices["machineFamilies"]).get(family)
    if rates is None or shape not in GCP_MEMORY_PER_VCPU or not vcpus_text.isdigit():
        raise UnpriceableError(f"no price for machine type {name} in review/prices/gcp.json")
    vcpus = int(vcpus_text)
    memory = vcpus * GCP_MEMORY_PER_VCPU[shape]
    hourly = vcpus * rates["vcpuHour"] + memory * rates["gbHour"]
    discount = rates["sustainedUseDiscountFullMonth"]
    label = f"{name} ({vcpus} vCPU × {_usd(rates['vcpuHour'])} + {memory} GB × {_usd(rates['gbHour'])} USD/h) × {subject.hours:g} h"
    if discount:
        label += f" − {discount:.0%} sustained-use discount"
    return Line(label, hourly * subject.hours * (1 - discount))


def _gcp_disk_lines(subject: Subject, label: str, disk_type: str, size: float, *, regional: bool, iops: float | None = None) -> list[Line]:
    key = "regionalDiskGbMonth" if regional else "diskGbMonth"
    rates = cast(Mapping[str, float], subject.prices[key])
    if disk_type not in rates:
        raise UnpriceableError(f"{'regional ' if regional else ''}disk type {disk_type} has no price in review/prices/gcp.json")
    lines = [Line(f"{label} {'regional ' if regional else ''}{disk_type} {size:g} GB × {_usd(rates[disk_type])} USD/GB-month", size * rates[disk_type])]
    if disk_type == "pd-extreme":
        rate = float(subject.prices["pdExtremeIopsMonth"])
        lines.append(Line(f"{label} {iops or 0:g} IOPS × {_usd(rate)} USD", (iops or 0) * rate))
    return lines


def _gcp_instance(subject: Subject) -> list[Line]:
    lines = [_gcp_machine(subject, str(subject.get("machineType", "")))]
    if subject.get("bootDisk.initializeParams.size") is not None:
        lines += _gcp_disk_lines(subject, "boot disk", str(subject.get("bootDisk.initializeParams.type", "pd-standard")).rsplit("/", 1)[-1],
                                 subject.number("bootDisk.initializeParams.size"), regional=False)
    else:
        lines.append(Line("boot disk: the image's size, not in the inputs (not priced)", 0.0))
    external = sum(len(cast(list[Any], nic.get("accessConfigs") or [])) for nic in cast(list[dict[str, Any]], subject.get("networkInterfaces", [])))
    if external:
        rate = float(cast(Mapping[str, float], subject.prices["externalIpv4"])["inUseHourly"])
        lines.append(_hourly("external IPv4 address in use", rate, subject.hours, external))
    return lines


def _gcp_disk(subject: Subject) -> list[Line]:
    regional = subject.step.type == "gcp:compute/regionDisk:RegionDisk"
    return _gcp_disk_lines(subject, "disk", str(subject.get("type", "pd-standard")).rsplit("/", 1)[-1], subject.number("size"),
                           regional=regional, iops=subject.get("provisionedIops"))


def _gcp_router_nat(subject: Subject) -> list[Line]:
    nat = cast(Mapping[str, float], subject.prices["cloudNat"])
    vms = sum(1 for s in subject.context.change.steps if s.type == "gcp:compute/instance:Instance" and s.new is not None)
    hourly = min(nat["maxGatewayHourly"], vms * nat["perVmHour"])
    gb = subject.context.usage.nat_gb_per_month
    return [
        Line(f"Cloud NAT: {vms} VMs × {_usd(nat['perVmHour'])} USD/h (at most {_usd(nat['maxGatewayHourly'])}) × {subject.hours:g} h", hourly * subject.hours,
             f"every VM of the stack ({vms}) uses this gateway"),
        Line(f"data processed: {gb:g} GB × {_usd(nat['perGb'])} USD", gb * nat["perGb"], f"{gb:g} GB/month through this gateway (usage natGbPerMonth)"),
    ]


def _gcp_address(subject: Subject) -> list[Line]:
    if str(subject.get("addressType", "EXTERNAL")) == "INTERNAL":
        return [Line("internal address: no charge", 0.0)]
    return [_hourly("external IPv4 address in use", float(cast(Mapping[str, float], subject.prices["externalIpv4"])["inUseHourly"]), subject.hours)]


def _rule_position(subject: Subject, types: Iterable[str]) -> int:
    """The rule's place among the stack's rules of the same kind and region (the first five cost one flat rate)."""
    wanted = set(types)
    same = [s.urn for s in subject.context.change.steps if s.type in wanted and (s.new if subject.side == "new" else s.old) is not None]
    return sorted(same).index(subject.step.urn) if subject.step.urn in same else 0


def _gcp_forwarding_rule(subject: Subject) -> list[Line]:
    rules = cast(Mapping[str, float], subject.prices["forwardingRules"])
    position = _rule_position(subject, ("gcp:compute/forwardingRule:ForwardingRule", "gcp:compute/globalForwardingRule:GlobalForwardingRule"))
    lcu_gb = subject.context.usage.load_balancer_lcu * subject.hours
    traffic = Line(f"data processed: {lcu_gb:g} GB × {_usd(rules['perGb'])} USD", lcu_gb * rules["perGb"],
                   f"{subject.context.usage.load_balancer_lcu:g} GB an hour (usage loadBalancerLcu, as 1 GB/h per unit)")
    if position == 0:
        return [_hourly("first five forwarding rules (flat)", rules["firstFiveHourly"], subject.hours), traffic]
    if position < 5:
        return [Line("forwarding rule: within the first five's flat rate", 0.0), traffic]
    return [_hourly("forwarding rule beyond the first five", rules["additionalRuleHourly"], subject.hours), traffic]


def _gcp_bucket(subject: Subject) -> list[Line]:
    location = str(subject.get("location", "")).lower()
    if location and location not in subject.table.regions:
        raise UnpriceableError(f"bucket location {location!r} (multi- or dual-region, or a region) has no price in review/prices/gcp.json")
    gb_by_class, assumption = _bucket_contents(subject, str(subject.get("storageClass", "STANDARD")), GCP_LIFECYCLE_CLASSES)
    return _storage_lines(subject, gb_by_class, cast(Mapping[str, float], subject.prices["storageGbMonth"]), assumption)


def _gcp_log_bucket(subject: Subject) -> list[Line]:
    """A Cloud Logging bucket: ingestion beyond the project's free allotment, storage kept beyond the
    30 days every bucket includes (the flow logs' retention, design §2.1).
    """
    logging = cast(Mapping[str, float], subject.prices["logging"])
    usage = subject.context.usage
    retention_days = subject.number("retentionDays", 30)
    billed_months = max(0.0, min(float(usage.months_elapsed), retention_days / DAYS_PER_MONTH) - 30 / DAYS_PER_MONTH)
    ingested = max(0.0, usage.log_gb_per_month - logging["freeGibPerProject"])
    stored = usage.log_gb_per_month * billed_months
    return [
        Line(f"ingestion: {ingested:g} GiB beyond the project's free {logging['freeGibPerProject']:g} × {_usd(logging['ingestGib'])} USD",
             ingested * logging["ingestGib"], f"{usage.log_gb_per_month:g} GiB/month ingested (usage logGbPerMonth)"),
        Line(f"storage beyond 30 days: {stored:,.1f} GiB × {_usd(logging['retentionGibMonthAfter30Days'])} USD/GiB-month",
             stored * logging["retentionGibMonthAfter30Days"], f"kept {retention_days:g} days, month {usage.months_elapsed} of the stack"),
    ]


def _gcp_crypto_key(subject: Subject) -> list[Line]:
    kms = cast(Mapping[str, float], subject.prices["kms"])
    hsm = str(subject.get("versionTemplate.protectionLevel", "SOFTWARE")) == "HSM"
    rate = kms["hsmKeyVersionMonth"] if hsm else kms["softwareKeyVersionMonth"]
    requests = subject.context.usage.kms_requests_per_month
    return [
        Line(f"{'HSM' if hsm else 'software'} key version: {_usd(rate)} USD/month (each rotation keeps one more active version)", rate),
        Line(f"operations: {requests:,.0f} × {_usd(kms['per10kOperations'])} USD per 10,000", requests / 10000 * kms["per10kOperations"],
             f"{requests:,.0f} operations/month (usage kmsRequestsPerMonth)"),
    ]


def _gcp_registry(subject: Subject) -> list[Line]:
    gb = subject.context.usage.registry_gb_per_repository
    rate = float(subject.prices["artifactRegistryGbMonth"])
    assumption = f"{gb:g} GB of images (usage registryGbPerRepository; the project's first 0.5 GB free not counted)"
    return [Line(f"image storage: {gb:g} GB × {_usd(rate)} USD/GB-month", gb * rate, assumption)]


def _gcp_secret_version(subject: Subject) -> list[Line]:
    return [Line("secret version", float(cast(Mapping[str, float], subject.prices["secretManager"])["secretVersionMonth"]))]


# --- Azure -------------------------------------------------------------------------------------


def _azure_managed_disk(subject: Subject, label: str, sku: str, size: float, *, iops: float | None, mbps: float | None) -> list[Line]:
    prices = subject.prices
    if sku == "Premium_LRS":
        for tier, tier_gb, monthly in cast(list[list[Any]], prices["premiumSsdTiers"]):
            if size <= float(tier_gb):
                return [Line(f"{label} Premium SSD {tier} ({tier_gb} GiB) for {size:g} GiB", float(monthly))]
        raise UnpriceableError(f"a {size:g} GiB Premium SSD is above the largest tier in review/prices/azure.json")
    if sku == "PremiumV2_LRS":
        rates = cast(Mapping[str, float], prices["premiumSsdV2"])
        extra_iops = max(0.0, (iops or rates["includedIops"]) - rates["includedIops"])
        extra_mbps = max(0.0, (mbps or rates["includedMibps"]) - rates["includedMibps"])
        return [
            Line(f"{label} Premium SSD v2 {size:g} GiB × {_usd(rates['gbMonth'])} USD", size * rates["gbMonth"]),
            Line(f"{label} IOPS above {rates['includedIops']:g}: {extra_iops:g} × {_usd(rates['iopsMonth'])} USD", extra_iops * rates["iopsMonth"]),
            Line(f"{label} MB/s above {rates['includedMibps']:g}: {extra_mbps:g} × {_usd(rates['mibpsMonth'])} USD", extra_mbps * rates["mibpsMonth"]),
        ]
    raise UnpriceableError(f"managed disk SKU {sku!r} has no price in review/prices/azure.json (it has Premium_LRS and PremiumV2_LRS)")


def _azure_vm(subject: Subject) -> list[Line]:
    size = str(subject.get("hardwareProfile.vmSize", ""))
    hourly = cast(Mapping[str, float], subject.prices["vmHourly"]).get(size)
    if hourly is None:
        raise UnpriceableError(f"no price for VM size {size!r} in {subject.region_name} in review/prices/azure.json")
    lines = [_hourly(f"{size} pay-as-you-go (Linux)", hourly, subject.hours)]
    if subject.get("storageProfile.osDisk.diskSizeGB") is not None:
        lines += _azure_managed_disk(subject, "OS disk", str(subject.get("storageProfile.osDisk.managedDisk.storageAccountType", "Premium_LRS")),
                                     subject.number("storageProfile.osDisk.diskSizeGB"), iops=None, mbps=None)
    else:
        lines.append(Line("OS disk: the image's default size, not in the inputs (not priced)", 0.0))
    return lines


def _azure_disk(subject: Subject) -> list[Line]:
    return _azure_managed_disk(subject, "disk", str(subject.get("sku.name", "Standard_LRS")), subject.number("diskSizeGB"),
                               iops=subject.get("diskIOPSReadWrite"), mbps=subject.get("diskMBpsReadWrite"))


def _azure_load_balancer(subject: Subject) -> list[Line]:
    if str(subject.get("sku.name", "Basic")) != "Standard":
        raise UnpriceableError("only the Standard load balancer SKU is in review/prices/azure.json")
    rates = cast(Mapping[str, float], subject.prices["loadBalancerStandard"])
    rules = len(cast(list[Any], subject.get("loadBalancingRules", []))) + len(cast(list[Any], subject.get("outboundRules", [])))
    hourly = rates["firstFiveRulesHourly"] + max(0, rules - 5) * rates["additionalRuleHourly"]
    gb = subject.context.usage.load_balancer_lcu * subject.hours
    return [
        _hourly(f"Standard load balancer, {rules} rule(s)", hourly, subject.hours),
        Line(f"data processed: {gb:g} GB × {_usd(rates['perGb'])} USD", gb * rates["perGb"],
             f"{subject.context.usage.load_balancer_lcu:g} GB an hour (usage loadBalancerLcu, as 1 GB/h per unit)"),
    ]


def _azure_nat(subject: Subject) -> list[Line]:
    nat = cast(Mapping[str, float], subject.prices["natGateway"])
    gb = subject.context.usage.nat_gb_per_month
    return [
        _hourly("NAT gateway", nat["hourly"], subject.hours),
        Line(f"data processed: {gb:g} GB × {_usd(nat['perGb'])} USD", gb * nat["perGb"], f"{gb:g} GB/month through this gateway (usage natGbPerMonth)"),
    ]


def _azure_public_ip(subject: Subject) -> list[Line]:
    return [_hourly("Standard public IPv4 address", float(subject.prices["publicIpStandardHourly"]), subject.hours)]


def _azure_storage_account(subject: Subject) -> list[Line]:
    """Blobs by tier at the account's redundancy; a geo-redundant account (GRS, GZRS) also pays for
    what it copies to the paired region.
    """
    sku = str(subject.get("sku.name", ""))
    rates = cast(Mapping[str, Mapping[str, float]], subject.prices["blobGbMonthBySku"]).get(sku)
    if rates is None:
        raise UnpriceableError(f"storage account SKU {sku!r} has no price in review/prices/azure.json (blobGbMonthBySku)")
    gb_by_class, assumption = _flow_log_contents(subject) or _bucket_contents(subject, str(subject.get("accessTier", "Hot")), AZURE_LIFECYCLE_CLASSES)
    lines = _storage_lines(subject, gb_by_class, rates, assumption)
    if "GRS" in sku or "GZRS" in sku:
        gb, copied = _replicated_gb(subject)
        rate = float(subject.prices["geoReplicationGb"])
        lines.append(Line(f"geo-replication transfer: {gb:,.0f} GB × {_usd(rate)} USD", gb * rate, copied))
    return lines


def _flow_log_contents(subject: Subject) -> tuple[Mapping[str, float], str] | None:
    """What an account holds that a flow log writes to: the flow records of the months its
    retention keeps, in the account's tier; None for any other account.
    """
    name = subject.get("accountName", "")
    for step in subject.context.change.steps:
        storage_id = step.value("storageId", "new") if step.type == "azure-native:network:FlowLog" else None
        if isinstance(storage_id, str) and name and storage_id.endswith(f"/storageAccounts/{name}"):
            usage = subject.context.usage
            days = float(step.value("retentionPolicy.days", "new") or 0)
            months = min(float(usage.months_elapsed), days / DAYS_PER_MONTH) if days else float(usage.months_elapsed)
            gb = usage.log_gb_per_month * months
            return {str(subject.get("accessTier", "Hot")): gb}, (
                f"{usage.log_gb_per_month:g} GB/month of flow records (usage logGbPerMonth) kept {months:.1f} months (retention {days:g} days)"
            )
    return None


def _azure_key(subject: Subject) -> list[Line]:
    """A Key Vault key: operations, an HSM-protected key's monthly price (RSA 3072 and 4096 are
    "advanced" keys, dearer, their operations too), and each rotation its policy schedules.
    """
    vault = cast(Mapping[str, float], subject.prices["keyVault"])
    hsm = str(subject.get("properties.kty", "RSA")).endswith("-HSM")
    advanced = float(subject.get("properties.keySize", 2048) or 2048) > 2048 or str(subject.get("properties.kty", "RSA")).startswith("EC")
    per_10k = vault["advancedPer10kOperations"] if advanced else vault["per10kOperations"]
    requests = subject.context.usage.kms_requests_per_month
    lines = [Line(f"operations: {requests:,.0f} × {_usd(per_10k)} USD per 10,000", requests / 10000 * per_10k,
                  f"{requests:,.0f} operations/month (usage kmsRequestsPerMonth)")]
    if hsm:
        monthly = vault["hsmAdvancedKeyMonth"] if advanced else vault["hsmKeyMonth"]
        lines.insert(0, Line(f"HSM-protected {'advanced ' if advanced else ''}key: {_usd(monthly)} USD/month", monthly))
    for action in cast(list[Mapping[str, Any]], subject.get("properties.rotationPolicy.lifetimeActions", []) or []):
        days = iso_days(cast(Mapping[str, Any], action.get("trigger") or {}).get("timeAfterCreate"))
        if str(cast(Mapping[str, Any], action.get("action") or {}).get("type", "")).lower() == "rotate" and days:
            rotations = DAYS_PER_MONTH / days
            lines.append(Line(f"scheduled rotation every {days:g} days: {rotations:.2f} × {_usd(vault['rotation'])} USD", rotations * vault["rotation"]))
    return lines


def _azure_flow_log(subject: Subject) -> list[Line]:
    """A virtual network flow log: Network Watcher bills the logs it collects (stored in their
    storage account, priced there).
    """
    rate = float(subject.prices["flowLogsCollectedGb"])
    gb = subject.context.usage.log_gb_per_month
    return [Line(f"flow logs collected: {gb:g} GB × {_usd(rate)} USD", gb * rate, f"{gb:g} GB/month of flow records (usage logGbPerMonth)")]


def _azure_registry(subject: Subject) -> list[Line]:
    sku = str(subject.get("sku.name", ""))
    daily = cast(Mapping[str, float], subject.prices["containerRegistryDaily"]).get(sku)
    if daily is None:
        raise UnpriceableError(f"container registry SKU {sku!r} has no price in review/prices/azure.json")
    days = subject.hours / 24
    return [Line(f"{sku} registry: {_usd(daily)} USD/day × {days:.2f} days", daily * days)]


def _azure_private_endpoint(subject: Subject) -> list[Line]:
    rates = cast(Mapping[str, float], subject.prices["privateEndpoint"])
    gb = subject.context.usage.vpc_endpoint_gb_per_month
    return [
        _hourly("private endpoint", rates["hourly"], subject.hours),
        Line(f"data processed: {gb:g} GB × {_usd(rates['perGb'])} USD", gb * rates["perGb"],
             f"{gb:g} GB/month through this endpoint (usage vpcEndpointGbPerMonth)"),
    ]


def _azure_workspace(subject: Subject) -> list[Line]:
    rates = cast(Mapping[str, float], subject.prices["logAnalytics"])
    usage = subject.context.usage
    retention = subject.number("retentionInDays", 30)
    extra_months = max(0.0, min(float(usage.months_elapsed), retention / DAYS_PER_MONTH) - 31 / DAYS_PER_MONTH)
    stored = usage.log_gb_per_month * extra_months
    return [
        Line(f"ingestion: {usage.log_gb_per_month:g} GB × {_usd(rates['ingestGb'])} USD", usage.log_gb_per_month * rates["ingestGb"],
             f"{usage.log_gb_per_month:g} GB/month ingested (usage logGbPerMonth)"),
        Line(f"retention beyond 31 days: {stored:,.1f} GB × {_usd(rates['retentionGbMonthAfter31Days'])} USD", stored * rates["retentionGbMonthAfter31Days"],
             f"retention {retention:g} days, month {usage.months_elapsed}"),
    ]


PRICERS: Mapping[str, Pricer] = {
    "aws:ec2/instance:Instance": _aws_instance,
    "aws:ebs/volume:Volume": _aws_volume,
    "aws:ec2/natGateway:NatGateway": _aws_nat,
    "aws:ec2/eip:Eip": _aws_public_ip,
    "aws:lb/loadBalancer:LoadBalancer": _aws_load_balancer,
    "aws:alb/loadBalancer:LoadBalancer": _aws_load_balancer,
    "aws:ec2/vpcEndpoint:VpcEndpoint": _aws_vpc_endpoint,
    "aws:s3/bucket:Bucket": _aws_bucket,
    "aws:s3/bucketV2:BucketV2": _aws_bucket,
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig": _aws_replication,
    "aws:kms/key:Key": _aws_kms_key,
    "aws:cloudwatch/logGroup:LogGroup": _aws_log_group,
    "aws:ecr/repository:Repository": _aws_ecr,
    "aws:ssm/parameter:Parameter": _aws_ssm_parameter,
    "aws:secretsmanager/secret:Secret": _aws_secret,
    "gcp:compute/instance:Instance": _gcp_instance,
    "gcp:compute/disk:Disk": _gcp_disk,
    "gcp:logging/projectBucketConfig:ProjectBucketConfig": _gcp_log_bucket,
    "gcp:compute/regionDisk:RegionDisk": _gcp_disk,
    "gcp:compute/routerNat:RouterNat": _gcp_router_nat,
    "gcp:compute/address:Address": _gcp_address,
    "gcp:compute/forwardingRule:ForwardingRule": _gcp_forwarding_rule,
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": _gcp_forwarding_rule,
    "gcp:storage/bucket:Bucket": _gcp_bucket,
    "gcp:kms/cryptoKey:CryptoKey": _gcp_crypto_key,
    "gcp:artifactregistry/repository:Repository": _gcp_registry,
    "gcp:secretmanager/secretVersion:SecretVersion": _gcp_secret_version,
    "azure-native:compute:VirtualMachine": _azure_vm,
    "azure-native:compute:Disk": _azure_disk,
    "azure-native:network:LoadBalancer": _azure_load_balancer,
    "azure-native:network:NatGateway": _azure_nat,
    "azure-native:network:PublicIPAddress": _azure_public_ip,
    "azure-native:storage:StorageAccount": _azure_storage_account,
    "azure-native:keyvault:Key": _azure_key,
    "azure-native:keyvault:Secret": _azure_key,
    "azure-native:network:PrivateEndpoint": _azure_private_endpoint,
    "azure-native:containerregistry:Registry": _azure_registry,
    "azure-native:operationalinsights:Workspace": _azure_workspace,
    "azure-native:network:FlowLog": _azure_flow_log,
}
"""Each priced type and how it is priced."""

FREE_PACKAGES = {
    "random": "generated locally: no cloud resource",
    "tls": "generated locally: no cloud resource",
    "command": "runs commands: no cloud resource",
    "docker": "a Docker object on machines already priced",
    "pulumi": "Pulumi's own bookkeeping (a provider, the stack)",
}
"""Packages whose every type costs nothing by nature."""

_NETWORK_PLUMBING = "network plumbing: no charge"
_ACCESS = "access control: no charge"
_CONFIGURATION = "configuration of a priced resource: no charge of its own"
FREE_TYPES = {
    **dict.fromkeys((
        "aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/routeTable:RouteTable", "aws:ec2/route:Route",
        "aws:ec2/routeTableAssociation:RouteTableAssociation", "aws:ec2/mainRouteTableAssociation:MainRouteTableAssociation",
        "aws:ec2/internetGateway:InternetGateway", "aws:ec2/securityGroup:SecurityGroup", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
        "aws:ec2/securityGroupRule:SecurityGroupRule", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "aws:ec2/networkAcl:NetworkAcl", "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl",
        "aws:ec2/defaultRouteTable:DefaultRouteTable",
        "gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork", "gcp:compute/firewall:Firewall", "gcp:compute/router:Router",
        "gcp:compute/route:Route",
        "azure-native:resources:ResourceGroup", "azure-native:network:VirtualNetwork", "azure-native:network:Subnet",
        "azure-native:network:NetworkSecurityGroup", "azure-native:network:SecurityRule", "azure-native:network:NetworkInterface",
        "azure-native:network:RouteTable", "azure-native:network:Route", "azure-native:network:ApplicationSecurityGroup",
        "azure-native:network:NetworkWatcher",
    ), _NETWORK_PLUMBING),
    **dict.fromkeys((
        "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/instanceProfile:InstanceProfile", "aws:iam/user:User", "aws:iam/userPolicy:UserPolicy",
        "aws:s3/bucketPolicy:BucketPolicy", "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls", "aws:ecr/repositoryPolicy:RepositoryPolicy",
        "gcp:serviceaccount/account:Account", "gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding",
        "gcp:storage/bucketIAMMember:BucketIAMMember", "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
        "gcp:secretmanager/secretIamMember:SecretIamMember", "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember",
        "gcp:projects/serviceIdentity:ServiceIdentity",
        "azure-native:authorization:RoleAssignment", "azure-native:managedidentity:UserAssignedIdentity",
        "azure-native:keyvault:Vault",
    ), _ACCESS),
    **dict.fromkeys((
        "aws:ec2/volumeAttachment:VolumeAttachment", "aws:kms/alias:Alias", "aws:lb/listener:Listener", "aws:lb/targetGroup:TargetGroup",
        "aws:lb/targetGroupAttachment:TargetGroupAttachment", "aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
        "aws:ec2/keyPair:KeyPair", "aws:ecr/lifecyclePolicy:LifecyclePolicy",
        "gcp:kms/keyRing:KeyRing", "gcp:compute/healthCheck:HealthCheck", "gcp:compute/regionHealthCheck:RegionHealthCheck",
        "gcp:compute/regionBackendService:RegionBackendService", "gcp:compute/instanceGroup:InstanceGroup",
        "gcp:compute/attachedDisk:AttachedDisk", "gcp:secretmanager/secret:Secret",
        "gcp:monitoring/notificationChannel:NotificationChannel",
        "azure-native:compute:DiskEncryptionSet", "azure-native:storage:BlobContainer", "azure-native:storage:BlobServiceProperties",
        "azure-native:storage:ManagementPolicy",
    ), _CONFIGURATION),
    "gcp:logging/projectSink:ProjectSink": "delivery only: Cloud Logging charges the logs it routes as ingestion and storage in their bucket",
    "aws:ec2/flowLog:FlowLog": "delivery only: its records are priced as the log group's ingestion",
    "aws:budgets/budget:Budget": "a budget without actions: AWS Budgets charges only action-enabled budgets beyond the first two",
    "gcp:billing/budget:Budget": "Cloud Billing budgets cost nothing",
    "azure-native:consumption:Budget": "Cost Management budgets cost nothing",
}
"""Types that cost nothing by nature, each with why (a reader checks the claim, not a bare zero)."""


@dataclass(frozen=True)
class SideCost:
    """One side of one resource: priced (lines), free (reason) or unpriced (reason)."""

    status: str
    lines: tuple[Line, ...] = ()
    reason: str = ""

    @property
    def monthly_usd(self) -> float:
        """The side's monthly price (0 unless priced)."""
        return sum(line.monthly_usd for line in self.lines)


def price_side(step: Step, side: str, context: PricingContext, *, as_deployed: bool = True) -> SideCost:
    """The price of one state of one resource (`as_deployed`: see Subject)."""
    if step.op in READ_OPS:
        return SideCost("free", reason="read, not managed, by this stack: billed to whoever manages it")
    package = step.type.split(":", 1)[0]
    if package in FREE_PACKAGES:
        return SideCost("free", reason=FREE_PACKAGES[package])
    if step.type in FREE_TYPES:
        return SideCost("free", reason=FREE_TYPES[step.type])
    pricer = PRICERS.get(step.type)
    if pricer is None:
        return SideCost("unpriced", reason=f"type {step.type} is not in the price tables (review/cost.py PRICERS, FREE_TYPES)")
    try:
        return SideCost("priced", tuple(pricer(Subject(step, side, context, as_deployed))))
    except UnpriceableError as reason:
        return SideCost("unpriced", reason=str(reason))


@dataclass(frozen=True)
class ResourceCost:
    """One resource's cost after and before the change."""

    urn: str
    type: str
    op: str
    components: tuple[str, ...]
    """Its ancestors' URNs, nearest first, the stack excluded."""
    after: SideCost | None
    before: SideCost | None
    requested: SideCost | None = None
    """The new state as the program asks for it, where `ignoreChanges` keeps the deployed values
    (a machine type applied only when the machine is replaced); None where nothing is held back.
    """

    @property
    def pending_usd(self) -> float:
        """What the monthly bill changes by once the held-back properties are applied (a replacement)."""
        if self.requested is None or self.after is None or "unpriced" in (self.requested.status, self.after.status):
            return 0.0
        return self.requested.monthly_usd - self.after.monthly_usd

    @property
    def monthly_usd(self) -> float:
        """After the change (0 if it no longer exists)."""
        return self.after.monthly_usd if self.after else 0.0

    @property
    def base_monthly_usd(self) -> float:
        """Before the change (0 if it did not exist)."""
        return self.before.monthly_usd if self.before else 0.0

    @property
    def delta_usd(self) -> float:
        """What the change adds to (or takes off) the monthly bill for this resource."""
        return self.monthly_usd - self.base_monthly_usd

    @property
    def unpriced_reason(self) -> str:
        """Why a side of it is unpriced ("" if none is)."""
        reasons = [f"{name}: {side.reason}" if self.after and self.before and self.after.reason != self.before.reason else side.reason
                   for name, side in (("after", self.after), ("before", self.before)) if side and side.status == "unpriced"]
        return "; ".join(dict.fromkeys(reasons))

    @property
    def status(self) -> str:
        """priced, free or unpriced (unpriced if either side is)."""
        sides = [s for s in (self.after, self.before) if s]
        if any(s.status == "unpriced" for s in sides):
            return "unpriced"
        return "free" if all(s.status == "free" for s in sides) else "priced"


@dataclass(frozen=True)
class ComponentCost:
    """A component's total: every resource under it, at any depth."""

    urn: str
    type: str
    depth: int
    monthly_usd: float
    base_monthly_usd: float

    @property
    def delta_usd(self) -> float:
        """After minus before."""
        return self.monthly_usd - self.base_monthly_usd


@dataclass(frozen=True)
class CostReport:
    """The cost of a change."""

    stack: str
    source: str
    resources: tuple[ResourceCost, ...]
    components: tuple[ComponentCost, ...]
    unlisted_same: int
    prices: Mapping[str, PriceTable]
    sizing: Sizing | None
    usage: Usage

    @property
    def monthly_usd(self) -> float:
        """The stack after the change (the resources the change lists)."""
        return sum(r.monthly_usd for r in self.resources)

    @property
    def base_monthly_usd(self) -> float:
        """The stack before the change."""
        return sum(r.base_monthly_usd for r in self.resources)

    @property
    def delta_usd(self) -> float:
        """What the change does to the monthly bill."""
        return self.monthly_usd - self.base_monthly_usd

    @property
    def pending_usd(self) -> float:
        """What the bill changes by once what `ignoreChanges` holds back is applied (machines replaced)."""
        return sum(r.pending_usd for r in self.resources)

    @property
    def unpriced(self) -> tuple[ResourceCost, ...]:
        """The resources (or sides of them) the tables could not price."""
        return tuple(r for r in self.resources if r.status == "unpriced")

    @property
    def clouds(self) -> frozenset[str]:
        """The clouds whose tables priced a resource of this report."""
        return frozenset(CLOUD_OF_PACKAGE[r.type.split(":", 1)[0]] for r in self.resources if r.status == "priced")

    @property
    def assumptions(self) -> tuple[str, ...]:
        """Every usage assumption a priced line made, once each."""
        found = (line.assumption for r in self.resources for side in (r.after, r.before) if side for line in side.lines)
        return tuple(dict.fromkeys(a for a in found if a))


def _ancestors(change: Change, step: Step) -> tuple[str, ...]:
    chain: list[str] = []
    parent = step.parent
    while parent and "::pulumi:pulumi:Stack::" not in parent and parent not in chain:
        chain.append(parent)
        holder = change.step(parent)
        parent = holder.parent if holder else ""
    return tuple(chain)


def _is_component(step: Step) -> bool:
    """A component or the stack: priced through its resources. A state that does not say whether it
    is custom (a hand-made digest) counts as a resource, so that nothing is dropped unseen.
    """
    state = step.new or step.old or {}
    return state.get("custom") is False or step.type == "pulumi:pulumi:Stack"


def estimate(change: Change, usage: Usage | None = None, sizing: Sizing | None = None, tables: Mapping[str, PriceTable] | None = None) -> CostReport:
    """Prices every resource of the change before and after it, and totals each component."""
    context = PricingContext(change, tables if tables is not None else price_tables(), usage or Usage(), sizing)
    resources: list[ResourceCost] = []
    for step in change.steps:
        if _is_component(step):
            continue
        existed = step.old is not None and step.op not in AFTER_ONLY_OPS
        before = price_side(step, "old", context) if existed else None
        if step.op == "same" and before is not None:
            after = before  # nothing changes in the cloud
        else:
            after = price_side(step, "new", context) if step.new is not None and step.op not in BEFORE_ONLY_OPS else None
        if step.op.startswith("import"):
            before = after  # an imported resource already exists and is already billed
        requested = price_side(step, "new", context, as_deployed=False) if after is not None and step.old is not None and ignored_changes(step) else None
        resources.append(ResourceCost(step.urn, step.type, step.op, _ancestors(change, step), after, before, requested))
    listed_same = sum(1 for s in change.steps if s.op == "same")
    return CostReport(
        stack=change.stack,
        source=change.source,
        resources=tuple(resources),
        components=_component_totals(change, resources),
        unlisted_same=max(0, change.change_summary.get("same", 0) - listed_same),
        prices=context.tables,
        sizing=sizing,
        usage=context.usage,
    )


def _component_totals(change: Change, resources: Sequence[ResourceCost]) -> tuple[ComponentCost, ...]:
    after: dict[str, float] = {}
    before: dict[str, float] = {}
    for resource in resources:
        for urn in resource.components:
            after[urn] = after.get(urn, 0.0) + resource.monthly_usd
            before[urn] = before.get(urn, 0.0) + resource.base_monthly_usd
    totals: list[ComponentCost] = []
    for urn, monthly in after.items():
        step = change.step(urn)
        depth = len(_ancestors(change, step)) if step else 0
        type_ = step.type if step else urn.split("::")[-2].rsplit("$", 1)[-1]
        totals.append(ComponentCost(urn, type_, depth, monthly, before[urn]))
    return tuple(sorted(totals, key=lambda c: (_component_path(change, c.urn), c.urn)))


def _component_path(change: Change, urn: str) -> tuple[str, ...]:
    step = change.step(urn)
    return (*reversed(_ancestors(change, step)), urn) if step else (urn,)


# --- output ------------------------------------------------------------------------------------


def _cents(amount: float) -> float:
    return round(amount + 0.0, 2)


def _side_json(side: SideCost | None) -> dict[str, Any] | None:
    if side is None:
        return None
    return {
        "status": side.status,
        "monthlyUsd": _cents(side.monthly_usd),
        "reason": side.reason,
        "lines": [{"label": line.label, "monthlyUsd": _cents(line.monthly_usd), "assumption": line.assumption} for line in side.lines],
    }


def to_json(report: CostReport) -> dict[str, Any]:
    """The report as `python -m review cost --format json` writes it (issue 11's contract:
    monthlyUsd, deltaUsd, resources[{urn, type, monthlyUsd, priced}], unpriced[...]).
    """
    return {
        "stack": report.stack,
        "source": report.source,
        "monthlyUsd": _cents(report.monthly_usd),
        "baseMonthlyUsd": _cents(report.base_monthly_usd),
        "deltaUsd": _cents(report.delta_usd),
        "pendingDeltaUsd": _cents(report.pending_usd),
        "unlistedSame": report.unlisted_same,
        "prices": {cloud: {"asOf": table.as_of, "basis": table.basis} for cloud, table in report.prices.items() if cloud in report.clouds},
        "sizing": report.sizing.source if report.sizing else None,
        "assumptions": list(report.assumptions),
        "components": [
            {"urn": c.urn, "type": c.type, "depth": c.depth,
             "monthlyUsd": _cents(c.monthly_usd), "baseMonthlyUsd": _cents(c.base_monthly_usd), "deltaUsd": _cents(c.delta_usd)}
            for c in report.components
        ],
        "resources": [
            {
                "urn": r.urn, "type": r.type, "op": r.op, "component": r.components[0] if r.components else "",
                "monthlyUsd": _cents(r.monthly_usd), "baseMonthlyUsd": _cents(r.base_monthly_usd), "deltaUsd": _cents(r.delta_usd),
                "pendingDeltaUsd": _cents(r.pending_usd), "priced": r.status != "unpriced", "free": r.status == "free",
                "after": _side_json(r.after), "before": _side_json(r.before),
            }
            for r in report.resources
        ],
        "unpriced": [{"urn": r.urn, "type": r.type, "op": r.op, "reason": r.unpriced_reason} for r in report.unpriced],
    }


def _signed(amount: float) -> str:
    cents = _cents(amount)
    return f"+{cents:,.2f}" if cents > 0 else (f"{cents:,.2f}" if cents < 0 else "0.00")


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _how(resource: ResourceCost) -> str:
    """How the side that exists after the change (else before) is priced: each line with its amount,
    then the assumptions its usage lines made, once each.
    """
    side = resource.after or resource.before
    if side is None or side.status != "priced":
        return side.reason if side else ""
    parts = [f"{line.label} = {line.monthly_usd:,.2f}" for line in side.lines]
    parts += [f"*assumed: {a}*" for a in dict.fromkeys(line.assumption for line in side.lines if line.assumption)]
    return "<br>".join(parts)


def to_markdown(report: CostReport) -> str:
    """The report for a reader: the totals, each component, each resource that costs something or
    changes, what could not be priced, and every assumption next to its number.
    """
    out = [
        f"### Cost of `{report.stack}`: {report.monthly_usd:,.2f} USD/month ({_signed(report.delta_usd)} USD/month, from {report.base_monthly_usd:,.2f})",
        "",
        "Prices: " + ("; ".join(f"{cloud} as published on {t.as_of} (on demand, list prices)" for cloud, t in report.prices.items() if cloud in report.clouds)
                      or "none needed")
        + (f"; backups sized from {report.sizing.source}" if report.sizing else ""),
    ]
    if _cents(report.pending_usd):
        out.append(f"\nOnce the machines awaiting replacement are replaced (what `ignoreChanges` holds back): {_signed(report.pending_usd)} USD/month more.")
    if report.unlisted_same:
        out.append(f"\n{report.unlisted_same} unchanged resource(s) the preview does not list are not in the totals (the delta is exact).")
    if report.unpriced:
        out.append(f"\n**{len(report.unpriced)} resource(s) not priced** (listed below): the totals leave them out.")
    if report.components:
        out += ["", "| component | USD/month | change |", "|---|---:|---:|"]
    out += [f"| {'  ' * c.depth}{_name(c.urn)} (`{c.type}`) | {c.monthly_usd:,.2f} | {_signed(c.delta_usd)} |" for c in report.components]
    shown = [r for r in report.resources if r.status != "free" and (r.monthly_usd or r.base_monthly_usd or r.op != "same" or _cents(r.pending_usd))]
    out += ["", "<details><summary>Resources that cost something or change</summary>", ""]
    out += ["| resource | op | USD/month | change | how |", "|---|---|---:|---:|---|"]
    out += [f"| {_name(r.urn)} (`{r.type}`) | {r.op} | {r.monthly_usd:,.2f} | {_signed(r.delta_usd)} | {_how(r)} |" for r in shown]
    out += ["", "</details>"]
    if report.unpriced:
        out += ["", "#### Not priced", ""] + [f"- `{r.urn}` ({r.op}): {r.unpriced_reason}" for r in report.unpriced]
    free = sum(1 for r in report.resources if r.status == "free")
    out += ["", f"{free} resource(s) cost nothing by nature (network plumbing, access control, configuration, generated secrets, Docker objects)."]
    if report.assumptions:
        out += ["", "#### Assumptions", ""] + [f"- {a}" for a in report.assumptions]
    return "\n".join(out) + "\n"


# --- command line ------------------------------------------------------------------------------

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `cost` subcommand's arguments."""
    parser.add_argument("plan", type=Path, help="a `pulumi preview --json` digest, or the head's offline plan")
    parser.add_argument("--base", type=Path, help="the base's offline plan: the delta is against it (without: against the digest's old states)")
    parser.add_argument("--usage", type=Path, help="a JSON object of usage figures (keys: " + ", ".join(sorted(Usage.keys())) + ")")
    parser.add_argument("--stack-file", type=Path,
                        help="the stack file whose settings size the backups (default: the digest's config, else Pulumi.<stack>.yaml of this project)")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")


def _project(change: Change) -> str:
    for step in change.steps:
        parts = step.urn.split("::")
        if len(parts) >= 2 and parts[0].startswith("urn:pulumi:"):
            return parts[1]
    return ""


def sizing_for(change: Change, stack_file: Path | None, root: Path = PROJECT_ROOT) -> Sizing | None:
    """The stack's sizing: from the stack file given, else the digest's config, else this project's
    stack file of the plan's stack (an offline plan carries no config); None for another program's plan.
    """
    from dpc.config import stack_file_config  # noqa: PLC0415  (pulumi's config module: only for this program's plans)

    if stack_file is not None:
        return sizing_from_config(stack_file_config(stack_file)[0], stack_file.name)
    if any(key.startswith("dpc:") for key in change.config):
        return sizing_from_config(change.config, "the preview's config")
    own = root / f"Pulumi.{change.stack}.yaml"
    project_file = root / "Pulumi.yaml"
    if change.stack and own.is_file() and project_file.is_file() and f"name: {_project(change)}\n" in project_file.read_text():
        return sizing_from_config(stack_file_config(own)[0], own.name)
    return None


def command(args: argparse.Namespace) -> int:
    """`python -m review cost`: prints the report; exits 0 (resources it cannot price are listed in
    the report, not an error), 2 when a file cannot be read as what it should be.
    """
    from dpc.config import StackFileError  # noqa: PLC0415

    try:
        change = load_change(args.plan, args.base)
        usage = Usage.from_mapping(cast(Mapping[str, object], json.loads(args.usage.read_text()))) if args.usage else Usage()
        sizing = sizing_for(change, args.stack_file)
    except (OSError, ValueError, TypeError, AttributeError, StackFileError) as error:
        print(f"review cost: {error}", file=sys.stderr)
        return 2
    report = estimate(change, usage, sizing)
    print(json.dumps(to_json(report), indent=2) if args.format == "json" else to_markdown(report), end="\n" if args.format == "json" else "")
    return 0
