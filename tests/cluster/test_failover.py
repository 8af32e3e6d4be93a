"""The primary-node-failure drill (design §5.3) on the smoke run's cluster.

Under continuous writes through HAProxy's primary route (TLS), the leader's host crashes: every
process in its namespace, Patroni and PostgreSQL alike, is SIGKILLed. The tests check that:

- one of the two other members becomes the leader;
- writes through HAProxy, the endpoint clients use, are acknowledged again within a generous
  bound (the 30 s RTO of design §5.3 is measured by benchmarks/failover_time.py, not asserted here);
- every row whose commit was acknowledged, before or after the crash, is on the new leader
  (RPO 0: strict synchronous replication);
- the crashed member, restarted from its same rendered files, rejoins as a streaming replica
  holding every acknowledged row, and the cluster is again a leader and two streaming replicas,
  one synchronous.

The drill leaves the cluster as it found it, formed, with only its leader changed, and the smoke
tests do not depend on which member leads: the modules pass in either order.
"""

from __future__ import annotations

import pytest

from tests.cluster.drill import RECOVERY_TIMEOUT, DrillResult, run_drill
from tests.cluster.hosts import Phases
from tests.cluster.smoke import REPLICA_ROLES, SYNCHRONOUS_ROLES, Smoke

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def drill(smoke: Smoke, phases: Phases) -> DrillResult:
    with phases.phase("failover drill"):
        return run_drill(smoke)


def test_a_new_leader_is_elected_among_the_two_others(drill: DrillResult) -> None:
    assert drill.processes_killed >= 2, "Patroni and PostgreSQL at least"
    assert drill.new_leader != drill.crashed
    assert drill.new_leader in drill.survivors
    assert drill.to_new_leader < RECOVERY_TIMEOUT


def test_writes_succeed_again_through_haproxy(drill: DrillResult) -> None:
    assert drill.writer_errors > 0, "the crash must have interrupted the writer"
    assert 0 < drill.to_first_write < RECOVERY_TIMEOUT
    assert drill.acknowledged > drill.acknowledged_before_crash


def test_no_acknowledged_commit_is_lost(drill: DrillResult) -> None:
    assert drill.acknowledged_before_crash > 0
    assert drill.present_before_crash == drill.acknowledged_before_crash
    assert drill.missing == (), f"{len(drill.missing)} acknowledged rows missing on the new leader"


def test_the_crashed_member_rejoins_as_a_streaming_replica(drill: DrillResult) -> None:
    roles = {member["name"]: (member["role"], member["state"]) for member in drill.members}
    assert roles[drill.crashed][0] in REPLICA_ROLES and roles[drill.crashed][1] == "streaming", roles
    assert roles[drill.new_leader] == ("leader", "running"), roles
    assert sorted(role for role, _ in roles.values()).count("leader") == 1, roles
    assert [state for role, state in roles.values() if role in REPLICA_ROLES] == ["streaming", "streaming"], roles
    assert sum(role in SYNCHRONOUS_ROLES for role, _ in roles.values()) == 1, roles
    assert drill.on_rejoined == drill.acknowledged
