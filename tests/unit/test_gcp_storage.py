"""GCP storage, registry and budget under Pulumi mocks: the stack's key rotates and every disk,
bucket, repository and secret is under a key its service's agent may use (and is created only
after that grant); the backup bucket is hardened, its lifecycle follows the settings and never
deletes a current object, its geo copy is a dual-region under a key of the multi-region; stateful
resources are protected in prod only; names are what GCP accepts; the budget counts the stack's
label and tells the listed addresses at the plan's thresholds.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pytest

from components.base import StackContext
from components.budget import BUDGET_ALERTS, Budget, BudgetPlan
from components.registry import ImageList, ImageListPlan, ImageRegistry, RegistryPlan, image_list_value
from components.storage import BucketLifecycle, Storage, StoragePlan
from dpc.settings import GcpSettings, settings_from_config
from dpc.topology import VolumePlan
from providers.gcp.budget import build_budget
from providers.gcp.labels import LABEL_LIMIT
from providers.gcp.registry import build_image_list, build_registry
from providers.gcp.settings import GCS_ARCHIVE_CLASS, GCS_INFREQUENT_ACCESS_CLASS
from providers.gcp.storage import ENCRYPTER_DECRYPTER, KEY_ROTATION_PERIOD, bucket_location, build_storage
from review.plan import build_plan
from tests.mocked_program import run_mocked
from tests.unit.test_settings import only_problem, stack

PROJECT, NUMBER, REGION = "dpc-test-project", "123456789012", "us-central1"
TAGS = {"CostCenter": "Platform Team", "Environment": "prod", "ManagedBy": "pulumi", "Owner": "dba@example.com", "Service": "postgres-ha", "Stack": "gcp-prod"}
VOLUMES = (
    VolumePlan("worker-1", "data", "us-central1-a", 2048, None, "/mnt/postgres-cluster/patroni-1"),
    VolumePlan("worker-1", "wal", "us-central1-a", 500, None, "/mnt/postgres-cluster/patroni-1-wal"),
    VolumePlan("worker-2", "data", "us-central1-b", 2048, None, "/mnt/postgres-cluster/patroni-2"),
    VolumePlan("backup-1", "backups", "us-central1-c", 5120, None, "/mnt/postgres-cluster/backups"),
)
LIFECYCLE = BucketLifecycle(30, 90)
EMAILS = ("dba@example.com", "oncall@example.com")
GCP = GcpSettings(project=PROJECT, billing_account="01AB23-45CD67-89EF01")
NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
"""GCE's and Artifact Registry's names: RFC 1035 labels of at most 63 characters."""
LABEL = re.compile(r"^[a-z0-9_-]{0,63}$")
AGENTS = {
    f"serviceAccount:service-{NUMBER}@compute-system.iam.gserviceaccount.com",
    f"serviceAccount:service-{NUMBER}@gs-project-accounts.iam.gserviceaccount.com",
    f"serviceAccount:service-{NUMBER}@gcp-sa-secretmanager.iam.gserviceaccount.com",
    f"serviceAccount:service-{NUMBER}@gcp-sa-artifactregistry.iam.gserviceaccount.com",
}

KEY_RING, CRYPTO_KEY, KEY_MEMBER = "gcp:kms/keyRing:KeyRing", "gcp:kms/cryptoKey:CryptoKey", "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
DISK, BUCKET, REPOSITORY = "gcp:compute/disk:Disk", "gcp:storage/bucket:Bucket", "gcp:artifactregistry/repository:Repository"
SECRET, SECRET_VERSION = "gcp:secretmanager/secret:Secret", "gcp:secretmanager/secretVersion:SecretVersion"
CHANNEL, BUDGET = "gcp:monitoring/notificationChannel:NotificationChannel", "gcp:billing/budget:Budget"


def _suffix(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:7]


class GcpMocks(pulumi.runtime.Mocks):
    """Answers like GCP for what these builders read back: ids in GCP's shapes, Pulumi's autonames,
    the service agents' addresses, the provider's region and token."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state: dict[str, Any] = dict(cast(dict[str, Any], args.inputs))  # pyright: ignore[reportUnknownMemberType]  # the SDK types inputs as a bare dict
        if args.typ in {KEY_RING, CRYPTO_KEY, BUCKET}:
            state.setdefault("name", f"{args.name}-{_suffix(args.name)}")
        ids: dict[str, Callable[[], str]] = {
            KEY_RING: lambda: f"projects/{PROJECT}/locations/{state['location']}/keyRings/{state['name']}",
            CRYPTO_KEY: lambda: f"{state['keyRing']}/cryptoKeys/{state['name']}",
            DISK: lambda: f"projects/{PROJECT}/zones/{state['zone']}/disks/{state['name']}",
            BUCKET: lambda: str(state["name"]),
            REPOSITORY: lambda: f"projects/{PROJECT}/locations/{state['location']}/repositories/{state['repositoryId']}",
            SECRET: lambda: f"projects/{PROJECT}/secrets/{state['secretId']}",
            CHANNEL: lambda: f"projects/{PROJECT}/notificationChannels/{_suffix(args.name)}",
            BUDGET: lambda: f"billingAccounts/{state['billingAccount']}/budgets/{_suffix(args.name)}",
        }
        resource_id = ids.get(args.typ, lambda: f"{args.name}-id")()
        if args.typ == "gcp:projects/serviceIdentity:ServiceIdentity":
            state["member"] = f"serviceAccount:service-{NUMBER}@gcp-sa-{str(state['service']).split('.')[0]}.iam.gserviceaccount.com"
        if args.typ == REPOSITORY:
            state["registryUri"] = f"{state['location']}-docker.pkg.dev/{PROJECT}/{state['repositoryId']}"
        if args.typ == SECRET_VERSION:
            state["version"] = "1"
        if args.typ == BUDGET:
            state["name"] = resource_id
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        answers = {
            "gcp:organizations/getProject:getProject": {"number": NUMBER, "projectId": PROJECT},
            "gcp:organizations/getClientConfig:getClientConfig": {"project": PROJECT, "region": REGION, "accessToken": "mock-access-token"},
            "gcp:storage/getProjectServiceAccount:getProjectServiceAccount": {
                "emailAddress": f"service-{NUMBER}@gs-project-accounts.iam.gserviceaccount.com",
                "member": f"serviceAccount:service-{NUMBER}@gs-project-accounts.iam.gserviceaccount.com",
            },
        }
        return answers[args.token], []


