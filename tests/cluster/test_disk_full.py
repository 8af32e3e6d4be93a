"""A replica's WAL disk fills up under writes (tests/cluster/disk_full_drill.py). The tests check that:

- the fault reached PostgreSQL: the member logged the full disk;
- a full replica costs no failover: the leader stays, and writes go on through HAProxy (the drill
  waits for the other replica to be the synchronous standby: strict synchronous replication holds
  no commit for the full member), never stalling longer than design §5.3's recovery time;
- no acknowledged row is lost, on the leader or on the member once it has caught up;
- freed, the member streams again by itself and the cluster is whole: a leader and two streaming
  replicas, one synchronous.

The primary's disk full is not among them: it does not always fail over (Patroni may keep the
leader key while the promotion never completes, see tests/cluster/disk_full_drill.py), so it is
run on demand with
`python -m tests.cluster.disk_full_drill --role primary`.
The drill leaves the cluster formed; other modules pass in any order.
"""

from __future__ import annotations

import pytest

from tests.cluster.disk_full_drill import DiskFullResult, run_disk_full_drill
from tests.cluster.hosts import Phases
from tests.cluster.smoke import REPLICA_ROLES, Smoke

pytestmark = pytest.mark.cluster

RTO_SECONDS = 30.0
"""Design §5.3's recovery time: a full disk must never stall writes longer than losing the primary may."""


@pytest.fixture(scope="module")
def drill(smoke: Smoke, phases: Phases) -> DiskFullResult:
    with phases.phase("disk-full drill (replica)"):
        return run_disk_full_drill(smoke, "replica")


def test_the_full_disk_reaches_postgresql(drill: DiskFullResult) -> None:
    assert drill.filled_bytes > 0
    assert drill.log_says_no_space, "the member's PostgreSQL log does not name the full disk"


def test_a_full_replica_costs_no_failover(drill: DiskFullResult) -> None:
    assert drill.role_before in REPLICA_ROLES, drill.role_before
    assert drill.leader_while_full == drill.leader_before, drill.members_while_full


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
