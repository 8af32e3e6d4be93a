"""A member's disk full, against design §5.3 (RPO 0, RTO 30 s): the WAL directory of the member on
`SMALL_DISK_WORKER` is a filesystem of its own (tests/cluster/hosts.py), which the drill fills
while writes go on through HAProxy, with that member a replica or the primary.

- A replica cannot write the next WAL segment it receives, so it stops streaming. The cluster
  rides it out without a failover: if it was the synchronous standby, Patroni names the other
  replica synchronous and the commits held meanwhile go on (tests/cluster/test_disk_full.py).
- The primary cannot write its next segment either and stops (a PANIC). What follows differs from
  run to run: when PostgreSQL cannot start again, Patroni gives up the leader key after
  `primary_start_timeout` and the synchronous standby is promoted; when it starts again
  read-only, Patroni, still holding the leader key, promotes it, and the promotion never completes
  on the full disk (recovery cannot write the segments it fetches or creates; seen: restarted and
  promoted 5 times in 90 s): no failover, and no write, until space is freed. So this one is not a
  test (it would pass or fail by chance) but a command that shows which happened:
  `python -m tests.cluster.disk_full_drill --role primary [--runs N]`.

Once space is freed, the member comes back without anyone touching it (a former primary as a
replica, rewound if need be) and the cluster is whole. No acknowledged row may be lost, on the
leader or on the member once it has caught up.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import itertools
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dpc.cluster import Port
from engine.netns import NamespaceClient
from tests.cluster.backup_drill import switch_wal, switchover
from tests.cluster.client import wait_until
from tests.cluster.drill import RECOVERY_TIMEOUT, Writer
from tests.cluster.hosts import CLIENT, SMALL_DISK_WORKER, WORKERS
from tests.cluster.lifecycle import benchmark_cluster
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

OBSERVER = next(worker for worker in WORKERS if worker != SMALL_DISK_WORKER)
"""The worker whose Patroni API the drill asks: the full member's may not answer while its PostgreSQL is down."""

Role = Literal["replica", "primary"]
"""What the member on the small disk is when its disk fills."""


@dataclass(frozen=True)
class DiskFullResult:
    """What the drill saw; times in seconds."""

    member: str
    role_before: str
    """The member's role when the disk filled (Patroni's: `leader`, `sync_standby` or `replica`)."""
    leader_before: str
    sync_before: str
    """The synchronous standby when the disk filled."""
    filled_bytes: int
    log_says_no_space: bool
    """Whether the member's PostgreSQL log, since the fill, names the full disk."""
    state_while_full: str
    """The member's state once the fault showed: no longer streaming, or no longer leading."""
    members_while_full: tuple[dict[str, Any], ...]
    leader_while_full: str
    to_fault_seen: float
    """From the fill until Patroni shows the fault: the replica no longer streaming, or another leader."""
    acknowledged_while_full: int
    """Writes acknowledged from when the fault showed until space was freed."""
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


def _fault_seen(smoke: Smoke, name: str, role: Role) -> str | None:
    """The member's state once Patroni shows the fault (a replica no longer streaming, another
    member leading and running), after a WAL switch on the primary, which makes every member
    need a new segment; a switch that fails (the full primary) counts for nothing."""
    with contextlib.suppress(Exception):
        switch_wal(smoke, smoke.through_haproxy(Port.HAPROXY_PRIMARY))
    members = smoke.members(OBSERVER)
    (member,) = [m for m in members if m["name"] == name]
    if role == "replica":
        return None if member["state"] == "streaming" else member["state"]
    others_leading = [m for m in members if m["name"] != name and m["role"] == "leader" and m["state"] == "running"]
    return f"{member['role']} {member['state']}" if others_leading else None


def _place(smoke: Smoke, name: str, role: Role) -> list[dict[str, Any]]:
    """The member in `role`, by planned switchovers to the synchronous standby: a replica that
    leads hands over once; a replica that should lead becomes the synchronous standby after one
    switchover (the other replica streams already, the old leader not yet) and leads after the next."""
    for _ in range(3):
        members = wait_until("a formed cluster before the drill", lambda: formed(smoke), timeout=RECOVERY_TIMEOUT, interval=1)
        leads = any(m["name"] == name and m["role"] == "leader" for m in members)
        if leads == (role == "primary"):
            return members
        switchover(smoke)
    raise RuntimeError(f"{name} not the {role} after three switchovers")


