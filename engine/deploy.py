"""The database stack onto a running Swarm through the Engine API: the overlay networks, the
secrets and configs, then every service, as `dpc.swarm_spec` translates them; then the wait until
the cluster is healthy. Re-running it updates what changed (a service spec, a config's content)
and leaves the rest alone, as `pulumi up` would.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets as random
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any, Protocol

import yaml

from dpc.cluster import CA_SECRET, ClusterLayout, Paths, Port
from dpc.database_files import plain_configs
from dpc.services import database_services
from dpc.settings import Settings
from dpc.swarm_spec import (
    Converge,
    EndpointMode,
    EngineRefs,
    ObjectRef,
    SwarmNetwork,
    SwarmService,
    content_name,
    engine_network_spec,
    engine_service_spec,
    secret_name,
    swarm_network,
    swarm_service,
)
from dpc.tiers import TIERS
from dpc.topology import derive
from engine.api import Engine, EngineError
from engine.nodes import SwarmNode

POLL_INTERVAL = 1.0
EXEC_TIMEOUT = 30.0


@dataclass(frozen=True)
class StackObjects:
    """Everything the run creates on the Swarm, decided before anything is created."""

    layout: ClusterLayout
    networks: tuple[SwarmNetwork, ...]
    services: tuple[SwarmService, ...]
    configs: Mapping[str, str]
    left_out: Mapping[str, str]
    """Services not deployed, with the reason (a vendor image that cannot be had here)."""
    after: Mapping[str, str]
    """Service → the service it is updated after (`ServiceSpec.after`): the order `roll` keeps."""


def stack_objects(settings: Settings, *, encrypted_overlays: bool, endpoint_mode: EndpointMode, missing_images: Mapping[str, str]) -> StackObjects:
    """The Swarm objects of the stack's services placed on the cluster's labelled nodes, as the
    cloud stacks place them. `encrypted_overlays` False only where the kernel cannot (the caller
    has run the preflight that says so); services whose image is in `missing_images` are left out.
    """
    topology = derive(settings)
    layout = topology.layout
    configs = plain_configs(settings, layout, None)
    specs = database_services(topology, "cluster")
    services = tuple(swarm_service(spec, configs, endpoint_mode) for spec in specs if spec.image not in missing_images)
    left_out = {spec.name: f"its image {spec.image} cannot be had: {missing_images[spec.image]}" for spec in specs if spec.image in missing_images}
    networks = tuple(swarm_network(tier if encrypted_overlays else replace(tier, encrypted=False)) for tier in TIERS)
    after = {spec.name: spec.after for spec in specs if spec.after}
    return StackObjects(layout, networks, services, configs, left_out, after)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _ensure_object(manager: Engine, kind: str, name: str, content: str, labels: Mapping[str, str]) -> ObjectRef:
    """A secret or config of this name and content: made if absent (their names change with their content)."""
    found = manager.by_name(kind, name)
    if found is None:
        created: dict[str, Any] = manager.post(f"/{kind}/create", {"Name": name, "Data": _b64(content), "Labels": dict(labels)})
        return ObjectRef(str(created["ID"]), name)
    return ObjectRef(str(found["ID"]), name)


def _engine_refs(manager: Engine, objects: StackObjects, secret_values: Mapping[str, str], images: Mapping[str, str], naming_key: str) -> EngineRefs:
    """The engine's ids of the networks, secrets and configs the services use, each made if absent."""
    labels = {"dpc.stack": "local"}
    networks: dict[Any, str] = {}
    for network in objects.networks:
        found = manager.by_name("networks", network.name)
        networks[network.tier] = str(found["Id"]) if found else str(manager.post("/networks/create", engine_network_spec(network))["Id"])
    used = {f.name for service in objects.services for f in (*service.secrets, *service.configs)}
    refs: dict[str, ObjectRef] = {}
    for name in sorted(used):
        if name in objects.configs:
            refs[name] = _ensure_object(manager, "configs", content_name(name, objects.configs[name]), objects.configs[name], labels)
        else:
            refs[name] = _ensure_object(manager, "secrets", secret_name(name, secret_values[name], naming_key), secret_values[name], labels)
    return EngineRefs(images=images, networks=networks, objects=refs)


