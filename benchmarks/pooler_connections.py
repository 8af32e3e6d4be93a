"""PgBouncer connection pooling for 10,000 clients (design §5.4, issue 14: 2 × 5000) on the real cluster of the smoke run.

Usage (as root, from the repository root): .venv/bin/python -m benchmarks.pooler_connections [--clients 10000] [--connecting 100]

Starts the smoke run's cluster once (etcd ×3, Patroni/PostgreSQL 15 ×3, HAProxy, and one PgBouncer
per app host, two as the layout's pgbouncer_replicas says, all from the program's rendered files,
in network namespaces). From the client host it opens `--clients` connections as app_user, split
evenly across the two PgBouncers, over TLS verified against the `pgbouncer` certificate
(verify-full), at most `--connecting` handshakes in flight. With every connection held open it runs
one transaction on each (an INSERT of the client's own row) all at once, and then looks, still
with every client open, at the server side: PostgreSQL's backends on the leader by user
(pg_stat_activity, max_connections), the rows committed, each PgBouncer's open file descriptors
and resident memory, and whether one more client, and the admin console, are still admitted. After the clients have closed, it
reads each PgBouncer's SHOW DATABASES, SHOW POOLS and SHOW STATS as pgbouncer_auth: the server
connections it opened for those clients and the transactions it counted.

Prints the figures and how each was measured; exits 1 if fewer than `--clients` clients connected
or committed their transaction (a phase that reaches its deadline cancels what is left of it, and
the report still says how far it got). Everything is torn down on leaving, also on a failure, SIGTERM or
Ctrl-C; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, LiteralString, TypeVar

import psycopg
from psycopg import AsyncConnection, sql

from benchmarks.client_path import process_cpu_seconds
from dpc.cluster import DATABASE_NAME, MIN_POOLED_CLIENTS, Port, User
from dpc.render.pgbouncer import server_connections_per_pgbouncer
from engine.netns import open_files_limit
from tests.cluster.hosts import APPS
from tests.cluster.lifecycle import benchmark_cluster
from tests.cluster.smoke import Smoke

T = TypeVar("T")

CONNECT_TIMEOUT = 30
"""Seconds one client's connection (TCP, TLS handshake, SCRAM via auth_query) may take."""
PHASE_TIMEOUT = 120.0
"""Seconds each later phase (everyone's transaction, a look at the servers, closing everyone, each
PgBouncer's pools) may take in all, and connecting everyone at least."""
CONNECT_RATE_FLOOR = 20
"""Connections per second below which connecting everyone counts as failed: the connect phase's
bound grows with the clients (500 s for 10,000), since this one process's TLS handshakes and SCRAM
proofs, not PgBouncer, set the pace: about 330/s measured for 5000 on 2 quiet CPUs, 27/s while
other clusters loaded the same 2 CPUs (load average 14), this process then getting a quarter of one."""
LATER_PHASES = 4
"""The phases after connecting, each bounded by PHASE_TIMEOUT."""
STARTUP_BUDGET = 150
"""Seconds the watchdog allows, beyond the client side's bound, for the cluster's start and the report."""
ADMIN_VIEWS: tuple[Literal["DATABASES", "POOLS", "STATS"], ...] = ("DATABASES", "POOLS", "STATS")
ADMIN_DATABASE = "pgbouncer"
"""PgBouncer's admin console, a pseudo-database."""
SERVER_STATES = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
"""SHOW POOLS' columns that together count a pool's server connections."""
OWN_FILES_HEADROOM = 512
"""File descriptors this process needs beyond one socket per client."""


@dataclass
class Attempt:
    """One client's connection attempt."""

    client: int
    app: str
    seconds: float
    error: str | None


@dataclass
class Outcome:
    """Everything measured while the clients were open, and the pools after they closed."""

    attempts: list[Attempt] = field(default_factory=list[Attempt])
    connect_seconds: float = 0.0
    connect_cpu: dict[str, float] = field(default_factory=dict[str, float])
    """CPU seconds (user + system) each PgBouncer and this process spent while everyone connected."""
    transactions: list[float] = field(default_factory=list[float])
    """Seconds each successful transaction took, from the moment all were started at once."""
    transaction_errors: Counter[str] = field(default_factory=Counter[str])
    transaction_seconds: float = 0.0
    backends: dict[str, int] = field(default_factory=dict[str, int])
    """The leader's client backends by user, while every client was open."""
    max_connections: int = 0
    rows: int = 0
    open_fds: dict[str, int] = field(default_factory=dict[str, int])
    """Each PgBouncer's open file descriptors while every client was open."""
    resident_mib: dict[str, float] = field(default_factory=dict[str, float])
    """Each PgBouncer's resident memory (VmRSS) while every client was open."""
    beyond_full: dict[str, dict[str, str]] = field(default_factory=dict[str, dict[str, str]])
    """Per PgBouncer, what one more app_user client and its admin console were answered while
    every client was open."""
    close_seconds: float = 0.0
    pools: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict[str, dict[str, list[dict[str, Any]]]])
    """Per PgBouncer, SHOW DATABASES / POOLS / STATS after the clients closed."""

    @property
    def connected(self) -> list[Attempt]:
        """The attempts that ended with an open connection."""
        return [attempt for attempt in self.attempts if attempt.error is None]


