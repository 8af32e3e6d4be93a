"""`python -m review plan --stack prod --out plan.json`: the offline plan of a stack."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dpc.config import StackFileError
from dpc.settings import SettingsError
from review.plan import build_plan, summary


def main(argv: list[str] | None = None) -> int:
    """Writes the plan and prints its summary; exits 2 on a bad stack, listing every problem."""
    parser = argparse.ArgumentParser(prog="python -m review", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    plan_command = commands.add_parser("plan", help="plan a stack offline, in the shape of `pulumi preview --json`")
    plan_command.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    plan_command.add_argument("--out", type=Path, help="where to write the plan JSON (default: plan-<stack>.json)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        plan = build_plan(args.stack)
    except (SettingsError, StackFileError) as error:
        print(f"stack {args.stack}: {error}", file=sys.stderr)
        return 2
    out: Path = args.out or Path(f"plan-{args.stack}.json")
    out.write_text(json.dumps(plan, indent=2, sort_keys=True) + "\n")
    print(summary(plan))
    print(f"plan of stack {args.stack} written to {out} in {time.perf_counter() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