def deploy(manager: Engine, objects: StackObjects, secret_values: Mapping[str, str], images: Mapping[str, str], naming_key: str) -> None:
    """Creates or updates every network, secret, config and service on the Swarm of `manager`."""
    engine_refs = _engine_refs(manager, objects, secret_values, images, naming_key)
    for service in objects.services:
        spec = engine_service_spec(service, engine_refs)
        found = manager.by_name("services", service.name)
        if found is None:
            manager.post("/services/create", spec)
        elif not covers(found["Spec"], spec):
            manager.post(f"/services/{found['ID']}/update", spec, {"version": str(found["Version"]["Index"])})


def changes(manager: Engine, objects: StackObjects, secret_values: Mapping[str, str], images: Mapping[str, str], naming_key: str) -> bool:
    """Whether `deploy` would update a service of `objects` that exists (its spec does not cover the translation's)."""
    refs = _engine_refs(manager, objects, secret_values, images, naming_key)
    for service in objects.services:
        found = manager.by_name("services", service.name)
        if found is not None and not covers(found["Spec"], engine_service_spec(service, refs)):
            return True
    return False


def covers(actual: Any, wanted: Any) -> bool:
    """Whether an engine's spec says everything `wanted` says. The engine fills in defaults and
    leaves out empty values (Go's omitempty: false, 0, "", empty lists and maps), so what it returns
    is compared with what was sent, not equal to it.
    """
    if isinstance(wanted, dict):
        if not isinstance(actual, dict):
            return False
        return all(covers(actual.get(key), value) if key in actual else not value for key, value in wanted.items())  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(actual) == len(wanted) and all(covers(a, w) for a, w in zip(actual, wanted, strict=True))  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
    return actual == wanted


@dataclass(frozen=True)
class Switchover:
    """A planned switchover `roll` made before it replaced the leader (time.time())."""

    leader: str
    candidate: str
    started: float
    ended: float
    """When Patroni showed the candidate leading."""


@dataclass(frozen=True)
class Rolled:
    """A service `roll` changed: when its new spec was sent and when it had converged (time.time()),
    and the switchover away from it first when it led the Patroni cluster.
    """

    service: str
    sent_at: float
    converged_at: float
    switchover: Switchover | None = None

    @property
    def began_at(self) -> float:
        """When `roll` began on it: its switchover's start, or the moment its spec was sent."""
        return self.switchover.started if self.switchover else self.sent_at


class UpdateGivenUpError(RuntimeError):
    """Swarm gave a service's update up: a new task failed within the update's monitor window (a
    health check that never passes, a process that exits) and Swarm rolled the service back, or
    paused. pulumi-docker's converge wait fails `pulumi up` the same way.
    """

    def __init__(self, service: str, state: str, message: str) -> None:
        super().__init__(f"{service}: update {state}: {message}")
        self.service = service
        self.state = state


UPDATE_GIVEN_UP = ("rollback_completed", "paused", "rollback_paused")
"""The `UpdateStatus.State`s in which Swarm no longer moves a service towards the spec it was sent."""


def _runs_template(task: Mapping[str, Any], template: Mapping[str, Any]) -> bool:
    """Whether a task was made from the service's current task template. The engine shows the
    template with its `Runtime`, and the tasks' copies of it without.
    """
    return task["Spec"] == {key: value for key, value in template.items() if key != "Runtime"}


def engine_time(stamp: str) -> float:
    """An Engine API timestamp (RFC 3339, to the nanosecond) in time.time()'s terms."""
    return datetime.datetime.fromisoformat(stamp).timestamp()


