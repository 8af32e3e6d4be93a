"""`python -m review comment STACK_DIR...`: one Markdown comment for a pull request with the change's
cost, its risk and the policy pack's verdict, per stack, and the gate's decision.

Each STACK_DIR holds one stack's files, as the review workflow writes them:

- `head.json`: the head's offline plan (`./run plan`) or a real `pulumi preview --json` digest;
- `base.json` (optional): the base branch's offline plan, which the head is compared with;
- `cost.json` (optional): `python -m review cost ... --format json`; without it the cost is
  estimated here with `review.cost`;
- `policy.json` (optional): `python -m review policy ... --format json`; without it the pack runs
  here (`review.policy.run_policies`) with the stack's pack config.

The comment is stable: a hidden marker (`MARKER`) lets the workflow find and edit its own comment,
and everything in it is in a fixed order (stacks by name, steps worst first then by URN), so the
same change gives the same text and an edit in place shows only what changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from review.risk import Risk, RiskReport, classify, markdown
from review.steps import Change, count_ops, load_change

MARKER = "<!-- dpc-review -->"
"""The hidden first line the workflow looks for to edit the comment in place."""
ACCEPT_LABEL = "review-accepted"
"""The label a maintainer puts on a pull request to accept what the gate refuses."""


@dataclass(frozen=True)
class StackReview:
    """One stack's three verdicts."""

    name: str
    change: Change
    risk: RiskReport
    cost: Mapping[str, Any] | None
    """`review.cost`'s JSON (monthlyUsd, baseMonthlyUsd, deltaUsd, resources, unpriced), or None
    when it could not be had (the reason is in `problems`)."""
    violations: Sequence[Mapping[str, Any]] | None
    """`review.policy`'s violations as its JSON lists them, or None when the pack could not run."""
    problems: tuple[str, ...] = ()

    @property
    def mandatory(self) -> int:
        """Mandatory violations: the pack fails the preview on any."""
        return sum(1 for v in self.violations or () if v.get("level") == "mandatory")

    @property
    def delta_usd(self) -> float:
        """The monthly cost's change (0 when the cost is unknown)."""
        return float((self.cost or {}).get("deltaUsd") or 0.0)

    @property
    def pending_usd(self) -> float:
        """The monthly cost's change still held back by `ignoreChanges` (a resized machine): due
        as soon as the machines awaiting replacement are replaced, which the change asks for.
        """
        return float((self.cost or {}).get("pendingDeltaUsd") or 0.0)

    @property
    def committed_usd(self) -> float:
        """What the change adds to the bill once it is fully applied: its delta and what is pending."""
        return self.delta_usd + self.pending_usd


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _cost_here(change: Change) -> Mapping[str, Any]:
    """The cost JSON from `review.cost`, for a stack directory without `cost.json`."""
    from review import cost  # noqa: PLC0415  (the cost model and its price tables load only when needed)

    return cost.to_json(cost.estimate(change, sizing=cost.sizing_for(change, None)))


def _policy_here(head: Path) -> list[dict[str, Any]]:
    """The pack's violations over the head plan, for a stack directory without `policy.json`, with
    the stack's own config and pack config, as `python -m review policy` runs it.
    """
    from dpc.config import stack_file_config  # noqa: PLC0415
    from review.plan import PROJECT_ROOT  # noqa: PLC0415
    from review.policy import load_pack_config, pack_config_for, plan_resources, run_policies  # noqa: PLC0415

    resources = plan_resources(cast(Mapping[str, Any], _read_json(head)))
    stack = resources[0].urn.split(":")[2] if resources else ""
    stack_file = PROJECT_ROOT / f"Pulumi.{stack}.yaml"
    config = stack_file_config(stack_file)[0] if stack_file.is_file() else {}
    violations = run_policies(resources, load_pack_config(pack_config_for(config)), config)
    return [{"policy": v.policy, "level": v.level.value, "severity": v.severity, "message": v.message, "urn": v.urn, "remediation": v.remediation}
            for v in violations]


def review_stack(directory: Path) -> StackReview:
    """Reads (or makes) one stack's verdicts; what cannot be had is a problem the comment shows."""
    head, base = directory / "head.json", directory / "base.json"
    change = load_change(head, base if base.is_file() else None)
    problems: list[str] = []
    cost: Mapping[str, Any] | None = None
    violations: Sequence[Mapping[str, Any]] | None = None
    try:
        cost = _read_json(directory / "cost.json") if (directory / "cost.json").is_file() else _cost_here(change)
    except Exception as error:  # any failure of the estimate is shown in the comment, never hidden
        problems.append(f"cost not estimated: {type(error).__name__}: {error}")
    try:
        policy_file = directory / "policy.json"
        violations = _read_json(policy_file)["violations"] if policy_file.is_file() else _policy_here(head)
    except Exception as error:  # as above
        problems.append(f"policy pack not run: {type(error).__name__}: {error}")
    return StackReview(directory.name, change, classify(change), cost, violations, tuple(problems))


