"""Backup and point-in-time restore of the running cluster (design §4.3), proven by marker rows
(tests/cluster/backup_drill.py). The tests check that:

- the full backup was taken from a standby, as rendered (`backup-standby`), while writes went on;
- the WAL switched after marker rows B reached the repository through the members' archive_command;
- the restore to T holds every marker row A and none of B, every writer row acknowledged before T
  and none of those sent after it: recovery stopped at T, not at the backup's end nor at the
  archive's;
- the restored server's WAL is its own (the live member's WAL directory untouched) and its WAL
  came through the rendered restore_command;
- after a switchover the new leader archives to the same stanza, on its new timeline.

The drill leaves the cluster formed with its leader switched over; other modules pass in any order.
"""

from __future__ import annotations

import pytest

from tests.cluster.backup_drill import MARKER_ROWS, BackupDrillResult, run_backup_drill
from tests.cluster.hosts import Phases
from tests.cluster.smoke import Smoke

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def drill(smoke: Smoke, phases: Phases) -> BackupDrillResult:
    with phases.phase("backup and restore drill"):
        return run_backup_drill(smoke)


def test_a_full_backup_from_a_standby(drill: BackupDrillResult) -> None:
    assert drill.backup["type"] == "full", drill.backup
    assert "replay on the standby reached" in drill.backup_output, drill.backup_output
    assert drill.backup["error"] is False, drill.backup


def test_the_restore_holds_markers_a_and_not_b(drill: BackupDrillResult) -> None:
    assert drill.restored_markers == {"A": MARKER_ROWS}, drill.restored_markers


def test_every_row_acknowledged_before_the_target_is_restored(drill: BackupDrillResult) -> None:
    assert drill.acknowledged_before_target, "the writer acknowledged nothing before the target"
    missing = drill.acknowledged_before_target - drill.restored_rows
    assert not missing, f"{len(missing)} rows acknowledged before {drill.target} missing after the restore"


def test_no_row_sent_after_the_target_is_restored(drill: BackupDrillResult) -> None:
    assert drill.acknowledged_after_target, "the writer acknowledged nothing after the target"
    assert not drill.acknowledged_after_target & drill.restored_rows


def test_recovery_stopped_at_the_target_through_the_archive(drill: BackupDrillResult) -> None:
    assert "recovery stopping before commit of transaction" in drill.restored_log, drill.restored_log[-3000:]
    assert "restored log file" in drill.restored_log and "from archive" in drill.restored_log, drill.restored_log[-3000:]
    assert drill.restored_wal_inside, "the restored pg_wal points outside the scratch directory"


def test_the_new_leader_archives_to_the_same_stanza(drill: BackupDrillResult) -> None:
    assert drill.switched_to != drill.switched_from
    assert drill.new_leader_segment[:8] > drill.archived_segment[:8], "the switchover's new timeline"
    assert drill.archive_max_after_switchover >= drill.new_leader_segment
