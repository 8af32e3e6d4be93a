"""`python -m review plan --stack prod --out plan.json`: the offline plan of a stack, checked by the
policy pack as `pulumi preview --policy-pack policies` would check it.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pulumi_policy import EnforcementLevel

from dpc.config import StackFileError
from dpc.settings import SettingsError
from review import comment as review_comment
from review import cost as review_cost
from review import policy as review_policy
from review import risk as review_risk
from review.limits import check_plan
from review.limits import report as limits_report
from review.plan import build_plan_revealed, stack_config, summary
from review.policy import PolicyConfigError, load_pack_config, pack_config_for, plan_resources, report, run_policies


def main(argv: list[str] | None = None) -> int:
    """Writes the plan, prints its summary, what the clouds' APIs would refuse and the policy
    violations; exits 1 on a breach of a cloud's limits or a mandatory violation, 2 on a bad stack
    (listing every problem) or a bad pack config.
    """
    parser = argparse.ArgumentParser(prog="python -m review", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    plan_command = commands.add_parser("plan", help="plan a stack offline, in the shape of `pulumi preview --json`")
    plan_command.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    plan_command.add_argument("--out", type=Path, help="where to write the plan JSON (default: plan-<stack>.json)")
    plan_command.add_argument("--lint-iam", action="store_true",
                              help="also run every IAM policy through the IAM linter (parliament; the tests always do)")
    plan_command.add_argument("--policy-pack-config", type=Path,
                              help="the policy pack's config (default: policies/config/<dpc:environment>.json)")
    plan_command.add_argument("--preview", action="store_true",
                              help="plan as a stack's first `pulumi preview`: outputs of the resources to create unknown")
    review_cost.add_arguments(commands.add_parser("cost", help="the monthly cost of a change, per resource and component, and its delta"))
    review_risk.add_arguments(commands.add_parser("risk", help="each step of a change classed safe, review, dangerous or irreversible"))
    review_comment.add_arguments(commands.add_parser("comment", help="one pull-request comment: cost, risk and policy verdict per stack, and the gate"))
    review_policy.add_arguments(commands.add_parser("policy", help="run the policy pack over a plan file, ours or `pulumi preview --json`'s"))
    args = parser.parse_args(argv)
    subcommands: dict[str, Callable[[argparse.Namespace], int]] = {
        "policy": review_policy.policy_command,
        "risk": review_risk.command,
        "comment": review_comment.command,
        "cost": review_cost.command,
    }
    if args.command in subcommands:
        return subcommands[args.command](args)

    started = time.perf_counter()
    try:
        plan, revealed = build_plan_revealed(args.stack, preview=args.preview)
        config, _ = stack_config(args.stack)
    except (SettingsError, StackFileError) as error:
        print(f"stack {args.stack}: {error}", file=sys.stderr)
        return 2
    out: Path = args.out or Path(f"plan-{args.stack}.json")
    out.write_text(json.dumps(plan, indent=2, sort_keys=True) + "\n")
    print(summary(plan))
    print(f"plan of stack {args.stack} written to {out} in {time.perf_counter() - started:.2f}s")
    breaches = check_plan(plan, revealed, lint_iam=args.lint_iam)
    print(limits_report(breaches))
    pack_config: Path = args.policy_pack_config or pack_config_for(config)
    try:
        violations = run_policies(plan_resources(plan), load_pack_config(pack_config), config)
    except (PolicyConfigError, OSError, ValueError) as error:
        print(f"policy pack config {pack_config}: {error}", file=sys.stderr)
        return 2
    print(f"policy pack with {pack_config}:")
    print(report(violations))
    return 1 if breaches or any(v.level is EnforcementLevel.MANDATORY for v in violations) else 0


if __name__ == "__main__":
    # One short process: Python's cyclic garbage collector would spend its time on memory the
    # process hands back as it ends: 0.3 s collecting after the plan (see collector_paused), then
    # 1.3 s at exit, where the interpreter's teardown collects every one of the 260,000 objects the
    # program and the SDKs made; frozen, they are left to the end of the process.
    gc.disable()
    status = main()
    gc.freeze()
    sys.exit(status)
