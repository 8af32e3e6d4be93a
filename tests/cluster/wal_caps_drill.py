"""The WAL volume's caps on the running cluster (design §5.3; `dpc.sizing.WalBudget`): the two
things that would otherwise grow a member's WAL without bound, each made to happen under writes.
The run's layout derives the caps from its own 4 GiB WAL volume (`hosts.smoke_layout`): slot and
archive queue 272 MB each, wal_keep_size 2 GB, max_wal_size 1 GB.

- A replica down (`run_slot_cap_drill`): its replication slot on the primary (Patroni keeps one per
  member, and a departed member's for its `member_slots_ttl`) would hold every segment written
  since. The drill stops the asynchronous replica's Patroni, PostgreSQL and pgBackRest server and
  makes the primary write WAL (batches of small writes, each followed by `pg_switch_wal()`, which
  starts a new 16 MB segment, then a CHECKPOINT, where PostgreSQL invalidates a slot past its cap)
  until the slot is lost and a little beyond, watching every running member's pg_wal. A slot is
  kept back to the larger of max_slot_wal_keep_size and wal_keep_size, here wal_keep_size's 2 GB,
  so the drill writes about 2.5 GB. The replica, started again, finds the WAL it missed gone from
  the primary and catches up from the archive (`restore_command`); Patroni does not re-initialise
  it (its data directory is the one it stopped with).
- WAL that cannot be archived (`run_archive_cap_drill`): PostgreSQL would keep every segment
  archive_command has not archived. The drill makes the repository refuse the leader's WAL and
  switches segments until the queue passes pgBackRest's archive-push-queue-max and pgBackRest
  drops it (no more than a few segments past the cap), then lets the repository take WAL again
  and waits for the next segment to arrive there. The smoke run's fault is a repository that
  refuses writes (its archive directories read-only: a full or read-only backup volume), where
  every push fails at once; `--archive-fault unreachable` (an iptables rule in the leader's host
  resetting its connections to the repository host) is the slower case: pgBackRest retries
  connecting for its io-timeout (60 s) before a push fails, and weighs the queue only when the next
  push starts, so the queue stays over the cap for a minute or two (README, "WAL volume caps").

Meanwhile a writer commits through HAProxy; every row it and the WAL generator were told was
committed must be on the leader and, once it has caught up, on the replica that was down. The
drills leave the cluster formed. `python -m tests.cluster.wal_caps_drill [--drill slot|archive|both]
[--archive-fault unwritable|unreachable] [--runs N]` runs them on a cluster of its own and prints
each result as a JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import secrets
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import psycopg

from dpc.cluster import BACKUP_STANZA, Port
from dpc.sizing import WAL_SEGMENT_MB, WalBudget
from engine.netns import NamespaceClient
from tests.cluster.backup_drill import ensure_stanza, switch_wal
from tests.cluster.client import CONNECT_TIMEOUT, wait_until
from tests.cluster.disk_full_drill import caught_up, rows_on
from tests.cluster.drill import ACKNOWLEDGED, ERROR_LENGTH, IN_DOUBT, RECOVERY_TIMEOUT, REFUSED, Writer
from tests.cluster.hosts import BACKUP_HOST, CLIENT, WORKERS, SmokeCluster
from tests.cluster.lifecycle import benchmark_cluster
from tests.cluster.smoke import REPLICA_ROLES, SYNCHRONOUS_ROLES, Smoke, formed

MB = 1024 * 1024
SEGMENT_BYTES = WAL_SEGMENT_MB * MB
BATCH = 8
"""WAL switches between two checkpoints, and two looks at the slot: 128 MB of WAL."""
AFTER_LOST_BATCHES = 1
"""Batches written once the slot is lost: WAL the slot, uncapped, would hold as well."""
FLOW_ROWS = 20
"""Acknowledged rows before the fault: the writer is in full flow."""
SAMPLE_INTERVAL = 0.1
"""Seconds between two looks at pg_wal."""
GENERATE_TIMEOUT = 60.0
"""Seconds one batch of switches may take (its statement timeout too)."""
ARCHIVE_TIMEOUT = 30.0
"""Seconds a segment switched once the repository takes WAL again may take to reach it."""
DROP_TIMEOUT = 150.0
"""Seconds pgBackRest may take to drop the archive queue: an unreachable repository holds each push
for pgBackRest's io-timeout (60 s), and the queue is weighed only when the next push starts."""
QUEUE_EMPTY_TIMEOUT = 15.0
"""Seconds PostgreSQL may take to take the dropped segments off its queue once pgBackRest said so."""
OVERSHOOT_SEGMENTS = 4
"""How far past the cap the archive drill lets the queue grow while it waits for pgBackRest."""
INVALIDATED = "invalidating slot"
"""PostgreSQL 15's log line when a checkpoint invalidates a slot past max_slot_wal_keep_size."""
RESTORED = "restored log file"
"""PostgreSQL's log line for each segment restore_command fetched."""
DROPPED = "dropped WAL file"
"""pgBackRest's warning, in PostgreSQL's log, for each segment dropped past archive-push-queue-max."""
ARCHIVE_FAILED = "archive command failed"


