"""The client path's throughput beside the direct one: pgbench TPC-B on the smoke run's cluster
(issue 14's goal: PgBouncer → HAProxy → leader at least 0.8× the leader's direct TPS).

Usage (as root, from the repository root):
    .venv/bin/python -m benchmarks.client_path [--clients 8] [--seconds 20] [--runs 3] [--scale 8] [--threads 2]
        [--connect] [--placement shared|tiers]

Starts the smoke run's cluster once (tests/cluster/lifecycle.py), loads pgbench's TPC-B tables
(`pgbench -i`, scale `--scale`, straight on the leader as the superuser) and then runs Debian's
pgbench (postgresql-15's) inside the client namespace against three routes, in turn, `--runs`
rounds of (a, b, c), so that any drift of the machine (other work on the shared CPUs, the tables
and WAL growing) hits every route alike:

- (a) direct: the leader's PostgreSQL, as if the application could reach it;
- (b) HAProxy: its primary route (TCP passthrough to the leader);
- (c) pooled: PgBouncer → HAProxy → leader, through both PgBouncers at once (one pgbench per app
  host with half the clients each: Debian's libpq 15 has no load_balance_hosts).

Every route is taken as the application takes it: app_user with SCRAM, over TLS 1.3 (the route's
own certificate verified: verify-ca where TLS ends at the Patroni member, verify-full against the
`pgbouncer` name for PgBouncer, which itself speaks TLS to PostgreSQL through HAProxy), the same
clients, threads, duration and scale, pgbench's simple query protocol (what transaction pooling
accepts). Before each run the superuser resets the tables as pgbench itself would
(VACUUM of branches and tellers, TRUNCATE of history); pgbench runs with `-n`, since app_user may
not vacuum. Clients hold their connection for the run (a pooled application's steady state);
`--connect` opens a new one per transaction instead (pgbench -C: a TLS handshake and SCRAM each).

For each run it prints TPS (pgbench's figure: without the initial connections, or with -C including
each one), average
latency, failed transactions, and where the CPU went: per transaction, the CPU time (user +
system, from /proc/<pid>/stat of every process of that program in its namespace, children reaped
included) of PostgreSQL on the leader and on the replicas, HAProxy, the PgBouncers and pgbench,
and how busy the machine's CPUs were (/proc/stat, everyone's work included). Then the medians and
the ratios b/a and c/a, per round and overall, beside the ratios the CPU per transaction
predicts. Where every process shares the machine's CPUs and they are saturated (the namespace
cluster on 2 CPUs), throughput is the inverse of the CPU per transaction, so the proxies' CPU is
taken from PostgreSQL's; `--placement tiers` pins PostgreSQL to the first CPU and pgbench and the
proxies to the second, as production puts them on different hosts. Exits 1 if any transaction
failed or a route committed none; the ratio itself is a figure, not a verdict.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dpc.cluster import DATABASE_NAME, Port, User
from tests.cluster.hosts import APPS, CLIENT, HAPROXY_HOST, WORKERS
from tests.cluster.lifecycle import benchmark_cluster
from tests.cluster.smoke import Smoke

STARTUP_BUDGET = 180
"""Seconds the watchdog allows for the cluster's start, loading the tables and the report."""
RUN_OVERHEAD = 30
"""Seconds each run may take beyond its duration: the reset, the connections, pgbench's end."""
INIT_TIMEOUT = 120
"""Seconds `pgbench -i` may take (scale 8 loads 800 000 accounts, synchronously replicated)."""
PGBENCH_GRACE = 30
"""Seconds a pgbench process may take beyond its duration before it is killed."""

DATABASE_CPUS = frozenset({0})
PATH_CPUS = frozenset({1})
"""`--placement tiers`: PostgreSQL (all three members) on the first CPU, pgbench, HAProxy and the
PgBouncers on the second, as production puts them on different hosts (workers; app nodes and
managers), so that the proxies' CPU is not taken from PostgreSQL's. Patroni, etcd and everything
else on the machine stay on both."""

PASSFILE = "pgpass"
"""The client host's libpq password file (in its home, mode 0600): no password on a command line."""


