"""The drill lab: each failure design §5.3 promises to survive, done to the running namespace
cluster under continuous writes, and measured the same way every time.

Every drill runs the same frame (`run_drill`):

- writers commit one row per statement, each on its own thread in the client namespace, through
  the paths applications use: HAProxy's primary route (superuser, TLS) and the two PgBouncers
  (app_user, TLS, libpq trying the second PgBouncer when the first is gone, as Swarm's DNS gives
  both). Every attempt is recorded with its outcome: acknowledged, refused (the server said no,
  or no connection), or in doubt (sent, and then the connection died, or the commit stopped
  waiting for the synchronous standby: it may exist on one member only);
- a split-brain prober runs inside the old leader's own host, connecting to its PostgreSQL at the
  host's own address (what a cut-off host can still reach) and writing there whenever it answers
  as primary: no such write may be acknowledged after the fault;
- the fault, then the recovery (restart, heal, thaw) once the drill's effect was seen;
- then the cluster must be whole again (a leader and two streaming replicas, one synchronous;
  etcd healthy; both PgBouncers answering), and every acknowledged row on every member.

What each drill measures (`DrillReport`): time to a new leader, per path the first write
acknowledged after the fault and the longest gap between acknowledgements, the old primary's
acknowledged writes after the fault and the last moment it still answered as primary, rows lost
and in doubt, and the time until the cluster is whole again.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from dpc.cluster import Port, User
from dpc.render.postgres import DCS_TIMING, PATRONI_API_USER
from engine.netns import NamespaceClient
from tests.cluster.client import CONNECT_TIMEOUT, api_post, wait_until
from tests.cluster.hosts import APPS, MANAGERS, WORKERS, SmokeCluster
from tests.cluster.smoke import SYNCHRONOUS_ROLES, Smoke, etcd_health, formed

RECOVERY_TIMEOUT = 90.0
"""Seconds the drill waits for each recovery step (new leader, writes, the cluster whole) before
failing: a generous bound, three times the RTO of design §5.3; the benchmark measures the real figures."""

ROWS_BEFORE_FAULT = 100
"""Acknowledged rows on each path before the fault, so that the writers are known to be in full flow."""
ROWS_AFTER_RECOVERY = 20
"""Acknowledged rows on each path after the recovery, before the writers stop."""

WRITE_PAUSE = 0.01
"""Seconds between a writer's commits: continuous writes without saturating the machine's CPUs."""
RECONNECT_PAUSE = 0.1
"""Seconds between a writer's connection attempts while nothing answers."""
POLL_INTERVAL = 0.2
"""Seconds between looks at Patroni's /cluster and between probes: the drills' time resolution."""

COMMIT_TIMEOUT = 5.0
"""Seconds a writer waits for its commit before cancelling it, as an application's client timeout
does. statement_timeout cannot bound a commit's wait for the synchronous standby; a cancel can,
and the row is then committed on the primary alone: in doubt, never acknowledged."""
PROBE_COMMIT_TIMEOUT = 1.0
"""The prober's commit timeout: it only needs to know whether the old primary acknowledges."""

HOLD = 10.0
"""Seconds a fault that needs no failover (a replica, an etcd member, a PgBouncer lost) is held
while writes must go on."""
QUORUM_HOLD = float(DCS_TIMING["ttl"] + DCS_TIMING["loop_wait"] + 5)
"""Seconds etcd's quorum stays lost: longer than the leader key lives, so that without failsafe
mode the leader would have demoted (design §5.3)."""

SYNC_WAIT_CANCELLED = "canceling wait for synchronous replication"
"""PostgreSQL's warning when a commit stops waiting for the synchronous standby (a cancel, a
termination): the row is committed locally only, so it does not count as acknowledged."""

WRITER_OPTIONS = {"keepalives_idle": 1, "keepalives_interval": 1, "keepalives_count": 3, "tcp_user_timeout": 3000}
"""A dead peer is noticed within seconds, so that no write waits on a silent connection. Writers
never prepare statements on the server (psycopg's `prepare_threshold=None`), as no client of
PgBouncer's transaction pooling may: its next transaction can run on another server connection,
where the statement does not exist, or does already."""

