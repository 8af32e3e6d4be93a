"""Backup and point-in-time restore of the running cluster (design §4.3), proven by marker rows.

pgBackRest runs as the Swarm runs it (dpc/services.py), from the program's rendered files
(dpc/render/backup.py): the backup agent on the repository host (`hosts.BACKUP_HOST`) serves repo1,
a posix repository standing in for the backup volume, over pgBackRest's TLS protocol; every Patroni
member archives WAL to it with the rendered `archive_command` and runs a `pgbackrest server` of its
own, which the repository host reads backups from. Under continuous writes through HAProxy, the
drill takes a full backup where the product takes it (`backup-standby`: files from a standby, only
the checkpoint on the primary), commits marker rows A, notes the primary's clock as the target T,
commits marker rows B, switches and archives the WAL, and restores the backup to T into a scratch
data directory on a database host, started as a standalone PostgreSQL in that host's namespace.
It then switches the leader over and checks that the new leader archives to the same stanza.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpc.cluster import BACKUP_STANZA, DATABASE_NAME, Paths, Port
from dpc.render.backup import RESTORE_COMMAND
from dpc.services import patroni_config_secret
from engine.netns import NamespaceClient
from tests.cluster.client import wait_until
from tests.cluster.drill import RECOVERY_TIMEOUT, Writer
from tests.cluster.hosts import BACKUP_HOST, CLIENT, WORKERS, SmokeCluster
from tests.cluster.smoke import SYNCHRONOUS_ROLES, Smoke, formed

COMMAND_TIMEOUT = 120.0
"""Seconds one pgBackRest command (a full backup, a restore) may take."""
ARCHIVE_TIMEOUT = 30.0
"""Seconds a switched WAL segment may take to reach the repository."""
FLOW_ROWS = 50
"""Acknowledged rows before the backup starts: the writer is in full flow."""
ROWS_AFTER_TARGET = 20
"""Rows acknowledged after the target time before the WAL is switched: rows the restore must not hold."""
MARKER_ROWS = 100
SCRATCH_PORT = 5499
"""The restored PostgreSQL's port, on a Unix socket of its own only (no TCP)."""
SCRATCH_SETTINGS = (
    f"port={SCRATCH_PORT}", "listen_addresses=''", "archive_mode=off", "synchronous_standby_names=''",
    "logging_collector=off", "shared_buffers=32MB",
)  # fmt: skip
"""Overrides of the restored member's own postgresql.conf: a throwaway copy must not archive into
the live stanza, wait for a synchronous standby, write into the member's log directory, or listen
beside the member."""
BACKUP_FROM_STANDBY = "replay on the standby reached"
"""pgBackRest's log line once the standby it copies the files from has replayed to the backup's start."""


@dataclass(frozen=True)
class BackupDrillResult:
    """What the drill saw; the restored server's answers are what the tests judge."""

    backup: dict[str, Any]
    """The full backup as `pgbackrest info` lists it."""
    backup_output: str
    backup_seconds: float
    """The full backup, from the command's start to its end, under writes."""
    archive_seconds: float
    """From the WAL switch after markers B until the segment is in the repository."""
    restore_seconds: float
    """The restore to T, the restored server's start and recovery until it promoted, its stop."""
    target: str
    """The primary's clock between markers A and B, the restore's target time."""
    archived_segment: str
    restored_markers: dict[str, int]
    """Marker rows per batch ("A", "B") the restored server holds."""
    acknowledged_before_target: frozenset[int]
    """Writer rows acknowledged before the target was read."""
    acknowledged_after_target: frozenset[int]
    """Writer rows whose statement was sent after the target was read, and acknowledged."""
    restored_rows: frozenset[int]
    restored_wal_inside: bool
    """Whether the restored pg_wal is inside the scratch directory, not the live member's WAL."""
    restored_log: str
    switched_from: str
    switched_to: str
    new_leader_segment: str
    """A segment the new leader switched after the switchover, on its timeline."""
    archive_max_after_switchover: str


