"""Stack settings validation (dpc/settings.py): the shipped stacks, one test per rule, every problem
at once, and a bad stack file run end to end through the offline plan."""

from __future__ import annotations

import copy
import dataclasses
import functools
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import moto
import pytest

import review.__main__ as review_cli
import review.plan
from dpc.catalog import MACHINE_TYPES
from dpc.settings import Problem, Settings, SettingsError, settings_from_config
from dpc.sizing import MIN_WAL_VOLUME_GIB, wal_budget
from dpc.topology import derive
from review import plan_command
from review.plan import PROJECT_ROOT, build_plan, build_plan_revealed, stack_config

STACKS_DIR = Path(__file__).parent / "stacks"


# --- helpers ---------------------------------------------------------------------------------------


def config_values(stack: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The `dpc:*` values of a stack file as dpc/config.py hands them to settings_from_config: the
    namespace stripped, JSON text decoded (pulumi.Config.get_object), plain strings kept as they are."""
    config, _ = stack_config(stack, root)
    values: dict[str, Any] = {}
    for key, text in config.items():
        assert key.startswith("dpc:"), key
        try:
            values[key.removeprefix("dpc:")] = json.loads(text)
        except json.JSONDecodeError:
            values[key.removeprefix("dpc:")] = text
    return values


def stack(name: str = "prod", **overrides: Any) -> dict[str, Any]:
    """A deep copy of a shipped stack's values with top-level keys replaced."""
    values = copy.deepcopy(config_values(name))
    values.update(overrides)
    return values


def prod_backup(values: dict[str, Any]) -> dict[str, Any]:
    """A `dpc:backup` override that keeps the prod stack file's own keys (its replica region)."""
    return {**config_values("prod")["backup"], **values}


def problems_of(values: dict[str, Any]) -> list[Problem]:
    with pytest.raises(SettingsError) as caught:
        settings_from_config(values)
    problems = caught.value.problems
    assert problems, "a SettingsError must carry at least one problem"
    return problems


def only_problem(values: dict[str, Any]) -> Problem:
    problems = problems_of(values)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def at(problems: list[Problem], path: str) -> list[Problem]:
    found = [p for p in problems if p.path == path]
    assert found, f"no problem at {path}; got {[str(p) for p in problems]}"
    return found


def network(values: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**values["network"], **changes}


# --- the shipped stacks -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["prod", "staging", "dev"])
def test_shipped_stack_validates_and_keeps_its_own_values(name: str) -> None:
    values = config_values(name)
    settings = settings_from_config(values)

    assert isinstance(settings, Settings)
    assert settings.environment == name
    assert settings.cloud == "aws"
    assert settings.region == values["region"] == "us-east-1"
    assert settings.zones == values["zones"]
    assert len(settings.zones) == 3
    assert settings.network.vpc_cidr == values["network"]["vpcCidr"]
    assert settings.network.private_subnet_cidrs == values["network"]["privateSubnetCidrs"]
    assert settings.tags == values["tags"]
    assert settings.budget.monthly_usd == values["budget"]["monthlyUsd"]
    assert settings.is_prod is (name == "prod")


@pytest.mark.parametrize(
    ("name", "managers", "workers", "app", "data"),
    [
        ("prod", "t3.xlarge", "r6i.2xlarge", "t3.large", (2048, 16000, 690)),
        ("gcp-prod", "n2-standard-4", "n2-highmem-8", "n2-standard-2", (2048, None, None)),
    ],
)
def test_prod_stack_gets_the_seed_defaults(name: str, managers: str, workers: str, app: str, data: tuple[int, int | None, int | None]) -> None:
    settings = settings_from_config(config_values(name))
    nodes, storage = settings.nodes, settings.storage

    assert (nodes.managers.count, nodes.managers.machine_type) == (3, managers)
    assert (nodes.workers.count, nodes.workers.machine_type) == (3, workers)
    assert (nodes.app.count, nodes.app.machine_type) == (2, app)
    assert nodes.backup.count == 1
    assert (storage.data.size_gb, storage.data.iops, storage.data.throughput_mbps) == data
    assert (storage.wal.size_gb, storage.backup.size_gb) == (500, 5120)
    assert settings.database.expected_tps == 1000


@pytest.mark.parametrize("name", ["staging", "dev"])
def test_staging_and_dev_are_smaller_but_fail_over_like_prod(name: str) -> None:
    prod = settings_from_config(config_values("prod"))
    settings = settings_from_config(config_values(name))
    catalog = MACHINE_TYPES["aws"]

    assert settings.nodes.managers.count == 3
    assert settings.nodes.workers.count == 3
    assert settings.nodes.app.count == 2
    assert settings.nodes.backup.count == 0
    worker, prod_worker = catalog[settings.nodes.workers.machine_type], catalog[prod.nodes.workers.machine_type]
    assert worker.memory_gib < prod_worker.memory_gib
    assert worker.vcpus < prod_worker.vcpus
    assert catalog[settings.nodes.managers.machine_type].vcpus < catalog[prod.nodes.managers.machine_type].vcpus
    assert settings.storage.data.size_gb < prod.storage.data.size_gb
    assert settings.storage.wal.size_gb < prod.storage.wal.size_gb
    assert settings.storage.data.iops < prod.storage.data.iops


def test_dev_is_smaller_than_staging() -> None:
    staging = settings_from_config(config_values("staging"))
    dev = settings_from_config(config_values("dev"))

    assert dev.storage.data.size_gb < staging.storage.data.size_gb
    assert MACHINE_TYPES["aws"][dev.nodes.workers.machine_type].memory_gib < MACHINE_TYPES["aws"][staging.nodes.workers.machine_type].memory_gib


def test_stack_file_overrides_a_default_key_by_key() -> None:
    settings = settings_from_config(stack(nodes={"workers": {"machineType": "r6i.4xlarge"}}))

    assert settings.nodes.workers.machine_type == "r6i.4xlarge"
    assert settings.nodes.workers.count == 3
    assert settings.nodes.workers.root_volume_gb == 100
    assert settings.nodes.managers.machine_type == "t3.xlarge"


def test_problem_and_error_name_the_key_as_written_in_the_stack_file() -> None:
    error = SettingsError([Problem("storage.data.iops", "too many", "use fewer"), Problem("zones", "too few", "add one")])

    assert str(error.problems[0]) == "dpc:storage.data.iops: too many — use fewer"
    assert str(error).startswith("2 problem(s) in the stack settings:")
    assert "  - dpc:zones: too few — add one" in str(error)


# --- network ----------------------------------------------------------------------------------------


def test_overlapping_private_subnets() -> None:
    values = stack()
    values["network"]["privateSubnetCidrs"][1] = "10.20.8.0/21"

    problem = only_problem(values)

    assert problem.path == "network.privateSubnetCidrs[1]"
    assert "10.20.8.0/21" in problem.message
    assert "10.20.0.0/20" in problem.message
    assert "network.privateSubnetCidrs[0]" in problem.message
    assert "own range" in problem.fix


def test_public_subnet_overlapping_a_private_one() -> None:
    values = stack()
    values["network"]["publicSubnetCidrs"][0] = "10.20.0.0/24"

    problem = only_problem(values)

    assert problem.path == "network.publicSubnetCidrs[0]"
    assert "10.20.0.0/24" in problem.message
    assert "network.privateSubnetCidrs[0]" in problem.message


def test_adjacent_subnets_do_not_overlap() -> None:
    values = stack()
    values["network"]["privateSubnetCidrs"] = ["10.20.0.0/20", "10.20.16.0/20", "10.20.32.0/19"]

    assert settings_from_config(values).network.private_subnet_cidrs[2] == "10.20.32.0/19"


def test_subnet_outside_the_vpc() -> None:
    values = stack()
    values["network"]["privateSubnetCidrs"][2] = "10.21.32.0/20"

    problem = only_problem(values)

    assert problem.path == "network.privateSubnetCidrs[2]"
    assert "10.21.32.0/20" in problem.message
    assert "10.20.0.0/16" in problem.message
    assert "10.20.0.0/16" in problem.fix


def test_vpc_overlapping_the_swarm_overlay_supernet() -> None:
    values = stack(
        network={
            "vpcCidr": "10.10.0.0/16",
            "privateSubnetCidrs": ["10.10.16.0/20", "10.10.32.0/20", "10.10.48.0/20"],
            "publicSubnetCidrs": ["10.10.128.0/24", "10.10.129.0/24", "10.10.130.0/24"],
            "natGatewayPerZone": True,
        }
    )

    problem = only_problem(values)

    assert problem.path == "network.vpcCidr"
    assert "10.10.0.0/16" in problem.message
    assert "10.10.0.0/22" in problem.message
    assert "outside 10.10.0.0/22" in problem.fix


def test_vpc_next_to_the_overlay_supernet_is_allowed() -> None:
    values = stack(
        network={
            "vpcCidr": "10.10.4.0/22",
            "privateSubnetCidrs": ["10.10.4.0/25", "10.10.4.128/25", "10.10.5.0/25"],
            "publicSubnetCidrs": ["10.10.6.0/26", "10.10.6.64/26", "10.10.6.128/26"],
            "natGatewayPerZone": False,
        }
    )

    assert settings_from_config(values).network.vpc_cidr == "10.10.4.0/22"


@pytest.mark.parametrize("key", ["privateSubnetCidrs", "publicSubnetCidrs"])
def test_subnet_count_must_match_zone_count(key: str) -> None:
    values = stack()
    values["network"][key] = values["network"][key][:2]

    problem = only_problem(values)

    assert problem.path == f"network.{key}"
    assert "2 subnet(s) for 3 zone(s)" in problem.message
    assert "one subnet per zone" in problem.fix


def test_cidr_with_host_bits_is_not_a_network_address() -> None:
    values = stack()
    values["network"]["vpcCidr"] = "10.20.0.1/16"

    problem = only_problem(values)

    assert problem.path == "network.vpcCidr"
    assert "10.20.0.1/16" in problem.message
    assert "10.20.0.0/16" in problem.fix


# --- zones ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 4])
def test_even_etcd_count_is_rejected(count: int) -> None:
    values = stack("dev", nodes={"managers": {"count": count}})

    problem = only_problem(values)

    assert problem.path == "nodes.managers.count"
    assert f"{count} etcd members" in problem.message
    assert "odd" in problem.fix


@pytest.mark.parametrize("count", [0, 1])
def test_etcd_count_below_three_is_rejected(count: int) -> None:
    values = stack("dev", nodes={"managers": {"count": count}})

    problem = only_problem(values)

    assert problem.path == "nodes.managers.count"
    assert f"{count} etcd members" in problem.message
    assert "at least 3" in problem.fix


def test_five_etcd_members_are_fine_in_dev_but_not_over_three_prod_zones() -> None:
    assert settings_from_config(stack("dev", nodes={"managers": {"count": 5}})).nodes.managers.count == 5

    problem = only_problem(stack("prod", nodes={"managers": {"count": 5}}))
    assert problem.path == "nodes.managers.count"
    assert "5 members over 3 zones" in problem.message


def _two_zones(name: str) -> dict[str, Any]:
    values = stack(name, zones=["us-east-1a", "us-east-1b"])
    values["network"]["privateSubnetCidrs"] = values["network"]["privateSubnetCidrs"][:2]
    values["network"]["publicSubnetCidrs"] = values["network"]["publicSubnetCidrs"][:2]
    return values


def test_prod_needs_three_zones() -> None:
    problems = problems_of(_two_zones("prod"))

    (problem,) = at(problems, "zones")
    assert "3 zones" in problem.message
    assert "2 given" in problem.message
    assert "three zones" in problem.fix
    assert {p.path for p in problems} == {"zones", "nodes.managers.count", "nodes.workers.count"}


def test_dev_may_use_fewer_than_three_zones() -> None:
    settings = settings_from_config(_two_zones("dev"))

    assert settings.zones == ["us-east-1a", "us-east-1b"]
    assert settings.nodes.managers.count == 3


def test_zone_listed_twice() -> None:
    problems = problems_of(stack("dev", zones=["us-east-1a", "us-east-1a", "us-east-1b"]))

    (problem,) = at(problems, "zones")
    assert "twice" in problem.message


@pytest.mark.parametrize("zone", ["us-west-2b", "eu-west-1a", "us-east-1"])
def test_zone_not_in_region(zone: str) -> None:
    values = stack(zones=["us-east-1a", zone, "us-east-1c"])

    problem = only_problem(values)

    assert problem.path == "zones[1]"
    assert repr(zone) in problem.message
    assert "'us-east-1'" in problem.message
    assert "us-east-1<letter>" in problem.fix


# --- machine types ----------------------------------------------------------------------------------


def test_unknown_machine_type() -> None:
    problem = only_problem(stack(nodes={"workers": {"machineType": "r6i.huge"}}))

    assert problem.path == "nodes.workers.machineType"
    assert "'r6i.huge'" in problem.message
    assert "aws" in problem.message
    assert "r6i.2xlarge" in problem.fix


def test_bastion_machine_type_is_checked_too() -> None:
    problem = only_problem(stack(nodes={"bastion": {"machineType": "t2.nano"}}))

    assert problem.path == "nodes.bastion.machineType"
    assert "'t2.nano'" in problem.message


def _machine_types(name: str) -> dict[str, dict[str, str]]:
    """The node groups' machine types a shipped stack gets, as a `dpc:nodes` override."""
    nodes = settings_from_config(config_values(name)).nodes
    groups = {"managers": nodes.managers, "workers": nodes.workers, "app": nodes.app, "backup": nodes.backup, "bastion": nodes.bastion}
    return {group: {"machineType": settings.machine_type} for group, settings in groups.items()}


@pytest.mark.parametrize(("name", "other", "cloud", "hint"), [("prod", "gcp-prod", "aws", "r6i.2xlarge"), ("gcp-prod", "prod", "gcp", "n2-highmem-8")])
def test_machine_types_are_checked_against_the_stacks_cloud(name: str, other: str, cloud: str, hint: str) -> None:
    problems = problems_of(stack(name, nodes=_machine_types(other)))

    assert {p.path for p in problems} == {f"nodes.{group}.machineType" for group in ("managers", "workers", "app", "backup", "bastion")}
    assert all(f"for {cloud}" in p.message for p in problems)
    assert hint in problems[0].fix


# --- gp3 volumes ------------------------------------------------------------------------------------


@pytest.fixture
def machines_without_storage_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """gp3's own limits alone: no machine caps what its volumes provision (tested further down)."""
    for name, machine in MACHINE_TYPES["aws"].items():
        monkeypatch.setitem(MACHINE_TYPES["aws"], name, dataclasses.replace(machine, storage=None))


@pytest.mark.parametrize(
    ("size", "iops", "max_iops"),
    [
        (20, 16000, 10000),  # above 500 IOPS per GiB
        (2048, 2999, 80000),  # below the gp3 floor
        (200, 80001, 80000),  # above the gp3 ceiling
        (4, 3001, 3000),  # small volumes keep 3000 and no more
    ],
)
def test_gp3_iops_out_of_range(size: int, iops: int, max_iops: int) -> None:
    problem = only_problem(stack(storage={"data": {"sizeGb": size, "iops": iops, "throughputMbps": 125}}))

    assert problem.path == "storage.data.iops"
    assert f"{iops} IOPS" in problem.message
    assert f"{size} GiB" in problem.message
    assert f"between 3000 and {max_iops}" in problem.fix


@pytest.mark.usefixtures("machines_without_storage_limits")
@pytest.mark.parametrize(("size", "iops"), [(20, 10000), (160, 80000), (2048, 3000), (4, 3000), (1, 3000)])
def test_gp3_iops_at_the_limits_is_accepted(size: int, iops: int) -> None:
    """On the data volume: a WAL volume under 4 GiB is refused for its budget (design §5.3)."""
    settings = settings_from_config(stack(storage={"data": {"sizeGb": size, "iops": iops, "throughputMbps": 125}}))

    assert (settings.storage.data.size_gb, settings.storage.data.iops) == (size, iops)


@pytest.mark.parametrize(
    ("iops", "throughput", "max_throughput"),
    [
        (3000, 751, 750),  # above IOPS × 0.25
        (3000, 124, 750),  # below the gp3 floor
        (16000, 2001, 2000),  # above the gp3 ceiling
        (6003, 1501, 1500),  # IOPS × 0.25 rounds down
    ],
)
def test_gp3_throughput_out_of_range(iops: int, throughput: int, max_throughput: int) -> None:
    problem = only_problem(stack(storage={"data": {"iops": iops, "throughputMbps": throughput}}))

    assert problem.path == "storage.data.throughputMbps"
    assert f"{throughput} MiB/s" in problem.message
    assert f"{iops} IOPS" in problem.message
    assert f"between 125 and {max_throughput}" in problem.fix


@pytest.mark.usefixtures("machines_without_storage_limits")
@pytest.mark.parametrize(("iops", "throughput"), [(3000, 750), (3000, 125), (16000, 2000), (6003, 1500)])
def test_gp3_throughput_at_the_limits_is_accepted(iops: int, throughput: int) -> None:
    settings = settings_from_config(stack(storage={"backup": {"iops": iops, "throughputMbps": throughput}}))

    assert settings.storage.backup.throughput_mbps == throughput


def test_gp3_iops_and_throughput_are_both_reported() -> None:
    problems = problems_of(stack(storage={"wal": {"sizeGb": 10, "iops": 6000, "throughputMbps": 1600}}))

    assert [p.path for p in problems] == ["storage.wal.iops", "storage.wal.throughputMbps"]


# --- volumes against the machine that drives them ---------------------------------------------------


def test_the_seeds_prod_throughput_is_more_than_an_r6i_2xlarge_drives() -> None:
    problem = only_problem(stack(storage={"data": {"sizeGb": 2048, "iops": 16000, "throughputMbps": 1000}}))

    assert problem.path == "storage.data.throughputMbps"
    assert "dpc:storage.data + dpc:storage.wal provision 1500 MiB/s" in problem.message
    assert "r6i.2xlarge drives at most 1192 MiB/s (10000 Mbps; sustained 298 MiB/s)" in problem.message
    assert "at most 1192 MiB/s in total" in problem.fix and "dpc:nodes.workers.machineType" in problem.fix


def test_worker_iops_are_summed_over_data_and_wal() -> None:
    problem = only_problem(stack(storage={"data": {"sizeGb": 2048, "iops": 34001, "throughputMbps": 500}}))

    assert problem.path == "storage.data.iops"
    assert "40001 IOPS" in problem.message and "at most 40000 (sustained 12000)" in problem.message

    settings = settings_from_config(stack(storage={"data": {"sizeGb": 2048, "iops": 34000, "throughputMbps": 692}}))
    assert settings.storage.data.iops + settings.storage.wal.iops == 40000


def test_the_backup_volume_is_checked_on_the_node_the_agent_runs_on() -> None:
    """Staging has no backup node: the agent and its volume are on manager-1, a t3.medium."""
    problem = only_problem(stack("staging", storage={"backup": {"sizeGb": 500, "iops": 3000, "throughputMbps": 250}}))

    assert problem.path == "storage.backup.throughputMbps"
    assert "one managers node; its t3.medium drives at most 248 MiB/s" in problem.message
    assert "dpc:nodes.managers.machineType" in problem.fix


def test_the_storage_limits_are_the_ones_ec2_reports() -> None:
    """The catalogue against EC2's DescribeInstanceTypes answers as moto records them."""
    recorded = json.loads(gzip.decompress((Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz").read_bytes()))
    for name, machine in MACHINE_TYPES["aws"].items():
        ebs = recorded[name]["EbsInfo"]["EbsOptimizedInfo"]
        limits = machine.storage
        assert limits is not None, name
        reported = (ebs["BaselineBandwidthInMbps"], ebs["MaximumBandwidthInMbps"], ebs["BaselineIops"], ebs["MaximumIops"])
        assert (limits.baseline_mbps, limits.maximum_mbps, limits.baseline_iops, limits.maximum_iops) == reported, name
        assert (recorded[name]["VCpuInfo"]["DefaultVCpus"], recorded[name]["MemoryInfo"]["SizeInMiB"]) == (machine.vcpus, machine.memory_gib * 1024), name


# --- the WAL volume's budget (design §5.3) -----------------------------------------------------------


def test_a_wal_volume_too_small_for_its_caps_is_refused_with_the_smallest_that_fits() -> None:
    """The local stack, whose volumes no cloud rule checks: the WAL volume's budget alone."""
    problem = only_problem(stack("local", storage={"wal": {"sizeGb": MIN_WAL_VOLUME_GIB - 1}}))

    assert problem.path == "storage.wal.sizeGb"
    assert "max_wal_size (1 GiB) and wal_keep_size (2 GiB)" in problem.message and "replication slot" in problem.message
    assert problem.fix == f"use at least {MIN_WAL_VOLUME_GIB}" == "use at least 4"
    with pytest.raises(ValueError, match="needs 4 GiB at least"):
        wal_budget(MIN_WAL_VOLUME_GIB - 1)


def test_the_smallest_wal_volume_is_accepted_and_its_budget_fits() -> None:
    settings = settings_from_config(stack("local", storage={"wal": {"sizeGb": MIN_WAL_VOLUME_GIB}}))

    assert derive(settings).layout.wal == wal_budget(4)
    assert wal_budget(4).headroom_mb > 0


# --- tags -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["Environment", "Service", "Owner", "CostCenter"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_required_tag_missing_or_empty(key: str, value: str | None) -> None:
    values = stack()
    if value is None:
        del values["tags"][key]
    else:
        values["tags"][key] = value

    problem = only_problem(values)

    assert problem.path == f"tags.{key}"
    assert "missing or empty" in problem.message
    assert f"`{key}: <value>`" in problem.fix


@pytest.mark.parametrize("key", ["ManagedBy", "Stack"])
def test_program_reserved_tag_set_by_user(key: str) -> None:
    values = stack()
    values["tags"][key] = "me"

    problem = only_problem(values)

    assert problem.path == f"tags.{key}"
    assert "set by the program" in problem.message
    assert "remove" in problem.fix


def test_extra_user_tags_are_allowed() -> None:
    values = stack()
    values["tags"]["Team"] = "dba"

    assert settings_from_config(values).tags["Team"] == "dba"


def test_tag_key_with_aws_prefix() -> None:
    values = stack()
    values["tags"]["aws:createdBy"] = "me"

    assert only_problem(values).path == "tags.aws:createdBy"


# --- budget -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, -100, float("nan"), float("inf")])
def test_budget_must_be_a_positive_amount(amount: float) -> None:
    values = stack()
    values["budget"]["monthlyUsd"] = amount

    problem = only_problem(values)

    assert problem.path == "budget.monthlyUsd"
    assert f"{float(amount)} is not a budget" in problem.message
    assert "positive" in problem.fix


@pytest.mark.parametrize("email", ["platform-team", "platform team@example.com", "ops@localhost", "@example.com"])
def test_bad_alert_email(email: str) -> None:
    values = stack()
    values["budget"]["alertEmails"] = ["platform-team@example.com", email]

    problem = only_problem(values)

    assert problem.path == "budget.alertEmails[1]"
    assert "pattern" in problem.message
    assert "@" in problem.message
    assert "expected form" in problem.fix


def test_budget_needs_an_alert_email() -> None:
    values = stack()
    values["budget"]["alertEmails"] = []

    problem = only_problem(values)

    assert problem.path == "budget.alertEmails"
    assert "at least 1" in problem.message


# --- unknown keys and wrong types -------------------------------------------------------------------


REMOVE_FIX = "remove this key; it is not a setting of this program (check its spelling)"


def test_unknown_top_level_key() -> None:
    problem = only_problem(stack(regoin="us-east-2"))

    assert problem.path == "regoin"
    assert problem.fix == REMOVE_FIX


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"storage": {"data": {"iopps": 3000}}}, "storage.data.iopps"),
        ({"nodes": {"managers": {"machinetype": "t3.large"}}}, "nodes.managers.machinetype"),
        ({"backup": {"retentionDays": 7}}, "backup.retentionDays"),
        ({"database": {"maxConnections": 100}}, "database.maxConnections"),
    ],
)
def test_unknown_nested_key(overrides: dict[str, Any], path: str) -> None:
    problem = only_problem(stack(**overrides))

    assert problem.path == path
    assert problem.fix == REMOVE_FIX


