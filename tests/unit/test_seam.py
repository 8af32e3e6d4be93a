"""The cloud seam holds: a fourth cloud, made up here in a few lines, is composed by
`providers.common.composition.deploy` with nothing changed in `components/` or the database stack, and
the invariants every cloud must keep hold on it (every node and volume planned, each etcd and
Patroni member in its own zone, the load balancer's targets are the managers, each role holds its
capabilities, the database stack is deployed on the Swarm), with the settings of each real cloud's
prod stack (AWS's, GCP's and Azure's zones, sizes and volumes): what the composition derives from
settings holds whichever cloud's they are. The real clouds' own plans keep the same invariants in
`test_plan.py`.

Each fake builder creates `fake:` resources whose inputs record what the composition handed it;
the offline plan's mocks answer them as they answer any provider they do not know (an id from the
name, the inputs echoed back).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.base import Scope
from components.budget import BudgetPlan, BudgetResult
from components.compute import ComputePlan, ComputeResult
from components.load_balancer import LoadBalancerPlan, LoadBalancerResult
from components.network import NetworkPlan, NetworkResult
from components.registry import ImageListPlan, ImageListResult, RegistryPlan, RegistryResult
from components.storage import StoragePlan, StorageResult
from components.swarm import BOOTSTRAP_SECRETS, SwarmPlan, SwarmResult
from dpc.config import settings_from_stack_file
from dpc.model import LOAD_BALANCER_TARGET_ROLE, Role
from dpc.render.backup import S3Repository
from dpc.topology import Topology, derive
from providers.common.composition import CloudBuilders, deploy
from review.plan import plan_program, stack_config
from tests.plan_graph import PlanGraph, Resource

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROD_STACKS = ("prod", "gcp-prod", "azure-prod")
"""Each cloud's prod stack, whose settings the fake cloud is composed with."""


class FakeProvider(pulumi.ProviderResource):
    """The fake cloud's provider: every fake resource of the stack is created through it."""

    def __init__(self, name: str) -> None:
        super().__init__("fake", name, {})


class Fake(pulumi.CustomResource):
    """One resource of the fake cloud, `fake:index:<kind>`, its inputs what its builder was handed."""

    def __init__(self, kind: str, scope: Scope, name: str, props: dict[str, Any]) -> None:
        super().__init__(f"fake:index:{kind}", scope.child(name), props, scope.opts())


def _network(scope: Scope, plan: NetworkPlan) -> NetworkResult:
    network = Fake("Network", scope, "network", {"cidr": plan.cidr})
    subnets = {zone: Fake("Subnet", scope, f"private-{zone}", {"network": network.id, "zone": zone}) for zone in plan.zones}
    groups = {role.value: Fake("Group", scope, f"group-{role.value}", {"network": network.id}) for role in Role}
    groups["load-balancer"] = Fake("Group", scope, "group-load-balancer", {"network": network.id})
    return NetworkResult(
        network_id=network.id,
        public_subnet_ids={zone: network.id for zone in plan.zones},
        private_subnet_ids={zone: subnet.id for zone, subnet in subnets.items()},
        firewall_group_ids={name: group.id for name, group in groups.items()},
        private_egress={zone: [subnet] for zone, subnet in subnets.items()},
    )


def _storage(scope: Scope, plan: StoragePlan) -> StorageResult:
    key = Fake("Key", scope, "key", {})
    disks = {
        volume.name: Fake("Disk", scope, volume.name, {"node": volume.node, "zone": volume.zone, "sizeGb": volume.size_gb, "key": key.id})
        for volume in plan.volumes
    }
    bucket = Fake("Bucket", scope, "backups", {"key": key.id})
    return StorageResult(key_id=key.id, volume_ids={name: disk.id for name, disk in disks.items()}, backup_bucket_name=bucket.id)


