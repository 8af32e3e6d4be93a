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
from dataclasses import dataclass, replace
from typing import Any

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


def deploy(manager: Engine, objects: StackObjects, secret_values: Mapping[str, str], images: Mapping[str, str], naming_key: str) -> None:
    """Creates or updates every network, secret, config and service on the Swarm of `manager`."""
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
    engine_refs = EngineRefs(images=images, networks=networks, objects=refs)
    for service in objects.services:
        spec = engine_service_spec(service, engine_refs)
        found = manager.by_name("services", service.name)
        if found is None:
            manager.post("/services/create", spec)
        elif not covers(found["Spec"], spec):
            manager.post(f"/services/{found['ID']}/update", spec, {"version": str(found["Version"]["Index"])})


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
class Rolled:
    """A service `roll` changed: when its new spec was sent and when it had converged (time.time())."""

    service: str
    sent_at: float
    converged_at: float


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


def roll(manager: Engine, objects: StackObjects, secret_values: Mapping[str, str], images: Mapping[str, str], naming_key: str) -> list[Rolled]:
    """`deploy`, in the order `pulumi up` keeps in the cloud: a service with `ServiceSpec.after` is
    sent only once that service has converged, so the members of a quorum (etcd's, Patroni's) are
    replaced one at a time, and every other service at once. A replicated service that changed is
    waited for with pulumi-docker's bounds (`SwarmService.converge`: a first look after its delay,
    then until it has `converged`, within its timeout); a global one is not. Raises
    UpdateGivenUpError when Swarm gives an update up, as `pulumi up` fails then, without sending
    anything that comes after it. The services it changed, in the order they converged.
    """
    names = {service.name for service in objects.services}
    pending = list(objects.services)
    waiting: dict[str, tuple[Converge, float]] = {}
    settled: set[str] = set()
    rolled: list[Rolled] = []
    while pending or waiting:
        for service in [s for s in pending if objects.after.get(s.name) not in names - settled]:
            pending.remove(service)
            before = manager.by_name("services", service.name)
            deploy(manager, replace(objects, services=(service,)), secret_values, images, naming_key)
            after = manager.by_name("services", service.name)
            unchanged = before is not None and after is not None and before["Version"]["Index"] == after["Version"]["Index"]
            if service.converge is None or unchanged:
                settled.add(service.name)
            else:
                waiting[service.name] = (service.converge, time.time())
        for name, (converge, sent_at) in list(waiting.items()):
            elapsed = time.time() - sent_at
            if elapsed >= converge.delay_seconds and converged(manager, name):
                rolled.append(Rolled(name, sent_at, time.time()))
                settled.add(name)
                del waiting[name]
            elif elapsed >= converge.timeout_seconds:
                raise TimeoutError(f"{name} has not converged {converge.timeout_seconds}s after its update was sent")
        if waiting:
            time.sleep(POLL_INTERVAL)
    return rolled


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


def task_states(manager: Engine, nodes: Sequence[SwarmNode], service: str) -> list[TaskState]:
    """The tasks the Swarm wants running for `service`, with their containers' health as their node's engine sees it."""
    by_id = {node.engine.get("/info")["Swarm"]["NodeID"]: node for node in nodes}
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
    for state in task_states(manager, nodes, service):
        if state.state == "running" and state.container:
            return next(n for n in nodes if n.name == state.node), state.container
    raise LookupError(f"no running task of {service}")


def exec_in(node: SwarmNode, container: str, argv: Sequence[str], stdin: str = "", timeout: float = EXEC_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """A command in a running container, as the docker CLI runs it."""
    command = ["docker", "-H", node.engine.host, "exec", "-i", container, *argv]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


PATRONI_CLUSTER_PROBE = f"""
import json, ssl, urllib.request
context = ssl.create_default_context(cafile={Paths().secret(CA_SECRET)!r})
print(json.dumps(json.load(urllib.request.urlopen("https://localhost:{Port.PATRONI_API}/cluster", context=context, timeout=5))))
"""
"""Patroni's view of the cluster, from inside a member (its REST API, verified against the CA)."""


def patroni_cluster(nodes: Sequence[SwarmNode], manager: Engine, member: str) -> dict[str, Any]:
    """Patroni's `/cluster` document, as `member` reports it."""
    node, container = container_of(nodes, manager, member)
    result = exec_in(node, container, ["python3", "-"], PATRONI_CLUSTER_PROBE)
    if result.returncode != 0:
        raise RuntimeError(f"Patroni's REST API on {member}: {result.stderr.strip()[-400:]}")
    cluster: dict[str, Any] = json.loads(result.stdout)
    return cluster


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
