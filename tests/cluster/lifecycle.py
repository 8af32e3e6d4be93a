"""One cluster's life, shared by the test fixture and the failover benchmark: build the hosts,
start etcd, Patroni, HAProxy and the PgBouncers in order, each phase waited for with a deadline, and
tear everything down afterwards whatever happened (a failure, the watchdog, Ctrl-C).
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from dpc.cluster import Port, User
from engine.netns import NamespaceClient, Network, require_namespaces, unmount_under, unused_subnet
from tests.cluster.client import wait_until
from tests.cluster.hosts import APPS, CLIENT, SUBNET_CANDIDATES, Phases, SmokeCluster, build
from tests.cluster.patroni_venv import patroni_venv
from tests.cluster.smoke import Smoke, etcd_health, formed

ETCD_TIMEOUT = 30.0
CLUSTER_TIMEOUT = 90.0
"""initdb, post-bootstrap and two base backups."""
PROXY_TIMEOUT = 30.0
"""HAProxy marks a member up after two good checks 2 s apart."""


def _wait_for_pgbouncer(smoke: Smoke, app: str) -> None:
    pooled = smoke.through_pgbouncer(User.APP, "app_user_password", app=app)
    wait_until(f"PgBouncer on {app}: app_user answers", lambda: smoke.sql(pooled, "SELECT 1") or None, timeout=PROXY_TIMEOUT)


def _watchdog(seconds: int) -> None:
    """A SIGALRM that interrupts whatever the run is waiting on, so that teardown still runs."""

    def expire(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        raise TimeoutError(f"the cluster run exceeded its {seconds}s budget")

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)


def _start(cluster: SmokeCluster, smoke: Smoke, phases: Phases) -> None:
    with phases.phase("etcd quorum"):
        cluster.start_etcd()
        wait_until("etcd: every member healthy", lambda: etcd_health(cluster), timeout=ETCD_TIMEOUT)
    with phases.phase("patroni: leader and two streaming replicas"):
        cluster.start_patroni()
        wait_until("Patroni: a leader and two streaming replicas, one synchronous", lambda: formed(smoke), timeout=CLUSTER_TIMEOUT, interval=1)
    with phases.phase("haproxy and pgbouncer"):
        cluster.start_proxies()
        primary = smoke.through_haproxy(Port.HAPROXY_PRIMARY)
        wait_until("HAProxy: the primary route answers", lambda: smoke.sql(primary, "SELECT 1") or None, timeout=PROXY_TIMEOUT)
        for app in APPS:
            _wait_for_pgbouncer(smoke, app)


@contextmanager
def running_cluster(phases: Phases, kept_logs: list[Path], budget: int) -> Iterator[Smoke]:
    """A started cluster and a client on its network, torn down on leaving, also on a failure or
    an interrupt. A watchdog interrupts the run `budget` seconds after the venv is ready (building
    it the first time is bounded on its own). A failure's error (not an interrupt's, which asks
    for nothing to be kept) carries the services' last lines and the teardown's problems, and all
    logs are copied to a directory appended to `kept_logs`; the caller may keep them too
    (e.g. when a test failed) by calling `smoke.cluster.keep_logs()` before leaving. A teardown
    that leaves anything behind is itself an error, reported with the logs kept (they explain it)
    before the run's directory goes.
    """
    require_namespaces()
    with phases.phase("patroni venv"):
        venv = patroni_venv()
    network = Network(unused_subnet(SUBNET_CANDIDATES))
    root = Path(tempfile.mkdtemp(prefix=f"dpc-smoke-{network.tag}-"))
    client: NamespaceClient | None = None
    cluster: SmokeCluster | None = None
    failure: BaseException | None = None
    _watchdog(budget)
    try:
        with phases.phase("namespaces, certificates, files"):
            cluster = build(network, root, venv)
            client = NamespaceClient(network.namespace(CLIENT))
        smoke = Smoke(cluster, client)
        _start(cluster, smoke, phases)
        yield smoke
    except BaseException as error:
        failure = error
        if cluster is not None and isinstance(error, Exception):
            error.add_note(f"service logs:\n{cluster.service_logs_tail()}")
            kept_logs.append(cluster.keep_logs())
        raise
    finally:
        signal.alarm(0)
        with phases.phase("teardown"):
            if client is not None:
                client.close()
            problems = network.teardown(stop_last=("etcd", "backup")) + [f"namespace left: {name}" for name in network.leftovers()]
            problems += unmount_under(root)  # the small disk (hosts.SMALL_DISK_WORKER), before its directory goes
            if problems and failure is None and cluster is not None:
                problems.append(f"logs kept in {cluster.keep_logs()}")
            shutil.rmtree(root, ignore_errors=True)
        problems += [f"directory left: {root}"] if root.exists() else []
        if failure is not None:
            failure.add_note(f"teardown problems: {problems}")
        elif problems:
            raise RuntimeError(f"teardown: {problems}")


@contextmanager
def benchmark_cluster(budget: int) -> Iterator[Smoke]:
    """`running_cluster` for a benchmark run from a terminal: SIGTERM (e.g. from `timeout`) unwinds
    like Ctrl-C, so that teardown runs; an interrupt then ends the process with status 130; the
    phases of the start are printed, and so are the paths of any logs kept.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    phases = Phases()
    kept_logs: list[Path] = []
    try:
        with running_cluster(phases, kept_logs, budget) as smoke:
            print(f"cluster started: {phases.summary()}", flush=True)
            yield smoke
    except KeyboardInterrupt:
        print("interrupted; the cluster is torn down", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        for kept in kept_logs:
            print(f"logs kept in {kept}", file=sys.stderr)
