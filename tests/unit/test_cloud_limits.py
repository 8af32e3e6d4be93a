"""The clouds' documented API limits over the offline plans (`review.limits`): every shipped stack is
within them, and each limit catches the input a cloud would refuse (each case mutates a copy of
the prod plan, AWS's or GCP's, the way a careless change would).
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


GCP_STACKS = ("gcp-prod", "gcp-dev")


@pytest.mark.parametrize("stack", [*STACKS, *GCP_STACKS, "local"])
def test_every_shipped_stack_is_within_the_clouds_limits(stack: str) -> None:
    plan, revealed = planned(stack)
    assert check_plan(plan, revealed, lint_iam=True) == []


def _mutated(change: Callable[[Plan, Revealed], None], stack: str = "prod") -> list[Breach]:
    plan, revealed = copy.deepcopy(planned(stack))
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


def _gcp(suffix: str, typ: str, path: str, value: Any) -> Callable[[Plan, Revealed], None]:
    """A change to one input (a dotted path, numbers indexing lists) of the gcp-prod resource named `*suffix`."""

    def change(plan: Plan, revealed: Revealed) -> None:
        (step,) = [s for s in _steps(plan, typ) if s["urn"].endswith(suffix)]
        *parents, leaf = path.split(".")
        for inputs in (step["newState"]["inputs"], revealed[step["urn"]]):
            container = inputs
            for key in parents:
                container = container[int(key)] if isinstance(container, list) else container[key]
            container[leaf] = value

    return change


INSTANCE = "gcp:compute/instance:Instance"
DISK = "gcp:compute/disk:Disk"
FIREWALL = "gcp:compute/firewall:Firewall"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_gcp("network-all-in-deny", FIREWALL, "name", "All_In_Deny"), "Compute Engine resource name 'All_In_Deny' has characters the API refuses"),
        (_gcp("compute-worker-1", INSTANCE, "name", "w" * 64), "Compute Engine resource name is 64 characters"),
        (_gcp("compute-app-identity", "gcp:serviceaccount/account:Account", "accountId", "app"), "service account id is 3 characters; the API takes 6–30"),
        (_gcp("storage-worker-1-data", DISK, "labels.owner", "Platform Team"), "label value 'Platform Team'"),
        (_gcp("storage-worker-1-data", DISK, "labels", {f"k{n}": "v" for n in range(65)}), "65 labels; GCP takes at most 64"),
        (_gcp("storage-backups", "gcp:storage/bucket:Bucket", "name", "dpc-google-backups"), "names cannot begin with goog nor contain google"),
        (_gcp("storage-key", "gcp:kms/cryptoKey:CryptoKey", "rotationPeriod", "3600s"), "between 24 and 876,000 hours"),
        (_gcp("storage-key", "gcp:kms/cryptoKey:CryptoKey", "rotationPeriod", "90d"), "a duration in seconds"),
        (_gcp("compute-worker-1", INSTANCE, "metadata.user-data", "x" * (256 * 1024 + 1)), "a metadata value takes at most 262144"),
        (_gcp("compute-worker-1", INSTANCE, "metadata.startup_script!", "x"), "metadata keys take [a-zA-Z0-9_-]"),
        (_gcp("storage-worker-1-data", DISK, "size", 70000), "it takes 10–65536 GB"),
        (_gcp("compute-worker-1", INSTANCE, "bootDisk.initializeParams.size", 5), "5 GB of pd-balanced"),
        (_gcp("endpoint-health", "gcp:compute/regionHealthCheck:RegionHealthCheck", "timeoutSec", 30), "30 s is longer than the 10 s interval"),
        (_gcp("network-app-in-tcp22-from-roles", FIREWALL, "targetServiceAccounts", ["a@b.iam.gserviceaccount.com"]),
         "network tags or by service accounts, not both"),
        (_gcp("network-all-in-deny", FIREWALL, "sourceTags", [f"t{n}" for n in range(31)]), "31 entries; a firewall rule takes at most 30"),
        (_gcp("compute-worker-1", INSTANCE, "tags", ["Worker"]), "network tag 'Worker'"),
        (_gcp("registry-images", "gcp:secretmanager/secret:Secret", "secretId", "dpc.images"), "secret id 'dpc.images'"),
        (_gcp("swarm-manager-address-value", "gcp:secretmanager/secretVersion:SecretVersion", "secretData", "x" * (64 * 1024 + 1)),
         "a secret version takes at most 65536"),
        (_gcp("compute-app-read-image-list", "gcp:secretmanager/secretIamMember:SecretIamMember", "member", "app@example.com"), "names no kind of principal"),
        (_gcp("network-private", "gcp:compute/subnetwork:Subnetwork", "ipCidrRange", "10.60.0.0/30"), "a subnetwork's primary range is at most /29"),
        (_gcp("storage-worker-1-data", DISK, "diskEncryptionKey.kmsKeySelfLink", "projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k"),
         "a key in europe-west1 cannot protect data in global or us-central1"),
        (_gcp("registry-images", "gcp:secretmanager/secret:Secret", "replication.userManaged.replicas.0.location", "europe-west1"),
         "cannot protect data in europe-west1"),
        (_gcp("storage-backups", "gcp:storage/bucket:Bucket", "location", "EU"), "a key in us cannot protect data in eu"),
        (_gcp("registry-postgres", "gcp:artifactregistry/repository:Repository", "location", "us-east1"), "cannot protect data in us-east1"),
        (_gcp("network-flow-logs", "gcp:logging/projectBucketConfig:ProjectBucketConfig", "location", "global"), "cannot protect data in global"),
        (_gcp("network-app-in-tcp22-from-roles", FIREWALL, "direction", "EGRESS"), "an egress rule takes no source tags"),
        (_gcp("compute-worker-1", INSTANCE, "metadata", {f"k{n}": "x" * (200 * 1024) for n in range(3)}), "an instance takes at most 524288"),
        (_gcp("compute-worker-1", INSTANCE, "tags", [f"t{n}" for n in range(65)]), "65 network tags; an instance takes at most 64"),
        (_gcp("compute-app-identity", "gcp:serviceaccount/account:Account", "description", "d" * 257), "service account description is 257 characters"),
        (_gcp("budget-monthly", "gcp:billing/budget:Budget", "displayName", "b" * 61), "budget display name is 61 characters"),
        (_gcp("storage-key", "gcp:kms/cryptoKey:CryptoKey", "name", "stack key"), "key ring or key name 'stack key'"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_inputs_gcp_refuses_are_caught(change: Callable[[Plan, Revealed], None], expected: str) -> None:
    _one(_mutated(change, "gcp-prod"), expected)


def test_a_name_gcp_would_generate_from_a_logical_name_it_refuses_is_caught() -> None:
    def change(plan: Plan, revealed: Revealed) -> None:
        (router,) = _steps(plan, "gcp:compute/router:Router")
        router["urn"] = router["newState"]["urn"] = router["urn"].replace("gcp-prod-network-router", "gcp-prod-network_router")
        revealed[router["urn"]] = router["newState"]["inputs"]

    _one(_mutated(change, "gcp-prod"), "generated from the logical name as 'gcp-prod-network_router-")


def test_gcp_values_unknown_at_preview_are_passed_over() -> None:
    plan, _ = copy.deepcopy(planned("gcp-prod"))
    for step in _steps(plan, INSTANCE):
        step["newState"]["inputs"]["metadata"]["user-data"] = "[unknown]"
        step["newState"]["inputs"]["name"] = "[unknown]"
    assert check_plan(plan) == []
