"""`python -m review plan`: writes the plan file and a readable summary, and refuses a missing stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from review.__main__ import main
from review.plan import build_plan


def test_plan_command_writes_the_plan_and_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    assert main(["plan", "--stack", "dev", "--out", str(out)]) == 0
    plan = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert f"{plan['changeSummary']['create']} resources to create" in printed
    for component in ("dev-network", "dev-storage", "dev-swarm", "dev-compute", "dev-endpoint", "dev-budget"):
        assert f"  {component}: " in printed
    assert "aws:ec2/instance:Instance" in printed
    assert f"written to {out}" in printed


def test_plan_command_names_the_stack_files_when_the_stack_is_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "nonexistent"]) == 2
    error = capsys.readouterr().err
    assert "no stack file Pulumi.nonexistent.yaml" in error and "Pulumi.prod.yaml" in error


def test_a_plan_is_the_same_from_run_to_run_and_lists_what_is_needed_first() -> None:
    first, second = build_plan("dev"), build_plan("dev")
    assert json.dumps(first) == json.dumps(second)
    seen: set[str] = set()
    for step in first["steps"]:
        state = step["newState"]
        provider = state["provider"].rsplit("::", 1)[0]
        for needed in (state["parent"], provider, *state["dependencies"]):
            assert not needed or needed in seen, f"{step['urn']} comes before {needed}"
        seen.add(step["urn"])


def test_the_policy_command_documents_its_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["policy", "--help"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    for status in ("0  no mandatory violation", "1  at least one mandatory violation", "2  bad input"):
        assert status in printed
