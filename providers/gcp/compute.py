"""GCP compute: one Shielded VM per node in its zone, on the private regional subnetwork, with no
external address; a service account per role granted exactly its capabilities on this stack's
secrets, bucket and repositories (never a project-wide role); the bastion, the one machine with an
external address, in the public subnetwork. Boot disks are encrypted with the stack's key, and
admins log in through OS Login: with neither 2-step verification nor certificate-only login, the
guest agent adds its key lookup to sshd's own `authorized_keys`, so the deployment's key for its
local user keeps working.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import pulumi
import pulumi_gcp as gcp

from components.base import Scope
from components.compute import Attachment, ComputePlan, ComputeResult, MachineSpec, machines_awaiting
from components.swarm import MANAGER_ADDRESS, MANAGER_TOKEN, WORKER_TOKEN, hostname
from dpc.model import SWARM_ROLES, Capability, Node, Role
from dpc.settings import GcpSettings
from providers.gcp.labels import scope_labels

ACCOUNT_ID = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
"""What IAM accepts as a service account id: 6 to 30 characters, a letter first."""

DISPLAY_NAME_LIMIT = 100
"""IAM's limit on a service account's display name."""

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
"""The machines' access scope: all APIs, so that IAM alone (the role's grants) decides what they may do."""

SECRET_READER = "roles/secretmanager.secretAccessor"
SECRET_WRITER = "roles/secretmanager.secretVersionAdder"
BACKUP_WRITER = "roles/storage.objectUser"
"""Read, list, create and delete objects (what pgBackRest does to its repository), granted on the
offsite bucket only. The narrowest predefined role with delete; the little it adds (object
metadata updates, restoring soft-deleted objects, multipart uploads) stays inside that bucket and
gives nothing that creating and deleting objects does not, and it holds no IAM or bucket settings."""
IMAGE_READER = "roles/artifactregistry.reader"

BOOT_DISK_TYPE = "pd-balanced"
"""SSD-backed root disks: the root holds the OS and Docker's images, where pd-standard's latency slows every pull and start."""

IGNORED = ["machineType", "bootDisk.initializeParams.image", "bootDisk.initializeParams.size", 'metadata["user-data"]']
"""What reaches a machine only when it is replaced (`_instance`)."""


def account_id(scope_name: str, role: Role) -> str:
    """The service account id of a role's machines: the compute component's name and the role
    (`gcp-prod-compute-manager`), which keeps two stacks in one project apart. A name over IAM's 30
    characters keeps its start and the role and gains a digest of the whole, so it stays unique
    and the same from run to run.
    """
    wanted = re.sub(r"[^a-z0-9-]", "-", f"{scope_name}-{role.value}".lower())
    if not wanted[0].isalpha():
        wanted = f"dpc-{wanted}"
    if len(wanted) <= 30:
        return wanted
    suffix = f"-{hashlib.sha256(wanted.encode()).hexdigest()[:6]}-{role.value}"
    return f"{wanted[: 30 - len(suffix)].rstrip('-')}{suffix}"


def account_email(project: str, account: str) -> str:
    """A service account's email, known from names: a first preview shows whom each grant is for."""
    return f"{account}@{project}.iam.gserviceaccount.com"


def image_path(owner: str, name: str) -> str:
    """The pinned image by its project and exact name, never a family: a family moves under a running stack."""
    return f"projects/{owner}/global/images/{name}"


def disk_name(disk_id: str) -> str:
    """`projects/p/zones/z/disks/<name>` → `<name>`: the device name the disk shows up under
    (`/dev/disk/by-id/google-<name>`), where the swarm bootstrap mounts it.
    """
    return disk_id.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Grant:
    """One IAM member a role's service account holds: a role on one secret, the bucket or one repository."""

    on: Literal["secret", "bucket", "repository"]
    name: str
    """The grant's part of the resource name, stable across runs (a repository's by its place
    among the stack's repositories, which are sorted by image)."""
    target: pulumi.Input[str]
    role: str


