"""review.risk: every step classed, with reasons, on previews and on before/after plans of our stacks.

The "after" plans come from a copy of the stack file with one setting changed, planned as `./run
plan` plans it; a change no setting makes (rotating the CA, two workers moved at once, a volume
unprotected) is made on a copy of the head plan, as a code change would make it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from review.__main__ import main
from review.risk import Risk, RiskReport, classify, members_held
from review.steps import change_between_plans, change_from_digest, load_change
from tests.unit.conftest import plan_of

ROOT = Path(__file__).resolve().parents[2]
PREVIEWS = Path(__file__).with_name("previews")


def _after(tmp_path: Path, stack: str, **settings: Any) -> dict[str, Any]:
    """The plan of a copy of the stack file with `settings` (dpc keys, merged over it)."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    for key, value in settings.items():
        document["config"][f"dpc:{key}"] = value
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    return plan_of(stack, tmp_path)


def _by_name(report: RiskReport) -> dict[str, tuple[str, Risk, tuple[str, ...]]]:
    return {j.step.name: (j.step.op, j.risk, j.reasons) for j in report.judgements}


def _edited(plan: dict[str, Any], names: set[str], edit: Any) -> dict[str, Any]:
    changed = copy.deepcopy(plan)
    for step in changed["steps"]:
        if step["urn"].rsplit("::", 1)[1] in names:
            edit(step["newState"])
    return changed


def test_an_unchanged_stack_is_safe() -> None:
    report = classify(change_between_plans(plan_of("dev"), plan_of("dev")))
    assert report.worst is Risk.SAFE and not report.listed


def test_resizing_the_workers_waits_for_their_replacement_but_rolls_patroni_at_once(tmp_path: Path) -> None:
    """The machines keep their type until each is replaced (ignoreChanges); Patroni's settings and
    its services' memory and CPU, sized from the machine type, change in this update: the report
    shows the reviewer both.
    """
    head = _after(tmp_path, "dev", nodes={"workers": {"machineType": "r6i.2xlarge"}})
    steps = _by_name(classify(change_between_plans(plan_of("dev"), head)))
    for n in (1, 2, 3):
        worker = steps[f"dev-compute-worker-{n}"]
        assert worker[:2] == ("same", Risk.SAFE)
        assert "instanceType changed but ignored (ignoreChanges): applied only when the resource is replaced" in worker[2]
        service = steps[f"dev-database-patroni-{n}"]
        assert service[:2] == ("update", Risk.REVIEW) and service[2][0].startswith("updates what holds a patroni member (taskSpec")
        config = steps[f"dev-database-secret-patroni-{n}-patroni-yml"]
        assert config[:2] == ("replace", Risk.DANGEROUS) and any(f"dev-database-patroni-{n}" in r for r in config[2])
    changed = {name for name, (op, _, _) in steps.items() if op != "same"}
    assert all("patroni" in name for name in changed), changed


def test_more_iops_update_the_volumes_in_place(tmp_path: Path) -> None:
    head = _after(tmp_path, "dev", storage={"data": {"iops": 6000}})
    report = classify(change_between_plans(plan_of("dev"), head))
    changed = {name: (op, risk) for name, (op, risk, _) in _by_name(report).items() if op != "same"}
    assert changed == {f"dev-storage-worker-{n}-data": ("update", Risk.SAFE) for n in (1, 2, 3)}


def test_moving_a_subnet_replaces_its_machines_and_says_which_members_they_hold(tmp_path: Path) -> None:
    network = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["dpc:network"]
    network["privateSubnetCidrs"][0] = "10.40.48.0/20"
    report = classify(change_between_plans(plan_of("dev"), _after(tmp_path, "dev", network=network)))
    steps = _by_name(report)
    subnet = next(v for k, v in steps.items() if k.startswith("dev-network-private-") and v[0] == "replace")
    assert subnet[1] is Risk.REVIEW and any(r.startswith("blast radius: ") for r in subnet[2])
    replaced_machines = {k for k, v in steps.items() if v[0] == "replace" and k.startswith("dev-compute-") and "-disk" not in k}
    assert replaced_machines, "the machines of the moved subnet are replaced"
    for name in replaced_machines:
        _, risk, reasons = steps[name]
        if "worker" in name:
            assert risk is Risk.DANGEROUS and "replacing what holds a patroni member" in reasons
        if "manager" in name:
            assert risk is Risk.DANGEROUS and "replacing what holds an etcd member" in reasons
    assert steps["dev-endpoint-nlb"][1] is Risk.DANGEROUS, "the load balancer's DNS name changes"
    assert report.worst is Risk.DANGEROUS


