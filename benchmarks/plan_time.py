"""Wall time of the offline plan, as a user runs it: a fresh `python -m review plan` process per run.

Usage: .venv/bin/python benchmarks/plan_time.py [--stack prod] [--runs 5]
Prints every run's wall time, then the median and the slowest, and the machine's CPU count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Runs the plan `--runs` times and reports the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    timings: list[float] = []
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "plan.json"
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "review", "plan", "--stack", args.stack, "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
            timings.append(time.perf_counter() - started)
    print(f"offline plan of stack {args.stack}: {args.runs} runs, each a new process (`python -m review plan --stack {args.stack}`), {os.cpu_count()} CPUs")
    print("runs (s): " + " ".join(f"{t:.2f}" for t in timings))
    print(f"median {statistics.median(timings):.2f} s, slowest {max(timings):.2f} s (target: 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
