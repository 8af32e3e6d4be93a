"""The sizing formula of design §6.1 and §6.2, as pure functions of the machine and the workload,
and the WAL volume's budget (design §5.3): what may take space on it, each part capped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def cores_needed(expected_tps: int) -> int:
    """cores_needed = max(4, expected_tps / 500), rounded up."""
    return max(4, math.ceil(expected_tps / 500))


@dataclass(frozen=True)
class PostgresSizing:
    """PostgreSQL memory and connection settings for one worker."""

    max_connections: int
    shared_buffers_mb: int
    effective_cache_size_mb: int
    work_mem_kb: int


def postgres_sizing(memory_gib: float, expected_concurrent_users: int) -> PostgresSizing:
    """max_connections = users × 1.5 + 100; shared_buffers = RAM / 4; effective_cache_size = RAM × 3/4;
    work_mem = (RAM − shared_buffers) / max_connections / 2.
    """
    ram_mb = int(memory_gib * 1024)
    max_connections = math.ceil(expected_concurrent_users * 1.5) + 100
    shared_buffers_mb = ram_mb // 4
    return PostgresSizing(
        max_connections=max_connections,
        shared_buffers_mb=shared_buffers_mb,
        effective_cache_size_mb=ram_mb * 3 // 4,
        work_mem_kb=(ram_mb - shared_buffers_mb) * 1024 // max_connections // 2,
    )


WAL_SEGMENT_MB = 16
"""PostgreSQL's WAL segment (initdb's default): pg_wal holds, and pgBackRest archives, whole segments."""

MAX_WAL_SIZE_MB = 1024
"""max_wal_size, PostgreSQL's default, rendered so that the WAL volume's budget counts on a value the
cluster is known to run with: a checkpoint starts before this much WAL has been written since the
last one, so the WAL since the last checkpoint and the segments recycled ahead of it stay near it."""

WAL_KEEP_SIZE_MB = 2048
"""wal_keep_size: WAL the primary keeps beyond what slots hold, so that a node rewound after a short
outage finds the WAL it needs on its new primary; after a longer one it fetches segments from the
archive (`restore_command`, design §4.3)."""

FILESYSTEM_SHARE = 0.07
"""The share of a volume PostgreSQL cannot write to: ext4 as the hosts format it (mkfs.ext4's
defaults, components/scripts/dpc-mount-volumes) reserves 5 % for root and takes about 1.6 % for
inode tables and its journal (500 GiB: 466 GiB left for files)."""

WAL_CAP_SHARE = 3 / 8
"""The share of the WAL volume's free part (what the filesystem, max_wal_size and wal_keep_size
leave) each cap takes, the replication slots' and the archive queue's; the last quarter is headroom."""

MIN_WAL_CAP_MB = 16 * WAL_SEGMENT_MB
"""The smallest cap the budget accepts, 16 segments: an archive queue capped lower would drop WAL,
and interrupt point-in-time recovery, on any short stall of the repository host, and a slot capped
lower would be lost over a replica's restart under writes."""


@dataclass(frozen=True)
class WalBudget:
    """What may take space on a member's WAL volume, which holds pg_wal and nothing else (design §4.1).

    A full WAL volume stops the primary, and its restart is not sure to fail over (design §5.3), so
    nothing may grow there without bound. Two things would: the replication slot of a replica that
    is down or far behind (Patroni keeps one per member), and WAL that cannot be archived (PostgreSQL
    keeps every segment until archive_command succeeds). Each is capped: `slot_keep_mb` is
    PostgreSQL's max_slot_wal_keep_size (a slot further behind is invalidated at the next
    checkpoint; its replica catches up from the archive or is re-initialised), `archive_queue_mb`
    pgBackRest's archive-push-queue-max (past it pgBackRest reports the queued segments archived
    without archiving them, with a warning, and point-in-time recovery has a gap until the next
    backup, design §4.3).

    The budget adds every part up as if none overlapped: what the filesystem takes, max_wal_size
    (the WAL since the last checkpoint and the segments recycled ahead of it), wal_keep_size, both
    caps, and the headroom that is left. PostgreSQL keeps WAL back to the oldest segment any of
    them needs, so what they hold overlaps rather than adds up, and pg_wal stays inside the volume
    even with a replica down and the repository unreachable at once; the headroom takes what the
    caps let through between their checks (a slot is invalidated only at a checkpoint, the queue
    weighed only when pgBackRest starts a push, a minute or two apart while the repository is
    unreachable) and checkpoints that fall behind under load.
    """

    volume_mb: int
    slot_keep_mb: int
    archive_queue_mb: int
    max_wal_size_mb: int = MAX_WAL_SIZE_MB
    wal_keep_size_mb: int = WAL_KEEP_SIZE_MB

    @property
    def filesystem_mb(self) -> int:
        """What the filesystem keeps for itself and root."""
        return math.ceil(self.volume_mb * FILESYSTEM_SHARE)

    @property
    def headroom_mb(self) -> int:
        """What the volume keeps free when every part of the budget is full."""
        parts = (self.filesystem_mb, self.max_wal_size_mb, self.wal_keep_size_mb, self.slot_keep_mb, self.archive_queue_mb)
        return self.volume_mb - sum(parts)


def wal_cap_mb(volume_gib: int) -> int:
    """Each cap of a WAL volume of `volume_gib` GiB: 3/8 of what the filesystem, max_wal_size and
    wal_keep_size leave, in whole segments (negative where they leave nothing).
    """
    volume_mb = volume_gib * 1024
    free_mb = volume_mb - math.ceil(volume_mb * FILESYSTEM_SHARE) - MAX_WAL_SIZE_MB - WAL_KEEP_SIZE_MB
    return math.floor(free_mb * WAL_CAP_SHARE / WAL_SEGMENT_MB) * WAL_SEGMENT_MB


MIN_WAL_VOLUME_GIB = next(gib for gib in range(1, 65537) if wal_cap_mb(gib) >= MIN_WAL_CAP_MB)
"""The smallest WAL volume the settings accept (4 GiB): the first whose caps reach `MIN_WAL_CAP_MB`."""


def wal_budget(volume_gib: int) -> WalBudget:
    """The budget of a WAL volume of `volume_gib` GiB (`wal_cap_mb`); the rest is headroom. Prod's
    500 GiB: caps of 173.3 GiB each, 115.5 GiB of headroom; 4 GiB, the smallest accepted: 272 MB
    each, 193 MB.
    """
    cap_mb = wal_cap_mb(volume_gib)
    if cap_mb < MIN_WAL_CAP_MB:
        raise ValueError(f"a WAL volume of {volume_gib} GiB leaves caps of {cap_mb} MB, under {MIN_WAL_CAP_MB} MB: it needs {MIN_WAL_VOLUME_GIB} GiB at least")
    return WalBudget(volume_mb=volume_gib * 1024, slot_keep_mb=cap_mb, archive_queue_mb=cap_mb)
