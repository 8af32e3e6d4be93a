"""A modelled Docker Swarm for running the real bootstrap scripts, several machines at once.

Each machine is a directory holding the files its user data writes (paths moved under it), and
runs the product's scripts with stand-ins first on PATH: `docker` (the CLI) and `curl` (the Engine
API on the unix socket, and AWS's instance metadata service; requests to loopback, a test's fake of
a cloud's APIs, go to the real curl) act on one Swarm state file shared by
all machines; `sleep` sleeps a fiftieth of the time asked; `apt-get`, `usermod`, `systemctl`,
`ip`, `iptables` and `modprobe` record their calls (apt and ip can be told to fail). `aws` is
Debian's awscli against the local AWS API (tests/contract/aws_emulator.py); an outage of the
secret store is the same client pointed at a closed port. Every call of every stand-in, and
of `aws`, is logged with its argv, so a test can look for a token in any command line.

What the model holds: nodes (id, host name, role, Ready/Down, availability, manager address and
reachability, labels), the join tokens, the leader (the first Ready manager, once the old one is
down), the managers' quorum (commands fail without it), which join token makes a manager or a
worker, and that a join reaches only a live manager's address (otherwise the engine's timeout,
the node left "pending"). A second `swarm init` while a Swarm exists is recorded as a split.
What it does not model: Raft timing and elections beyond "first Ready manager", tasks and
services, TLS and certificates, the data path, a pending join completing later in the background,
node heartbeats (a machine is Down only when a test says it died), and the engine's API versions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_STAND_IN = r'''
import fcntl
import json
import os
import secrets
import sys
import time
from pathlib import Path

world = Path(os.environ["FAKE_WORLD"])
machine = Path(os.environ["FAKE_MACHINE"])
name = Path(sys.argv[0]).name
args = sys.argv[1:]


def record():
    with (world / "calls.jsonl").open("a") as out:
        out.write(json.dumps({"machine": machine.name, "argv": [name, *args]}) + "\n")


def counter(path):
    """Decrements a countdown file; true while it was above zero (a failure to inject)."""
    if not path.exists():
        return False
    left = int(path.read_text() or 0)
    if left <= 0:
        return False
    path.write_text(str(left - 1))
    return True


record()
if name == "aws":
    with (world / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        outage = counter(world / "aws-outage")
    endpoint = "http://127.0.0.1:9" if outage else os.environ["FAKE_AWS_ENDPOINT"]
    os.execv(os.environ["FAKE_AWS_CLI"], [os.environ["FAKE_AWS_CLI"], "--endpoint-url", endpoint, *args])
if name == "curl" and args[-1].startswith("http://127.0.0.1:"):
    os.execv("/usr/bin/curl", ["curl", *args])
if name == "sleep":
    time.sleep(float(args[0]) / 50)
    sys.exit(0)
if name in ("systemctl", "modprobe", "image-pull", "usermod"):
    sys.exit(0)
if name == "apt-get":
    with (world / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        failing = counter(world / "apt-failures")
    if failing:
        sys.exit("E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Temporary failure resolving 'deb.debian.org'")
    sys.exit(0)
if name == "ip":
    missing = os.environ.get("FAKE_KERNEL_MISSING", "")
    if args[:2] == ["netns", "exec"]:
        os.execvp(args[3], args[3:])
    if args[2:5] == ["xfrm", "state", "add"] and missing == "esp":
        sys.exit("Error: Requested AEAD algorithm not found.")
    sys.exit(0)
if name == "iptables":
    sys.exit(0)

local_file = machine / "engine.json"
local = json.loads(local_file.read_text()) if local_file.exists() else {"state": "inactive", "node": None}
lock = (world / "lock").open("w")
fcntl.flock(lock, fcntl.LOCK_EX)
swarm_file = world / "swarm.json"
swarm = json.loads(swarm_file.read_text())


def save():
    swarm_file.write_text(json.dumps(swarm, indent=1))
    local_file.write_text(json.dumps(local))


def fail(message, status=1):
    print(message, file=sys.stderr)
    sys.exit(status)


def managers(state=None):
    return [n for n in swarm["nodes"] if n["role"] == "manager" and (state is None or n["state"] == state)]


def leader():
    current = next((n for n in managers("ready") if n["id"] == swarm.get("leader")), None)
    if current is None and managers("ready"):
        current = managers("ready")[0]
        swarm["leader"] = current["id"]
    return current


def node(node_id):
    found = [n for n in swarm["nodes"] if n["id"] == node_id or n["hostname"] == node_id]
    if len(found) != 1:
        problem = "not found" if not found else f"is ambiguous ({len(found)} matches)"
        fail(f"Error response from daemon: node {node_id} {problem}")
    return found[0]


def as_docker(n):
    shown = {
        "ID": n["id"],
        "Spec": {"Labels": dict(n["labels"]), "Role": n["role"], "Availability": n["availability"]},
        "Description": {"Hostname": n["hostname"]},
        "Status": {"State": n["state"], "Addr": n["address"]},
    }
    if n["role"] == "manager":
        shown["ManagerStatus"] = {
            "Leader": leader() is n,
            "Reachability": "reachable" if n["state"] == "ready" else "unreachable",
            "Addr": f"{n['address']}:2377",
        }
    return shown


def require_manager():
    me = next((n for n in swarm["nodes"] if n["id"] == local["node"]), None)
    if local["state"] != "active" or me is None or me["role"] != "manager":
        fail("Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" "
             "to connect this node to swarm and try again.")
    if 2 * len(managers("ready")) <= len(managers()):
        fail("Error response from daemon: rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too few managers are online.")
    return me


def engine_response(status, body):
    print(json.dumps(body))
    if status >= 400:
        print(f"curl: (22) The requested URL returned error: {status}", file=sys.stderr)
        sys.exit(22)
    sys.exit(0)


if name == "curl":
    url = args[-1]
    if url == "http://169.254.169.254/latest/api/token":
        print("imds-session-token", end="")
        sys.exit(0)
    if url == "http://169.254.169.254/latest/meta-data/local-ipv4" and "X-aws-ec2-metadata-token: imds-session-token" in args:
        print(os.environ["FAKE_ADDRESS"], end="")
        sys.exit(0)
    if "--unix-socket" not in args:
        fail(f"stand-in curl: unexpected {args}", 7)
    path = url.removeprefix("http://localhost/")
    data = next((a for a in args if a.startswith("@")), None)
    body = {}
    if data:
        body_file = Path(data[1:])
        if body_file.stat().st_mode & 0o077:
            fail("stand-in curl: the request body is readable by others", 2)
        body = json.loads(body_file.read_text())
    if path == "swarm/init":
        if local["state"] != "inactive":
            engine_response(503, {"message": "This node is already part of a swarm."})
        if swarm["tokens"]:
            swarm["splits"] += 1
        swarm["tokens"] = {role: f"SWMTKN-1-{secrets.token_hex(25)}-{secrets.token_hex(12)}" for role in ("manager", "worker")}
        new = {"id": secrets.token_hex(12), "hostname": os.environ["FAKE_HOSTNAME"], "role": "manager", "state": "ready",
               "availability": "active", "address": body["AdvertiseAddr"], "labels": {}}
        swarm["nodes"].append(new)
        swarm["leader"] = new["id"]
        local.update(state="active", node=new["id"])
        save()
        engine_response(200, new["id"])
    if path == "swarm/join":
        if local["state"] != "inactive":
            engine_response(503, {"message": "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one."})
        [remote] = body["RemoteAddrs"]
        host, _, port = remote.partition(":")
        timeout = {"message": "Timeout was reached before node joined. The attempt to join the swarm will continue in the background. "
                              "Use the \"docker info\" command to see the current swarm status of your node."}
        if counter(world / "join-failures") or port != "2377" or not any(n["address"] == host for n in managers("ready")):
            local["state"] = "pending"
            save()
            engine_response(503, timeout)
        role = next((r for r, t in (swarm["tokens"] or {}).items() if t == body["JoinToken"]), None)
        if role is None:
            engine_response(400, {"message": "rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster"})
        new = {"id": secrets.token_hex(12), "hostname": os.environ["FAKE_HOSTNAME"], "role": role, "state": "ready",
               "availability": "active", "address": body["AdvertiseAddr"], "labels": {}}
        swarm["nodes"].append(new)
        local.update(state="active", node=new["id"])
        save()
        engine_response(200, None)
    if path == "swarm/leave?force=true":
        local.update(state="inactive", node=None)
        save()
        engine_response(200, None)
    fail(f"stand-in curl: unexpected engine call {path}", 7)

if name != "docker":
    fail(f"stand-in: unexpected command {name}")
if args[:2] == ["info", "--format"]:
    me = next((n for n in swarm["nodes"] if n["id"] == local["node"]), None)
    formats = {
        "{{.Swarm.LocalNodeState}}": local["state"],
        "{{.Swarm.ControlAvailable}}": "true" if me and local["state"] == "active" and me["role"] == "manager" else "false",
    }
    if args[2] not in formats:
        fail(f"stand-in docker: unmodelled format {args[2]}")
    print(formats[args[2]])
elif args[:3] == ["swarm", "join-token", "-q"]:
    require_manager()
    print(swarm["tokens"][args[3]])
elif args[:3] == ["node", "ls", "--quiet"]:
    require_manager()
    print("\n".join(n["id"] for n in swarm["nodes"]))
elif args[:2] == ["node", "inspect"] and "--format" in args:
    me = require_manager()
    if args[2:] != ["self", "--format", "{{.ManagerStatus.Leader}}"]:
        fail(f"stand-in docker: unmodelled {args}")
    print("true" if leader() is me else "false")
elif args[:2] == ["node", "inspect"]:
    require_manager()
    print(json.dumps([as_docker(node(i)) for i in args[2:]], indent=4))
elif args[:2] == ["node", "update"]:
    require_manager()
    target = node(args[-1])
    options = args[2:-1]
    for flag, label in zip(options[::2], options[1::2]):
        if flag != "--label-add":
            fail(f"stand-in docker: unmodelled {flag}")
        key, _, value = label.partition("=")
        target["labels"][key] = value
    save()
    print(target["id"])
elif args[:2] == ["node", "demote"]:
    require_manager()
    target = node(args[2])
    target["role"] = "worker"
    save()
    print(f"Manager {target['id']} demoted in the swarm.")
elif args[:2] == ["node", "rm"]:
    require_manager()
    target = node(args[2])
    if target["role"] == "manager":
        fail(f"Error response from daemon: rpc error: code = FailedPrecondition desc = node {target['id']} is a cluster manager "
             "and is a member of the raft cluster. It must be demoted to worker before removal")
    if target["state"] != "down":
        fail(f"Error response from daemon: rpc error: code = FailedPrecondition desc = node {target['id']} is not down and can't be removed")
    swarm["nodes"].remove(target)
    save()
    print(target["id"])
else:
    fail(f"stand-in docker: unmodelled {args}")
'''

STAND_INS = ("docker", "curl", "aws", "apt-get", "systemctl", "sleep", "ip", "iptables", "modprobe", "image-pull", "usermod")
MOVED_PREFIXES = ("/etc/dpc/", "/usr/local/lib/dpc/", "/usr/local/sbin/", "/var/lib/dpc")
"""Fixed paths of the node's files, moved under each machine's directory."""


def install_stand_ins(root: Path, source: str, commands: tuple[str, ...]) -> Path:
    """Writes one Python stand-in (chosen by the name it is called by) and links each command name to
    it in `root/bin`, the directory to put first on PATH; returns that directory."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    stand_in = root / "stand-in.py"
    stand_in.write_text(f"#!{sys.executable}\n{source}")
    stand_in.chmod(0o755)
    for command in commands:
        (bin_dir / command).symlink_to(stand_in)
    return bin_dir


