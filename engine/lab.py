"""The local Swarm: the stack's nodes as engines in network namespaces on this machine, the
project's images built and given to them, the database stack deployed and healthy.

`up` is idempotent: a second run finds the engines running and only deploys what changed. `down`
stops what `up` started and deletes its namespaces and its directory, and nothing else (a builder
engine that was already running is left alone).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dpc.services import BUILT_IMAGES, Uid, database_services, patroni_config_secret
from dpc.settings import Settings
from dpc.topology import derive
from engine.api import Engine
from engine.deploy import MemberApi, StackObjects, changes, new_naming_key, roll, stack_objects, wait_until_healthy
from engine.deploy import deploy as deploy_stack
from engine.images import base_image, build_images, image_store, vendor_images_missing
from engine.netns import Network, unmount_under, unused_subnet
from engine.nodes import (
    ENGINE_START_TIMEOUT,
    HostDir,
    SwarmNode,
    form_swarm,
    join_swarm,
    label_node,
    power_off,
    run_dirs,
    start_engine,
    start_engines,
    stop_engines,
    swarm_node,
    wait_until_ready,
)
from engine.secrets import secret_contents
from providers.common.database import image_tags

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREFLIGHT = PROJECT_ROOT / "components" / "scripts" / "dpc-kernel-preflight"
LOCAL_PREFIX = "dpclocal"
"""What the local Swarm's namespaces are named after (`dpclocal-<stack>-<node>`)."""
SUBNET_CANDIDATES = ("10.236.0.0/24", "10.237.0.0/24", "172.31.236.0/24")
SWARM_READY_TIMEOUT = 120.0
NODE_DOWN_TIMEOUT = 60.0
"""Seconds the managers may take to see a powered-off node down (its heartbeat period is 5 s)."""
HEALTHY_TIMEOUT = 600.0
CERTIFICATE_VALIDITY = datetime.timedelta(days=365)
MACHINE_DOCKER_SOCKET = Path("/var/run/docker.sock")

Say = Callable[[str], None]


@dataclass(frozen=True)
class Preflight:
    """Whether this kernel carries encrypted overlays, by the node bootstrap's own check."""

    encrypted_overlays: bool
    report: str


def kernel_preflight() -> Preflight:
    """Runs the node bootstrap's preflight here: the local Swarm encrypts its overlays only where
    it says the kernel can (where it cannot, encrypted overlays drop all traffic between nodes).
    """
    result = subprocess.run(["bash", str(PREFLIGHT)], capture_output=True, text=True, timeout=60, check=False)
    return Preflight(result.returncode == 0, result.stderr.strip())