CONNECTION_LOST_PREFIXES = ("08", "57P")
"""SQLSTATEs of a connection lost (class 08) or a server shutting down or crashing (57P…): a
statement sent before such an error may have committed. A cancelled statement (57014) has not:
a cancel reaching a commit that waits for the standby is a warning, not this error."""

ERRORS_KEPT = 5
ERROR_LENGTH = 120
"""A path's report keeps its five most frequent errors after the fault, each cut to 120 characters."""

ROW_RANGE = 1_000_000_000
"""Each writer numbers its rows from its own multiple of this, so one table holds every path's rows."""

ACKNOWLEDGED = "acknowledged"
REFUSED = "refused"
IN_DOUBT = "in doubt"


@dataclass(frozen=True)
class Attempt:
    """One row a writer tried to commit (row None: no connection, nothing sent)."""

    row: int | None
    sent_at: float
    """When the statement was sent, or the connection attempted (time.monotonic())."""
    at: float
    """When the outcome was known."""
    outcome: str


def _outcome(error: psycopg.Error) -> str:
    """Whether a statement that failed may still have committed."""
    sqlstate = error.sqlstate or ""
    if (isinstance(error, psycopg.OperationalError) and not sqlstate) or sqlstate.startswith(CONNECTION_LOST_PREFIXES):
        return IN_DOUBT
    return REFUSED


def _cancel(connection: psycopg.Connection[Any]) -> None:
    """A client's cancel of its statement; a server that cannot be reached any more leaves the
    statement to the connection's keepalives."""
    with contextlib.suppress(psycopg.Error):
        connection.cancel_safe(timeout=CONNECT_TIMEOUT)


@dataclass
class Writer:
    """Commits one row per statement through a connection string, reconnecting after any error,
    on a thread of its own in a namespace, until stopped; every attempt recorded."""

    namespace: str
    conninfo: dict[str, str | int]
    table: str
    path: str
    """The client path it writes through, as the report names it."""
    first_row: int = 1
    pause: float = WRITE_PAUSE
    commit_timeout: float = COMMIT_TIMEOUT
    attempts: list[Attempt] = field(default_factory=list[Attempt])
    errors: list[tuple[float, str]] = field(default_factory=list[tuple[float, str]])
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _sync_wait_cancelled: bool = field(default=False, init=False)

    def run(self) -> None:
        """The writing loop (run in the namespace, returns once stopped)."""
        next_row = self.first_row
        while not self._stop.is_set():
            tried_at = time.monotonic()
            try:
                connection = psycopg.connect(
                    **{**self.conninfo, **WRITER_OPTIONS, "connect_timeout": CONNECT_TIMEOUT}, autocommit=True, prepare_threshold=None
                )  # pyright: ignore[reportArgumentType]
            except psycopg.Error as error:
                self._record(None, tried_at, REFUSED, error)
                continue
            with connection:
                self.listen(connection)
                while not self._stop.is_set():
                    row, next_row = next_row, next_row + 1
                    if not self.commit(connection, row):
                        break
                    self._stop.wait(self.pause)

    def listen(self, connection: psycopg.Connection[Any]) -> None:
        """Watch the connection's notices for a commit that stopped waiting for the standby."""
        connection.add_notice_handler(self._notice)

    def commit(self, connection: psycopg.Connection[Any], row: int) -> bool:
        """One row, its attempt recorded; whether the connection is still usable."""
        self._sync_wait_cancelled = False
        sent_at = time.monotonic()
        timer = threading.Timer(self.commit_timeout, _cancel, (connection,))
        timer.start()
        try:
            connection.execute(f"INSERT INTO {self.table} (id) VALUES (%s)", (row,))  # pyright: ignore[reportArgumentType]
        except psycopg.Error as error:
            self._record(row, sent_at, IN_DOUBT if self._sync_wait_cancelled else _outcome(error), error)
            return False
        finally:
            timer.cancel()
        self.attempts.append(Attempt(row, sent_at, time.monotonic(), IN_DOUBT if self._sync_wait_cancelled else ACKNOWLEDGED))
        return True

    def _record(self, row: int | None, sent_at: float, outcome: str, error: psycopg.Error) -> None:
        self.attempts.append(Attempt(row, sent_at, time.monotonic(), outcome))
        self.errors.append((time.monotonic(), str(error).strip()))
        self._stop.wait(RECONNECT_PAUSE)

    def _notice(self, diagnostic: psycopg.errors.Diagnostic) -> None:
        if SYNC_WAIT_CANCELLED in (diagnostic.message_primary or ""):
            self._sync_wait_cancelled = True

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def pause_for(self, seconds: float) -> None:
        """Sleep, cut short by `stop`."""
        self._stop.wait(seconds)

    @property
    def acknowledged(self) -> list[Attempt]:
        return [attempt for attempt in list(self.attempts) if attempt.outcome == ACKNOWLEDGED]

    def acknowledged_after(self, moment: float) -> list[Attempt]:
        """Rows whose statement was sent after `moment` and acknowledged, whatever connection carried
        it: a connection open before a fault that survives it (a partition healed) counts as soon as
        it commits again, where selecting by connection time would wait for a reconnection that
        never comes."""
        return [attempt for attempt in self.acknowledged if attempt.sent_at > moment]


