"""The pack over the shapes the engine hands it besides the offline plan's: whole-stack policies
reading outputs after `pulumi refresh` (a security group listing its separately managed rules) find
no false violation and still find an inline one; `python -m review policy` over what a real
`pulumi preview --json` prints reports what the harness reports on the offline preview, with the
same exit codes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from review.__main__ import main
from review.plan import UNKNOWN, stack_config
from review.policy import load_pack_config, pack_config_for, plan_resources, run_policies
from tests.unit.conftest import plan_of
from tests.unit.policy_shapes import SECURITY_GROUP, after_refresh, as_cli_preview, preview_of

POSTGRES_RULE = "prod-network-manager-in-tcp5432-from-clients0"


def _found(plan: dict[str, Any], stack: str) -> set[tuple[str, str, EnforcementLevel]]:
    config, _ = stack_config(stack)
    return {(v.policy, v.urn.split("::")[-1], v.level) for v in run_policies(plan_resources(plan), load_pack_config(pack_config_for(config)), config)}


def _state(plan: dict[str, Any], suffix: str) -> dict[str, Any]:
    [state] = [s["newState"] for s in plan["steps"] if s["urn"].endswith(f"::{suffix}")]
    return state


@pytest.mark.parametrize("stack", ["prod", "staging", "dev"])
def test_after_a_refresh_groups_listing_their_separate_rules_are_no_violation(stack: str) -> None:
    refreshed = after_refresh(plan_of(stack))
    groups = [s["newState"]["outputs"] for s in refreshed["steps"] if s["newState"]["type"] == SECURITY_GROUP]
    assert groups and all(group["ingress"] for group in groups)  # the refresh shape under test
    assert _found(refreshed, stack) == _found(plan_of(stack), stack) == set()


def test_after_a_refresh_an_inline_rule_open_to_the_world_is_still_caught() -> None:
    refreshed = after_refresh(plan_of("prod"))
    group = _state(refreshed, "prod-network-manager-sg")
    group["outputs"]["ingress"].append({"protocol": "tcp", "fromPort": 5432, "toPort": 5432, "cidrBlocks": ["0.0.0.0/0"], "self": False})
    found = _found(refreshed, "prod")
    assert ("no-ingress-from-anywhere", "prod-network-manager-sg", EnforcementLevel.MANDATORY) in found


def _write(tmp_path: Path, plan: dict[str, Any]) -> Path:
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(plan))
    return path


def test_a_real_preview_file_gets_the_offline_previews_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    offline = preview_of("prod")
    printed = as_cli_preview(offline, replaced="prod-compute-worker-1", deleted_type="aws:ebs/volume:Volume")
    assert UNKNOWN in json.dumps(printed) and "[unknown]" not in json.dumps(printed)
    assert main(["policy", str(_write(tmp_path, printed)), "--format", "json"]) == 0
    served = {(v["policy"], v["urn"].split("::")[-1], v["level"]) for v in json.loads(capsys.readouterr().out)["violations"]}
    assert served == {(policy, name, level.value) for policy, name, level in _found(offline, "prod")}
    assert len(plan_resources(printed)) == len(offline["steps"])  # the replacement once, the delete not at all


def test_a_mandatory_violation_in_a_real_preview_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mutated = copy.deepcopy(preview_of("prod"))
    _state(mutated, POSTGRES_RULE)["inputs"]["cidrIpv4"] = "0.0.0.0/0"
    printed = as_cli_preview(mutated, replaced="prod-compute-worker-1", deleted_type="aws:ebs/volume:Volume")
    assert main(["policy", str(_write(tmp_path, printed))]) == 1
    out = capsys.readouterr().out
    assert f"no-ingress-from-anywhere — {POSTGRES_RULE}" in out.split("mandatory violations (", 1)[1]


def test_the_policy_command_reads_the_stack_file_it_is_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The SSH policy reads the admin networks from the stack config: without the stack file,
    SSH from the prod admins' range is from nowhere the stack names."""
    plan = _write(tmp_path, plan_of("prod"))
    assert main(["policy", str(plan), "--stack-config", str(Path(__file__).resolve().parents[2] / "Pulumi.prod.yaml")]) == 0
    empty = tmp_path / "Pulumi.empty.yaml"
    empty.write_text("config: {}\n")
    assert main(["policy", str(plan), "--stack-config", str(empty), "--policy-pack-config", str(tmp_path / "none.json")]) == 2
    assert "none.json" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "expected"), [
    ("not json", "not JSON"),
    ('{"resources": []}', "not a plan: expected an object with a list of `steps`"),
    ('{"steps": [{"op": "create", "newState": {"urn": "urn:pulumi:s::p::t::n"}}]}', "not a plan: a step's new state has no 'type'"),
])
def test_a_file_that_is_not_a_plan_exits_2_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(content)
    assert main(["policy", str(path)]) == 2
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error


def test_a_state_with_outputs_alone_is_judged_by_them() -> None:
    """A step that records only outputs (as some `pulumi preview --json` states do) is judged by
    them, not as a resource with no properties."""
    urn = "urn:pulumi:prod::dpc::aws:ebs/volume:Volume::data"
    state = {"urn": urn, "type": "aws:ebs/volume:Volume", "outputs": {"encrypted": False, "size": 10}}
    [resource] = plan_resources({"steps": [{"op": "same", "urn": urn, "newState": state}]})
    assert resource.inputs == resource.outputs == state["outputs"]
    found = run_policies([resource], {"all": "disabled", "disks-encrypted-with-customer-key": "mandatory"}, {})
    assert found and {v.urn for v in found} == {urn}