def _raise_own_open_files(clients: int) -> tuple[int, int]:
    """Raises the benchmark's own file descriptor limit to a socket per client and headroom (the
    hard limit too, as root, if it is lower); returns the limit in force.
    """
    needed = clients + OWN_FILES_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        hard = needed
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "none"
    return f"p50 {_percentile(values, 0.5) * 1000:.0f} ms, p95 {_percentile(values, 0.95) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"


async def _bounded(awaitable: Awaitable[Any], seconds: float) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


async def _within(coroutines: Sequence[Coroutine[Any, Any, T]], seconds: float) -> list[T | None]:
    """The coroutines' results, run all at once; those not done after `seconds` are cancelled and
    give None, so that a phase that overruns still reports what it achieved.
    """
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    if not tasks:
        return []
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return [None if task.cancelled() else task.result() for task in tasks]


def connect_phase_seconds(clients: int) -> float:
    """The connect phase's bound: PHASE_TIMEOUT, or longer for more clients than it fits at CONNECT_RATE_FLOOR."""
    return max(PHASE_TIMEOUT, clients / CONNECT_RATE_FLOOR)


def run_seconds(clients: int) -> float:
    """The whole client side's bound: every phase's together."""
    return connect_phase_seconds(clients) + LATER_PHASES * PHASE_TIMEOUT