@dataclass(frozen=True)
class Probe:
    """What the old leader's PostgreSQL answered, from inside its own host."""

    at: float
    role: str
    """"primary", "replica", or "unreachable"."""
    write: str | None
    """The outcome of the prober's write, when it answered as primary."""


@dataclass
class Prober:
    """The split-brain prober: from inside the old leader's host, every POLL_INTERVAL, a fresh
    connection to its PostgreSQL; whenever it answers as primary, one write there."""

    writer: Writer
    probes: list[Probe] = field(default_factory=list[Probe])

    def run(self) -> None:
        while not self.writer.stopped:
            at = time.monotonic()
            try:
                with psycopg.connect(**{**self.writer.conninfo, "connect_timeout": 2}, autocommit=True) as connection:  # pyright: ignore[reportArgumentType]
                    self.writer.listen(connection)
                    ((in_recovery,),) = connection.execute("SELECT pg_is_in_recovery()").fetchall()
                    if in_recovery:
                        self.probes.append(Probe(at, "replica", None))
                    else:
                        self.writer.commit(connection, self.writer.first_row + len(self.probes))
                        self.probes.append(Probe(at, "primary", self.writer.attempts[-1].outcome))
            except psycopg.Error:
                self.probes.append(Probe(at, "unreachable", None))
            self.writer.pause_for(POLL_INTERVAL)


@dataclass(frozen=True)
class PathReport:
    """One client path through the drill; times in seconds from the fault."""

    acknowledged: int
    refused: int
    in_doubt: int
    lost: int
    """Acknowledged rows the final leader does not hold."""
    first_write: float | None
    """The first acknowledged commit of a statement sent once the fault had taken effect (its step
    returned): a statement sent while the fault was being made may still have been served before it."""
    longest_gap: float
    """The longest time without an acknowledgement, from shortly before the fault to the end."""
    acknowledged_at: tuple[float, ...]
    """When each commit after the fault was acknowledged (for the timelines)."""
    errors: dict[str, int]
    """What the refusals and doubts said after the fault, the first line of each, by count."""


