"""`python -m review plan --stack prod`: the offline plan of a stack, checked against the clouds'
documented limits and by the policy pack as `pulumi preview --policy-pack policies` would check it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pulumi_policy import EnforcementLevel

from dpc.config import StackFileError
from dpc.settings import SettingsError
from review.limits import check_plan
from review.limits import report as limits_report
from review.plan import PROJECT_ROOT, build_plan_revealed, stack_config, summary
from review.policy import PolicyConfigError, load_pack_config, pack_config_for, plan_resources, report, run_policies


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `plan` subcommand's arguments."""
    shipped = ", ".join(sorted(path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in PROJECT_ROOT.glob("Pulumi.*.yaml")))
    parser.add_argument("--stack", required=True, help=f"stack name: reads Pulumi.<stack>.yaml (shipped: {shipped})")
    parser.add_argument("--out", type=Path, help="where to write the plan JSON (default: plan-<stack>.json)")
    parser.add_argument("--lint-iam", action="store_true",
                        help="also run every IAM policy through the IAM linter (parliament; the tests always do)")
    parser.add_argument("--policy-pack-config", type=Path,
                        help="the policy pack's config (default: policies/config/<dpc:environment>.json)")
    parser.add_argument("--preview", action="store_true",
                        help="plan as a stack's first `pulumi preview`: outputs of the resources to create unknown")


def command(args: argparse.Namespace) -> int:
    """Writes the plan, prints its summary, what the clouds' APIs would refuse and the policy
    violations; exits 1 on a breach of a cloud's limits or a mandatory violation, 2 on a bad stack
    (listing every problem) or a bad pack config.
    """
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