@dataclass(frozen=True)
class Gate:
    """The thresholds that fail the check, and whether a maintainer accepted the change anyway."""

    fail_on_risk: Risk = Risk.DANGEROUS
    max_increase_usd: float = 100.0
    accepted: bool = False

    def refusals(self, stacks: Sequence[StackReview]) -> list[str]:
        """Why the gate refuses the change (empty: it passes)."""
        found: list[str] = []
        for stack in stacks:
            if stack.risk.worst >= self.fail_on_risk:
                found.append(f"`{stack.name}`: worst risk {stack.risk.worst.label} (the gate refuses {self.fail_on_risk.label} or worse)")
            if stack.committed_usd > self.max_increase_usd:
                found.append(f"`{stack.name}`: cost {_with_pending(stack.delta_usd, stack.pending_usd, ' USD/month')} "
                             f"(the gate refuses more than +{self.max_increase_usd:,.2f})")
            if stack.mandatory:
                found.append(f"`{stack.name}`: {stack.mandatory} mandatory policy violation(s)")
            found.extend(f"`{stack.name}`: {problem}" for problem in stack.problems)
        return found


def _usd(amount: float) -> str:
    rounded = round(amount, 2)
    return f"+{rounded:,.2f}" if rounded > 0 else f"{rounded:,.2f}" if rounded < 0 else "0.00"


def _with_pending(delta: float, pending: float, unit: str = "") -> str:
    """A cost change, and beside it what waits for the machines' replacement."""
    if not round(pending, 2):
        return f"{_usd(delta)}{unit}"
    return f"{_usd(delta)}{unit} ({_usd(pending)}{unit} once the machines awaiting replacement are replaced)"


def _ops(change: Change) -> str:
    counts = {op: n for op, n in (change.change_summary or count_ops(change.steps)).items() if op != "same"}
    return ", ".join(f"{n} {op}" for op, n in sorted(counts.items())) or "no change"


def _policy_cell(stack: StackReview) -> str:
    if stack.violations is None:
        return "not run"
    advisory = len(stack.violations) - stack.mandatory
    verdict = "**fails**" if stack.mandatory else "passes"
    return f"{verdict} ({stack.mandatory} mandatory, {advisory} advisory)"


def _cost_cells(stack: StackReview) -> tuple[str, str]:
    """The monthly cost after the change and its delta; a preview leaves its unchanged resources
    out, so its total is of the listed ones only (the delta is exact all the same).
    """
    if stack.cost is None:
        return "not estimated", ""
    monthly = f"{float(stack.cost.get('monthlyUsd') or 0):,.2f}"
    unlisted = int(stack.cost.get("unlistedSame") or 0)
    return (f"{monthly} of what changes ({unlisted} unchanged not listed)" if unlisted else monthly), _with_pending(stack.delta_usd, stack.pending_usd)


def _cost_details(stack: StackReview) -> list[str]:
    cost = stack.cost
    if cost is None:
        return []
    resources = cast(list[Mapping[str, Any]], cost.get("resources") or [])
    def change_of(resource: Mapping[str, Any]) -> float:
        return float(resource.get("deltaUsd") or 0) + float(resource.get("pendingDeltaUsd") or 0)

    changed = sorted((r for r in resources if round(change_of(r), 2)), key=lambda r: (-abs(change_of(r)), str(r["urn"])))
    lines = [f"<details><summary>{stack.name}: cost ({len(changed)} resource(s) change the bill)</summary>", ""]
    if changed:
        lines += ["| resource | op | USD/month | change |", "|---|---|---:|---:|"]
        lines += [f"| `{str(r['urn']).rsplit('::', 1)[-1]}` | {r.get('op', '')} | {float(r.get('monthlyUsd') or 0):,.2f} | "
                  f"{_with_pending(float(r.get('deltaUsd') or 0), float(r.get('pendingDeltaUsd') or 0))} |" for r in changed]
    assumptions = cast(list[str], cost.get("assumptions") or [])
    if assumptions:
        lines += ["", "Assumptions:", *[f"- {a}" for a in assumptions]]
    return [*lines, "", "</details>", ""]


def _policy_details(stack: StackReview) -> list[str]:
    if not stack.violations:
        return []
    ordered = sorted(stack.violations, key=lambda v: (v.get("level") != "mandatory", str(v.get("policy")), str(v.get("urn"))))
    lines = [f"<details><summary>{stack.name}: policy pack ({len(ordered)} violation(s))</summary>", ""]
    for v in ordered:
        where = str(v.get("urn") or "").rsplit("::", 1)[-1] or "(stack)"
        message = str(v.get("message") or "").strip().splitlines()
        lines.append(f"- **{v.get('level')}** `{v.get('policy')}` on `{where}`: {message[-1] if message else ''}")
    return [*lines, "", "</details>", ""]