@dataclass(frozen=True)
class DrillReport:
    """What one drill measured; times in seconds from the fault."""

    drill: str
    leader_before: str
    sync_before: str
    leader_after: str
    to_new_leader: float | None
    """Until Patroni showed a running leader other than the old one (None: it did not change)."""
    recovered_at: float | None
    """When the recovery (restart, heal, thaw) was done; None when the drill has none."""
    to_whole: float
    """Until the cluster was whole again: a leader and two streaming replicas, one synchronous,
    etcd healthy, both PgBouncers answering."""
    paths: dict[str, PathReport]
    old_primary_acknowledged: int
    """Writes the old leader acknowledged to the prober after the fault (after the new leader took
    over, in a planned handover): must be 0 when it lost its leadership."""
    old_primary_in_doubt: int
    old_primary_until: float | None
    """The last probe that found the old leader answering as primary, after the fault."""
    missing_on_members: dict[str, int]
    """Per member, acknowledged rows (of the synchronous paths) it does not hold once caught up."""
    writes_during_fault: dict[str, int]
    """Per path, acknowledgements of statements sent between the drill's hold start and its recovery."""
    details: dict[str, Any]
    """What only this drill measures."""

    def to_json(self) -> dict[str, Any]:
        return {
            **{name: value for name, value in self.__dict__.items() if name != "paths"},
            "paths": {path: report.__dict__ for path, report in self.paths.items()},
        }


@dataclass
class Context:
    """What a drill's steps act on."""

    smoke: Smoke
    leader: str
    sync: str
    writers: dict[str, Writer]
    prober: Prober
    fault_at: float = 0.0
    new_leader: str | None = None
    to_new_leader: float | None = None
    """Seconds from the fault until Patroni showed the new leader."""
    hold_from: float = 0.0
    """Seconds from the fault until the writes that must go on while it lasts are counted."""
    details: dict[str, Any] = field(default_factory=dict[str, Any])
    """What only this drill measures, reported as it is."""

    @property
    def cluster(self) -> SmokeCluster:
        return self.smoke.cluster

    @property
    def leader_host(self) -> str:
        return self.smoke.cluster.worker(self.leader)

    @property
    def sync_host(self) -> str:
        return self.smoke.cluster.worker(self.sync)


Step = Callable[[Context], None]


@dataclass(frozen=True)
class Drill:
    """A fault, what to wait for while it lasts, and how it is undone."""

    name: str
    summary: str
    fault: Step
    hold: Step
    """Waits while the fault lasts (a new leader, writes going on) before the recovery."""
    recover: Step | None
    failover: bool
    """Whether a new leader must take over (else the leader must stay)."""
    planned: bool = False
    """A handover the old leader takes part in (a switchover): it serves writes until the new
    leader takes over, so only its acknowledgements after that are a split brain."""
    extra_writers: Callable[[Context], dict[str, Writer]] | None = None


def _members_seen(smoke: Smoke, other_than: str) -> list[dict[str, Any]]:
    """Patroni's members as the first worker that answers shows them, never asking `other_than`'s
    host: a frozen or cut-off member would hold each look up for a whole timeout."""
    for worker in WORKERS:
        if smoke.cluster.member(worker).name != other_than:
            try:
                return smoke.members(worker)
            except OSError:
                continue
    raise OSError("no worker's Patroni answered")


def _sync_standby(smoke: Smoke, other_than: str = "") -> str | None:
    synchronous = [m["name"] for m in _members_seen(smoke, other_than) if m["role"] in SYNCHRONOUS_ROLES]
    return synchronous[0] if len(synchronous) == 1 else None


def _leader_among(smoke: Smoke, other_than: str) -> str | None:
    """A running leader other than `other_than`."""
    for member in _members_seen(smoke, other_than):
        if member["role"] == "leader" and member["state"] == "running" and member["name"] != other_than:
            return member["name"]
    return None


def _wait_new_leader(context: Context) -> None:
    context.new_leader = wait_until(
        "Patroni: a new leader", lambda: _leader_among(context.smoke, context.leader), timeout=RECOVERY_TIMEOUT, interval=POLL_INTERVAL
    )
    context.to_new_leader = time.monotonic() - context.fault_at


def _wait_writes_after_fault(context: Context) -> None:
    for path, writer in context.writers.items():
        wait_until(f"a write through {path} after the fault", lambda w=writer: w.acknowledged_after(context.fault_at)[:1] or None, timeout=RECOVERY_TIMEOUT)


def _failover_hold(context: Context) -> None:
    _wait_new_leader(context)
    _wait_writes_after_fault(context)


