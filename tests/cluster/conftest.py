"""The cluster smoke run's fixture: build the hosts, start etcd, Patroni, HAProxy and PgBouncer in
order, each phase waited for with a deadline, and tear everything down afterwards whatever happened.

Not part of the default test paths; run as root with
`.venv/bin/python -m pytest tests/cluster -m cluster -q`. On a machine that cannot run it
(not root, no `ip netns`) it fails instead of skipping: it is only run where it must pass.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from dpc.cluster import Port
from tests.cluster.client import wait_until
from tests.cluster.hosts import CLIENT, SUBNET_CANDIDATES, Phases, SmokeCluster, build
from tests.cluster.netns import NamespaceClient, Network, require_namespaces, unused_subnet
from tests.cluster.patroni_venv import patroni_venv
from tests.cluster.smoke import Smoke, etcd_health, formed

RUN_BUDGET = 240
"""Seconds from the first namespace to the last assertion; the watchdog ends the run after that."""

ETCD_TIMEOUT = 30.0
CLUSTER_TIMEOUT = 90.0
"""initdb, post-bootstrap and two base backups."""
PROXY_TIMEOUT = 30.0
"""HAProxy marks a member up after two good checks 2 s apart."""

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


def _watchdog(seconds: int) -> None:
    """A SIGALRM that interrupts whatever the run is waiting on, so that teardown still runs."""

    def expire(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        raise TimeoutError(f"the cluster smoke run exceeded its {seconds}s budget")

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)


def _start(cluster: SmokeCluster, smoke: Smoke) -> None:
    with PHASES.phase("etcd quorum"):
        cluster.start_etcd()
        wait_until("etcd: every member healthy", lambda: etcd_health(cluster), timeout=ETCD_TIMEOUT)
    with PHASES.phase("patroni: leader and two streaming replicas"):
        cluster.start_patroni()
        wait_until("Patroni: a leader and two streaming replicas, one synchronous", lambda: formed(smoke), timeout=CLUSTER_TIMEOUT, interval=1)
    with PHASES.phase("haproxy and pgbouncer"):
        cluster.start_proxies()
        primary = smoke.through_haproxy(Port.HAPROXY_PRIMARY)
        wait_until("HAProxy: the primary route answers", lambda: smoke.sql(primary, "SELECT 1") or None, timeout=PROXY_TIMEOUT)


@pytest.fixture(scope="session")
def smoke() -> Iterator[Smoke]:
    try:
        require_namespaces()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    with PHASES.phase("patroni venv"):
        venv = patroni_venv()
    network = Network(unused_subnet(SUBNET_CANDIDATES))
    root = Path(tempfile.mkdtemp(prefix=f"dpc-smoke-{network.tag}-"))
    client: NamespaceClient | None = None
    cluster: SmokeCluster | None = None
    _watchdog(RUN_BUDGET)
    try:
        with PHASES.phase("namespaces, certificates, files"):
            cluster = build(network, root, venv)
            client = NamespaceClient(network.namespace(CLIENT))
        smoke = Smoke(cluster, client)
        _start(cluster, smoke)
        yield smoke
    except Exception as error:
        if cluster is not None:
            error.add_note(f"service logs:\n{cluster.service_logs_tail()}")
        raise
    finally:
        signal.alarm(0)
        if cluster is not None and (FAILED_TESTS or sys.exc_info()[1] is not None):
            KEPT_LOGS.append(cluster.keep_logs())
        with PHASES.phase("teardown"):
            if client is not None:
                client.close()
            problems = network.teardown()
            shutil.rmtree(root, ignore_errors=True)
        problems += [f"namespace left: {name}" for name in network.leftovers()]
        problems += [f"directory left: {root}"] if root.exists() else []
        failure = sys.exc_info()[1]
        if failure is not None:
            failure.add_note(f"teardown problems: {problems}")
        else:
            assert not problems, f"teardown: {problems}"
