"""Fast checks of the rendered `#cloud-config` of the prod stack's nodes (AWS hooks): who initialises
the Swarm, which join token each node reads, the design §1.4 labels on every manager, the volumes,
the packages the bootstrap installs, the timers, SSH access, where the reached machines' host keys
come from, the size EC2 accepts, the containers kept from the instance metadata, and the absence of
anything secret: user data names secrets and holds none. Then what GCP's hooks change (the gcp-prod
stack): Secret Manager names, the persistent disks' device paths, the deploy user created on
Ubuntu's image, the Artifact Registry credential helper. The slow checks (golden files,
`cloud-init schema`, shellcheck, running the scripts) are in tests/contract."""

from __future__ import annotations

import base64
import gzip
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.swarm import (
    DEPLOY_USER,
    MANAGER_ADDRESS,
    MANAGER_TOKEN,
    PLACEHOLDER,
    WORKER_TOKEN,
    _env_file,  # pyright: ignore[reportPrivateUsage]  # the quoting of node.env is checked through bash
    gzip_base64,
)
from dpc.model import Node, Role
from dpc.services import Uid
from providers.aws.swarm import ebs_device
from tests.contract.cloud_init_cases import (
    CLOUDS,
    DEPLOY_KEY,
    GCP,
    GCP_PROJECT,
    HOST_KEY_MACHINES,
    HOST_KEY_SECRETS,
    IMAGES_PARAMETER,
    KEY_ARN,
    PREFIX,
    PROJECT_ROOT,
    SECRET_NAMES,
    SSH_KEY,
    CloudCase,
    prod_nodes,
    render_bastion,
    render_node,
    volume_id,
)

EC2_USER_DATA_LIMIT = 16 * 1024
"""EC2 rejects user data over 16 KiB (the bytes before base64: here, the gzip stream)."""

SEED_LABELS = {
    "dpc-prod-manager-1": {"postgres.etcd": "etcd-1"},
    "dpc-prod-manager-2": {"postgres.etcd": "etcd-2"},
    "dpc-prod-manager-3": {"postgres.etcd": "etcd-3"},
    "dpc-prod-worker-1": {"postgres.role": "patroni", "postgres.patroni-id": "1"},
    "dpc-prod-worker-2": {"postgres.role": "patroni", "postgres.patroni-id": "2"},
    "dpc-prod-worker-3": {"postgres.role": "patroni", "postgres.patroni-id": "3"},
    "dpc-prod-app-1": {"redis.role": "master"},
}
"""The labels of design §1.4 that the original architecture named, on the prod stack's host names."""

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

GUARD_FILES = {"/usr/local/sbin/dpc-metadata-guard", "/etc/systemd/system/dpc-metadata-guard.service"}
"""What keeps a node's containers from the instance metadata (every node but the backup agent's)."""

HOST_KEY_SCRIPT = "/usr/local/sbin/dpc-host-key"
HOST_KEY_ENV = "/etc/dpc/host-key.env"
HOST_KEY_FILES = {HOST_KEY_SCRIPT, HOST_KEY_ENV}
"""What a machine `pulumi up` reaches gets to install its host key from the secret store."""

MANAGER_FILES = {
    "/usr/local/sbin/dpc-swarm-converge",
    "/usr/local/sbin/dpc-swarm-ready",
    "/usr/local/sbin/dpc-images-ready",
    "/etc/dpc/swarm-labels.tsv",
    "/etc/systemd/system/dpc-swarm-converge.service",
    "/etc/systemd/system/dpc-swarm-converge.timer",
}


@pytest.fixture(scope="module")
def nodes() -> dict[str, Node]:
    return prod_nodes()


@pytest.fixture(scope="module")
def documents(nodes: dict[str, Node]) -> dict[str, dict[str, Any]]:
    return {name: load(render_node(name)) for name in nodes}


def load(user_data: str) -> dict[str, Any]:
    assert user_data.startswith("#cloud-config\n")
    document = yaml.safe_load(user_data)
    assert isinstance(document, dict)
    return document