@dataclass
class Built:
    """What a build registered: each resource's inputs and recorded step, by URN, and the results."""

    inputs: dict[str, dict[str, Any]]
    steps: dict[str, dict[str, Any]]
    outputs: dict[str, Any]

    def of_type(self, typ: str) -> dict[str, dict[str, Any]]:
        """Inputs of each resource of `typ`, by its resource name."""
        return {urn.rsplit("::", 1)[-1]: self.inputs[urn] for urn, step in self.steps.items() if step["newState"]["type"] == typ}

    def steps_of(self, typ: str) -> dict[str, dict[str, Any]]:
        return {urn.rsplit("::", 1)[-1]: step["newState"] for urn, step in self.steps.items() if step["newState"]["type"] == typ}

    def urn(self, name: str) -> str:
        [urn] = [u for u in self.steps if u.endswith(f"::{name}")]
        return urn


def build(*, replica_region: str | None = "us-east1", prod: bool = True, lifecycle: BucketLifecycle = LIFECYCLE, stack: str = "gcp-prod") -> Built:
    """Runs storage, registry, image list and budget in their components under mocks, as the
    composition calls them (the registry under the storage's key)."""
    outputs: dict[str, Any] = {}

    def program() -> None:
        context = StackContext(TAGS, prod, pulumi.ResourceOptions())
        storage = Storage(f"{stack}-storage", StoragePlan(VOLUMES, lifecycle, replica_region), build_storage, context).result
        registry = ImageRegistry(f"{stack}-registry", RegistryPlan(("postgres", "services"), storage.key_id), build_registry, context).result
        references = tuple(registry.repository_urls[image].apply(lambda url: f"{url}@sha256:{'0' * 64}") for image in sorted(registry.repository_urls))
        listed = ImageList(f"{stack}-image-list", ImageListPlan(registry.image_list_name, references), build_image_list, context).result
        budget = Budget(f"{stack}-budget", BudgetPlan(3000.5, EMAILS, BUDGET_ALERTS, (REGION,)), functools.partial(build_budget, GCP), context).result
        values = {
            "key_id": storage.key_id,
            "volume_ids": storage.volume_ids,
            "bucket": storage.backup_bucket_name,
            "server": registry.server,
            "username": registry.username,
            "password": registry.password,
            "urls": registry.repository_urls,
            "repository_ids": registry.repository_ids,
            "image_list_name": registry.image_list_name,
            "image_list_id": registry.image_list_id,
            "version": listed.version,
            "budget": budget.name,
        }
        pulumi.Output.all(**values).apply(outputs.update)

    monitor = run_mocked(GcpMocks(), program, stack)
    return Built(monitor.revealed, {step["urn"]: step for step in monitor.steps}, outputs)