def _hold(seconds: float) -> Step:
    def hold(context: Context) -> None:
        context.hold_from = time.monotonic() - context.fault_at
        time.sleep(seconds)

    return hold


def _crash_leader(context: Context) -> None:
    context.details["processes_killed"] = context.cluster.network.crash(context.leader_host)


def _restart_leader_patroni(context: Context) -> None:
    context.cluster.start_patroni_on(context.leader_host)


def _restart_sync_patroni(context: Context) -> None:
    context.cluster.start_patroni_on(context.sync_host)


def _cut_leader(context: Context) -> None:
    context.cluster.network.cut(context.leader_host)


def _heal_leader(context: Context) -> None:
    context.cluster.network.heal(context.leader_host)


def _partition_hold(context: Context) -> None:
    """A new leader elsewhere, writes going on, and the cut-off primary fenced by its own Patroni
    (no longer answering as primary on its own host) before the cable goes back."""
    _failover_hold(context)
    prober = context.prober
    wait_until(
        "the cut-off primary no longer answering as primary",
        lambda: (prober.probes[-1].role != "primary" and prober.probes[-1].at > context.fault_at) or None,
        timeout=RECOVERY_TIMEOUT,
    )


def _freeze_leader(context: Context) -> None:
    context.details["processes_frozen"] = context.cluster.network.freeze(context.leader_host)


def _thaw_leader(context: Context) -> None:
    context.cluster.network.thaw(context.leader_host)


def _crash_sync(context: Context) -> None:
    context.details["processes_killed"] = context.cluster.network.crash(context.sync_host)


def _replica_hold(context: Context) -> None:
    """Writes go on, the other replica synchronous now."""
    wait_until(
        "Patroni: the other replica synchronous",
        lambda: _sync_standby(context.smoke, other_than=context.sync) not in (None, context.sync) or None,
        timeout=RECOVERY_TIMEOUT,
        interval=POLL_INTERVAL,
    )
    _hold(HOLD)(context)


def _switchover(context: Context) -> None:
    smoke = context.smoke
    url = f"https://{smoke.cluster.address(context.leader_host)}:{Port.PATRONI_API}/switchover"
    credentials = (PATRONI_API_USER, smoke.cluster.values["patroni_api_password"])
    status, answer = smoke.client.call(api_post, url, smoke.cluster.ca_file, {"leader": context.leader, "candidate": context.sync}, credentials, timeout=60)
    if status != 200:
        raise RuntimeError(f"Patroni refused the switchover: {status} {answer}")
    context.details["answered_after"] = time.monotonic() - context.fault_at


def _switchover_hold(context: Context) -> None:
    _failover_hold(context)
    if context.new_leader != context.sync:
        raise RuntimeError(f"the switchover promoted {context.new_leader}, not the candidate {context.sync}")


ETCD_LOST_ONE = MANAGERS[:1]
ETCD_LOST_QUORUM = MANAGERS[1:]


def _stop_etcd(managers: tuple[str, ...]) -> Step:
    def stop(context: Context) -> None:
        for manager in managers:
            context.cluster.network.stop(manager, "etcd")

    return stop


def _start_etcd(managers: tuple[str, ...]) -> Step:
    def start(context: Context) -> None:
        for manager in managers:
            context.cluster.start_etcd_on(manager)

    return start


def _kill_pgbouncer(context: Context) -> None:
    context.details["processes_killed"] = context.cluster.network.kill(APPS[0], "pgbouncer")


def _restart_pgbouncer(context: Context) -> None:
    context.cluster.start_pgbouncer_on(APPS[0])


def _replication_rule(context: Context, action: str) -> None:
    """An iptables rule in the leader's host dropping what its PostgreSQL sends to the replicas'
    hosts: the WAL stream held back, every other path (etcd, Patroni, HAProxy, clients) as it was."""
    cluster = context.cluster
    replicas = ",".join(cluster.address(worker) for worker in WORKERS if worker != context.leader_host)
    rule = ["OUTPUT", "-p", "tcp", "--sport", str(Port.POSTGRES), "-d", replicas, "-j", "DROP"]
    namespace = cluster.network.namespace(context.leader_host)
    subprocess.run(["ip", "netns", "exec", namespace, "iptables", action, *rule], check=True, capture_output=True, timeout=10)


