"""The Swarm's nodes on one machine: one Docker engine per node, each in its own network
namespace (engine.netns), forming one Swarm over the namespaces' veths, each node labelled as
the program labels the cloud's machines (`dpc.model.plan_nodes`, design §1.4).

Each engine has its own data root, exec root and socket under the run's directory, and is started
with `nsenter --net=` (not `ip netns exec`, which remounts /sys and hides the cgroup mounts dockerd
needs). The engines reach nothing outside the namespaces: the images are built elsewhere and loaded
into each (engine.images).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpc.model import Node, Role
from engine.api import Engine
from engine.images import seed_engine
from engine.netns import Network

ENGINE_START_TIMEOUT = 60.0
ENGINE_STOP_TIMEOUT = 30.0
SWARM_PORT = 2377


@dataclass(frozen=True)
class HostDir:
    """A directory on a node that a service binds (a cloud volume's mount point), with its owner."""

    path: str
    owner: int


@dataclass(frozen=True)
class SwarmNode:
    """One node: the program's machine (`node`), the namespace it runs in and its engine."""

    node: Node
    namespace: str
    address: str
    root: Path
    engine: Engine

    @property
    def name(self) -> str:
        """The machine's name (`manager-1`)."""
        return self.node.name


def run_dirs(root: Path) -> list[Path]:
    """The exec roots of the engines whose nodes live under `root`."""
    return sorted(Path("/run/dpc").glob(f"{_root_key(root)}-*"))


def _root_key(root: Path) -> str:
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]


def _run_dir(root: Path, name: str) -> Path:
    """The engine's exec root: short, since containerd's socket path under it must fit a sun_path."""
    return Path("/run/dpc") / f"{_root_key(root)}-{name}"


def swarm_node(network: Network, node: Node, root: Path) -> SwarmNode:
    """The node of `network` whose engine lives under `root`/<node name>."""
    return SwarmNode(node, network.namespace(node.name), network.hosts[node.name], root / node.name, Engine(root / node.name / "docker.sock", node.name))


def start_engines(network: Network, nodes: Sequence[Node], root: Path, images: Path, host_dirs: Mapping[str, Sequence[HostDir]]) -> list[SwarmNode]:
    """An engine per node in the node's namespace (created in `network` first), starting with the
    images of the data root `images` (engine.images.image_store), all answering (`start_engine`).
    """
    network.create([node.name for node in nodes])
    started = [start_engine(network, node, root, images, host_dirs.get(node.name, ())) for node in nodes]
    for started_node in started:
        started_node.engine.wait_until_responding(ENGINE_START_TIMEOUT)
    return started


