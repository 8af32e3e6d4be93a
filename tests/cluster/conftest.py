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

RUN_BUDGET = 300
"""Seconds from the first namespace to the last assertion, the failover drill included; the
watchdog ends the run after that."""

PHASES = Phases()
FAILED_TESTS: list[str] = []
KEPT_LOGS: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: starts a real etcd/Patroni/HAProxy/PgBouncer cluster in network namespaces (root only)")


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
def smoke() -> Iterator[Smoke]:
    try:
        require_namespaces()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    with running_cluster(PHASES, KEPT_LOGS, RUN_BUDGET) as smoke:
        yield smoke
        if FAILED_TESTS:
            KEPT_LOGS.append(smoke.cluster.keep_logs())