def _resident_mib(pid: int) -> float:
    """A process's resident memory, from /proc/<pid>/status (VmRSS, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


async def _admission(conninfo: Mapping[str, Any]) -> str:
    """Whether a connection is admitted (and then closed at once), or the error it is refused with."""
    try:
        async with await AsyncConnection.connect(**conninfo, autocommit=True):
            return "admitted"
    except psycopg.Error as error:
        return f"refused ({str(error).strip()})"


class PoolerRun:
    """The run's client side, on the client host's network (a thread that joined its namespace)."""

    def __init__(self, smoke: Smoke, clients: int, connecting: int) -> None:
        self.smoke = smoke
        self.clients = clients
        self.connecting = connecting
        self.table = f"pooler_{secrets.token_hex(4)}"
        self.outcome = Outcome()
        self.pgbouncer_pids = {app: smoke.cluster.network.processes(app, "pgbouncer")[0] for app in APPS}

    def _cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each PgBouncer and by this process (the client)."""
        used = {f"PgBouncer on {app}": process_cpu_seconds(pid) for app, pid in self.pgbouncer_pids.items()}
        own = resource.getrusage(resource.RUSAGE_SELF)
        return used | {"the client process": own.ru_utime + own.ru_stime}

    def _sql(self, statement: LiteralString) -> sql.Composed:
        """A statement on the run's own table, its name quoted."""
        return sql.SQL(statement).format(sql.Identifier(self.table))

    def _pooled(self, app: str) -> dict[str, Any]:
        return {**self.smoke.through_pgbouncer(User.APP, "app_user_password", app=app), "connect_timeout": CONNECT_TIMEOUT}

    def _admin(self, app: str) -> dict[str, Any]:
        conninfo = self.smoke.through_pgbouncer(User.PGBOUNCER_AUTH, "pgbouncer_auth_password", app=app, database=ADMIN_DATABASE)
        return {**conninfo, "connect_timeout": CONNECT_TIMEOUT}

    async def _connect(self, client: int, slots: asyncio.Semaphore) -> AsyncConnection[Any] | None:
        app = APPS[client % len(APPS)]
        async with slots:
            start = time.monotonic()
            try:
                connection = await _bounded(AsyncConnection.connect(**self._pooled(app), autocommit=True, prepare_threshold=None), CONNECT_TIMEOUT)
            except (psycopg.Error, TimeoutError) as error:
                self.outcome.attempts.append(Attempt(client, app, time.monotonic() - start, f"{type(error).__name__}: {str(error).strip()}"))
                return None
            self.outcome.attempts.append(Attempt(client, app, time.monotonic() - start, None))
            return connection

    async def _transaction(self, client: int, connection: AsyncConnection[Any], started: float) -> None:
        try:
            await connection.execute(self._sql("INSERT INTO {} (client, pgbouncer) VALUES (%s, %s)"), (client, APPS[client % len(APPS)]))
        except psycopg.Error as error:
            self.outcome.transaction_errors[f"{type(error).__name__}: {str(error).strip()}"] += 1
            return
        self.outcome.transactions.append(time.monotonic() - started)

    async def _server_side_while_open(self) -> None:
        """The leader's backends and each PgBouncer's descriptors and admin console, all clients open."""
        primary = self.smoke.through_haproxy(Port.HAPROXY_PRIMARY)
        async with await AsyncConnection.connect(**primary, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as leader:  # pyright: ignore[reportArgumentType]
            rows = await (await leader.execute("SELECT usename, count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1")).fetchall()
            self.outcome.backends = {str(user): int(count) for user, count in rows}
            ((max_connections,),) = await (await leader.execute("SHOW max_connections")).fetchall()
            self.outcome.max_connections = int(max_connections)
            ((committed,),) = await (await leader.execute(self._sql("SELECT count(*) FROM {}"))).fetchall()
            self.outcome.rows = int(committed)
        for app, pid in self.pgbouncer_pids.items():
            self.outcome.open_fds[app] = len(os.listdir(f"/proc/{pid}/fd"))
            self.outcome.resident_mib[app] = _resident_mib(pid)
            self.outcome.beyond_full[app] = {
                "one more app_user client": await _admission(self._pooled(app)),
                "the admin console": await _admission(self._admin(app)),
            }

    async def _pools(self, app: str) -> dict[str, list[dict[str, Any]]]:
        async with await AsyncConnection.connect(**self._admin(app), autocommit=True) as admin:
            shown: dict[str, list[dict[str, Any]]] = {}
            for view in ADMIN_VIEWS:
                cursor = await admin.execute(sql.SQL("SHOW {}").format(sql.SQL(view)))
                names = [column.name for column in cursor.description or ()]
                rows = [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
                shown[view] = [row for row in rows if row["name" if view == "DATABASES" else "database"] == DATABASE_NAME]
            return shown

    def run_to_end(self) -> Outcome:
        """`run` in an event loop of its own, on the calling thread (the namespace's)."""
        return asyncio.run(self.run())

    async def run(self) -> Outcome:
        """Connect everyone, hold them, a transaction each at once, look at the servers, close."""
        primary = self.smoke.through_haproxy(Port.HAPROXY_PRIMARY)
        async with await AsyncConnection.connect(**primary, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as superuser:  # pyright: ignore[reportArgumentType]
            await superuser.execute(self._sql("CREATE TABLE {} (client int PRIMARY KEY, pgbouncer text NOT NULL)"))
        slots = asyncio.Semaphore(self.connecting)
        cpu_before = self._cpu_seconds()
        start = time.monotonic()
        opened = await _within([self._connect(client, slots) for client in range(self.clients)], connect_phase_seconds(self.clients))
        self.outcome.connect_seconds = time.monotonic() - start
        self.outcome.connect_cpu = {name: seconds - cpu_before[name] for name, seconds in self._cpu_seconds().items()}
        connections = {client: connection for client, connection in enumerate(opened) if connection is not None}
        try:
            start = time.monotonic()
            await _within([self._transaction(client, c, start) for client, c in connections.items()], PHASE_TIMEOUT)
            self.outcome.transaction_seconds = time.monotonic() - start
            await _bounded(self._server_side_while_open(), PHASE_TIMEOUT)
        finally:
            start = time.monotonic()
            await _within([connection.close() for connection in connections.values()], PHASE_TIMEOUT)
            self.outcome.close_seconds = time.monotonic() - start
        self.outcome.pools = {app: await _bounded(self._pools(app), PHASE_TIMEOUT) for app in APPS}
        return self.outcome


def _column(pools: Mapping[str, list[dict[str, Any]]], view: str, column: str) -> int:
    return sum(int(row[column]) for row in pools[view])


def _report(smoke: Smoke, run: PoolerRun, outcome: Outcome, own_limit: tuple[int, int]) -> list[str]:
    layout = smoke.cluster.layout
    per_pgbouncer = server_connections_per_pgbouncer(layout)
    connected = outcome.connected
    failures = Counter(attempt.error for attempt in outcome.attempts if attempt.error is not None)
    lines = [
        f"pooled connections on the smoke run's cluster: {run.clients} clients as app_user over TLS (verify-full against the pgbouncer "
        f"certificate, SCRAM via auth_query), split evenly across {len(APPS)} PgBouncers ({', '.join(APPS)}), at most {run.connecting} "
        f"handshakes in flight, from one asyncio process (psycopg AsyncConnection) on the client host; {os.cpu_count()} CPUs",
        f"rendered per PgBouncer: max_client_conn {layout.pgbouncer_max_client_connections}, max_db_connections {per_pgbouncer}, "
        f"pool_mode transaction; file descriptor limit "
        + ", ".join(f"{app} {open_files_limit(pid)[0]}" for app, pid in run.pgbouncer_pids.items())
        + f" (this process {own_limit[0]})",
        f"connected: {len(connected)} of {run.clients} ("
        + ", ".join(f"{app} {sum(a.app == app for a in connected)}" for app in APPS)
        + f") in {outcome.connect_seconds:.1f} s, {len(connected) / max(outcome.connect_seconds, 1e-9):.0f}/s; "
        f"per connection (TCP + TLS 1.3 + SCRAM, from its handshake slot to ready) {_spread([a.seconds for a in connected])}",
        *(f"  connection failures: {count} × {error}" for error, count in failures.most_common(5)),
        *(
            [f"  connections cut off at the phase's {connect_phase_seconds(run.clients):.0f} s deadline: {run.clients - len(outcome.attempts)}"]
            if len(outcome.attempts) < run.clients
            else []
        ),
        "CPU while connecting (user + system, /proc and getrusage): " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in outcome.connect_cpu.items()),
        f"transactions (one INSERT each, autocommit, all started at once with every client open): {len(outcome.transactions)} committed "
        f"in {outcome.transaction_seconds:.1f} s; latency {_spread(outcome.transactions)}; rows on the leader {outcome.rows}",
        *(f"  transaction failures: {count} × {error}" for error, count in outcome.transaction_errors.most_common(5)),
        f"leader's client backends while all {len(connected)} clients were open (pg_stat_activity): "
        + ", ".join(f"{user} {count}" for user, count in sorted(outcome.backends.items()))
        + f"; max_connections {outcome.max_connections}; the PgBouncers may open at most {len(APPS)} × {per_pgbouncer} = "
        f"{len(APPS) * per_pgbouncer} to the read-write database",
        "PgBouncer open file descriptors and resident memory while all clients were open (/proc/<pid>/fd, VmRSS): "
        + ", ".join(f"{app} {count}, {outcome.resident_mib[app]:.0f} MiB" for app, count in outcome.open_fds.items())
        + f"; all clients closed in {outcome.close_seconds:.1f} s",
        *(
            f"{app} while all clients were open: " + "; ".join(f"{who} {answer}" for who, answer in answers.items())
            for app, answers in outcome.beyond_full.items()
        ),
    ]
    for app, pools in outcome.pools.items():
        servers = {row["user"]: sum(int(row[column]) for column in SERVER_STATES) for row in pools["POOLS"]}
        lines.append(
            f"{app} after the clients closed (SHOW DATABASES/POOLS/STATS, database {DATABASE_NAME}): server connections in its pools "
            + ", ".join(f"{user} {count}" for user, count in sorted(servers.items()))
            + f"; current_connections {_column(pools, 'DATABASES', 'current_connections')} of max_connections "
            f"{_column(pools, 'DATABASES', 'max_connections')}; transactions counted {_column(pools, 'STATS', 'total_xact_count')} "
            "(with the start's readiness query), "
            f"total wait for a server {_column(pools, 'STATS', 'total_wait_time') / 1e6:.1f} s"
        )
    return lines


def main() -> int:
    """Starts the cluster, runs the clients and reports the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=MIN_POOLED_CLIENTS)
    parser.add_argument("--connecting", type=int, default=100, help="connection handshakes in flight at once")
    args = parser.parse_args()
    clients: int = args.clients
    own_limit = _raise_own_open_files(clients)
    with benchmark_cluster(STARTUP_BUDGET + int(run_seconds(clients))) as smoke:
        run = PoolerRun(smoke, clients, args.connecting)
        outcome = smoke.client.call(run.run_to_end, timeout=run_seconds(clients))
        lines = _report(smoke, run, outcome, own_limit)
    print("\n".join(lines))
    served = min(len(outcome.connected), len(outcome.transactions))
    print(f"clients served (connected and committed): {served} of {clients} (target: {clients})")
    return 0 if served >= clients else 1


if __name__ == "__main__":
    sys.exit(main())