def test_unknown_key_in_a_section_the_stack_file_writes() -> None:
    values = stack()
    values["network"]["natGateway"] = True

    problem = only_problem(values)

    assert problem.path == "network.natGateway"
    assert problem.fix == REMOVE_FIX


@pytest.mark.parametrize(
    ("overrides", "path", "expected"),
    [
        ({"nodes": {"managers": {"count": "three"}}}, "nodes.managers.count", "integer"),
        ({"storage": {"data": {"sizeGb": 2048.5}}}, "storage.data.sizeGb", "integer"),
        ({"zones": "us-east-1a"}, "zones", "list"),
        ({"tags": ["Owner=me"]}, "tags", "dictionary"),
        ({"database": {"expectedTps": [1000]}}, "database.expectedTps", "integer"),
    ],
)
def test_wrong_type(overrides: dict[str, Any], path: str, expected: str) -> None:
    problem = only_problem(stack(**overrides))

    assert problem.path == path
    assert f"valid {expected}" in problem.message
    assert problem.fix == "correct the value"


def test_wrong_type_inside_a_section_the_stack_file_writes() -> None:
    values = stack()
    values["network"]["natGatewayPerZone"] = "maybe"
    values["budget"]["monthlyUsd"] = "lots"

    problems = problems_of(values)

    assert {p.path for p in problems} == {"network.natGatewayPerZone", "budget.monthlyUsd"}
    assert "boolean" in at(problems, "network.natGatewayPerZone")[0].message
    assert "number" in at(problems, "budget.monthlyUsd")[0].message


