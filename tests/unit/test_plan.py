"""The rules every cloud keeps, asserted on the recorded resource graph of every shipped stack of
every cloud (AWS's prod, staging and dev, GCP's gcp-prod and gcp-dev, Azure's azure-prod and
azure-dev): one suite, each cloud read
through a small view of how its plan spells a machine, a volume, a tag or a secret. What only one
cloud has (security groups, IMDSv2, NAT gateways per zone, IAM statements) is asserted in that
cloud's own module (`test_aws_plan.py`).
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pytest

from components.budget import BUDGET_ALERTS
from dpc.model import LOAD_BALANCER_TARGET_ROLE, Role
from dpc.settings import REQUIRED_TAG_KEYS, Settings
from dpc.topology import derive
from providers.azure import mocks as azure_mocks
from providers.gcp.labels import label_key, label_value
from providers.gcp.mocks import COMPUTE_API, sdk_class
from tests.plan_graph import PlanGraph, Resource, is_taggable

SHIPPED_STACKS = {"aws": ("prod", "staging", "dev"), "gcp": ("gcp-prod", "gcp-dev"), "azure": ("azure-prod", "azure-dev")}
"""Every shipped stack file of each cloud."""


@pytest.fixture(params=[stack for stacks in SHIPPED_STACKS.values() for stack in stacks])
def stack(request: pytest.FixtureRequest) -> str:
    """Each shipped stack of each cloud (the conftest's `graph` and `settings` follow it)."""
    return str(request.param)


@dataclass(frozen=True)
class Machine:
    """A machine as the rules speak of it."""

    node: str
    role: str
    zone: str
    public: bool
    image: str
    resource: Resource


@dataclass(frozen=True)
class Volume:
    """A block volume as the rules speak of it, with the machines it is attached to."""

    node: str
    purpose: str
    zone: str
    size_gb: int
    key: str
    attached_to: tuple[str, ...]
    resource: Resource


class CloudView(Protocol):
    """How one cloud's plan spells what the rules speak of."""

    provider: str
    stateful: frozenset[str]
    """The types holding data or keys that must not be deleted by accident."""
    stack_level: frozenset[str]
    """Types the stack itself holds, outside every component (Azure's resource group, which every
    component's resources live in)."""

    def machines(self, graph: PlanGraph) -> list[Machine]: ...
    def volumes(self, graph: PlanGraph) -> list[Volume]: ...
    def stack_key(self, graph: PlanGraph) -> str: ...
    def encrypted(self, graph: PlanGraph) -> Iterator[tuple[str, object]]:
        """Everything that must be under the stack key, and the key it names (None: unencrypted)."""
        ...
    def tags(self, resource: Resource) -> dict[str, str] | None: ...
    def required_tags(self, settings: Settings, stack: str) -> dict[str, str]: ...
    def targets(self, graph: PlanGraph) -> set[str]: ...
    def open_ingress(self, graph: PlanGraph) -> Iterator[tuple[str, str]]: ...
    def secret_values(self, graph: PlanGraph) -> Iterator[tuple[str, object]]: ...
    def user_data(self, machine: Machine) -> str: ...
    def budget(self, graph: PlanGraph) -> tuple[float, set[tuple[str, int]]]: ...


def _gunzipped(encoded: str) -> str:
    return gzip.decompress(base64.b64decode(encoded)).decode()


class AwsView:
    """AWS: EC2 instances and EBS volumes tagged Node/Role/Purpose, KMS, security group rules, SSM."""

    provider = "aws"
    stateful = frozenset({"aws:ebs/volume:Volume", "aws:kms/key:Key", "aws:s3/bucket:Bucket"})
    stack_level = frozenset[str]()

    def machines(self, graph: PlanGraph) -> list[Machine]:
        return [
            Machine(i.inputs["tags"]["Node"], i.inputs["tags"]["Role"], graph.by_id[i.inputs["subnetId"]].inputs["availabilityZone"],
                    bool(i.inputs["associatePublicIpAddress"]), i.inputs["ami"], i)
            for i in graph.of_type("aws:ec2/instance:Instance")
        ]

    def volumes(self, graph: PlanGraph) -> list[Volume]:
        attachments = graph.of_type("aws:ec2/volumeAttachment:VolumeAttachment")
        return [
            Volume(v.inputs["tags"]["Node"], v.inputs["tags"]["Purpose"], v.inputs["availabilityZone"], v.inputs["size"], v.inputs["kmsKeyId"],
                   tuple(a.inputs["instanceId"] for a in attachments if a.inputs["volumeId"] == v.id), v)
            for v in graph.of_type("aws:ebs/volume:Volume")
        ]

    def stack_key(self, graph: PlanGraph) -> str:
        """The stack key's ARN, as the volumes computed from the key resource carry it (the plan
        records which resource each input came from)."""
        key = graph.named("-storage-key", "aws:kms/key:Key")
        depends = {s["urn"]: s["newState"]["propertyDependencies"] for s in graph.plan["steps"]}
        (arn,) = {v.inputs["kmsKeyId"] for v in graph.of_type("aws:ebs/volume:Volume") if depends[v.urn].get("kmsKeyId") == [key.urn]}
        return arn

    def encrypted(self, graph: PlanGraph) -> Iterator[tuple[str, object]]:
        for volume in graph.of_type("aws:ebs/volume:Volume"):
            yield volume.name, volume.inputs["kmsKeyId"] if volume.inputs["encrypted"] else None
        for instance in graph.of_type("aws:ec2/instance:Instance"):
            root = instance.inputs["rootBlockDevice"]
            yield f"{instance.name} root", root["kmsKeyId"] if root["encrypted"] else None
        sse = graph.named("-storage-backups-encryption", "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
        yield "backups", sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"]
        for parameter in graph.of_type("aws:ssm/parameter:Parameter"):
            if parameter.inputs["type"] == "SecureString":
                yield parameter.name, parameter.inputs["keyId"]

    def tags(self, resource: Resource) -> dict[str, str] | None:
        return resource.inputs.get("tags", {}) if is_taggable(resource.type) else None

    def required_tags(self, settings: Settings, stack: str) -> dict[str, str]:
        return {key: settings.tags[key] for key in REQUIRED_TAG_KEYS} | {"ManagedBy": "pulumi", "Stack": stack}

    def targets(self, graph: PlanGraph) -> set[str]:
        return {a.inputs["targetId"] for a in graph.of_type("aws:lb/targetGroupAttachment:TargetGroupAttachment")}

    def open_ingress(self, graph: PlanGraph) -> Iterator[tuple[str, str]]:
        for rule in graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
            for key in ("cidrIpv4", "cidrIpv6"):
                if key in rule.inputs:
                    yield rule.name, rule.inputs[key]

    def secret_values(self, graph: PlanGraph) -> Iterator[tuple[str, object]]:
        for parameter in graph.of_type("aws:ssm/parameter:Parameter"):
            if not parameter.name.endswith("-image-list-references"):  # image references, no secret: plain String
                yield parameter.name, parameter.inputs["value"]

    def user_data(self, machine: Machine) -> str:
        inputs = machine.resource.inputs
        return _gunzipped(inputs["userDataBase64"]) if "userDataBase64" in inputs else inputs["userData"]

    def budget(self, graph: PlanGraph) -> tuple[float, set[tuple[str, int]]]:
        (budget,) = graph.of_type("aws:budgets/budget:Budget")
        kinds = {"ACTUAL": "actual", "FORECASTED": "forecast"}
        return float(budget.inputs["limitAmount"]), {(kinds[n["notificationType"]], n["threshold"]) for n in budget.inputs["notifications"]}


class GcpView:
    """GCP: Compute Engine instances and persistent disks labelled node/role/purpose, Cloud KMS,
    VPC firewall rules, Secret Manager.
    """

    provider = "gcp"
    stateful = frozenset({"gcp:compute/disk:Disk", "gcp:kms/keyRing:KeyRing", "gcp:kms/cryptoKey:CryptoKey", "gcp:storage/bucket:Bucket"})
    stack_level = frozenset[str]()

    def machines(self, graph: PlanGraph) -> list[Machine]:
        return [
            Machine(i.inputs["labels"]["node"], i.inputs["labels"]["role"], i.inputs["zone"],
                    any(nic.get("accessConfigs") for nic in i.inputs["networkInterfaces"]), i.inputs["bootDisk"]["initializeParams"]["image"], i)
            for i in graph.of_type("gcp:compute/instance:Instance")
        ]

    def volumes(self, graph: PlanGraph) -> list[Volume]:
        attached: dict[str, list[str]] = {}
        for instance in graph.of_type("gcp:compute/instance:Instance"):
            for disk in instance.inputs.get("attachedDisks", []):
                attached.setdefault(disk["source"], []).append(instance.id)
        return [
            Volume(d.inputs["labels"]["node"], d.inputs["labels"]["purpose"], d.inputs["zone"], d.inputs["size"],
                   d.inputs["diskEncryptionKey"]["kmsKeySelfLink"], tuple(attached.get(d.id, ())), d)
            for d in graph.of_type("gcp:compute/disk:Disk")
        ]

    def stack_key(self, graph: PlanGraph) -> str:
        return graph.named("-storage-key", "gcp:kms/cryptoKey:CryptoKey").id

    def encrypted(self, graph: PlanGraph) -> Iterator[tuple[str, object]]:
        for disk in graph.of_type("gcp:compute/disk:Disk"):
            yield disk.name, disk.inputs["diskEncryptionKey"]["kmsKeySelfLink"]
        for instance in graph.of_type("gcp:compute/instance:Instance"):
            yield f"{instance.name} boot disk", instance.inputs["bootDisk"].get("kmsKeySelfLink")
        for secret in graph.of_type("gcp:secretmanager/secret:Secret"):
            for replica in secret.inputs["replication"]["userManaged"]["replicas"]:
                yield secret.name, replica["customerManagedEncryption"]["kmsKeyName"]
        for repository in graph.of_type("gcp:artifactregistry/repository:Repository"):
            yield repository.name, repository.inputs["kmsKeyName"]

    def tags(self, resource: Resource) -> dict[str, str] | None:
        cls = sdk_class(resource.type) if resource.type.startswith("gcp:") else None
        if cls is None:
            return None
        field = "user_labels" if resource.type == "gcp:monitoring/notificationChannel:NotificationChannel" else "labels"
        takes = field in cls._internal_init.__code__.co_varnames  # type: ignore[attr-defined]  # every generated resource class has it
        return resource.inputs.get("userLabels" if field == "user_labels" else "labels", {}) if takes else None

    def required_tags(self, settings: Settings, stack: str) -> dict[str, str]:
        return {label_key(key): label_value(value) for key, value in AwsView().required_tags(settings, stack).items()}

    def targets(self, graph: PlanGraph) -> set[str]:
        (backend,) = graph.of_type("gcp:compute/regionBackendService:RegionBackendService")
        groups = [_resolve(graph, b["group"]) for b in backend.inputs["backends"]]
        return {_resolve(graph, link).id for group in groups for link in group.inputs["instances"]}

    def open_ingress(self, graph: PlanGraph) -> Iterator[tuple[str, str]]:
        for rule in graph.of_type("gcp:compute/firewall:Firewall"):
            if rule.inputs.get("direction", "INGRESS") == "INGRESS" and rule.inputs.get("allows"):
                for cidr in rule.inputs.get("sourceRanges", []):
                    yield rule.name, cidr

    def secret_values(self, graph: PlanGraph) -> Iterator[tuple[str, object]]:
        for version in graph.of_type("gcp:secretmanager/secretVersion:SecretVersion"):
            if not version.name.endswith("-image-list-references"):
                yield version.name, version.inputs["secretData"]

    def user_data(self, machine: Machine) -> str:
        metadata = machine.resource.inputs["metadata"]
        encoded = metadata["user-data"]
        return _gunzipped(encoded) if metadata.get("user-data-encoding") == "base64" else encoded

    def budget(self, graph: PlanGraph) -> tuple[float, set[tuple[str, int]]]:
        (budget,) = graph.of_type("gcp:billing/budget:Budget")
        kinds = {"CURRENT_SPEND": "actual", "FORECASTED_SPEND": "forecast"}
        amount = budget.inputs["amount"]["specifiedAmount"]
        alerts = {(kinds[r["spendBasis"]], round(r["thresholdPercent"] * 100)) for r in budget.inputs["thresholdRules"]}
        return int(amount["units"]) + amount.get("nanos", 0) / 1e9, alerts


def _resolve(graph: PlanGraph, reference: str) -> Resource:
    """The resource an id or a Compute Engine self link names."""
    return graph.by_id[reference.removeprefix(COMPUTE_API)]


AZURE_VM = "azure-native:compute:VirtualMachine"
AZURE_DISK = "azure-native:compute:Disk"


class AzureView:
    """Azure: VMs and managed disks tagged Node/Role/Purpose, all under the stack's Key Vault key
    (disks through the disk encryption set, accounts and the registry naming it), NSG rules, Key
    Vault secrets.
    """

    provider = "azure-native"
    stateful = frozenset({
        AZURE_DISK, "azure-native:compute:DiskEncryptionSet", "azure-native:keyvault:Vault", "azure-native:keyvault:Key",
        "azure-native:storage:StorageAccount", "azure-native:containerregistry:Registry",
    })
    stack_level = frozenset({"azure-native:resources:ResourceGroup"})

    def machines(self, graph: PlanGraph) -> list[Machine]:
        machines: list[Machine] = []
        for vm in graph.of_type(AZURE_VM):
            (nic,) = [graph.by_id[n["id"]] for n in vm.inputs["networkProfile"]["networkInterfaces"]]
            image = vm.inputs["storageProfile"]["imageReference"]
            machines.append(Machine(vm.inputs["tags"]["Node"], vm.inputs["tags"]["Role"], vm.inputs["zones"][0],
                                    any("publicIPAddress" in c for c in nic.inputs["ipConfigurations"]),
                                    f"{image['publisher']}:{image['offer']}:{image['sku']}:{image['version']}", vm))
        return machines

    def volumes(self, graph: PlanGraph) -> list[Volume]:
        attached: dict[str, list[str]] = {}
        for vm in graph.of_type(AZURE_VM):
            for disk in vm.inputs["storageProfile"].get("dataDisks", []):
                attached.setdefault(disk["managedDisk"]["id"], []).append(vm.id)
        return [
            Volume(d.inputs["tags"]["Node"], d.inputs["tags"]["Purpose"], d.inputs["zones"][0], d.inputs["diskSizeGB"],
                   self._disk_key(graph, d.inputs["encryption"]["diskEncryptionSetId"]), tuple(attached.get(d.id, ())), d)
            for d in graph.of_type(AZURE_DISK)
        ]

    @staticmethod
    def _disk_key(graph: PlanGraph, encryption_set_id: str) -> str:
        """The key a disk encryption set wraps its disks' keys with: the key, whichever of its
        versions the set names (it follows the newest, `rotationToLatestKeyVersionEnabled`).
        """
        url = graph.by_id[encryption_set_id].inputs["activeKey"]["keyUrl"]
        return re.sub(r"(/keys/[^/]+)/[0-9a-f]{32}$", r"\1", url)

    def stack_key(self, graph: PlanGraph) -> str:
        """The stack key's versionless URI, as `StorageResult.key_id` gives it on Azure."""
        key = graph.named("-storage-key", "azure-native:keyvault:Key")
        return f"{azure_mocks.vault_uri(key.inputs['vaultName'])}keys/{key.inputs['keyName']}"

    def encrypted(self, graph: PlanGraph) -> Iterator[tuple[str, object]]:
        for disk in graph.of_type(AZURE_DISK):
            yield disk.name, self._disk_key(graph, disk.inputs["encryption"]["diskEncryptionSetId"])
        for vm in graph.of_type(AZURE_VM):
            encryption_set = vm.inputs["storageProfile"]["osDisk"]["managedDisk"].get("diskEncryptionSet")
            yield f"{vm.name} OS disk", self._disk_key(graph, encryption_set["id"]) if encryption_set else None
        for account in graph.of_type("azure-native:storage:StorageAccount"):
            vault = account.inputs["encryption"].get("keyVaultProperties")
            yield account.name, f"{vault['keyVaultUri'].rstrip('/')}/keys/{vault['keyName']}" if vault else None
        for registry in graph.of_type("azure-native:containerregistry:Registry"):
            yield registry.name, registry.inputs["encryption"]["keyVaultProperties"]["keyIdentifier"]

    def tags(self, resource: Resource) -> dict[str, str] | None:
        cls = azure_mocks.sdk_class(resource.type) if resource.type.startswith("azure-native:") else None
        takes = cls is not None and "tags" in cls._internal_init.__code__.co_varnames  # type: ignore[attr-defined]  # every generated resource class has it
        return resource.inputs.get("tags", {}) if takes else None

    def required_tags(self, settings: Settings, stack: str) -> dict[str, str]:
        return AwsView().required_tags(settings, stack)

    def targets(self, graph: PlanGraph) -> set[str]:
        """The VMs whose address a backend pool lists (Azure's load balancer names its backends by address)."""
        (balancer,) = graph.of_type("azure-native:network:LoadBalancer")
        listed = {a["ipAddress"] for pool in balancer.inputs["backendAddressPools"] for a in pool["loadBalancerBackendAddresses"]}
        return {vm.id for vm in graph.of_type(AZURE_VM) if _azure_address(graph, vm) in listed}

    def open_ingress(self, graph: PlanGraph) -> Iterator[tuple[str, str]]:
        """Allowed inbound sources that are addresses; any address at all (`*`, `Internet`) as 0.0.0.0/0."""
        rules = [r for group in graph.of_type("azure-native:network:NetworkSecurityGroup") for r in group.inputs.get("securityRules", [])]
        rules += [r.inputs | {"name": r.name} for r in graph.of_type("azure-native:network:SecurityRule")]
        for rule in rules:
            if rule["direction"] != "Inbound" or rule["access"] != "Allow":
                continue
            for source in [rule.get("sourceAddressPrefix"), *rule.get("sourceAddressPrefixes", [])]:
                if source in ("*", "Internet", "0.0.0.0/0"):
                    yield rule["name"], "0.0.0.0/0"
                elif source and re.fullmatch(r"[0-9.:/a-fA-F]+", source) and any(c.isdigit() for c in source):
                    yield rule["name"], source

    def secret_values(self, graph: PlanGraph) -> Iterator[tuple[str, object]]:
        """Key Vault secrets whose value the program sets: not the image list (references, no secret)
        nor a placeholder a node overwrites (its value ignored by the program).
        """
        ignored = {step["urn"]: step["newState"].get("ignoreChanges", []) for step in graph.plan["steps"]}
        for secret in graph.of_type("azure-native:keyvault:Secret"):
            if "properties" in ignored[secret.urn] or secret.name.endswith("-image-list-references"):
                continue
            yield secret.name, secret.inputs["properties"]["value"]

    def user_data(self, machine: Machine) -> str:
        raw = base64.b64decode(machine.resource.inputs["osProfile"]["customData"])
        return (gzip.decompress(raw) if raw.startswith(b"\x1f\x8b") else raw).decode()

    def budget(self, graph: PlanGraph) -> tuple[float, set[tuple[str, int]]]:
        (budget,) = graph.of_type("azure-native:consumption:Budget")
        kinds = {"Actual": "actual", "Forecasted": "forecast"}
        return float(budget.inputs["amount"]), {(kinds[n["thresholdType"]], n["threshold"]) for n in budget.inputs["notifications"].values()}


def _azure_address(graph: PlanGraph, vm: Resource) -> str:
    """A VM's private address as the offline plan's mocks give its interface in its subnet."""
    (reference,) = vm.inputs["networkProfile"]["networkInterfaces"]
    nic = graph.by_id[reference["id"]]
    configuration = nic.inputs["ipConfigurations"][0]
    subnet = graph.by_id[configuration["subnet"]["id"]]
    return azure_mocks.private_address(ipaddress.ip_network(subnet.inputs["addressPrefix"]), nic.id, 0)


VIEWS: dict[str, CloudView] = {"aws": AwsView(), "gcp": GcpView(), "azure": AzureView()}


@pytest.fixture
def view(settings: Settings) -> CloudView:
    return VIEWS[settings.cloud]


def test_every_node_has_one_machine_in_its_zone_and_only_the_bastion_is_public(graph: PlanGraph, settings: Settings, view: CloudView) -> None:
    topology = derive(settings)
    machines = {m.node: m for m in view.machines(graph)}
    expected = {node.name: node for node in (*topology.nodes, topology.bastion)}
    assert set(machines) == set(expected) and len(view.machines(graph)) == len(expected)
    for name, machine in machines.items():
        assert (machine.role, machine.zone) == (expected[name].role.value, expected[name].zone), name
        assert machine.public is (machine.role == Role.BASTION.value), f"{name}: only the bastion has a public address"
    assert len({m.image for m in machines.values()}) == 1, "every machine boots the one pinned image"


@pytest.mark.parametrize("role", [Role.MANAGER, Role.WORKER], ids=["etcd", "patroni"])
def test_each_etcd_and_patroni_member_sits_in_its_own_zone(graph: PlanGraph, view: CloudView, role: Role) -> None:
    zones = [m.zone for m in view.machines(graph) if m.role == role.value]
    assert len(zones) == 3 and len(set(zones)) == 3, (role, zones)


def test_every_volume_is_planned_in_its_nodes_zone_and_attached_to_its_machine_only(graph: PlanGraph, settings: Settings, view: CloudView) -> None:
    machines = {m.node: m.resource.id for m in view.machines(graph)}
    volumes = {(v.node, v.purpose): v for v in view.volumes(graph)}
    planned = derive(settings).volumes
    assert set(volumes) == {(v.node, v.purpose) for v in planned} and len(view.volumes(graph)) == len(planned)
    for spec in planned:
        volume = volumes[(spec.node, spec.purpose)]
        assert (volume.zone, volume.size_gb) == (spec.zone, spec.size_gb), spec.name
        assert volume.attached_to == (machines[spec.node],), f"{spec.name} is attached to {spec.node} alone"
    workers = {v.node for v in planned if v.purpose in ("data", "wal")}
    assert workers == {n.name for n in derive(settings).of_role(Role.WORKER)}, "every Patroni member has its data and WAL volumes"


def test_every_volume_disk_and_store_is_encrypted_with_the_stack_key(graph: PlanGraph, view: CloudView) -> None:
    key = view.stack_key(graph)
    assert key
    found = dict(view.encrypted(graph))
    assert len(found) >= 10
    for where, used in found.items():
        assert used == key, where


def test_stateful_resources_are_protected_in_prod_only(graph: PlanGraph, settings: Settings, view: CloudView) -> None:
    stateful = [r for r in graph.resources if r.type in view.stateful]
    assert len(stateful) >= 8
    for resource in stateful:
        assert resource.protect is settings.is_prod, resource.name


def test_every_labelable_resource_carries_the_required_tags_in_its_own_inputs(graph: PlanGraph, settings: Settings, stack: str, view: CloudView) -> None:
    required = view.required_tags(settings, stack)
    checked = 0
    for resource in graph.resources:
        tags = view.tags(resource) if resource.custom else None
        if tags is None:
            continue
        assert {key: tags.get(key) for key in required} == required, resource.name
        checked += 1
    assert checked > 25


def test_the_load_balancer_targets_exactly_the_haproxy_nodes(graph: PlanGraph, view: CloudView) -> None:
    managers = {m.resource.id for m in view.machines(graph) if m.role == LOAD_BALANCER_TARGET_ROLE.value}
    assert view.targets(graph) == managers and len(managers) == 3


def test_nothing_is_open_to_the_internet(graph: PlanGraph, view: CloudView) -> None:
    for rule, cidr in view.open_ingress(graph):
        network = ipaddress.ip_network(cidr)
        assert network.version == 4 and network.prefixlen >= 8, (rule, cidr)


def test_no_secret_appears_in_plain_text_in_the_plan(graph: PlanGraph, view: CloudView) -> None:
    text = json.dumps(graph.plan)
    assert "SWMTKN-" not in text
    assert "PRIVATE KEY" not in text
    secrets = dict(view.secret_values(graph))
    assert secrets and all(value == "[secret]" for value in secrets.values()), secrets
    for machine in view.machines(graph):
        assert machine.resource.inputs.get("userData", machine.resource.inputs.get("metadata")) != "[secret]"
        user_data = view.user_data(machine)
        assert user_data.startswith("#cloud-config\n"), f"{machine.node}: user data names secrets, never holds one"
        assert not re.search(r"(?i)(token|password|secret)\s*[=:]\s*['\"]?[A-Za-z0-9+/]{20,}", user_data), machine.node


def test_the_budget_is_the_settings_with_the_design_alerts(graph: PlanGraph, settings: Settings, view: CloudView) -> None:
    amount, alerts = view.budget(graph)
    assert amount == settings.budget.monthly_usd
    assert alerts == {(alert.kind, alert.percent) for alert in BUDGET_ALERTS}


def test_components_own_their_children_under_derived_names(graph: PlanGraph, view: CloudView) -> None:
    components = {r.urn: r for r in graph.resources if not r.custom and r.type != "pulumi:pulumi:Stack"}
    assert {c.type for c in components.values()} == {
        "dpc:network:Network", "dpc:storage:Storage", "dpc:swarm:Swarm", "dpc:compute:Compute",
        "dpc:loadbalancer:LoadBalancer", "dpc:budget:Budget", "dpc:registry:ImageRegistry", "dpc:database:DatabaseStack",
        "dpc:registry:ImageList", "dpc:access:DeployAccess", "dpc:readiness:SwarmReady", "dpc:readiness:ImagesReady",
    }
    providers: dict[str, list[str]] = {}
    for r in graph.resources:
        if r.type.startswith("pulumi:providers:"):
            providers.setdefault(r.type.removeprefix("pulumi:providers:"), []).append(r.urn)
    assert set(providers) == {view.provider, "command", "docker", "random", "tls"}
    for resource in graph.resources:
        if resource.custom and not resource.type.startswith("pulumi:providers:") and resource.type not in view.stack_level:
            parent = components[resource.parent]
            assert resource.name.startswith(f"{parent.name}-"), resource.name
            assert any(resource.provider.startswith(urn) for urn in providers[resource.type.split(":")[0]]), resource.name


def test_plan_has_the_shape_of_pulumi_preview_json(graph: PlanGraph) -> None:
    plan = graph.plan
    assert plan["changeSummary"] == {"create": len(plan["steps"])}
    for step in plan["steps"]:
        assert step["op"] == "create" and step["urn"] == step["newState"]["urn"]
        keys = {"urn", "type", "custom", "parent", "inputs", "protect", "dependencies", "propertyDependencies", "provider"}
        stack_only = {"outputs"} if step["newState"]["type"] == "pulumi:pulumi:Stack" else set[str]()
        options = {"ignoreChanges", "replaceOnChanges"} & set(step["newState"])  # ResourceV3's, where the program sets them
        assert set(step["newState"]) == keys | stack_only | options
        assert all(not re.search(r"_[a-z]", key) for key in step["newState"]["inputs"]), "inputs are camelCase"


def test_every_resource_belongs_to_this_stack_under_one_root(graph: PlanGraph, stack: str) -> None:
    roots = graph.of_type("pulumi:pulumi:Stack")
    assert [r.urn for r in roots] == [f"urn:pulumi:{stack}::dpc::pulumi:pulumi:Stack::dpc-{stack}"]
    for resource in graph.resources:
        assert resource.urn.startswith(f"urn:pulumi:{stack}::dpc::"), resource.urn
        assert resource.parent in ("", *(r.urn for r in graph.resources if not r.custom)), resource.urn
