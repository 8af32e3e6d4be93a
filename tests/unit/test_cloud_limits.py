"""The clouds' documented API limits over the offline plans (`review.limits`): every shipped stack is
within them, and each limit catches the input a cloud would refuse (each case mutates a copy of
the prod plan, AWS's, GCP's or Azure's, the way a careless change would).
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
AZURE_STACKS = ("azure-prod", "azure-dev")


@pytest.mark.parametrize("stack", [*STACKS, *GCP_STACKS, *AZURE_STACKS, "local"])
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


def _change(suffix: str, typ: str, path: str, value: Any) -> Callable[[Plan, Revealed], None]:
    """A change to one input (a dotted path, numbers indexing lists) of the resource of type `typ` named `*suffix`."""

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
        (_change("network-all-in-deny", FIREWALL, "name", "All_In_Deny"), "Compute Engine resource name 'All_In_Deny' has characters the API refuses"),
        (_change("compute-worker-1", INSTANCE, "name", "w" * 64), "Compute Engine resource name is 64 characters"),
        (_change("compute-app-identity", "gcp:serviceaccount/account:Account", "accountId", "app"), "service account id is 3 characters; the API takes 6–30"),
        (_change("storage-worker-1-data", DISK, "labels.owner", "Platform Team"), "label value 'Platform Team'"),
        (_change("storage-worker-1-data", DISK, "labels", {f"k{n}": "v" for n in range(65)}), "65 labels; GCP takes at most 64"),
        (_change("storage-backups", "gcp:storage/bucket:Bucket", "name", "dpc-google-backups"), "names cannot begin with goog nor contain google"),
        (_change("storage-key", "gcp:kms/cryptoKey:CryptoKey", "rotationPeriod", "3600s"), "between 24 and 876,000 hours"),
        (_change("storage-key", "gcp:kms/cryptoKey:CryptoKey", "rotationPeriod", "90d"), "a duration in seconds"),
        (_change("compute-worker-1", INSTANCE, "metadata.user-data", "x" * (256 * 1024 + 1)), "a metadata value takes at most 262144"),
        (_change("compute-worker-1", INSTANCE, "metadata.startup_script!", "x"), "metadata keys take [a-zA-Z0-9_-]"),
        (_change("storage-worker-1-data", DISK, "size", 70000), "it takes 10–65536 GB"),
        (_change("compute-worker-1", INSTANCE, "bootDisk.initializeParams.size", 5), "5 GB of pd-balanced"),
        (_change("endpoint-health", "gcp:compute/regionHealthCheck:RegionHealthCheck", "timeoutSec", 30), "30 s is longer than the 10 s interval"),
        (_change("network-app-in-tcp22-from-roles", FIREWALL, "targetServiceAccounts", ["a@b.iam.gserviceaccount.com"]),
         "network tags or by service accounts, not both"),
        (_change("network-all-in-deny", FIREWALL, "sourceTags", [f"t{n}" for n in range(31)]), "31 entries; a firewall rule takes at most 30"),
        (_change("compute-worker-1", INSTANCE, "tags", ["Worker"]), "network tag 'Worker'"),
        (_change("registry-images", "gcp:secretmanager/secret:Secret", "secretId", "dpc.images"), "secret id 'dpc.images'"),
        (_change("swarm-manager-address-value", "gcp:secretmanager/secretVersion:SecretVersion", "secretData", "x" * (64 * 1024 + 1)),
         "a secret version takes at most 65536"),
        (_change("compute-app-read-image-list", "gcp:secretmanager/secretIamMember:SecretIamMember", "member", "app@example.com"),
         "names no kind of principal"),
        (_change("network-private", "gcp:compute/subnetwork:Subnetwork", "ipCidrRange", "10.60.0.0/30"), "a subnet's range is at most /29"),
        (_change("storage-worker-1-data", DISK, "diskEncryptionKey.kmsKeySelfLink", "projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k"),
         "a key in europe-west1 cannot protect data in global or us-central1"),
        (_change("registry-images", "gcp:secretmanager/secret:Secret", "replication.userManaged.replicas.0.location", "europe-west1"),
         "cannot protect data in europe-west1"),
        (_change("storage-backups", "gcp:storage/bucket:Bucket", "location", "EU"), "a key in us cannot protect data in eu"),
        (_change("registry-postgres", "gcp:artifactregistry/repository:Repository", "location", "us-east1"), "cannot protect data in us-east1"),
        (_change("network-flow-logs", "gcp:logging/projectBucketConfig:ProjectBucketConfig", "location", "global"), "cannot protect data in global"),
        (_change("network-app-in-tcp22-from-roles", FIREWALL, "direction", "EGRESS"), "an egress rule takes no source tags"),
        (_change("compute-worker-1", INSTANCE, "metadata", {f"k{n}": "x" * (200 * 1024) for n in range(3)}), "an instance takes at most 524288"),
        (_change("compute-worker-1", INSTANCE, "tags", [f"t{n}" for n in range(65)]), "65 network tags; an instance takes at most 64"),
        (_change("compute-app-identity", "gcp:serviceaccount/account:Account", "description", "d" * 257), "service account description is 257 characters"),
        (_change("budget-monthly", "gcp:billing/budget:Budget", "displayName", "b" * 61), "budget display name is 61 characters"),
        (_change("storage-key", "gcp:kms/cryptoKey:CryptoKey", "name", "stack key"), "key ring or key name 'stack key'"),
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


VM = "azure-native:compute:VirtualMachine"
AZURE_DISK = "azure-native:compute:Disk"
NSG = "azure-native:network:NetworkSecurityGroup"
ACCOUNT = "azure-native:storage:StorageAccount"
KEY = "azure-native:keyvault:Key"
VAULT = "azure-native:keyvault:Vault"
GRANT = "azure-native:authorization:RoleAssignment"
SUBNET = "azure-native:network:Subnet"
NAT = "azure-native:network:NatGateway"
BUDGET = "azure-native:consumption:Budget"
ROTATION = "properties.rotationPolicy"


def _custom_data(size: int) -> str:
    return base64.b64encode(random.Random(size).randbytes(size)).decode()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_change("storage-backups", ACCOUNT, "accountName", "AzureProdBackups"), "storage account name 'AzureProdBackups' has characters the API refuses"),
        (_change("storage-backups", ACCOUNT, "accountName", "a" * 25), "storage account name is 25 characters; the API takes 3–24"),
        (_change("storage-vault", VAULT, "vaultName", "dpc--vault"), "key vault name 'dpc--vault'"),
        (_change("registry-acr", "azure-native:containerregistry:Registry", "registryName", "dpc-registry"), "container registry name 'dpc-registry'"),
        (_change("storage-backups-container", "azure-native:storage:BlobContainer", "containerName", "pg_backrest"), "blob container name 'pg_backrest'"),
        (_change("compute-worker-1", VM, "osProfile.computerName", "w" * 65), "computer (host) name is 65 characters"),
        (_change("compute-worker-1", VM, "vmName", "worker_1"), "virtual machine name 'worker_1'"),
        (_change("compute-worker-1", VM, "osProfile.adminUsername", "admin"), "'admin' is a name Azure refuses"),
        (_change("compute-worker-1", VM, "osProfile.linuxConfiguration.ssh.publicKeys", []), "password authentication is off but no SSH key"),
        (_change("compute-worker-1", VM, "osProfile.customData", _custom_data(65536)), "65536 bytes of custom data; Azure takes at most 65535"),
        (_change("compute-worker-1", VM, "osProfile.customData", "#cloud-config\n"), "custom data must be base64-encoded"),
        (_change("compute-worker-1", VM, "storageProfile.osDisk.managedDisk.storageAccountType", "PremiumV2_LRS"), "cannot be an OS disk"),
        (_change("compute-worker-1", VM, "storageProfile.dataDisks.0.caching", "ReadOnly"), "which takes no host caching"),
        (_change("compute-worker-1", VM, "hardwareProfile.vmSize", "Standard_B2s"), "Standard_B2s drives at most 4000 uncached disk IOPS"),
        (_change("network-nsg", NSG, "securityRules.0.priority", 4097), "priority 4097; a security rule takes 100–4096"),
        (_change("network-nsg", NSG, "securityRules.1.priority", 100), "priority 100 Inbound is also manager-in-tcp2377-from-manager's"),
        (_change("network-nsg", NSG, "securityRules.0.description", "d" * 141), "security rule description is 141 characters"),
        (_change("network-nsg", NSG, "securityRules.0.name", "rule-"), "security rule name 'rule-'"),
        (_change("network-nsg", NSG, "tags", {f"k{n}": "v" for n in range(51)}), "51 tags; an Azure resource takes at most 50"),
        (_change("network-nsg", NSG, "tags.Owner", "o" * 257), "tag value of 257 characters"),
        (_change("network-nsg", NSG, "tags", {"cost/center": "x"}), "tag names take 1–512 characters"),
        (_change("storage-backups", ACCOUNT, "tags", {"k" * 129: "x"}), "tag names take 1–128 characters"),
        (_change("storage-worker-1-data", AZURE_DISK, "zones", []), "a Premium SSD v2 disk is zonal"),
        (_change("storage-worker-1-data", AZURE_DISK, "zones", ["2"]), "is in zone 2, the machine in 1"),
        (_change("storage-worker-1-data", AZURE_DISK, "diskIOPSReadWrite", 80001), "80001 IOPS; a 2048 GiB Premium SSD v2 takes 3000–80000"),
        (_change("storage-worker-1-wal", AZURE_DISK, "diskMBpsReadWrite", 1251), "1251 MB/s; at 5000 IOPS Premium SSD v2 takes 125–1200"),
        (_change("storage-worker-1-data", AZURE_DISK, "diskSizeGB", 65537), "65537 GiB; Premium SSD v2 takes 1–65536"),
        (_change("storage-worker-1-data", AZURE_DISK, "osType", "Linux"), "cannot be an OS disk"),
        (_change("compute-worker-read-manager-address", GRANT, "scope", "/subscriptions/prod/vaults/x"), "is not a scope Azure takes"),
        (_change("compute-worker-read-manager-address", GRANT, "roleDefinitionId", "Key Vault Secrets User"), "is not a role definition id"),
        (_change("compute-worker-read-manager-address", GRANT, "principalType", "Application"), "'Application'; Azure takes"),
        (_change("compute-worker-read-manager-address", GRANT, "roleAssignmentName", "worker-reads"), "a role assignment's name is a GUID"),
        (_change("storage-key", KEY, f"{ROTATION}.attributes.expiryTime", "P27D"), "'P27D': an ISO 8601 duration of at least 28 days"),
        (_change("storage-key", KEY, f"{ROTATION}.attributes.expiryTime", "180 days"), "'180 days': an ISO 8601 duration"),
        (_change("storage-key", KEY, f"{ROTATION}.lifetimeActions.0.trigger.timeAfterCreate", "P6D"), "'P6D': an ISO 8601 duration of at least 7 days"),
        (_change("storage-key", KEY, f"{ROTATION}.lifetimeActions.0.trigger.timeBeforeExpiry", "P30D"), "one trigger: after creation or before expiry"),
        (_change("storage-key", KEY, f"{ROTATION}.attributes", {}), "a trigger before expiry needs the policy's expiry time"),
        (_change("storage-key", KEY, "properties.keySize", 1024), "1024-bit RSA"),
        (_change("storage-vault", VAULT, "properties.softDeleteRetentionInDays", 91), "91 days; Key Vault keeps deleted objects 7–90"),
        (_change("storage-vault", VAULT, "properties.enablePurgeProtection", False), "purge protection takes true or nothing"),
        (_change("network-private-1", SUBNET, "addressPrefix", "10.100.0.0/30"), "a subnet's range is at most /29"),
        (_change("network-private-1", SUBNET, "addressPrefix", "10.200.0.0/20"), "outside its virtual network's 10.100.0.0/16"),
        (_change("network-private-2", SUBNET, "addressPrefix", "10.100.8.0/21"), "overlaps azure-prod-network-private-1's 10.100.0.0/20"),
        (_change("endpoint-lb", "azure-native:network:LoadBalancer", "probes.0.intervalInSeconds", 4), "4 s; a probe's interval is at least 5"),
        (_change("compute-bastion-1-ip", "azure-native:network:PublicIPAddress", "publicIPAllocationMethod", "Dynamic"), "a Standard public address is Static"),
        (_change("network-nat-1", NAT, "idleTimeoutInMinutes", 121), "121 minutes; a NAT gateway takes 4–120"),
        (_change("network-nat-1", NAT, "zones", ["1", "2"]), "a NAT gateway is zonal"),
        (_change("network-vnet-flow-log", "azure-native:network:FlowLog", "retentionPolicy.days", 366), "366 days; a flow log keeps records 0–365"),
        (_change("storage-backups", ACCOUNT, "minimumTlsVersion", "TLS1_3"), "'TLS1_3'; Azure Storage takes"),
        (_change("storage-backups-lifecycle", "azure-native:storage:ManagementPolicy", "policy.rules.0.name", "offsite tiers"), "rule name 'offsite tiers'"),
        (_change("registry-acr", "azure-native:containerregistry:Registry", "sku.name", "Standard"), "a Standard registry cannot take a customer-managed key"),
        (_change("budget-monthly", BUDGET, "amount", 0), "a budget's amount is above 0"),
        (_change("budget-monthly", BUDGET, "timePeriod.startDate", "2026-12-02"), "a budget starts on the first of a month"),
        (_change("budget-monthly", BUDGET, "notifications", {f"n{n}": {"threshold": 50} for n in range(6)}), "6 notifications; a budget takes at most 5"),
        (_change("budget-monthly", BUDGET, "notifications.actual-80.threshold", 1001), "1001%; a threshold is above 0 and at most 1000"),
        (_change("budget-monthly", BUDGET, "notifications.actual-80.contactEmails", [f"a{n}@example.com" for n in range(51)]), "51 emails; at most 50"),
    ],
)
def test_inputs_azure_refuses_are_caught(change: Callable[[Plan, Revealed], None], expected: str) -> None:
    _one(_mutated(change, "azure-prod"), expected)


def test_a_name_azure_native_would_generate_that_azure_refuses_is_caught() -> None:
    """A storage account left without a name is named from its logical name, dashes and all."""

    def change(plan: Plan, revealed: Revealed) -> None:
        (account,) = [s for s in _steps(plan, ACCOUNT) if s["urn"].endswith("storage-backups")]
        del account["newState"]["inputs"]["accountName"]
        del revealed[account["urn"]]["accountName"]

    breach = _one(_mutated(change, "azure-prod"), "storage account name 'azure-prod-storage-backups")
    assert "has characters the API refuses: '-'" in breach.message


def test_azure_values_unknown_at_preview_are_passed_over() -> None:
    plan, _ = copy.deepcopy(planned("azure-prod"))
    for step in _steps(plan, VM):
        step["newState"]["inputs"]["osProfile"]["customData"] = "[unknown]"
        step["newState"]["inputs"]["vmName"] = "[unknown]"
    for step in _steps(plan, GRANT):
        step["newState"]["inputs"]["scope"] = "[unknown]"
    assert check_plan(plan) == []