def test_value_out_of_the_allowed_range() -> None:
    problem = only_problem(stack(nodes={"workers": {"rootVolumeGb": 10}}))

    assert problem.path == "nodes.workers.rootVolumeGb"
    assert "20" in problem.message


@pytest.mark.parametrize("cloud", ["oracle", ["aws"], 3, None])
def test_unknown_cloud(cloud: object) -> None:
    problem = only_problem(stack(cloud=cloud))

    assert problem.path == "cloud"
    assert "'aws'" in problem.message
    assert problem.fix == "use one of the values listed"


# --- access -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["adminCidrs", "clientCidrs"])
def test_cidr_open_to_the_internet(key: str) -> None:
    values = stack()
    values["access"][key] = ["198.51.100.0/24", "0.0.0.0/0"]

    problem = only_problem(values)

    assert problem.path == f"access.{key}[1]"
    assert "0.0.0.0/0" in problem.message
    assert "/8 or narrower" in problem.fix


def test_malformed_admin_cidr() -> None:
    values = stack()
    values["access"]["adminCidrs"] = ["203.0.113.0"]

    problem = only_problem(values)

    assert problem.path == "access.adminCidrs[0]"
    assert problem.fix == "write it in the expected form"


# --- workload sizing (design §6.2) ------------------------------------------------------------------


