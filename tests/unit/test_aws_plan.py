"""What only AWS has, asserted on the recorded resource graph of every shipped AWS stack: security
group rules from the firewall matrix, IMDSv2 and the metadata hop limit, NAT gateways, S3 and its
replication, IAM statements, gp3 performance. The rules every cloud keeps are `test_plan.py`'s.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from components.network import ENDPOINTS_GROUP
from dpc.model import FIREWALL_MATRIX, SWARM_ROLES, FromCidrs, FromLoadBalancer, FromRole, Role
from dpc.settings import Settings
from dpc.topology import derive
from tests.plan_graph import PlanGraph
from tests.unit.conftest import plan_of
from tests.unit.policy_shapes import preview_of

PROJECT_ROOT = Path(__file__).resolve().parents[2]

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"
SUBNET = "aws:ec2/subnet:Subnet"
SG = "aws:ec2/securityGroup:SecurityGroup"


def _group_name(graph: PlanGraph, group_id: str) -> str:
    group = graph.by_id[group_id]
    assert group.type == SG
    return group.inputs["tags"]["Role"]


def _ingress_set(graph: PlanGraph) -> Counter[tuple[str, str, int, int, str]]:
    found: Counter[tuple[str, str, int, int, str]] = Counter()
    for rule in graph.of_type(INGRESS):
        inputs = rule.inputs
        source = _group_name(graph, inputs["referencedSecurityGroupId"]) if "referencedSecurityGroupId" in inputs else inputs["cidrIpv4"]
        protocol = {"50": "esp"}.get(inputs["ipProtocol"], inputs["ipProtocol"])
        found[(_group_name(graph, inputs["securityGroupId"]), protocol, inputs.get("fromPort", 0), inputs.get("toPort", 0), source)] += 1
    return found


def _expected_ingress(settings: Settings) -> Counter[tuple[str, str, int, int, str]]:
    cidrs = {"admin": settings.access.admin_cidrs, "clients": settings.access.client_cidrs or [settings.network.vpc_cidr]}
    expected: Counter[tuple[str, str, int, int, str]] = Counter()
    for rule in FIREWALL_MATRIX:
        target = "load-balancer" if rule.to is None else rule.to.value
        if isinstance(rule.source, FromCidrs):
            sources = list(cidrs[rule.source.kind])
        elif isinstance(rule.source, FromLoadBalancer):
            sources = ["load-balancer"]
        else:
            assert isinstance(rule.source, FromRole)
            sources = [rule.source.role.value]
        for source in sources:
            expected[(target, rule.protocol, rule.port, rule.to_port, source)] += 1
    return expected


def test_firewall_matrix_is_realised_exactly_as_security_group_rules(graph: PlanGraph, settings: Settings) -> None:
    rules = _ingress_set(graph)
    endpoints = Counter({flow: count for flow, count in rules.items() if flow[0] == ENDPOINTS_GROUP})
    assert rules - endpoints == _expected_ingress(settings), "the service endpoints' own rule is checked in test_aws_pulls_budget_endpoints"


def test_seed_host_ports_are_open_only_from_their_sources(graph: PlanGraph, settings: Settings) -> None:
    rules = _ingress_set(graph)
    def sources(group: str, port: int, protocol: str = "tcp") -> set[str]:
        return {s for (g, p, lo, hi, s) in rules if g == group and p == protocol and lo <= port <= hi}
    swarm = {role.value for role in SWARM_ROLES}
    assert sources("manager", 2377) == swarm
    for role in SWARM_ROLES:
        assert sources(role.value, 7946) == swarm
        assert sources(role.value, 7946, "udp") == swarm
        assert sources(role.value, 4789, "udp") == swarm
        assert sources(role.value, 0, "esp") == swarm
        assert sources(role.value, 22) == {"bastion"}, "SSH only from the bastion"
    assert sources("manager", 2379) == {"manager", "worker"}
    assert sources("manager", 2380) == {"manager"}
    assert sources("worker", 8008) == {"manager"}, "Patroni API from monitoring (Prometheus and HAProxy on the managers) only"
    assert sources("worker", 5432) == {"manager", "app", "backup"}
    assert sources("bastion", 22) == set(settings.access.admin_cidrs)
    assert sources("manager", 5432) == {"load-balancer", "app", *(settings.access.client_cidrs or [settings.network.vpc_cidr])}


def test_default_security_group_is_closed_and_flow_logs_record_all_traffic(graph: PlanGraph) -> None:
    default = graph.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert len(default) == 1
    assert default[0].inputs["ingress"] == [] and default[0].inputs["egress"] == []
    vpc = graph.of_type("aws:ec2/vpc:Vpc")[0]
    (flow_log,) = graph.of_type("aws:ec2/flowLog:FlowLog")
    assert flow_log.inputs["vpcId"] == vpc.id and flow_log.inputs["trafficType"] == "ALL"


def test_the_stack_key_rotates_and_encrypts_logs_and_parameters_as_kms(graph: PlanGraph) -> None:
    """Beyond the volumes and stores every cloud keeps under the stack key (`test_plan.py`): the
    ARN is the stack region's, volumes are gp3, the bucket's default encryption is SSE-KMS, log
    groups use the key, and every parameter but the image list is a SecureString."""
    assert all(k.inputs["enableKeyRotation"] is True for k in graph.of_type("aws:kms/key:Key"))
    key_arns = {v.inputs["kmsKeyId"] for v in graph.of_type(VOLUME)}
    assert len(key_arns) == 1
    key_arn = key_arns.pop()
    assert re.fullmatch(r"arn:aws:kms:us-east-1:\d{12}:key/[0-9a-f-]{36}", key_arn)
    assert all(volume.inputs["type"] == "gp3" for volume in graph.of_type(VOLUME))
    sse = graph.named("-storage-backups-encryption", "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    default = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert default == {"kmsMasterKeyId": key_arn, "sseAlgorithm": "aws:kms"}
    for group in graph.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert group.inputs["kmsKeyId"] == key_arn
    for parameter in graph.of_type("aws:ssm/parameter:Parameter"):
        if not parameter.name.endswith("-image-list-references"):  # image references, no secret: plain String
            assert parameter.inputs["type"] == "SecureString" and parameter.inputs["keyId"] == key_arn


def test_each_workers_volumes_have_the_provisioned_gp3_performance(graph: PlanGraph, settings: Settings) -> None:
    """Zones, sizes and attachments are every cloud's rule (`test_plan.py`); gp3's IOPS and
    throughput are bought apart from the size, as the settings give them."""
    for volume in graph.of_type(VOLUME):
        if volume.inputs["tags"]["Purpose"] in ("data", "wal"):
            size = settings.storage.data if volume.inputs["tags"]["Purpose"] == "data" else settings.storage.wal
            assert (volume.inputs["iops"], volume.inputs["throughput"]) == (size.iops, size.throughput_mbps), volume.name


def test_instances_require_imdsv2_and_only_the_bastion_sits_in_a_public_subnet(graph: PlanGraph) -> None:
    public_subnets = {s.id for s in graph.of_type(SUBNET) if s.inputs["tags"]["Tier"] == "public"}
    for subnet in graph.of_type(SUBNET):
        assert subnet.inputs["mapPublicIpOnLaunch"] is False
    for instance in graph.of_type(INSTANCE):
        assert instance.inputs["metadataOptions"]["httpTokens"] == "required", instance.name
        is_bastion = instance.inputs["tags"]["Role"] == Role.BASTION.value
        assert (instance.inputs["subnetId"] in public_subnets) is is_bastion, instance.name
        assert "iamInstanceProfile" in instance.inputs, "the bastion's identity reads its host key, nothing else"


def test_only_the_backup_agents_containers_reach_the_instance_metadata(graph: PlanGraph, settings: Settings) -> None:
    """Elsewhere a container could act with the node's role and read the Swarm's join tokens: on
    the other managers too, where the agent runs on manager-1 (dev and staging)."""
    agent = "backup-1" if settings.nodes.backup.count else "manager-1"
    hops = {i.inputs["tags"]["Node"]: i.inputs["metadataOptions"]["httpPutResponseHopLimit"] for i in graph.of_type(INSTANCE)}
    assert hops == {node: 2 if node == agent else 1 for node in hops}


def test_the_image_is_looked_up_by_its_pinned_name(graph: PlanGraph, settings: Settings) -> None:
    amis = {i.inputs["ami"] for i in graph.of_type(INSTANCE)}
    assert len(amis) == 1 and next(iter(amis)).startswith("ami-")
    assert re.fullmatch(r"debian-12-amd64-\d{8}-\d{4}", settings.image.name)


def test_only_stateful_resources_are_protected(graph: PlanGraph) -> None:
    protected = {r.type for r in graph.resources if r.protect}
    assert protected <= {
        VOLUME, "aws:kms/key:Key", "aws:s3/bucket:Bucket", "aws:ecr/repository:Repository",
        "random:index/randomPassword:RandomPassword", "tls:index/privateKey:PrivateKey", "tls:index/selfSignedCert:SelfSignedCert",
    }


def test_the_load_balancer_forwards_postgres_to_the_haproxy_nodes(graph: PlanGraph, settings: Settings) -> None:
    (nlb,) = graph.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert nlb.inputs["loadBalancerType"] == "network"
    assert nlb.inputs["enableCrossZoneLoadBalancing"] is True
    assert nlb.inputs["enableDeletionProtection"] is settings.is_prod
    assert nlb.inputs["internal"] is (not settings.access.client_cidrs)
    assert [_group_name(graph, g) for g in nlb.inputs["securityGroups"]] == ["load-balancer"]
    (targets,) = graph.of_type("aws:lb/targetGroup:TargetGroup")
    assert (targets.inputs["port"], targets.inputs["protocol"]) == (5432, "TCP")
    check = targets.inputs["healthCheck"]
    assert (check["protocol"], check["port"], check["interval"], check["healthyThreshold"], check["unhealthyThreshold"]) == ("TCP", "5432", 10, 3, 3)
    (listener,) = graph.of_type("aws:lb/listener:Listener")
    assert (listener.inputs["port"], listener.inputs["protocol"]) == (5432, "TCP")
    assert listener.inputs["defaultActions"][0]["type"] == "forward"


def test_backup_buckets_are_versioned_private_tls_only_with_the_seed_lifecycle(graph: PlanGraph, settings: Settings) -> None:
    buckets = ["backups", "backups-replica"] if settings.backup.offsite_replica_region else ["backups"]
    assert len(graph.of_type("aws:s3/bucket:Bucket")) == len(buckets)
    for bucket in buckets:
        versioning = graph.named(f"-storage-{bucket}-versioning", "aws:s3/bucketVersioning:BucketVersioning")
        assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
        block = graph.named(f"-storage-{bucket}-public-access", "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        assert all(block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
        policy = graph.named(f"-storage-{bucket}-tls-only", "aws:s3/bucketPolicy:BucketPolicy")
        statements = json.loads(policy.inputs["policy"])["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)
        lifecycle = graph.named(f"-storage-{bucket}-lifecycle", "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        rule = lifecycle.inputs["rules"][0]
        assert rule["status"] == "Enabled"
        assert [(t["storageClass"], t["days"]) for t in rule["transitions"]] == [("STANDARD_IA", 30), ("GLACIER_IR", 90)]
        assert rule["expiration"] == {"expiredObjectDeleteMarker": True}, "no current object expires under pgBackRest"
        assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 30}


@pytest.mark.parametrize("stack", ["prod"])
def test_prod_backups_are_copied_to_a_second_region_under_its_own_key(graph: PlanGraph, settings: Settings) -> None:
    (replica_region,) = [p for p in graph.of_type("pulumi:providers:aws") if p.inputs.get("region") == settings.backup.offsite_replica_region]
    replica_key = graph.named("-storage-replica-key", "aws:kms/key:Key")
    replica = graph.named("-storage-backups-replica", "aws:s3/bucket:Bucket")
    for resource in (replica_key, replica):
        assert resource.provider.startswith(replica_region.urn) and resource.protect, resource.name
    sids = [s["Sid"] for s in json.loads(replica_key.inputs["policy"])["Statement"]]
    assert sids == ["AccountAdministersTheKeyThroughIam"], "the replica key encrypts backups only, no logs"
    depends = {s["urn"]: s["newState"]["propertyDependencies"] for s in graph.plan["steps"]}
    sse = graph.named("-storage-backups-replica-encryption", "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert depends[sse.urn]["rules"] == [replica_key.urn], "the copy is encrypted with the replica region's own key"
    (replication,) = graph.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    (rule,) = replication.inputs["rules"]
    assert rule["status"] == "Enabled" and rule["sourceSelectionCriteria"] == {"sseKmsEncryptedObjects": {"status": "Enabled"}}
    assert rule["destination"]["bucket"] == f"arn:aws:s3:::{replica.id}"
    assert set(depends[replication.urn]["rules"]) == {replica.urn, replica_key.urn}
    assert f":kms:{settings.backup.offsite_replica_region}:" in rule["destination"]["encryptionConfiguration"]["replicaKmsKeyId"]
    assert rule["destination"]["storageClass"] == "STANDARD", "copies age through the replica's lifecycle like the source's"
    trust = json.loads(graph.named("-storage-replication", "aws:iam/role:Role").inputs["assumeRolePolicy"])["Statement"]
    source = f"arn:aws:s3:::{graph.named('-storage-backups', 'aws:s3/bucket:Bucket').id}"
    assert [s["Condition"] for s in trust] == [{"StringEquals": {"aws:SourceAccount": "123456789012"}, "ArnEquals": {"aws:SourceArn": source}}]
    role_policy = json.loads(graph.named("-storage-replication", "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    actions = {a for s in role_policy["Statement"] for a in s["Action"]}
    assert "s3:ReplicateObject" in actions and not [a for a in actions if a.endswith("*")]


def test_instance_identities_hold_only_their_roles_capabilities(graph: PlanGraph, settings: Settings) -> None:
    policies = graph.role_statements()
    assert set(policies) == {role.value for role, caps in derive(settings).capabilities.items() if caps}
    for role, statements in policies.items():
        actions = {a for s in statements for a in s["Action"]}
        for statement in statements:
            assert statement["Effect"] == "Allow"
            assert "*" not in json.dumps(statement["Action"])
            if statement["Action"] == ["ecr:GetAuthorizationToken"]:
                assert statement["Resource"] == "*", "ECR's token action takes no narrower resource"
                continue
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert all(r.startswith("arn:aws:") and not r.endswith(":*") for r in resources), (role, statement)
        agent = "backup" if settings.nodes.backup.count else "manager"
        assert ("s3:PutObject" in actions) is (role == agent), f"only the backup agent's {agent} machines write to the bucket, not {role}"
        assert ("ssm:PutParameter" in actions) is (role == "manager"), role
        readable = {r for s in statements if s["Action"] == ["ssm:GetParameter"] for r in s["Resource"]}
        assert any(r.endswith("manager-token") for r in readable) is (role == "manager"), role
        host_keys = sorted(r.rsplit("/", 1)[1] for r in readable if "/host-keys/" in r)
        assert host_keys == {"manager": ["manager-1"], "bastion": ["bastion"]}.get(role, []), f"{role} reads only its reached machine's host key"
    assert {a for s in policies["bastion"] for a in s["Action"]} == {"ssm:GetParameter", "kms:Decrypt"}


def test_budget_alerts_the_stacks_addresses(graph: PlanGraph, settings: Settings) -> None:
    (budget,) = graph.of_type("aws:budgets/budget:Budget")
    assert budget.inputs["limitAmount"] == f"{settings.budget.monthly_usd:.2f}" and budget.inputs["timeUnit"] == "MONTHLY"
    assert all(n["subscriberEmailAddresses"] == settings.budget.alert_emails for n in budget.inputs["notifications"])


def _private_route_nats(graph: PlanGraph) -> dict[str, str]:
    """Zone of each private subnet's default route → the zone of the NAT gateway it goes through."""
    routes = [r for r in graph.of_type("aws:ec2/route:Route") if "natGatewayId" in r.inputs]
    return {r.name.split("private-")[1].removesuffix("-default"): graph.by_id[r.inputs["natGatewayId"]].name.split("nat-")[1] for r in routes}