def _grants(plan: ComputePlan, role: Role, capability: Capability) -> list[Grant]:
    """The IAM members that give `role`'s machines one capability, on this stack's resources only.

    No grant on the stack's key: Secret Manager, Cloud Storage and Artifact Registry encrypt and
    decrypt with it through their own service agents (granted on the key by the storage builder),
    never with the caller's identity.
    """
    secrets = plan.bootstrap_secret_ids
    match capability:
        case Capability.READ_MANAGER_JOIN | Capability.READ_WORKER_JOIN:
            token = MANAGER_TOKEN if capability is Capability.READ_MANAGER_JOIN else WORKER_TOKEN
            return [Grant("secret", f"read-{name}", secrets[name], SECRET_READER) for name in (token, MANAGER_ADDRESS)]
        case Capability.PUBLISH_JOIN:
            return [Grant("secret", f"publish-{name}", secrets[name], SECRET_WRITER) for name in sorted(secrets)]
        case Capability.WRITE_BACKUPS:
            return [Grant("bucket", "write-backups", plan.backup_bucket_name, BACKUP_WRITER)]
        case Capability.PULL_IMAGES:
            return [
                *(Grant("repository", f"pull-images-{index}", repository, IMAGE_READER) for index, repository in enumerate(plan.image_repository_ids)),
                Grant("secret", "read-image-list", plan.image_list_id, SECRET_READER),
            ]
        case Capability.READ_HOST_KEY:
            return [Grant("secret", f"read-host-key-{index}", key, SECRET_READER) for index, key in enumerate(plan.host_key_ids.get(role, ()))]


def role_grants(plan: ComputePlan, role: Role) -> list[Grant]:
    """Everything a role's service account is granted: its capabilities' grants, nothing else."""
    return [grant for capability in plan.capabilities[role] for grant in _grants(plan, role, capability)]


def _member(scope: Scope, role: Role, grant: Grant, member: str, account: gcp.serviceaccount.Account) -> None:
    name = scope.child(f"{role.value}-{grant.name}")
    opts = scope.opts(depends_on=[account])
    match grant.on:
        case "secret":
            gcp.secretmanager.SecretIamMember(name, secret_id=grant.target, role=grant.role, member=member, opts=opts)
        case "bucket":
            gcp.storage.BucketIAMMember(name, bucket=grant.target, role=grant.role, member=member, opts=opts)
        case "repository":
            gcp.artifactregistry.RepositoryIamMember(name, repository=grant.target, role=grant.role, member=member, opts=opts)


@dataclass(frozen=True)
class Identity:
    """A role's service account and its email, the latter known from names before the account exists."""

    account: gcp.serviceaccount.Account
    email: str


def _identity(settings: GcpSettings, scope: Scope, plan: ComputePlan, role: Role) -> Identity:
    """The role's service account, granted its capabilities on the resources themselves."""
    identifier = account_id(scope.name, role)
    account = gcp.serviceaccount.Account(
        scope.child(f"{role.value}-identity"),
        account_id=identifier,
        display_name=f"dpc {role.value} machines ({scope.name})"[:DISPLAY_NAME_LIMIT],
        description=f"dpc {role.value} machines: only what their role needs ({', '.join(plan.capabilities[role])})",
        opts=scope.opts(),
    )
    email = account_email(settings.project, identifier)
    for grant in role_grants(plan, role):
        _member(scope, role, grant, f"serviceAccount:{email}", account)
    return Identity(account, email)


def _metadata(user_data: pulumi.Input[str], *, encoded: bool) -> dict[str, pulumi.Input[str]]:
    """The bootstrap as cloud-init on GCE reads it (`user-data`, base64-decoded when so marked, gzip
    detected by itself), and the login settings: OS Login, so that admins' access follows IAM; no
    project-wide metadata keys; no serial console.
    """
    return {
        "user-data": user_data,
        **({"user-data-encoding": "base64"} if encoded else {}),
        "enable-oslogin": "TRUE",
        "block-project-ssh-keys": "TRUE",
        "serial-port-enable": "FALSE",
    }


def _instance(
    scope: Scope,
    plan: ComputePlan,
    node: Node,
    *,
    identity: Identity,
    subnetwork: pulumi.Input[str],
    metadata: Mapping[str, pulumi.Input[str]],
    attachments: Sequence[Attachment],
    public: bool,
    boot_after: Sequence[pulumi.Resource],
) -> gcp.compute.Instance:
    """One machine, named after its host name. Its first boot installs packages, so it waits for its
    zone's way out (`boot_after`). Changes to its image, machine type, root size or user data never
    touch a running machine: GCE applies a machine type only to a stopped instance and an image or
    root size only by recreating it, and every node of a role at once would take the etcd quorum or
    the database down; they reach a machine when it is replaced, one node at a time
    (`components.compute.machines_awaiting` lists the machines waiting for it). A replacement
    deletes first: the node's disks and host name pass to its successor, which cannot attach a
    disk still attached to its predecessor.
    """
    name = scope.child(node.name)
    return gcp.compute.Instance(
        name,
        name=hostname(plan.hostname_prefix, node),
        zone=node.zone,
        machine_type=node.machine_type,
        boot_disk={
            "auto_delete": True,
            "kms_key_self_link": plan.key_id,
            "initialize_params": {
                "image": image_path(plan.image.owner, plan.image.name),
                "size": node.root_volume_gb,
                "type": BOOT_DISK_TYPE,
                "labels": scope_labels(scope, Name=f"{name}-root", Node=node.name),
            },
        },
        attached_disks=[
            {"source": attachment.volume_id, "device_name": attachment.volume_id.apply(disk_name), "mode": "READ_WRITE", "kms_key_self_link": plan.key_id}
            for attachment in attachments
        ],
        network_interfaces=[{"subnetwork": subnetwork, "access_configs": [{"network_tier": "PREMIUM"}] if public else []}],
        tags=[plan.firewall_group_ids[node.role.value]],
        metadata=metadata,
        service_account={"email": identity.email, "scopes": [CLOUD_PLATFORM]},
        shielded_instance_config={"enable_secure_boot": True, "enable_vtpm": True, "enable_integrity_monitoring": True},
        deletion_protection=scope.protect_state,
        labels=scope_labels(scope, Name=name, Role=node.role.value, Node=node.name),
        opts=scope.opts(ignore_changes=IGNORED, depends_on=[identity.account, *boot_after], delete_before_replace=True),
    )


