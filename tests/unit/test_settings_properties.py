"""Property-based tests of the stack settings rules (dpc/settings.py), each against an oracle written
here from the seed's figures rather than from the product's code."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import ipaddress
import json
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from dpc.catalog import MACHINE_TYPES
from dpc.settings import (
    AccessSettings,
    BackupSettings,
    BastionSettings,
    BudgetSettings,
    DatabaseSettings,
    GcpSettings,
    ImageSettings,
    NetworkSettings,
    NodeGroup,
    NodesSettings,
    Problem,
    Settings,
    SettingsError,
    StorageSettings,
    VolumeSettings,
    settings_from_config,
)
from dpc.sizing import MIN_WAL_VOLUME_GIB
from review.plan import stack_config

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _shipped(stack: str) -> dict[str, Any]:
    config, _ = stack_config(stack)
    values: dict[str, Any] = {}
    for key, text in config.items():
        try:
            values[key.removeprefix("dpc:")] = json.loads(text)
        except json.JSONDecodeError:
            values[key.removeprefix("dpc:")] = text
    return values


def shipped(stack: str = "prod") -> dict[str, Any]:
    """A fresh copy of a shipped stack's `dpc:*` values, decoded as dpc/config.py decodes them."""
    return copy.deepcopy(_shipped(stack))


def problems_of(values: dict[str, Any]) -> list[Problem]:
    with pytest.raises(SettingsError) as caught:
        settings_from_config(values)
    assert caught.value.problems
    return caught.value.problems


STACKS = ("prod", "staging", "dev", "gcp-prod", "gcp-dev")


def test_the_baselines_are_valid() -> None:
    for stack in STACKS:
        settings_from_config(shipped(stack))


# --- (a) subnets outside the VPC or overlapping each other --------------------------------------------

SUBNET_KEYS = ("privateSubnetCidrs", "publicSubnetCidrs")
SLOTS = [(key, index) for key in SUBNET_KEYS for index in range(3)]
PROD_VPC = ipaddress.IPv4Network(_shipped("prod")["network"]["vpcCidr"])


def _slot_path(slot: tuple[str, int]) -> str:
    return f"network.{slot[0]}[{slot[1]}]"


@st.composite
def network_outside_the_vpc(draw: st.DrawFn) -> ipaddress.IPv4Network:
    prefix = draw(st.integers(min_value=8, max_value=28))
    address = draw(st.integers(min_value=0, max_value=2**32 - 1))
    subnet = ipaddress.IPv4Network((address, prefix), strict=False)
    assume(not subnet.subnet_of(PROD_VPC))
    return subnet


@PROPERTY_SETTINGS
@given(slot=st.sampled_from(SLOTS), subnet=network_outside_the_vpc())
def test_a_subnet_outside_the_vpc_is_rejected(slot: tuple[str, int], subnet: ipaddress.IPv4Network) -> None:
    values = shipped()
    values["network"][slot[0]][slot[1]] = str(subnet)

    problems = problems_of(values)

    assert all(p.path.startswith("network.") for p in problems), [str(p) for p in problems]
    outside = [p for p in problems if p.path == _slot_path(slot) and "outside the VPC" in p.message]
    assert outside, [str(p) for p in problems]
    assert str(subnet) in outside[0].message


@st.composite
def overlapping_mutation(draw: st.DrawFn) -> tuple[tuple[str, int], tuple[str, int], ipaddress.IPv4Network]:
    """A slot to overwrite, another slot, and a network inside the VPC that overlaps the other slot's subnet."""
    slot = draw(st.sampled_from(SLOTS))
    other = draw(st.sampled_from([s for s in SLOTS if s != slot]))
    original = ipaddress.IPv4Network(_shipped("prod")["network"][other[0]][other[1]])
    point = original.network_address + draw(st.integers(min_value=0, max_value=original.num_addresses - 1))
    prefix = draw(st.integers(min_value=PROD_VPC.prefixlen, max_value=28))
    return slot, other, ipaddress.IPv4Network((int(point), prefix), strict=False)