@dataclass
class Machine:
    """One machine of the world: its host name, address and the files its user data writes."""

    world: World
    directory: Path
    hostname: str
    address: str

    def path(self, fixed: str) -> Path:
        return self.directory / fixed.lstrip("/")

    def start(self, script: str, *arguments: str, **extra_env: str) -> subprocess.Popen[str]:
        """Starts one of the machine's scripts (`/usr/local/sbin/<script>`) in the background."""
        env = self.world.env | {"FAKE_MACHINE": str(self.directory), "FAKE_HOSTNAME": self.hostname, "FAKE_ADDRESS": self.address} | extra_env
        return subprocess.Popen(
            [str(self.path(f"/usr/local/sbin/{script}")), *arguments], env=env, cwd=self.directory, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def is_leader(self) -> bool:
        """Whether the model's Swarm has this machine's node as its leader (asked as a script would)."""
        env = self.world.env | {"FAKE_MACHINE": str(self.directory), "FAKE_HOSTNAME": self.hostname, "FAKE_ADDRESS": self.address}
        docker = [str(self.world.root / "bin" / "docker"), "node", "inspect", "self", "--format", "{{.ManagerStatus.Leader}}"]
        return subprocess.run(docker, env=env, capture_output=True, text=True, check=True, timeout=30).stdout.strip() == "true"

    def run(self, script: str, *arguments: str, timeout: float = 240, **extra_env: str) -> subprocess.CompletedProcess[str]:
        process = self.start(script, *arguments, **extra_env)
        stdout, stderr = process.communicate(timeout=timeout)
        self.world.outputs.append(stdout + stderr)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


class World:
    """A Swarm state file, the stand-ins, and the machines created so far."""

    def __init__(self, root: Path, aws_cli: Path, endpoint: str, aws_env: dict[str, str]) -> None:
        self.root = root
        self.machines: dict[str, Machine] = {}
        self.outputs: list[str] = []
        bin_dir = install_stand_ins(root, _STAND_IN, STAND_INS)
        (root / "swarm.json").write_text(json.dumps({"tokens": None, "nodes": [], "leader": None, "splits": 0}))
        self.env = aws_env | {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "FAKE_WORLD": str(root),
            "FAKE_AWS_CLI": str(aws_cli),
            "FAKE_AWS_ENDPOINT": endpoint,
            "LC_ALL": "C.UTF-8",
        }

    def boot(self, hostname: str, address: str, user_data: str) -> Machine:
        """A new machine (a replacement gets a new directory and engine) with the files of its user
        data. Its dpc-image-pull (engineer D's, tested on its own) is a stub that only records it ran."""
        generation = sum(1 for name in self.machines if name.startswith(f"{hostname}#")) + 1
        directory = self.root / "machines" / f"{hostname}-{generation}"
        for entry in yaml.safe_load(user_data)["write_files"]:
            content: str = entry["content"]
            for prefix in MOVED_PREFIXES:
                content = content.replace(prefix, f"{directory}{prefix}")
            target = directory / entry["path"].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            target.chmod(int(entry["permissions"], 8))
        pull = directory / "usr/local/sbin/dpc-image-pull"
        pull.write_text(f"#!/bin/sh\nexec {self.root / 'bin' / 'image-pull'}\n")
        machine = Machine(self, directory, hostname, address)
        self.machines[f"{hostname}#{generation}"] = machine
        return machine

    @property
    def swarm(self) -> dict[str, Any]:
        return json.loads((self.root / "swarm.json").read_text())

    def kill(self, machine: Machine) -> None:
        """The machine is gone: its node is Down (and unreachable, if a manager)."""
        swarm = self.swarm
        node_id = json.loads((machine.directory / "engine.json").read_text())["node"]
        for node in swarm["nodes"]:
            if node["id"] == node_id:
                node["state"] = "down"
        (self.root / "swarm.json").write_text(json.dumps(swarm, indent=1))

    def inject(self, failure: str, count: int) -> None:
        """The next `count` calls fail: `aws-outage`, `apt-failures` or `join-failures`."""
        (self.root / failure).write_text(str(count))

    def calls(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.root / "calls.jsonl").read_text().splitlines()]


def tokens_in(text: str, tokens: dict[str, str]) -> list[str]:
    """The roles whose join token appears in `text`."""
    return [role for role, token in tokens.items() if token in text]
