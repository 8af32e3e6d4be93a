"""The cluster smoke run's fixture: one cluster for the session (tests/cluster/lifecycle.py),
under a watchdog, its logs kept when a test failed.

Not part of the default test paths; run as root with
`.venv/bin/python -m pytest tests/cluster -m cluster -q`. On a machine that cannot run it
(not root, no `ip netns`) it fails instead of skipping: it is only run where it must pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.netns import require_namespaces
from tests.cluster.hosts import Phases
from tests.cluster.lifecycle import running_cluster
from tests.cluster.smoke import Smoke

RUN_BUDGET = 420
"""Seconds from the first namespace to the last assertion of the smoke tests; the watchdog ends
the run after that (plus DRILL_BUDGET for each drill selected). The smoke run takes 2–3 minutes,
of which the WAL caps drills 45–80 s (tests/cluster/test_wal_caps.py); `./run smoke` ends it at
10 minutes whatever happens."""
DRILL_BUDGET = 150
"""Seconds each drill adds to the run's budget: the slowest (etcd's quorum loss) takes about a
minute; a drill that waits out every bound of tests/cluster/drill.py fails first."""

PHASES = Phases()
FAILED_TESTS: list[str] = []
KEPT_LOGS: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: starts a real etcd/Patroni/HAProxy/PgBouncer cluster in network namespaces (root only)")
    config.addinivalue_line("markers", "drill: a failure drill on that cluster (tests/cluster/drill.py): `./run drills`, not `./run smoke`")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        FAILED_TESTS.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if PHASES.timings:
        terminalreporter.write_line(f"cluster smoke run phases: {PHASES.summary()}")
    for kept in KEPT_LOGS:
        terminalreporter.write_line(f"cluster smoke run logs kept in {kept}")


@pytest.fixture(scope="session")
def phases() -> Phases:
    """The run's phase timings, reported at the end; tests that take long add theirs."""
    return PHASES


@pytest.fixture(scope="session")
def smoke(request: pytest.FixtureRequest) -> Iterator[Smoke]:
    try:
        require_namespaces()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    drills = {item.callspec.params["report"] for item in request.session.items if item.get_closest_marker("drill") and hasattr(item, "callspec")}  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]
    with running_cluster(PHASES, KEPT_LOGS, RUN_BUDGET + DRILL_BUDGET * len(drills)) as smoke:
        yield smoke
        if FAILED_TESTS:
            KEPT_LOGS.append(smoke.cluster.keep_logs())