@PROPERTY_SETTINGS
@given(mutation=overlapping_mutation())
def test_overlapping_subnets_are_rejected(mutation: tuple[tuple[str, int], tuple[str, int], ipaddress.IPv4Network]) -> None:
    slot, other, subnet = mutation
    values = shipped()
    values["network"][slot[0]][slot[1]] = str(subnet)
    assert subnet.subnet_of(PROD_VPC)

    problems = problems_of(values)

    assert all(p.path.startswith("network.") for p in problems), [str(p) for p in problems]
    overlap_paths = {_slot_path(slot), _slot_path(other)}
    overlaps = [p for p in problems if "overlaps" in p.message]
    assert any(p.path in overlap_paths and (p.path == _slot_path(slot) or str(subnet) in p.message) for p in overlaps), [str(p) for p in problems]
    assert not any("outside the VPC" in p.message for p in problems)


@PROPERTY_SETTINGS
@given(offset=st.integers(min_value=0, max_value=15), prefix=st.integers(min_value=20, max_value=28))
def test_disjoint_subnets_inside_the_vpc_are_accepted(offset: int, prefix: int) -> None:
    """The converse: six non-overlapping subnets inside the VPC, one per zone and tier, pass."""
    blocks = list(PROD_VPC.subnets(new_prefix=20))
    chosen = [blocks[(offset + i) % len(blocks)] for i in range(6)]
    subnets = [next(block.subnets(new_prefix=prefix)) for block in chosen]
    values = shipped()
    values["network"]["privateSubnetCidrs"] = [str(s) for s in subnets[:3]]
    values["network"]["publicSubnetCidrs"] = [str(s) for s in subnets[3:]]

    assert settings_from_config(values).network.public_subnet_cidrs == [str(s) for s in subnets[3:]]


# --- (b) gp3 limits -----------------------------------------------------------------------------------


def gp3_iops_ok(size_gb: int, iops: int) -> bool:
    """AWS gp3: 3000 IOPS baseline at any size, up to 500 per GiB, at most 80000."""
    return 3000 <= iops <= min(80000, max(3000, 500 * size_gb))


def gp3_throughput_ok(iops: int, throughput: int) -> bool:
    """AWS gp3: 125 MiB/s baseline, up to 0.25 MiB/s per provisioned IOPS, at most 2000."""
    return 125 <= throughput <= min(2000, max(125, Fraction(iops, 4)))


def _near(*points: int) -> st.SearchStrategy[int]:
    return st.sampled_from(sorted({p + d for p in points for d in (-1, 0, 1) if p + d >= 1}))


