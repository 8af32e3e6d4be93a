"""The drill lab's bookkeeping (tests/cluster/drill.py, benchmarks/drills.py), without a cluster:
how an attempt's outcome is judged, which writes follow a fault, and the report's figures, goals,
invariants and plot.
"""

from __future__ import annotations

from xml.etree import ElementTree

import psycopg
import pytest

from benchmarks.drills import goals, percentile, render_svg, violations
from tests.cluster.drill import ACKNOWLEDGED, IN_DOUBT, REFUSED, Attempt, DrillReport, PathReport, Writer, _outcome  # pyright: ignore[reportPrivateUsage]


def test_writes_after_a_fault_are_those_sent_after_it_whatever_their_connection() -> None:
    writer = Writer("client", {}, "drill", "haproxy")
    writer.attempts.extend(
        [Attempt(1, sent_at=1.0, at=1.1, outcome=ACKNOWLEDGED), Attempt(2, sent_at=4.9, at=12.0, outcome=ACKNOWLEDGED),
         Attempt(3, sent_at=12.1, at=12.2, outcome=ACKNOWLEDGED), Attempt(4, sent_at=12.3, at=17.3, outcome=IN_DOUBT)]
    )  # fmt: skip

    assert [attempt.row for attempt in writer.acknowledged_after(5.0)] == [3]
    assert [attempt.row for attempt in writer.acknowledged_after(4.0)] == [2, 3]


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), IN_DOUBT),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), IN_DOUBT),
        (psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"), REFUSED),
        (psycopg.errors.QueryCanceled("canceling statement due to user request"), REFUSED),
        (psycopg.errors.UniqueViolation("duplicate key"), REFUSED),
    ],
)
def test_a_statement_whose_connection_died_is_in_doubt_and_one_the_server_refused_is_not(error: psycopg.Error, outcome: str) -> None:
    assert _outcome(error) == outcome


def _report(drill: str, *, first_write: float = 15.0, gap: float = 16.0, lost: int = 0, old_acks: int = 0, until: float | None = None) -> DrillReport:
    path = PathReport(
        acknowledged=500, refused=3, in_doubt=1, lost=lost, first_write=first_write, longest_gap=gap, acknowledged_at=(first_write, first_write + 0.5),
        errors={"server closed the connection unexpectedly": 3},
    )
    return DrillReport(
        drill=drill, leader_before="patroni-1", sync_before="patroni-2", leader_after="patroni-2", to_new_leader=12.0, recovered_at=20.0,
        to_whole=30.0, paths={"haproxy": path, "pgbouncer": path}, old_primary_acknowledged=old_acks, old_primary_in_doubt=2,
        old_primary_until=until, missing_on_members={"patroni-1": 0}, writes_during_fault={"haproxy": 0, "pgbouncer": 0}, details={},
    )  # fmt: skip


def test_percentiles_are_measured_values_never_interpolated() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0], 0.95) == 19.0
    assert percentile([4.0], 0.5) == 4.0


def test_goals_are_judged_on_p95_and_on_the_worst_run() -> None:
    met = dict(goals([_report("primary-crash", first_write=15.0), _report("primary-crash", first_write=25.0), _report("switchover", gap=2.5)]))
    assert not met["primary-crash: first write through haproxy p95 25.0 s ≤ 20 s"]
    assert met["switchover: writes through haproxy unavailable at most 2.5 s ≤ 3 s"]
    fenced = dict(goals([_report("primary-partition", until=21.0)]))
    assert not fenced["primary-partition: old primary answered as primary at most 21.0 s after the cut ≤ 20 s"]


def test_a_lost_row_or_a_deposed_leaders_acknowledgement_is_a_violation() -> None:
    assert violations([_report("primary-crash")]) == []
    assert violations([_report("primary-crash", lost=1)]) == ["primary-crash: acknowledged rows lost {'haproxy': 1, 'pgbouncer': 1}"]
    assert violations([_report("primary-freeze", old_acks=2)]) == ["primary-freeze: the old leader acknowledged 2 writes after the fault"]
    assert violations([_report("replica-crash", old_acks=2)]) == [], "a leader that keeps its leadership acknowledges as it should"


def test_the_plot_is_one_deterministic_svg_with_a_panel_per_drill() -> None:
    reports = [_report("primary-crash"), _report("switchover", gap=2.0), _report("primary-crash", first_write=17.0)]
    svg = render_svg(reports)
    assert svg == render_svg(reports)
    root = ElementTree.fromstring(svg)
    labels = [element.text for element in root.iter("{http://www.w3.org/2000/svg}text")]
    assert labels.count("primary-crash") == labels.count("switchover") == 1
    assert len(list(root.iter("{http://www.w3.org/2000/svg}circle"))) == 6, "every run's first write, on both paths"