def files_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in document.get("write_files", [])}


def node_env(document: dict[str, Any], path: str = "/etc/dpc/node.env") -> dict[str, str]:
    """/etc/dpc/node.env (or another of its env files), read as the shell reads `KEY='value'` lines."""
    env: dict[str, str] = {}
    for line in files_of(document)[path]["content"].splitlines():
        [word] = shlex.split(line)
        key, _, value = word.partition("=")
        env[key] = value
    return env


def test_prod_stack_has_every_node_the_tests_name(nodes: dict[str, Node]) -> None:
    assert sorted(nodes) == sorted(
        ["manager-1", "manager-2", "manager-3", "worker-1", "worker-2", "worker-3", "app-1", "app-2", "backup-1"]
    )


def test_only_manager_1_may_initialise_and_every_manager_converges_the_swarm(documents: dict[str, dict[str, Any]], nodes: dict[str, Node]) -> None:
    table = files_of(documents["manager-1"])["/etc/dpc/swarm-labels.tsv"]["content"]
    for name, document in documents.items():
        files = files_of(document)
        manager = nodes[name].role is Role.MANAGER
        assert node_env(document)["DPC_SWARM_INIT"] == ("true" if name == "manager-1" else "false"), name
        assert node_env(document)["DPC_SWARM_ROLE"] == ("manager" if manager else "worker"), name
        assert (files.keys() >= MANAGER_FILES) is manager, f"{name}: every manager (and only they) can converge the Swarm, whichever is replaced"
        assert not (MANAGER_FILES & files.keys()) or manager, name
        if manager:
            assert files["/etc/dpc/swarm-labels.tsv"]["content"] == table, "every manager holds the same labels table"
        assert "dpc-swarm-labels" not in str(document)


def test_labels_table_holds_exactly_the_seed_labels_and_the_placement_labels(documents: dict[str, dict[str, Any]], nodes: dict[str, Node]) -> None:
    table = files_of(documents["manager-1"])["/etc/dpc/swarm-labels.tsv"]["content"]
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


@pytest.mark.parametrize(
    ("name", "join"),
    [("manager-1", MANAGER_TOKEN), ("manager-2", MANAGER_TOKEN), ("manager-3", MANAGER_TOKEN), ("worker-1", WORKER_TOKEN),
     ("worker-3", WORKER_TOKEN), ("app-1", WORKER_TOKEN), ("app-2", WORKER_TOKEN), ("backup-1", WORKER_TOKEN)],
)
def test_node_joins_with_its_roles_token(documents: dict[str, dict[str, Any]], name: str, join: str) -> None:
    assert node_env(documents[name]) == {
        "DPC_NODE": name,
        "DPC_METADATA_GUARD": "false" if name == "backup-1" else "true",
        "DPC_SWARM_ROLE": "manager" if join == MANAGER_TOKEN else "worker",
        "DPC_SWARM_INIT": "true" if name == "manager-1" else "false",
        "DPC_PLACEHOLDER": PLACEHOLDER,
        "DPC_JOIN_TOKEN": SECRET_NAMES[join],
        "DPC_MANAGER_TOKEN": SECRET_NAMES[MANAGER_TOKEN],
        "DPC_WORKER_TOKEN": SECRET_NAMES[WORKER_TOKEN],
        "DPC_MANAGER_ADDRESS": SECRET_NAMES[MANAGER_ADDRESS],
        "DPC_PACKAGES": "amazon-ecr-credential-helper awscli curl docker.io jq",
        "DPC_DEPLOY_USER": DEPLOY_USER,
        "DPC_IMAGES_PARAMETER": IMAGES_PARAMETER,
        "DPC_REGION": "us-east-1",
        "DPC_KEY_ID": KEY_ARN,
    }