def slot_name(member: str) -> str:
    """The name Patroni gives a member's replication slot (`patroni-3` → `patroni_3`)."""
    return "".join(character if character.isalnum() else "_" for character in member.lower())


def pg_wal_bound_bytes(wal: WalBudget) -> int:
    """The most the leader's pg_wal may hold while the caps do their work, with a batch of switches
    between two checkpoints: behind the last checkpoint, the larger of the slot cap and
    wal_keep_size (a slot further behind is invalidated at that checkpoint; unarchived segments
    count only up to the queue's cap, smaller still here); since it, at most a batch of segments;
    ahead, segments recycled up to max_wal_size from the checkpoint's start; and the segment being
    written with the next one PostgreSQL prepares. 3,232 MB for the run's 4 GiB WAL volume, whose
    ext4 (no blocks reserved) leaves 3,952 MB for files, the budget's estimate 3,809 MB."""
    kept = max(wal.slot_keep_mb, wal.wal_keep_size_mb, wal.archive_queue_mb)
    return (kept + wal.max_wal_size_mb) * MB + (BATCH + 2) * SEGMENT_BYTES


@dataclass
class WalWatch:
    """Looks at WAL directories every SAMPLE_INTERVAL on a thread of the test process (the hosts
    share its filesystem): the largest size each reached, in bytes of files, and the most segments
    PostgreSQL had marked ready for archiving at once."""

    directories: dict[str, Path]
    peak_bytes: dict[str, int] = field(default_factory=dict[str, int])
    peak_ready: dict[str, int] = field(default_factory=dict[str, int])
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def sample(self) -> None:
        for worker, directory in self.directories.items():
            size = sum(_size(entry) for entry in os.scandir(directory))
            self.peak_bytes[worker] = max(size, self.peak_bytes.get(worker, 0))
            self.peak_ready[worker] = max(ready_segments(directory), self.peak_ready.get(worker, 0))

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.sample()

    def __enter__(self) -> WalWatch:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="wal-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()


def _size(entry: os.DirEntry[str]) -> int:
    """A file's size, 0 for a directory or once PostgreSQL removed or renamed it under the watch."""
    try:
        return entry.stat(follow_symlinks=False).st_size if entry.is_file(follow_symlinks=False) else 0
    except FileNotFoundError:
        return 0


def ready_segments(wal_dir: Path) -> int:
    """Segments PostgreSQL has marked ready for archive_command and not yet seen archived."""
    return sum(entry.name.endswith(".ready") for entry in os.scandir(wal_dir / "archive_status"))


def oldest_segment_lsn(wal_dir: Path) -> int:
    """The position where the oldest WAL segment in `wal_dir` starts."""
    oldest = min(entry.name for entry in os.scandir(wal_dir) if len(entry.name) == 24 and entry.name.isalnum())
    return (int(oldest[8:16], 16) << 32) + int(oldest[16:24], 16) * SEGMENT_BYTES


