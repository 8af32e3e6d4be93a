"""review.comment: one stable pull-request comment per change, and the gate's decision."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from review.__main__ import main
from review.comment import MARKER, Gate, render, review_stack
from review.risk import Risk
from tests.unit.conftest import plan_of

PREVIEWS = Path(__file__).with_name("previews")
COST = {"monthlyUsd": 500.0, "baseMonthlyUsd": 485.0, "deltaUsd": 15.0, "assumptions": ["30 GB/month of logs"],
        "resources": [{"urn": "urn:pulumi:dev::dpc::aws:ebs/volume:Volume::dev-storage-worker-1-data", "op": "update", "monthlyUsd": 19.0, "deltaUsd": 15.0}],
        "unpriced": [{"urn": "urn:pulumi:dev::dpc::x:y:Z::odd", "op": "create", "reason": "no price table for x"}]}
POLICY: dict[str, Any] = {
    "violations": [{"policy": "required-tags", "level": "advisory", "severity": "low", "message": "tags missing", "urn": "u::v", "remediation": ""}],
}


def _stack_dir(root: Path, name: str, head: dict[str, Any], base: dict[str, Any] | None = None, *, cost: Any = COST, policy: Any = POLICY) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "head.json").write_text(json.dumps(head))
    if base is not None:
        (directory / "base.json").write_text(json.dumps(base))
    if cost is not None:
        (directory / "cost.json").write_text(json.dumps(cost))
    if policy is not None:
        (directory / "policy.json").write_text(json.dumps(policy))
    return directory


def _iops(plan: dict[str, Any], iops: int) -> dict[str, Any]:
    changed = copy.deepcopy(plan)
    for step in changed["steps"]:
        if step["urn"].endswith("::dev-storage-worker-1-data"):
            step["newState"]["inputs"]["iops"] = iops
    return changed


def test_the_comment_has_the_marker_headline_table_and_folded_details(tmp_path: Path) -> None:
    base = plan_of("dev")
    dev = review_stack(_stack_dir(tmp_path, "dev", _iops(base, 6000), base))
    shop = review_stack(_stack_dir(tmp_path, "shop", json.loads((PREVIEWS / "aws-update.json").read_text()), cost=None, policy=POLICY))
    text = render([shop, dev], Gate())
    lines = text.splitlines()
    assert lines[0] == MARKER and lines[1] == "## Infrastructure review"
    assert lines[3].startswith("**Cost** ") and "**Worst risk** irreversible" in lines[3] and "**Policy pack** passes" in lines[3]
    assert "**refuses**" in lines[3] and "- `shop`: worst risk irreversible (the gate refuses dangerous or worse)" in lines
    rows = [line for line in lines if line.startswith("| `")]
    assert rows[0].startswith("| `dev` | 1 update | 500.00 | +15.00 | safe | passes (0 mandatory, 1 advisory) |")
    assert rows[1].startswith("| `shop` | 1 create, 1 delete, 2 replace, 1 update |"), "stacks in name order, whatever the order given"
    assert "of what changes (39 unchanged not listed)" in rows[1], "a preview's total is of the resources it lists"
    assert text.index("### `dev`") < text.index("### `shop`")
    assert "<details><summary>dev: cost (1 resource(s) change the bill)</summary>" in text
    assert "- not priced: `urn:pulumi:dev::dpc::x:y:Z::odd` (create): no price table for x" in text
    assert "| irreversible | delete | `exports` | `aws:s3/bucket:Bucket` | deleting an S3 bucket: its objects |" in text


def test_the_same_change_gives_the_same_comment(tmp_path: Path) -> None:
    base = plan_of("dev")
    first = render([review_stack(_stack_dir(tmp_path, "dev", _iops(base, 6000), base))], Gate())
    shutil.rmtree(tmp_path / "dev")
    second = render([review_stack(_stack_dir(tmp_path, "dev", _iops(base, 6000), base))], Gate())
    assert first == second


def test_what_cannot_be_judged_is_listed(tmp_path: Path) -> None:
    foreign = review_stack(_stack_dir(tmp_path, "lab", json.loads((PREVIEWS / "foreign-stack.json").read_text()), cost=None, policy=None))
    text = render([foreign], Gate())
    assert "not judged: `urn:pulumi:lab::analytics::gcp:pubsub/topic:Topic::events` (teleport)" in text
    assert "thing(s) this review could not price or judge" in text


def test_the_gate_refuses_on_risk_cost_and_mandatory_violations_unless_accepted(tmp_path: Path) -> None:
    base = plan_of("dev")
    mandatory = {"violations": [{**POLICY["violations"][0], "level": "mandatory"}]}
    stack = review_stack(_stack_dir(tmp_path, "dev", _iops(base, 6000), base, policy=mandatory))
    assert Gate(Risk.DANGEROUS, 100.0).refusals([stack]) == ["`dev`: 1 mandatory policy violation(s)"]
    assert Gate(Risk.DANGEROUS, 10.0).refusals([stack])[0] == "`dev`: cost +15.00 USD/month (the gate refuses more than +10.00)"
    accepted = render([stack], Gate(accepted=True))
    assert "refuses, **accepted** by the `review-accepted` label" in accepted.splitlines()[3]


def test_the_comment_command_writes_the_file_and_exits_by_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = plan_of("dev")
    directory = _stack_dir(tmp_path, "dev", _iops(base, 6000), base)
    out = tmp_path / "comment.md"
    assert main(["comment", str(directory), "--out", str(out)]) == 0
    assert out.read_text() == capsys.readouterr().out and out.read_text().startswith(MARKER)
    assert main(["comment", str(directory), "--max-increase-usd", "5"]) == 1
    assert main(["comment", str(directory), "--max-increase-usd", "5", "--accepted"]) == 0
    assert main(["comment", str(tmp_path / "missing")]) == 2


def test_a_deleted_stack_fits_in_one_comment_with_every_step_counted(tmp_path: Path) -> None:
    base = plan_of("prod")
    text = render([review_stack(_stack_dir(tmp_path, "prod", {"steps": []}, base))], Gate())
    assert len(text) <= 65_536
    assert "more step(s), counted by class, op and type</summary>" in text
    folded = text[text.index("counted by class, op and type"):]
    counted = sum(int(row.split("|")[4]) for row in folded.splitlines() if row.startswith("| ") and row.split("|")[4].strip().isdigit())
    shown = sum(1 for row in text[: text.index("counted by class")].splitlines() if row.startswith("| ") and "| delete |" in row)
    assert shown + counted == len(base["steps"]), "every deleted resource is shown or counted"


def test_a_resize_held_back_until_replacement_shows_and_gates_its_pending_cost(tmp_path: Path) -> None:
    """A worker resize changes nothing until each machine is replaced (`ignoreChanges`), but the
    change asks for those replacements: the comment shows what they will add, and the gate counts it."""
    base = plan_of("dev")
    head = copy.deepcopy(base)
    workers = [step for step in head["steps"] if step["newState"]["type"] == "aws:ec2/instance:Instance" and "-worker-" in step["urn"]]
    assert workers
    for step in workers:
        step["newState"]["inputs"]["instanceType"] = "r6i.4xlarge"
    stack = review_stack(_stack_dir(tmp_path, "dev", head, base, cost=None))
    assert stack.delta_usd == 0 and stack.pending_usd > 100
    text = render([stack], Gate(max_increase_usd=100.0))
    pending = f"+{stack.pending_usd:,.2f} USD/month once the machines awaiting replacement are replaced"
    assert text.splitlines()[3].startswith(f"**Cost** 0.00 USD/month ({pending})")
    assert f"- `dev`: cost 0.00 USD/month ({pending}) (the gate refuses more than +100.00)" in text
    assert "**Gate** passes" in render([stack], Gate(max_increase_usd=stack.pending_usd + 1, fail_on_risk=Risk.IRREVERSIBLE))
