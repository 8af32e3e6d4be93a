"""The cloud-neutral model against the design: tiers (design §2.2), roles (design §1.1), zone spread (design §1.3)
and sizing (design §6.1)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from dpc.config import settings_from_stack_file
from dpc.model import SERVICES_BY_ROLE, Role, plan_nodes, worker_sizing
from dpc.settings import Settings
from dpc.sizing import MIN_WAL_CAP_MB, MIN_WAL_VOLUME_GIB, WAL_SEGMENT_MB, wal_budget
from dpc.tiers import OVERLAY_RANGES, TIERS, Tier

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _prod() -> Settings:
    return settings_from_stack_file(PROJECT_ROOT / "Pulumi.prod.yaml")


def test_tiers_are_the_seeds_four_overlay_networks() -> None:
    by_tier = {spec.tier: spec for spec in TIERS}
    assert {t: (s.network_name, s.subnet, s.encrypted) for t, s in by_tier.items()} == {
        Tier.COORDINATOR: ("coordinator-net", "10.10.0.0/24", True),
        Tier.DATA: ("data-net", "10.10.1.0/24", True),
        Tier.APP: ("app-net", "10.10.2.0/24", False),
        Tier.MONITORING: ("monitoring-net", "10.10.3.0/24", False),
    }
    assert by_tier[Tier.COORDINATOR].ports == (2379, 2380, 8008)
    assert by_tier[Tier.DATA].ports == (5432, 6379)
    assert by_tier[Tier.APP].ports == (5432, 6432, 6379)
    assert by_tier[Tier.MONITORING].ports == (9090, 3000, 9187)
    assert (ipaddress.IPv4Network("10.10.0.0/22"),) == OVERLAY_RANGES


def test_shipped_vpcs_stay_clear_of_the_overlay_networks() -> None:
    for stack in ("prod", "staging", "dev"):
        vpc = ipaddress.IPv4Network(settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml").network.vpc_cidr)
        assert not any(vpc.overlaps(overlay) for overlay in OVERLAY_RANGES), stack


def test_roles_run_the_seeds_services() -> None:
    assert set(SERVICES_BY_ROLE[Role.MANAGER]) >= {"etcd", "haproxy", "prometheus", "grafana"}
    assert SERVICES_BY_ROLE[Role.WORKER] == ("patroni",)
    assert set(SERVICES_BY_ROLE[Role.APP]) == {"pgbouncer", "redis"}
    assert SERVICES_BY_ROLE[Role.BASTION] == ()


def test_members_spread_round_robin_over_fewer_zones() -> None:
    settings = _prod().model_copy(update={"zones": ["us-east-1a", "us-east-1b"]})
    zones = [n.zone for n in plan_nodes(settings) if n.role is Role.WORKER]
    assert zones == ["us-east-1a", "us-east-1b", "us-east-1a"]


def test_worker_sizing_follows_the_seeds_formula() -> None:
    sizing = worker_sizing(_prod())
    # r6i.2xlarge: 64 GiB; 500 expected concurrent users.
    assert sizing.max_connections == 500 * 3 // 2 + 100 == 850
    assert sizing.shared_buffers_mb == 16 * 1024
    assert sizing.effective_cache_size_mb == 48 * 1024
    assert sizing.work_mem_kb == (64 - 16) * 1024 * 1024 // 850 // 2


def test_the_wal_budget_of_prod_and_of_the_smallest_volume() -> None:
    """Design §5.3: each cap 3/8 of what the filesystem (7 %), max_wal_size and wal_keep_size leave."""
    prod = wal_budget(_prod().storage.wal.size_gb)
    assert (prod.volume_mb, prod.filesystem_mb) == (500 * 1024, 35840)
    assert prod.slot_keep_mb == prod.archive_queue_mb == (512000 - 35840 - 1024 - 2048) * 3 // 8 == 177408
    assert prod.headroom_mb == 118272
    smallest = wal_budget(MIN_WAL_VOLUME_GIB)
    assert (smallest.slot_keep_mb, smallest.archive_queue_mb, smallest.headroom_mb) == (272, 272, 193)


def test_every_wal_budget_fits_its_volume_with_headroom() -> None:
    """The parts add up to the volume, nothing overlapping, with at least a quarter of the free part
    left; the caps are whole segments, never under the smallest, and grow with the volume."""
    previous = 0
    for gib in range(MIN_WAL_VOLUME_GIB, 4097):
        budget = wal_budget(gib)
        free = budget.volume_mb - budget.filesystem_mb - budget.max_wal_size_mb - budget.wal_keep_size_mb
        assert budget.slot_keep_mb == budget.archive_queue_mb >= max(MIN_WAL_CAP_MB, previous), gib
        assert budget.slot_keep_mb % WAL_SEGMENT_MB == 0, gib
        assert budget.headroom_mb >= free / 4, gib
        previous = budget.slot_keep_mb