@st.composite
def gp3_triples(draw: st.DrawFn) -> tuple[int, int, int]:
    """(sizeGb, iops, throughputMbps), half of the time right at one of the limits (±1)."""
    size = draw(st.one_of(st.integers(min_value=1, max_value=65536), st.integers(min_value=1, max_value=200), _near(1, 6, 20, 160, 2048, 65535)))
    iops = draw(st.one_of(st.integers(min_value=1, max_value=100_000), _near(3000, 80000), _near(500 * size)))
    throughput = draw(st.one_of(st.integers(min_value=1, max_value=3000), _near(125, 2000), _near(iops // 4)))
    return size, iops, throughput


@contextlib.contextmanager
def machines_without_storage_limits() -> Iterator[None]:
    """gp3's own limits alone: no machine caps what its volumes provision (the next property)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, machine in MACHINE_TYPES["aws"].items():
            patch.setitem(MACHINE_TYPES["aws"], name, dataclasses.replace(machine, storage=None))
        yield


@PROPERTY_SETTINGS
@given(volume=st.sampled_from(["data", "wal", "backup"]), triple=gp3_triples())
def test_gp3_volume_is_accepted_iff_within_the_aws_limits(volume: str, triple: tuple[int, int, int]) -> None:
    with machines_without_storage_limits():
        _gp3_volume_is_accepted_iff_within_the_aws_limits(volume, triple)


def _gp3_volume_is_accepted_iff_within_the_aws_limits(volume: str, triple: tuple[int, int, int]) -> None:
    size, iops, throughput = triple
    values = shipped()
    values["storage"] = {volume: {"sizeGb": size, "iops": iops, "throughputMbps": throughput}}
    iops_ok, throughput_ok = gp3_iops_ok(size, iops), gp3_throughput_ok(iops, throughput)
    size_ok = volume != "wal" or size >= MIN_WAL_VOLUME_GIB  # the WAL volume's budget (dpc.sizing.WalBudget)

    if iops_ok and throughput_ok and size_ok:
        accepted = settings_from_config(values)
        assert getattr(accepted.storage, volume) == VolumeSettings(size_gb=size, iops=iops, throughput_mbps=throughput)
        return
    paths = [p.path for p in problems_of(values)]
    assert set(paths) <= {f"storage.{volume}.iops", f"storage.{volume}.throughputMbps", f"storage.{volume}.sizeGb"}
    assert (f"storage.{volume}.iops" in paths) == (not iops_ok)
    assert (f"storage.{volume}.throughputMbps" in paths) == (not throughput_ok)
    assert (f"storage.{volume}.sizeGb" in paths) == (not size_ok)


@PROPERTY_SETTINGS
@given(data=st.integers(min_value=125, max_value=1500), wal=st.integers(min_value=125, max_value=1500))
def test_a_workers_volumes_are_accepted_iff_its_machine_drives_their_throughput(data: int, wal: int) -> None:
    """Prod's workers are r6i.2xlarge: at most 10 000 Mbps of EBS bandwidth (AWS's EBS-optimized table)."""
    values = shipped()
    values["storage"] = {"data": {"sizeGb": 2048, "iops": 16000, "throughputMbps": data}, "wal": {"sizeGb": 500, "iops": 6000, "throughputMbps": wal}}

    if data + wal <= 10_000 * 10**6 / 8 / 2**20:
        assert settings_from_config(values).storage.data.throughput_mbps == data
    else:
        assert [p.path for p in problems_of(values)] == ["storage.data.throughputMbps"]


# --- (b') the offsite lifecycle on GCP ------------------------------------------------------------------


def gcs_lifecycle_ok(infrequent: int, archive: int, expire: int, monthly_months: int) -> bool:
    """Cloud Storage bills Nearline at least 30 days and Archive at least 365 (its pricing page);
    design §4.2 keeps the monthly fulls offsite, a month counted as 31 days."""
    return archive >= infrequent + 30 and expire >= archive + 365 and expire >= 31 * monthly_months


@PROPERTY_SETTINGS
@given(
    infrequent=st.one_of(st.integers(min_value=1, max_value=400), _near(30)),
    archive=st.one_of(st.integers(min_value=1, max_value=800), _near(60, 90)),
    expire=st.one_of(st.integers(min_value=1, max_value=3000), _near(455, 2555)),
    monthly=st.integers(min_value=1, max_value=24),
)
def test_gcp_lifecycle_is_accepted_iff_cloud_storage_bills_nothing_early(infrequent: int, archive: int, expire: int, monthly: int) -> None:
    values = shipped("gcp-prod")
    values["backup"] |= {
        "offsiteInfrequentAccessAfterDays": infrequent,
        "offsiteArchiveAfterDays": archive,
        "offsiteExpireAfterDays": expire,
        "monthlyRetentionMonths": monthly,
    }

    if gcs_lifecycle_ok(infrequent, archive, expire, monthly):
        assert settings_from_config(values).backup.offsite_expire_after_days == expire
    else:
        paths = {p.path for p in problems_of(values)}
        assert paths <= {"backup.offsiteArchiveAfterDays", "backup.offsiteExpireAfterDays"}
        assert ("backup.offsiteArchiveAfterDays" in paths) == (archive < infrequent + 30)


# --- (c) etcd quorum ----------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(stack=st.sampled_from(STACKS), count=st.integers(min_value=-5, max_value=40).filter(lambda n: n % 2 == 0 or n < 3))
def test_etcd_count_even_or_below_three_is_rejected(stack: str, count: int) -> None:
    values = shipped(stack)
    values["nodes"] = {"managers": {"count": count}}

    problems = problems_of(values)

    assert {p.path for p in problems} == {"nodes.managers.count"}, [str(p) for p in problems]


@PROPERTY_SETTINGS
@given(stack=st.sampled_from(["dev", "gcp-dev"]), count=st.sampled_from([3, 5, 7, 9, 11, 13, 15]))
def test_odd_etcd_count_of_at_least_three_is_accepted_where_zones_allow(stack: str, count: int) -> None:
    values = shipped(stack)
    values["nodes"] = {"managers": {"count": count}}

    assert settings_from_config(values).nodes.managers.count == count


# --- (d) unknown keys anywhere ------------------------------------------------------------------------

SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Settings,
    ("network",): NetworkSettings,
    ("nodes",): NodesSettings,
    ("nodes", "managers"): NodeGroup,
    ("nodes", "workers"): NodeGroup,
    ("nodes", "app"): NodeGroup,
    ("nodes", "backup"): NodeGroup,
    ("nodes", "bastion"): BastionSettings,
    ("storage",): StorageSettings,
    ("storage", "data"): VolumeSettings,
    ("storage", "wal"): VolumeSettings,
    ("storage", "backup"): VolumeSettings,
    ("backup",): BackupSettings,
    ("access",): AccessSettings,
    ("budget",): BudgetSettings,
    ("database",): DatabaseSettings,
    ("image",): ImageSettings,
}
GCP_SECTIONS = SECTIONS | {("gcp",): GcpSettings}
"""A GCP stack has its own section too (on any other cloud `dpc:gcp` itself is refused)."""


def _known_keys(model: type[BaseModel]) -> set[str]:
    return {name for name in model.model_fields} | {field.alias for field in model.model_fields.values() if field.alias}


KEY_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True)
EXTRA_VALUES = st.one_of(
    st.integers(), st.booleans(), st.text(max_size=10), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
)


@st.composite
def extra_keys(draw: st.DrawFn, stack: str) -> dict[tuple[str, ...], tuple[str, object]]:
    known = GCP_SECTIONS if stack.startswith("gcp-") else SECTIONS
    sections = draw(st.lists(st.sampled_from(list(known)), min_size=1, max_size=4, unique=True))
    extras: dict[tuple[str, ...], tuple[str, object]] = {}
    for section in sections:
        key = draw(KEY_NAMES.filter(lambda k, model=known[section]: k not in _known_keys(model)))
        extras[section] = (key, draw(EXTRA_VALUES))
    return extras


def _put(values: dict[str, Any], section: tuple[str, ...], key: str, value: object) -> None:
    target = values
    for part in section:
        target = target.setdefault(part, {})
    target[key] = value


@PROPERTY_SETTINGS
@given(data=st.data(), stack=st.sampled_from(STACKS))
def test_unknown_keys_anywhere_are_rejected(data: st.DataObject, stack: str) -> None:
    extras = data.draw(extra_keys(stack))
    values = shipped(stack)
    for section, (key, value) in extras.items():
        _put(values, section, key, value)
    expected = {".".join((*section, key)) for section, (key, _) in extras.items()}

    problems = problems_of(values)

    assert {p.path for p in problems} == expected, [str(p) for p in problems]
    assert all(p.fix.startswith("remove this key") for p in problems)
