"""The WAL volume's caps (design §5.3) on the running cluster (tests/cluster/wal_caps_drill.py):
nothing that grows without bound may fill a member's WAL volume. The tests check that:

- the run renders the caps of its own 4 GiB WAL volume, as the product derives them from
  `dpc:storage.wal.sizeGb`, and its members run with them;
- WAL that cannot be archived: archiving fails, then pgBackRest drops the whole queue once it
  passes archive-push-queue-max (the dropped segments never reach the repository: point-in-time
  recovery has a gap until the next backup), PostgreSQL takes them off its queue while the
  repository still refuses, pg_wal stays within its bound, and archiving resumes when the
  repository takes WAL again;
- a replica down: its slot on the leader is invalidated once it would keep more than the larger
  of max_slot_wal_keep_size and wal_keep_size, the leader lets go of the WAL behind that, every
  member's pg_wal stays within its bound, and the replica, started again, catches up from the
  archive (at least every segment the leader no longer had) without being re-initialised, and
  streams again with every acknowledged row;
- in both, writes through HAProxy never stop: every attempt acknowledged, none waiting as long as
  a client's commit timeout, and no acknowledged row lost.

The drills leave the cluster formed; other modules pass in any order.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from dpc.render.backup import PGBACKREST_CONFIG
from dpc.sizing import wal_budget
from tests.cluster.hosts import SMALL_DISK_BYTES, WORKERS, Phases
from tests.cluster.smoke import REPLICA_ROLES, Smoke
from tests.cluster.wal_caps_drill import (
    BATCH,
    OVERSHOOT_SEGMENTS,
    SEGMENT_BYTES,
    ArchiveCapResult,
    SlotCapResult,
    Writes,
    run_archive_cap_drill,
    run_slot_cap_drill,
)

pytestmark = pytest.mark.cluster

MB = 1024 * 1024
RTO_SECONDS = 30.0
"""Design §5.3's recovery time: neither fault may stall writes longer than losing the primary may."""


@pytest.fixture(scope="module")
def archive_drill(smoke: Smoke, phases: Phases) -> ArchiveCapResult:
    with phases.phase("WAL caps: archive queue"):
        return run_archive_cap_drill(smoke)


@pytest.fixture(scope="module")
def slot_drill(smoke: Smoke, phases: Phases) -> SlotCapResult:
    with phases.phase("WAL caps: a replica's slot"):
        return run_slot_cap_drill(smoke)