def pgbackrest(cluster: SmokeCluster, host: str, *arguments: str, settings: tuple[str, ...] = ()) -> str:
    """A pgbackrest command for the cluster's stanza on a host, as postgres, with the host's files
    (and `settings`, more `NAME=value`); its output, or an error carrying it."""
    argv = ["env", *cluster.pgbackrest_environment(host), *settings, "pgbackrest", f"--stanza={BACKUP_STANZA}", "--log-level-console=info", *arguments]
    result = cluster.network.run(host, "postgres", argv, home=cluster.hosts[host].root, timeout=COMMAND_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"pgbackrest {' '.join(arguments)} on {host} failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def repository_info(cluster: SmokeCluster) -> dict[str, Any]:
    """The stanza as `pgbackrest info` on the repository host reads repo1."""
    (stanza,) = json.loads(cluster.network.run(
        BACKUP_HOST, "postgres",
        ["env", *cluster.pgbackrest_environment(BACKUP_HOST), "pgbackrest", f"--stanza={BACKUP_STANZA}", "--output=json", "info"],
        home=cluster.hosts[BACKUP_HOST].root, timeout=COMMAND_TIMEOUT,
    ).stdout)  # fmt: skip
    return stanza


def archive_max(cluster: SmokeCluster) -> str:
    """The newest WAL segment in the repository's archive (segment names sort by timeline, then position)."""
    return max((archive.get("max") or "" for archive in repository_info(cluster)["archive"]), default="")


def wait_archived(cluster: SmokeCluster, segment: str) -> str:
    return wait_until(
        f"WAL segment {segment} in the repository", lambda: ((newest := archive_max(cluster)) >= segment and newest) or None, timeout=ARCHIVE_TIMEOUT
    )


def switch_wal(smoke: Smoke, conninfo: dict[str, str | int]) -> str:
    """Closes the current WAL segment of the server behind `conninfo`; its name."""
    ((segment,),) = smoke.sql(conninfo, "SELECT pg_walfile_name(pg_switch_wal())")
    return segment


def ensure_stanza(cluster: SmokeCluster) -> None:
    """The stanza created and WAL archiving checked, as the backup agent's start does
    (`stanza-create`, `check`); run now rather than at the agent's next retry, a minute after its
    first try, which came before any primary (both commands change nothing when done already)."""
    for command in ("stanza-create", "check"):
        pgbackrest(cluster, BACKUP_HOST, command)


def switchover(smoke: Smoke) -> tuple[str, str]:
    """A planned switchover to the synchronous standby with patronictl on the leader's host (its
    rendered patroni.yml's `ctl` section); the old and new leader, once the cluster is formed again."""
    cluster = smoke.cluster
    members = wait_until("a formed cluster before the switchover", lambda: formed(smoke), timeout=RECOVERY_TIMEOUT, interval=1)
    (leader,) = [m["name"] for m in members if m["role"] == "leader"]
    (candidate,) = [m["name"] for m in members if m["role"] in SYNCHRONOUS_ROLES]
    worker = cluster.worker(leader)
    host = cluster.hosts[worker]
    argv = [
        str(cluster.venv / "bin/patronictl"), "-c", host.paths.secret(patroni_config_secret(cluster.member(worker))),
        "switchover", "--leader", leader, "--candidate", candidate, "--force",
    ]  # fmt: skip
    result = cluster.network.run(worker, "postgres", argv, home=host.root, timeout=RECOVERY_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"patronictl switchover failed: {result.stdout}{result.stderr}")
    survivor = next(w for w in WORKERS if w != worker)
    wait_until(
        f"{candidate} leading a formed cluster",
        lambda: ((now := formed(smoke, survivor)) and any(m["name"] == candidate and m["role"] == "leader" for m in now)) or None,
        timeout=RECOVERY_TIMEOUT, interval=1,
    )  # fmt: skip
    return leader, candidate


@dataclass(frozen=True)
class Scratch:
    """A data directory restored on a database host, and the standalone server on it."""

    cluster: SmokeCluster
    worker: str
    directory: Path

    @property
    def data(self) -> Path:
        return self.directory / "pgdata"

    @property
    def sockets(self) -> Path:
        return self.directory / "run"

    @property
    def log(self) -> Path:
        return self.directory / "postgresql.log"

    @property
    def settings(self) -> tuple[str, ...]:
        """pgBackRest's settings for the scratch directory: the host's files, and the new data
        directory as pg1, also for the restore command the restored server runs (archive-get writes
        `%p` relative to it)."""
        return (*self.cluster.pgbackrest_environment(self.worker), f"PGBACKREST_PG1_PATH={self.data}")

    def run(self, argv: list[str]) -> str:
        result = self.cluster.network.run(self.worker, "postgres", ["env", *self.settings, *argv], home=self.directory, timeout=COMMAND_TIMEOUT)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result.stdout

    def start(self) -> None:
        options = " ".join(f"-c {setting}" for setting in (*SCRATCH_SETTINGS, f"unix_socket_directories='{self.sockets}'"))
        self.run([f"{Paths().postgres_bin}/pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(COMMAND_TIMEOUT)), "-o", options, "start"])

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run([f"{Paths().postgres_bin}/pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def promoted(self) -> bool | None:
        """True once the restored server has ended recovery (None until then, for `wait_until`)."""
        return self.sql("SELECT pg_is_in_recovery()") == [["f"]] or None

    def sql(self, statement: str) -> list[list[str]]:
        """Rows of a statement on the restored server, through its socket, as postgres (peer)."""
        connection = ("-h", str(self.sockets), "-p", str(SCRATCH_PORT), "-d", DATABASE_NAME)
        psql = [f"{Paths().postgres_bin}/psql", "-X", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", *connection, "-c", statement]
        return [line.split("|") for line in self.run(psql).splitlines() if line]


def _restore(scratch: Scratch, target: str) -> None:
    """The backup restored to `target` into the scratch directory the way a database host restores
    (its rendered config reaching the repository host over TLS), recovering to the target and promoting."""
    for directory in (scratch.data, scratch.sockets):
        directory.mkdir(mode=0o700, parents=True)
        shutil.chown(directory, "postgres", "postgres")
    shutil.chown(scratch.directory, "postgres", "postgres")
    scratch.run([
        "pgbackrest", f"--stanza={BACKUP_STANZA}", "--log-level-console=info", "--type=time", f"--target={target}", "--target-action=promote",
        f"--recovery-option=restore_command={RESTORE_COMMAND}", "restore",
    ])  # fmt: skip


def _restored(scratch: Scratch, target: str, markers: str, rows: str) -> tuple[dict[str, int], frozenset[int], bool, str]:
    """Restore to `target`, start the restored server and read what it holds: marker rows per
    batch, writer rows, whether its pg_wal is its own, and its log; the scratch directory is
    stopped and removed afterwards, whatever happened."""
    try:
        _restore(scratch, target)
        wal_inside = (scratch.data / "pg_wal").resolve().is_relative_to(scratch.data)
        scratch.start()
        wait_until("the restored server: recovery ended with a promotion", scratch.promoted, timeout=COMMAND_TIMEOUT)
        restored_markers = {batch: int(count) for batch, count in scratch.sql(f"SELECT batch, count(*) FROM {markers} GROUP BY batch")}
        restored_rows = frozenset(int(row) for (row,) in scratch.sql(f"SELECT id FROM {rows}"))
    finally:
        log = scratch.log.read_text(errors="replace") if scratch.log.exists() else ""
        try:
            scratch.stop()
        finally:
            shutil.rmtree(scratch.directory, ignore_errors=True)
    return restored_markers, restored_rows, wal_inside, log


def run_backup_drill(smoke: Smoke) -> BackupDrillResult:
    """The drill; raises naming the step that did not happen. Leaves the cluster formed, with its
    leader switched over, and nothing of its own behind but the repository's contents."""
    cluster = smoke.cluster
    wait_until("a formed cluster before the drill", lambda: formed(smoke), timeout=RECOVERY_TIMEOUT, interval=1)
    ensure_stanza(cluster)
    token = secrets.token_hex(4)
    rows, markers = f"pitr_rows_{token}", f"pitr_markers_{token}"
    primary = smoke.through_haproxy(Port.HAPROXY_PRIMARY)
    smoke.sql(primary, f"CREATE TABLE {rows} (id bigint PRIMARY KEY)")
    smoke.sql(primary, f"CREATE TABLE {markers} (id integer PRIMARY KEY, batch text NOT NULL)")
    writer = Writer(cluster.network.namespace(CLIENT), primary, rows, "haproxy")
    writer_client = NamespaceClient(writer.namespace)
    try:
        writing = writer_client.submit(writer.run)
        wait_until("the writer in full flow", lambda: len(writer.acknowledged) >= FLOW_ROWS or None, timeout=RECOVERY_TIMEOUT)
        backup_started = time.monotonic()
        backup_output = pgbackrest(cluster, BACKUP_HOST, "--type=full", "--repo=1", "backup")
        backup_seconds = time.monotonic() - backup_started
        # pgBackRest keeps the stop time in whole seconds and restores to a time only from a backup
        # that stopped before it: on a quiet machine the target fell in the backup's last second.
        stopped = repository_info(cluster)["backup"][-1]["timestamp"]["stop"]
        wait_until("the clock a second past the backup's recorded stop", lambda: time.time() > stopped + 1 or None, timeout=RECOVERY_TIMEOUT, interval=0.1)
        smoke.sql(primary, f"INSERT INTO {markers} SELECT id, 'A' FROM generate_series(1, {MARKER_ROWS}) AS id")
        before_target = time.monotonic()
        ((target,),) = smoke.sql(primary, "SELECT clock_timestamp()::text")
        after_target = time.monotonic()
        smoke.sql(primary, f"INSERT INTO {markers} SELECT id, 'B' FROM generate_series({MARKER_ROWS + 1}, {2 * MARKER_ROWS}) AS id")
        wait_until("writes after the target", lambda: len(writer.acknowledged_after(after_target)) >= ROWS_AFTER_TARGET or None, timeout=RECOVERY_TIMEOUT)
        switched_at = time.monotonic()
        archived = wait_archived(cluster, switch_wal(smoke, primary))
        archive_seconds = time.monotonic() - switched_at
    finally:
        writer.stop()
        writer_client.close()
    writing.result(timeout=RECOVERY_TIMEOUT)
    backups = repository_info(cluster)["backup"]
    acknowledged = writer.acknowledged
    scratch = Scratch(cluster, WORKERS[0], cluster.hosts[WORKERS[0]].root / f"restore-{token}")
    restore_started = time.monotonic()
    restored_markers, restored_rows, restored_wal_inside, restored_log = _restored(scratch, target, markers, rows)
    restore_seconds = time.monotonic() - restore_started
    switched_from, switched_to = switchover(smoke)
    new_primary = smoke.direct(cluster.worker(switched_to))
    smoke.sql(new_primary, f"INSERT INTO {markers} VALUES ({2 * MARKER_ROWS + 1}, 'C')")
    new_leader_segment = switch_wal(smoke, new_primary)
    archive_max_after_switchover = wait_archived(cluster, new_leader_segment)
    smoke.sql(smoke.through_haproxy(Port.HAPROXY_PRIMARY), f"DROP TABLE {rows}, {markers}")
    return BackupDrillResult(
        backup=backups[-1],
        backup_output=backup_output,
        backup_seconds=backup_seconds,
        archive_seconds=archive_seconds,
        restore_seconds=restore_seconds,
        target=target,
        archived_segment=archived,
        restored_markers=restored_markers,
        acknowledged_before_target=frozenset(a.row for a in acknowledged if a.at < before_target and a.row is not None),
        acknowledged_after_target=frozenset(a.row for a in acknowledged if a.sent_at > after_target and a.row is not None),
        restored_rows=restored_rows,
        restored_wal_inside=restored_wal_inside,
        restored_log=restored_log,
        switched_from=switched_from,
        switched_to=switched_to,
        new_leader_segment=new_leader_segment,
        archive_max_after_switchover=archive_max_after_switchover,
    )
