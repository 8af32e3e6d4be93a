"""A Swarm node lost and replaced (issue 14): the worker that runs the synchronous standby powers
off, the managers see it down and it is removed from the Swarm, and a new node with the same name
and labels but empty volumes joins (`engine.lab.replace_node`). Swarm places the member there
again and Patroni re-creates it from the leader, under a client that writes through HAProxy all
along (benchmarks/rolling_update.py's `node` phase measures the same). The lost member's
exporter is restarted afterwards (`restart_exporter` says why) so that later tests find every
Prometheus target up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.rolling_update import describe_node, node_came_back, node_replaced, observed
from dpc.settings import Settings
from engine.lab import Deployment

pytestmark = pytest.mark.swarm


def test_a_lost_worker_replaced_by_a_new_node_brings_its_member_back_as_a_streaming_replica(deployment: Deployment, settings: Settings, ca_file: Path) -> None:
    with observed(deployment, ca_file) as observation:
        replaced = node_replaced(observation, settings)
    report = "\n".join(describe_node(replaced))
    assert replaced.role in ("sync_standby", "replica"), report
    assert not node_came_back(replaced), report
    writes = observation.result
    assert writes is not None
    assert writes.acknowledged > 0, report
    assert writes.lost == (), f"acknowledged rows lost: {writes.lost}\n{report}"
