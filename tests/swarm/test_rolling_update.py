"""Rolling updates of the Patroni members on the multi-node Swarm, through the Engine API as
`engine.deploy.roll` sends them leader-last (the replicas, a switchover to the updated synchronous
standby, the old leader), under a client that writes through HAProxy all along
(benchmarks/rolling_update.py measures the same; issues 9 and 14).

Each test leaves the Swarm as the program defines it: the update test rolls the members back onto
the program's image, and Swarm itself rolls back the update whose health check fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.rolling_update import (
    FAILING_TAG,
    ROLLED_TAG,
    Phase,
    describe,
    failing_health_check,
    leader_went_last,
    observed,
    one_at_a_time,
    patroni_members,
    restoring,
    retagged,
    rolled_back,
    run_phase,
)
from dpc.services import Image
from engine.lab import Deployment

pytestmark = pytest.mark.swarm

ENDED = ("complete", "failed", "shutdown", "rejected")
"""A task's states once it has ended: a task whose health check fails is stopped, and ends
complete when its process exits 0 on SIGTERM (Patroni does), failed otherwise."""


def _members(deployment: Deployment) -> list[str]:
    """The Patroni members."""
    return [service.name for service in patroni_members(deployment.objects).services]


def test_an_update_replaces_the_leader_last_after_one_switchover_and_loses_no_acknowledged_row(deployment: Deployment, ca_file: Path) -> None:
    members = _members(deployment)
    phases: list[Phase] = []
    with restoring(deployment):
        rolled = retagged(deployment, ROLLED_TAG)
        with observed(deployment, ca_file) as observation:
            phases.append(run_phase(observation, "update", rolled))
            phases.append(run_phase(observation, "restore", deployment.images))
    report = "\n".join(line for phase in phases for line in describe(phase))
    for phase in phases:
        assert sorted(member.service for member in phase.members) == sorted(members), report
        assert not leader_went_last(phase), report
        assert not one_at_a_time(phase), report
        assert all(member.stopped < member.running for member in phase.members), report
        assert phase.given_up is None, report
    assert set(phases[0].images_after.values()) == {rolled[Image.POSTGRES]}, report
    assert set(phases[1].images_after.values()) == {deployment.images[Image.POSTGRES]}, report
    writes = observation.result
    assert writes is not None
    assert writes.acknowledged > 0, report
    assert writes.lost == (), f"acknowledged rows lost: {writes.lost}\n{report}"


def test_an_update_whose_health_check_fails_is_rolled_back_and_goes_no_further(deployment: Deployment, ca_file: Path) -> None:
    with restoring(deployment), observed(deployment, ca_file) as observation:
        phase = run_phase(observation, "rollback", failing_health_check(deployment))
    report = "\n".join(describe(phase))
    assert not rolled_back(phase), report
    assert set(phase.images_after.values()) == {deployment.images[Image.POSTGRES]}, report
    failing = [task for task in phase.given_up_tasks if task.image.endswith(FAILING_TAG)]
    assert failing and all(task.state in ENDED for task in failing), report
    assert phase.given_up_tasks[-1].image == deployment.images[Image.POSTGRES] and phase.given_up_tasks[-1].state == "running", report
    writes = observation.result
    assert writes is not None
    assert writes.lost == (), f"acknowledged rows lost: {writes.lost}\n{report}"
