"""GCP compute under Pulumi mocks: each role's service account holds exactly the grants of its
capabilities, machines are Shielded VMs without external addresses (but the bastion), boot and data
disks use the stack's key, names and account ids are what GCP accepts, and the machines are spread
over the zones."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import pulumi
import pytest

from components.base import StackContext
from components.compute import Attachment, Compute, ComputePlan, ComputeResult
from components.swarm import BOOTSTRAP_SECRETS, MANAGER_ADDRESS, MANAGER_TOKEN, WORKER_TOKEN, hostname
from dpc.config import settings_from_stack_file
from dpc.model import Capability, Role, stack_tags
from dpc.settings import GcpSettings, Settings
from dpc.topology import derive
from providers.gcp.compute import ACCOUNT_ID, CLOUD_PLATFORM, IGNORED, account_email, account_id, build_compute, image_path
from tests.mocked_program import run_mocked

ROOT = Path(__file__).resolve().parents[2]
STACK = "gcp-prod"


def stack_settings(stack: str = STACK) -> Settings:
    """A shipped GCP stack's settings."""
    return settings_from_stack_file(ROOT / f"Pulumi.{stack}.yaml")


def project_of(settings: Settings) -> GcpSettings:
    assert settings.gcp is not None
    return settings.gcp


PROJECT = project_of(stack_settings()).project
KEY = f"projects/{PROJECT}/locations/us-central1/keyRings/dpc/cryptoKeys/stack"
BUCKET = "dpc-gcp-prod-backups"
REPOSITORIES = tuple(f"projects/{PROJECT}/locations/us-central1/repositories/{name}" for name in ("backup", "postgres"))
IMAGE_LIST = f"projects/{PROJECT}/secrets/gcp-prod-images"
INSTANCE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
INSTANCE = "gcp:compute/instance:Instance"
MEMBER_TYPES = {
    "gcp:secretmanager/secretIamMember:SecretIamMember": ("secret", "secretId"),
    "gcp:storage/bucketIAMMember:BucketIAMMember": ("bucket", "bucket"),
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": ("repository", "repository"),
}
SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"


def secret_id(name: str) -> str:
    return f"projects/{PROJECT}/secrets/{STACK}-{name}"


def disk_id(zone: str, name: str) -> str:
    return f"projects/{PROJECT}/zones/{zone}/disks/{STACK}-{name}"


HOST_KEYS = {Role.MANAGER: (secret_id("host-key-manager-1"),), Role.BASTION: (secret_id("host-key-bastion"),)}

EXPECTED: dict[Capability, Callable[[Role], set[tuple[str, str, str]]]] = {
    Capability.READ_MANAGER_JOIN: lambda _: {("secret", secret_id(MANAGER_TOKEN), SECRET_ACCESSOR), ("secret", secret_id(MANAGER_ADDRESS), SECRET_ACCESSOR)},
    Capability.READ_WORKER_JOIN: lambda _: {("secret", secret_id(WORKER_TOKEN), SECRET_ACCESSOR), ("secret", secret_id(MANAGER_ADDRESS), SECRET_ACCESSOR)},
    Capability.PUBLISH_JOIN: lambda _: {("secret", secret_id(name), "roles/secretmanager.secretVersionAdder") for name in BOOTSTRAP_SECRETS},
    Capability.WRITE_BACKUPS: lambda _: {("bucket", BUCKET, "roles/storage.objectUser")},
    Capability.PULL_IMAGES: lambda _: {("repository", r, "roles/artifactregistry.reader") for r in REPOSITORIES} | {("secret", IMAGE_LIST, SECRET_ACCESSOR)},
    Capability.READ_HOST_KEY: lambda role: {("secret", key, SECRET_ACCESSOR) for key in HOST_KEYS[role]},
}
"""What each capability must grant, written apart from the builder that grants it."""


