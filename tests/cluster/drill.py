"""The primary-node-failure drill of design §5.3 on the running cluster.

A writer commits rows continuously through HAProxy's primary route, as an application does. The
leader's host crashes (every process in its namespace SIGKILLed), and the drill measures what the
design promises (design §5.3: RTO < 30 s, RPO 0): when Patroni shows a new leader, when a write through
HAProxy is acknowledged again, and whether every acknowledged row is on the new leader. The crashed
member is then restarted from its same rendered files and must rejoin as a streaming replica.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from dpc.cluster import Port
from engine.netns import NamespaceClient
from tests.cluster.client import CONNECT_TIMEOUT, wait_until
from tests.cluster.hosts import CLIENT, WORKERS
from tests.cluster.smoke import Smoke, formed

RECOVERY_TIMEOUT = 90.0
"""Seconds the drill waits for each recovery step (new leader, writes, rejoin) before failing:
a generous bound, three times the RTO of design §5.3; the benchmark measures the real figures."""

ROWS_BEFORE_CRASH = 200
"""Acknowledged rows before the crash, so that the writer is known to be in full flow."""
ROWS_AFTER_RECOVERY = 20
"""Acknowledged rows after the first one that follows the crash, before the writer stops."""

WRITE_PAUSE = 0.005
"""Seconds between commits: continuous writes without saturating the machine's CPUs."""
RECONNECT_PAUSE = 0.1
"""Seconds between the writer's connection attempts while no primary answers."""
POLL_INTERVAL = 0.2
"""Seconds between looks at Patroni's /cluster: the resolution of the time to a new leader."""

SYNC_WAIT_CANCELLED = "canceling wait for synchronous replication"
"""PostgreSQL's warning when a commit stops waiting for the synchronous standby (e.g. at
statement_timeout): the row is committed locally only, so it does not count as acknowledged."""

WRITER_OPTIONS = {"keepalives_idle": 1, "keepalives_interval": 1, "keepalives_count": 3, "tcp_user_timeout": 3000}
"""A dead peer is noticed within seconds, so that no write waits on a silent connection."""


@dataclass(frozen=True)
class Ack:
    """A committed row as the writer saw it acknowledged."""

    row: int
    sent_at: float
    """When the row's statement was sent (time.monotonic())."""
    at: float


@dataclass
class Writer:
    """Commits one row per statement through a connection string, reconnecting after any error,
    on a thread of its own in the client namespace, until stopped."""

    namespace: str
    conninfo: dict[str, str | int]
    table: str
    pause: float = WRITE_PAUSE
    """Seconds between commits."""
    acknowledged: list[Ack] = field(default_factory=list[Ack])
    in_doubt: list[int] = field(default_factory=list[int])
    """Rows whose commit returned without the synchronous standby's confirmation."""
    errors: list[tuple[float, str]] = field(default_factory=list[tuple[float, str]])
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _sync_wait_cancelled: bool = field(default=False, init=False)

    def run(self) -> None:
        """The writing loop (run in the namespace, returns once stopped)."""
        next_row = 1
        while not self._stop.is_set():
            try:
                with psycopg.connect(**{**self.conninfo, **WRITER_OPTIONS, "connect_timeout": CONNECT_TIMEOUT}, autocommit=True) as connection:  # pyright: ignore[reportArgumentType]
                    connection.add_notice_handler(self._notice)
                    while not self._stop.is_set():
                        row, next_row = next_row, next_row + 1
                        self._sync_wait_cancelled = False
                        sent_at = time.monotonic()
                        connection.execute(f"INSERT INTO {self.table} (id) VALUES (%s)", (row,))  # pyright: ignore[reportArgumentType]
                        if self._sync_wait_cancelled:
                            self.in_doubt.append(row)
                        else:
                            self.acknowledged.append(Ack(row, sent_at, time.monotonic()))
                        self._stop.wait(self.pause)
            except psycopg.Error as error:
                self.errors.append((time.monotonic(), str(error).strip()))
                self._stop.wait(RECONNECT_PAUSE)

    def _notice(self, diagnostic: psycopg.errors.Diagnostic) -> None:
        if SYNC_WAIT_CANCELLED in (diagnostic.message_primary or ""):
            self._sync_wait_cancelled = True

    def stop(self) -> None:
        self._stop.set()

    def acknowledged_after(self, moment: float) -> list[Ack]:
        """Rows whose statement was sent after `moment` and acknowledged, whatever connection carried
        it: a connection open before a fault that survives it (a partition healed) counts as soon as
        it commits again, where selecting by connection time would wait for a reconnection that
        never comes."""
        return [ack for ack in list(self.acknowledged) if ack.sent_at > moment]


@dataclass(frozen=True)
class DrillResult:
    """What one drill measured; times in seconds from the crash."""

    crashed: str
    """The member that led and crashed."""
    processes_killed: int
    new_leader: str
    survivors: tuple[str, ...]
    to_new_leader: float
    """Until Patroni's /cluster, on a surviving member, shows another member leading and running."""
    to_first_write: float
    """Until the first commit acknowledged through HAProxy of a statement sent after the crash."""
    acknowledged_before_crash: int
    present_before_crash: int
    """Of the rows acknowledged before the crash, how many the new leader holds."""
    acknowledged: int
    missing: tuple[int, ...]
    """Acknowledged rows (before or after the crash) that the new leader does not hold."""
    in_doubt: int
    writer_errors: int
    rejoin: str
    """How the crashed member came back: "pg_rewind", "reinitialised" or "followed" (no rewind needed)."""
    to_rejoin: float
    """From its restart until the cluster is again a leader and two streaming replicas, one synchronous."""
    members: tuple[dict[str, Any], ...]
    """Patroni's members after the rejoin."""
    on_rejoined: int
    """Acknowledged rows the rejoined member holds once it has caught up."""


