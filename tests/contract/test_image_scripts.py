"""The nodes' image scripts, run by bash as on a node: `dpc-image-pull` reads the image list with
Debian's awscli from a local AWS API (moto) through the AWS secret store and pulls with a stand-in
`docker`; `dpc-images-ready` polls a stand-in Swarm whose nodes receive the images late. Transient
failures (a list not written yet, pulls that fail, nodes that lack an image for a while) are
retried within bounds and logged; `sleep` is a stand-in too, so the retries cost no time.

Moto differs from AWS in no way these tests rely on: `GetParameter` of a missing name fails with
ParameterNotFound on both, and a String parameter's value comes back as written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.contract.aws_emulator import REGION, Emulator, aws_emulator

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "components" / "scripts"
SHELLCHECK = ROOT / ".venv" / "bin" / "shellcheck"
SECRET_STORE = ROOT / "providers" / "aws" / "scripts" / "secret-store.sh"
PARAMETER = "/dpc/test-registry/images"
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
POSTGRES = f"{REGISTRY}/test-registry-postgres@sha256:{'a' * 64}"
SERVICES = f"{REGISTRY}/test-registry-services@sha256:{'b' * 64}"

_STAND_IN = r'''
import json, os, sys
state_path = os.environ["FAKE_STATE"]
with open(state_path) as f:
    state = json.load(f)
command, args = os.path.basename(sys.argv[0]), sys.argv[1:]
state["calls"].append([command, *args])
status = 0
if command == "docker":
    if args[:2] == ["image", "inspect"]:
        status = 0 if args[2] in state["present"] else 1
    elif args[0] == "pull":
        reference = args[-1]
        if state["pull_failures"].get(reference, 0) > 0:
            state["pull_failures"][reference] -= 1
            print("Error response from daemon: i/o timeout", file=sys.stderr)
            status = 1
        else:
            state["present"].append(reference)
            print(reference)
    elif args[:2] == ["node", "ls"]:
        for node, (ready, availability) in sorted(state["nodes"].items()):
            print(f"{node} {ready} {availability}")
    elif args[:2] == ["service", "create"]:
        name = args[args.index("--name") + 1]
        state["services"][name] = {"image": args[-1], "args": args}
    elif args[:2] == ["service", "rm"]:
        for name in args[2:]:
            status = 0 if state["services"].pop(name, None) else 1
    elif args[:2] == ["service", "ps"]:
        service = state["services"][args[2]]
        for node, (ready, availability) in sorted(state["nodes"].items()):
            if ready != "Ready" or availability != "Active":
                continue
            arrivals = state["arrivals"].setdefault(node, {})
            polls = arrivals.get(service["image"], 0)
            if polls > 0:
                arrivals[service["image"]] = polls - 1
                print(f"{node} Rejected 3 seconds ago")
            else:
                print(f"{node} Complete 2 seconds ago")
with open(state_path, "w") as f:
    json.dump(state, f)
sys.exit(status)
'''


@dataclass(frozen=True)
class Node:
    """A stand-in node's file system and commands: the script with its paths moved into `root`."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def set_state(self, **values: Any) -> None:
        self.state_file.write_text(json.dumps(self.state() | values))

    def install(self, script: str) -> Path:
        text = (SCRIPTS / script).read_text()
        for path, replacement in {
            "/etc/dpc/node.env": self.root / "node.env",
            "/usr/local/lib/dpc/common.sh": SCRIPTS / "dpc-common.sh",
            "/usr/local/lib/dpc/secret-store.sh": SECRET_STORE,
        }.items():
            text = text.replace(path, str(replacement))
        installed = self.root / script
        installed.write_text(text)
        installed.chmod(0o755)
        return installed

    def run(self, script: Path, *args: str, environment: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        base = environment or {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env = base | {"PATH": f"{self.root / 'bin'}:{base['PATH']}", "FAKE_STATE": str(self.state_file)}
        return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=120, check=False)

    def calls(self, command: str) -> list[list[str]]:
        return [call for call in self.state()["calls"] if call[0] == command]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = tmp_path / "stand-in.py"
    stand_in.write_text(f"#!{sys.executable}\n{_STAND_IN}")
    stand_in.chmod(0o755)
    for command in ("docker", "sleep"):
        (bin_dir / command).symlink_to(stand_in)
    (tmp_path / "node.env").write_text(f"DPC_REGION='{REGION}'\nDPC_IMAGES_PARAMETER='{PARAMETER}'\n")
    created = Node(tmp_path)
    created.state_file.write_text(json.dumps({
        "calls": [], "present": [], "pull_failures": {}, "nodes": {}, "services": {}, "arrivals": {},
    }))
    return created


@pytest.fixture(scope="module")
def emulator() -> Any:
    with aws_emulator() as emu:
        yield emu


def _write_list(emulator: Emulator, value: str) -> None:
    subprocess.run(
        ["aws", "ssm", "put-parameter", "--name", PARAMETER, "--type", "String", "--overwrite", "--value", value],
        env=emulator.environment(), check=True, capture_output=True, timeout=60,
    )


def _delete_list(emulator: Emulator) -> None:
    subprocess.run(["aws", "ssm", "delete-parameter", "--name", PARAMETER], env=emulator.environment(), capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("script", ["dpc-image-pull", "dpc-images-ready"])
def test_the_script_passes_shellcheck(script: str) -> None:
    result = subprocess.run([str(SHELLCHECK), "--external-sources", str(SCRIPTS / script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_a_node_pulls_the_listed_images_once_the_list_is_written(node: Node, emulator: Emulator) -> None:
    script = node.install("dpc-image-pull")
    _delete_list(emulator)
    before = node.run(script, environment=emulator.environment())
    assert before.returncode == 1, "no list yet (before the first push): the run fails and the timer tries again"
    assert "reading the image list /dpc/test-registry/images failed 3 times" in before.stderr
    assert node.calls("docker") == [] and len(node.calls("sleep")) == 2
    _write_list(emulator, f"{POSTGRES}\n{SERVICES}")
    node.set_state(present=[SERVICES], pull_failures={POSTGRES: 2})
    result = node.run(script, environment=emulator.environment())
    assert result.returncode == 0, result.stderr
    pulls = [call for call in node.calls("docker") if call[1] == "pull"]
    assert pulls == [["docker", "pull", "--quiet", POSTGRES]] * 3, "two transient failures, then the pull succeeds; present images are not pulled"
    assert "pulling " + POSTGRES + " failed (exit 1, attempt 1 of 3)" in result.stderr and f"pulled {POSTGRES}" in result.stderr
    again = node.run(script, environment=emulator.environment())
    assert again.returncode == 0 and [c for c in node.calls("docker") if c[1] == "pull"] == pulls, "a second run pulls nothing"


def test_a_pull_that_keeps_failing_fails_the_run_after_bounded_retries(node: Node, emulator: Emulator) -> None:
    script = node.install("dpc-image-pull")
    _write_list(emulator, f"{POSTGRES}\n{SERVICES}")
    node.set_state(pull_failures={POSTGRES: 100})
    result = node.run(script, environment=emulator.environment())
    assert result.returncode == 1
    assert f"pulling {POSTGRES} failed 3 times" in result.stderr
    assert SERVICES in node.state()["present"], "the other images are still pulled"


def _swarm(node: Node, arrivals: dict[str, dict[str, int]]) -> None:
    node.set_state(
        nodes={"m1": ["Ready", "Active"], "m2": ["Ready", "Active"], "w1": ["Ready", "Active"], "gone": ["Down", "Active"], "drained": ["Ready", "Drain"]},
        arrivals=arrivals,
    )


def test_the_gate_waits_until_every_node_holds_every_image_and_cleans_up(node: Node) -> None:
    script = node.install("dpc-images-ready")
    _swarm(node, {"w1": {POSTGRES: 3}, "m2": {SERVICES: 1}})
    result = node.run(script, POSTGRES, SERVICES, environment=None)
    assert result.returncode == 0, result.stderr
    creates = [call for call in node.calls("docker") if call[1:3] == ["service", "create"]]
    assert len(creates) == 2
    for create in creates:
        assert {"--mode", "global-job", "--no-resolve-image", "--entrypoint", "true"} <= set(create)
        assert not {"--with-registry-auth", "--registry-auth"} & set(create), "no credentials: a node lacking the image cannot pull it"
    assert len(node.calls("sleep")) == 3, "it polled until w1 held the postgres image"
    assert node.state()["services"] == {}, "the jobs are removed"


def test_the_gate_fails_in_bounded_time_naming_the_nodes_that_lack_an_image(node: Node) -> None:
    script = node.install("dpc-images-ready")
    _swarm(node, {"w1": {POSTGRES: 1000}})
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    result = node.run(script, POSTGRES, SERVICES, environment=env | {"DPC_IMAGES_READY_WAIT_SECONDS": "50"})
    assert result.returncode == 1
    assert f"missing after 50s: {POSTGRES} on w1" in result.stderr
    assert SERVICES not in result.stderr.split("missing after", 1)[1]
    assert node.state()["services"] == {}, "the jobs are removed on failure too"


def test_the_gate_refuses_references_by_tag(node: Node) -> None:
    script = node.install("dpc-images-ready")
    result = node.run(script, f"{REGISTRY}/test-registry-postgres:0123456789abcdef")
    assert result.returncode == 2 and "not a reference by digest" in result.stderr
    assert node.calls("docker") == []