def test_the_members_run_the_caps_of_their_own_wal_volume(smoke: Smoke) -> None:
    wal = smoke.cluster.layout.wal
    assert wal == wal_budget(SMALL_DISK_BYTES // 1024**3)
    leader = smoke.cluster.worker(smoke.leader()["name"])
    expected = {"max_slot_wal_keep_size": wal.slot_keep_mb, "wal_keep_size": wal.wal_keep_size_mb, "max_wal_size": wal.max_wal_size_mb}
    settings = smoke.sql(smoke.direct(leader), "SELECT name, setting::int FROM pg_settings WHERE name = ANY(%s)", (list(expected),))
    assert dict(settings) == expected, "pg_settings in MB"
    for worker in WORKERS:
        config = configparser.ConfigParser(interpolation=None, strict=False)
        config.read_string(Path(f"{smoke.cluster.hosts[worker].root}{PGBACKREST_CONFIG}").read_text())
        assert config["global"]["archive-push-queue-max"] == f"{wal.archive_queue_mb}MiB", worker


def test_unarchived_wal_is_dropped_once_the_queue_passes_its_cap(archive_drill: ArchiveCapResult) -> None:
    assert archive_drill.archive_failures > 0, "archive_command never failed: the repository took the WAL"
    assert len(archive_drill.dropped) > archive_drill.cap_segments, archive_drill.dropped
    assert archive_drill.dropped_in_repository == (), "a segment reported dropped reached the repository"


def test_the_archive_queue_empties_while_the_repository_still_refuses(archive_drill: ArchiveCapResult) -> None:
    assert archive_drill.ready_after_drop <= 1, archive_drill
    assert archive_drill.peak_ready_segments <= archive_drill.cap_segments + OVERSHOOT_SEGMENTS + 1, archive_drill
    assert archive_drill.peak_pg_wal_bytes <= archive_drill.pg_wal_bound_bytes, archive_drill


def test_archiving_resumes_when_the_repository_takes_wal_again(archive_drill: ArchiveCapResult) -> None:
    assert archive_drill.resumed_segment > max(archive_drill.dropped), archive_drill


def test_writes_go_on_while_wal_cannot_be_archived(archive_drill: ArchiveCapResult) -> None:
    _writes_went_on(archive_drill.writes)
    assert archive_drill.rows > 0 and archive_drill.missing_on_leader == ()


def test_a_lagging_slot_is_invalidated_past_its_cap(slot_drill: SlotCapResult) -> None:
    assert "lost" in slot_drill.statuses, slot_drill.statuses
    assert slot_drill.invalidation_logged, "the leader's PostgreSQL did not log the slot's invalidation"
    assert slot_drill.lost_after_bytes is not None
    assert slot_drill.lost_after_bytes <= slot_drill.slot_keeps_bytes + (BATCH + 1) * SEGMENT_BYTES, slot_drill.lost_after_bytes


def test_the_leader_lets_go_of_the_wal_behind_the_cap(slot_drill: SlotCapResult) -> None:
    assert slot_drill.retained_bytes <= slot_drill.slot_keeps_bytes + (BATCH + 1) * SEGMENT_BYTES, slot_drill.retained_bytes
    assert slot_drill.generated_bytes > slot_drill.retained_bytes, "the leader still holds every segment the replica missed"


def test_pg_wal_stays_within_its_bound_on_the_leader_and_inside_the_volume_everywhere(slot_drill: SlotCapResult) -> None:
    peaks = slot_drill.peak_pg_wal_bytes
    assert len(peaks) == len(WORKERS) - 1
    leader = peaks[slot_drill.leader_worker]
    assert leader <= slot_drill.pg_wal_bound_bytes, f"the leader's pg_wal reached {leader // MB} MB"
    for worker, peak in peaks.items():
        assert peak < slot_drill.volume_files_bytes, f"{worker}: pg_wal reached {peak // MB} MB"


def test_writes_go_on_while_a_replica_is_down(slot_drill: SlotCapResult) -> None:
    _writes_went_on(slot_drill.writes)


def test_the_replica_catches_up_from_the_archive_and_streams_again(slot_drill: SlotCapResult) -> None:
    roles = {m["name"]: (m["role"], m["state"]) for m in slot_drill.members_after}
    assert roles[slot_drill.replica][0] in REPLICA_ROLES and roles[slot_drill.replica][1] == "streaming", roles
    missed = (slot_drill.generated_bytes - slot_drill.retained_bytes) // SEGMENT_BYTES
    assert slot_drill.restored_segments >= missed > 0, (slot_drill.restored_segments, missed)
    assert slot_drill.data_directory_kept, "the replica was re-initialised"
    assert slot_drill.rows > 0
    assert slot_drill.missing_on_leader == (), f"{len(slot_drill.missing_on_leader)} acknowledged rows missing on the leader"
    assert slot_drill.missing_on_replica == (), f"{len(slot_drill.missing_on_replica)} acknowledged rows missing on the replica"


def _writes_went_on(writes: Writes | None) -> None:
    """No write refused (a full WAL volume would stop the primary, and refuse them), and none
    waiting longer than design §5.3 lets a failover take."""
    assert writes is not None
    assert writes.refused == 0 and writes.acknowledged > 0, writes
    assert writes.longest_gap < RTO_SECONDS, f"writes stalled {writes.longest_gap:.1f}s: {writes}"