def converged(manager: Engine, name: str) -> bool:
    """Whether a replicated service has converged on its current spec: as many tasks running as it
    has replicas (Swarm calls a task with a health check running only once the check has passed),
    each made from the current spec and running for the update's monitor period, Swarm's own
    window in which a task's end fails the update. Raises UpdateGivenUpError once Swarm has given
    the update up.

    Stricter than pulumi-docker's converge wait, which counts the tasks running at one look. A task
    whose health check fails is stopped, and when its process exits 0 on SIGTERM (Patroni does)
    Swarm shows it running for an instant before complete: measured on the local Swarm, a wait
    without the monitor period took that for converged and sent the next member the failing image.
    """
    service: dict[str, Any] | None = manager.by_name("services", name)
    if service is None:
        raise LookupError(f"no service {name}")
    status: dict[str, Any] = service.get("UpdateStatus") or {}
    state = str(status.get("State", ""))
    if state in UPDATE_GIVEN_UP:
        raise UpdateGivenUpError(name, state, str(status.get("Message", "")))
    if state == "rollback_started":
        return False
    template = service["Spec"]["TaskTemplate"]
    settled_before = time.time() - service["Spec"].get("UpdateConfig", {}).get("Monitor", 0) / 1e9
    tasks = manager.filtered("/tasks", service=[name], **{"desired-state": ["running"]})
    current = [
        task for task in tasks
        if task["Status"]["State"] == "running" and _runs_template(task, template) and engine_time(task["Status"]["Timestamp"]) <= settled_before
    ]  # fmt: skip
    return len(current) == service["Spec"]["Mode"]["Replicated"]["Replicas"]


def roll(
    manager: Engine, objects: StackObjects, secret_values: Mapping[str, str], images: Mapping[str, str], naming_key: str, *,
    patroni: PatroniControl | None = None,
) -> list[Rolled]:
    """`deploy`, in the order `pulumi up` keeps in the cloud: a service with `ServiceSpec.after` is
    sent only once that service has converged, so the members of a quorum (etcd's, Patroni's) are
    replaced one at a time, and every other service at once. A replicated service that changed is
    waited for with pulumi-docker's bounds (`SwarmService.converge`: a first look after its delay,
    then until it has `converged`, within its timeout); a global one is not. Raises
    UpdateGivenUpError when Swarm gives an update up, as `pulumi up` fails then, without sending
    anything that comes after it. The services it changed, in the order they converged.

    With `patroni`, the Patroni members are chained by their roles when the roll starts instead
    (`leader_last`), and a member that leads when its turn comes is switched away from first
    (`hand_over`): a roll of every member costs the clients one planned switchover, to a standby
    already on the new spec, and no failover (design §11 (new)).
    """
    names = {service.name for service in objects.services}
    after = dict(objects.after)
    members = [member.name for member in objects.layout.patroni if member.name in names]
    if patroni is not None and members:
        order = leader_last(members, patroni.cluster())
        after = {name: follows for name, follows in after.items() if name not in members} | dict(zip(order[1:], order, strict=False))
    pending = list(objects.services)
    waiting: dict[str, tuple[Converge, float, Switchover | None]] = {}
    settled: set[str] = set()
    rolled: list[Rolled] = []
    while pending or waiting:
        for service in [s for s in pending if after.get(s.name) not in names - settled]:
            pending.remove(service)
            alone = replace(objects, services=(service,))
            switched = None
            if patroni is not None and service.name in members and changes(manager, alone, secret_values, images, naming_key):
                switched = hand_over(patroni, service.name)
            before = manager.by_name("services", service.name)
            deploy(manager, alone, secret_values, images, naming_key)
            after_sent = manager.by_name("services", service.name)
            unchanged = before is not None and after_sent is not None and before["Version"]["Index"] == after_sent["Version"]["Index"]
            if service.converge is None or unchanged:
                settled.add(service.name)
            else:
                waiting[service.name] = (service.converge, time.time(), switched)
        for name, (converge, sent_at, switched) in list(waiting.items()):
            elapsed = time.time() - sent_at
            if elapsed >= converge.delay_seconds and converged(manager, name):
                rolled.append(Rolled(name, sent_at, time.time(), switched))
                settled.add(name)
                del waiting[name]
            elif elapsed >= converge.timeout_seconds:
                raise TimeoutError(f"{name} has not converged {converge.timeout_seconds}s after its update was sent")
        if waiting:
            time.sleep(POLL_INTERVAL)
    return rolled