def test_prod_worker_too_small_for_expected_tps() -> None:
    problem = only_problem(stack(database={"expectedTps": 4001}))

    assert problem.path == "nodes.workers.machineType"
    assert "r6i.2xlarge has 8 vCPUs" in problem.message
    assert "4001 TPS needs 9" in problem.message
    assert "larger machine type" in problem.fix


def test_prod_worker_exactly_big_enough_for_expected_tps() -> None:
    assert settings_from_config(stack(database={"expectedTps": 4000})).database.expected_tps == 4000


def test_prod_worker_needs_at_least_four_vcpus_even_for_a_light_load() -> None:
    problem = only_problem(stack(nodes={"workers": {"machineType": "r6i.large"}}, database={"expectedTps": 10}))

    assert problem.path == "nodes.workers.machineType"
    assert "r6i.large has 2 vCPUs" in problem.message
    assert "needs 4" in problem.message


def test_staging_may_be_undersized_for_its_tps() -> None:
    settings = settings_from_config(stack("staging", database={"expectedTps": 50000}))

    assert settings.nodes.workers.machine_type == "r6i.large"


# --- backup retention -------------------------------------------------------------------------------


def test_archive_must_come_after_infrequent_access() -> None:
    problem = only_problem(stack(backup=prod_backup({"offsiteInfrequentAccessAfterDays": 90, "offsiteArchiveAfterDays": 90, "offsiteExpireAfterDays": 400})))

    assert problem.path == "backup.offsiteArchiveAfterDays"
    assert "30 days in infrequent access" in problem.message
    assert "at least 120" in problem.fix


def test_archive_needs_thirty_days_in_infrequent_access_as_s3_demands() -> None:
    problem = only_problem(stack(backup=prod_backup({"offsiteInfrequentAccessAfterDays": 30, "offsiteArchiveAfterDays": 59})))

    assert problem.path == "backup.offsiteArchiveAfterDays"
    assert "S3 archives an object only after 30 days in infrequent access (from day 30)" in problem.message
    assert problem.fix == "use at least 60"

    assert settings_from_config(stack(backup=prod_backup({"offsiteArchiveAfterDays": 60}))).backup.offsite_archive_after_days == 60


def test_infrequent_access_under_thirty_days_is_reported_with_s3s_rule() -> None:
    problem = only_problem(stack(backup=prod_backup({"offsiteInfrequentAccessAfterDays": 29, "offsiteArchiveAfterDays": 90})))

    assert problem.path == "backup.offsiteInfrequentAccessAfterDays"
    assert "S3 moves nothing to infrequent access sooner than 30 days" in problem.message
    assert problem.fix == "use at least 30"


def test_offsite_retention_keeps_the_monthly_fulls() -> None:
    problem = only_problem(stack(backup=prod_backup({"monthlyRetentionMonths": 12, "offsiteExpireAfterDays": 371})))

    assert problem.path == "backup.offsiteExpireAfterDays"
    assert "keeps 12 months" in problem.message
    assert "use at least 372" in problem.fix and "dpc:backup.monthlyRetentionMonths" in problem.fix


def test_expiry_must_come_ninety_days_after_archiving() -> None:
    problem = only_problem(stack(backup=prod_backup({"offsiteArchiveAfterDays": 90, "offsiteExpireAfterDays": 179, "monthlyRetentionMonths": 5})))

    assert problem.path == "backup.offsiteExpireAfterDays"
    assert "90 days" in problem.message
    assert "at least 180" in problem.fix

    settings = settings_from_config(stack(backup=prod_backup({"offsiteArchiveAfterDays": 90, "offsiteExpireAfterDays": 180, "monthlyRetentionMonths": 5})))
    assert settings.backup.offsite_expire_after_days == 180


def test_wal_must_be_kept_as_long_as_the_oldest_daily_backup() -> None:
    problem = only_problem(stack(backup=prod_backup({"dailyRetentionDays": 31, "walRetentionDays": 30})))

    assert problem.path == "backup.walRetentionDays"
    assert "at least 31" in problem.fix

    assert settings_from_config(stack(backup=prod_backup({"dailyRetentionDays": 30, "walRetentionDays": 30}))).backup.wal_retention_days == 30


