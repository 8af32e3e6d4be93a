"""The clouds' documented API limits over the offline plans (`review.limits`): every shipped stack is
within them, and each limit catches the input a cloud would refuse (each case mutates a copy of
the prod plan the way a careless change would).
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from review.limits import Breach, check_plan
from tests.unit.conftest import STACKS, planned

Plan = dict[str, Any]
Revealed = dict[str, dict[str, Any]]


@pytest.mark.parametrize("stack", [*STACKS, "local"])
def test_every_shipped_stack_is_within_the_clouds_limits(stack: str) -> None:
    plan, revealed = planned(stack)
    assert check_plan(plan, revealed, lint_iam=True) == []


def _mutated(change: Callable[[Plan, Revealed], None]) -> list[Breach]:
    plan, revealed = copy.deepcopy(planned("prod"))
    change(plan, revealed)
    return check_plan(plan, revealed, lint_iam=True)


def _steps(plan: Plan, typ: str) -> list[dict[str, Any]]:
    return [s for s in plan["steps"] if s["newState"]["type"] == typ]


def _set(plan: Plan, revealed: Revealed, step: dict[str, Any], key: str, value: Any) -> None:
    step["newState"]["inputs"][key] = value
    revealed[step["urn"]][key] = value


def _one(breaches: list[Breach], text: str) -> Breach:
    found = [b for b in breaches if text in b.message]
    assert len(found) == 1, [str(b) for b in breaches]
    return found[0]


def test_a_character_ec2_refuses_in_a_rule_description_is_caught() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        rule = _steps(plan, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")[0]
        _set(plan, revealed, rule, "description", "All outbound traffic (design §2.5)")

    breach = _one(_mutated(change), "characters the API refuses")
    assert "'§'" in breach.message and breach.field == "description"


def test_a_description_longer_than_ec2_takes_is_caught() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        group = _steps(plan, "aws:ec2/securityGroup:SecurityGroup")[0]
        _set(plan, revealed, group, "description", "x" * 256)

    assert "256 characters" in _one(_mutated(change), "256 characters").message


def test_a_machine_that_boots_before_its_route_to_the_nat_is_caught() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        for instance in _steps(plan, "aws:ec2/instance:Instance"):
            if instance["urn"].endswith("worker-2"):
                instance["newState"]["dependencies"] = [d for d in instance["newState"]["dependencies"] if "$aws:ec2/route" not in d]

    breaches = [b for b in _mutated(change) if "boots before its way out" in b.message]
    assert [b.urn.split("::")[-1] for b in breaches] == ["prod-compute-worker-2"]


@pytest.mark.parametrize(
    ("transitions", "expected"),
    [
        ([{"days": 20, "storageClass": "STANDARD_IA"}], "S3 requires at least 30"),
        ([{"days": 30, "storageClass": "STANDARD_IA"}, {"days": 45, "storageClass": "GLACIER_IR"}], "less than 30 days after"),
    ],
)
def test_lifecycle_transitions_s3_refuses_are_caught(transitions: list[dict[str, Any]], expected: str) -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        lifecycle = _steps(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")[0]
        rules = copy.deepcopy(lifecycle["newState"]["inputs"]["rules"])
        rules[0]["transitions"] = transitions
        _set(plan, revealed, lifecycle, "rules", rules)

    _one(_mutated(change), expected)


def test_an_expiry_before_the_last_transition_is_caught() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        lifecycle = _steps(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")[0]
        rules = copy.deepcopy(lifecycle["newState"]["inputs"]["rules"])
        rules[0]["transitions"] = [{"days": 30, "storageClass": "STANDARD_IA"}, {"days": 90, "storageClass": "GLACIER_IR"}]
        rules[0]["expiration"] = {"days": 60}
        _set(plan, revealed, lifecycle, "rules", rules)

    _one(_mutated(change), "not after the last transition")


def test_user_data_over_ec2s_16_kib_is_caught_also_when_compressed_and_secret() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        instance = next(s for s in _steps(plan, "aws:ec2/instance:Instance") if s["urn"].endswith("worker-1"))
        noise = base64.b64encode(random.Random(0).randbytes(20000)).decode()
        revealed[instance["urn"]].pop("userData", None)
        revealed[instance["urn"]]["userDataBase64"] = base64.b64encode(gzip.compress(noise.encode(), mtime=0)).decode()

    assert "at most 16384" in _one(_mutated(change), "at most 16384").message


def test_tags_aws_refuses_are_caught() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        vpc = _steps(plan, "aws:ec2/vpc:Vpc")[0]
        tags = dict(vpc["newState"]["inputs"]["tags"]) | {"Owner": "platform§team", "aws:reserved": "x"}
        _set(plan, revealed, vpc, "tags", tags)

    breaches = _mutated(change)
    _one(breaches, "tag value 'platform§team'")
    _one(breaches, "not starting with aws:")


def test_a_service_role_without_its_source_account_is_caught_but_an_instance_role_is_not() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        for role in _steps(plan, "aws:iam/role:Role"):
            document = json.loads(role["newState"]["inputs"]["assumeRolePolicy"])
            for statement in document["Statement"]:
                statement.pop("Condition", None)
            _set(plan, revealed, role, "assumeRolePolicy", json.dumps(document))

    breaches = [b for b in _mutated(change) if "aws:SourceAccount" in b.message]
    assert breaches
    assert all("ec2.amazonaws.com" not in b.message for b in breaches)
    assert {b.message.split()[0] for b in breaches} >= {"vpc-flow-logs.amazonaws.com"}


def test_the_iam_linter_reads_every_permission_policy() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        policy = _steps(plan, "aws:iam/rolePolicy:RolePolicy")[0]
        document = json.loads(policy["newState"]["inputs"]["policy"])
        document["Statement"].append({"Effect": "Allow", "Action": "s3:GetObjct", "Resource": "*"})
        _set(plan, revealed, policy, "policy", json.dumps(document))

    assert "UNKNOWN_ACTION" in _one(_mutated(change), "UNKNOWN_ACTION").message


def test_a_generated_name_from_a_logical_name_the_api_refuses_is_caught() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        balancer = _steps(plan, "aws:lb/loadBalancer:LoadBalancer")[0]
        balancer["urn"] = balancer["newState"]["urn"] = balancer["urn"].replace("prod-endpoint-nlb", "prod_endpoint_nlb")
        revealed[balancer["urn"]] = balancer["newState"]["inputs"]

    _one(_mutated(change), "generated from the logical name 'prod_endpoint_nlb'")


def test_names_docker_refuses_are_caught() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        secret = _steps(plan, "docker:index/secret:Secret")[0]
        _set(plan, revealed, secret, "name", "s" * 65)
        parameter = _steps(plan, "aws:ssm/parameter:Parameter")[0]
        _set(plan, revealed, parameter, "name", "/aws/reserved")

    breaches = _mutated(change)
    _one(breaches, "secret or config name is 65 characters")
    _one(breaches, "SSM parameter name '/aws/reserved'")


def test_unknown_and_secret_values_are_passed_over_without_revealed_inputs() -> None:
    plan, _ = copy.deepcopy(planned("prod"))
    for step in _steps(plan, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"):
        step["newState"]["inputs"]["description"] = "[unknown]"
    assert check_plan(plan) == []


def test_volumes_beyond_what_their_machine_drives_are_caught() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        for volume in _steps(plan, "aws:ebs/volume:Volume"):
            if volume["urn"].endswith("worker-1-data"):
                _set(plan, revealed, volume, "iops", 60000)
                _set(plan, revealed, volume, "throughput", 2000)

    breaches = [b for b in _mutated(change) if "drives at most" in b.message]
    assert [b.urn.split("::")[-1] for b in breaches] == ["prod-compute-worker-1", "prod-compute-worker-1"]
    assert any("EBS IOPS" in b.message for b in breaches) and any("MiB/s" in b.message for b in breaches)