def _quoted(value: str) -> str:
    """A libpq connection string value taken literally: single-quoted, backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _passfile_field(value: str) -> str:
    """A field of a libpq password file: backslash and colon escaped."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def conninfo_string(settings: Mapping[str, str | int]) -> str:
    """A libpq connection string for pgbench, every value quoted."""
    return " ".join(f"{name}={_quoted(str(value))}" for name, value in settings.items())


@dataclass(frozen=True)
class Route:
    """One way to the leader: the connection strings of the pgbench processes run together."""

    name: str
    description: str
    targets: tuple[dict[str, str | int], ...]


@dataclass(frozen=True)
class Pgbench:
    """What one pgbench process reported."""

    tps: float
    """Transactions per second: excluding the initial connections, or with -C including each one."""
    processed: int
    failed: int
    latency_ms: float
    connection_ms: float
    """Time to open the clients' connections (TLS, SCRAM): in all at the start, or with -C per connection."""
    clients: int


_PATTERNS = {
    "tps": r"^tps = ([\d.]+) \((?:without initial connection time|including reconnection times)\)$",
    "processed": r"^number of transactions actually processed: (\d+)",
    "failed": r"^number of failed transactions: (\d+)",
    "latency_ms": r"^latency average = ([\d.]+) ms$",
    "connection_ms": r"^(?:initial|average) connection time = ([\d.]+) ms$",
}


def parse_pgbench(output: str, clients: int) -> Pgbench:
    """The summary pgbench printed; an output without one of its lines (pgbench aborted) is an error that quotes it."""
    found: dict[str, str] = {}
    for name, pattern in _PATTERNS.items():
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"pgbench printed no `{pattern}`:\n{output[-3000:]}")
        found[name] = match.group(1)
    return Pgbench(
        tps=float(found["tps"]),
        processed=int(found["processed"]),
        failed=int(found["failed"]),
        latency_ms=float(found["latency_ms"]),
        connection_ms=float(found["connection_ms"]),
        clients=clients,
    )


@dataclass(frozen=True)
class Combined:
    """The pgbench processes of one run, together."""

    parts: tuple[Pgbench, ...]

    @property
    def tps(self) -> float:
        """Transactions per second of all processes together."""
        return sum(part.tps for part in self.parts)

    @property
    def processed(self) -> int:
        """Transactions committed."""
        return sum(part.processed for part in self.parts)

    @property
    def failed(self) -> int:
        """Transactions pgbench counted as failed (PostgreSQL 15's pgbench reports them)."""
        return sum(part.failed for part in self.parts)

    @property
    def latency_ms(self) -> float:
        """The average over every transaction, each process's weighted by its count."""
        return sum(part.latency_ms * part.processed for part in self.parts) / max(1, self.processed)

    @property
    def connection_ms(self) -> float:
        """The slowest process's connection time (see Pgbench.connection_ms)."""
        return max(part.connection_ms for part in self.parts)