def test_rotating_the_ca_re_issues_every_certificate_and_rolls_the_services() -> None:
    base = plan_of("dev")
    head = _edited(base, {"dev-database-ca"}, lambda state: state["inputs"].update(validityPeriodHours=state["inputs"]["validityPeriodHours"] + 1))
    report = classify(change_between_plans(base, head))
    steps = _by_name(report)
    assert steps["dev-database-ca"][:2] == ("replace", Risk.DANGEROUS)
    assert any("the CA" in reason for reason in steps["dev-database-ca"][2])
    certificates = [k for k, v in steps.items() if k.endswith("-cert") and v[0] == "replace"]
    assert len(certificates) >= 10
    secret = steps["dev-database-secret-tls-ca-cert"]
    assert secret[:2] == ("replace", Risk.DANGEROUS) and any("every service that mounts it rolls" in r for r in secret[2])
    assert "blast radius: 15 resources depend on it (dev-database-backup, dev-database-etcd-1, dev-database-etcd-2, " \
        "dev-database-etcd-3, dev-database-haproxy and 10 more)" in secret[2]
    services = {k: v for k, v in steps.items() if k.startswith("dev-database-") and v[0] == "update"}
    assert {k for k, v in services.items() if v[1] is Risk.REVIEW} == {f"dev-database-{m}-{n}" for m in ("etcd", "patroni") for n in (1, 2, 3)}


def test_two_patroni_machines_at_once_are_dangerous_one_is_not_the_same_reason() -> None:
    base = plan_of("dev")
    two = _edited(base, {"dev-compute-worker-1", "dev-compute-worker-2"}, lambda state: state["inputs"].update(subnetId="subnet-moved"))
    steps = _by_name(classify(change_between_plans(base, two)))
    assert any("takes 2 patroni members at once" in r for r in steps["dev-compute-worker-1"][2])
    one = _edited(base, {"dev-compute-worker-3"}, lambda state: state["inputs"].update(subnetId="subnet-moved"))
    steps = _by_name(classify(change_between_plans(base, one)))
    assert steps["dev-compute-worker-3"][1] is Risk.DANGEROUS
    assert not any("at once" in r for r in steps["dev-compute-worker-3"][2])


def test_deleting_the_prod_stack_is_irreversible_and_names_what_is_protected() -> None:
    report = classify(change_between_plans(plan_of("prod"), {"steps": []}))
    steps = _by_name(report)
    assert report.worst is Risk.IRREVERSIBLE
    volume = steps["prod-storage-worker-1-data"]
    assert volume[:2] == ("delete", Risk.IRREVERSIBLE) and any("protected" in r for r in volume[2])
    assert steps["prod-storage-key"][1] is Risk.IRREVERSIBLE
    assert steps["prod-database-ca"][1] is Risk.DANGEROUS
    assert all(j.step.op == "delete" for j in report.judgements)


def test_unprotecting_in_prod_is_dangerous_and_elsewhere_is_not() -> None:
    for stack, expected in (("prod", Risk.DANGEROUS), ("dev", Risk.SAFE)):
        base = plan_of(stack)
        name = f"{stack}-storage-worker-1-data"
        base = _edited(base, {name}, lambda state: state.update(protect=True))
        head = _edited(base, {name}, lambda state: state.update(protect=False))
        assert _by_name(classify(change_between_plans(base, head)))[name][1] is expected