@pytest.mark.parametrize("index", [1, 2, 3])
def test_worker_mounts_its_data_and_wal_volumes(documents: dict[str, dict[str, Any]], index: int) -> None:
    mounts = files_of(documents[f"worker-{index}"])["/etc/dpc/mounts.tsv"]["content"]
    data, wal = (ebs_device(volume_id(f"worker-{index}-{purpose}")) for purpose in ("data", "wal"))
    assert mounts == (
        f"{data}\t/mnt/postgres-cluster/patroni-{index}\t{Uid.POSTGRES}\n"
        f"{wal}\t/mnt/postgres-cluster/patroni-{index}-wal\t{Uid.POSTGRES}\n"
    )


def test_backup_node_mounts_its_backup_volume_and_the_others_mount_nothing(documents: dict[str, dict[str, Any]]) -> None:
    for name, document in documents.items():
        mounts = files_of(document)["/etc/dpc/mounts.tsv"]["content"]
        if name == "backup-1":
            assert mounts == f"{ebs_device(volume_id('backup-1-backups'))}\t/mnt/postgres-cluster/backups\t{Uid.POSTGRES}\n"
        elif not name.startswith("worker-"):
            assert mounts == "", name


def test_ebs_device_is_the_nitro_nvme_by_id_link() -> None:
    assert ebs_device("vol-0123456789abcdef0") == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"


def test_packages_come_from_the_os_through_the_bootstrap_not_cloud_inits_one_shot_module(documents: dict[str, dict[str, Any]]) -> None:
    """A failed apt run in cloud-init's `packages` module leaves a node without Docker for good; the
    bootstrap installs them with bounded retries, and apt retries each download too."""
    for name, document in documents.items():
        assert not {"packages", "package_update", "package_upgrade", "apt", "snap"} & document.keys(), name
        files = files_of(document)
        assert files["/etc/apt/apt.conf.d/80dpc-retries"]["content"] == 'Acquire::Retries "5";\n'
        assert files["/root/.docker/config.json"] == {
            "path": "/root/.docker/config.json", "content": '{"credsStore": "ecr-login"}\n', "owner": "root:root", "permissions": "0600",
        }, "root's docker CLI pulls from ECR with the node's own role"
        user_data = yaml.safe_dump(document)
        assert not re.search(r"docker-ce|get\.docker\.com|download\.docker\.com", user_data), name
        assert not re.search(r"(curl|wget)[^\n|;]*\|\s*(sudo\s+)?(ba|da|z)?sh\b", user_data), name


def test_no_script_in_the_repository_pipes_a_download_into_a_shell() -> None:
    scripts = [*(PROJECT_ROOT / "components" / "scripts").iterdir(), *PROJECT_ROOT.glob("providers/*/scripts/*")]
    assert len(scripts) >= 12
    for script in scripts:
        text = script.read_text()
        assert "get.docker.com" not in text, script
        assert not re.search(r"(curl|wget)[^\n|;]*\|\s*(sudo\s+)?(ba|da|z)?sh\b", text), script


def test_user_data_runs_the_mount_then_the_bootstrap_from_files_it_writes(documents: dict[str, dict[str, Any]]) -> None:
    for name, document in documents.items():
        files = files_of(document)
        host_key = [[HOST_KEY_SCRIPT]] if name in HOST_KEY_MACHINES else []
        assert document["runcmd"] == [
            ["/usr/local/sbin/dpc-mount-volumes"],
            ["/usr/local/sbin/dpc-swarm-bootstrap"],
            *host_key,
        ], "volumes, then the Swarm (the bootstrap puts the deploy user in the docker group once docker.io has created it), then the host key"
        for [command] in document["runcmd"]:
            assert files[command]["permissions"] == "0755"
            assert files[command]["owner"] == "root:root"
        assert files["/usr/local/lib/dpc/secret-store.sh"]["permissions"] == "0644"


@pytest.mark.parametrize("unit", ["dpc-image-pull", "dpc-swarm-converge"])
def test_timers_run_their_script_every_minute_without_overlapping(documents: dict[str, dict[str, Any]], unit: str) -> None:
    files = files_of(documents["manager-2"])
    service = files[f"/etc/systemd/system/{unit}.service"]["content"]
    timer = files[f"/etc/systemd/system/{unit}.timer"]["content"]
    assert "Type=oneshot\n" in service and f"ExecStart=/usr/local/sbin/{unit}\n" in service
    assert "Requires=docker.service\n" in service
    assert "OnUnitInactiveSec=1min\n" in timer, "a minute after the previous run ends"
    assert "WantedBy=timers.target\n" in timer
    assert (f"/etc/systemd/system/{unit}.timer" in files_of(documents["worker-1"])) is (unit == "dpc-image-pull")