SWITCHOVER_TIMEOUT = 60.0
"""Seconds from asking Patroni for a switchover until the candidate leads (Patroni itself gives a
switchover up after about its ttl, 20 s)."""

ROLL_RANK = {"replica": 0, "sync_standby": 1, "leader": 2}
"""Patroni roles in the order `leader_last` replaces them; a member Patroni does not show comes first."""


class SwitchoverError(RuntimeError):
    """A leader `roll` would have to stop could not be switched away from: no synchronous standby
    streams, or Patroni refused or did not finish the switchover. `roll` stops there, as on a
    failed update, rather than stop a leader and make the clients wait for a failover.
    """


class PatroniControl(Protocol):
    """What `roll` needs of the Patroni cluster: its `/cluster` document, and a planned switchover."""

    def cluster(self) -> Mapping[str, Any]:
        """Patroni's `/cluster` document, from any member that answers."""
        ...

    def switchover(self, leader: str, candidate: str) -> None:
        """Asks Patroni to hand the leadership from `leader` to `candidate` now."""
        ...


def leader_last(members: Sequence[str], cluster: Mapping[str, Any]) -> list[str]:
    """The members in the order a roll replaces them: the asynchronous replicas (a stopped one holds
    no commit back), then the synchronous standby, the leader last; in their static order within a
    role. By the leader's turn every other member runs the new spec, so the synchronous standby it
    is switched over to (`hand_over`) is an updated one, and the leadership changes once.
    """
    roles = {str(member["name"]): str(member["role"]) for member in cluster["members"]}
    return sorted(members, key=lambda name: ROLL_RANK.get(roles.get(name, ""), -1))


def leader_of(cluster: Mapping[str, Any]) -> str | None:
    """The member that leads and runs in Patroni's `/cluster` document, if any."""
    return next((str(m["name"]) for m in cluster["members"] if m["role"] == "leader" and m.get("state") == "running"), None)


def hand_over(patroni: PatroniControl, member: str) -> Switchover | None:
    """A planned switchover away from `member` if it leads, to the streaming synchronous standby
    (Patroni in synchronous mode accepts no other candidate), waited for until that standby leads;
    None when `member` does not lead. A stop-first update then stops a replica, not the leader.
    """
    cluster = patroni.cluster()
    if leader_of(cluster) != member:
        return None
    standbys = [str(m["name"]) for m in cluster["members"] if m["role"] == "sync_standby" and m.get("state") == "streaming"]
    if not standbys:
        raise SwitchoverError(f"{member} leads and no synchronous standby streams: {cluster['members']}")
    started = time.time()
    patroni.switchover(member, standbys[0])
    deadline = time.monotonic() + SWITCHOVER_TIMEOUT
    while (leading := leader_of(patroni.cluster())) != standbys[0]:
        if time.monotonic() >= deadline:
            raise SwitchoverError(f"{standbys[0]} does not lead {SWITCHOVER_TIMEOUT:.0f}s after a switchover from {member} (leader: {leading})")
        time.sleep(POLL_INTERVAL)
    return Switchover(member, standbys[0], started, time.time())


def new_naming_key() -> str:
    """The key that keeps secrets' names from revealing a digest of their content (see secret_name)."""
    return random.token_hex(16)


@dataclass(frozen=True)
class TaskState:
    """A task the Swarm wants running, as its manager and its node's engine report it."""

    service: str
    node: str
    state: str
    container: str
    health: str
    """The container's health check: healthy, starting, unhealthy, or none."""


def nodes_by_id(nodes: Sequence[SwarmNode]) -> dict[str, SwarmNode]:
    """Swarm node id → node, for the nodes whose engine answers (a powered-off one is left out)."""
    by_id: dict[str, SwarmNode] = {}
    for node in nodes:
        with suppress(OSError, EngineError):
            by_id[str(node.engine.get("/info")["Swarm"]["NodeID"])] = node
    return by_id