class ClientSide:
    """pgbench on the client host and the routes it takes, for the benchmark and the cluster test."""

    def __init__(self, smoke: Smoke, pgbench_cpus: frozenset[int] | None = None) -> None:
        self.smoke = smoke
        self.pgbench_cpus = pgbench_cpus
        """The CPUs pgbench may run on (taskset); any, if None."""
        cluster = smoke.cluster
        self.home = cluster.hosts[CLIENT].root
        self.passfile = self.home / PASSFILE
        lines = [
            f"*:*:*:{_passfile_field(user.value)}:{_passfile_field(cluster.values[secret])}"
            for user, secret in ((User.APP, "app_user_password"), (User.SUPERUSER, "postgres_superuser_password"))
        ]
        self.passfile.write_text("\n".join(lines) + "\n")
        self.passfile.chmod(0o600)
        self.pgbench = f"{cluster.layout.paths.postgres_bin}/pgbench"

    def _settings(self, user: User, host: str, port: int, sslmode: str, hostaddr: str | None = None) -> dict[str, str | int]:
        return {
            "host": host,
            **({"hostaddr": hostaddr} if hostaddr is not None else {}),
            "port": port,
            "dbname": DATABASE_NAME,
            "user": user.value,
            "sslmode": sslmode,
            "sslrootcert": str(self.smoke.cluster.ca_file),
            "ssl_min_protocol_version": "TLSv1.3",
            "passfile": str(self.passfile),
        }

    def leader_worker(self) -> str:
        """The worker whose member Patroni calls leader now."""
        return self.smoke.cluster.worker(self.smoke.leader()["name"])

    def direct(self, user: User = User.APP) -> Route:
        """(a) The leader's PostgreSQL, bypassing every proxy."""
        worker = self.leader_worker()
        target = self._settings(user, self.smoke.cluster.address(worker), Port.POSTGRES, "verify-ca")
        return Route("direct", f"the leader's PostgreSQL ({worker}) straight", (target,))

    def haproxy(self) -> Route:
        """(b) HAProxy's primary route."""
        target = self._settings(User.APP, self.smoke.cluster.address(HAPROXY_HOST), Port.HAPROXY_PRIMARY, "verify-ca")
        return Route("haproxy", "HAProxy's primary route → leader", (target,))

    def pooled(self) -> Route:
        """(c) Each PgBouncer's read-write database, by the name its certificate carries."""
        targets = tuple(self._settings(User.APP, "pgbouncer", Port.PGBOUNCER, "verify-full", self.smoke.cluster.address(app)) for app in APPS)
        return Route("pooled", f"PgBouncer ({' and '.join(APPS)}) → HAProxy → leader", targets)

    def initialize(self, scale: int) -> None:
        """The TPC-B tables at `scale`, loaded straight on the leader by the superuser (app_user
        may not create tables; the default privileges give it the DML TPC-B needs).
        """
        (target,) = self.direct(User.SUPERUSER).targets
        result = self.smoke.cluster.network.run(
            CLIENT, "root", [self.pgbench, "-i", "-q", "-s", str(scale), conninfo_string(target)], home=self.home, timeout=INIT_TIMEOUT
        )
        if result.returncode != 0:
            raise RuntimeError(f"pgbench -i failed:\n{result.stdout}\n{result.stderr}")

    def reset(self) -> None:
        """What pgbench does before a run (its `-n` skips it: app_user may not vacuum)."""
        (superuser,) = self.direct(User.SUPERUSER).targets
        for statement in ("VACUUM pgbench_branches", "VACUUM pgbench_tellers", "TRUNCATE pgbench_history"):
            self.smoke.sql(superuser, statement)

    def run(self, route: Route, clients: int, seconds: int, *, threads: int, connect: bool = False) -> Combined:
        """One pgbench per target at once, the clients and threads split between them."""
        share, threads_each = clients // len(route.targets), max(1, threads // len(route.targets))
        if share < 1:
            raise ValueError(f"{clients} clients cannot be split across {len(route.targets)} targets")
        processes: list[subprocess.Popen[str]] = []
        try:
            for target in route.targets:
                argv = [self.pgbench, "-n", "-c", str(share), "-j", str(min(share, threads_each)), "-T", str(seconds), *(["-C"] if connect else [])]
                pinned = ["taskset", "-c", ",".join(map(str, sorted(self.pgbench_cpus)))] if self.pgbench_cpus else []
                command = self.smoke.cluster.network.command(CLIENT, "root", [*pinned, *argv, conninfo_string(target)], home=self.home)
                processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.home))
            outputs = [process.communicate(timeout=seconds + PGBENCH_GRACE)[0] for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        return Combined(tuple(parse_pgbench(output, share) for output in outputs))


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process and of its children it has reaped, from
    /proc/<pid>/stat (fields 14-17, clock ticks); 0 for a process already gone.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _pin(pid: int, cpus: frozenset[int]) -> None:
    """Every thread of a process onto `cpus` (its children forked later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


def place_tiers(smoke: Smoke) -> None:
    """PostgreSQL's processes on DATABASE_CPUS, HAProxy's and the PgBouncers' on PATH_CPUS."""
    network = smoke.cluster.network
    for pid in [pid for worker in WORKERS for pid in network.processes(worker, "postgres")]:
        _pin(pid, DATABASE_CPUS)
    for pid in [*network.processes(HAPROXY_HOST, "haproxy"), *(pid for app in APPS for pid in network.processes(app, "pgbouncer"))]:
        _pin(pid, PATH_CPUS)


def _machine_busy() -> tuple[float, float]:
    """The machine's busy and total CPU seconds since boot, all CPUs, from /proc/stat."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), sum(ticks) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSample:
    """CPU seconds so far per component of the path and of the whole machine."""

    components: dict[str, float]
    machine_busy: float
    machine_total: float


def cpu_components(smoke: Smoke, leader: str) -> dict[str, Callable[[], float]]:
    """How to read each component's CPU seconds so far; pgbench's are this process's reaped children."""
    network = smoke.cluster.network

    def programs(hosts: Sequence[str], program: str) -> Callable[[], float]:
        return lambda: sum(process_cpu_seconds(pid) for host in hosts for pid in network.processes(host, program))

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    return {
        "postgres (leader)": programs([leader], "postgres"),
        "postgres (replicas)": programs([w for w in WORKERS if w != leader], "postgres"),
        "haproxy": programs([HAPROXY_HOST], "haproxy"),
        "pgbouncer": programs(APPS, "pgbouncer"),
        "pgbench": children,
    }


def sample(readers: Mapping[str, Callable[[], float]]) -> CpuSample:
    """Every component's CPU seconds and the machine's, now."""
    busy, total = _machine_busy()
    return CpuSample({name: read() for name, read in readers.items()}, busy, total)


@dataclass
class Measured:
    """One run of one route."""

    route: Route
    round: int
    result: Combined
    cpu: dict[str, float] = field(default_factory=dict[str, float])
    """CPU seconds per component during the run."""
    machine_busy: float = 0.0
    """Busy CPU seconds of the whole machine during the run."""
    wall: float = 0.0

    @property
    def cpu_per_transaction(self) -> float:
        """CPU seconds of every component of the path per committed transaction."""
        return sum(self.cpu.values()) / max(1, self.result.processed)

    def line(self) -> str:
        """The run's figures on one line; CPU per committed transaction, so routes compare at any TPS."""
        per = self.result.processed or 1
        cpu = ", ".join(f"{name} {seconds / per * 1e6:.0f}" for name, seconds in self.cpu.items())
        return (
            f"round {self.round} {self.route.name:8} {self.result.tps:8.1f} TPS, latency {self.result.latency_ms:6.2f} ms, "
            f"{self.result.processed} committed, {self.result.failed} failed, connections {self.result.connection_ms:.0f} ms; "
            f"CPU µs per transaction: {cpu}, all components {self.cpu_per_transaction * 1e6:.0f}; "
            f"machine busy {self.machine_busy / self.wall:.2f} of {os.cpu_count()} CPUs"
        )


def measure(side: ClientSide, routes: Sequence[Route], *, clients: int, seconds: int, runs: int, threads: int, connect: bool) -> list[Measured]:
    """`runs` rounds of every route in turn, each run's CPU sampled around it."""
    readers = cpu_components(side.smoke, side.leader_worker())
    measured: list[Measured] = []
    for round_ in range(1, runs + 1):
        for route in routes:
            side.reset()
            before, start = sample(readers), time.monotonic()
            result = side.run(route, clients, seconds, threads=threads, connect=connect)
            after, wall = sample(readers), time.monotonic() - start
            cpu = {name: after.components[name] - before.components[name] for name in readers}
            run = Measured(route, round_, result, cpu, after.machine_busy - before.machine_busy, wall)
            print(run.line(), flush=True)
            measured.append(run)
    return measured


def summary(measured: Sequence[Measured], baseline: str) -> list[str]:
    """Median TPS, latency and CPU per transaction per route, and each route's TPS over the
    baseline's, per round and overall, beside the ratio its CPU per transaction predicts where the
    CPUs are saturated (baseline's CPU per transaction over the route's): the two agree when the
    CPU the route adds is what costs the throughput.
    """
    names = list(dict.fromkeys(run.route.name for run in measured))
    by_route = {name: [run for run in measured if run.route.name == name] for name in names}
    base = {run.round: run.result.tps for run in by_route[baseline]}
    base_cpu = statistics.median(run.cpu_per_transaction for run in by_route[baseline])
    lines: list[str] = []
    for name, runs in by_route.items():
        tps = [run.result.tps for run in runs]
        latency = statistics.median(run.result.latency_ms for run in runs)
        cpu = statistics.median(run.cpu_per_transaction for run in runs)
        line = (
            f"{name:8} median {statistics.median(tps):.1f} TPS (runs {', '.join(f'{t:.1f}' for t in tps)}), median latency {latency:.2f} ms, "
            f"median CPU per transaction {cpu * 1e6:.0f} µs"
        )
        if name != baseline:
            ratios = [run.result.tps / base[run.round] for run in runs if base.get(run.round)]
            line += (
                f"; ratio to {baseline}: median {statistics.median(ratios):.2f} (per round {', '.join(f'{r:.2f}' for r in ratios)}), "
                f"predicted by CPU per transaction {base_cpu / cpu:.2f}"
            )
        lines.append(line)
    return lines


def main() -> int:
    """Starts the cluster, loads the tables, runs the rounds and prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="pgbench clients per run (split across the PgBouncers for the pooled route)")
    parser.add_argument("--seconds", type=int, default=20, help="duration of each run")
    parser.add_argument("--runs", type=int, default=3, help="rounds of (direct, haproxy, pooled)")
    parser.add_argument("--scale", type=int, default=8, help="pgbench scale factor (branches); at least the clients, so few of them wait on one branch row")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="pgbench threads per run, in all")
    parser.add_argument("--connect", action="store_true", help="a new connection per transaction (pgbench -C)")
    parser.add_argument(
        "--placement", choices=("shared", "tiers"), default="shared",
        help="shared: every process on every CPU; tiers: PostgreSQL on CPU 0, pgbench and the proxies on CPU 1",
    )  # fmt: skip
    args = parser.parse_args()
    tiers = args.placement == "tiers"
    if tiers and (os.cpu_count() or 1) < 2:
        parser.error("--placement tiers needs 2 CPUs")
    budget = STARTUP_BUDGET + INIT_TIMEOUT + args.runs * 3 * (args.seconds + RUN_OVERHEAD)
    with benchmark_cluster(budget) as smoke:
        side = ClientSide(smoke, PATH_CPUS if tiers else None)
        side.initialize(args.scale)
        if tiers:
            place_tiers(smoke)
        routes = (side.direct(), side.haproxy(), side.pooled())
        print(
            f"pgbench TPC-B (simple protocol, -n), scale {args.scale}, {args.clients} clients and {args.threads} threads per run "
            f"(the pooled route: {args.clients // len(APPS)} clients per PgBouncer, one pgbench each), {args.seconds} s per run, "
            f"{args.runs} rounds interleaved, {'a new connection per transaction (-C)' if args.connect else 'connections held for the run'}; "
            f"app_user over TLS 1.3 on every route; {os.cpu_count()} CPUs, "
            + (
                f"PostgreSQL pinned to CPU {sorted(DATABASE_CPUS)}, pgbench, HAProxy and PgBouncer to CPU {sorted(PATH_CPUS)}"
                if tiers
                else "shared by the whole cluster and pgbench"
            ),
            flush=True,
        )
        for route in routes:
            print(f"  {route.name}: {route.description}", flush=True)
        measured = measure(side, routes, clients=args.clients, seconds=args.seconds, runs=args.runs, threads=args.threads, connect=args.connect)
    print("\n".join(summary(measured, "direct")))
    failed = sum(run.result.failed for run in measured)
    empty = [run.route.name for run in measured if run.result.processed == 0]
    print(f"failed transactions: {failed}; runs that committed nothing: {empty or 'none'}")
    return 1 if failed or empty else 0


if __name__ == "__main__":
    sys.exit(main())