@pytest.mark.parametrize("stack", ["prod"])
def test_prod_has_a_nat_gateway_per_zone_and_a_backup_node(graph: PlanGraph) -> None:
    assert len(graph.of_type("aws:ec2/natGateway:NatGateway")) == 3
    assert _private_route_nats(graph) == {zone: zone for zone in ("us-east-1a", "us-east-1b", "us-east-1c")}
    assert [i.inputs["tags"]["Node"] for i in graph.of_type(INSTANCE) if i.inputs["tags"]["Role"] == "backup"] == ["backup-1"]


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_smaller_environments_share_one_nat_gateway(graph: PlanGraph) -> None:
    assert len(graph.of_type("aws:ec2/natGateway:NatGateway")) == 1
    assert _private_route_nats(graph) == dict.fromkeys(("us-east-1a", "us-east-1b", "us-east-1c"), "us-east-1a")


def test_listing_client_cidrs_makes_the_endpoint_public_for_those_networks_only(tmp_path: Path) -> None:
    prod = (PROJECT_ROOT / "Pulumi.prod.yaml").read_text()
    (tmp_path / "Pulumi.prod.yaml").write_text(prod.replace("clientCidrs: []", "clientCidrs: [198.51.100.0/24, 192.0.2.0/25]"))
    graph = PlanGraph(plan_of("prod", tmp_path))
    (nlb,) = graph.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert nlb.inputs["internal"] is False
    public_subnets = {s.id for s in graph.of_type(SUBNET) if s.inputs["tags"]["Tier"] == "public"}
    assert set(nlb.inputs["subnets"]) == public_subnets
    rules = _ingress_set(graph)
    assert {s for (g, _, lo, _, s) in rules if g == "load-balancer" and lo == 5432} == {"198.51.100.0/24", "192.0.2.0/25"}
    assert {s for (g, _, lo, _, s) in rules if g == "app" and lo in (6432, 6379)} == {"198.51.100.0/24", "192.0.2.0/25"}
    assert "10.20.0.0/16" not in {s for (g, *_, s) in rules if g != ENDPOINTS_GROUP}, "the VPC reaches only the service endpoints"