def start_engine(network: Network, node: Node, root: Path, images: Path, host_dirs: Sequence[HostDir]) -> SwarmNode:
    """The node's engine started in its namespace of `network`, on a data root under `root` seeded
    with the images of `images`; not waited for.

    The engine also gets a host name (UTS namespace) and a mount namespace of its own, in which
    the node's `/mnt` is a directory of its own, holding the node's `host_dirs` (the directories the cloud's volumes are mounted on,
    made with their owners as the node bootstrap makes them): nodes do not share host paths, and
    every mount an engine makes goes away with it.
    """
    node_root = root / node.name
    seed_engine(images, node_root / "data")
    for directory in host_dirs:
        path = node_root / "mnt" / Path(directory.path).relative_to("/mnt")
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, directory.owner, directory.owner)
    (node_root / "mnt").mkdir(exist_ok=True)
    socket_path = node_root / "docker.sock"
    dockerd = [
        "dockerd",
        f"--data-root={node_root / 'data'}",
        f"--exec-root={_run_dir(root, node.name)}",
        f"--pidfile={node_root / 'data' / 'dockerd.pid'}",
        f"--host=unix://{socket_path}",
        "--log-level=warn",
        # The nodes reach no resolver outside their namespaces: Docker's embedded DNS forwards
        # names it does not know there, and each lookup would wait glibc's 5 s twice (measured:
        # 40 s more per Patroni restart, 10 s more per failover). One quick try instead.
        "--dns-opt=timeout:1",
        "--dns-opt=attempts:1",
    ]
    command = [
        "nsenter", f"--net=/run/netns/{network.namespace(node.name)}",
        "unshare", "--mount", "--propagation", "private", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL", "--",
        "sh", "-c", 'mount --bind "$0" /mnt && hostname "$1" && shift && exec "$@"', str(node_root / "mnt"), node.name, *dockerd,
    ]  # fmt: skip
    with (node_root / "dockerd.log").open("ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (node_root / "node.pid").write_text(f"{process.pid}\n")
    return swarm_node(network, node, root)


def form_swarm(nodes: Sequence[SwarmNode]) -> None:
    """manager-1 initialises the Swarm, the other managers and then every other node join it, and
    each node gets its labels; as the cloud bootstrap does it (components/scripts/dpc-swarm-bootstrap).
    """
    first = next(n for n in nodes if n.node.swarm_init)
    first.engine.post("/swarm/init", {"ListenAddr": f"{first.address}:{SWARM_PORT}", "AdvertiseAddr": f"{first.address}:{SWARM_PORT}"})
    for node in nodes:
        if node is not first:
            join_swarm(first, node)
    for node in nodes:
        label_node(first.engine, node)


def join_swarm(first: SwarmNode, node: SwarmNode) -> None:
    """`node` joins the Swarm that `first` manages, as a manager or a worker by its role."""
    tokens = first.engine.get("/swarm")["JoinTokens"]
    token = tokens["Manager"] if node.node.role is Role.MANAGER else tokens["Worker"]
    node.engine.post("/swarm/join", {
        "ListenAddr": f"{node.address}:{SWARM_PORT}", "AdvertiseAddr": f"{node.address}:{SWARM_PORT}",
        "RemoteAddrs": [f"{first.address}:{SWARM_PORT}"], "JoinToken": token,
    })  # fmt: skip


def label_node(manager: Engine, node: SwarmNode) -> None:
    """Gives the Swarm's node of `node`'s engine the program's labels for its machine (design §1.4)."""
    node_id = node.engine.get("/info")["Swarm"]["NodeID"]
    current: dict[str, Any] = manager.get(f"/nodes/{node_id}")
    spec = current["Spec"] | {"Labels": dict(node.node.labels)}
    manager.post(f"/nodes/{node_id}/update", spec, {"version": str(current["Version"]["Index"])})


def wait_until_ready(manager: Engine, expected: int, timeout: float) -> None:
    """Until `expected` nodes are Ready and Active."""
    deadline = time.monotonic() + timeout
    while True:
        nodes: list[dict[str, Any]] = manager.get("/nodes")
        ready = [n for n in nodes if n["Status"]["State"] == "ready" and n["Spec"]["Availability"] == "active"]
        if len(ready) == expected:
            return
        if time.monotonic() >= deadline:
            states = {n["Description"]["Hostname"] + "/" + n["ID"][:8]: n["Status"]["State"] for n in nodes}
            raise TimeoutError(f"{len(ready)} of {expected} Swarm nodes ready after {timeout:.0f}s: {states}")
        time.sleep(0.5)


def power_off(root: Path) -> bool:
    """Stops a node as a machine losing power: its engine, containerd and every container go at
    once. They all live in the node's PID namespace, whose init (the engine) `unshare` kills when
    it dies itself (--kill-child). False if the node was already off.
    """
    pid_file = root / "node.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    deadline = time.monotonic() + ENGINE_STOP_TIMEOUT
    while leftovers(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def stop_engines(roots: Sequence[Path]) -> list[str]:
    """Powers off every node of these roots and checks nothing of theirs is left; the problems met."""
    for root in roots:
        power_off(root)
    problems: list[str] = []
    for root in roots:
        problems += [f"{root.name}: {leftover}" for leftover in leftovers(root)]
    return problems


def leftovers(root: Path) -> list[str]:
    """Processes that still mention a node's directory (none once it is off)."""
    found: list[str] = []
    needle = str(root).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "cmdline").read_bytes():
                    found.append(f"pid {proc.name}: {(proc / 'cmdline').read_bytes().replace(bytes(1), b' ').decode(errors='replace')[:120]}")
            except OSError:
                pass
    return found