def _field(value: object, *path: str) -> Any:
    """A nested field of an instance's output, by its Python name. The SDK hands nested values over
    as its output classes or as plain dicts, both dicts keyed by those names.
    """
    for key in path:
        if isinstance(value, Sequence) and not isinstance(value, str):
            value = cast(Sequence[object], value)[int(key)] if len(cast(Sequence[object], value)) > int(key) else None
        else:
            value = cast(Mapping[str, object], value).get(key) if isinstance(value, Mapping) else None
    return value


def _private_ip(instance: gcp.compute.Instance) -> pulumi.Output[str]:
    return instance.network_interfaces.apply(lambda interfaces: str(_field(interfaces, "0", "network_ip") or ""))


def _public_ip(instance: gcp.compute.Instance) -> pulumi.Output[str]:
    return instance.network_interfaces.apply(lambda interfaces: str(_field(interfaces, "0", "access_configs", "0", "nat_ip") or ""))


def _running(instance: gcp.compute.Instance) -> pulumi.Output[MachineSpec]:
    """What the machine runs, in the terms of `wanted` in `build_compute` (unknown parts None: a
    machine being created). GCE reports the image as a full URL; its `projects/...` path is compared.
    """

    def spec(machine_type: str | None, boot_disk: object, metadata: Mapping[str, str] | None) -> MachineSpec:
        image, size = _field(boot_disk, "initialize_params", "image"), _field(boot_disk, "initialize_params", "size")
        return (
            machine_type,
            str(image)[str(image).find("projects/"):] if image else None,
            None if size is None else str(size),
            (metadata or {}).get("user-data"),
        )

    return pulumi.Output.all(instance.machine_type, instance.boot_disk, instance.metadata).apply(lambda args: spec(*args))


def build_compute(settings: GcpSettings, scope: Scope, plan: ComputePlan) -> ComputeResult:
    """Creates the service accounts with their grants, the nodes with their disks attached, and the bastion."""
    identities = {role: _identity(settings, scope, plan, role) for role in (*SWARM_ROLES, Role.BASTION)}
    nodes = {
        node.name: _instance(
            scope, plan, node, identity=identities[node.role], subnetwork=plan.private_subnet_ids[node.zone],
            metadata=_metadata(plan.user_data_base64[node.name], encoded=True), attachments=plan.attachments.get(node.name, ()),
            public=False, boot_after=plan.boot_after[node.zone],
        )
        for node in plan.nodes
    }
    bastion = _instance(
        scope, plan, plan.bastion, identity=identities[Role.BASTION], subnetwork=plan.public_subnet_ids[plan.bastion.zone],
        metadata=_metadata(plan.bastion_user_data, encoded=False), attachments=(), public=True, boot_after=(),
    )
    image = image_path(plan.image.owner, plan.image.name)
    wanted = pulumi.Output.all(**{node.name: plan.user_data_base64[node.name] for node in plan.nodes}).apply(
        lambda user_data: {node.name: (node.machine_type, image, str(node.root_volume_gb), str(user_data[node.name])) for node in plan.nodes}
    )
    return ComputeResult(
        instance_ids={name: instance.self_link for name, instance in nodes.items()},
        private_ips={name: _private_ip(instance) for name, instance in nodes.items()},
        bastion_public_ip=_public_ip(bastion),
        awaiting_replacement=machines_awaiting(wanted, {name: _running(instance) for name, instance in nodes.items()}),
    )
