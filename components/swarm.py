"""Swarm: the cloud-init of every node, which installs Docker Engine from the OS packages, mounts
the node's volumes, forms the Swarm unattended and applies the seed's node labels (§5.2).

The join tokens are exchanged at boot through the cloud's secret store (created by the
per-cloud builder); the user data only names where to find them. Rendering is a pure function of
its inputs, so it is golden-file tested and checked by `cloud-init schema` and shellcheck.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import yaml

from components.base import Component
from dpc.model import Node, Role
from dpc.services import Uid

SCRIPTS = Path(__file__).parent / "scripts"
MANAGER_TOKEN, WORKER_TOKEN, MANAGER_ADDRESS = "manager-token", "worker-token", "manager-address"
BOOTSTRAP_SECRETS = (MANAGER_TOKEN, WORKER_TOKEN, MANAGER_ADDRESS)
PLACEHOLDER = "pending"
"""Value of a bootstrap secret until manager-1 publishes it."""


DEPLOY_USER = "admin"
"""The Debian images' login user, whom `pulumi up` reaches manager-1's Docker as (over SSH): a member
of the docker group, so no root login is needed."""


@dataclass(frozen=True)
class Mount:
    """A volume to mount on a node: its volume id (the cloud tells the device path) and where."""

    volume_id: pulumi.Output[str]
    mount_point: str


@dataclass(frozen=True)
class SwarmLayout:
    """Who is in the Swarm and how they are named: all that a node's cloud-init reads of the plan,
    as plain values, so rendering stays a pure function.
    """

    nodes: tuple[Node, ...]
    hostname_prefix: str
    ssh_public_keys: tuple[str, ...]


@dataclass(frozen=True)
class SwarmPlan:
    """The nodes to bring into one Swarm, the volumes they mount, the key of their secrets."""

    layout: SwarmLayout
    mounts: Mapping[str, tuple[Mount, ...]]
    secrets_key_arn: pulumi.Output[str]
    """The customer-managed key that encrypts the bootstrap secrets."""


@dataclass(frozen=True)
class SwarmResult:
    """The user data of every node, and the bootstrap secrets the nodes' identities may touch."""

    user_data: dict[str, pulumi.Output[str]]
    bootstrap_secret_ids: dict[str, pulumi.Output[str]]


class Swarm(Component[SwarmPlan, SwarmResult]):
    """The Swarm's formation."""

    type_token = "dpc:swarm:Swarm"


@dataclass(frozen=True)
class CloudHooks:
    """What one cloud adds to a node's boot: its CLI packages and its secret-store functions."""

    packages: tuple[str, ...]
    secret_store_script: str
    environment: Mapping[str, str]


class _CloudConfigDumper(yaml.SafeDumper):
    """Writes multi-line strings (the scripts) as literal blocks, so the user data reads as files."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)  # pyright: ignore[reportUnknownMemberType]  # types-PyYAML leaves `value` untyped


_CloudConfigDumper.add_representer(str, _represent_text)


def _cloud_config(document: dict[str, object]) -> str:
    return "#cloud-config\n" + yaml.dump(document, Dumper=_CloudConfigDumper, sort_keys=True, width=1000, allow_unicode=True)


def hostname(prefix: str, node: Node) -> str:
    """The node's host name, which is also its Swarm node name."""
    return f"{prefix}-{node.name}"


def _env_file(values: Mapping[str, str]) -> str:
    return "".join(f"{key}={_quote(value)}\n" for key, value in sorted(values.items()))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _file(path: str, content: str, permissions: str) -> dict[str, str]:
    return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}


def node_environment(node: Node, secret_names: Mapping[str, str]) -> dict[str, str]:
    """The node's bootstrap settings: whether it initialises the Swarm, and where the secrets are."""
    join = MANAGER_TOKEN if node.role is Role.MANAGER else WORKER_TOKEN
    return {
        "DPC_NODE": node.name,
        "DPC_SWARM_INIT": "true" if node.swarm_init else "false",
        "DPC_PLACEHOLDER": PLACEHOLDER,
        "DPC_JOIN_TOKEN": secret_names[join],
        "DPC_MANAGER_TOKEN": secret_names[MANAGER_TOKEN],
        "DPC_WORKER_TOKEN": secret_names[WORKER_TOKEN],
        "DPC_MANAGER_ADDRESS": secret_names[MANAGER_ADDRESS],
    }


def labels_table(prefix: str, nodes: Sequence[Node]) -> str:
    """One `hostname<TAB>key=value` line per label, in node then key order."""
    return "".join(
        f"{hostname(prefix, node)}\t{key}={value}\n" for node in nodes for key, value in sorted(node.labels.items())
    )


def render_node_cloud_init(
    *,
    node: Node,
    layout: SwarmLayout,
    hooks: CloudHooks,
    secret_names: Mapping[str, str],
    devices: Sequence[tuple[str, str]],
) -> str:
    """The `#cloud-config` of one Swarm node. `devices` pairs each device path with its mount point;
    every volume holds the database's files (data, WAL, backups), so its mount point is owned by the
    user the PostgreSQL image runs as.
    """
    files = [
        _file("/etc/dpc/node.env", _env_file(node_environment(node, secret_names) | dict(hooks.environment)), "0644"),
        _file("/usr/local/lib/dpc/secret-store.sh", hooks.secret_store_script, "0644"),
        _file("/usr/local/sbin/dpc-swarm-bootstrap", (SCRIPTS / "dpc-swarm-bootstrap").read_text(), "0755"),
        _file("/usr/local/sbin/dpc-mount-volumes", (SCRIPTS / "dpc-mount-volumes").read_text(), "0755"),
        _file("/etc/dpc/mounts.tsv", "".join(f"{device}\t{mount}\t{Uid.POSTGRES}\n" for device, mount in devices), "0644"),
    ]
    if node.swarm_init:
        files.append(_file("/usr/local/sbin/dpc-swarm-labels", (SCRIPTS / "dpc-swarm-labels").read_text(), "0755"))
        files.append(_file("/etc/dpc/swarm-labels.tsv", labels_table(layout.hostname_prefix, layout.nodes), "0644"))
    document: dict[str, object] = {
        "hostname": hostname(layout.hostname_prefix, node),
        "preserve_hostname": False,
        "package_update": True,
        "package_upgrade": True,
        "packages": sorted({"docker.io", "curl", *hooks.packages}),
        "write_files": files,
        "runcmd": [
            ["usermod", "--append", "--groups", "docker", DEPLOY_USER],
            ["/usr/local/sbin/dpc-mount-volumes"],
            ["/usr/local/sbin/dpc-swarm-bootstrap"],
        ],
    }
    if layout.ssh_public_keys:
        document["ssh_authorized_keys"] = list(layout.ssh_public_keys)
    return _cloud_config(document)


def render_bastion_cloud_init(*, host: str, ssh_public_keys: Sequence[str]) -> str:
    """The bastion's `#cloud-config`: patched at boot, admins' keys, nothing else installed."""
    document: dict[str, object] = {
        "hostname": host,
        "preserve_hostname": False,
        "package_update": True,
        "package_upgrade": True,
    }
    if ssh_public_keys:
        document["ssh_authorized_keys"] = list(ssh_public_keys)
    return _cloud_config(document)