def test_members_are_known_by_role_tag_by_label_and_by_service_name() -> None:
    change = load_change(PREVIEWS / "aws-update.json")
    app = change.step("urn:pulumi:prod::shop::aws:ec2/instance:Instance::app-1")
    assert app is not None and members_held(app) == ()
    plan = plan_of("dev")
    change = change_between_plans(plan, plan)
    held = {s.name: members_held(s) for s in change.steps if members_held(s)}
    assert held["dev-compute-manager-1"] == ("etcd",) and held["dev-compute-worker-2"] == ("patroni",)
    assert held["dev-database-etcd-3"] == ("etcd",) and held["dev-database-patroni-1"] == ("patroni",)
    assert "dev-compute-app-1" not in held and "dev-database-pgbouncer" not in held


def test_previews_with_and_without_replacement_steps_give_the_same_verdict() -> None:
    plain = classify(load_change(PREVIEWS / "aws-update.json")).as_json()
    expanded = classify(load_change(PREVIEWS / "aws-update-replacement-steps.json")).as_json()
    assert plain == expanded
    assert plain["worst"] == "irreversible"
    by_name = {s["urn"].rsplit("::", 1)[1]: s for s in plain["steps"]}
    assert by_name["exports"]["risk"] == "irreversible" and by_name["data-key"]["risk"] == "dangerous"
    assert by_name["app-1"]["risk"] == "review" and "blast radius: 1 resource depends on it (app-1-logs)" in by_name["app-1"]["reasons"]


def test_a_stack_the_program_did_not_write_lists_what_it_cannot_judge() -> None:
    report = classify(load_change(PREVIEWS / "foreign-stack.json")).as_json()
    by_name = {s["urn"].rsplit("::", 1)[1]: s for s in report["steps"]}
    assert by_name["warehouse"]["risk"] == "irreversible"
    assert by_name["api-token"]["risk"] == "dangerous"
    assert by_name["events"]["risk"] == "review" and "not one the engine is known to emit" in by_name["events"]["reasons"][0]
    assert by_name["raw"]["op"] == "import" and by_name["raw"]["risk"] == "review"
    assert by_name["etl"]["risk"] == "review", "an in-place machine type change stops the machine"
    assert by_name["bi"]["op"] == "refresh" and by_name["bi"]["risk"] == "safe"
    assert set(by_name) == {"warehouse", "api-token", "events", "raw", "etl", "reporting", "bi"}, "every step but the unchanged stack"


def test_the_risk_command_prints_json_and_gates_on_a_class(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["risk", str(PREVIEWS / "aws-update.json"), "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["worst"] == "irreversible" and {"urn", "type", "op", "risk", "reasons"} <= set(printed["steps"][0])
    assert main(["risk", str(PREVIEWS / "aws-update.json"), "--fail-on", "irreversible"]) == 1
    capsys.readouterr()
    assert main(["risk", str(PREVIEWS / "foreign-stack.json")]) == 0
    assert "| risk | op | resource | type | why |" in capsys.readouterr().out
    assert main(["risk", str(PREVIEWS / "nonexistent.json")]) == 2


def test_machines_of_a_stack_the_program_did_not_write_are_members_by_their_labels() -> None:
    def vm(name: str, labels: dict[str, str]) -> dict[str, Any]:
        state = {"type": "gcp:compute/instance:Instance", "custom": True, "inputs": {"name": name, "labels": labels}, "outputs": {}}
        return {"op": "delete", "urn": f"urn:pulumi:lab::kv::gcp:compute/instance:Instance::{name}", "oldState": state, "detailedDiff": None}
    digest = {"steps": [vm("kv-1", {"cluster": "etcd"}), vm("kv-2", {"app": "etcd-member"}), vm("web-1", {"app": "web"})]}
    steps = _by_name(classify(change_from_digest(digest)))
    assert steps["kv-1"][1] is Risk.DANGEROUS
    assert "takes 2 etcd members at once in this change (kv-1, kv-2): one at a time, each back before the next" in steps["kv-1"][2]
    assert steps["web-1"][1] is Risk.REVIEW and not any("member" in r for r in steps["web-1"][2])