def _hold_back_then_crash(context: Context) -> None:
    """The replicas stop receiving WAL; rows go on being acknowledged to the asynchronous writer
    (committed on the leader alone) while the synchronous writers wait; then the leader's host crashes."""
    _replication_rule(context, "-A")
    held_at = time.monotonic()
    asynchronous = context.writers[ASYNC_PATH]
    wait_until(
        "asynchronous commits while the WAL is held back",
        lambda: len(asynchronous.acknowledged_after(held_at + 1)) >= ROWS_AFTER_RECOVERY or None,
        timeout=RECOVERY_TIMEOUT,
    )
    context.details["held_back_for"] = time.monotonic() - held_at
    context.details["processes_killed"] = context.cluster.network.crash(context.leader_host)


def _release_and_restart(context: Context) -> None:
    _replication_rule(context, "-D")
    _restart_leader_patroni(context)


ASYNC_PATH = "haproxy, synchronous_commit=local"


def _async_writer(context: Context) -> dict[str, Writer]:
    """A writer through HAProxy whose session commits without waiting for a standby: what
    asynchronous replication would acknowledge."""
    smoke = context.smoke
    conninfo = smoke.through_haproxy(Port.HAPROXY_PRIMARY)
    conninfo = {**conninfo, "options": f"{conninfo['options']} -c synchronous_commit=local"}
    base = context.writers["haproxy"]
    return {ASYNC_PATH: Writer(base.namespace, conninfo, base.table, ASYNC_PATH, first_row=3 * ROW_RANGE)}


DRILLS = {
    drill.name: drill
    for drill in (
        Drill(
            "primary-crash", "the leader's host crashes (SIGKILL of every process), then restarts",
            _crash_leader, _failover_hold, _restart_leader_patroni, failover=True,
        ),
        Drill(
            "primary-partition", "the leader's host is cut off the network, then reconnected",
            _cut_leader, _partition_hold, _heal_leader, failover=True,
        ),
        Drill(
            "primary-freeze", "the leader's host freezes (SIGSTOP) past the leader key's ttl, then thaws",
            _freeze_leader, _failover_hold, _thaw_leader, failover=True,
        ),
        Drill(
            "replica-crash", "the synchronous standby's host crashes, then restarts",
            _crash_sync, _replica_hold, _restart_sync_patroni, failover=False,
        ),
        Drill(
            "switchover", "a planned switchover to the synchronous standby (Patroni's REST API)",
            _switchover, _switchover_hold, None, failover=True, planned=True,
        ),
        Drill(
            "etcd-member-loss", "one etcd member stops, then starts again",
            _stop_etcd(ETCD_LOST_ONE), _hold(HOLD), _start_etcd(ETCD_LOST_ONE), failover=False,
        ),
        Drill(
            "etcd-quorum-loss", "two of three etcd members stop past the leader key's ttl, then start again",
            _stop_etcd(ETCD_LOST_QUORUM), _hold(QUORUM_HOLD), _start_etcd(ETCD_LOST_QUORUM), failover=False,
        ),
        Drill(
            "pgbouncer-loss", "one PgBouncer dies (SIGKILL), then restarts",
            _kill_pgbouncer, _hold(HOLD), _restart_pgbouncer, failover=False,
        ),
        Drill(
            "replication-held-back",
            "the leader's WAL stops reaching the replicas, then its host crashes: what asynchronous replication would lose",
            _hold_back_then_crash, _failover_hold, _release_and_restart, failover=True, extra_writers=_async_writer,
        ),
    )
}  # fmt: skip


def whole(smoke: Smoke) -> list[dict[str, Any]] | None:
    """The members once the cluster is whole: formed, every etcd member healthy, both PgBouncers answering."""
    members = formed(smoke)
    if members is None:
        return None
    etcd_health(smoke.cluster)
    for app in APPS:
        smoke.sql(smoke.through_pgbouncer(User.APP, "app_user_password", app=app), "SELECT 1")
    return members