def _with_another_synchronous(smoke: Smoke, name: str) -> tuple[dict[str, Any], ...] | None:
    """The members once one other than `name` is the streaming synchronous standby."""
    members = tuple(smoke.members(OBSERVER))
    others = [m for m in members if m["name"] != name and m["role"] in SYNCHRONOUS_ROLES and m["state"] == "streaming"]
    return members if others else None


def rows_on(smoke: Smoke, worker: str, table: str) -> set[int]:
    return {row for (row,) in smoke.sql(smoke.direct(worker), f"SELECT id FROM {table}")}


def caught_up(smoke: Smoke, leader_worker: str, worker: str) -> None:
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


def _named(members: list[dict[str, Any]] | tuple[dict[str, Any], ...], roles: tuple[str, ...]) -> str:
    """The one member in one of `roles` (empty if none)."""
    named = [m["name"] for m in members if m["role"] in roles]
    return named[0] if len(named) == 1 else ""


def run_disk_full_drill(smoke: Smoke, role: Role) -> DiskFullResult:
    """The drill with the small disk's member in `role`; raises naming the step that did not
    happen. The filler is removed whatever happens, and the cluster is left formed."""
    cluster = smoke.cluster
    member = cluster.member(SMALL_DISK_WORKER).name
    members = _place(smoke, member, role)
    role_before = next(m["role"] for m in members if m["name"] == member)
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
            f"Patroni showing {member}'s full disk", lambda: _fault_seen(smoke, member, role), timeout=RECOVERY_TIMEOUT, interval=SWITCH_INTERVAL
        )
        stopped_at = time.monotonic()
        wait_until(
            "writes acknowledged while the member's disk is full",
            lambda: len(writer.acknowledged_after(stopped_at)) >= ROWS_WHILE_FULL or None,
            timeout=RECOVERY_TIMEOUT,
        )
        members_while_full = wait_until(
            "another member the streaming synchronous standby while the disk is full",
            lambda: _with_another_synchronous(smoke, member),
            timeout=RECOVERY_TIMEOUT,
        )
        acknowledged_while_full = len(writer.acknowledged_after(stopped_at))
        filler.unlink()
        filler = None
        freed_at = time.monotonic()
        members_after = wait_until(
            "the member streaming again: a leader and two streaming replicas, one synchronous",
            lambda: formed(smoke, OBSERVER),
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
    caught_up(smoke, leader_worker, SMALL_DISK_WORKER)
    missing_on_leader = tuple(sorted(rows - rows_on(smoke, leader_worker, table)))
    missing_on_member = tuple(sorted(rows - rows_on(smoke, SMALL_DISK_WORKER, table)))
    smoke.sql(smoke.through_haproxy(Port.HAPROXY_PRIMARY), f"DROP TABLE {table}")
    return DiskFullResult(
        member=member,
        role_before=role_before,
        leader_before=_named(members, ("leader",)),
        sync_before=_named(members, SYNCHRONOUS_ROLES),
        leader_while_full=_named(members_while_full, ("leader",)),
        filled_bytes=filled_bytes,
        log_says_no_space=NO_SPACE in _logged_since(Path(host.paths.logs), log_offsets),
        state_while_full=state_while_full,
        members_while_full=members_while_full,
        to_fault_seen=stopped_at - filled_at,
        acknowledged_while_full=acknowledged_while_full,
        longest_gap=max((later - earlier for earlier, later in itertools.pairwise(times)), default=0.0),
        to_whole=to_whole,
        members_after=tuple(members_after),
        acknowledged=len(rows),
        missing_on_leader=missing_on_leader,
        missing_on_member=missing_on_member,
    )


DRILL_BUDGET = 300
"""Seconds the on-demand command gives each run, beyond the cluster's start."""


def main() -> None:
    """Runs the drill `--runs` times on one cluster, printing each run's result as a JSON line
    (as root, from the checkout: `python -m tests.cluster.disk_full_drill --role primary`)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--role", choices=("replica", "primary"), default="primary")
    parser.add_argument("--runs", type=int, default=1)
    options = parser.parse_args()
    with benchmark_cluster(DRILL_BUDGET * (options.runs + 1)) as smoke:
        for run in range(options.runs):
            started = time.monotonic()
            try:
                result = dataclasses.asdict(run_disk_full_drill(smoke, options.role))
            except TimeoutError as error:
                result = {"failed": str(error).splitlines()[0]}
            print(json.dumps({"run": run, "role": options.role, "seconds": round(time.monotonic() - started, 1), **result}), flush=True)
            if "failed" in result:
                break


if __name__ == "__main__":
    main()