@contextmanager
def builder_engine(root: Path, say: Say) -> Generator[Engine, None, None]:
    """The engine images are built on: DOCKER_HOST's or the machine's own if one answers, else one
    started here for the build and stopped after it (no bridge, no iptables: builds use the host's network).
    """
    configured = os.environ.get("DOCKER_HOST", "")
    candidates = [Path(configured.removeprefix("unix://"))] if configured.startswith("unix://") else []
    for socket_path in [*candidates, MACHINE_DOCKER_SOCKET]:
        engine = Engine(socket_path, "builder")
        if engine.responds():
            say(f"building on the Docker engine at {socket_path}")
            yield engine
            return
    builder_root = root / "builder"
    builder_root.mkdir(parents=True, exist_ok=True)
    run_dir = Path("/run/dpc") / f"builder-{os.getpid()}"
    say(f"no Docker engine answers; starting one for the build in {builder_root}")
    with (builder_root / "dockerd.log").open("ab") as log:
        process = subprocess.Popen(
            ["dockerd", f"--data-root={builder_root / 'data'}", f"--exec-root={run_dir}", f"--host=unix://{builder_root / 'docker.sock'}",
             "--bridge=none", "--iptables=false", "--ip-masq=false", "--log-level=warn"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        engine = Engine(builder_root / "docker.sock", "builder")
        engine.wait_until_responding(60)
        yield engine
    finally:
        process.terminate()
        process.wait(timeout=60)
        unmount_under(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def host_directories(settings: Settings) -> dict[str, list[HostDir]]:
    """Each node's volume mount points, as the composition plans the cloud's volumes, owned by the
    user of the services that bind them (PostgreSQL's: Patroni and the backup agent).
    """
    directories: dict[str, list[HostDir]] = {}
    for volume in derive(settings).volumes:
        directories.setdefault(volume.node, []).append(HostDir(volume.mount_point, Uid.POSTGRES))
    return directories


@dataclass
class Deployment:
    """A running local Swarm with the stack deployed on it."""

    network: Network
    nodes: list[SwarmNode]
    objects: StackObjects
    secret_values: dict[str, str]
    preflight: Preflight
    timings: dict[str, float]
    """Seconds each phase of `bring_up` took."""
    images: dict[str, str]
    """The project's images as the services run them, by key."""
    naming_key: str

    @property
    def manager(self) -> Engine:
        """manager-1's engine, where the Swarm is managed from."""
        return next(n.engine for n in self.nodes if n.node.swarm_init)

    def node(self, name: str) -> SwarmNode:
        """The node of this name (`worker-2`)."""
        return next(n for n in self.nodes if n.name == name)

    def patroni(self) -> MemberApi:
        """Patroni's REST API of the members, for `engine.deploy.roll` to replace the leader last."""
        return MemberApi(self.manager, self.nodes, {m.name: self.secret_values[patroni_config_secret(m)] for m in self.objects.layout.patroni})


def replace_node(deployment: Deployment, settings: Settings, name: str) -> SwarmNode:
    """Node `name` lost and a new machine put in its place, as the cloud replaces one (same name,
    address and labels; new, empty disks): the node powers off, the managers see it down and it
    is removed from the Swarm (`docker node rm --force`, as an operator does for a machine that is
    gone), its engine's data and its volumes' directories deleted; a fresh engine, seeded from the
    image store, joins with the node's labels. Swarm then places the tasks pinned to those labels
    there again. The new node, once it is in the Swarm.
    """
    lost = deployment.node(name)
    manager = deployment.manager
    node_id = str(lost.engine.get("/info")["Swarm"]["NodeID"])
    power_off(lost.root)
    deadline = time.monotonic() + NODE_DOWN_TIMEOUT
    while manager.get(f"/nodes/{node_id}")["Status"]["State"] != "down":
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the managers do not see {name} down {NODE_DOWN_TIMEOUT:.0f}s after it powered off")
        time.sleep(0.5)
    manager.delete(f"/nodes/{node_id}", {"force": "true"})
    nodes_root = lost.root.parent
    for gone in [lost.root, *(d for d in run_dirs(nodes_root) if d.name.endswith(f"-{name}"))]:
        problems = unmount_under(gone)
        if problems:
            raise RuntimeError(f"the lost {name}'s mounts: {problems}")
        shutil.rmtree(gone)
    new = start_engine(deployment.network, lost.node, nodes_root, nodes_root.parent / "store" / "data", host_directories(settings).get(name, ()))
    new.engine.wait_until_responding(ENGINE_START_TIMEOUT)
    join_swarm(next(n for n in deployment.nodes if n.node.swarm_init), new)
    label_node(manager, new)
    deployment.nodes[deployment.nodes.index(lost)] = new
    return new


def _state(root: Path) -> dict[str, object]:
    path = root / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _generated_secrets(settings: Settings, root: Path, objects: StackObjects) -> tuple[dict[str, str], str]:
    """The stack's secret values and naming key: generated at the first `up`, kept (owner-only)
    under `root` so that a later `up` changes nothing it does not have to.
    """
    path = root / "secrets.json"
    if path.exists():
        kept = json.loads(path.read_text())
        return dict(kept["values"]), str(kept["naming_key"])
    values = secret_contents(objects.layout, f"dpc {settings.environment} local CA", CERTIFICATE_VALIDITY)
    key = new_naming_key()
    path.touch(mode=0o600)
    path.write_text(json.dumps({"values": values, "naming_key": key}, sort_keys=True))
    return values, key


def _images(settings: Settings, root: Path, say: Say) -> tuple[dict[str, str], dict[str, str]]:
    """The project's images built, and every image the nodes run in the image store (made again
    only when that set changes); the built images by key, and the vendor images left out, with why.
    """
    vendor = sorted({spec.image for spec in database_services(derive(settings), "cluster")} - set(BUILT_IMAGES))
    with builder_engine(root, say) as builder:
        base = base_image(builder, root / "cache", say)
        built = build_images(builder, image_tags(), base, root / "build.log")
        missing = vendor_images_missing(builder, vendor)
        for image, reason in missing.items():
            say(f"leaving out the services of {image}: it cannot be pulled here ({reason})")
        wanted = sorted([*built.values(), *(image for image in vendor if image not in missing)])
        if _state(root).get("store_images") != wanted:
            (root / "store").mkdir(exist_ok=True)
            image_store(builder, wanted, root / "store")
            _save_state(root, store_images=wanted)
    return built, missing


def _save_state(root: Path, **values: object) -> None:
    (root / "state.json").write_text(json.dumps(_state(root) | values, sort_keys=True))


def _nodes(settings: Settings, root: Path, stack: str) -> tuple[Network, list[SwarmNode]]:
    """The nodes' engines in their Swarm: those of an earlier `up` if they all still answer, else
    new ones (the namespaces and engines of a broken earlier run are removed first).
    """
    nodes = derive(settings).nodes
    state = _state(root)
    if "subnet" in state:
        network = Network(ipaddress.IPv4Network(str(state["subnet"])), prefix=LOCAL_PREFIX, tag=stack)
        network.adopt([node.name for node in nodes])
        running = [swarm_node(network, node, root / "nodes") for node in nodes]
        if all(n.engine.responds() for n in running):
            return network, running
        stop_engines([n.root for n in running])
        network.delete_leftovers()
    network = Network(unused_subnet(SUBNET_CANDIDATES), prefix=LOCAL_PREFIX, tag=stack)
    started = start_engines(network, nodes, root / "nodes", root / "store" / "data", host_directories(settings))
    _save_state(root, subnet=str(network.subnet))
    form_swarm(started)
    manager = next(n.engine for n in started if n.node.swarm_init)
    wait_until_ready(manager, len(started), SWARM_READY_TIMEOUT)
    return network, started


def bring_up(settings: Settings, root: Path, stack: str, say: Say) -> Deployment:
    """Builds the images, starts the nodes' engines and their Swarm (or finds those of an earlier
    run), deploys the stack (changing only what changed) and waits until it is healthy.
    """
    timings: dict[str, float] = {}
    start = time.monotonic()

    def lap(name: str) -> None:
        timings[name] = round(time.monotonic() - start - sum(timings.values()), 1)

    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    preflight = kernel_preflight()
    if not preflight.encrypted_overlays:
        say("this kernel cannot carry encrypted overlay networks (the nodes' preflight says why, below); the local Swarm's overlays are "
            "unencrypted. A cloud node with this kernel would refuse to join.\n" + preflight.report)
    built, missing = _images(settings, root, say)
    lap("images")
    network, nodes = _nodes(settings, root, stack)
    lap("swarm")
    objects = stack_objects(settings, encrypted_overlays=preflight.encrypted_overlays, endpoint_mode="dnsrr", missing_images=missing)
    values, naming_key = _generated_secrets(settings, root, objects)
    deployment = Deployment(network, nodes, objects, values, preflight, timings, built, naming_key)
    converge_stack(deployment)
    lap("deploy")
    wait_until_healthy(deployment.manager, nodes, objects, HEALTHY_TIMEOUT)
    lap("healthy")
    return deployment


def converge_stack(deployment: Deployment) -> None:
    """Sends the stack to the Swarm. The first time, every service at once: nothing runs yet. Once
    Patroni members run and a service's spec changed, as a roll (`engine.deploy.roll`): what changed
    is replaced in `pulumi up`'s order and the members leader-last, with one switchover
    (design §8.2); a deploy of every changed member at once restarted them together and failed over.
    """
    manager, objects = deployment.manager, deployment.objects
    members_run = any(manager.by_name("services", member.name) is not None for member in objects.layout.patroni)
    values, images, naming_key = deployment.secret_values, deployment.images, deployment.naming_key
    if members_run and changes(manager, objects, values, images, naming_key):
        roll(manager, objects, values, images, naming_key, patroni=deployment.patroni())
    else:
        deploy_stack(manager, objects, values, images, naming_key)


def tear_down(root: Path, stack: str) -> list[str]:
    """Powers off every node under `root` (this run's or another process's), deletes the stack's
    namespaces, then `root`; the problems met.
    """
    problems = stop_engines(sorted(p for p in (root / "nodes").glob("*") if p.is_dir()))
    problems += Network(ipaddress.IPv4Network("0.0.0.0/32"), prefix=LOCAL_PREFIX, tag=stack).delete_leftovers()
    problems += unmount_under(root)
    shutil.rmtree(root, ignore_errors=True)
    for run_dir in run_dirs(root / "nodes"):
        shutil.rmtree(run_dir, ignore_errors=True)
    return problems