def _writers(smoke: Smoke, table: str) -> dict[str, Writer]:
    client = smoke.cluster.network.namespace("client")
    pooled = smoke.through_pgbouncer(User.APP, "app_user_password")
    pooled = {**pooled, "hostaddr": ",".join(smoke.cluster.address(app) for app in APPS), "host": ",".join("pgbouncer" for _ in APPS)}
    return {
        "haproxy": Writer(client, smoke.through_haproxy(Port.HAPROXY_PRIMARY), table, "haproxy", first_row=ROW_RANGE),
        "pgbouncer": Writer(client, pooled, table, "pgbouncer", first_row=2 * ROW_RANGE),
    }


def _path_report(writer: Writer, fault_at: float, fault_done: float, present: set[int]) -> PathReport:
    attempts = list(writer.attempts)
    acknowledged = [a for a in attempts if a.outcome == ACKNOWLEDGED]
    after = [a for a in acknowledged if a.sent_at > fault_at]
    after_effect = [a for a in after if a.sent_at > fault_done]
    times = [a.at for a in acknowledged if a.at >= fault_at - 1]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    first_lines = [message.splitlines()[0][:ERROR_LENGTH] for at, message in list(writer.errors) if at > fault_at and message]
    return PathReport(
        acknowledged=len(acknowledged),
        refused=sum(a.outcome == REFUSED for a in attempts),
        in_doubt=sum(a.outcome == IN_DOUBT for a in attempts),
        lost=len({a.row for a in acknowledged} - present),
        first_write=round(after_effect[0].at - fault_at, 3) if after_effect else None,
        longest_gap=round(max(gaps, default=0.0), 3),
        acknowledged_at=tuple(round(a.at - fault_at, 3) for a in after),
        errors=dict(Counter(first_lines).most_common(ERRORS_KEPT)),
    )