def test_infrequent_access_needs_thirty_days() -> None:
    problem = only_problem(stack(backup=prod_backup({"offsiteInfrequentAccessAfterDays": 29})))

    assert problem.path == "backup.offsiteInfrequentAccessAfterDays"
    assert "30" in problem.message


# --- environment ------------------------------------------------------------------------------------


def test_environment_missing() -> None:
    values = stack()
    del values["environment"]

    problem = only_problem(values)

    assert problem.path == "environment"
    assert "None is not an environment" in problem.message
    assert "prod, staging, dev" in problem.fix


@pytest.mark.parametrize("environment", ["production", "Prod", ["prod"], {"name": "prod"}, 3])
def test_environment_unknown_or_of_the_wrong_type(environment: object) -> None:
    problem = only_problem(stack(environment=environment))

    assert problem.path == "environment"
    assert repr(environment) in problem.message
    assert "prod, staging, dev" in problem.fix


# --- every problem at once --------------------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    values = stack()
    values["nodes"] = {"managers": {"count": "three"}}  # shape error in nodes
    values["network"]["privateSubnetCidrs"][1] = "10.20.0.0/24"  # overlap
    values["network"]["publicSubnetCidrs"][2] = "10.99.0.0/24"  # outside the VPC
    del values["tags"]["Owner"]  # missing required tag
    values["tags"]["ManagedBy"] = "me"  # reserved tag
    values["budget"]["monthlyUsd"] = 0  # no budget
    values["storage"] = {"data": {"iops": 90000}}  # above gp3 ceiling
    values["access"]["adminCidrs"] = ["0.0.0.0/0"]  # open to all
    values["backup"] = prod_backup({"dailyRetentionDays": 60})  # longer than WAL
    values["zones"] = ["us-east-1a", "us-east-1b", "us-west-2c"]  # zone outside region
    values["colour"] = "blue"  # unknown key

    problems = problems_of(values)

    assert sorted(p.path for p in problems) == sorted(
        [
            "nodes.managers.count",
            "network.privateSubnetCidrs[1]",
            "network.publicSubnetCidrs[2]",
            "tags.Owner",
            "tags.ManagedBy",
            "budget.monthlyUsd",
            "storage.data.iops",
            "access.adminCidrs[0]",
            "backup.walRetentionDays",
            "zones[2]",
            "colour",
        ]
    )
    assert "valid integer" in at(problems, "nodes.managers.count")[0].message


def test_a_broken_section_does_not_hide_problems_in_other_sections_but_skips_its_own_rules() -> None:
    values = stack()
    values["nodes"] = {"workers": {"count": 3.5, "machineType": "r6i.large"}}  # shape error, and undersized for prod
    values["network"]["vpcCidr"] = "10.10.0.0/16"

    problems = problems_of(values)

    # the design §6.2 rule needs `nodes` to have a valid shape; the network rules run regardless
    assert {p.path for p in problems} >= {"nodes.workers.count", "network.vpcCidr"}
    assert "nodes.workers.machineType" not in {p.path for p in problems}


# --- a bad stack file end to end --------------------------------------------------------------------


def _program_steps(monitor: review.plan.RecordingMonitor) -> list[dict[str, Any]]:
    """Registrations of the program, without the engine's root `pulumi:pulumi:Stack` (which
    `pulumi.runtime.set_mocks` registers itself the first time a process sets mocks)."""
    return [step for step in monitor.steps if step["newState"]["type"] != "pulumi:pulumi:Stack"]


class _CountingMonitor(review.plan.RecordingMonitor):
    created: list[_CountingMonitor] = []  # noqa: RUF012  (a test-only registry of monitors)

    def __init__(self, mocks: Any) -> None:
        super().__init__(mocks)
        _CountingMonitor.created.append(self)


BAD_STACK_PATHS = {
    "nodes.managers.count",
    "network.privateSubnetCidrs[1]",
    "tags.Owner",
    "budget.monthlyUsd",
    "storage.data.iops",
    "database.expectedTps",
    "colour",
}


