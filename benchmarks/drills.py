"""The drill lab's figures: every drill of tests/cluster/drill.py, `--runs` times, on one cluster
of the smoke run (etcd ×3, Patroni/PostgreSQL 15 ×3, HAProxy, PgBouncer ×2 from the program's
rendered files, in network namespaces).

Usage (as root, from the repository root):

    .venv/bin/python -m benchmarks.drills [--runs 3] [--drill NAME ...] [--out DIR]

Each drill writes through HAProxy and both PgBouncers all along, with the split-brain prober in
the old leader's host (tests/cluster/drill.py says what each figure is). Prints one line per drill
run, then per drill the median, p95 (nearest rank) and slowest of: the time to a new leader, to the
first write acknowledged through each path, the longest gap between acknowledgements on each
path, how long the old leader still answered as primary, and the time until the cluster was whole
again; then the issue's goals, each met or missed. Writes `DIR/drills.json` (every run) and
`DIR/drills.svg` (per drill, the acknowledged writes of its last run on a timeline, and every
run's time to the first write). Exits 1 if any acknowledged row was lost or the old leader
acknowledged a write after losing its leadership. Everything is torn down on leaving, also on a
failure, SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from tests.cluster.drill import ASYNC_PATH, DRILLS, DrillReport, run_drill
from tests.cluster.lifecycle import benchmark_cluster

STARTUP_BUDGET = 150
DRILL_BUDGET = 180
"""Seconds the watchdog allows for the cluster's start and for each drill run."""

FAILOVER_GOAL = 20.0
"""Seconds: crash, partition and freeze, first write through each path at p95 (issue 14)."""
FENCING_GOAL = 20.0
"""Seconds: a cut-off old primary read-only or stopped after the cut."""
SWITCHOVER_GOAL = 3.0
"""Seconds: writes unavailable in a planned switchover (the longest gap between acknowledgements)."""

CLIENT_PATHS = ("haproxy", "pgbouncer")


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: with few runs, a value that was measured, never interpolated."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class Figure:
    """One measure of one drill across its runs."""

    drill: str
    name: str
    values: tuple[float, ...]

    def line(self) -> str:
        """The measure's spread, as printed."""
        values = self.values
        spread = f"median {statistics.median(values):.1f} s, p95 {percentile(values, 0.95):.1f} s, slowest {max(values):.1f} s"
        return f"  {self.name}: {spread} ({len(values)} runs)"


def _measures(report: DrillReport) -> dict[str, float | None]:
    measures: dict[str, float | None] = {"to new leader": report.to_new_leader}
    for path in CLIENT_PATHS:
        measures[f"first write through {path}"] = report.paths[path].first_write
        measures[f"longest gap through {path}"] = report.paths[path].longest_gap
    measures["old leader answering as primary until"] = report.old_primary_until
    measures["cluster whole again"] = report.to_whole
    return measures


def figures(reports: Sequence[DrillReport]) -> list[Figure]:
    """Every measure of every drill, over the runs that have it."""
    found: list[Figure] = []
    for drill in dict.fromkeys(report.drill for report in reports):
        runs = [_measures(report) for report in reports if report.drill == drill]
        for name in runs[0]:
            values = tuple(value for run in runs if (value := run[name]) is not None)
            if values:
                found.append(Figure(drill, name, values))
    return found


def _values(reports: Sequence[DrillReport], drill: str, measure: Callable[[DrillReport], float | None]) -> list[float]:
    return [value for report in reports if report.drill == drill and (value := measure(report)) is not None]