def test_scripts_are_shipped_byte_for_byte(documents: dict[str, dict[str, Any]]) -> None:
    files = files_of(documents["manager-2"])
    for path, source in [
        ("/usr/local/sbin/dpc-swarm-bootstrap", "components/scripts/dpc-swarm-bootstrap"),
        ("/usr/local/sbin/dpc-kernel-preflight", "components/scripts/dpc-kernel-preflight"),
        ("/usr/local/sbin/dpc-mount-volumes", "components/scripts/dpc-mount-volumes"),
        ("/usr/local/sbin/dpc-swarm-converge", "components/scripts/dpc-swarm-converge"),
        ("/usr/local/sbin/dpc-swarm-ready", "components/scripts/dpc-swarm-ready"),
        ("/usr/local/sbin/dpc-image-pull", "components/scripts/dpc-image-pull"),
        ("/usr/local/sbin/dpc-images-ready", "components/scripts/dpc-images-ready"),
        ("/usr/local/lib/dpc/common.sh", "components/scripts/dpc-common.sh"),
        ("/usr/local/lib/dpc/secret-store.sh", "providers/aws/scripts/secret-store.sh"),
    ]:
        assert files[path]["content"] == (PROJECT_ROOT / source).read_text(), path


def test_hostname_is_the_swarm_node_name(documents: dict[str, dict[str, Any]]) -> None:
    for name, document in documents.items():
        assert document["hostname"] == f"dpc-prod-{name}"
        assert document["preserve_hostname"] is False


def test_no_join_token_appears_in_any_user_data(nodes: dict[str, Node]) -> None:
    rendered = [render_node(name) for name in nodes]
    rendered.append(render_bastion([SSH_KEY]))
    for user_data in rendered:
        assert not re.search(r"SWMTKN-1-[0-9a-z]{20,}", user_data), "a join token (the scripts only name its pattern)"
        assert not re.search(r"--token\b", user_data), "a join token is never given on a command line"


def test_compressed_user_data_fits_the_ec2_limit_and_decompresses_to_the_document(nodes: dict[str, Node]) -> None:
    for name in nodes:
        user_data = render_node(name)
        compressed = base64.b64decode(gzip_base64(user_data))
        assert len(compressed) <= EC2_USER_DATA_LIMIT, name
        assert gzip.decompress(compressed).decode() == user_data
        assert gzip_base64(user_data) == gzip_base64(user_data), "no timestamp in the gzip header"
    assert len(render_node("manager-1").encode()) > EC2_USER_DATA_LIMIT, "uncompressed, a manager's user data is over the limit: the reason for gzip"


def _assert_installs_its_host_key_from_the_secret_store(document: dict[str, Any], machine: str) -> None:
    """The host key's parameter named in host-key.env with the store's settings, the script byte for
    byte, run first: `pulumi up` can reach the machine only once its known host key is in place."""
    files = files_of(document)
    assert node_env(document, HOST_KEY_ENV) == {
        "DPC_HOST_KEY_SECRET": HOST_KEY_SECRETS[machine],
        "DPC_HOST_KEY_PACKAGES": "awscli",
        "DPC_REGION": "us-east-1",
        "DPC_KEY_ID": KEY_ARN,
    }, machine
    assert files[HOST_KEY_ENV]["owner"] == "root:root" and files[HOST_KEY_ENV]["permissions"] == "0644", "names a secret, holds none"
    assert files[HOST_KEY_SCRIPT] == {
        "path": HOST_KEY_SCRIPT, "content": (PROJECT_ROOT / "components/scripts/dpc-host-key").read_text(), "owner": "root:root", "permissions": "0755",
    }, machine
    assert files["/usr/local/lib/dpc/common.sh"]["content"] == (PROJECT_ROOT / "components/scripts/dpc-common.sh").read_text()
    assert files["/usr/local/lib/dpc/secret-store.sh"]["content"] == (PROJECT_ROOT / "providers/aws/scripts/secret-store.sh").read_text()
    assert document["runcmd"][-1] == [HOST_KEY_SCRIPT], f"{machine}: the host key is installed after the Swarm bootstrap, never delaying it"