def test_what_a_role_may_do_is_known_at_a_first_preview_but_the_key_it_may_use(stack: str, graph: PlanGraph) -> None:
    """The stack key's ARN is unknown until the key exists; everything else a role's statements name
    follows from names the program chooses. So each role's statements on the key stand in a policy
    of their own, and the rest is a whole document at a first preview, where the pack judges it.
    """
    preview = PlanGraph(preview_of(stack))
    identities = [p for p in preview.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-identity")]
    assert identities and all(p.inputs["policy"] != "[unknown]" for p in identities), "a role's own policy is known at preview"
    dependencies = {step["urn"]: step["newState"]["dependencies"] for step in graph.plan["steps"]}
    for policy in graph.of_type("aws:iam/rolePolicy:RolePolicy"):
        if "-compute-" in policy.name:
            on_key = [all(a.startswith("kms:") for a in s["Action"]) for s in json.loads(policy.inputs["policy"])["Statement"]]
            assert on_key and set(on_key) == {policy.name.endswith("-identity-key")}, policy.name
            if policy.name.endswith("-identity"):
                key_policy = graph.named(f"{policy.name}-key", "aws:iam/rolePolicy:RolePolicy")
                assert key_policy.urn in dependencies[policy.urn], "the key's statements are granted apart before the role policy loses them"