@pytest.fixture(scope="module")
def prod() -> Built:
    return build()


@pytest.fixture(scope="module")
def dev() -> Built:
    return build(replica_region=None, prod=False)


def _keys(built: Built) -> dict[str, str]:
    """Each CryptoKey's id (its key ring's id and its autoname), by resource name."""
    return {name: f"{inputs['keyRing']}/cryptoKeys/{name}-{_suffix(name)}" for name, inputs in built.of_type(CRYPTO_KEY).items()}


def test_the_stack_key_rotates_every_90_days_in_the_stacks_region(prod: Built) -> None:
    key = prod.of_type(CRYPTO_KEY)["gcp-prod-storage-key"]
    assert key["rotationPeriod"] == KEY_ROTATION_PERIOD == "7776000s"
    assert key["purpose"] == "ENCRYPT_DECRYPT" and key["destroyScheduledDuration"] == "2592000s"
    assert prod.of_type(KEY_RING)["gcp-prod-storage-key-ring"]["location"] == REGION
    assert prod.outputs["key_id"] == _keys(prod)["gcp-prod-storage-key"], "StorageResult.key_id is the CryptoKey id"


def test_each_services_agent_may_use_the_stack_key_and_nothing_else_is_granted(prod: Built) -> None:
    members = prod.of_type(KEY_MEMBER)
    key = prod.outputs["key_id"]
    on_stack_key = {m["member"] for m in members.values() if m["cryptoKeyId"] == key}
    assert on_stack_key == AGENTS
    assert {m["role"] for m in members.values()} == {ENCRYPTER_DECRYPTER}


def test_everything_encrypted_is_created_after_its_services_grant(prod: Built) -> None:
    """Cloud KMS refuses a service whose agent holds no grant yet: each disk, the bucket, each
    repository and the image list depend on the grants on their key (through the key id)."""
    grants = {prod.urn(name) for name in prod.of_type(KEY_MEMBER)}
    stack_grants = {prod.urn(n) for n, m in prod.of_type(KEY_MEMBER).items() if m["cryptoKeyId"] == prod.outputs["key_id"]}
    for typ in (DISK, REPOSITORY, SECRET, BUCKET):
        for name, state in prod.steps_of(typ).items():
            needed = stack_grants if typ != BUCKET else grants - stack_grants
            assert needed <= set(state["dependencies"]), f"{name} may be created before its key's grants"