def test_deploy_key_and_admin_keys_are_authorised_and_only_reached_machines_install_a_host_key(nodes: dict[str, Node]) -> None:
    for name in nodes:
        document = load(render_node(name, ssh_public_keys=[SSH_KEY]))
        assert document["ssh_authorized_keys"] == [DEPLOY_KEY, SSH_KEY], name
        assert not {"ssh_keys", "ssh_deletekeys", "ssh_genkeytypes"} & document.keys(), f"{name}: no host key through cloud-init's user data"
        if name in HOST_KEY_MACHINES:
            _assert_installs_its_host_key_from_the_secret_store(document, name)
        else:
            assert not HOST_KEY_FILES & files_of(document).keys(), f"{name}: keeps the host keys it generates"
            assert [HOST_KEY_SCRIPT] not in document["runcmd"], name
    assert HOST_KEY_MACHINES == ("manager-1", "bastion"), "the machines `pulumi up` reaches over SSH"
    assert load(render_node("worker-1"))["ssh_authorized_keys"] == [DEPLOY_KEY], "the deploy key alone when no admin keys are configured"


def test_bastion_installs_only_its_host_key_s_client() -> None:
    """Patched by cloud-init's own modules, the deploy and admins' keys, and its host key from the
    secret store (dpc-host-key installs the store's client itself, with retries): nothing else."""
    document = load(render_bastion([SSH_KEY]))
    files = files_of(document)
    assert {key: value for key, value in document.items() if key != "write_files"} == {
        "hostname": "dpc-prod-bastion-1",
        "preserve_hostname": False,
        "package_update": True,
        "package_upgrade": True,
        "ssh_authorized_keys": [DEPLOY_KEY, SSH_KEY],
        "runcmd": [[HOST_KEY_SCRIPT]],
    }
    assert list(files) == [
        "/etc/apt/apt.conf.d/80dpc-retries", "/usr/local/lib/dpc/common.sh", "/usr/local/lib/dpc/secret-store.sh", HOST_KEY_ENV, HOST_KEY_SCRIPT,
    ]
    assert files["/etc/apt/apt.conf.d/80dpc-retries"] == {
        "path": "/etc/apt/apt.conf.d/80dpc-retries", "content": 'Acquire::Retries "5";\n', "owner": "root:root", "permissions": "0644",
    }
    _assert_installs_its_host_key_from_the_secret_store(document, "bastion")


def test_no_user_data_holds_a_private_key_or_any_secret_value(nodes: dict[str, Node]) -> None:
    """User data is readable by any process on the machine (instance metadata) and shown in every
    preview: it names the host keys' parameters and holds no key."""
    rendered = {name: render_node(name, ssh_public_keys=[SSH_KEY]) for name in nodes} | {"bastion": render_bastion([SSH_KEY])}
    for name, user_data in rendered.items():
        assert "PRIVATE KEY" not in user_data, name
        assert not re.search(r"b3BlbnNzaC1rZXktdjE|ed25519_private|ssh_keys", user_data), f"{name}: an OpenSSH private key or cloud-init's key module"
        named = {machine for machine, secret in HOST_KEY_SECRETS.items() if secret in user_data}
        assert named == ({name} & set(HOST_KEY_MACHINES)), f"{name} names its own host key's parameter, and no other's"
        assert ("/host-keys/" in user_data) is (name in HOST_KEY_MACHINES), name


def test_rendering_is_deterministic(nodes: dict[str, Node]) -> None:
    for name in nodes:
        assert render_node(name) == render_node(name)


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


