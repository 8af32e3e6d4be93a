"""The cloud-neutral model against the design: tiers (design §2.2), roles (design §1.1), zone spread (design §1.3)
and sizing (design §6.1)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from dpc.config import settings_from_stack_file
from dpc.model import SERVICES_BY_ROLE, Role, plan_nodes, worker_sizing
from dpc.settings import Settings
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