def test_every_disk_is_a_named_pd_ssd_under_the_stack_key_in_its_nodes_zone(prod: Built) -> None:
    disks = prod.of_type(DISK)
    assert sorted(disks) == sorted(f"gcp-prod-storage-{v.name}" for v in VOLUMES)
    for volume in VOLUMES:
        disk = disks[f"gcp-prod-storage-{volume.name}"]
        assert disk["name"] == f"gcp-prod-storage-{volume.name}" and NAME.match(disk["name"])
        assert (disk["zone"], disk["size"], disk["type"]) == (volume.zone, volume.size_gb, "pd-ssd")
        assert disk["diskEncryptionKey"] == {"kmsKeySelfLink": prod.outputs["key_id"]}
        assert disk["createSnapshotBeforeDestroy"] is True
        assert (disk["labels"]["node"], disk["labels"]["purpose"]) == (volume.node, volume.purpose)
        assert prod.outputs["volume_ids"][volume.name] == f"projects/{PROJECT}/zones/{volume.zone}/disks/gcp-prod-storage-{volume.name}"


def test_the_backup_bucket_is_private_versioned_and_under_a_key_in_its_location(prod: Built, dev: Built) -> None:
    """Dev: regional, under the stack key. Prod: the dual-region with the replica region, under a
    key in the multi-region containing both (a bucket takes only a key of its own location)."""
    [bucket] = dev.of_type(BUCKET).values()
    assert bucket["location"] == "US-CENTRAL1" and "customPlacementConfig" not in bucket
    assert bucket["encryption"] == {"defaultKmsKeyName": dev.outputs["key_id"]}
    [bucket] = prod.of_type(BUCKET).values()
    assert bucket["location"] == "US" and bucket["customPlacementConfig"] == {"dataLocations": ["US-CENTRAL1", "US-EAST1"]}
    backups_key = _keys(prod)["gcp-prod-storage-backups-key"]
    assert bucket["encryption"] == {"defaultKmsKeyName": backups_key} and backups_key.split("/")[3] == "us"
    assert {m["member"] for m in prod.of_type(KEY_MEMBER).values() if m["cryptoKeyId"] == backups_key} == {
        f"serviceAccount:service-{NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
    }
    for built in (prod, dev):
        [bucket] = built.of_type(BUCKET).values()
        assert bucket["uniformBucketLevelAccess"] is True and bucket["publicAccessPrevention"] == "enforced"
        assert bucket["versioning"] == {"enabled": True} and bucket["forceDestroy"] is False
        assert built.outputs["bucket"] == f"gcp-prod-storage-backups-{_suffix('gcp-prod-storage-backups')}", "the name Pulumi gives it"


def test_the_lifecycle_follows_the_settings_and_never_deletes_a_current_object(prod: Built) -> None:
    [bucket] = prod.of_type(BUCKET).values()
    rules = bucket["lifecycleRules"]
    transitions = {r["action"]["storageClass"]: r["condition"]["age"] for r in rules if r["action"]["type"] == "SetStorageClass"}
    assert transitions == {GCS_INFREQUENT_ACCESS_CLASS: LIFECYCLE.infrequent_access_after_days, GCS_ARCHIVE_CLASS: LIFECYCLE.archive_after_days}
    deletes = [r["condition"] for r in rules if r["action"]["type"] == "Delete"]
    assert deletes == [{"daysSinceNoncurrentTime": LIFECYCLE.noncurrent_expire_after_days, "withState": "ARCHIVED"}], "only noncurrent versions go"


def test_a_lifecycle_from_other_settings_moves_on_other_days() -> None:
    """The days come from the plan, not from constants that happen to agree with the defaults."""
    built = build(replica_region=None, prod=False, lifecycle=BucketLifecycle(45, 180, noncurrent_expire_after_days=14))
    [bucket] = built.of_type(BUCKET).values()
    rules = bucket["lifecycleRules"]
    assert sorted(r["condition"].get("age", 0) for r in rules) == [0, 45, 180]
    assert [r["condition"]["daysSinceNoncurrentTime"] for r in rules if r["action"]["type"] == "Delete"] == [14]