# --- the instance metadata, out of the containers' reach ------------------------------------------------


@pytest.mark.parametrize("case", CLOUDS, ids=lambda case: case.cloud)
def test_every_node_but_the_backup_agents_keeps_its_containers_from_the_metadata(case: CloudCase) -> None:
    """Whoever reaches the metadata service acts as the node (its join tokens included); only the
    backup agent, which writes the offsite backups as its node, may (design: the one exception),
    and not even it where it signs in with a key of its own (Azure: the storage account's key)."""
    agent = case.topology.backup_agent.name
    assert agent == "backup-1"
    everywhere = case.hooks(case.topology.settings, case.key_id, Role.BACKUP).metadata_guard_everywhere
    assert everywhere is (case.cloud == "azure")
    for name in case.nodes():
        document = load(case.render_node(name))
        files = files_of(document)
        guarded = name != agent or everywhere
        assert node_env(document)["DPC_METADATA_GUARD"] == ("true" if guarded else "false"), name
        assert (files.keys() >= GUARD_FILES) is guarded and (not GUARD_FILES & files.keys()) is (not guarded), name
        if guarded:
            assert files["/usr/local/sbin/dpc-metadata-guard"]["content"] == (PROJECT_ROOT / "components/scripts/dpc-metadata-guard").read_text()
            assert files["/usr/local/sbin/dpc-metadata-guard"]["permissions"] == "0755"
    assert load(case.render_bastion())["runcmd"] == [[HOST_KEY_SCRIPT]], "the bastion runs no containers"


def test_the_guard_runs_before_docker_on_every_boot_and_fails_closed() -> None:
    unit = files_of(load(render_node("worker-1")))["/etc/systemd/system/dpc-metadata-guard.service"]["content"]
    assert "Before=docker.service\n" in unit, "in place before dockerd starts a container"
    assert "RequiredBy=docker.service\n" in unit, "pulled in by docker on every boot, and docker does not start without it"
    assert "Type=oneshot\n" in unit and "RemainAfterExit=yes\n" in unit
    assert "ExecStart=/usr/local/sbin/dpc-metadata-guard\n" in unit
    rule = (PROJECT_ROOT / "components/scripts/dpc-metadata-guard").read_text()
    assert "readonly CHAIN=DOCKER-USER\n" in rule and "169.254.169.254/32" in rule


def test_the_bootstrap_enables_the_guard_before_docker_and_the_swarm() -> None:
    bootstrap = (PROJECT_ROOT / "components/scripts/dpc-swarm-bootstrap").read_text()
    guard = bootstrap.index("systemctl enable --now dpc-metadata-guard.service")
    assert bootstrap.index("systemctl daemon-reload") < guard < bootstrap.index("systemctl enable --now docker\n")
    assert guard < bootstrap.index('join "$address"'), "containers run only once the node is in the Swarm"
    assert 'if [ "$DPC_METADATA_GUARD" = true ]; then\n  systemctl enable --now dpc-metadata-guard.service' in bootstrap


# --- GCP ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcp_documents() -> dict[str, dict[str, Any]]:
    return {name: load(GCP.render_node(name)) for name in GCP.nodes()}


def test_gcp_nodes_read_secret_manager_secrets_named_by_project_and_id(gcp_documents: dict[str, dict[str, Any]]) -> None:
    for name, document in gcp_documents.items():
        env = node_env(document)
        assert env["DPC_MANAGER_ADDRESS"] == f"projects/{GCP_PROJECT}/secrets/gcp-prod-swarm-{MANAGER_ADDRESS}"
        assert env["DPC_JOIN_TOKEN"] == GCP.secret_names[MANAGER_TOKEN if name.startswith("manager-") else WORKER_TOKEN]
        assert env["DPC_IMAGES_PARAMETER"] == GCP.images_parameter
        assert env["DPC_PACKAGES"] == "curl docker.io jq", f"{name}: no cloud CLI: the store is curl against the REST API"
        assert not {"DPC_REGION", "DPC_KEY_ID"} & env.keys(), "a secret carries its key and location itself"
        assert files_of(document)["/usr/local/lib/dpc/secret-store.sh"]["content"] == (PROJECT_ROOT / "providers/gcp/scripts/secret-store.sh").read_text()


