"""The policy pack's catch rate over the mutation catalogue (tests/unit/policy_mutations.py), and how
long it takes.

Usage (from the repository root): .venv/bin/python -m benchmarks.policy_mutations [--shape up|preview] [--cloud aws|gcp|azure]

Builds the prod plan of the cloud (AWS `prod` and its catalogue by default; `gcp`: `gcp-prod` and the
GCP catalogue; `azure`: `azure-prod` and tests/unit/policy_mutations_azure.py's) in each shape (as the
engine hands it to the pack at `pulumi up`, and as a first
`pulumi preview`), applies every mutation of the catalogue to it one at a time, runs the whole pack
over each, and prints the catch rate per shape and class (issue 10's), every miss with what is known
of why, and the time of the builds and of the judging (wall and CPU). Exits 1 when a shape's rate is
under 95 %, as the test does.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.unit.policy_mutations import GCP_MUTATIONS, GCP_STACK, MUTATIONS, SHAPES, STACK, base_plan, judge, table, under_rate
from tests.unit.policy_mutations_azure import AZURE_MUTATIONS, AZURE_STACK

CATALOGUES = {"aws": (STACK, MUTATIONS), "gcp": (GCP_STACK, GCP_MUTATIONS), "azure": (AZURE_STACK, AZURE_MUTATIONS)}
"""Each cloud's prod stack and the mutations of its plan."""


def main(argv: list[str] | None = None) -> int:
    """Judges the catalogue in the chosen shapes, prints the table and the times; 1 under the rate."""
    parser = argparse.ArgumentParser(description="The policy pack's catch rate over the mutation catalogue.")
    parser.add_argument("--shape", choices=SHAPES, action="append", help="a shape to judge (default: both)")
    parser.add_argument("--cloud", choices=sorted(CATALOGUES), default="aws", help="whose prod plan and catalogue (default: aws)")
    args = parser.parse_args(argv)
    shapes: list[str] = args.shape or list(SHAPES)
    stack, mutations = CATALOGUES[args.cloud]
    started, cpu = time.perf_counter(), time.process_time()
    for shape in shapes:
        base_plan(shape, stack)
    built, built_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    outcomes = judge(mutations, shapes, stack)
    judged, judged_cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{len(mutations)} mutations of the {stack} plan, {len(shapes)} shape(s)")
    print(table(outcomes))
    print(f"plans built in {built:.1f} s ({built_cpu:.1f} s CPU); {len(outcomes)} pack runs in {judged:.1f} s ({judged_cpu:.1f} s CPU), "
          f"{judged / len(outcomes):.2f} s each")
    return 1 if under_rate(outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