def switch_batch(conninfo: dict[str, str | int], table: str, rows: range, slot: str | None) -> str | None:
    """One row and one WAL switch per row in `rows`, in one transaction (a DO block: no round trip
    and no wait for the synchronous standby between switches), committed (run in the client
    namespace). With a `slot`: then a CHECKPOINT, and the slot's wal_status right after it ("absent"
    if there is none), before Patroni, every loop_wait, drops a lost slot and creates it anew."""
    loop = f"FOR row IN {rows.start}..{rows.stop - 1} LOOP INSERT INTO {table} (id) VALUES (row); PERFORM pg_switch_wal(); END LOOP;"
    with psycopg.connect(**{**conninfo, "connect_timeout": CONNECT_TIMEOUT}, autocommit=True) as connection:  # pyright: ignore[reportArgumentType]
        connection.execute(f"DO $$ BEGIN {loop} END $$")  # pyright: ignore[reportArgumentType]
        if slot is None:
            return None
        connection.execute("CHECKPOINT")
        status = connection.execute("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchall()
    return str(status[0][0]) if status else "absent"


class Log:
    """What log files gain from now on: `pattern`'s files in `directory` (PostgreSQL's, one a
    weekday: a file begun meanwhile counts whole)."""

    def __init__(self, directory: Path, pattern: str = "*.log") -> None:
        self._directory, self._pattern = directory, pattern
        self._offsets = {log: log.stat().st_size for log in directory.glob(pattern)}

    def since(self) -> str:
        text = ""
        for log in sorted(self._directory.glob(self._pattern)):
            with log.open(errors="replace") as output:
                output.seek(self._offsets.get(log, 0))
                text += output.read()
        return text


def _lsn(smoke: Smoke, worker: str) -> int:
    ((lsn,),) = smoke.sql(smoke.direct(worker), "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
    return int(lsn)


@dataclass(frozen=True)
class Writes:
    """The writer's attempts through HAProxy from the fault on."""

    refused: int
    """Attempts the server said no to, or that found no connection."""
    in_doubt: int
    """Attempts whose outcome is unknown: the connection died, or the writer cancelled a commit after
    its commit timeout (5 s): it may be committed on the primary alone."""
    acknowledged: int
    longest_gap: float
    """The longest time without an acknowledgement, from the fault to the last one."""
    errors: dict[str, int]
    """What the failed attempts said, the first line of each, by count."""


@dataclass
class Frame:
    """What both drills share: the formed cluster, a table, a writer through HAProxy, the WAL generator."""

    smoke: Smoke
    members: list[dict[str, Any]]
    table: str
    writer: Writer
    generated: list[int] = field(default_factory=list[int])
    """Rows the generator was told were committed."""
    started_at: float = 0.0
    next_row: int = 1

    @property
    def cluster(self) -> SmokeCluster:
        return self.smoke.cluster

    @property
    def leader(self) -> str:
        (leader,) = [m["name"] for m in self.members if m["role"] == "leader"]
        return leader

    @property
    def leader_worker(self) -> str:
        return self.cluster.worker(self.leader)

    def switch(self, count: int, *, slot: str | None = None) -> str | None:
        """`count` rows, each followed by a WAL switch, on the leader (`switch_batch`)."""
        rows = range(self.next_row, self.next_row + count)
        self.next_row += count
        conninfo = {**self.smoke.direct(self.leader_worker), "options": f"-c statement_timeout={int(GENERATE_TIMEOUT * 1000)}"}
        status = self.smoke.client.call(switch_batch, conninfo, self.table, rows, slot, timeout=GENERATE_TIMEOUT)
        self.generated += rows
        return status

    @property
    def rows(self) -> set[int]:
        """Every row acknowledged, the writer's and the generator's."""
        return {a.row for a in self.writer.acknowledged if a.row is not None} | set(self.generated)

    def writes(self) -> Writes:
        """The writer's attempts since the fault."""
        attempts = [a for a in list(self.writer.attempts) if a.sent_at >= self.started_at]
        times = [a.at for a in attempts if a.outcome == ACKNOWLEDGED]
        errors = Counter(message.splitlines()[0][:ERROR_LENGTH] for at, message in list(self.writer.errors) if at >= self.started_at and message)
        return Writes(
            refused=sum(a.outcome == REFUSED for a in attempts),
            in_doubt=sum(a.outcome == IN_DOUBT for a in attempts),
            acknowledged=len(times),
            longest_gap=max((later - earlier for earlier, later in itertools.pairwise([self.started_at, *times])), default=0.0),
            errors=dict(errors),
        )

    def missing_on(self, worker: str) -> tuple[int, ...]:
        return tuple(sorted(self.rows - rows_on(self.smoke, worker, self.table)))


def framed(smoke: Smoke, body: Callable[[Frame], None]) -> Frame:
    """`body` run on a formed cluster under a writer through HAProxy; the writer stopped whatever
    happens, and the table dropped by `close`."""
    members = wait_until("a formed cluster before the drill", lambda: formed(smoke), timeout=RECOVERY_TIMEOUT, interval=1)
    if not (_wal_archive(smoke) / "archive.info").exists():
        ensure_stanza(smoke.cluster)
    table = f"wal_caps_{secrets.token_hex(4)}"
    primary = smoke.through_haproxy(Port.HAPROXY_PRIMARY)
    smoke.sql(primary, f"CREATE TABLE {table} (id bigint PRIMARY KEY)")
    writer = Writer(smoke.cluster.network.namespace(CLIENT), primary, table, "haproxy", first_row=1_000_000_000)
    frame = Frame(smoke, members, table, writer)
    client = NamespaceClient(writer.namespace)
    try:
        writing = client.submit(writer.run)
        wait_until("the writer in full flow", lambda: len(writer.acknowledged) >= FLOW_ROWS or None, timeout=RECOVERY_TIMEOUT)
        frame.started_at = time.monotonic()
        body(frame)
    finally:
        writer.stop()
        client.close()
    writing.result(timeout=RECOVERY_TIMEOUT)
    return frame


def close(frame: Frame) -> None:
    frame.smoke.sql(frame.smoke.through_haproxy(Port.HAPROXY_PRIMARY), f"DROP TABLE {frame.table}")


# --- a replica down --------------------------------------------------------------------------------


@dataclass
class SlotCapResult:
    """What the slot drill saw; sizes in bytes, times in seconds."""

    leader: str = ""
    leader_worker: str = ""
    replica: str = ""
    slot: str = ""
    slot_keeps_bytes: int = 0
    """What a slot may keep behind a checkpoint: the larger of max_slot_wal_keep_size and wal_keep_size."""
    pg_wal_bound_bytes: int = 0
    """`pg_wal_bound_bytes`: what the leader's pg_wal may hold."""
    volume_files_bytes: int = 0
    """What the WAL volume leaves for files (the budget's volume less the filesystem's share), which
    no member's pg_wal may reach: a replica restarts only at checkpoints it has replayed, so its
    pg_wal can run past the leader's bound by the WAL replayed until its restartpoint completes."""
    statuses: list[str] = field(default_factory=list[str])
    """The slot's wal_status on the leader after each batch's checkpoint ("absent": no such slot)."""
    lost_after_bytes: int | None = None
    """WAL the leader had written since the replica stopped when the slot was first seen lost."""
    generated_bytes: int = 0
    """WAL the leader wrote from the replica's stop to the end of the generation."""
    retained_bytes: int = 0
    """WAL the leader still held behind its position at the end of the generation."""
    invalidation_logged: bool = False
    patroni_dropped_lost: bool = False
    """Whether the leader's Patroni logged dropping the lost slot (it creates it anew, reserving WAL from then on)."""
    peak_pg_wal_bytes: dict[str, int] = field(default_factory=dict[str, int])
    """Per running member, the largest its pg_wal became."""
    batch_seconds: list[float] = field(default_factory=list[float])
    generate_seconds: float = 0.0
    rows: int = 0
    writes: Writes | None = None
    """The writer's attempts from the replica's stop until it streamed again."""
    to_streaming: float = 0.0
    """From the replica's start until Patroni showed it streaming again."""
    restored_segments: int = 0
    """Segments the replica's restore_command fetched from the archive after its start."""
    data_directory_kept: bool = False
    """Whether a file left in the replica's data directory while it was down is still there (a
    re-initialisation would have replaced the directory)."""
    members_after: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    missing_on_leader: tuple[int, ...] = ()
    missing_on_replica: tuple[int, ...] = ()
    seconds: float = 0.0


def _stop_member(cluster: SmokeCluster, worker: str) -> None:
    """The worker's Patroni (which stops its PostgreSQL), and its pgBackRest server, stopped as a
    service manager stops them."""
    for program in ("patroni", "postgres", "pgbackrest"):
        cluster.network.stop(worker, program)


def _generate_past_the_slot_cap(frame: Frame, result: SlotCapResult, running: dict[str, Path], log: Log) -> None:
    """Batches of switches until the slot is lost (seen so, or its invalidation in the leader's
    `log`) and AFTER_LOST_BATCHES more, bounded by twice the WAL that keeps it; what the leader showed."""
    smoke, leader_worker, wal = frame.smoke, frame.leader_worker, frame.cluster.layout.wal
    stopped_lsn = _lsn(smoke, leader_worker)
    most = 2 * (max(wal.wal_keep_size_mb, wal.slot_keep_mb) + wal.max_wal_size_mb) // WAL_SEGMENT_MB // BATCH
    lost_at: int | None = None
    began = time.monotonic()
    with WalWatch(running) as watch:
        while len(result.statuses) < most and (lost_at is None or len(result.statuses) < lost_at + AFTER_LOST_BATCHES):
            batch_began = time.monotonic()
            result.statuses.append(frame.switch(BATCH, slot=result.slot) or "")
            result.batch_seconds.append(round(time.monotonic() - batch_began, 2))
            if lost_at is None and (result.statuses[-1] == "lost" or INVALIDATED in log.since()):
                lost_at, result.lost_after_bytes = len(result.statuses), _lsn(smoke, leader_worker) - stopped_lsn
    result.generate_seconds = time.monotonic() - began
    end_lsn = _lsn(smoke, leader_worker)
    result.generated_bytes, result.retained_bytes = end_lsn - stopped_lsn, end_lsn - oldest_segment_lsn(running[leader_worker])
    result.peak_pg_wal_bytes = dict(watch.peak_bytes)


def run_slot_cap_drill(smoke: Smoke) -> SlotCapResult:
    """The asynchronous replica down while the leader writes more WAL than its slot may keep."""
    began = time.monotonic()
    cluster = smoke.cluster
    wal = cluster.layout.wal
    result = SlotCapResult(
        slot_keeps_bytes=max(wal.slot_keep_mb, wal.wal_keep_size_mb) * MB,
        pg_wal_bound_bytes=pg_wal_bound_bytes(wal),
        volume_files_bytes=(wal.volume_mb - wal.filesystem_mb) * MB,
    )

    def body(frame: Frame) -> None:
        (result.replica,) = [m["name"] for m in frame.members if m["role"] in REPLICA_ROLES and m["role"] not in SYNCHRONOUS_ROLES]
        result.leader, result.leader_worker, result.slot = frame.leader, frame.leader_worker, slot_name(result.replica)
        replica_worker, leader_worker = cluster.worker(result.replica), frame.leader_worker
        patroni_file = cluster.log(leader_worker, "patroni")
        leader_log, patroni_log = Log(Path(cluster.hosts[leader_worker].paths.logs)), Log(patroni_file.parent, patroni_file.name)
        _stop_member(cluster, replica_worker)
        marker = Path(cluster.hosts[replica_worker].paths.data) / f"wal-caps-{secrets.token_hex(4)}"
        replica_log = Log(Path(cluster.hosts[replica_worker].paths.logs))
        running = {worker: Path(cluster.hosts[worker].paths.wal) for worker in WORKERS if worker != replica_worker}
        try:
            marker.touch()
            _generate_past_the_slot_cap(frame, result, running, leader_log)
        finally:
            started_at = time.monotonic()
            cluster.start_patroni_on(replica_worker)
        result.invalidation_logged = f'{INVALIDATED} "{result.slot}"' in leader_log.since()
        result.patroni_dropped_lost = f"'{result.slot}' with wal_status=lost" in patroni_log.since()
        result.members_after = wait_until(
            f"{result.replica} streaming again: a leader and two streaming replicas, one synchronous",
            lambda: formed(smoke),
            timeout=RECOVERY_TIMEOUT,
            interval=0.5,
        )
        result.to_streaming = time.monotonic() - started_at
        result.writes = frame.writes()
        result.data_directory_kept = marker.exists()
        marker.unlink(missing_ok=True)
        caught_up(smoke, leader_worker, replica_worker)
        result.restored_segments = replica_log.since().count(RESTORED)

    frame = framed(smoke, body)
    result.rows = len(frame.rows)
    result.missing_on_leader = frame.missing_on(frame.leader_worker)
    result.missing_on_replica = frame.missing_on(cluster.worker(result.replica))
    close(frame)
    result.seconds = time.monotonic() - began
    return result


# --- WAL that cannot be archived -------------------------------------------------------------------

ArchiveFault = Literal["unwritable", "unreachable"]
"""How WAL stops reaching the repository: its archive refuses writes (every push fails at once), or
its host is unreachable from the leader (every push waits out pgBackRest's io-timeout first)."""


@dataclass
class ArchiveCapResult:
    """What the archive drill saw; sizes in bytes, times in seconds."""

    fault: str = ""
    leader: str = ""
    cap_segments: int = 0
    pg_wal_bound_bytes: int = 0
    segments_switched: int = 0
    """Segments switched while WAL could not reach the repository."""
    archive_failures: int = 0
    """archive_command's failures PostgreSQL logged meanwhile."""
    dropped: tuple[str, ...] = ()
    """The segments pgBackRest's warnings name as dropped."""
    dropped_in_repository: tuple[str, ...] = ()
    """Dropped segments that are in the repository all the same (none may be)."""
    peak_ready_segments: int = 0
    """The most segments PostgreSQL had marked ready for archiving at once on the leader."""
    ready_after_drop: int = -1
    """Segments still ready once PostgreSQL took the dropped ones off its queue, the fault still on."""
    peak_pg_wal_bytes: int = 0
    over_cap_for: float = 0.0
    """From the queue first exceeding the cap until pgBackRest's first drop warning."""
    resumed_segment: str = ""
    """A segment switched once the repository took WAL again, found in the repository."""
    to_archived_again: float = 0.0
    rows: int = 0
    writes: Writes | None = None
    """The writer's attempts from the fault until the repository took WAL again."""
    missing_on_leader: tuple[int, ...] = ()
    seconds: float = 0.0


def repository_rule(smoke: Smoke, worker: str, action: str) -> None:
    """An iptables rule in the worker's host resetting its connections to the repository host's
    pgBackRest server: the repository unreachable, every other path as it was."""
    cluster = smoke.cluster
    rule = ["OUTPUT", "-p", "tcp", "-d", cluster.address(BACKUP_HOST), "--dport", str(Port.PGBACKREST), "-j", "REJECT", "--reject-with", "tcp-reset"]
    namespace = cluster.network.namespace(worker)
    subprocess.run(["ip", "netns", "exec", namespace, "iptables", action, *rule], check=True, capture_output=True, timeout=10)


def _wal_archive(smoke: Smoke) -> Path:
    """repo1's WAL archive of the stanza, on the repository host (archive/<stanza>/<version-id>/<timeline and high bits>)."""
    return Path(smoke.cluster.hosts[BACKUP_HOST].paths.backup_repository) / "archive" / BACKUP_STANZA


@contextmanager
def repository_fault(smoke: Smoke, worker: str, fault: ArchiveFault) -> Iterator[None]:
    """WAL from `worker` not reaching the repository while inside; undone on leaving. Unwritable:
    the archive's directories read-only to the repository host's pgBackRest server (its user is not
    root), reads (restore_command) as before."""
    if fault == "unreachable":
        repository_rule(smoke, worker, "-A")
        try:
            yield
        finally:
            repository_rule(smoke, worker, "-D")
        return
    modes = {path: path.stat().st_mode for path in [_wal_archive(smoke), *_wal_archive(smoke).rglob("*")] if path.is_dir()}
    for path in modes:
        path.chmod(0o555)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def in_repository(smoke: Smoke, segment: str) -> bool:
    return any(_wal_archive(smoke).glob(f"*/{segment[:16]}/{segment}-*"))


def _switch_until_dropped(frame: Frame, result: ArchiveCapResult, wal_dir: Path, log: Log) -> None:
    """One segment at a time while the queue is at most OVERSHOOT_SEGMENTS past the cap, until
    pgBackRest's drop warning, then until PostgreSQL has taken the dropped segments off its queue."""
    deadline, over_cap_at = time.monotonic() + DROP_TIMEOUT, None
    while DROPPED not in log.since():
        if time.monotonic() > deadline:
            raise TimeoutError(f"pgBackRest dropping the archive queue: not within {DROP_TIMEOUT:.0f}s; {ready_segments(wal_dir)} segments ready")
        ready = ready_segments(wal_dir)
        if ready > result.cap_segments and over_cap_at is None:
            over_cap_at = time.monotonic()
        if ready <= result.cap_segments + OVERSHOOT_SEGMENTS:
            frame.switch(1)
            result.segments_switched += 1
        else:
            time.sleep(SAMPLE_INTERVAL)
    result.over_cap_for = time.monotonic() - (over_cap_at or time.monotonic())
    result.ready_after_drop = wait_until(
        "PostgreSQL taking the dropped segments off its archive queue", lambda: _emptied(wal_dir), timeout=QUEUE_EMPTY_TIMEOUT, interval=SAMPLE_INTERVAL
    )


def _emptied(wal_dir: Path) -> int | None:
    """The segments ready once at most the one being switched is left (the queue emptied)."""
    ready = ready_segments(wal_dir)
    return ready if ready <= 1 else None


def run_archive_cap_drill(smoke: Smoke, fault: ArchiveFault = "unwritable") -> ArchiveCapResult:
    """WAL not reaching the repository from the leader while it switches segments past
    archive-push-queue-max, until pgBackRest drops the queue; then the repository back."""
    began = time.monotonic()
    cluster = smoke.cluster
    wal = cluster.layout.wal
    result = ArchiveCapResult(fault=fault, cap_segments=wal.archive_queue_mb // WAL_SEGMENT_MB, pg_wal_bound_bytes=pg_wal_bound_bytes(wal))

    def body(frame: Frame) -> None:
        result.leader, leader_worker = frame.leader, frame.leader_worker
        wal_dir = Path(cluster.hosts[leader_worker].paths.wal)
        log = Log(Path(cluster.hosts[leader_worker].paths.logs))
        with repository_fault(smoke, leader_worker, fault), WalWatch({leader_worker: wal_dir}) as watch:
            _switch_until_dropped(frame, result, wal_dir, log)
        healed_at = time.monotonic()
        result.writes = frame.writes()
        result.peak_ready_segments, result.peak_pg_wal_bytes = watch.peak_ready[leader_worker], watch.peak_bytes[leader_worker]
        segment = switch_wal(smoke, smoke.direct(leader_worker))
        wait_until(f"WAL segment {segment} in the repository", lambda: in_repository(smoke, segment) or None, timeout=ARCHIVE_TIMEOUT)
        result.resumed_segment, result.to_archived_again = segment, time.monotonic() - healed_at
        text = log.since()
        result.archive_failures = text.count(ARCHIVE_FAILED)
        result.dropped = tuple(sorted({line.split("'")[1] for line in text.splitlines() if DROPPED in line}))
        result.dropped_in_repository = tuple(dropped for dropped in result.dropped if in_repository(smoke, dropped))

    frame = framed(smoke, body)
    result.rows, result.missing_on_leader = len(frame.rows), frame.missing_on(frame.leader_worker)
    close(frame)
    result.seconds = time.monotonic() - began
    return result


DRILL_BUDGET = 300
"""Seconds the on-demand command gives each run, beyond the cluster's start."""


def main() -> None:
    """Runs the drills `--runs` times on one cluster, printing each result as a JSON line
    (as root, from the checkout: `python -m tests.cluster.wal_caps_drill`)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--drill", choices=("slot", "archive", "both"), default="both")
    parser.add_argument("--archive-fault", choices=get_args(ArchiveFault), default="unwritable")
    options = parser.parse_args()
    drills: dict[str, Callable[[Smoke], Any]] = {
        "slot": run_slot_cap_drill,
        "archive": lambda smoke: run_archive_cap_drill(smoke, options.archive_fault),
    }
    chosen = list(drills) if options.drill == "both" else [options.drill]
    with benchmark_cluster(DRILL_BUDGET * (options.runs * len(chosen) + 1)) as smoke:
        for run, name in itertools.product(range(options.runs), chosen):
            started = time.monotonic()
            try:
                result = dataclasses.asdict(drills[name](smoke))
            except TimeoutError as error:
                result = {"failed": str(error).splitlines()[0]}
            result.pop("members_after", None)
            print(json.dumps({"run": run, "drill": name, "seconds": round(time.monotonic() - started, 1), **result}), flush=True)
            if "failed" in result:
                break


if __name__ == "__main__":
    main()
