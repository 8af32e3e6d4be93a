"""Fast checks of the rendered `#cloud-config` of the prod stack's nodes (AWS hooks): who initialises
the Swarm, which join token each node reads, the seed §5.2 labels, the volumes, the packages and
the absence of anything secret. The slow checks (golden files, `cloud-init schema`, shellcheck,
running the scripts) are in tests/contract/test_cloud_init.py."""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.swarm import (
    BOOTSTRAP_SECRETS,
    DEPLOY_USER,
    MANAGER_ADDRESS,
    MANAGER_TOKEN,
    PLACEHOLDER,
    WORKER_TOKEN,
    SwarmLayout,
    _env_file,  # pyright: ignore[reportPrivateUsage]  # the quoting of node.env is checked through bash
    render_bastion_cloud_init,
    render_node_cloud_init,
)
from dpc.config import settings_from_stack_file
from dpc.model import Node, Role, bastion_node, plan_nodes
from dpc.services import Uid
from dpc.settings import Settings
from providers.aws.swarm import aws_hooks, ebs_device
from providers.composition import volume_plans

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PREFIX = "dpc-prod"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET_NAMES = {secret: f"/dpc/prod-swarm/{secret}" for secret in BOOTSTRAP_SECRETS}
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx6ZXN0a2V5Zm9ydGVzdGluZ29ubHkxMjM0NTY3ODkw admin@example.com"
EC2_USER_DATA_LIMIT = 16 * 1024
"""EC2 rejects user data over 16 KiB (before base64)."""

SEED_LABELS = {
    "dpc-prod-manager-1": {"postgres.etcd": "etcd-1"},
    "dpc-prod-manager-2": {"postgres.etcd": "etcd-2"},
    "dpc-prod-manager-3": {"postgres.etcd": "etcd-3"},
    "dpc-prod-worker-1": {"postgres.role": "patroni", "postgres.patroni-id": "1"},
    "dpc-prod-worker-2": {"postgres.role": "patroni", "postgres.patroni-id": "2"},
    "dpc-prod-worker-3": {"postgres.role": "patroni", "postgres.patroni-id": "3"},
    "dpc-prod-app-1": {"redis.role": "master"},
}
"""Seed §5.2 step 2, on the prod stack's host names."""

PLACEMENT_LABELS = {
    "dpc-prod-manager-1": {"dpc.role": "manager"},
    "dpc-prod-manager-2": {"dpc.role": "manager"},
    "dpc-prod-manager-3": {"dpc.role": "manager"},
    "dpc-prod-worker-1": {"dpc.role": "worker"},
    "dpc-prod-worker-2": {"dpc.role": "worker"},
    "dpc-prod-worker-3": {"dpc.role": "worker"},
    "dpc-prod-app-1": {"dpc.role": "app", "postgres.pgbouncer": "true"},
    "dpc-prod-app-2": {"dpc.role": "app", "postgres.pgbouncer": "true"},
    "dpc-prod-backup-1": {"dpc.role": "backup", "postgres.backup": "true"},
}
"""The labels dpc/model.py adds beyond the seed, for placement; listed so that any other label fails."""


