"""A member's WAL disk fills up under writes (tests/cluster/disk_full_drill.py), once with the
member a replica, once with it the primary. The tests check that:

- the fault reached PostgreSQL: the member logged the full disk;
- a full replica costs no failover: the leader stays, writes go on through HAProxy with the other
  replica synchronous (strict synchronous replication holds no commit for the full member);
- a full primary fails over to the synchronous standby, and writes resume through HAProxy;
- writes never stall longer than design §5.3's recovery time;
- no acknowledged row is lost, on the leader or on the member once it has caught up;
- freed, the member streams again by itself and the cluster is whole: a leader and two streaming
  replicas, one synchronous.

The drills leave the cluster formed; other modules pass in any order.
"""

from __future__ import annotations

import pytest

from tests.cluster.disk_full_drill import DiskFullResult, Role, run_disk_full_drill, synchronous_others
from tests.cluster.hosts import Phases
from tests.cluster.smoke import REPLICA_ROLES, Smoke

pytestmark = pytest.mark.cluster

RTO_SECONDS = 30.0
"""Design §5.3's recovery time: a full disk must never stall writes longer than losing the primary may."""


@pytest.fixture(scope="module", params=["replica", "primary"])
def drill(request: pytest.FixtureRequest, smoke: Smoke, phases: Phases) -> DiskFullResult:
    role: Role = request.param
    with phases.phase(f"disk-full drill ({role})"):
        return run_disk_full_drill(smoke, role)


def test_the_full_disk_reaches_postgresql(drill: DiskFullResult) -> None:
    assert drill.filled_bytes > 0
    assert drill.log_says_no_space, "the member's PostgreSQL log does not name the full disk"


def test_a_full_replica_costs_no_failover_and_a_full_primary_fails_over_to_the_synchronous_standby(drill: DiskFullResult) -> None:
    if drill.role_before == "leader":
        assert drill.leader_while_full == drill.sync_before, (drill.sync_before, drill.members_while_full)
    else:
        assert drill.role_before in REPLICA_ROLES, drill.role_before
        assert drill.leader_while_full == drill.leader_before, drill.members_while_full
        assert synchronous_others(drill.members_while_full, drill.member), drill.members_while_full


def test_writes_go_on_while_the_disk_is_full(drill: DiskFullResult) -> None:
    assert drill.acknowledged_while_full > 0
    assert drill.longest_gap < RTO_SECONDS, f"writes stalled {drill.longest_gap:.1f}s: longer than a failover may take"


def test_no_acknowledged_row_is_lost(drill: DiskFullResult) -> None:
    assert drill.acknowledged > 0
    assert drill.missing_on_leader == (), f"{len(drill.missing_on_leader)} acknowledged rows missing on the leader"


def test_the_member_streams_again_once_space_is_freed(drill: DiskFullResult) -> None:
    roles = {m["name"]: (m["role"], m["state"]) for m in drill.members_after}
    assert roles[drill.member][0] in REPLICA_ROLES and roles[drill.member][1] == "streaming", roles
    assert drill.missing_on_member == (), f"{len(drill.missing_on_member)} acknowledged rows missing on the recovered member"