def _swarm(scope: Scope, plan: SwarmPlan) -> SwarmResult:
    secrets = {name: Fake("Secret", scope, name, {"key": plan.secrets_key_id}) for name in (*BOOTSTRAP_SECRETS, *(f"host-key-{m}" for m in plan.host_keys))}
    user_data = base64.b64encode(b"#cloud-config\n").decode()
    return SwarmResult(
        user_data_base64={node.name: pulumi.Output.from_input(user_data) for node in plan.layout.nodes},
        bastion_user_data=pulumi.Output.from_input("#cloud-config\n"),
        bootstrap_secret_ids={name: secrets[name].id for name in BOOTSTRAP_SECRETS},
        host_key_ids={machine: secrets[f"host-key-{machine}"].id for machine in plan.host_keys},
    )


def _compute(scope: Scope, plan: ComputePlan) -> ComputeResult:
    machines = {
        node.name: Fake("Machine", scope, node.name, {
            "role": node.role.value,
            "zone": node.zone,
            "subnet": plan.private_subnet_ids[node.zone],
            "group": plan.firewall_group_ids[node.role.value],
            "disks": [attachment.volume_id for attachment in plan.attachments.get(node.name, ())],
            "userData": plan.user_data_base64[node.name],
        })
        for node in plan.nodes
    }
    bastion = Fake("Machine", scope, plan.bastion.name, {"role": Role.BASTION.value, "zone": plan.bastion.zone, "userData": plan.bastion_user_data})
    for role, capabilities in plan.capabilities.items():
        for capability in capabilities:
            Fake("Grant", scope, f"{role.value}-{capability.value}", {"role": role.value, "capability": capability.value})
    return ComputeResult(
        instance_ids={name: machine.id for name, machine in machines.items()},
        private_ips={name: pulumi.Output.from_input(f"10.9.0.{position + 4}") for position, name in enumerate(machines)},
        bastion_public_ip=bastion.id.apply(lambda _: "203.0.113.9"),
        awaiting_replacement=pulumi.Output.from_input([]),
    )


def _load_balancer(scope: Scope, plan: LoadBalancerPlan) -> LoadBalancerResult:
    balancer = Fake("Balancer", scope, "balancer", {
        "port": plan.port,
        "targets": [target.machine_id for target in plan.targets],
        "targetZones": [target.zone for target in plan.targets],
        "group": plan.network.firewall_group_ids["load-balancer"],
    })
    return LoadBalancerResult(address=balancer.id.apply(lambda _: "10.9.0.2"))


def _budget(scope: Scope, plan: BudgetPlan) -> BudgetResult:
    return BudgetResult(name=Fake("Budget", scope, "budget", {"monthlyUsd": plan.monthly_usd}).id)


def _registry(scope: Scope, plan: RegistryPlan) -> RegistryResult:
    repositories = {image: Fake("Repository", scope, image, {"key": plan.key_id}) for image in plan.images}
    image_list = Fake("Secret", scope, "images", {"key": plan.key_id})
    return RegistryResult(
        server=pulumi.Output.from_input("https://registry.fake.example"),
        username=pulumi.Output.from_input("fake"),
        password=pulumi.Output.secret("fake-registry-token"),
        repository_urls={image: pulumi.Output.from_input(f"registry.fake.example/{scope.name}/{image}") for image in repositories},
        repository_ids={image: repository.id for image, repository in repositories.items()},
        image_list_name=image_list.id,
        image_list_id=image_list.id,
    )


def _image_list(scope: Scope, plan: ImageListPlan) -> ImageListResult:
    return ImageListResult(version=Fake("SecretVersion", scope, "references", {"secret": plan.name, "references": list(plan.references)}).id)


FAKE = CloudBuilders(
    provider=lambda _settings, stack: FakeProvider(f"{stack}-fake"),
    network=_network,
    storage=_storage,
    swarm=_swarm,
    compute=_compute,
    load_balancer=_load_balancer,
    budget=_budget,
    registry=_registry,
    image_list=_image_list,
    offsite_repository=lambda settings, bucket: S3Repository(bucket=bucket, region=settings.region, endpoint="objects.fake.example"),
)
"""A cloud with an S3-compatible object store, built from nothing but the neutral plans."""