@pytest.mark.parametrize(
    ("region", "replica"), [("us-central1", "europe-west1"), ("northamerica-northeast1", "us-east1"), ("us-central1", "australia-southeast1")]
)
def test_a_dual_region_of_two_multi_regions_is_refused(region: str, replica: str) -> None:
    with pytest.raises(ValueError, match="dual-region"):
        bucket_location(region, replica)


def test_stateful_resources_are_protected_in_prod_only(prod: Built, dev: Built) -> None:
    for typ in (KEY_RING, CRYPTO_KEY, DISK, BUCKET, REPOSITORY):
        assert prod.steps_of(typ) and all(state["protect"] for state in prod.steps_of(typ).values()), typ
        assert not any(state["protect"] for state in dev.steps_of(typ).values()), typ


def test_every_labelable_resource_carries_the_stacks_labels(prod: Built) -> None:
    expected = {"cost_center": "platform-team", "environment": "prod", "managed_by": "pulumi", "owner": "dba-example-com"}
    expected |= {"service": "postgres-ha", "stack": "gcp-prod"}
    for typ, field in ((CRYPTO_KEY, "labels"), (DISK, "labels"), (BUCKET, "labels"), (REPOSITORY, "labels"), (SECRET, "labels"), (CHANNEL, "userLabels")):
        for name, inputs in prod.of_type(typ).items():
            labels = inputs[field]
            assert expected.items() <= labels.items(), name
            assert all(LABEL.match(k) and LABEL.match(v) and len(k) <= LABEL_LIMIT for k, v in labels.items()), name


def test_a_repository_per_image_immutable_under_the_stack_key(prod: Built) -> None:
    repositories = prod.of_type(REPOSITORY)
    assert sorted(r["repositoryId"] for r in repositories.values()) == ["gcp-prod-registry-postgres", "gcp-prod-registry-services"]
    for repository in repositories.values():
        assert NAME.match(repository["repositoryId"])
        assert (repository["format"], repository["location"]) == ("DOCKER", REGION)
        assert repository["dockerConfig"] == {"immutableTags": True}
        assert repository["kmsKeyName"] == prod.outputs["key_id"]
    assert prod.outputs["urls"] == {
        image: f"{REGION}-docker.pkg.dev/{PROJECT}/gcp-prod-registry-{image}/{image}" for image in ("postgres", "services")
    }
    assert prod.outputs["repository_ids"]["postgres"] == f"projects/{PROJECT}/locations/{REGION}/repositories/gcp-prod-registry-postgres"


def test_the_deploy_host_pushes_with_the_providers_access_token(prod: Built) -> None:
    assert (prod.outputs["server"], prod.outputs["username"]) == (f"https://{REGION}-docker.pkg.dev", "oauth2accesstoken")
    assert prod.outputs["password"] == "mock-access-token"
    assert "mock-access-token" not in str([s["newState"]["inputs"] for s in prod.steps.values()]), "the token is no resource's input here"


def test_the_image_list_is_a_regional_cmek_secret_the_nodes_read_by_id(prod: Built) -> None:
    [secret] = prod.of_type(SECRET).values()
    assert secret["replication"] == {"userManaged": {"replicas": [{"location": REGION, "customerManagedEncryption": {"kmsKeyName": prod.outputs["key_id"]}}]}}
    assert prod.outputs["image_list_id"] == prod.outputs["image_list_name"] == f"projects/{PROJECT}/secrets/gcp-prod-registry-images"
    [version] = prod.of_type(SECRET_VERSION).values()
    assert version["secret"] == prod.outputs["image_list_id"]
    assert version["secretData"] == image_list_value([f"{url}@sha256:{'0' * 64}" for url in prod.outputs["urls"].values()])
    assert prod.outputs["version"] == "1"


