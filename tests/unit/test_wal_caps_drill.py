"""The WAL caps drills' bookkeeping (tests/cluster/wal_caps_drill.py), without a cluster: Patroni's
slot names, the bound the leader's pg_wal is held to, and what a WAL directory says."""

from __future__ import annotations

from pathlib import Path

from dpc.sizing import wal_budget
from tests.cluster.hosts import SMALL_DISK_BYTES
from tests.cluster.wal_caps_drill import BATCH, oldest_segment_lsn, pg_wal_bound_bytes, ready_segments, slot_name

MB = 1024 * 1024


def test_a_members_slot_is_named_as_patroni_names_it() -> None:
    assert slot_name("patroni-3") == "patroni_3"
    assert slot_name("Patroni.A-1") == "patroni_a_1"


def test_the_leaders_pg_wal_bound_fits_inside_the_runs_wal_volume() -> None:
    """wal_keep_size (2 GB, above the 4 GiB volume's 272 MB caps) + max_wal_size (1 GB) + a batch
    of switches and two segments: 3,232 MB, under the 3,809 MB the budget leaves for files."""
    wal = wal_budget(SMALL_DISK_BYTES // 1024**3)
    assert BATCH == 8
    assert pg_wal_bound_bytes(wal) == (2048 + 1024 + 10 * 16) * MB
    assert pg_wal_bound_bytes(wal) < (wal.volume_mb - wal.filesystem_mb) * MB


def test_a_wal_directory_tells_its_oldest_segment_and_its_queue(tmp_path: Path) -> None:
    (tmp_path / "archive_status").mkdir()
    for name in ("00000002000000010000000A", "000000020000000100000003", "000000020000000100000004.partial", "00000002.history"):
        (tmp_path / name).touch()
    for name in ("000000020000000100000003.done", "00000002000000010000000A.ready"):
        (tmp_path / "archive_status" / name).touch()

    assert oldest_segment_lsn(tmp_path) == (1 << 32) + 3 * 16 * MB
    assert ready_segments(tmp_path) == 1