def task_states(manager: Engine, nodes: Sequence[SwarmNode], service: str) -> list[TaskState]:
    """The tasks the Swarm wants running for `service`, with their containers' health as their node's
    engine sees it; a node whose engine does not answer (powered off) is shown as "?".
    """
    by_id = nodes_by_id(nodes)
    states: list[TaskState] = []
    for task in manager.filtered("/tasks", service=[service], **{"desired-state": ["running"]}):
        node = by_id.get(str(task.get("NodeID", "")))
        container = str(task["Status"].get("ContainerStatus", {}).get("ContainerID", ""))
        health = "none"
        if node is not None and container:
            try:
                inspected = node.engine.get(f"/containers/{container}/json")
                health = str(inspected["State"].get("Health", {}).get("Status", "none"))
            except EngineError:
                health = "gone"
        states.append(TaskState(service, node.name if node else "?", str(task["Status"]["State"]), container, health))
    return states


def nodes_running(manager: Engine, nodes: Sequence[SwarmNode], service: str) -> list[SwarmNode]:
    """The nodes where `service` has a running task (where its ports are published, in host mode)."""
    running = {s.node for s in task_states(manager, nodes, service) if s.state == "running"}
    return [n for n in nodes if n.name in running]


def container_of(nodes: Sequence[SwarmNode], manager: Engine, service: str) -> tuple[SwarmNode, str]:
    """A running container of `service` and its node."""
    by_name = {node.name: node for node in nodes}
    for state in task_states(manager, nodes, service):
        if state.state == "running" and state.container and state.node in by_name:
            return by_name[state.node], state.container
    raise LookupError(f"no running task of {service} on a known node")


