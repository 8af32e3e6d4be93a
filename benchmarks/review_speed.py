"""How fast a 400-resource change is costed and risk-classed (issue 11: at most 1 s).

Usage: .venv/bin/python benchmarks/review_speed.py [--runs 7]

The change: prod's offline plan (379 resources) as the base; as the head, the same plan grown to
400 resources (21 more firewall rules) with more IOPS on every data volume, a worker moved to
another subnet and the CA re-issued, so that creates, updates and chains of replacements are all
in it. Timed, in this process, after the plans are built and the modules imported (what the review
does for each stack): the diff of the two plans (`review.steps`), the risk classes (`review.risk`)
and the cost (`review.cost`), and the same for the head read as a `pulumi preview --json` of a new
stack. Prints each run and the median and slowest of each; exits 1 when a median is over 1 s.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from review import cost
from review.plan import build_plan
from review.risk import classify
from review.steps import Change, change_between_plans, change_from_digest

TARGET_SECONDS = 1.0
RESOURCES = 400


def _head(base: dict[str, Any]) -> dict[str, Any]:
    """The base grown to RESOURCES resources, with a few changes that replace and update."""
    head = copy.deepcopy(base)
    steps: list[dict[str, Any]] = head["steps"]
    rule = next(s for s in steps if s["newState"]["type"] == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    for n in range(RESOURCES - len(steps)):
        extra = copy.deepcopy(rule)
        extra["urn"] = extra["newState"]["urn"] = f"{rule['urn']}-extra-{n}"
        extra["newState"]["inputs"]["fromPort"] = extra["newState"]["inputs"]["toPort"] = 20000 + n
        steps.append(extra)
    for step in steps:
        state, name = step["newState"], step["urn"].rsplit("::", 1)[1]
        if state["type"] == "aws:ebs/volume:Volume" and name.endswith("-data"):
            state["inputs"]["iops"] = 6000
        if name == "prod-compute-worker-1":
            state["inputs"]["subnetId"] = "subnet-moved"
        if name == "prod-database-ca":
            state["inputs"]["validityPeriodHours"] += 24
    head["changeSummary"] = {"create": len(steps)}
    return head


def _timed(work: Callable[[], Change]) -> tuple[float, int]:
    started = time.perf_counter()
    change = work()
    classify(change)
    cost.estimate(change, sizing=cost.sizing_for(change, None))
    return time.perf_counter() - started, len(change.steps)


def main() -> int:
    """Builds the plans, then times each case `--runs` times."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    base = build_plan("prod")
    head = _head(base)
    cases: dict[str, Callable[[], Change]] = {
        "two offline plans diffed": lambda: change_between_plans(base, head),
        "one preview of a new stack": lambda: change_from_digest(head),
    }
    slow = False
    for label, work in cases.items():
        runs = [_timed(work) for _ in range(args.runs)]
        seconds = [t for t, _ in runs]
        median = statistics.median(seconds)
        slow |= median > TARGET_SECONDS
        print(f"{label} ({runs[0][1]} resources): " + " ".join(f"{t:.3f}" for t in seconds))
        print(f"  median {median:.3f} s, slowest {max(seconds):.3f} s (target: {TARGET_SECONDS:.0f} s)")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