def _new_leader(smoke: Smoke, survivors: tuple[str, ...], crashed: str) -> str | None:
    """A running leader other than the crashed member, as any surviving worker's API shows it."""
    for worker in survivors:
        try:
            members = smoke.members(worker)
        except OSError:
            continue
        for member in members:
            if member["role"] == "leader" and member["state"] == "running" and member["name"] != crashed:
                return member["name"]
    return None


def _rows_held(smoke: Smoke, worker: str, table: str, rows: set[int]) -> int:
    """How many of `rows` the worker's PostgreSQL holds."""
    ((held,),) = smoke.sql(smoke.direct(worker), f"SELECT count(*) FROM {table} WHERE id = ANY(%s)", (sorted(rows),))
    return held


def _rejoin_method(patroni_log: str) -> str:
    if "running pg_rewind from" in patroni_log:
        return "pg_rewind"
    if "reinitializing due to diverged timelines" in patroni_log:
        return "reinitialised"
    return "followed"


def run_drill(smoke: Smoke) -> DrillResult:
    """Crash the current leader under continuous writes, measure the recovery, restart the crashed
    member and wait until it has rejoined. Raises TimeoutError naming the step that did not happen."""
    cluster = smoke.cluster
    wait_until("a formed cluster before the crash", lambda: formed(smoke), timeout=RECOVERY_TIMEOUT, interval=1)
    crashed = smoke.leader()["name"]
    crashed_worker = cluster.worker(crashed)
    survivors = tuple(worker for worker in WORKERS if worker != crashed_worker)
    table = f"drill_{secrets.token_hex(4)}"
    primary = smoke.through_haproxy(Port.HAPROXY_PRIMARY)
    smoke.sql(primary, f"CREATE TABLE {table} (id bigint PRIMARY KEY)")
    writer = Writer(cluster.network.namespace(CLIENT), primary, table)
    writer_client = NamespaceClient(writer.namespace)
    try:
        writing = writer_client.submit(writer.run)
        wait_until("the writer in full flow", lambda: len(writer.acknowledged) >= ROWS_BEFORE_CRASH or None, timeout=RECOVERY_TIMEOUT)
        crashed_at = time.monotonic()
        processes_killed = cluster.network.crash(crashed_worker)
        new_leader = wait_until(
            "Patroni: a new leader among the survivors", lambda: _new_leader(smoke, survivors, crashed), timeout=RECOVERY_TIMEOUT, interval=POLL_INTERVAL
        )
        to_new_leader = time.monotonic() - crashed_at
        first = wait_until("a write through HAProxy after the crash", lambda: writer.acknowledged_after(crashed_at)[:1] or None, timeout=RECOVERY_TIMEOUT)
        wait_until("more writes after the first", lambda: len(writer.acknowledged_after(crashed_at)) > ROWS_AFTER_RECOVERY or None, timeout=RECOVERY_TIMEOUT)
    finally:
        writer.stop()
        writer_client.close()
    writing.result(timeout=RECOVERY_TIMEOUT)
    acknowledged = {ack.row for ack in writer.acknowledged}
    before_crash = {ack.row for ack in writer.acknowledged if ack.at < crashed_at}
    present = {row for (row,) in smoke.sql(smoke.direct(cluster.worker(new_leader)), f"SELECT id FROM {table}")}
    log = cluster.log(crashed_worker, "patroni")
    log_offset = log.stat().st_size
    restarted_at = time.monotonic()
    cluster.start_patroni_on(crashed_worker)
    members = wait_until(
        "the crashed member back: a leader and two streaming replicas, one synchronous",
        lambda: formed(smoke, survivors[0]),
        timeout=RECOVERY_TIMEOUT,
        interval=POLL_INTERVAL,
    )
    to_rejoin = time.monotonic() - restarted_at
    with log.open(errors="replace") as patroni_output:
        patroni_output.seek(log_offset)
        rejoin = _rejoin_method(patroni_output.read())
    ((leader_lsn,),) = smoke.sql(smoke.direct(cluster.worker(new_leader)), "SELECT pg_current_wal_lsn()::text")
    wait_until(
        "the rejoined member replaying up to the leader's WAL position",
        lambda: smoke.sql(smoke.direct(crashed_worker), "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (leader_lsn,)) == [(True,)] or None,
        timeout=RECOVERY_TIMEOUT,
    )
    on_rejoined = _rows_held(smoke, crashed_worker, table, acknowledged)
    smoke.sql(smoke.through_haproxy(Port.HAPROXY_PRIMARY), f"DROP TABLE {table}")
    return DrillResult(
        crashed=crashed,
        processes_killed=processes_killed,
        new_leader=new_leader,
        survivors=tuple(cluster.member(worker).name for worker in survivors),
        to_new_leader=to_new_leader,
        to_first_write=first[0].at - crashed_at,
        acknowledged_before_crash=len(before_crash),
        present_before_crash=len(before_crash & present),
        acknowledged=len(acknowledged),
        missing=tuple(sorted(acknowledged - present)),
        in_doubt=len(writer.in_doubt),
        writer_errors=len(writer.errors),
        rejoin=rejoin,
        to_rejoin=to_rejoin,
        members=tuple(members),
        on_rejoined=on_rejoined,
    )
