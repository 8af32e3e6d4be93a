"""A replica of the client path lost on the multi-node Swarm (issue 14): one HAProxy task, or one
PgBouncer task, killed hard (SIGKILL of its container through its node's engine) under writers
that commit through each PgBouncer (app_user, TLS verified by name) and through HAProxy's primary
route, with nothing done to recover but what Swarm's restart policy does
(benchmarks/replica_loss.py measures the same, and says what the figures were).

The namespace cluster of the drill lab has one HAProxy, so the loss of one of two (design §5.4)
runs here. A PgBouncer whose server connection went through the lost HAProxy may wait for its
`server_connect_timeout` before it uses the other (`pooled_stall_bound` says why): that is the
bound on the pooled paths, where HAProxy's own route must go on at once.

Each test waits until the stack is healthy again (both HAProxy and both PgBouncer tasks running,
the Patroni cluster whole), so the Swarm is left as the program defines it, in any order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.replica_loss import HAPROXY_PATH, PGBOUNCER, PGBOUNCER_PATH, SURVIVOR_GAP, describe_loss, loss_problems, measured_loss
from engine.lab import Deployment

pytestmark = pytest.mark.swarm


def test_a_lost_haproxy_task_is_replaced_while_the_other_serves_every_client_path(deployment: Deployment, ca_file: Path) -> None:
    haproxy = deployment.objects.layout.haproxy.name
    lost, writes = measured_loss(deployment, ca_file, haproxy)
    report = "\n".join(describe_loss(lost, writes))
    print(report)
    assert lost.carried.get(lost.node, 0) >= 1, f"the killed HAProxy carried none of PgBouncer's server connections\n{report}"
    assert writes.acknowledged > 0, report
    assert writes.lost == (), f"acknowledged rows lost: {writes.lost}\n{report}"
    assert set(lost.leaders) == {lost.leader_before}, f"an HAProxy's loss changed the leader\n{report}"
    assert lost.running is not None and len(lost.nodes_after) == 2, f"Swarm did not bring {haproxy} back to 2 running tasks\n{report}"
    pooled = [path for path in lost.paths if path.startswith(PGBOUNCER_PATH.format(node=""))]
    assert len(pooled) == 2, report
    assert lost.paths[HAPROXY_PATH].gap <= SURVIVOR_GAP, f"HAProxy's route stopped: the other HAProxy did not serve\n{report}"
    assert all(lost.paths[path].gap <= lost.pooled_bound for path in pooled), report
    assert loss_problems(lost, writes) == [], report


def test_a_lost_pgbouncer_task_is_replaced_on_its_node_and_the_other_pgbouncer_keeps_writing(deployment: Deployment, ca_file: Path) -> None:
    lost, writes = measured_loss(deployment, ca_file, PGBOUNCER)
    report = "\n".join(describe_loss(lost, writes))
    print(report)
    assert writes.acknowledged > 0, report
    assert writes.lost == (), f"acknowledged rows lost: {writes.lost}\n{report}"
    assert set(lost.leaders) == {lost.leader_before}, f"a PgBouncer's loss changed the leader\n{report}"
    assert lost.running is not None and lost.nodes_after == lost.nodes_before and len(lost.nodes_after) == 2, report
    own = PGBOUNCER_PATH.format(node=lost.node)
    others = [path for path in lost.paths if path != own]
    assert len(others) == 2, report
    assert all(lost.paths[path].gap <= SURVIVOR_GAP for path in others), f"a path the loss does not cut stopped\n{report}"
    assert lost.paths[own].errors > 0, f"the lost PgBouncer's clients noticed nothing: was it the one killed?\n{report}"
    assert lost.paths[own].written_after > 0, f"the lost PgBouncer's clients did not write again after Swarm replaced it\n{report}"
    assert loss_problems(lost, writes) == [], report