def _unjudged(stack: StackReview) -> list[str]:
    """Everything that could not be priced or judged, so nothing is silently dropped."""
    unpriced = cast(list[Mapping[str, Any]], (stack.cost or {}).get("unpriced") or [])
    items = [f"- not priced: `{u.get('urn')}` ({u.get('op')}): {u.get('reason')}" for u in unpriced]
    items += [f"- not judged: `{j.step.urn}` ({j.step.op}): {reason}" for j in stack.risk.listed for reason in j.reasons
              if "not one the engine" in reason or "not a type these rules know" in reason or "may be a replacement" in reason]
    items += [f"- {problem}" for problem in stack.problems]
    if not items:
        return []
    return [f"<details><summary>{stack.name}: {len(items)} thing(s) this review could not price or judge</summary>", "", *items, "", "</details>", ""]


COMMENT_LIMIT = 65_536
"""GitHub's limit on a comment's body, in characters."""
ROWS_SHOWN = (30, 10, 0)
"""Risk rows shown per stack before the rest is folded into counts, tried in turn until the comment fits."""


def render(stacks: Sequence[StackReview], gate: Gate) -> str:
    """The comment, within GitHub's limit: as many risk rows per stack as fit (`ROWS_SHOWN`)."""
    text = ""
    for rows in ROWS_SHOWN:
        text = _render(stacks, gate, rows)
        if len(text) <= COMMENT_LIMIT:
            return text
    note = "\n\n**The comment was cut at GitHub's limit: the job summary of this run has it whole.**\n"
    return text[: COMMENT_LIMIT - len(note)] + note


def _render(stacks: Sequence[StackReview], gate: Gate, rows: int) -> str:
    """The comment: marker, headline, the gate, a table of the stacks, then each stack's details folded."""
    ordered = sorted(stacks, key=lambda s: s.name)
    worst = max((s.risk.worst for s in ordered), default=Risk.SAFE)
    delta = sum(s.delta_usd for s in ordered)
    pending = sum(s.pending_usd for s in ordered)
    mandatory = sum(s.mandatory for s in ordered)
    policy = "not run" if any(s.violations is None for s in ordered) else ("fails" if mandatory else "passes")
    refusals = gate.refusals(ordered)
    if not refusals:
        verdict = "passes"
    elif gate.accepted:
        verdict = f"refuses, **accepted** by the `{ACCEPT_LABEL}` label"
    else:
        verdict = f"**refuses**: a maintainer's `{ACCEPT_LABEL}` label accepts it"
    lines = [
        MARKER,
        "## Infrastructure review",
        "",
        f"**Cost** {_with_pending(delta, pending, ' USD/month')} · **Worst risk** {worst.label} · **Policy pack** {policy} · **Gate** {verdict}",
        "",
        *[f"- {r}" for r in refusals],
        *([""] if refusals else []),
        "| stack | steps | USD/month after | change | worst risk | policy pack |",
        "|---|---|---:|---:|---|---|",
    ]
    for stack in ordered:
        monthly, change = _cost_cells(stack)
        lines.append(f"| `{stack.name}` | {_ops(stack.change)} | {monthly} | {change} | {stack.risk.worst.label} | {_policy_cell(stack)} |")
    lines.append("")
    for stack in ordered:
        lines += [f"### `{stack.name}`", "", markdown(stack.risk, rows).split("\n", 2)[-1], ""]
        lines = [*lines, *_cost_details(stack), *_policy_details(stack), *_unjudged(stack)]
    lines.append("<sub>How to read this: README, \"Reviewing a change in a pull request\". Risk: safe < review < dangerous < irreversible.</sub>")
    return "\n".join(lines) + "\n"


EXIT_CODES = """exit codes: 0 the comment is written and the gate passes (or a maintainer accepted the change
with --accepted); 1 the gate refuses the change (worst risk at or above --fail-on-risk, a cost increase
above --max-increase-usd, a mandatory policy violation, or a verdict that could not be had); 2 a stack
directory or file is missing or not what it should be."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `comment` subcommand's arguments."""
    parser.description = (__doc__ or "").split("\n\nThe comment", 1)[0]
    parser.epilog = EXIT_CODES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("stacks", type=Path, nargs="+", help="one directory per stack (its name is the stack's)")
    parser.add_argument("--out", type=Path, help="also write the comment to this file")
    parser.add_argument("--fail-on-risk", choices=[r.label for r in Risk if r is not Risk.SAFE], default="dangerous",
                        help="the gate refuses a change with a step of this class or worse (default: dangerous)")
    parser.add_argument("--max-increase-usd", type=float, default=100.0,
                        help="the gate refuses a monthly cost increase above this, per stack (default: 100)")
    parser.add_argument("--accepted", action="store_true", help=f"a maintainer accepted the change (the `{ACCEPT_LABEL}` label): exit 0")


def command(args: argparse.Namespace) -> int:
    """Runs `python -m review comment`; see EXIT_CODES."""
    gate = Gate(Risk[args.fail_on_risk.upper()], args.max_increase_usd, args.accepted)
    try:
        stacks = [review_stack(directory) for directory in args.stacks]
    except (OSError, ValueError) as error:
        print(f"comment: {error}", file=sys.stderr)
        return 2
    text = render(stacks, gate)
    if args.out:
        args.out.write_text(text)
    print(text, end="")
    return 1 if gate.refusals(stacks) and not gate.accepted else 0
