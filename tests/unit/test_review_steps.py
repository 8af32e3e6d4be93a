"""review.steps: one model of a change, from a preview digest or from two offline plans."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from review.steps import (
    ENGINE_OPS,
    UNKNOWN,
    Change,
    change_between_plans,
    change_from_digest,
    load_change,
    replacement_table,
    replaces,
)
from tests.unit.conftest import plan_of

PREVIEWS = Path(__file__).with_name("previews")


def _steps(change: Change) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {step.name: (step.op, step.replace_reasons) for step in change.steps}


def test_a_digest_with_replacement_steps_reads_as_one_without_them() -> None:
    plain = load_change(PREVIEWS / "aws-update.json")
    expanded = load_change(PREVIEWS / "aws-update-replacement-steps.json")
    assert _steps(plain) == _steps(expanded)
    assert [s.urn for s in plain.steps] == [s.urn for s in expanded.steps]
    instance = expanded.step("urn:pulumi:prod::shop::aws:ec2/instance:Instance::app-1")
    assert instance is not None
    assert instance.op == "replace" and instance.engine_ops == ("create-replacement", "replace", "delete-replaced")
    assert not instance.delete_before_replace
    assert plain.change_summary == expanded.change_summary == {"same": 41, "create": 1, "update": 1, "replace": 2, "delete": 1}


def test_a_digest_keeps_states_reasons_and_the_engine_sentinels() -> None:
    change = load_change(PREVIEWS / "aws-update.json")
    volume = change.step("urn:pulumi:prod::shop::aws:ebs/volume:Volume::db-data")
    assert volume is not None and volume.op == "update" and volume.diff_reasons == ("iops",)
    assert volume.value("iops", "old") == 3000, "a provider default is read from the outputs"
    assert volume.value("iops") == 6000
    assert volume.detailed_diff == {"iops": {"kind": "add", "inputDiff": True}}
    instance = change.step("urn:pulumi:prod::shop::aws:ec2/instance:Instance::app-1")
    assert instance is not None and instance.value("privateIp") == UNKNOWN and instance.inputs()["userData"] == "[secret]"
    key = change.step("urn:pulumi:prod::shop::aws:kms/key:Key::data-key")
    assert key is not None and key.op == "same" and (key.protect_old, key.protect_new) == (True, False)
    bucket = change.step("urn:pulumi:prod::shop::aws:s3/bucket:Bucket::exports")
    assert bucket is not None and bucket.new is None and bucket.protect_new is None
    assert change.config["shop:dbPassword"] == "[secret]" and change.stack == "prod"


def test_delete_before_replace_is_read_from_the_order_of_the_engine_steps() -> None:
    change = load_change(PREVIEWS / "foreign-stack.json")
    vm = change.step("urn:pulumi:lab::analytics::azure-native:compute:VirtualMachine::reporting")
    assert vm is not None and vm.op == "replace" and vm.delete_before_replace
    assert [s.op for s in change.steps].count("replace") == 2


def test_a_lone_delete_replaced_stays_a_deletion() -> None:
    step = {"op": "delete-replaced", "urn": "urn:pulumi:s::p::aws:ebs/volume:Volume::v", "oldState": {"type": "aws:ebs/volume:Volume", "inputs": {}}}
    change = change_from_digest({"steps": [step]})
    assert [s.op for s in change.steps] == ["delete-replaced"]


def test_unknown_ops_are_kept_as_the_engine_wrote_them() -> None:
    change = load_change(PREVIEWS / "foreign-stack.json")
    assert {s.op for s in change.steps} - set(ENGINE_OPS) == {"teleport"}


def test_blast_radius_follows_dependencies_and_providers() -> None:
    change = load_change(PREVIEWS / "aws-update.json")
    assert change.dependents("urn:pulumi:prod::shop::aws:ec2/instance:Instance::app-1") == (
        "urn:pulumi:prod::shop::aws:ec2/volumeAttachment:VolumeAttachment::app-1-logs",
    )
    provider = "urn:pulumi:prod::shop::pulumi:providers:aws::default_7_51_1"
    assert len(change.dependents(provider)) == 6, "every resource the provider manages"


def test_the_replacement_table_names_every_type_the_program_creates() -> None:
    table = replacement_table()
    for stack in ("prod", "dev"):
        custom = {s["newState"]["type"] for s in plan_of(stack)["steps"] if s["newState"]["custom"]}
        missing = {t for t in custom if not t.startswith("pulumi:providers:")} - set(table)
        assert not missing, missing
    assert all(rule.source for rule in table.values())


def _with(plan: dict[str, Any], name: str, **inputs: Any) -> dict[str, Any]:
    changed = copy.deepcopy(plan)
    for step in changed["steps"]:
        if step["urn"].endswith(f"::{name}"):
            step["newState"]["inputs"].update(inputs)
            return changed
    raise AssertionError(name)


def test_two_offline_plans_differ_in_creates_deletes_updates_and_replacements() -> None:
    base = plan_of("dev")
    head = _with(base, "dev-storage-worker-1-data", iops=4000)
    head["steps"] = [s for s in head["steps"] if not s["urn"].endswith("::dev-budget-monthly")]
    added = copy.deepcopy(next(s for s in head["steps"] if s["newState"]["type"] == "aws:ssm/parameter:Parameter"))
    added["urn"] = added["newState"]["urn"] = added["urn"] + "-extra"
    head["steps"].append(added)
    change = change_between_plans(base, head)
    ops = {s.name: s.op for s in change.steps if s.op != "same"}
    assert ops == {"dev-storage-worker-1-data": "update", "dev-budget-monthly": "delete", added["urn"].rsplit("::", 1)[1]: "create"}
    assert change.change_summary["same"] == len(base["steps"]) - 2
    assert sum(change.change_summary.values()) == len(change.steps)


def test_a_replaced_resource_replaces_what_needs_its_id_where_that_forces_it() -> None:
    base = plan_of("dev")
    subnet = next(s for s in base["steps"] if s["newState"]["type"] == "aws:ec2/subnet:Subnet" and "private" in s["urn"])
    head = _with(base, subnet["urn"].rsplit("::", 1)[1], cidrBlock="10.99.0.0/20")
    change = change_between_plans(base, head)
    replaced = {s.type for s in change.steps if s.op == "replace"}
    assert {"aws:ec2/subnet:Subnet", "aws:ec2/instance:Instance", "aws:ec2/routeTableAssociation:RouteTableAssociation"} <= replaced
    subnet_step = change.step(subnet["urn"])
    assert subnet_step is not None and subnet_step.replace_reasons == ("cidrBlock",)
    assert subnet_step.detailed_diff == {"cidrBlock": {"kind": "update-replace", "inputDiff": True}}


def test_ignore_changes_and_replace_on_changes_count_as_the_engine_counts_them() -> None:
    base = copy.deepcopy(plan_of("dev"))
    instance = next(s for s in base["steps"] if s["newState"]["type"] == "aws:ec2/instance:Instance")
    instance["newState"]["ignoreChanges"] = ["instanceType"]
    head = _with(base, instance["urn"].rsplit("::", 1)[1], instanceType="m6i.4xlarge")
    assert change_between_plans(base, head).step(instance["urn"]).op == "same"  # type: ignore[union-attr]
    secret = next(s for s in base["steps"] if s["newState"]["type"] == "docker:index/serviceConfig:ServiceConfig")
    secret["newState"]["replaceOnChanges"] = ["labels"]
    head = _with(base, secret["urn"].rsplit("::", 1)[1], labels={"x": "y"})
    assert change_between_plans(base, head, table={}).step(secret["urn"]).op == "replace"  # type: ignore[union-attr]


def test_a_type_without_a_table_entry_is_an_update_that_says_it_may_be_a_replacement() -> None:
    base = plan_of("dev")
    volume = next(s for s in base["steps"] if s["newState"]["type"] == "aws:ebs/volume:Volume")
    head = _with(base, volume["urn"].rsplit("::", 1)[1], availabilityZone="us-east-1f")
    step = change_between_plans(base, head, table={}).step(volume["urn"])
    assert step is not None and step.op == "update" and "may be a replacement" in step.notes[0]
    assert change_between_plans(base, head).step(volume["urn"]).op == "replace"  # type: ignore[union-attr]


def test_load_change_refuses_a_preview_as_a_base_plan(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_of("dev")))
    with pytest.raises(ValueError, match="not an offline plan"):
        load_change(plan, PREVIEWS / "aws-update.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError, match="not a plan or a preview digest"):
        load_change(tmp_path / "list.json")


def test_user_data_replaces_an_instance_only_when_it_says_so() -> None:
    rule = replacement_table()["aws:ec2/instance:Instance"]
    assert not replaces(rule, "userData", {"userDataReplaceOnChange": False})
    assert replaces(rule, "userData", {"userDataReplaceOnChange": True})
    assert replaces(rule, "rootBlockDevice.kmsKeyId", {}) and not replaces(rule, "rootBlockDevice.volumeSize", {})
    assert replaces(rule, "rootBlockDevice", {}), "a whole block changed holds a property that forces"
    assert not replaces(rule, "instanceType", {})


def test_a_replaced_secret_changes_only_the_reference_to_it_in_a_service() -> None:
    """Where a replaced resource's id went is what is unknown until it is replaced: the service's
    secret reference, not its whole task spec, so the service updates (rolls) and is not replaced
    although its task spec holds a replace-on-change property (`taskSpec.containerSpec.hosts`)."""
    base = plan_of("dev")
    head = copy.deepcopy(base)
    for step in head["steps"]:
        if step["urn"].endswith("::dev-database-secret-tls-ca-cert"):
            step["newState"]["inputs"]["name"] = "tls_ca_cert-rotated"
    steps = {step.name: step for step in change_between_plans(base, head).steps}
    assert steps["dev-database-secret-tls-ca-cert"].op == "replace"
    service = steps["dev-database-haproxy"]
    assert service.op == "update"
    changed = sorted(service.detailed_diff or {})
    assert changed and all(path.startswith("taskSpec.containerSpec.secrets[") and path.endswith(".secretId") for path in changed), changed