@pytest.fixture
def bad_stack_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root holding the real `__main__.py` and `tests/unit/stacks/Pulumi.bad.yaml`."""
    shutil.copy(PROJECT_ROOT / "__main__.py", tmp_path / "__main__.py")
    shutil.copy(STACKS_DIR / "Pulumi.bad.yaml", tmp_path / "Pulumi.bad.yaml")
    _CountingMonitor.created = []
    monkeypatch.setattr(review.plan, "RecordingMonitor", _CountingMonitor)
    return tmp_path


def test_bad_stack_fixture_reads_like_a_stack_file(bad_stack_root: Path) -> None:
    values = config_values("bad", bad_stack_root)

    assert values["environment"] == "prod"
    assert {p.path for p in problems_of(values)} == BAD_STACK_PATHS


def test_build_plan_of_a_bad_stack_raises_before_registering_anything(bad_stack_root: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        build_plan("bad", root=bad_stack_root)

    assert {p.path for p in caught.value.problems} == BAD_STACK_PATHS
    (monitor,) = _CountingMonitor.created
    assert _program_steps(monitor) == []


def test_cli_exits_2_and_prints_every_problem(bad_stack_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(plan_command, "build_plan_revealed", functools.partial(build_plan_revealed, root=bad_stack_root))
    out = bad_stack_root / "plan.json"

    code = review_cli.main(["plan", "--stack", "bad", "--out", str(out)])

    assert code == 2
    assert not out.exists()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"stack bad: {len(BAD_STACK_PATHS)} problem(s) in the stack settings:" in captured.err
    for path in BAD_STACK_PATHS:
        assert f"  - dpc:{path}: " in captured.err
    (monitor,) = _CountingMonitor.created
    assert _program_steps(monitor) == []


def test_the_monitor_does_see_registrations_of_a_good_stack(bad_stack_root: Path) -> None:
    """Guards the two tests above: the same root and monitor record resources when the stack is valid."""
    shutil.copy(PROJECT_ROOT / "Pulumi.dev.yaml", bad_stack_root / "Pulumi.good.yaml")

    plan = build_plan("good", root=bad_stack_root)

    (monitor,) = _CountingMonitor.created
    steps = _program_steps(monitor)
    assert len(steps) > 50
    assert any(step["newState"]["type"] == "aws:ec2/vpc:Vpc" for step in steps)
    assert plan["changeSummary"]["create"] >= len(steps)


def test_prod_backups_need_a_second_region() -> None:
    backup = {k: v for k, v in config_values("prod")["backup"].items() if k != "offsiteReplicaRegion"}
    problem = only_problem(stack(backup=backup))
    assert problem.path == "backup.offsiteReplicaRegion" and "geo-replicated" in problem.message


def test_the_replica_region_is_another_region() -> None:
    problem = only_problem(stack(backup=prod_backup({"offsiteReplicaRegion": "us-east-1"})))
    assert problem.path == "backup.offsiteReplicaRegion" and "own region" in problem.message


def test_staging_may_keep_one_region() -> None:
    assert settings_from_config(config_values("staging")).backup.offsite_replica_region is None


# --- clouds: the settings each cloud's profile owns ---------------------------------------------------


def test_a_stack_without_a_cloud_is_aws() -> None:
    values = stack("dev")
    del values["cloud"]

    assert settings_from_config(values).cloud == "aws"


def test_a_cloud_the_program_does_not_know_is_the_only_problem() -> None:
    problem = only_problem(stack(cloud="oracle", colour="blue"))

    assert problem.path == "cloud"
    assert "'oracle' is not a cloud this program knows" in problem.message
    assert "'aws', 'gcp', 'azure', 'local'" in problem.message
    assert problem.fix == "use one of the values listed"


@pytest.mark.parametrize("name", ["gcp-prod", "gcp-dev"])
def test_shipped_gcp_stack_validates_and_keeps_its_own_values(name: str) -> None:
    values = config_values(name)
    settings = settings_from_config(values)

    assert settings.cloud == "gcp"
    assert settings.environment == name.removeprefix("gcp-")
    assert (settings.region, settings.zones) == ("us-central1", ["us-central1-a", "us-central1-b", "us-central1-c"])
    assert settings.gcp is not None
    assert (settings.gcp.project, settings.gcp.billing_account) == (values["gcp"]["project"], values["gcp"]["billingAccount"])
    assert len(settings.network.private_subnet_cidrs) == len(settings.network.public_subnet_cidrs) == 1
    assert settings.image.owner == "ubuntu-os-cloud" and settings.image.name.startswith("ubuntu-2404-noble-amd64-")
    assert all(v.iops is None and v.throughput_mbps is None for v in (settings.storage.data, settings.storage.wal, settings.storage.backup))
    assert settings.backup.offsite_replica_region == values.get("backup", {}).get("offsiteReplicaRegion")


def test_gcp_dev_is_smaller_but_fails_over_like_prod() -> None:
    prod, dev = settings_from_config(config_values("gcp-prod")), settings_from_config(config_values("gcp-dev"))
    catalog = MACHINE_TYPES["gcp"]

    assert (dev.nodes.managers.count, dev.nodes.workers.count, dev.nodes.app.count, dev.nodes.backup.count) == (3, 3, 2, 0)
    assert catalog[dev.nodes.workers.machine_type].memory_gib < catalog[prod.nodes.workers.machine_type].memory_gib
    assert catalog[dev.nodes.managers.machine_type].vcpus < catalog[prod.nodes.managers.machine_type].vcpus
    assert dev.storage.data.size_gb < prod.storage.data.size_gb


@pytest.mark.parametrize("empty", [False, True])
def test_gcp_stack_needs_its_section(empty: bool) -> None:
    values = stack("gcp-dev")
    if empty:
        values["gcp"] = None  # `dpc:gcp:` with nothing under it
    else:
        del values["gcp"]

    problem = only_problem(values)

    assert problem.path == "gcp"
    assert "gcp stack needs" in problem.message
    assert "`project`" in problem.fix and "`billingAccount`" in problem.fix


@pytest.mark.parametrize("name", ["prod", "local"])
def test_gcp_section_on_another_cloud_is_refused(name: str) -> None:
    problem = only_problem(stack(name, gcp={"project": "not a project"}))

    assert problem.path == "gcp"
    assert "section of gcp stacks" in problem.message
    assert "remove dpc:gcp" in problem.fix


@pytest.mark.parametrize(
    ("key", "value", "fix"),
    [
        ("project", "My Project", "project's id"),
        ("project", "p-1", "6–30"),
        ("project", "1-starts-with-a-digit", "starting with a letter"),
        ("project", "ends-with-a-hyphen-", "lowercase"),
        ("billingAccount", "01ABCD-2345EF", "XXXXXX-XXXXXX-XXXXXX"),
        ("billingAccount", "01abcd-2345ef-6789ab", "hexadecimal"),
    ],
)
def test_gcp_project_and_billing_account_in_their_form(key: str, value: str, fix: str) -> None:
    values = stack("gcp-dev")
    values["gcp"][key] = value

    problem = only_problem(values)

    assert problem.path == f"gcp.{key}"
    assert "pattern" in problem.message
    assert fix in problem.fix


@pytest.mark.parametrize("region", ["us-central-1", "us-east-1", "uscentral1", "US-CENTRAL1"])
def test_gcp_region_in_gcps_form(region: str) -> None:
    problems = problems_of(stack("gcp-dev", region=region))

    (problem,) = at(problems, "region")
    assert f"{region!r} is not a region name of gcp" in problem.message
    assert "us-central1" in problem.fix


@pytest.mark.parametrize("zone", ["us-central1a", "us-central1-ab", "us-east1-b", "us-central1"])
def test_gcp_zone_in_gcps_form(zone: str) -> None:
    problem = only_problem(stack("gcp-dev", zones=["us-central1-a", zone, "us-central1-c"]))

    assert problem.path == "zones[1]"
    assert f"{zone!r} is not a zone of region 'us-central1'" in problem.message
    assert "us-central1-<letter>" in problem.fix


@pytest.mark.parametrize(("name", "region", "example"), [("gcp-prod", "us-west-2", "us-central1"), ("prod", "us-west2", "us-east-1")])
def test_replica_region_in_the_clouds_form(name: str, region: str, example: str) -> None:
    values = stack(name)
    values["backup"]["offsiteReplicaRegion"] = region

    problem = only_problem(values)

    assert problem.path == "backup.offsiteReplicaRegion"
    assert f"{region!r} is not a region name of {values['cloud']}" in problem.message
    assert example in problem.fix


def test_gcp_prod_backups_need_a_second_region() -> None:
    values = stack("gcp-prod")
    del values["backup"]

    problem = only_problem(values)

    assert problem.path == "backup.offsiteReplicaRegion"
    assert "us-east1" in problem.fix


@pytest.mark.parametrize("key", ["privateSubnetCidrs", "publicSubnetCidrs"])
def test_gcp_subnetworks_are_regional_one_range_each(key: str) -> None:
    values = stack("gcp-prod")
    values["network"][key] = ["10.60.64.0/20", "10.60.96.0/20"] if key == "privateSubnetCidrs" else ["10.60.130.0/24", "10.60.131.0/24"]

    problem = only_problem(values)

    assert problem.path == f"network.{key}"
    assert "2 range(s)" in problem.message and "regional" in problem.message
    assert problem.fix == "list exactly one range"


def test_gcp_subnetwork_may_be_a_29_but_not_a_30() -> None:
    values = stack("gcp-dev")
    values["network"]["publicSubnetCidrs"] = ["10.80.128.0/29"]
    assert settings_from_config(values).network.public_subnet_cidrs == ["10.80.128.0/29"]

    values["network"]["publicSubnetCidrs"] = ["10.80.128.0/30"]
    problem = only_problem(values)
    assert problem.path == "network.publicSubnetCidrs[0]"
    assert "/30 is smaller than the /29" in problem.message


def test_gcp_nat_is_regional() -> None:
    values = stack("gcp-prod")
    values["network"]["natGatewayPerZone"] = True

    problem = only_problem(values)

    assert problem.path == "network.natGatewayPerZone"
    assert "regional" in problem.message
    assert problem.fix == "set natGatewayPerZone: false"


@pytest.mark.parametrize("volume", ["data", "wal", "backup"])
@pytest.mark.parametrize(("key", "value"), [("iops", 16000), ("throughputMbps", 690)])
def test_gcp_volumes_take_no_provisioned_performance(volume: str, key: str, value: int) -> None:
    problem = only_problem(stack("gcp-prod", storage={volume: {key: value}}))

    assert problem.path == f"storage.{volume}.{key}"
    assert "pd-ssd" in problem.message and "follows their size" in problem.message
    assert f"remove {key}" in problem.fix and f"dpc:storage.{volume}.sizeGb" in problem.fix


def test_pd_ssd_has_a_minimum_size() -> None:
    problem = only_problem(stack("gcp-dev", storage={"wal": {"sizeGb": 9}}))

    assert problem.path == "storage.wal.sizeGb"
    assert "9 GB is below the 10 GB" in problem.message
    assert problem.fix == "use at least 10"
    assert settings_from_config(stack("gcp-dev", storage={"wal": {"sizeGb": 10}})).storage.wal.size_gb == 10


def test_pd_ssd_maximum_size() -> None:
    problem = only_problem(stack("gcp-prod", storage={"backup": {"sizeGb": 65537}}))

    assert problem.path == "storage.backup.sizeGb"
    assert "65536" in problem.message


def test_gcp_archives_an_object_thirty_days_after_nearline() -> None:
    problem = only_problem(
        stack("gcp-prod", backup={**config_values("gcp-prod")["backup"], "offsiteInfrequentAccessAfterDays": 10, "offsiteArchiveAfterDays": 39})
    )

    assert problem.path == "backup.offsiteArchiveAfterDays"
    assert "Nearline bills every object at least 30 days" in problem.message and "(day 10)" in problem.message
    assert problem.fix == "use at least 40"
    assert settings_from_config(
        stack("gcp-prod", backup={**config_values("gcp-prod")["backup"], "offsiteInfrequentAccessAfterDays": 10, "offsiteArchiveAfterDays": 40})
    )


def test_gcp_keeps_an_archived_backup_365_days() -> None:
    backup = {**config_values("gcp-prod")["backup"], "offsiteArchiveAfterDays": 90, "offsiteExpireAfterDays": 454}

    problem = only_problem(stack("gcp-prod", backup=backup))

    assert problem.path == "backup.offsiteExpireAfterDays"
    assert "Archive storage bills at least 365 days" in problem.message and "(from day 90)" in problem.message
    assert problem.fix == "use at least 455"
    assert settings_from_config(stack("gcp-prod", backup=backup | {"offsiteExpireAfterDays": 455})).backup.offsite_expire_after_days == 455


def test_the_s3_rules_do_not_apply_on_gcp_nor_the_gcs_rules_on_aws() -> None:
    early = {"offsiteInfrequentAccessAfterDays": 20, "offsiteArchiveAfterDays": 50}
    assert settings_from_config(stack("gcp-prod", backup={**config_values("gcp-prod")["backup"], **early})).backup.offsite_infrequent_access_after_days == 20

    expiring = prod_backup({"offsiteArchiveAfterDays": 90, "offsiteExpireAfterDays": 400})
    assert settings_from_config(stack("prod", backup=expiring)).backup.offsite_expire_after_days == 400


@pytest.mark.parametrize(
    ("tags", "path", "message"),
    [
        ({"Team": "x" * 64}, "tags.Team", "at most 63 characters"),
        ({"T" + "e" * 63: "dba"}, "tags.T" + "e" * 63, "at most 63 characters"),
        ({"1st": "dba"}, "tags.1st", "start with a letter"),
        ({"cost_center": "other"}, "tags.cost_center", "as dpc:tags.CostCenter does"),
        ({"managed_by": "me"}, "tags.managed_by", "which the program sets for its ManagedBy tag"),
    ],
)
def test_gcp_tags_become_labels_without_being_cut_or_colliding(tags: dict[str, str], path: str, message: str) -> None:
    values = stack("gcp-dev")
    values["tags"] |= tags

    problem = only_problem(values)

    assert problem.path == path
    assert message in problem.message


def test_aws_tag_limits_stay_on_aws() -> None:
    values = stack("gcp-dev")
    values["tags"]["aws:createdBy"] = "me"

    assert settings_from_config(values).tags["aws:createdBy"] == "me"


def test_every_problem_of_a_gcp_stack_is_reported_at_once() -> None:
    values = stack("gcp-prod")
    values["gcp"]["billingAccount"] = "nope"
    values["zones"] = ["us-central1-a", "us-central1-b", "us-east1-c"]
    values["network"]["privateSubnetCidrs"] = ["10.60.0.0/20", "10.60.16.0/20"]
    values["network"]["natGatewayPerZone"] = True
    values["storage"] = {"data": {"iops": 16000}, "wal": {"sizeGb": 5}}
    values["backup"] = {**values["backup"], "offsiteReplicaRegion": "us-west-2", "offsiteExpireAfterDays": 400}
    values["tags"]["Team"] = "t" * 64

    problems = problems_of(values)

    assert sorted(p.path for p in problems) == sorted(
        [
            "gcp.billingAccount",
            "zones[2]",
            "network.privateSubnetCidrs",
            "network.natGatewayPerZone",
            "storage.data.iops",
            "storage.wal.sizeGb",
            "backup.offsiteReplicaRegion",
            "backup.offsiteExpireAfterDays",
            "tags.Team",
        ]
    )


@pytest.mark.parametrize(
    ("name", "replica", "environment"),
    [
        *[(name, replica, environment) for name, replica in (("dev", "us-west-2"), ("gcp-dev", "us-east1")) for environment in ("dev", "staging", "prod")],
        ("local", None, "dev"),
        ("local", None, "staging"),  # local prod is one engine, one zone: refused as any one-zone prod
    ],
)
def test_each_clouds_defaults_validate_in_every_environment(name: str, replica: str | None, environment: str) -> None:
    values = stack(name, environment=environment)
    if replica is not None:
        values["tags"]["Environment"] = environment
        values["backup"] = {"offsiteReplicaRegion": replica}

    settings = settings_from_config(values)

    assert settings.environment == environment
    assert settings.nodes.managers.machine_type in MACHINE_TYPES[settings.cloud]


# --- Azure ------------------------------------------------------------------------------------------


def azure_tags(**extra: str) -> dict[str, str]:
    """azure-prod's tags with more."""
    return {**config_values("azure-prod")["tags"], **extra}


