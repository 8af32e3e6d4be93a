"""The policy pack on the shipped stacks' offline plans: every stack passes with its environment's
config, each mutation of the prod plan that breaks a rule is caught, and `python -m review plan`
prints the violations and fails on a mandatory one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from review.__main__ import main
from review.plan import stack_config
from review.policy import load_pack_config, pack_config_for, plan_resources, run_policies
from tests.unit.conftest import plan_of

Step = dict[str, Any]


def _violations(plan: dict[str, Any], stack: str) -> list[tuple[str, str, EnforcementLevel]]:
    config, _ = stack_config(stack)
    found = run_policies(plan_resources(plan), load_pack_config(pack_config_for(config)), config)
    return [(v.policy, v.urn.split("::")[-1], v.level) for v in found]


def test_every_shipped_stack_passes_its_environments_pack(stack: str) -> None:
    assert _violations(plan_of(stack), stack) == []


def _step(plan: dict[str, Any], suffix: str, typ: str) -> Step:
    found = [s for s in plan["steps"] if s["urn"].endswith(f"::{suffix}") and s["newState"]["type"] == typ]
    assert len(found) == 1, suffix
    return found[0]


def _open_postgres_to_the_world(plan: dict[str, Any]) -> None:
    _step(plan, "prod-network-manager-in-tcp5432-from-clients0", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")["newState"]["inputs"][
        "cidrIpv4"
    ] = "0.0.0.0/0"


def _unencrypted_volume(plan: dict[str, Any]) -> None:
    _step(plan, "prod-storage-worker-1-data", "aws:ebs/volume:Volume")["newState"]["inputs"]["encrypted"] = False


def _missing_tag(plan: dict[str, Any]) -> None:
    del _step(plan, "prod-network-vpc", "aws:ec2/vpc:Vpc")["newState"]["inputs"]["tags"]["Owner"]


def _unprotected_volume(plan: dict[str, Any]) -> None:
    _step(plan, "prod-storage-worker-1-data", "aws:ebs/volume:Volume")["newState"]["protect"] = False


def _password_in_service_environment(plan: dict[str, Any]) -> None:
    container = _step(plan, "prod-database-grafana", "docker:index/service:Service")["newState"]["inputs"]["taskSpec"]["containerSpec"]
    container["env"] = {**container.get("env", {}), "GF_SECURITY_ADMIN_PASSWORD": "correct horse battery staple"}


def _node_with_public_ip(plan: dict[str, Any]) -> None:
    _step(plan, "prod-compute-worker-2", "aws:ec2/instance:Instance")["newState"]["inputs"]["associatePublicIpAddress"] = True


def _grafana_on_data_net(plan: dict[str, Any]) -> None:
    """Grafana attached to data-net, as a Service references a network: by id, with the network in
    the taskSpec's property dependencies."""
    network = _step(plan, "prod-database-data-net", "docker:index/network:Network")["newState"]
    grafana = _step(plan, "prod-database-grafana", "docker:index/service:Service")["newState"]
    grafana["inputs"]["taskSpec"]["networksAdvanceds"].append({"id": "[unknown]"})
    grafana["propertyDependencies"]["taskSpec"].append(network["urn"])
    grafana["dependencies"].append(network["urn"])


def _password_in_service_arguments(plan: dict[str, Any]) -> None:
    container = _step(plan, "prod-database-redis", "docker:index/service:Service")["newState"]["inputs"]["taskSpec"]["containerSpec"]
    container["args"] += ["--requirepass", "hunter2"]


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], set[tuple[str, str]]]] = {
    "postgres open to 0.0.0.0/0": (
        _open_postgres_to_the_world,
        {
            ("no-ingress-from-anywhere", "prod-network-manager-in-tcp5432-from-clients0"),
            ("ports-only-from-firewall-matrix", "prod-network-manager-in-tcp5432-from-clients0"),
        },
    ),
    "unencrypted volume": (_unencrypted_volume, {("disks-encrypted-with-customer-key", "prod-storage-worker-1-data")}),
    "missing tag": (_missing_tag, {("required-tags", "prod-network-vpc")}),
    "unprotected prod volume": (_unprotected_volume, {("stateful-resources-protected", "prod-storage-worker-1-data")}),
    "password in a service's environment": (_password_in_service_environment, {("no-secret-in-service-environment", "prod-database-grafana")}),
    "node with a public IP": (_node_with_public_ip, {("no-public-ip-on-nodes", "prod-compute-worker-2")}),
    "grafana attached to data-net": (_grafana_on_data_net, {("services-only-on-their-overlay-networks", "prod-database-grafana")}),
    "password in a service's arguments": (
        _password_in_service_arguments,
        # the plan's Redis no longer runs the program's Redis command (dpc/services.py): it has no identity either
        {("no-secret-in-service-environment", "prod-database-redis"), ("services-only-on-their-overlay-networks", "prod-database-redis")},
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_each_mutation_of_the_prod_plan_is_caught_as_mandatory(mutation: str) -> None:
    mutate, expected = MUTATIONS[mutation]
    plan = copy.deepcopy(plan_of("prod"))
    mutate(plan)
    found = _violations(plan, "prod")
    assert {(policy, name) for policy, name, _ in found} == expected
    assert {level for _, _, level in found} == {EnforcementLevel.MANDATORY}


def test_the_plan_command_prints_violations_by_level_and_fails_on_a_mandatory_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "strict.json"
    config.write_text(json.dumps({"all": "advisory", "stateful-resources-protected": "mandatory", "flow-logs-on": "disabled"}))
    assert main(["plan", "--stack", "dev", "--out", str(tmp_path / "plan.json"), "--policy-pack-config", str(config)]) == 1
    printed = capsys.readouterr().out
    mandatory = printed.split("mandatory violations (", 1)[1]
    assert "stateful-resources-protected — dev-storage-worker-1-data" in mandatory
    assert "fix: Create the resource with ResourceOptions(protect=True)" in mandatory
    assert "advisory violations" not in printed


def test_the_plan_command_passes_a_clean_stack_and_refuses_a_bad_pack_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "dev", "--out", str(tmp_path / "plan.json")]) == 0
    assert "policy pack: no violations" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"required-tags": "blocking"}))
    assert main(["plan", "--stack", "dev", "--out", str(tmp_path / "plan.json"), "--policy-pack-config", str(bad)]) == 2
    assert "required-tags: 'blocking' is not a valid enforcement level" in capsys.readouterr().err