def volume_id(volume_name: str) -> str:
    """A well-formed, stable EBS volume id for a volume (`vol-0` and 16 hex digits)."""
    return "vol-0" + hashlib.sha256(volume_name.encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return settings_from_stack_file(PROJECT_ROOT / "Pulumi.prod.yaml")


@pytest.fixture(scope="module")
def nodes(settings: Settings) -> dict[str, Node]:
    return {node.name: node for node in plan_nodes(settings)}


@pytest.fixture(scope="module")
def plan(settings: Settings, nodes: dict[str, Node]) -> SwarmLayout:
    """The prod Swarm's layout, as the composition builds it."""
    return SwarmLayout(nodes=tuple(nodes.values()), hostname_prefix=PREFIX, ssh_public_keys=tuple(settings.access.ssh_public_keys))


def devices_of(settings: Settings, node: Node) -> list[tuple[str, str]]:
    """The node's (device path, mount point) pairs, in the order the composition mounts them."""
    return [
        (ebs_device(volume_id(volume.name)), volume.mount_point)
        for volume in volume_plans(settings, list(plan_nodes(settings)))
        if volume.node == node.name
    ]


def render(settings: Settings, plan: SwarmLayout, node: Node) -> str:
    return render_node_cloud_init(
        node=node,
        layout=plan,
        hooks=aws_hooks(settings.region, KEY_ARN),
        secret_names=SECRET_NAMES,
        devices=devices_of(settings, node),
    )


def load(user_data: str) -> dict[str, Any]:
    assert user_data.startswith("#cloud-config\n")
    document = yaml.safe_load(user_data)
    assert isinstance(document, dict)
    return document


def files_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in document.get("write_files", [])}


def node_env(document: dict[str, Any]) -> dict[str, str]:
    """/etc/dpc/node.env, read as the shell reads `KEY='value'` lines."""
    env: dict[str, str] = {}
    for line in files_of(document)["/etc/dpc/node.env"]["content"].splitlines():
        [word] = shlex.split(line)
        key, _, value = word.partition("=")
        env[key] = value
    return env


def test_prod_stack_has_every_node_the_tests_name(nodes: dict[str, Node]) -> None:
    assert sorted(nodes) == sorted(
        ["manager-1", "manager-2", "manager-3", "worker-1", "worker-2", "worker-3", "app-1", "app-2", "backup-1"]
    )