class GcpComputeMocks(pulumi.runtime.Mocks):
    """Answers like GCE for what compute reads back: instance self links and addresses; with
    `running`, some instances report other values than asked for (a machine as deployed earlier)."""

    def __init__(self, running: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.running = running or {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state: dict[str, Any] = dict(cast(dict[str, Any], args.inputs))  # pyright: ignore[reportUnknownMemberType]  # the SDK types inputs as a bare dict
        if args.typ == INSTANCE:
            link = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/{state['zone']}/instances/{state['name']}"
            state["selfLink"] = link
            for index, nic in enumerate(state["networkInterfaces"]):
                nic["networkIp"] = f"10.0.0.{len(args.name) + index}"
                for config in nic.get("accessConfigs", []):
                    config["natIp"] = "198.51.100.7"
            state |= self.running.get(str(state["name"]), {})
            return link, state
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise NotImplementedError(f"compute looks nothing up, yet called {args.token}")


@dataclass
class Built:
    """What a build registered (each resource's inputs by URN, its recorded step) and what it returned."""

    settings: Settings
    plan: ComputePlan
    inputs: dict[str, dict[str, Any]]
    steps: dict[str, dict[str, Any]]
    outputs: dict[str, Any]

    def of_type(self, typ: str) -> dict[str, dict[str, Any]]:
        return {urn.rsplit("::", 1)[-1]: self.inputs[urn] for urn, step in self.steps.items() if step["newState"]["type"] == typ}

    def instance(self, node: str) -> dict[str, Any]:
        return self.of_type(INSTANCE)[f"{STACK}-compute-{node}"]


def compute_plan(settings: Settings, boot_after: pulumi.Resource, capabilities: Mapping[Role, tuple[Capability, ...]] | None = None) -> ComputePlan:
    topology = derive(settings)
    nodes = topology.nodes
    out = pulumi.Output.from_input
    attachments: dict[str, tuple[Attachment, ...]] = {}
    for volume in topology.volumes:
        slot = len(attachments.get(volume.node, ()))
        attachments[volume.node] = (*attachments.get(volume.node, ()), Attachment(out(disk_id(volume.zone, volume.name)), slot))
    return ComputePlan(
        nodes=nodes,
        bastion=topology.bastion,
        hostname_prefix=f"dpc-{STACK}",
        image=settings.image,
        private_subnet_ids={zone: out(f"projects/{PROJECT}/regions/us-central1/subnetworks/private") for zone in settings.zones},
        public_subnet_ids={zone: out(f"projects/{PROJECT}/regions/us-central1/subnetworks/public") for zone in settings.zones},
        firewall_group_ids={group: out(f"net-{group}") for group in (*(r.value for r in Role), "load-balancer")},
        user_data_base64={node.name: out(f"H4sI-{node.name}") for node in nodes},
        bastion_user_data=out("#cloud-config\n"),
        boot_after={zone: (boot_after,) for zone in settings.zones},
        backup_agent_node=topology.backup_agent.name,
        attachments=attachments,
        key_id=out(KEY),
        bootstrap_secret_ids={name: out(secret_id(name)) for name in BOOTSTRAP_SECRETS},
        backup_bucket_name=out(BUCKET),
        image_repository_ids=tuple(out(r) for r in REPOSITORIES),
        image_list_id=out(IMAGE_LIST),
        host_key_ids={role: tuple(out(k) for k in keys) for role, keys in HOST_KEYS.items()},
        capabilities=capabilities or topology.capabilities,
        deploy_public_key=out("ssh-ed25519 AAAA deploy"),
    )


def build(
    settings: Settings | None = None,
    *,
    mocks: GcpComputeMocks | None = None,
    change: Callable[[ComputePlan], ComputePlan] = lambda plan: plan,
) -> Built:
    """Runs the GCP compute builder inside its component under mocks, in an event loop of its own."""
    settings = settings or stack_settings()
    outputs: dict[str, Any] = {}
    plans: list[ComputePlan] = []

    def program() -> None:
        nat = pulumi.CustomResource("gcp:compute/routerNat:RouterNat", f"{STACK}-network-nat", {"name": "nat"})
        plan = change(compute_plan(settings, nat))
        plans.append(plan)
        context = StackContext(stack_tags(settings, STACK), settings.is_prod, pulumi.ResourceOptions())
        builder = functools.partial(build_compute, project_of(settings))
        result: ComputeResult = Compute(f"{STACK}-compute", plan, builder, context).result
        pulumi.Output.all(result.instance_ids, result.private_ips, result.bastion_public_ip, result.awaiting_replacement).apply(
            lambda values: outputs.update(zip(("instance_ids", "private_ips", "bastion_public_ip", "awaiting_replacement"), values, strict=True))
        )

    monitor = run_mocked(mocks or GcpComputeMocks(), program, STACK)
    steps = {step["urn"]: step for step in monitor.steps}
    return Built(settings, plans[0], monitor.revealed, steps, outputs)


@pytest.fixture(scope="module")
def prod() -> Built:
    return build()


def granted(built: Built, role: Role) -> set[tuple[str, str, str]]:
    """The (kind, target, IAM role) of every IAM member the role's service account holds."""
    member = f"serviceAccount:{account_email(PROJECT, account_id(f'{STACK}-compute', role))}"
    found: set[tuple[str, str, str]] = set()
    for typ, (kind, target) in MEMBER_TYPES.items():
        found |= {(kind, inputs[target], inputs["role"]) for inputs in built.of_type(typ).values() if inputs["member"] == member}
    return found


def expected(capabilities: Mapping[Role, tuple[Capability, ...]], role: Role) -> set[tuple[str, str, str]]:
    return set().union(*(EXPECTED[capability](role) for capability in capabilities[role]))


def test_each_role_holds_exactly_the_grants_of_its_capabilities(prod: Built) -> None:
    capabilities = derive(prod.settings).capabilities
    for role in Role:
        assert granted(prod, role) == expected(capabilities, role), role
    members = [inputs for typ in MEMBER_TYPES for inputs in prod.of_type(typ).values()]
    assert len(members) == sum(len(expected(capabilities, role)) for role in Role), "a grant for no role's account"
    types = {step["newState"]["type"] for step in prod.steps.values()}
    assert not {t for t in types if "iam" in t.lower() and t not in MEMBER_TYPES}, "project-wide or key grants besides the resource-level ones"


def test_a_capability_added_to_a_role_shows_up_as_its_grant_and_nothing_else() -> None:
    settings = stack_settings()
    capabilities = dict(derive(settings).capabilities)
    capabilities[Role.WORKER] = (*capabilities[Role.WORKER], Capability.WRITE_BACKUPS)
    built = build(settings, change=lambda plan: replace(plan, capabilities=capabilities))

    assert granted(built, Role.WORKER) - expected(derive(settings).capabilities, Role.WORKER) == {("bucket", BUCKET, "roles/storage.objectUser")}
    assert granted(built, Role.WORKER) == expected(capabilities, Role.WORKER)


def test_one_service_account_per_role_with_a_valid_id_for_every_shipped_stack_name(prod: Built) -> None:
    accounts = {inputs["accountId"] for inputs in prod.of_type("gcp:serviceaccount/account:Account").values()}
    assert accounts == {account_id(f"{STACK}-compute", role) for role in Role}
    longest = max((p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in ROOT.glob("Pulumi.*.yaml")), key=len)
    for stack in (longest, STACK, "a-stack-name-far-longer-than-any-shipped-one"):
        ids = [account_id(f"{stack}-compute", role) for role in Role]
        assert all(ACCOUNT_ID.fullmatch(i) for i in ids), ids
        assert len(set(ids)) == len(ids) and ids == [account_id(f"{stack}-compute", role) for role in Role]
    assert account_id("9-compute", Role.APP).startswith("dpc-")


def test_each_machine_runs_as_its_roles_account_named_after_its_host_name(prod: Built) -> None:
    for node in (*prod.plan.nodes, prod.plan.bastion):
        inputs = prod.instance(node.name)
        assert inputs["name"] == hostname(prod.plan.hostname_prefix, node) and INSTANCE_NAME.fullmatch(inputs["name"])
        assert inputs["serviceAccount"] == {"email": account_email(PROJECT, account_id(f"{STACK}-compute", node.role)), "scopes": [CLOUD_PLATFORM]}
        assert inputs["tags"] == [f"net-{node.role.value}"], "the network's tag for the role"
        assert inputs["zone"] == node.zone and inputs["machineType"] == node.machine_type
        assert all(re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key) and re.fullmatch(r"[a-z0-9_-]{0,63}", value) for key, value in inputs["labels"].items())
        assert {"stack", "role", "node"} <= set(inputs["labels"])


def test_no_external_address_but_the_bastions(prod: Built) -> None:
    for name, inputs in prod.of_type(INSTANCE).items():
        [nic] = inputs["networkInterfaces"]
        if name.endswith("-bastion-1"):
            assert nic["accessConfigs"] and nic["subnetwork"].endswith("/public")
        else:
            assert not nic.get("accessConfigs") and nic["subnetwork"].endswith("/private"), name
    assert prod.outputs["bastion_public_ip"] == "198.51.100.7"


def test_machines_are_shielded_log_in_through_os_login_and_boot_from_their_user_data(prod: Built) -> None:
    for node in (*prod.plan.nodes, prod.plan.bastion):
        inputs = prod.instance(node.name)
        assert inputs["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableVtpm": True, "enableIntegrityMonitoring": True}
        metadata = inputs["metadata"]
        assert {k: metadata[k] for k in ("enable-oslogin", "block-project-ssh-keys", "serial-port-enable")} == {
            "enable-oslogin": "TRUE", "block-project-ssh-keys": "TRUE", "serial-port-enable": "FALSE",
        }
        if node.role is Role.BASTION:
            assert metadata["user-data"] == "#cloud-config\n" and "user-data-encoding" not in metadata
        else:
            assert metadata["user-data"] == f"H4sI-{node.name}" and metadata["user-data-encoding"] == "base64"


def test_boot_and_data_disks_are_encrypted_with_the_stack_key_and_named_for_the_mounts(prod: Built) -> None:
    for node in (*prod.plan.nodes, prod.plan.bastion):
        inputs = prod.instance(node.name)
        boot = inputs["bootDisk"]
        assert boot["kmsKeySelfLink"] == KEY and boot["autoDelete"] is True
        assert boot["initializeParams"]["image"] == f"projects/ubuntu-os-cloud/global/images/{prod.settings.image.name}"
        assert boot["initializeParams"]["size"] == node.root_volume_gb and boot["initializeParams"]["type"] == "pd-balanced"
        disks = inputs.get("attachedDisks", [])
        wanted = [disk_id(node.zone, f"{node.name}-{p}") for p in (("data", "wal") if node.role is Role.WORKER else ())]
        wanted += [disk_id(node.zone, f"{node.name}-backups")] if node.name == prod.plan.backup_agent_node else []
        assert [d["source"] for d in disks] == wanted
        assert all(d["deviceName"] == d["source"].rsplit("/", 1)[-1] and d["kmsKeySelfLink"] == KEY for d in disks)


def test_every_etcd_and_patroni_member_has_a_zone_of_its_own_in_prod(prod: Built) -> None:
    zones = {name: inputs["zone"] for name, inputs in prod.of_type(INSTANCE).items()}
    for role in (Role.MANAGER, Role.WORKER):
        members = [zones[f"{STACK}-compute-{n.name}"] for n in prod.plan.nodes if n.role is role]
        assert len(members) >= 3 and len(set(members)) == len(members), (role, members)
    assert set(zones.values()) == set(prod.settings.zones)


def test_machines_wait_for_the_way_out_and_keep_what_only_a_replacement_applies(prod: Built) -> None:
    nat = next(urn for urn in prod.steps if urn.endswith("::gcp-prod-network-nat"))
    for urn, step in prod.steps.items():
        if step["newState"]["type"] == INSTANCE:
            assert step["newState"]["ignoreChanges"] == sorted(IGNORED)
            assert (nat in step["newState"]["dependencies"]) is not urn.endswith("-bastion-1"), urn


def test_deletion_protection_in_prod_only(prod: Built) -> None:
    assert all(inputs["deletionProtection"] is True for inputs in prod.of_type(INSTANCE).values())
    dev = build(stack_settings("gcp-dev"))
    assert all(inputs["deletionProtection"] is False for inputs in dev.of_type(INSTANCE).values())


def test_results_are_self_links_and_private_addresses(prod: Built) -> None:
    for node in prod.plan.nodes:
        assert prod.outputs["instance_ids"][node.name].endswith(f"/zones/{node.zone}/instances/{hostname(prod.plan.hostname_prefix, node)}")
        assert re.fullmatch(r"10\.0\.0\.\d+", prod.outputs["private_ips"][node.name])
    assert prod.outputs["awaiting_replacement"] == []


def test_a_machine_running_other_than_asked_awaits_replacement_but_the_images_self_link_is_no_difference() -> None:
    prefix = f"dpc-{STACK}"
    image = image_path("ubuntu-os-cloud", stack_settings().image.name)
    running = {
        f"{prefix}-worker-2": {"machineType": "n2-standard-2"},
        f"{prefix}-manager-1": {"bootDisk": {"initializeParams": {"image": f"https://www.googleapis.com/compute/v1/{image}", "size": 1}}},
        f"{prefix}-app-1": {"bootDisk": {"initializeParams": {"image": f"https://www.googleapis.com/compute/v1/{image}"}}},
    }
    built = build(mocks=GcpComputeMocks(running))
    assert built.outputs["awaiting_replacement"] == ["manager-1", "worker-2"]