@pytest.mark.parametrize("name", ["azure-prod", "azure-dev"])
def test_shipped_azure_stack_validates_and_keeps_its_own_values(name: str) -> None:
    values = config_values(name)
    settings = settings_from_config(values)

    assert settings.cloud == "azure"
    assert settings.environment == name.removeprefix("azure-")
    assert (settings.region, settings.zones) == ("eastus2", ["1", "2", "3"])
    assert settings.azure is not None and settings.gcp is None
    assert (settings.azure.subscription_id, settings.azure.tenant_id) == (values["azure"]["subscriptionId"], values["azure"]["tenantId"])
    assert settings.network.private_subnet_cidrs == values["network"]["privateSubnetCidrs"]
    assert len(settings.network.private_subnet_cidrs) == len(settings.network.public_subnet_cidrs) == len(settings.zones)
    assert settings.network.nat_gateway_per_zone is values["network"]["natGatewayPerZone"]
    assert settings.tags == values["tags"] and settings.budget.monthly_usd == values["budget"]["monthlyUsd"]
    assert settings.image.owner == "Canonical" and settings.image.name.startswith("ubuntu-24_04-lts:server:")
    assert all(v.iops is not None and v.throughput_mbps is not None for v in (settings.storage.data, settings.storage.wal, settings.storage.backup))
    assert settings.backup.offsite_replica_region is None
    assert all(group.machine_type in MACHINE_TYPES["azure"] for group in (settings.nodes.managers, settings.nodes.workers, settings.nodes.bastion))


def test_azure_prod_gets_the_original_azure_sizing() -> None:
    settings = settings_from_config(config_values("azure-prod"))

    assert (settings.nodes.managers.machine_type, settings.nodes.workers.machine_type, settings.nodes.app.machine_type) == (
        "Standard_D4s_v5", "Standard_E8s_v5", "Standard_D2s_v5",
    )
    assert (settings.storage.data.size_gb, settings.storage.data.iops, settings.storage.data.throughput_mbps) == (2048, 7500, 165)
    assert settings.nodes.backup.count == 1


def test_azure_dev_is_smaller_but_fails_over_like_prod() -> None:
    prod, dev = settings_from_config(config_values("azure-prod")), settings_from_config(config_values("azure-dev"))
    catalog = MACHINE_TYPES["azure"]

    assert (dev.nodes.managers.count, dev.nodes.workers.count, dev.nodes.app.count, dev.nodes.backup.count) == (3, 3, 2, 0)
    assert catalog[dev.nodes.workers.machine_type].memory_gib < catalog[prod.nodes.workers.machine_type].memory_gib
    assert dev.storage.data.size_gb < prod.storage.data.size_gb