def test_only_manager_1_initialises_the_swarm_and_applies_the_labels(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    for name, node in nodes.items():
        document = load(render(settings, plan, node))
        files = files_of(document)
        initialises = name == "manager-1"
        assert node_env(document)["DPC_SWARM_INIT"] == ("true" if initialises else "false"), name
        assert ("/usr/local/sbin/dpc-swarm-labels" in files) is initialises, name
        assert ("/etc/dpc/swarm-labels.tsv" in files) is initialises, name
        assert "dpc-swarm-labels" not in str(document["runcmd"]), "the labels run in the background, started by the bootstrap"


def test_labels_table_holds_exactly_the_seed_labels_and_the_placement_labels(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    table = files_of(load(render(settings, plan, nodes["manager-1"])))["/etc/dpc/swarm-labels.tsv"]["content"]
    assert table.endswith("\n")
    found: dict[str, dict[str, str]] = {}
    for line in table.splitlines():
        host, label = line.split("\t")
        key, _, value = label.partition("=")
        assert key and value, line
        assert key not in found.get(host, {}), f"{host} has {key} twice"
        found.setdefault(host, {})[key] = value
    seed_keys = {key for labels in SEED_LABELS.values() for key in labels}
    assert {host: {k: v for k, v in labels.items() if k in seed_keys} for host, labels in found.items() if seed_keys & labels.keys()} == SEED_LABELS
    assert {host: {k: v for k, v in labels.items() if k not in seed_keys} for host, labels in found.items()} == PLACEMENT_LABELS
    assert set(found) == {f"{PREFIX}-{name}" for name in nodes}


def test_labels_table_is_the_same_whichever_node_is_rendered_first(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    first = render(settings, plan, nodes["manager-1"])
    for node in nodes.values():
        render(settings, plan, node)
    assert render(settings, plan, nodes["manager-1"]) == first


@pytest.mark.parametrize(
    ("name", "join"),
    [("manager-1", MANAGER_TOKEN), ("manager-2", MANAGER_TOKEN), ("manager-3", MANAGER_TOKEN), ("worker-1", WORKER_TOKEN),
     ("worker-3", WORKER_TOKEN), ("app-1", WORKER_TOKEN), ("app-2", WORKER_TOKEN), ("backup-1", WORKER_TOKEN)],
)
def test_node_joins_with_its_roles_token(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node], name: str, join: str) -> None:
    env = node_env(load(render(settings, plan, nodes[name])))
    assert env == {
        "DPC_NODE": name,
        "DPC_SWARM_INIT": "true" if name == "manager-1" else "false",
        "DPC_PLACEHOLDER": PLACEHOLDER,
        "DPC_JOIN_TOKEN": SECRET_NAMES[join],
        "DPC_MANAGER_TOKEN": SECRET_NAMES[MANAGER_TOKEN],
        "DPC_WORKER_TOKEN": SECRET_NAMES[WORKER_TOKEN],
        "DPC_MANAGER_ADDRESS": SECRET_NAMES[MANAGER_ADDRESS],
        "DPC_REGION": "us-east-1",
        "DPC_KEY_ID": KEY_ARN,
    }


@pytest.mark.parametrize("index", [1, 2, 3])
def test_worker_mounts_its_data_and_wal_volumes(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node], index: int) -> None:
    mounts = files_of(load(render(settings, plan, nodes[f"worker-{index}"])))["/etc/dpc/mounts.tsv"]["content"]
    data, wal = (ebs_device(volume_id(f"worker-{index}-{purpose}")) for purpose in ("data", "wal"))
    assert mounts == (
        f"{data}\t/mnt/postgres-cluster/patroni-{index}\t{Uid.POSTGRES}\n"
        f"{wal}\t/mnt/postgres-cluster/patroni-{index}-wal\t{Uid.POSTGRES}\n"
    )


def test_backup_node_mounts_its_backup_volume_and_the_others_mount_nothing(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    for name, node in nodes.items():
        mounts = files_of(load(render(settings, plan, node)))["/etc/dpc/mounts.tsv"]["content"]
        if name == "backup-1":
            assert mounts == f"{ebs_device(volume_id('backup-1-backups'))}\t/mnt/postgres-cluster/backups\t{Uid.POSTGRES}\n"
        elif not name.startswith("worker-"):
            assert mounts == "", name


def test_ebs_device_is_the_nitro_nvme_by_id_link() -> None:
    assert ebs_device("vol-0123456789abcdef0") == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"


def test_docker_engine_comes_from_the_os_packages(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    for node in nodes.values():
        user_data = render(settings, plan, node)
        document = load(user_data)
        assert document["packages"] == ["awscli", "curl", "docker.io"], node.name
        assert "apt" not in document, "no third-party APT source"
        assert "snap" not in document
        assert not re.search(r"docker-ce|get\.docker\.com|download\.docker\.com", user_data), node.name
        assert not re.search(r"(curl|wget)[^\n|;]*\|\s*(sudo\s+)?(ba|da|z)?sh\b", user_data), node.name


def test_no_script_in_the_repository_pipes_a_download_into_a_shell() -> None:
    scripts = [*(PROJECT_ROOT / "components" / "scripts").iterdir(), *(PROJECT_ROOT / "providers" / "aws" / "scripts").iterdir()]
    assert len(scripts) >= 4
    for script in scripts:
        text = script.read_text()
        assert "get.docker.com" not in text, script
        assert not re.search(r"(curl|wget)[^\n|;]*\|\s*(sudo\s+)?(ba|da|z)?sh\b", text), script


def test_user_data_runs_the_mount_then_the_bootstrap_from_files_it_writes(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    for node in nodes.values():
        document = load(render(settings, plan, node))
        files = files_of(document)
        assert document["runcmd"] == [
            ["usermod", "--append", "--groups", "docker", DEPLOY_USER],
            ["/usr/local/sbin/dpc-mount-volumes"],
            ["/usr/local/sbin/dpc-swarm-bootstrap"],
        ], "the deploy user reaches Docker (pulumi's docker provider logs in as it), then volumes, then the Swarm"
        for [command] in document["runcmd"][1:]:
            assert files[command]["permissions"] == "0755"
            assert files[command]["owner"] == "root:root"
        assert files["/usr/local/lib/dpc/secret-store.sh"]["permissions"] == "0644"


def test_scripts_are_shipped_byte_for_byte(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    files = files_of(load(render(settings, plan, nodes["manager-1"])))
    for path, source in [
        ("/usr/local/sbin/dpc-swarm-bootstrap", "components/scripts/dpc-swarm-bootstrap"),
        ("/usr/local/sbin/dpc-mount-volumes", "components/scripts/dpc-mount-volumes"),
        ("/usr/local/sbin/dpc-swarm-labels", "components/scripts/dpc-swarm-labels"),
        ("/usr/local/lib/dpc/secret-store.sh", "providers/aws/scripts/secret-store.sh"),
    ]:
        assert files[path]["content"] == (PROJECT_ROOT / source).read_text(), path


def test_hostname_is_the_swarm_node_name(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    for name, node in nodes.items():
        document = load(render(settings, plan, node))
        assert document["hostname"] == f"dpc-prod-{name}"
        assert document["preserve_hostname"] is False


def test_no_join_token_appears_in_any_user_data(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    rendered = [render(settings, plan, node) for node in nodes.values()]
    rendered.append(render_bastion_cloud_init(host="dpc-prod-bastion-1", ssh_public_keys=[SSH_KEY]))
    for user_data in rendered:
        assert "SWMTKN-" not in user_data
        assert not re.search(r"--token\s+[^\s\"$]", user_data), "a join token is only ever read from the secret store"


def test_user_data_fits_the_ec2_limit(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    for node in nodes.values():
        assert len(render(settings, plan, node).encode()) <= EC2_USER_DATA_LIMIT, node.name


def test_rendering_is_deterministic(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    for node in nodes.values():
        assert render(settings, plan, node) == render(settings, plan, node)


def test_authorized_keys_only_when_keys_are_configured(settings: Settings, plan: SwarmLayout, nodes: dict[str, Node]) -> None:
    assert settings.access.ssh_public_keys == [], "the prod stack file configures no keys"
    without = load(render(settings, plan, nodes["worker-1"]))
    with_keys = load(render(settings, replace(plan, ssh_public_keys=(SSH_KEY,)), nodes["worker-1"]))
    assert "ssh_authorized_keys" not in without
    assert with_keys["ssh_authorized_keys"] == [SSH_KEY]
    assert {k: v for k, v in with_keys.items() if k != "ssh_authorized_keys"} == without


def test_bastion_installs_nothing_and_gets_keys_only_when_configured(settings: Settings) -> None:
    host = f"{PREFIX}-{bastion_node(settings).name}"
    assert host == "dpc-prod-bastion-1"
    without = load(render_bastion_cloud_init(host=host, ssh_public_keys=[]))
    assert without == {"hostname": host, "preserve_hostname": False, "package_update": True, "package_upgrade": True}
    with_keys = load(render_bastion_cloud_init(host=host, ssh_public_keys=[SSH_KEY]))
    assert with_keys == without | {"ssh_authorized_keys": [SSH_KEY]}


def test_node_env_quoting_survives_the_shell(tmp_path: Path) -> None:
    values = {"PLAIN": "/dpc/prod-swarm/manager-token", "QUOTE": "it's", "EXPANSION": "$(touch x) `y` $HOME", "SPACES": " a  b ", "EMPTY": ""}
    env_file = tmp_path / "node.env"
    env_file.write_text(_env_file(values))
    names = " ".join(sorted(values))
    script = f'set -eu; . "$1"; for name in {names}; do printf "%s=%s\\0" "$name" "${{!name}}"; done'
    result = subprocess.run(["bash", "-c", script, "bash", str(env_file)], capture_output=True, check=True, cwd=tmp_path)
    read_back = dict(item.split("=", 1) for item in result.stdout.decode().split("\0") if item)
    assert read_back == values
    assert not (tmp_path / "x").exists()


def test_every_node_role_is_covered(nodes: dict[str, Node]) -> None:
    assert {node.role for node in nodes.values()} == {Role.MANAGER, Role.WORKER, Role.APP, Role.BACKUP}
