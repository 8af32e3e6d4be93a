"""A replica's disk full (design §11 (new)): the WAL directory of the member on `SMALL_DISK_WORKER` is
a filesystem of its own (tests/cluster/hosts.py), which the drill fills while writes go on through
HAProxy.

The replica is the member whose loss the cluster must ride out without a failover: it cannot
write the next WAL segment it receives, so it stops streaming; if it was the synchronous standby,
Patroni names the other replica synchronous and commits, held meanwhile, go on; the primary's
commits never wait for the full member again until it is back. Once space is freed, the member
streams again without anyone touching it, and the cluster is whole. No acknowledged row may be
lost, on the leader or on the member once it has caught up.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpc.cluster import Port
from engine.netns import NamespaceClient
from tests.cluster.backup_drill import switch_wal, switchover
from tests.cluster.client import wait_until
from tests.cluster.drill import RECOVERY_TIMEOUT, Writer
from tests.cluster.hosts import CLIENT, SMALL_DISK_WORKER
from tests.cluster.smoke import SYNCHRONOUS_ROLES, Smoke, formed

FLOW_ROWS = 50
"""Acknowledged rows before the disk fills: the writer is in full flow."""
ROWS_WHILE_FULL = 50
"""Rows acknowledged after the member stopped streaming, before space is freed."""
FILL_STEP = 16 * 1024 * 1024
"""How much less to preallocate when the filesystem cannot take the whole of what it reports free
(its own metadata); what is left is filled by writing, at most this much."""
WRITE_CHUNK = 64 * 1024
SWITCH_INTERVAL = 1.0
"""Seconds between WAL switches on the primary while waiting for the full member to need a new
segment: each switch makes it create one, which a full disk refuses."""
NO_SPACE = "No space left on device"


@dataclass(frozen=True)
class DiskFullResult:
    """What the drill saw; times in seconds."""

    member: str
    role_before: str
    """The member's role when the disk filled (`replica` or `sync_standby`)."""
    filled_bytes: int
    log_says_no_space: bool
    """Whether the member's PostgreSQL log, since the fill, names the full disk."""
    state_while_full: str
    members_while_full: tuple[dict[str, Any], ...]
    to_stop_streaming: float
    acknowledged_while_full: int
    """Writes acknowledged between the member's stop and the freeing of space."""
    longest_gap: float
    """The longest time between two acknowledged writes, from the fill until the writer stopped."""
    to_whole: float
    """From freeing space until a leader and two streaming replicas, one synchronous."""
    members_after: tuple[dict[str, Any], ...]
    acknowledged: int
    missing_on_leader: tuple[int, ...]
    missing_on_member: tuple[int, ...]


def fill(directory: Path) -> Path:
    """A file that takes every free block of the filesystem at `directory`: preallocated (no data
    written) as far as the filesystem allows, the rest written until it refuses."""
    filler = directory / f"filler-{secrets.token_hex(4)}"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        stats = os.statvfs(directory)
        size = stats.f_bavail * stats.f_frsize
        while size > 0:
            try:
                os.posix_fallocate(descriptor, 0, size)
                break
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                size -= FILL_STEP
        os.lseek(descriptor, 0, os.SEEK_END)
        chunk = bytes(WRITE_CHUNK)
        with contextlib.suppress(OSError):
            while os.write(descriptor, chunk):
                pass
    finally:
        os.close(descriptor)
    if os.statvfs(directory).f_bavail > 0:
        filler.unlink()
        raise RuntimeError(f"{directory}: blocks still free after filling")
    return filler


def _member(smoke: Smoke, name: str) -> dict[str, Any]:
    (member,) = [m for m in smoke.members() if m["name"] == name]
    return member


def _stopped_streaming(smoke: Smoke, name: str) -> str | None:
    """The member's state once it no longer streams, after a WAL switch on the primary."""
    switch_wal(smoke, smoke.through_haproxy(Port.HAPROXY_PRIMARY))
    state = _member(smoke, name)["state"]
    return None if state == "streaming" else state


def _rows_on(smoke: Smoke, worker: str, table: str) -> set[int]:
    return {row for (row,) in smoke.sql(smoke.direct(worker), f"SELECT id FROM {table}")}