def _missing_on_members(smoke: Smoke, leader: str, table: str, rows: set[int]) -> dict[str, int]:
    """Per member, once it has replayed up to the leader's WAL position, the rows it lacks."""
    cluster = smoke.cluster
    ((leader_lsn,),) = smoke.sql(smoke.direct(cluster.worker(leader)), "SELECT pg_current_wal_lsn()::text")
    missing: dict[str, int] = {}
    for worker in WORKERS:
        name = cluster.member(worker).name
        if name != leader:
            wait_until(
                f"{name} replaying up to the leader's WAL position",
                lambda w=worker: smoke.sql(smoke.direct(w), "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (leader_lsn,)) == [(True,)] or None,
                timeout=RECOVERY_TIMEOUT,
            )
        ((held,),) = smoke.sql(smoke.direct(worker), f"SELECT count(*) FROM {table} WHERE id = ANY(%s)", (sorted(rows),))
        missing[name] = len(rows) - held
    return missing


def run_drill(smoke: Smoke, drill: Drill) -> DrillReport:
    """One drill on a whole cluster, leaving it whole again. Raises TimeoutError naming the step
    that did not happen."""
    cluster = smoke.cluster
    wait_until("a whole cluster before the fault", lambda: whole(smoke), timeout=RECOVERY_TIMEOUT, interval=1)
    leader = smoke.leader()["name"]
    table = f"drill_{secrets.token_hex(4)}"
    smoke.sql(smoke.through_haproxy(Port.HAPROXY_PRIMARY), f"CREATE TABLE {table} (id bigint PRIMARY KEY)")
    smoke.sql(smoke.through_haproxy(Port.HAPROXY_PRIMARY), f"GRANT SELECT, INSERT ON {table} TO {User.APP.value}")
    sync = wait_until("Patroni: one synchronous standby", lambda: _sync_standby(smoke), timeout=RECOVERY_TIMEOUT)
    leader_host = cluster.worker(leader)
    old_primary = Writer(
        cluster.network.namespace(leader_host), smoke.direct(leader_host), table, "old primary",
        first_row=4 * ROW_RANGE, commit_timeout=PROBE_COMMIT_TIMEOUT,
    )  # fmt: skip
    prober = Prober(old_primary)
    context = Context(smoke, leader, sync, _writers(smoke, table), prober)
    context.writers |= drill.extra_writers(context) if drill.extra_writers else {}
    clients = {path: NamespaceClient(writer.namespace) for path, writer in context.writers.items()}
    prober_client = NamespaceClient(prober.writer.namespace)
    futures = [clients[path].submit(writer.run) for path, writer in context.writers.items()] + [prober_client.submit(prober.run)]
    recovered_at: float | None = None
    try:
        for path, writer in context.writers.items():
            wait_until(f"the {path} writer in full flow", lambda w=writer: len(w.acknowledged) >= ROWS_BEFORE_FAULT or None, timeout=RECOVERY_TIMEOUT)
        context.fault_at = time.monotonic()
        drill.fault(context)
        fault_done = time.monotonic()
        context.details["fault_took"] = fault_done - context.fault_at
        drill.hold(context)
        hold_end = time.monotonic()
        if drill.recover is not None:
            drill.recover(context)
            recovered_at = time.monotonic() - context.fault_at
        recovered = time.monotonic()
        for path, writer in context.writers.items():
            wait_until(
                f"writes through {path} after the recovery",
                lambda w=writer: len(w.acknowledged_after(recovered)) >= ROWS_AFTER_RECOVERY or None,
                timeout=RECOVERY_TIMEOUT,
            )
        members = wait_until("the cluster whole again", lambda: whole(smoke), timeout=RECOVERY_TIMEOUT, interval=POLL_INTERVAL)
        to_whole = time.monotonic() - context.fault_at
    finally:
        for writer in [*context.writers.values(), prober.writer]:
            writer.stop()
        for client in [*clients.values(), prober_client]:
            client.close()
    for future in futures:
        future.result(timeout=RECOVERY_TIMEOUT)
    (leader_after,) = [m["name"] for m in members if m["role"] == "leader"]
    present = {row for (row,) in smoke.sql(smoke.direct(cluster.worker(leader_after)), f"SELECT id FROM {table}")}
    synchronous = [w for path, w in context.writers.items() if path != ASYNC_PATH] + [prober.writer]
    synchronous_rows = {a.row for w in synchronous for a in w.acknowledged if a.row is not None}
    missing = _missing_on_members(smoke, leader_after, table, synchronous_rows)
    smoke.sql(smoke.through_haproxy(Port.HAPROXY_PRIMARY), f"DROP TABLE {table}")
    fault_at = context.fault_at
    hold_from = fault_at + context.hold_from
    split_brain_from = fault_at + (context.to_new_leader or 0.0) if drill.planned else fault_at
    after_fault = [p for p in prober.probes if p.at > fault_at]
    after_handover = [p for p in prober.probes if p.at > split_brain_from]
    details = {name: round(value, 3) if isinstance(value, float) else value for name, value in context.details.items()}
    return DrillReport(
        drill=drill.name,
        leader_before=leader,
        sync_before=context.sync,
        leader_after=leader_after,
        to_new_leader=round(context.to_new_leader, 3) if context.to_new_leader is not None else None,
        recovered_at=round(recovered_at, 3) if recovered_at is not None else None,
        to_whole=round(to_whole, 3),
        paths={path: _path_report(writer, fault_at, fault_done, present) for path, writer in context.writers.items()},
        old_primary_acknowledged=sum(p.write == ACKNOWLEDGED for p in after_handover),
        old_primary_in_doubt=sum(p.write == IN_DOUBT for p in after_fault),
        old_primary_until=round(max(p.at for p in after_fault if p.role == "primary") - fault_at, 3) if any(p.role == "primary" for p in after_fault) else None,
        missing_on_members=missing,
        writes_during_fault={path: sum(hold_from < a.sent_at and a.at < hold_end for a in w.acknowledged) for path, w in context.writers.items()},
        details=details,
    )