def test_the_budget_counts_the_stacks_label_in_its_project_and_tells_the_listed_addresses(prod: Built) -> None:
    [budget] = prod.of_type(BUDGET).values()
    assert budget["billingAccount"] == GCP.billing_account
    assert budget["amount"] == {"specifiedAmount": {"currencyCode": "USD", "units": "3000", "nanos": 500_000_000}}
    assert budget["budgetFilter"] == {"projects": [f"projects/{NUMBER}"], "labels": {"stack": "gcp-prod"}, "calendarPeriod": "MONTH"}
    assert budget["thresholdRules"] == [
        {"thresholdPercent": 0.8, "spendBasis": "CURRENT_SPEND"},
        {"thresholdPercent": 1.0, "spendBasis": "CURRENT_SPEND"},
        {"thresholdPercent": 1.0, "spendBasis": "FORECASTED_SPEND"},
    ]
    channels = prod.of_type(CHANNEL)
    assert sorted(c["labels"]["email_address"] for c in channels.values()) == sorted(EMAILS)
    assert all(c["type"] == "email" for c in channels.values())
    assert budget["allUpdatesRule"] == {
        "monitoringNotificationChannels": [f"projects/{PROJECT}/notificationChannels/{_suffix(name)}" for name in channels],
        "disableDefaultIamRecipients": True,
    }


def test_names_stay_gcp_names_under_a_long_stack_name() -> None:
    """Disks and repositories are named by the stack: a long stack name is cut to GCP's 63
    characters, each name still its own."""
    stack = "a-rather-long-stack-name-for-the-analytics-team"
    built = build(replica_region=None, prod=False, stack=stack)
    names = [d["name"] for d in built.of_type(DISK).values()] + [r["repositoryId"] for r in built.of_type(REPOSITORY).values()]
    assert all(NAME.match(name) for name in names) and len(set(names)) == len(names), names
    assert any(len(f"{stack}-storage-{v.name}") > 63 for v in VOLUMES), "the case cuts a name"


def test_settings_refuse_a_geo_copy_cloud_storage_cannot_make_a_dual_region_of() -> None:
    problem = only_problem(stack("gcp-prod", backup=stack("gcp-prod")["backup"] | {"offsiteReplicaRegion": "europe-west1"}))
    assert problem.path == "backup.offsiteReplicaRegion" and "dual-region" in problem.message and "another us-*" in problem.fix


def test_settings_refuse_more_alert_addresses_than_a_budget_notifies() -> None:
    emails = [f"dba{n}@example.com" for n in range(6)]
    problem = only_problem(stack("gcp-prod", budget=stack("gcp-prod")["budget"] | {"alertEmails": emails}))
    assert problem.path == "budget.alertEmails" and "at most 5" in problem.message
    assert settings_from_config(stack("gcp-prod", budget=stack("gcp-prod")["budget"] | {"alertEmails": emails[:5]})).budget.alert_emails == emails[:5]


def test_the_registrys_ids_are_known_at_a_first_preview_where_the_pack_judges_the_grants() -> None:
    """The nodes' pull and read grants name the repositories and the image list by ids the program
    makes (project, region, chosen ids), not by the ids the API returns after creating them."""
    plan = build_plan("gcp-prod", preview=True)
    targets = {
        step["newState"]["urn"].rsplit("::", 1)[-1]: step["newState"]["inputs"].get("repository") or step["newState"]["inputs"].get("secretId")
        for step in plan["steps"]
        if step["newState"]["type"] in {"gcp:artifactregistry/repositoryIamMember:RepositoryIamMember", "gcp:secretmanager/secretIamMember:SecretIamMember"}
    }
    on_registry = {name: target for name, target in targets.items() if "pull-images" in name or "image-list" in name}
    assert on_registry and all(str(target).startswith("projects/") for target in on_registry.values()), on_registry