def _caught_up(smoke: Smoke, leader_worker: str, worker: str) -> None:
    ((lsn,),) = smoke.sql(smoke.direct(leader_worker), "SELECT pg_current_wal_lsn()::text")
    wait_until(
        f"{worker} replaying up to the leader's WAL position",
        lambda: smoke.sql(smoke.direct(worker), "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)) == [(True,)] or None,
        timeout=RECOVERY_TIMEOUT,
    )


def _logged_since(directory: Path, offsets: dict[Path, int]) -> str:
    """What PostgreSQL's log files in `directory` gained since `offsets` were taken."""
    text = ""
    for log in sorted(directory.glob("*.log")):
        with log.open(errors="replace") as output:
            output.seek(offsets.get(log, 0))
            text += output.read()
    return text


def run_disk_full_drill(smoke: Smoke) -> DiskFullResult:
    """The drill; raises naming the step that did not happen. The filler is removed whatever
    happens, and the cluster is left formed."""
    cluster = smoke.cluster
    members = wait_until("a formed cluster before the drill", lambda: formed(smoke), timeout=RECOVERY_TIMEOUT, interval=1)
    member = cluster.member(SMALL_DISK_WORKER).name
    if any(m["name"] == member and m["role"] == "leader" for m in members):
        switchover(smoke)
    role_before = _member(smoke, member)["role"]
    host = cluster.hosts[SMALL_DISK_WORKER]
    log_offsets = {log: log.stat().st_size for log in Path(host.paths.logs).glob("*.log")}
    table = f"disk_full_{secrets.token_hex(4)}"
    primary = smoke.through_haproxy(Port.HAPROXY_PRIMARY)
    smoke.sql(primary, f"CREATE TABLE {table} (id bigint PRIMARY KEY)")
    writer = Writer(cluster.network.namespace(CLIENT), primary, table, "haproxy")
    writer_client = NamespaceClient(writer.namespace)
    filler: Path | None = None
    try:
        writing = writer_client.submit(writer.run)
        wait_until("the writer in full flow", lambda: len(writer.acknowledged) >= FLOW_ROWS or None, timeout=RECOVERY_TIMEOUT)
        filled_at = time.monotonic()
        filler = fill(Path(host.paths.wal).parent)
        filled_bytes = filler.stat().st_size
        state_while_full = wait_until(
            f"{member} no longer streaming", lambda: _stopped_streaming(smoke, member), timeout=RECOVERY_TIMEOUT, interval=SWITCH_INTERVAL
        )
        stopped_at = time.monotonic()
        wait_until(
            "writes acknowledged while the member's disk is full",
            lambda: len(writer.acknowledged_after(stopped_at)) >= ROWS_WHILE_FULL or None,
            timeout=RECOVERY_TIMEOUT,
        )
        members_while_full = tuple(smoke.members())
        acknowledged_while_full = len(writer.acknowledged_after(stopped_at))
        filler.unlink()
        filler = None
        freed_at = time.monotonic()
        members_after = wait_until(
            "the member streaming again: a leader and two streaming replicas, one synchronous",
            lambda: formed(smoke),
            timeout=RECOVERY_TIMEOUT,
            interval=0.5,
        )
        to_whole = time.monotonic() - freed_at
    finally:
        if filler is not None:
            filler.unlink()
        writer.stop()
        writer_client.close()
    writing.result(timeout=RECOVERY_TIMEOUT)
    acknowledged = writer.acknowledged
    rows = {a.row for a in acknowledged if a.row is not None}
    times = [a.at for a in acknowledged if a.at >= filled_at]
    (leader,) = [m["name"] for m in members_after if m["role"] == "leader"]
    leader_worker = cluster.worker(leader)
    _caught_up(smoke, leader_worker, SMALL_DISK_WORKER)
    missing_on_leader = tuple(sorted(rows - _rows_on(smoke, leader_worker, table)))
    missing_on_member = tuple(sorted(rows - _rows_on(smoke, SMALL_DISK_WORKER, table)))
    smoke.sql(smoke.through_haproxy(Port.HAPROXY_PRIMARY), f"DROP TABLE {table}")
    return DiskFullResult(
        member=member,
        role_before=role_before,
        filled_bytes=filled_bytes,
        log_says_no_space=NO_SPACE in _logged_since(Path(host.paths.logs), log_offsets),
        state_while_full=state_while_full,
        members_while_full=members_while_full,
        to_stop_streaming=stopped_at - filled_at,
        acknowledged_while_full=acknowledged_while_full,
        longest_gap=max((later - earlier for earlier, later in itertools.pairwise(times)), default=0.0),
        to_whole=to_whole,
        members_after=tuple(members_after),
        acknowledged=len(rows),
        missing_on_leader=missing_on_leader,
        missing_on_member=missing_on_member,
    )


def synchronous_others(members: tuple[dict[str, Any], ...], member: str) -> list[str]:
    """The streaming synchronous standbys other than `member`."""
    return [m["name"] for m in members if m["name"] != member and m["role"] in SYNCHRONOUS_ROLES and m["state"] == "streaming"]
