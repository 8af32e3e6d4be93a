"""Wall time of the offline plan, as a user runs it: a fresh `python -m review plan` process per run.

Usage: .venv/bin/python benchmarks/plan_time.py [--stack prod] [--runs 5] [--baseline DIR]
Prints every run's wall and CPU time, then the medians and the slowest, and the machine's CPU count.

With `--baseline DIR` (another checkout of the project, such as `git worktree add /tmp/old <commit>`)
the runs alternate between that tree and this one, so that both meet the same conditions on a machine
others share; both are reported. CPU time (user and system, of the process and its threads) moves
less than wall time when other work competes for the cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Timings:
    """The runs of one tree."""

    tree: Path
    wall: list[float] = field(default_factory=list[float])
    cpu: list[float] = field(default_factory=list[float])

    def run(self, stack: str, out: Path) -> None:
        """One plan in a new process, with this tree's code (`-m` imports from the working directory).
        A plan with breaches or mandatory violations (exit 1) is written all the same and timed; a
        stack that cannot be planned (2, or a crash) stops the benchmark.
        """
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "review", "plan", "--stack", stack, "--out", str(out)], cwd=self.tree, check=False, capture_output=True)
        if done.returncode not in {0, 1}:
            raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
        self.wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)

    def report(self) -> str:
        """Each run, then the medians and the slowest."""
        return "\n".join([
            f"{self.tree}:",
            "  wall (s): " + " ".join(f"{t:.2f}" for t in self.wall),
            "  CPU (s):  " + " ".join(f"{t:.2f}" for t in self.cpu),
            f"  median {statistics.median(self.wall):.2f} s, slowest {max(self.wall):.2f} s (target: 5 s); CPU median {statistics.median(self.cpu):.2f} s",
        ])


def main() -> int:
    """Runs the plan `--runs` times (in each tree) and reports the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout of the project, run alternately with this one")
    args = parser.parse_args()
    trees = [Timings(args.baseline.resolve()), Timings(ROOT)] if args.baseline else [Timings(ROOT)]
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "plan.json"
        for run in range(args.runs):
            for timings in trees if run % 2 == 0 else reversed(trees):
                timings.run(args.stack, out)
    command = f"python -m review plan --stack {args.stack}"
    print(f"offline plan of stack {args.stack}: {args.runs} runs per tree, each a new process (`{command}`), {os.cpu_count()} CPUs")
    print("\n".join(timings.report() for timings in trees))
    return 0


if __name__ == "__main__":
    sys.exit(main())