def goals(reports: Sequence[DrillReport]) -> list[tuple[str, bool]]:
    """The issue's goals that the drills run measured, each with whether it was met."""
    met: list[tuple[str, bool]] = []
    for drill in ("primary-crash", "primary-partition", "primary-freeze"):
        for path in CLIENT_PATHS:
            values = _values(reports, drill, lambda r, p=path: r.paths[p].first_write)
            if values:
                p95 = percentile(values, 0.95)
                met.append((f"{drill}: first write through {path} p95 {p95:.1f} s ≤ {FAILOVER_GOAL:.0f} s", p95 <= FAILOVER_GOAL))
    fenced = _values(reports, "primary-partition", lambda r: r.old_primary_until or 0.0)
    if fenced:
        fenced_after = max(fenced)
        goal = f"primary-partition: old primary answered as primary at most {fenced_after:.1f} s after the cut ≤ {FENCING_GOAL:.0f} s"
        met.append((goal, fenced_after <= FENCING_GOAL))
    for path in CLIENT_PATHS:
        gaps = _values(reports, "switchover", lambda r, p=path: r.paths[p].longest_gap)
        if gaps:
            met.append((f"switchover: writes through {path} unavailable at most {max(gaps):.1f} s ≤ {SWITCHOVER_GOAL:.0f} s", max(gaps) <= SWITCHOVER_GOAL))
    quorum = [report for report in reports if report.drill == "etcd-quorum-loss"]
    if quorum:
        kept = all(report.writes_during_fault["haproxy"] > 0 and report.leader_after == report.leader_before for report in quorum)
        met.append(("etcd-quorum-loss: writes went on and the leader stayed in every run", kept))
    return met


def violations(reports: Sequence[DrillReport]) -> list[str]:
    """What must never happen, whatever the timing."""
    found: list[str] = []
    for report in reports:
        lost = {path: p.lost for path, p in report.paths.items() if path != ASYNC_PATH and p.lost}
        if lost:
            found.append(f"{report.drill}: acknowledged rows lost {lost}")
        if DRILLS[report.drill].failover and report.old_primary_acknowledged:
            found.append(f"{report.drill}: the old leader acknowledged {report.old_primary_acknowledged} writes after the fault")
        if any(report.missing_on_members.values()):
            found.append(f"{report.drill}: members lack acknowledged rows {report.missing_on_members}")
    return found


def describe(run: int, report: DrillReport) -> str:
    """One drill run's line."""
    paths = ", ".join(
        f"{path}: first write {p.first_write if p.first_write is not None else '-'} s, longest gap {p.longest_gap} s, "
        f"{p.acknowledged} acknowledged, {p.in_doubt} in doubt, {p.refused} refused, {p.lost} lost"
        for path, p in report.paths.items()
    )
    return (
        f"run {run} {report.drill}: leader {report.leader_before} → {report.leader_after} (new leader after {report.to_new_leader} s), "
        f"recovered at {report.recovered_at} s, whole at {report.to_whole} s; old leader acknowledged {report.old_primary_acknowledged}, "
        f"in doubt {report.old_primary_in_doubt}, primary until {report.old_primary_until} s; {paths}; {report.details}"
    )


PANEL_WIDTH = 900
PANEL_HEIGHT = 120
MARGIN = 150
PATH_COLOURS = {"haproxy": "#1f77b4", "pgbouncer": "#2ca02c", ASYNC_PATH: "#d62728"}