@pytest.fixture(scope="module", params=PROD_STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    """Each cloud's prod stack, its settings composed on the fake cloud."""
    return str(request.param)


@pytest.fixture(scope="module")
def topology(stack: str) -> Topology:
    return derive(settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml"))


@pytest.fixture(scope="module")
def fake_graph(topology: Topology, stack: str) -> PlanGraph:
    config, secret_keys = stack_config(stack)

    def program() -> None:
        for key, value in deploy(topology, stack, FAKE).items():
            pulumi.export(key, value)

    return PlanGraph(plan_program(program, stack, config, secret_keys)[0])


def _fakes(graph: PlanGraph, kind: str) -> list[Resource]:
    return graph.of_type(f"fake:index:{kind}")


def _machines(graph: PlanGraph, role: Role) -> list[Resource]:
    return [m for m in _fakes(graph, "Machine") if m.inputs["role"] == role.value]


def test_only_the_fake_cloud_and_the_neutral_providers_are_used(fake_graph: PlanGraph) -> None:
    clouds = {r.type.removeprefix("pulumi:providers:").split(":")[0] for r in fake_graph.resources if r.custom}
    assert clouds == {"fake", "docker", "command", "random", "tls"}, "no resource of a real cloud crept in"


def test_every_node_has_a_machine_and_every_volume_a_disk_on_it(fake_graph: PlanGraph, topology: Topology, stack: str) -> None:
    machines = {m.name.removeprefix(f"{stack}-compute-"): m for m in _fakes(fake_graph, "Machine")}
    assert set(machines) == {node.name for node in topology.nodes} | {topology.bastion.name}
    disks = {d.name.removeprefix(f"{stack}-storage-"): d for d in _fakes(fake_graph, "Disk")}
    assert set(disks) == {volume.name for volume in topology.volumes}
    for volume in topology.volumes:
        disk = disks[volume.name]
        assert (disk.inputs["node"], disk.inputs["zone"], disk.inputs["sizeGb"]) == (volume.node, volume.zone, volume.size_gb)
        assert disk.id in machines[volume.node].inputs["disks"], f"{volume.name} is attached to {volume.node}"
    attached = [d for m in machines.values() for d in m.inputs.get("disks", [])]
    assert sorted(attached) == sorted(d.id for d in disks.values()), "each disk on exactly one machine"


@pytest.mark.parametrize("role", [Role.MANAGER, Role.WORKER], ids=["etcd", "patroni"])
def test_each_member_sits_in_its_own_zone_on_that_zones_subnet(fake_graph: PlanGraph, role: Role) -> None:
    machines = _machines(fake_graph, role)
    zones = [m.inputs["zone"] for m in machines]
    assert len(machines) == 3 and len(set(zones)) == 3, zones
    for machine in machines:
        subnet = fake_graph.by_id[machine.inputs["subnet"]]
        assert subnet.inputs["zone"] == machine.inputs["zone"], machine.name
        assert fake_graph.by_id[machine.inputs["group"]].name.endswith(f"group-{role.value}")


def test_the_load_balancer_targets_the_managers_in_their_zones(fake_graph: PlanGraph) -> None:
    (balancer,) = _fakes(fake_graph, "Balancer")
    managers = _machines(fake_graph, LOAD_BALANCER_TARGET_ROLE)
    assert balancer.inputs["targets"] == [m.id for m in managers]
    assert balancer.inputs["targetZones"] == [m.inputs["zone"] for m in managers]
    assert balancer.inputs["port"] == 5432
    assert fake_graph.by_id[balancer.inputs["group"]].name.endswith("group-load-balancer")


def test_each_role_is_granted_exactly_its_capabilities(fake_graph: PlanGraph, topology: Topology) -> None:
    granted = {(g.inputs["role"], g.inputs["capability"]) for g in _fakes(fake_graph, "Grant")}
    assert granted == {(role.value, capability.value) for role, capabilities in topology.capabilities.items() for capability in capabilities}
    assert granted, "the roles hold capabilities at all"


def test_the_database_stack_is_deployed_on_the_swarm_with_the_fake_registry(fake_graph: PlanGraph) -> None:
    (database,) = fake_graph.of_type("dpc:database:DatabaseStack")
    services = fake_graph.of_type("docker:index/service:Service")
    assert services and all(s.parent == database.urn for s in services)
    images = {s.inputs["taskSpec"]["containerSpec"]["image"] for s in services}
    assert any(image.startswith("registry.fake.example/") for image in images), images