@pytest.mark.parametrize(
    ("volume", "override", "path", "expected"),
    [
        ("wal", {"sizeGb": 10, "iops": 6000, "throughputMbps": 125}, "storage.wal.iops", "Premium SSD v2 allows for 10 GiB (3000–5000)"),
        ("data", {"sizeGb": 2048, "iops": 2999, "throughputMbps": 125}, "storage.data.iops", "(3000–80000)"),
        ("backup", {"sizeGb": 5120, "iops": 3000, "throughputMbps": 751}, "storage.backup.throughputMbps", "at 3000 IOPS (125–750)"),
        ("data", {"sizeGb": 2048, "iops": 7500, "throughputMbps": 124}, "storage.data.throughputMbps", "(125–1200)"),
    ],
)
def test_premium_ssd_v2_bounds(volume: str, override: dict[str, int], path: str, expected: str) -> None:
    problem = only_problem(stack("azure-prod", storage={volume: override}))

    assert problem.path == path
    assert expected in problem.message


def test_premium_ssd_v2_is_sold_by_iops_and_throughput_too() -> None:
    values = stack("azure-prod")
    values.setdefault("storage", {})["wal"] = {"sizeGb": 500, "iops": None, "throughputMbps": None}

    problem = only_problem(values)

    assert problem.path == "storage.wal"
    assert "Premium SSD v2 volumes are sold by size, IOPS and throughput" in problem.message


def test_azure_worker_disks_are_held_against_the_vms_uncached_burst() -> None:
    problem = only_problem(stack("azure-prod", storage={"data": {"sizeGb": 2048, "iops": 16000, "throughputMbps": 125}}))

    assert problem.path == "storage.data.iops"
    assert "dpc:storage.data + dpc:storage.wal provision 21000 IOPS on one workers node" in problem.message
    assert "its Standard_E8s_v5 drives at most 20000 (sustained 12800)" in problem.message
    assert settings_from_config(stack("azure-prod", storage={"data": {"sizeGb": 2048, "iops": 15000, "throughputMbps": 125}}))


def test_disks_at_premium_ssd_v2s_included_baseline_buy_nothing_the_vm_cannot_drive() -> None:
    """azure-dev's B2ms workers burst to 4,000 IOPS and 100 MB/s: two disks at the included 3,000
    IOPS and 125 MB/s each exceed it, but nothing was bought; one IOPS more is bought and wasted.
    """
    assert settings_from_config(config_values("azure-dev")).nodes.workers.machine_type == "Standard_B2ms"

    problem = only_problem(stack("azure-dev", storage={"data": {"sizeGb": 50, "iops": 3001, "throughputMbps": 125}}))

    assert problem.path == "storage.data.iops"
    assert "6001 IOPS on one workers node; its Standard_B2ms drives at most 4000 (sustained 1920)" in problem.message


def test_the_azure_backup_disk_is_checked_on_the_node_the_agent_runs_on() -> None:
    """azure-dev has no backup node: the agent and its disk are on manager-1, a Standard_B2s."""
    problem = only_problem(stack("azure-dev", storage={"backup": {"sizeGb": 100, "iops": 3000, "throughputMbps": 126}}))

    assert problem.path == "storage.backup.throughputMbps"
    assert "one managers node; its Standard_B2s drives at most 100 MB/s (800 Mbps; sustained 15 MB/s)" in problem.message
    assert "dpc:nodes.managers.machineType" in problem.fix


def test_every_azure_size_has_its_uncached_disk_limits() -> None:
    for machine in MACHINE_TYPES["azure"].values():
        assert machine.storage is not None, machine.name
        assert machine.storage.baseline_iops <= machine.storage.maximum_iops
        assert machine.storage.baseline_mbps <= machine.storage.maximum_mbps
    e8s = MACHINE_TYPES["azure"]["Standard_E8s_v5"].storage
    assert e8s is not None and (e8s.baseline_iops, e8s.baseline_mbps // 8, e8s.maximum_iops, e8s.maximum_mbps // 8) == (12800, 290, 20000, 1200)


def test_azure_keeps_a_blob_in_cool_thirty_days_before_cold() -> None:
    backup = {**config_values("azure-prod").get("backup", {}), "offsiteInfrequentAccessAfterDays": 10, "offsiteArchiveAfterDays": 39}

    problem = only_problem(stack("azure-prod", backup=backup))

    assert problem.path == "backup.offsiteArchiveAfterDays"
    assert "Cool bills every object at least 30 days" in problem.message and "(day 10)" in problem.message
    assert problem.fix == "use at least 40"
    assert settings_from_config(stack("azure-prod", backup=backup | {"offsiteArchiveAfterDays": 40}))


def test_azure_keeps_a_cold_blob_ninety_days() -> None:
    backup = {**config_values("azure-prod").get("backup", {}), "monthlyRetentionMonths": 1, "offsiteArchiveAfterDays": 90, "offsiteExpireAfterDays": 179}

    problem = only_problem(stack("azure-prod", backup=backup))

    assert problem.path == "backup.offsiteExpireAfterDays"
    assert "Cold storage bills at least 90 days" in problem.message
    assert problem.fix == "use at least 180"


def test_azure_refuses_an_offsite_replica_region() -> None:
    backup = {**config_values("azure-prod").get("backup", {}), "offsiteReplicaRegion": "centralus"}

    problem = only_problem(stack("azure-prod", backup=backup))

    assert problem.path == "backup.offsiteReplicaRegion"
    assert "paired region" in problem.message and "geo-zone-redundant" in problem.message
    assert problem.fix == "remove offsiteReplicaRegion"


@pytest.mark.parametrize(("position", "zone"), [(2, "4"), (0, "0"), (0, "eastus2-1"), (1, "2a")])
def test_azure_zones_are_numbered_1_to_3(position: int, zone: str) -> None:
    zones = ["1", "2", "3"]
    zones[position] = zone

    problem = only_problem(stack("azure-prod", zones=zones))

    assert problem.path == f"zones[{position}]"
    assert f"{zone!r} is not a zone of region 'eastus2'" in problem.message
    assert "1, 2 and 3" in problem.fix


@pytest.mark.parametrize("region", ["East US 2", "east-us-2", "us-east-1"])
def test_azure_region_in_azures_form(region: str) -> None:
    (problem,) = at(problems_of(stack("azure-prod", region=region)), "region")

    assert f"{region!r} is not a region name of azure" in problem.message
    assert "eastus2" in problem.fix


@pytest.mark.parametrize(
    "tags",
    [azure_tags(**{"a/b": "x"}), azure_tags(**{"k%": "x"}), azure_tags(**{"k" * 129: "x"}), azure_tags(Owner="v" * 257)],
    ids=["slash", "percent", "long-name", "long-value"],
)
def test_tags_azure_refuses(tags: dict[str, str]) -> None:
    problem = only_problem(stack("azure-prod", tags=tags))

    assert problem.path.startswith("tags.")
    assert "Azure tag names take 1–128 characters" in problem.message
    assert settings_from_config(stack("azure-prod", tags=azure_tags(**{"k" * 128: "v" * 256})))


@pytest.mark.parametrize("empty", [False, True])
def test_azure_stack_needs_its_section(empty: bool) -> None:
    values = stack("azure-dev")
    if empty:
        values["azure"] = None
    else:
        del values["azure"]

    problem = only_problem(values)

    assert problem.path == "azure"
    assert "azure stack needs" in problem.message
    assert "`subscriptionId`" in problem.fix and "`tenantId`" in problem.fix


@pytest.mark.parametrize("name", ["prod", "gcp-dev", "local"])
def test_azure_section_on_another_cloud_is_refused(name: str) -> None:
    problem = only_problem(stack(name, azure={"subscriptionId": "x", "tenantId": "y"}))

    assert problem.path == "azure"
    assert "section of azure stacks" in problem.message
    assert "remove dpc:azure" in problem.fix


@pytest.mark.parametrize("key", ["subscriptionId", "tenantId"])
@pytest.mark.parametrize("value", ["not-a-guid", "11111111-2222-3333-4444-55555555555G", "11111111-2222-3333-4444-5555555555AB"])
def test_azure_subscription_and_tenant_are_guids(key: str, value: str) -> None:
    values = stack("azure-dev")
    values["azure"][key] = value

    problem = only_problem(values)

    assert problem.path == f"azure.{key}"
    assert "pattern" in problem.message
