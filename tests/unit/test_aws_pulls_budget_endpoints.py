"""Issue 8, items 9 and 10 and the network's weak points, on the recorded plan of every shipped
stack: services pull with the nodes' own role (no registry token in any service, every service
waiting for every node to hold the images), the budget counts spend from the first hour, the AWS
services the nodes call are reached through VPC endpoints, and the flow logs' role can publish and
is assumable by this account's flow logs only.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

import providers.aws.mocks
import review.plan
from components.registry import image_list_value
from dpc.model import SWARM_ROLES, Capability
from dpc.settings import Settings
from dpc.topology import derive
from providers.aws.mocks import ACCOUNT, AwsMocks
from providers.aws.network import ENDPOINTS
from review.plan import stack_config
from review.policy import load_pack_config, pack_config_for, plan_resources, run_policies
from tests.plan_graph import PlanGraph, Resource
from tests.unit.conftest import plan_of

SERVICE = "docker:index/service:Service"
PARAMETER = "aws:ssm/parameter:Parameter"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
SSM_STANDARD_VALUE_LIMIT = 4096
"""Characters of a Standard-tier SSM parameter's value (PutParameter's documented limit)."""


def _stack_images(graph: PlanGraph) -> set[str]:
    return {s.inputs["taskSpec"]["containerSpec"]["image"] for s in graph.of_type(SERVICE) if ".dkr.ecr." in s.inputs["taskSpec"]["containerSpec"]["image"]}


def _image_list(graph: PlanGraph) -> Resource:
    [parameter] = [p for p in graph.of_type(PARAMETER) if p.inputs["name"].endswith("/images")]
    return parameter


def test_services_carry_no_registry_credentials(graph: PlanGraph) -> None:
    """A token stored with a service expires after 12 hours and differs in every run."""
    for service in graph.of_type(SERVICE):
        assert "auth" not in service.inputs, f"{service.name} carries registry credentials"
    services = json.dumps([s.inputs for s in graph.of_type(SERVICE)])
    assert "mock-registry-token" not in services and "[secret]" not in services


def test_the_stacks_images_are_referenced_by_digest_and_listed_for_the_nodes(graph: PlanGraph) -> None:
    images = _stack_images(graph)
    assert images and all("@sha256:" in image for image in images), "a digest is never pulled again once present"
    parameter = _image_list(graph)
    assert parameter.inputs["type"] == "String" and "value" not in parameter.inputs
    listed = parameter.inputs["insecureValue"]
    assert listed == image_list_value(sorted(images)) and len(listed) <= SSM_STANDARD_VALUE_LIMIT


def test_every_service_waits_for_every_node_to_hold_the_images(graph: PlanGraph) -> None:
    steps = {s["urn"]: s["newState"] for s in graph.plan["steps"]}
    parameter = _image_list(graph)
    gates = [r for r in graph.resources if r.type == "command:remote:Command" and "/usr/local/sbin/dpc-images-ready " in r.inputs.get("create", "")]
    assert len(gates) == 1
    [gate] = gates
    command = gate.inputs["create"].split()
    checked = command[command.index("/usr/local/sbin/dpc-images-ready") + 1:]
    assert checked == sorted(_stack_images(graph)), "the gate checks exactly the images the services run"
    assert parameter.urn in steps[gate.urn]["dependencies"], "the nodes can read the list before the gate waits for their pulls"
    for service in graph.of_type(SERVICE):
        assert gate.urn in steps[service.urn]["dependencies"], service.name


def test_every_swarm_node_may_pull_exactly_the_stacks_repositories(graph: PlanGraph, settings: Settings) -> None:
    assert all(Capability.PULL_IMAGES in derive(settings).capabilities[role] for role in SWARM_ROLES)
    repositories = sorted(r.inputs["name"] for r in graph.of_type("aws:ecr/repository:Repository"))
    parameter = _image_list(graph).inputs["name"]
    for role in SWARM_ROLES:
        statements = graph.role_statements()[role.value]
        by_action = {tuple(s["Action"]): s["Resource"] for s in statements}
        assert by_action[("ecr:GetAuthorizationToken",)] == "*", "ECR's token action takes no narrower resource"
        pulled = by_action[("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")]
        assert [arn.rsplit("/", 1)[1] for arn in pulled] == repositories and all(arn.startswith("arn:aws:ecr:") for arn in pulled)
        readable = {r for s in statements if s["Action"] == ["ssm:GetParameter"] for r in s["Resource"]}
        assert f"arn:aws:ssm:{settings.region}:{ACCOUNT}:parameter{parameter}" in readable, role
    assert not any(s["Action"][0].startswith("ecr:") for s in graph.role_statements()["bastion"]), "the bastion pulls nothing"


def test_the_budget_counts_the_stacks_regions_without_a_cost_allocation_tag(graph: PlanGraph, settings: Settings) -> None:
    """A filter on the `Stack` tag counts nothing until the tag is activated, which a new account
    can do only a day after its first tagged resource, from its organisation's management account."""
    (budget,) = graph.of_type("aws:budgets/budget:Budget")
    regions = [settings.region, *([settings.backup.offsite_replica_region] if settings.backup.offsite_replica_region else [])]
    assert budget.inputs["costFilters"] == [{"name": "Region", "values": regions}]
    assert "TagKeyValue" not in json.dumps(budget.inputs)