@pytest.mark.parametrize("index", [1, 2, 3])
def test_gcp_worker_mounts_its_persistent_disks_by_their_device_names(gcp_documents: dict[str, dict[str, Any]], index: int) -> None:
    mounts = files_of(gcp_documents[f"worker-{index}"])["/etc/dpc/mounts.tsv"]["content"]
    assert mounts == (
        f"/dev/disk/by-id/google-gcp-prod-storage-worker-{index}-data\t/mnt/postgres-cluster/patroni-{index}\t{Uid.POSTGRES}\n"
        f"/dev/disk/by-id/google-gcp-prod-storage-worker-{index}-wal\t/mnt/postgres-cluster/patroni-{index}-wal\t{Uid.POSTGRES}\n"
    )


@pytest.mark.parametrize("machine", ["manager-1", "worker-1", "bastion"])
def test_gcp_creates_the_deploy_user_on_ubuntus_image(machine: str) -> None:
    """Ubuntu's GCE image's default user is `ubuntu`; the deployment logs in as `admin` on every
    cloud, so the user data creates it (keys, passwordless sudo, no password) instead of the default."""
    document = load(GCP.render_bastion([SSH_KEY]) if machine == "bastion" else GCP.render_node(machine, ssh_public_keys=[SSH_KEY]))
    assert "ssh_authorized_keys" not in document, "top-level keys would go to the image's default user"
    assert document["users"] == [{
        "name": DEPLOY_USER, "shell": "/bin/bash", "lock_passwd": True, "sudo": "ALL=(ALL) NOPASSWD:ALL", "ssh_authorized_keys": [DEPLOY_KEY, SSH_KEY],
    }]


def test_aws_keeps_debians_default_user() -> None:
    for user_data in (render_node("worker-1"), render_bastion()):
        assert "users" not in load(user_data), "Debian's AMI's default user is the deploy user"


def test_gcp_docker_cli_signs_in_to_artifact_registry_with_the_shipped_helper(gcp_documents: dict[str, dict[str, Any]]) -> None:
    helper = (PROJECT_ROOT / "providers/gcp/scripts/docker-credential-dpc-gcp").read_text()
    for name, document in gcp_documents.items():
        files = files_of(document)
        assert files["/root/.docker/config.json"]["content"] == '{"credsStore": "dpc-gcp"}\n', name
        assert files["/usr/local/bin/docker-credential-dpc-gcp"] == {
            "path": "/usr/local/bin/docker-credential-dpc-gcp", "content": helper, "owner": "root:root", "permissions": "0755",
        }, name
    assert not any(path.startswith("/usr/local/bin/docker-credential-") for path in files_of(load(render_node("worker-1")))), "AWS: Debian's package"


def test_gcp_bastion_installs_its_stores_tools_for_its_host_key() -> None:
    env = node_env(load(GCP.render_bastion()), HOST_KEY_ENV)
    assert env == {"DPC_HOST_KEY_SECRET": GCP.host_key_secrets["bastion"], "DPC_HOST_KEY_PACKAGES": "curl jq"}


def test_gcp_user_data_holds_no_secret_and_fits_the_metadata_value_limit(gcp_documents: dict[str, dict[str, Any]]) -> None:
    """GCE takes at most 256 KiB per metadata value; the nodes' user data goes there base64-encoded."""
    for name in GCP.nodes():
        user_data = GCP.render_node(name, ssh_public_keys=[SSH_KEY])
        assert len(gzip_base64(user_data)) <= 256 * 1024, name
        assert "PRIVATE KEY" not in user_data and not re.search(r"SWMTKN-1-[0-9a-z]{20,}|ya29\.", user_data), name
        named = {machine for machine, secret in GCP.host_key_secrets.items() if secret in user_data}
        assert named == ({name} & set(HOST_KEY_MACHINES)), name