def exec_in(node: SwarmNode, container: str, argv: Sequence[str], stdin: str = "", timeout: float = EXEC_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """A command in a running container, as the docker CLI runs it."""
    command = ["docker", "-H", node.engine.host, "exec", "-i", container, *argv]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


PATRONI_GET_PROBE = f"""
import json, ssl, sys, urllib.request
context = ssl.create_default_context(cafile={Paths().secret(CA_SECRET)!r})
print(json.dumps(json.load(urllib.request.urlopen("https://localhost:{Port.PATRONI_API}" + sys.argv[1], context=context, timeout=5))))
"""
"""A GET of Patroni's REST API (the path its argument), from inside a member, verified against the CA."""


def patroni_get(nodes: Sequence[SwarmNode], manager: Engine, member: str, path: str) -> dict[str, Any]:
    """The document of Patroni's REST API at `path` (`/cluster`, `/patroni`), as `member` answers it."""
    node, container = container_of(nodes, manager, member)
    result = exec_in(node, container, ["python3", "-", path], PATRONI_GET_PROBE)
    if result.returncode != 0:
        raise RuntimeError(f"Patroni's REST API on {member}: {result.stderr.strip()[-400:]}")
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def patroni_cluster(nodes: Sequence[SwarmNode], manager: Engine, member: str) -> dict[str, Any]:
    """Patroni's `/cluster` document, as `member` reports it."""
    return patroni_get(nodes, manager, member, "/cluster")


PATRONI_SWITCHOVER = f"""
import base64, json, ssl, sys, urllib.error, urllib.request
asked = json.load(sys.stdin)
context = ssl.create_default_context(cafile={Paths().secret(CA_SECRET)!r})
headers = {{"Content-Type": "application/json"}}
if asked["credentials"]:
    headers["Authorization"] = "Basic " + base64.b64encode(asked["credentials"].encode()).decode()
body = json.dumps({{"leader": asked["leader"], "candidate": asked["candidate"]}}).encode()
request = urllib.request.Request("https://localhost:{Port.PATRONI_API}/switchover", data=body, headers=headers, method="POST")
try:
    with urllib.request.urlopen(request, context=context, timeout=asked["timeout"]) as response:
        print(response.status, response.read().decode())
except urllib.error.HTTPError as error:
    sys.exit(f"{{error.code}} {{error.read().decode()}}")
"""
"""Patroni's `POST /switchover`, from inside the leader's container over TLS verified against the
CA; the request (with the REST credentials) comes on stdin, never on a command line."""


def rest_credentials(patroni_yml: str) -> str | None:
    """`user:password` of Patroni's REST API from a member's patroni.yml, or None when it sets none."""
    config: dict[str, Any] = yaml.safe_load(patroni_yml)
    restapi: dict[str, Any] = config.get("restapi") or {}
    authentication: dict[str, str] | None = restapi.get("authentication")
    return f"{authentication['username']}:{authentication['password']}" if authentication else None


@dataclass(frozen=True)
class MemberApi:
    """Patroni's REST API as `roll` uses it on the local Swarm: from inside the members' containers
    (the API listens on the data overlay, which the machine does not reach), TLS verified against
    the cluster CA, a switchover with the REST credentials of the leader's own patroni.yml.
    """

    manager: Engine
    nodes: Sequence[SwarmNode]
    configs: Mapping[str, str]
    """Member → its patroni.yml."""

    def cluster(self) -> dict[str, Any]:
        """Patroni's `/cluster` document, from the first member that answers."""
        problems: list[str] = []
        for member in self.configs:
            try:
                return patroni_cluster(self.nodes, self.manager, member)
            except (RuntimeError, LookupError, ValueError, OSError, subprocess.SubprocessError) as error:  # EngineError is a RuntimeError
                problems.append(f"{member}: {error}")
        raise RuntimeError(f"no Patroni member answers: {problems}")

    def switchover(self, leader: str, candidate: str) -> None:
        """Asks the leader's REST API to switch over to `candidate`; raises SwitchoverError when Patroni refuses."""
        node, container = container_of(self.nodes, self.manager, leader)
        asked = {"leader": leader, "candidate": candidate, "credentials": rest_credentials(self.configs[leader]), "timeout": SWITCHOVER_TIMEOUT}
        result = exec_in(node, container, ["python3", "-c", PATRONI_SWITCHOVER], json.dumps(asked), timeout=SWITCHOVER_TIMEOUT + EXEC_TIMEOUT)
        if result.returncode != 0:
            raise SwitchoverError(f"Patroni refused the switchover from {leader} to {candidate}: {(result.stderr or result.stdout).strip()[-400:]}")


def unhealthy(manager: Engine, nodes: Sequence[SwarmNode], objects: StackObjects) -> list[str]:
    """What keeps the stack from being healthy now (empty when healthy): every replicated service
    at its count of running tasks, every global one on every node, every health check passing,
    and Patroni's cluster with a leader, a synchronous standby and a streaming replica.
    """
    problems: list[str] = []
    for service in objects.services:
        states = task_states(manager, nodes, service.name)
        running = [s for s in states if s.state == "running" and s.health in ("healthy", "none")]
        expected = len(nodes) if service.replicas is None else service.replicas
        if len(running) != expected:
            seen = ", ".join(f"{s.node}:{s.state}/{s.health}" for s in states) or "no task"
            problems.append(f"{service.name}: {len(running)}/{expected} running and healthy ({seen})")
    if not problems:
        members = patroni_cluster(nodes, manager, objects.layout.patroni[0].name)["members"]
        roles = sorted(str(m["role"]) for m in members if m.get("state") in ("running", "streaming"))
        if roles != ["leader", "replica", "sync_standby"]:
            seen = [(m["name"], m["role"], m.get("state")) for m in members]
            problems.append(f"Patroni members {seen}: want a leader, a sync_standby and a streaming replica")
    return problems


def wait_until_healthy(manager: Engine, nodes: Sequence[SwarmNode], objects: StackObjects, timeout: float) -> float:
    """Seconds until the stack is healthy; on timeout the error says what is not."""
    start = time.monotonic()
    while True:
        try:
            problems = unhealthy(manager, nodes, objects)
        except (RuntimeError, LookupError, OSError, EngineError) as error:
            problems = [str(error)]
        if not problems:
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            raise TimeoutError(f"the stack is not healthy after {timeout:.0f}s: " + "; ".join(problems))
        time.sleep(POLL_INTERVAL)
