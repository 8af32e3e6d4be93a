"""The drill lab (tests/cluster/drill.py) on the cluster run's cluster: each drill once, under
writes through HAProxy and both PgBouncers, with the split-brain prober in the old leader's host.

What every drill must show, whatever its timing (the benchmark, `python -m benchmarks.drills`,
measures the times):
- no acknowledged row is lost, and every member holds every acknowledged row once caught up;
- a failover promotes the synchronous standby, and the old leader acknowledges nothing after the
  fault; a fault that needs no failover leaves the leader where it was, and writes go on through
  every path while it lasts;
- etcd's quorum lost past the leader key's ttl does not stop writes (failsafe mode);
- a primary cut off the network keeps accepting its own host's commits only in doubt (committed
  on it alone, never acknowledged);
- what asynchronous replication would have lost, synchronous replication keeps.

The drills run in any order and each leaves the cluster whole; they carry the `drill` marker and
run with `./run drills`, not in `./run smoke`.
"""

from __future__ import annotations

import pytest

from dpc.render.postgres import DCS_TIMING
from tests.cluster.drill import ASYNC_PATH, DRILLS, DrillReport, run_drill
from tests.cluster.hosts import Phases
from tests.cluster.smoke import Smoke

pytestmark = [pytest.mark.cluster, pytest.mark.drill]

REPORTS: dict[str, DrillReport] = {}
FAILOVERS = sorted(name for name, drill in DRILLS.items() if drill.failover)
NO_FAILOVERS = sorted(name for name, drill in DRILLS.items() if not drill.failover)


@pytest.fixture(scope="module", params=sorted(DRILLS))
def report(request: pytest.FixtureRequest, smoke: Smoke, phases: Phases) -> DrillReport:
    name: str = request.param
    with phases.phase(f"drill {name}"):
        REPORTS[name] = run_drill(smoke, DRILLS[name])
    return REPORTS[name]


def test_no_acknowledged_row_is_lost_on_any_member(report: DrillReport) -> None:
    lost = {path: path_report.lost for path, path_report in report.paths.items() if path != ASYNC_PATH}
    assert lost == dict.fromkeys(lost, 0), lost
    assert report.missing_on_members == dict.fromkeys(report.missing_on_members, 0)
    assert all(path_report.acknowledged > 0 for path_report in report.paths.values())


@pytest.mark.parametrize("report", FAILOVERS, indirect=True)
def test_a_failover_promotes_the_synchronous_standby_and_fences_the_old_leader(report: DrillReport) -> None:
    assert report.to_new_leader is not None
    assert report.leader_after == report.sync_before, "Patroni may promote only the synchronous standby"
    assert report.old_primary_acknowledged == 0, "the old leader acknowledged writes after the fault: split brain"


@pytest.mark.parametrize("report", NO_FAILOVERS, indirect=True)
def test_a_fault_that_needs_no_failover_leaves_the_leader_and_writes_go_on(report: DrillReport) -> None:
    assert report.to_new_leader is None
    assert report.leader_after == report.leader_before
    assert all(count > 0 for count in report.writes_during_fault.values()), report.writes_during_fault


@pytest.mark.parametrize("report", ["etcd-quorum-loss"], indirect=True)
def test_writes_go_on_past_the_leader_keys_ttl_without_etcd_quorum(report: DrillReport) -> None:
    assert report.recovered_at is not None
    beyond_ttl = float(DCS_TIMING["ttl"] + DCS_TIMING["loop_wait"])
    late = [at for at in report.paths["haproxy"].acknowledged_at if beyond_ttl < at < report.recovered_at]
    assert late, f"no write acknowledged between {beyond_ttl:.0f}s and the quorum's return at {report.recovered_at:.0f}s"


@pytest.mark.parametrize("report", ["primary-partition"], indirect=True)
def test_a_cut_off_primary_commits_its_own_hosts_writes_only_in_doubt(report: DrillReport) -> None:
    assert report.old_primary_in_doubt > 0, "the prober never reached the cut-off primary as primary"
    assert report.old_primary_acknowledged == 0


@pytest.mark.parametrize("report", ["replication-held-back"], indirect=True)
def test_synchronous_replication_keeps_what_asynchronous_would_lose(report: DrillReport) -> None:
    assert report.paths[ASYNC_PATH].lost > 0, "the control: commits acknowledged without a standby must be lost"
    assert report.paths["haproxy"].lost == report.paths["pgbouncer"].lost == 0