def test_the_nodes_aws_traffic_goes_through_vpc_endpoints(graph: PlanGraph, settings: Settings) -> None:
    endpoints = {e.inputs["serviceName"].removeprefix(f"com.amazonaws.{settings.region}."): e for e in graph.of_type(ENDPOINT)}
    assert set(endpoints) == set(ENDPOINTS) == {"s3", "ecr.api", "ecr.dkr", "ssm"}
    private_tables = {r.id for r in graph.of_type("aws:ec2/routeTable:RouteTable") if "-private-" in r.name}
    private_subnets = {s.id for s in graph.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["Tier"] == "private"}
    assert len(private_subnets) == len(settings.zones)
    gateway = endpoints["s3"].inputs
    assert gateway["vpcEndpointType"] == "Gateway" and set(gateway["routeTableIds"]) == private_tables
    [group] = [g for g in graph.of_type("aws:ec2/securityGroup:SecurityGroup") if g.inputs["tags"]["Role"] == "endpoints"]
    for service in ("ecr.api", "ecr.dkr", "ssm"):
        inputs = endpoints[service].inputs
        assert inputs["vpcEndpointType"] == "Interface" and inputs["privateDnsEnabled"] is True, service
        assert set(inputs["subnetIds"]) == private_subnets and inputs["securityGroupIds"] == [group.id], service
    for endpoint in endpoints.values():
        assert endpoint.inputs["tags"]["Purpose"] and endpoint.inputs["tags"]["Stack"]
    rules = [r.inputs for r in graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") if r.inputs["securityGroupId"] == group.id]
    [vpc] = graph.of_type("aws:ec2/vpc:Vpc")
    assert [(r["ipProtocol"], r["fromPort"], r["toPort"], r.get("cidrIpv4")) for r in rules] == [("tcp", 443, 443, vpc.inputs["cidrBlock"])]


def test_the_flow_logs_role_publishes_as_documented_for_this_accounts_flow_logs_only(graph: PlanGraph, settings: Settings) -> None:
    trust = json.loads(graph.named("-network-flow-logs-role", "aws:iam/role:Role").inputs["assumeRolePolicy"])
    [statement] = trust["Statement"]
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:{settings.region}:{ACCOUNT}:vpc-flow-log/*"},
    }
    policy = json.loads(graph.named("-network-flow-logs-write", "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups", "logs:DescribeLogStreams"}
    for s in policy["Statement"]:
        if s["Resource"] == "*":
            assert s["Action"] == ["logs:DescribeLogGroups"], "only the listing takes no resource"


class _NewTokenMocks(AwsMocks):
    """AWS as on the next run: ECR hands out a new authorization token."""

    def _answer(self, token: str, arguments: dict[str, Any]) -> dict[str, Any]:
        answer = super()._answer(token, arguments)
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            answer |= {"password": "next-run-registry-token", "authorizationToken": "next-run-registry-token"}
        return answer


def test_a_new_registry_token_changes_nothing_but_the_push_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run gets a new ECR token: only the image builds' push credentials may differ, and
    pulumi-docker's image diff ignores them, so a preview of an unchanged stack shows no change."""
    _, before = review.plan.build_plan_revealed("prod")
    monkeypatch.setattr(providers.aws.mocks, "AwsMocks", _NewTokenMocks)
    _, after = review.plan.build_plan_revealed("prod")
    assert set(before) == set(after)
    changed = {urn for urn in before if before[urn] != after[urn]}
    assert changed and all(urn.split("::")[-2].endswith("docker:index/image:Image") for urn in changed), sorted(changed)
    for urn in changed:
        assert {k: v for k, v in before[urn].items() if k != "registry"} == {k: v for k, v in after[urn].items() if k != "registry"}
        assert before[urn]["registry"]["server"] == after[urn]["registry"]["server"]


@pytest.mark.parametrize(("field", "value"), [("cidrIpv4", "0.0.0.0/0"), ("fromPort", 22), ("cidrIpv4", "192.0.2.0/24")])
def test_the_policy_pack_holds_the_endpoints_group_to_https_from_the_vpc(field: str, value: object) -> None:
    plan = copy.deepcopy(plan_of("prod"))
    [rule] = [s for s in plan["steps"] if s["urn"].endswith("::prod-network-endpoints-in-https-from-vpc")]
    rule["newState"]["inputs"][field] = value
    config, _ = stack_config("prod")
    found = {(v.policy, v.urn.split("::")[-1]) for v in run_policies(plan_resources(plan), load_pack_config(pack_config_for(config)), config)}
    assert ("ports-only-from-firewall-matrix", "prod-network-endpoints-in-https-from-vpc") in found