def render_svg(reports: Sequence[DrillReport]) -> str:
    """Per drill, its last run's acknowledged writes on a timeline from the fault (one row per
    client path, a tick per acknowledgement, the new leader, the recovery and the cluster whole
    marked), and beside it every run's time to the first write through each path. Pure: the same
    reports give the same file.
    """
    last = {report.drill: report for report in reports}
    span = max([report.to_whole for report in last.values()] + [1.0]) + 2
    scale = (PANEL_WIDTH - MARGIN - 260) / (span + 2)
    height = PANEL_HEIGHT * len(last) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PANEL_WIDTH}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<text x="{MARGIN}" y="16" font-size="13">Acknowledged writes around each fault (last run; seconds from the fault)</text>',
        f'<text x="{PANEL_WIDTH - 240}" y="16" font-size="13">First write, every run</text>',
    ]

    def x(seconds: float) -> float:
        return round(MARGIN + (seconds + 2) * scale, 1)

    for index, (drill, report) in enumerate(last.items()):
        top = 30 + index * PANEL_HEIGHT
        parts.append(f'<text x="4" y="{top + 14}" font-weight="bold">{escape(drill)}</text>')
        parts.append(f'<line x1="{x(0)}" y1="{top}" x2="{x(0)}" y2="{top + PANEL_HEIGHT - 30}" stroke="black"/>')
        moments = (("new leader", report.to_new_leader, "#9467bd"), ("recovered", report.recovered_at, "#ff7f0e"), ("whole", report.to_whole, "#7f7f7f"))
        for label, at, colour in moments:
            if at is not None:
                parts.append(f'<line x1="{x(at)}" y1="{top}" x2="{x(at)}" y2="{top + PANEL_HEIGHT - 30}" stroke="{colour}" stroke-dasharray="4 2"/>')
                parts.append(f'<text x="{x(at) + 2}" y="{top + PANEL_HEIGHT - 20}" fill="{colour}">{label}</text>')
        for row, (path, path_report) in enumerate(report.paths.items()):
            y = top + 20 + row * 18
            colour = PATH_COLOURS.get(path, "#000000")
            parts.append(f'<text x="4" y="{y + 4}" fill="{colour}">{escape(path)}</text>')
            ticks = " ".join(f"M{x(at)} {y - 5}v10" for at in path_report.acknowledged_at if at <= span)
            if ticks:
                parts.append(f'<path d="{ticks}" stroke="{colour}" stroke-width="0.6"/>')
        for row, path in enumerate(CLIENT_PATHS):
            times = _values(reports, drill, lambda r, p=path: r.paths[p].first_write)
            y = top + 20 + row * 18
            for at in times:
                parts.append(f'<circle cx="{round(PANEL_WIDTH - 240 + at * 200 / span, 1)}" cy="{y}" r="3" fill="{PATH_COLOURS[path]}"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> int:
    """Runs the drills and reports the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--drill", action="append", choices=sorted(DRILLS), help="a drill to run (repeatable; default: all)")
    parser.add_argument("--out", type=Path, default=Path("."), help="where drills.json and drills.svg go")
    args = parser.parse_args()
    runs: int = args.runs
    selected: list[str] = args.drill or list(DRILLS)
    reports: list[DrillReport] = []
    with benchmark_cluster(STARTUP_BUDGET + runs * len(selected) * DRILL_BUDGET) as smoke:
        for run in range(1, runs + 1):
            for name in selected:
                reports.append(run_drill(smoke, DRILLS[name]))
                print(describe(run, reports[-1]), flush=True)
    print(
        f"\ndrills on the smoke run's cluster: {runs} run(s) of {', '.join(selected)}; writers through HAProxy's primary route (superuser) and "
        f"both PgBouncers (app_user), TLS, a row per statement every 10 ms, commits cancelled after 5 s; Patroni timing as rendered; {os.cpu_count()} CPUs"
    )
    drill = ""
    for figure in figures(reports):
        if figure.drill != drill:
            drill = figure.drill
            print(f"{drill} ({DRILLS[drill].summary}):")
        print(figure.line())
    print("\ngoals:")
    for goal, met in goals(reports):
        print(f"  {'met   ' if met else 'MISSED'} {goal}")
    found = violations(reports)
    print("\ninvariants: " + ("; ".join(found) if found else "no acknowledged row lost, no write acknowledged by a deposed leader"))
    args.out.mkdir(parents=True, exist_ok=True)
    document = {"cpus": os.cpu_count(), "runs": [report.to_json() for report in reports]}
    (args.out / "drills.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    (args.out / "drills.svg").write_text(render_svg(reports))
    print(f"wrote {args.out / 'drills.json'} and {args.out / 'drills.svg'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
