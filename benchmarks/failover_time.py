"""Recovery from a primary node failure as a client sees it, on the real cluster of the smoke run.

Usage (as root, from the repository root): .venv/bin/python -m benchmarks.failover_time [--runs 3]

Starts the smoke run's cluster once (etcd ×3, Patroni/PostgreSQL 15 ×3, HAProxy, PgBouncer from
the program's rendered files, in network namespaces) and runs the failover drill `--runs` times
(tests/cluster/drill.py): each time the current leader's host crashes under continuous writes
through HAProxy's primary route and is restarted to rejoin, so the crashed member changes from run
to run. Prints for each run the time from the crash to the first write acknowledged through HAProxy
(the RTO a client sees), to a new leader in Patroni's /cluster, and the rows acknowledged before the
crash against those present on the new leader; then the median and the slowest against the
RTO target of 30 s (design §5.3). Exits 1 if an acknowledged row was lost. Everything is torn down on leaving,
also on a failure, SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from tests.cluster.drill import DrillResult, run_drill
from tests.cluster.lifecycle import benchmark_cluster

TARGET_RTO = 30.0
"""Seconds: the RTO of design §5.3 for the production database."""

STARTUP_BUDGET = 120
DRILL_BUDGET = 180
"""Seconds the watchdog allows for the cluster's start and for each drill (three recovery bounds and more)."""


def _describe(run: int, result: DrillResult) -> str:
    return (
        f"run {run}: crashed leader {result.crashed} ({result.processes_killed} processes killed), new leader {result.new_leader}; "
        f"new leader in /cluster after {result.to_new_leader:.1f} s, first write through HAProxy after {result.to_first_write:.1f} s; "
        f"rows acknowledged before the crash {result.acknowledged_before_crash}, present after {result.present_before_crash} "
        f"(all acknowledged {result.acknowledged}, missing {len(result.missing)}, in doubt {result.in_doubt}); "
        f"rejoined by {result.rejoin} in {result.to_rejoin:.1f} s"
    )


def _spread(name: str, seconds: list[float]) -> str:
    return f"{name}: median {statistics.median(seconds):.1f} s, slowest {max(seconds):.1f} s"


def main() -> int:
    """Runs the drills and reports the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs: int = args.runs
    results: list[DrillResult] = []
    with benchmark_cluster(STARTUP_BUDGET + runs * DRILL_BUDGET) as smoke:
        for run in range(1, runs + 1):
            results.append(run_drill(smoke))
            print(_describe(run, results[-1]), flush=True)
    print(
        f"primary failover on the smoke run's cluster: {runs} drills, each crashing the current leader's host (SIGKILL of every process in "
        f"its namespace) under continuous writes through HAProxy's primary route (TLS), Patroni timing as rendered; {os.cpu_count()} CPUs"
    )
    print(_spread("RTO, crash to first write through HAProxy", [r.to_first_write for r in results]) + f" (target: < {TARGET_RTO:.0f} s)")
    print(_spread("crash to new leader in Patroni's /cluster", [r.to_new_leader for r in results]))
    lost = sum(len(r.missing) for r in results)
    print(f"acknowledged rows lost: {lost} (target: 0)")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
