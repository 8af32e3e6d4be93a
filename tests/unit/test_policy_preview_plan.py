"""The offline plan in preview mode, as a stack's first `pulumi preview` sees it: the same resources
and dependencies as the up-shaped plan, every computed output of a resource to create unknown (ids,
ARNs, generated passwords and keys), what the program can name itself known (bucket policies), and
the pack reports no mandatory violation there on any shipped stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from review.__main__ import main
from review.plan import UNKNOWN, stack_config
from review.policy import load_pack_config, pack_config_for, plan_resources, run_policies
from tests.unit.conftest import plan_of
from tests.unit.policy_shapes import preview_of

SHOWN_UNKNOWN = "[unknown]"


def _inputs(plan: dict[str, Any], suffix: str, typ: str = "") -> dict[str, Any]:
    found = [s["newState"]["inputs"] for s in plan["steps"] if s["urn"].endswith(f"::{suffix}") and typ in s["newState"]["type"]]
    assert len(found) == 1, suffix
    return found[0]


def test_a_preview_plans_the_same_resources_in_the_same_shape() -> None:
    up, preview = plan_of("prod"), preview_of("prod")
    assert {s["urn"] for s in preview["steps"]} == {s["urn"] for s in up["steps"]}
    assert preview["changeSummary"] == up["changeSummary"]
    assert {key for s in preview["steps"] for key in s["newState"]} == {key for s in up["steps"] for key in s["newState"]}


def test_ids_and_arns_of_resources_to_create_are_unknown_in_what_depends_on_them() -> None:
    preview, up = preview_of("prod"), plan_of("prod")
    for suffix, field in (
        ("prod-network-private-us-east-1a", "vpcId"),
        ("prod-compute-worker-1", "subnetId"),
        ("prod-storage-worker-1-data", "kmsKeyId"),
        ("prod-storage-backups-tls-only", "bucket"),
    ):
        assert _inputs(preview, suffix)[field] == SHOWN_UNKNOWN, (suffix, field)
        assert _inputs(up, suffix)[field] != SHOWN_UNKNOWN, (suffix, field)
    assert _inputs(preview, "prod-compute-worker-1")["vpcSecurityGroupIds"] == [SHOWN_UNKNOWN]


def test_providers_not_yet_created_are_referenced_by_the_unknown_id() -> None:
    references = {s["provider"] for s in preview_of("prod")["steps"] if s["provider"]}
    assert references and all(reference.endswith(f"::{UNKNOWN}") for reference in references)


def test_generated_passwords_and_keys_are_unknown_at_preview() -> None:
    """Keys and certificates are not in the plan, and a Swarm secret named by its content (a
    generated password's digest) has no name yet, nor its data a value: the engine hands the pack
    an unknown there, not a masked secret."""
    preview, up = preview_of("prod"), plan_of("prod")
    assert "-----BEGIN" in json.dumps(up) and "-----BEGIN" not in json.dumps(preview)
    secrets = [s["newState"]["inputs"] for s in preview["steps"] if s["newState"]["type"] == "docker:index/secret:Secret"]
    assert secrets and {(secret["name"], secret["data"]) for secret in secrets} == {(SHOWN_UNKNOWN, SHOWN_UNKNOWN)}
    known = [s["newState"]["inputs"] for s in up["steps"] if s["newState"]["type"] == "docker:index/secret:Secret"]
    shown = {(secret["name"] == SHOWN_UNKNOWN, secret["data"]) for secret in known}
    assert shown == {(False, "[secret]")}  # a secret known at up is masked; one not known yet is unknown, as the pack gets it


def test_what_the_program_names_itself_is_known_at_preview() -> None:
    """A bucket's policy is built from its name and the partition, a log group's permissions from
    its name: the same documents in both shapes, reviewable before anything exists."""
    preview, up = preview_of("prod"), plan_of("prod")
    for suffix in ("prod-storage-backups-tls-only", "prod-storage-backups-replica-tls-only", "prod-network-flow-logs-write"):
        assert _inputs(preview, suffix)["policy"] == _inputs(up, suffix)["policy"], suffix
        assert "arn:aws:" in _inputs(preview, suffix)["policy"]
    trust = [json.loads(_inputs(plan, "prod-storage-replication", "iam/role:Role")["assumeRolePolicy"]) for plan in (preview, up)]
    assert trust[0] == trust[1]


@pytest.mark.parametrize("name", ["prod", "staging", "dev"])
def test_every_shipped_stack_has_no_mandatory_violation_at_preview(name: str) -> None:
    """At a first preview the pack reports only what it cannot judge yet, never a false violation."""
    config, _ = stack_config(name)
    found = run_policies(plan_resources(preview_of(name)), load_pack_config(pack_config_for(config)), config)
    assert [(v.policy, v.urn) for v in found if v.level is EnforcementLevel.MANDATORY] == []


def test_the_plan_command_plans_a_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    assert main(["plan", "--stack", "dev", "--preview", "--out", str(out)]) == 0
    assert _inputs(json.loads(out.read_text()), "dev-compute-worker-1")["subnetId"] == SHOWN_UNKNOWN
    assert "cloud API limits: no breaches" in capsys.readouterr().out
