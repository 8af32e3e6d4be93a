"""A rolling update of the Patroni members on the local Swarm as a client sees it, Swarm's
rollback of an update whose health check fails (issue 9), and a worker node lost and replaced
(issue 14).

Usage (as root, from the repository root):

    .venv/bin/python -m benchmarks.rolling_update [--root DIR --stack NAME]

Without --root it brings the local stack up in a directory of its own (engine/lab.py: the
project's images, built on DOCKER_HOST's engine or on one it starts; one engine per node of the
layout, each in a network namespace; the stack deployed and healthy) and removes it all at the
end. With --root and --stack it uses the local Swarm that `./run up` (or the Swarm suite, with
DPC_SWARM_ROOT) made there, and leaves it running.

A client in app-1's namespace commits a row every 100 ms through HAProxy's primary route on the
managers, as app_user over TLS verified against the cluster CA, and Patroni's view of the cluster
is sampled every second, from before the first phase until after the last. The first three phases
deploy through `engine.deploy.roll` leader-last: the replicas first, then a planned switchover to
the (already updated) synchronous standby, then the old leader (`engine.deploy.leader_last`,
`hand_over`), each member once the one before has run its new task for the update's monitor
period (`engine.deploy.converged` says why that, and not only running):

1. update: the members onto the postgres image under another tag (`docker tag` on every node: the
   same image, a new spec, so every member's task is replaced);
2. rollback: the members onto an image whose health check always fails (built on every node from
   the postgres image). Swarm must fail the first member's new task, roll that member back (its
   UpdateStatus `rollback_completed`, its spec the previous one) and the roll stop there, leaving
   the other members alone; the cluster must be healthy again;
3. restore: the members back onto the program's own tag, so the Swarm ends as the program defines it;
4. node: the worker that runs the synchronous standby powers off and is replaced by a new node with
   the same name and labels and empty volumes (`engine.lab.replace_node`); Swarm places the member
   there again and Patroni re-creates it from the leader (pg_basebackup).

For each phase it prints the leaders Patroni showed in turn and how often the leadership changed;
the switchover, when and how long; for each member replaced, when its previous task stopped and
its new one ran (Swarm's task timestamps), the longest time between two acknowledged writes from
when the roll began on it (its switchover, or its spec sent) until it began on the next, and its
Patroni role then (so whether the leader went last); for the rollback, Swarm's tasks and update
status; for the node, when it was lost, back in the Swarm, its member's task running and the member
streaming, and the longest time without a write; then the rows acknowledged against the rows the
leader holds afterwards. Exits 1 if an acknowledged row was lost, a member went down before the one
before it ran its new task, the leader was not replaced last after a switchover or the leadership
changed other than once in an update, the rollback did not happen, or the replaced node's member
did not come back as a streaming replica on the new node.
"""

from __future__ import annotations

import argparse
import itertools
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dpc.cluster import CA_SECRET, DATABASE_NAME, Port, User
from dpc.config import settings_from_stack_file
from dpc.model import Role
from dpc.render.prometheus import postgres_exporter_host
from dpc.services import Image
from dpc.settings import Settings
from engine.api import EngineError
from engine.deploy import (
    Rolled,
    StackObjects,
    Switchover,
    UpdateGivenUpError,
    container_of,
    engine_time,
    leader_last,
    nodes_running,
    patroni_cluster,
    patroni_get,
    roll,
    wait_until_healthy,
)
from engine.lab import Deployment, bring_up, replace_node, tear_down
from engine.netns import NamespaceClient
from tests.cluster.client import STATEMENT_TIMEOUT, query, wait_until
from tests.cluster.drill import IN_DOUBT, ROW_RANGE, Writer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STACK_FILE = PROJECT_ROOT / "Pulumi.local.yaml"
OWN_STACK = "rolling"
"""The namespace tag of a local Swarm this benchmark brings up itself (apart from `./run up`'s)."""
CLIENT_NODE = "app-1"
"""Where the applications run (the layout's app nodes)."""

WRITE_PAUSE = 0.1
"""Seconds between the client's commits: the resolution of the times without writes."""
SAMPLE_INTERVAL = 1.0
"""Seconds between looks at Patroni's /cluster."""
FLOWING_ROWS = 20
"""Rows acknowledged before the first phase, so the writer is known to be in full flow."""
CALL_TIMEOUT = 30.0
HEALTHY_TIMEOUT = 300.0
"""Seconds the stack may take to be healthy again after a phase (a member rejoining as a replica)."""
BUILD_TIMEOUT = 120.0

ROLLED_TAG = "rolling-update"
FAILING_TAG = "failing-health-check"
FAILING_HEALTH_CHECK = 'HEALTHCHECK --interval=2s --timeout=5s --start-period=1s --retries=1 CMD ["false"]'
"""The failing image's only change: unhealthy at its first check, two seconds after it starts, so
Swarm fails the task well within the update's monitor window. Every option is given: a build
keeps the base image's value of any left out (its start period is 60 s)."""
UP_STATES = ("running", "streaming")
"""Patroni's states of a member that serves (a leader runs, a replica streams)."""


def patroni_members(objects: StackObjects) -> StackObjects:
    """The stack's objects with only the Patroni members among the services: what the phases roll."""
    members = {member.name for member in objects.layout.patroni}
    return replace(objects, services=tuple(service for service in objects.services if service.name in members))


def _repository(reference: str) -> str:
    return reference.rsplit(":", 1)[0]


def retagged(deployment: Deployment, tag: str) -> dict[str, str]:
    """The deployment's images with the postgres image also tagged `tag` on every node (`docker
    tag`): the same image under another name, so deploying it changes the spec and nothing else.
    """
    source = deployment.images[Image.POSTGRES]
    for node in deployment.nodes:
        node.engine.post(f"/images/{quote(source, safe='')}/tag", None, {"repo": _repository(source), "tag": tag})
    return {**deployment.images, Image.POSTGRES: f"{_repository(source)}:{tag}"}


def failing_health_check(deployment: Deployment) -> dict[str, str]:
    """The deployment's images with the postgres image replaced by one whose health check always
    fails, built on every node (FROM the postgres image, which each holds: no network needed).
    """
    source = deployment.images[Image.POSTGRES]
    target = f"{_repository(source)}:{FAILING_TAG}"
    with tempfile.TemporaryDirectory(prefix="dpc-failing-image-") as home:
        for node in deployment.nodes:
            built = subprocess.run(
                ["docker", "-H", node.engine.host, "build", "--quiet", "--tag", target, "-"],
                input=f"FROM {source}\n{FAILING_HEALTH_CHECK}\n", capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "DOCKER_BUILDKIT": "0", "HOME": home},
            )  # fmt: skip
            if built.returncode != 0:
                raise RuntimeError(f"building {target} on {node.name}: {built.stderr.strip()}")
    return {**deployment.images, Image.POSTGRES: target}


def remove_image(deployment: Deployment, reference: str) -> None:
    """Removes `reference` from every node: a second tag of an image only loses its name; an image
    that stopped tasks' containers still use stays until they go (Swarm keeps a few per service).
    """
    for node in deployment.nodes:
        try:
            node.engine.delete(f"/images/{quote(reference, safe='')}", {"force": "1"})
        except EngineError as error:
            if error.status != 404:
                raise


def haproxy_conninfo(deployment: Deployment, ca_file: Path, user: User, password_secret: str) -> dict[str, str | int]:
    """A client of HAProxy's primary route: every manager's address, which libpq tries in turn (HAProxy
    publishes its port on the managers that run it). TLS verified against the cluster CA with
    `verify-ca`: HAProxy passes TLS through, so the certificate is the leader's, named after the member.
    """
    managers = [node.address for node in deployment.nodes if node.node.role is Role.MANAGER]
    return {
        "host": ",".join(managers),
        "port": Port.HAPROXY_PRIMARY,
        "dbname": DATABASE_NAME,
        "user": user.value,
        "password": deployment.secret_values[password_secret],
        "sslmode": "verify-ca",
        "sslrootcert": str(ca_file),
        "options": STATEMENT_TIMEOUT,
    }


View = Mapping[str, tuple[str, str]]
"""Patroni's view of the cluster: member → (role, state)."""


@dataclass
class PatroniSampler:
    """Every SAMPLE_INTERVAL, on a thread of its own: Patroni's /cluster, as the first member that
    answers reports it, and the members' Swarm tasks (Swarm keeps only the last five of a slot, and
    a failing update makes more than that).
    """

    deployment: Deployment
    samples: list[tuple[float, View]] = field(default_factory=list[tuple[float, View]])
    tasks: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict[str, dict[str, dict[str, Any]]])
    """Member → task id → the task as last seen."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        """Samples until stopped."""
        members = [member.name for member in self.deployment.objects.layout.patroni]
        while not self._stop.is_set():
            for member in members:
                try:
                    cluster = patroni_cluster(self.deployment.nodes, self.deployment.manager, member)
                except (RuntimeError, LookupError, OSError, ValueError, subprocess.SubprocessError):  # LookupError: KeyError too
                    continue
                self.samples.append((time.time(), {str(m["name"]): (str(m["role"]), str(m.get("state", ""))) for m in cluster["members"]}))
                break
            for member in members:
                with suppress(EngineError, OSError):
                    self.record_tasks(member)
            self._stop.wait(SAMPLE_INTERVAL)

    def record_tasks(self, member: str) -> list[dict[str, Any]]:
        """The member's tasks Swarm keeps now and those it has let go since sampling began, oldest first."""
        listed = self.deployment.manager.filtered("/tasks", service=[member])
        with self._lock:
            seen = self.tasks.setdefault(member, {})
            seen.update({str(task["ID"]): task for task in listed})
            return sorted(seen.values(), key=lambda task: engine_time(task["CreatedAt"]))

    def stop(self) -> None:
        """Ends `run` after its current look."""
        self._stop.set()

    def at(self, moment: float) -> View:
        """The last view taken before `moment` (empty if none was)."""
        before = [view for taken, view in self.samples if taken <= moment]
        return before[-1] if before else {}


def leader(view: View) -> str:
    """The member leading in `view`, or "none"."""
    return next((name for name, (role, state) in view.items() if role == "leader" and state == "running"), "none")


@dataclass(frozen=True)
class Writes:
    """What the client saw, and what the leader holds."""

    acknowledged: int
    held: int
    """Rows the leader holds afterwards (acknowledged ones, and any whose commit the client did not see)."""
    lost: tuple[int, ...]
    """Acknowledged rows the leader does not hold."""
    in_doubt: int
    """Attempts that may or may not have committed: a commit cancelled while it waited for the
    synchronous standby, or a connection lost after the statement was sent (not acknowledged)."""
    errors: int
    """Failed connection attempts and statements."""


@dataclass
class Observation:
    """The writers (one per client path) and the Patroni sampler, running; times in time.time()'s terms."""

    deployment: Deployment
    writers: Mapping[str, Writer]
    """Client path → the writer committing through it."""
    sampler: PatroniSampler
    superuser: dict[str, str | int]
    queries: NamespaceClient
    offset: float
    """time.time() - time.monotonic(): the writers stamp their rows with the latter."""
    result: Writes | None = None

    def _writers(self, path: str | None) -> list[Writer]:
        return list(self.writers.values()) if path is None else [self.writers[path]]

    def acknowledged_times(self, path: str | None = None) -> list[float]:
        """When each acknowledged row was acknowledged, in order: through `path`, or any path."""
        return sorted(ack.at + self.offset for writer in self._writers(path) for ack in list(writer.acknowledged))

    def error_count(self, begin: float, end: float, path: str | None = None) -> int:
        """The failed attempts between `begin` and `end`: through `path`, or any path."""
        return len(self.errors(begin, end, path))

    def errors(self, begin: float, end: float, path: str | None = None) -> list[str]:
        """What the failed attempts between `begin` and `end` said (through `path`, or any path), in order."""
        found = [(at, message) for writer in self._writers(path) for at, message in list(writer.errors) if begin <= at + self.offset < end]
        return [message for _, message in sorted(found)]


def silence(times: Sequence[float], begin: float, end: float) -> tuple[float, float, float]:
    """The longest time between two consecutive acknowledged writes that overlaps [begin, end), and
    the two acknowledgements' times: how long the client could not write around then (WRITE_PAUSE
    and a commit when all is well). (0, begin, begin) when no two overlap it.
    """
    gaps = [(later - earlier, earlier, later) for earlier, later in itertools.pairwise(times) if later > begin and earlier < end]
    return max(gaps, default=(0.0, begin, begin))


def longest_silence(times: Sequence[float], begin: float, end: float) -> float:
    """The length of `silence`."""
    return silence(times, begin, end)[0]


HAPROXY_PATH = "HAProxy"
"""The client path `observed` writes through unless given others: HAProxy's primary route on the managers."""


@contextmanager
def observed(deployment: Deployment, ca_file: Path, paths: Mapping[str, Mapping[str, str | int]] | None = None) -> Generator[Observation]:
    """The writers (each on its own thread in app-1's namespace, all into one table of their own,
    each numbering its rows from its own multiple of ROW_RANGE) and the sampler, from when every
    writer is in full flow until the block ends; then the rows acknowledged are looked for on the
    leader, once the stack is healthy, in `result`. `paths`: client path → connection parameters
    (as app_user); by default one writer through HAProxy's primary route (`haproxy_conninfo`).
    """
    namespace = deployment.node(CLIENT_NODE).namespace
    wanted = paths if paths is not None else {HAPROXY_PATH: haproxy_conninfo(deployment, ca_file, User.APP, "app_user_password")}
    queries = NamespaceClient(namespace)
    writes = NamespaceClient(namespace, threads=max(1, len(wanted)))
    superuser = haproxy_conninfo(deployment, ca_file, User.SUPERUSER, "postgres_superuser_password")
    table = f"rolling_{secrets.token_hex(4)}"
    try:
        queries.call(query, superuser, f"CREATE TABLE {table} (id bigint PRIMARY KEY)", timeout=CALL_TIMEOUT)
        writers = {
            path: Writer(namespace, dict(conninfo), table, path, first_row=index * ROW_RANGE + 1, pause=WRITE_PAUSE)
            for index, (path, conninfo) in enumerate(wanted.items())
        }
        sampler = PatroniSampler(deployment)
        observation = Observation(deployment, writers, sampler, superuser, queries, time.time() - time.monotonic())
        writing = [writes.submit(writer.run) for writer in writers.values()]
        sampling = threading.Thread(target=sampler.run, name="patroni-sampler", daemon=True)
        sampling.start()
        try:
            for path, writer in writers.items():
                wait_until(f"the writer through {path} in full flow", lambda w=writer: len(w.acknowledged) >= FLOWING_ROWS or None, timeout=CALL_TIMEOUT)
            yield observation
        finally:
            for writer in writers.values():
                writer.stop()
            sampler.stop()
            for future in writing:
                future.result(timeout=CALL_TIMEOUT)
            sampling.join(timeout=CALL_TIMEOUT)
        wait_until_healthy(deployment.manager, deployment.nodes, deployment.objects, HEALTHY_TIMEOUT)
        present = {row for (row,) in queries.call(query, superuser, f"SELECT id FROM {table}", timeout=CALL_TIMEOUT)}
        acknowledged = {ack.row for writer in writers.values() for ack in writer.acknowledged if ack.row is not None}
        in_doubt = sum(1 for writer in writers.values() for attempt in writer.attempts if attempt.outcome == IN_DOUBT)
        errors = sum(len(writer.errors) for writer in writers.values())
        observation.result = Writes(len(acknowledged), len(present), tuple(sorted(acknowledged - present)), in_doubt, errors)
        queries.call(query, superuser, f"DROP TABLE {table}", timeout=CALL_TIMEOUT)
    finally:
        writes.close()
        queries.close()


@dataclass(frozen=True)
class MemberReplaced:
    """One member's replacement in a phase; times in time.time()'s terms, task times Swarm's."""

    service: str
    node: str
    role: str
    """Its Patroni role when its new spec was accepted."""
    serving: int
    """Members running or streaming in Patroni's view then."""
    began: float
    """When `roll` began on it: the switchover away from it if it led, else `sent`."""
    switchover: Switchover | None
    sent: float
    """When the engine had accepted its new spec."""
    created: float
    """When Swarm made its new task."""
    stopped: float
    """When its previous task had stopped (that task's last state change)."""
    running: float
    """When its new task ran, its health check passing."""
    converged: float
    silence: float
    """The longest time without an acknowledged write from when `roll` began on it until it began on the next member."""
    errors: int


@dataclass(frozen=True)
class NewTask:
    """A task Swarm made during a phase, as its history shows it afterwards."""

    image: str
    created: float
    state: str
    at: float
    """When it reached `state`."""
    error: str


@dataclass(frozen=True)
class Phase:
    """One deployment through `roll` under observation; times in time.time()'s terms."""

    name: str
    started: float
    returned: float
    """When `roll` returned or raised."""
    healthy: float
    """When the stack was healthy again after it."""
    members: tuple[MemberReplaced, ...]
    """The members `roll` replaced, in the order it sent them."""
    before: View
    """Patroni's view of the cluster when the phase started."""
    leaders: tuple[str, ...]
    """The leaders Patroni showed, in turn, from the start until healthy again ("none" between two)."""
    silence: float
    """The longest time without an acknowledged write from the start until healthy again."""
    errors: int
    images_before: Mapping[str, str]
    """Each member's image before the phase."""
    images_after: Mapping[str, str]
    touched: tuple[str, ...]
    """Members Swarm made a task for during the phase."""
    given_up: UpdateGivenUpError | None
    """Swarm's refusal, when it gave a member's update up."""
    status: Mapping[str, Any]
    """The given-up member's UpdateStatus afterwards, as the Engine reports it."""
    given_up_tasks: tuple[NewTask, ...]
    """The given-up member's tasks made during the phase, oldest first."""


def _image(service: Mapping[str, Any]) -> str:
    return str(service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"])


def _services(observation: Observation) -> dict[str, dict[str, Any]]:
    """The Patroni members' services, as the Engine shows them now."""
    found: dict[str, dict[str, Any]] = {}
    for service in patroni_members(observation.deployment.objects).services:
        shown = observation.deployment.manager.by_name("services", service.name)
        if shown is None:
            raise LookupError(f"no service {service.name}")
        found[service.name] = shown
    return found


def _tasks(observation: Observation, service: str) -> list[dict[str, Any]]:
    return observation.sampler.record_tasks(service)


def _new_task(task: Mapping[str, Any]) -> NewTask:
    status = task["Status"]
    return NewTask(
        str(task["Spec"]["ContainerSpec"]["Image"]),
        engine_time(task["CreatedAt"]),
        str(status["State"]),
        engine_time(status["Timestamp"]),
        str(status.get("Err", "")),
    )


def leaders_seen(sampler: PatroniSampler, begin: float, end: float) -> tuple[str, ...]:
    """The leaders the samples between `begin` and `end` showed, in turn ("none" for a time without one)."""
    seen = [leader(view) for taken, view in sampler.samples if begin <= taken <= end]
    return tuple(name for index, name in enumerate(seen) if index == 0 or seen[index - 1] != name)


def _replaced(observation: Observation, done: Rolled, until: float) -> MemberReplaced:
    """A member `roll` replaced: its new task and the one before it, from Swarm's task history."""
    tasks = _tasks(observation, done.service)
    current = max((task for task in tasks if task["DesiredState"] == "running"), key=lambda task: engine_time(task["CreatedAt"]))
    previous = [task for task in tasks if engine_time(task["CreatedAt"]) < engine_time(current["CreatedAt"])][-1]
    node = next((n.name for n in observation.deployment.nodes if n.engine.get("/info")["Swarm"]["NodeID"] == current.get("NodeID")), "?")
    view = observation.sampler.at(done.began_at)
    times = observation.acknowledged_times()
    return MemberReplaced(
        service=done.service,
        node=node,
        role=view.get(done.service, ("unknown", ""))[0],
        serving=sum(1 for _, state in view.values() if state in UP_STATES),
        began=done.began_at,
        switchover=done.switchover,
        sent=done.sent_at,
        created=engine_time(current["CreatedAt"]),
        stopped=engine_time(previous["Status"]["Timestamp"]),
        running=engine_time(current["Status"]["Timestamp"]),
        converged=done.converged_at,
        silence=longest_silence(times, done.began_at, until),
        errors=observation.error_count(done.began_at, until),
    )


def run_phase(observation: Observation, name: str, images: Mapping[str, str]) -> Phase:
    """Deploys `images` to the Patroni members through `roll` and measures what happened: each
    member's replacement from Swarm's task history, the writes around it, Patroni's roles.
    """
    deployment = observation.deployment
    before = _services(observation)
    started = time.time()
    given_up: UpdateGivenUpError | None = None
    try:
        rolled = roll(deployment.manager, patroni_members(deployment.objects), deployment.secret_values, images, deployment.naming_key,
                      patroni=deployment.patroni())
    except UpdateGivenUpError as error:
        given_up, rolled = error, []
    returned = time.time()
    wait_until_healthy(deployment.manager, deployment.nodes, deployment.objects, HEALTHY_TIMEOUT)
    healthy = time.time()
    after = _services(observation)
    ends = [*(later.began_at for later in rolled[1:]), returned] if rolled else []
    made = {member: [task for task in _tasks(observation, member) if engine_time(task["CreatedAt"]) >= started] for member in after}
    return Phase(
        name=name,
        started=started,
        returned=returned,
        healthy=healthy,
        members=tuple(_replaced(observation, done, until) for done, until in zip(rolled, ends, strict=True)),
        before=observation.sampler.at(started),
        leaders=leaders_seen(observation.sampler, started, healthy),
        silence=longest_silence(observation.acknowledged_times(), started, healthy),
        errors=observation.error_count(started, healthy),
        images_before={member: _image(service) for member, service in before.items()},
        images_after={member: _image(service) for member, service in after.items()},
        touched=tuple(member for member, tasks in made.items() if tasks),
        given_up=given_up,
        status=dict(after[given_up.service].get("UpdateStatus") or {}) if given_up else {},
        given_up_tasks=tuple(_new_task(task) for task in made[given_up.service]) if given_up else (),
    )


def one_at_a_time(phase: Phase) -> list[str]:
    """Where a member went down before the member sent before it ran its new task (empty when
    none did): a stop-first update stops the previous task when it makes the new one.
    """
    return [
        f"{later.service} went down {earlier.running - later.created:.1f}s before {earlier.service} ran its new task"
        for earlier, later in itertools.pairwise(phase.members)
        if later.created < earlier.running
    ]


def describe(phase: Phase) -> list[str]:
    """The phase's figures, one line each, times in seconds from the phase's start."""
    lines = [f"{phase.name}: leaders {' → '.join(phase.leaders)} ({leader_changes(phase)} leadership changes); roll returned after "
             f"{phase.returned - phase.started:.1f}s, stack healthy "
             f"after {phase.healthy - phase.started:.1f}s; longest time without an acknowledged write {phase.silence:.1f}s, "
             f"{phase.errors} failed attempts"]  # fmt: skip
    for member in phase.members:
        if member.switchover is not None:
            switched = member.switchover
            lines.append(f"  switchover {switched.leader} → {switched.candidate} asked at {switched.started - phase.started:.1f}s, "
                         f"{switched.candidate} leading at {switched.ended - phase.started:.1f}s")  # fmt: skip
        lines.append(
            f"  {member.service} on {member.node}, {member.role} when the roll began on it ({member.serving} members serving): spec accepted at "
            f"{member.sent - phase.started:.1f}s, new task made at {member.created - phase.started:.1f}s, previous task stopped at "
            f"{member.stopped - phase.started:.1f}s, new task running (healthy) at {member.running - phase.started:.1f}s, converged at "
            f"{member.converged - phase.started:.1f}s; longest time without an acknowledged write {member.silence:.1f}s, {member.errors} failed attempts"
        )
    if phase.members:
        leading = sum(1 for member in phase.members if member.role == "leader")
        went_last = phase.members[-1].service == leader(phase.before)
        lines.append(f"  order {', '.join(m.service for m in phase.members)}; {leading} of {len(phase.members)} members were leading when "
                     f"the roll began on them; the member leading at the start went last: {'yes' if went_last else 'no'}")  # fmt: skip
    if phase.given_up is not None:
        completed = phase.status.get("CompletedAt")
        lines.append(
            f"  Swarm gave the update of {phase.given_up.service} up: {phase.status.get('State')} ({phase.status.get('Message')})"
            + (f", completed at {engine_time(str(completed)) - phase.started:.1f}s" if completed else "")
            + f"; members Swarm made tasks for: {', '.join(phase.touched) or 'none'}"
        )
        lines += [
            f"    task of {task.image} made at {task.created - phase.started:.1f}s: {task.state} at {task.at - phase.started:.1f}s"
            + (f" ({task.error})" if task.error else "")
            for task in phase.given_up_tasks
        ]
        lines.append("  images before → after: " + ", ".join(f"{m} {phase.images_before[m]} → {phase.images_after[m]}" for m in sorted(phase.images_after)))
    return lines


def leader_changes(phase: Phase) -> int:
    """How often the leadership passed from one member to another during the phase (a time without
    a leader between two is not a change of its own; the same leader back is none).
    """
    named = [name for name in phase.leaders if name != "none"]
    return sum(1 for earlier, later in itertools.pairwise(named) if earlier != later)


def leader_went_last(phase: Phase) -> list[str]:
    """Where a roll of every member differs from leader-last (empty when it is): the member leading
    at the start is replaced last, after a switchover, no other member leads when the roll begins on
    it, and the leadership changes exactly once.
    """
    first = leader(phase.before)
    found: list[str] = []
    if not phase.members or phase.members[-1].service != first:
        found.append(f"{first} led at the start but the members went {[m.service for m in phase.members]}")
    elif phase.members[-1].switchover is None:
        found.append(f"{first} was replaced without a switchover first")
    found += [f"{m.service} was leading when the roll began on it" for m in phase.members[:-1] if m.role == "leader"]
    if (changes := leader_changes(phase)) != 1:
        found.append(f"the leadership changed {changes} times ({' → '.join(phase.leaders)}); want once")
    return found


def rolled_back(phase: Phase) -> list[str]:
    """Where a phase whose update fails its health check differs from a rollback: Swarm gives up the
    first member the roll sends (the first of `leader_last`, not the leader) with `rollback_completed`,
    every member runs its previous image, no other member was touched, and the leader was not
    switched away from (empty when it is one).
    """
    if phase.given_up is None:
        return ["the roll went through: Swarm did not give the update up"]
    cluster = {"members": [{"name": name, "role": role} for name, (role, _) in phase.before.items()]}
    first = leader_last(list(phase.images_before), cluster)[0]
    found: list[str] = []
    if phase.given_up.service != first or phase.status.get("State") != "rollback_completed":
        found.append(f"{phase.given_up.service} given up with {phase.status.get('State')}; want {first} with rollback_completed")
    if phase.images_after != phase.images_before:
        found.append(f"images before {dict(phase.images_before)}, after {dict(phase.images_after)}")
    if phase.touched != (first,):
        found.append(f"members Swarm made tasks for: {phase.touched}; want only {first}")
    if leader_changes(phase):
        found.append(f"the leadership changed: {' → '.join(phase.leaders)}")
    return found


def problems(phases: Sequence[Phase], writes: Writes) -> list[str]:
    """What the benchmark holds the product to: no acknowledged row lost, members one at a time, a
    roll through leader-last (`leader_went_last`) and the failing health check's update rolled back
    (`rolled_back`).
    """
    found = [f"{len(writes.lost)} acknowledged rows lost: {list(writes.lost[:10])}"] if writes.lost else []
    for phase in phases:
        found += [f"{phase.name}: {problem}" for problem in one_at_a_time(phase)]
        checks = rolled_back(phase) if phase.name == "rollback" else leader_went_last(phase)
        found += [f"{phase.name}: {problem}" for problem in checks]
    return found


@dataclass(frozen=True)
class NodeReplaced:
    """A worker lost and replaced under observation; times in time.time()'s terms."""

    node: str
    member: str
    """The Patroni member it ran."""
    role: str
    """The member's Patroni role when the node was lost."""
    lost: float
    """When the node powered off."""
    joined: float
    """When the new node was in the Swarm with the node's labels."""
    running: float
    """When the member's new task ran, its health check passing (Swarm's time)."""
    streaming: float | None
    """When a sample of Patroni's view first showed the member streaming after the new node joined
    (None if none did before the stack was healthy, which needs it streaming)."""
    healthy: float
    """When the stack was healthy again."""
    nodes_before: tuple[str, ...]
    """The Swarm node ids of the member's task before the loss, and after."""
    nodes_after: tuple[str, ...]
    system_ids: Mapping[str, str]
    """Member → the database system identifier Patroni reports for it afterwards."""
    on_new_volume: bool
    """Whether the new node's volume directories hold a PostgreSQL data directory afterwards."""
    leaders: tuple[str, ...]
    silence: float
    errors: int


def _member_nodes(deployment: Deployment, member: str) -> tuple[str, ...]:
    tasks = deployment.manager.filtered("/tasks", service=[member], **{"desired-state": ["running"]})
    return tuple(sorted(str(task.get("NodeID", "")) for task in tasks))


def node_replaced(observation: Observation, settings: Settings) -> NodeReplaced:
    """The worker running the synchronous standby lost and replaced (`replace_node`), then the wait
    until the stack is healthy again (and its exporter restarted: `restart_exporter`); what the
    client and Patroni saw meanwhile.
    """
    deployment = observation.deployment
    cluster = deployment.patroni().cluster()
    member = next(str(m["name"]) for m in cluster["members"] if m["role"] == "sync_standby")
    node = nodes_running(deployment.manager, deployment.nodes, member)[0].name
    nodes_before = _member_nodes(deployment, member)
    lost = time.time()
    new = replace_node(deployment, settings, node)
    joined = time.time()
    wait_until_healthy(deployment.manager, deployment.nodes, deployment.objects, HEALTHY_TIMEOUT)
    healthy = time.time()
    restart_exporter(deployment, member)
    task = max(
        (t for t in observation.sampler.record_tasks(member) if t["DesiredState"] == "running"), key=lambda t: engine_time(t["CreatedAt"])
    )
    streaming = next((taken for taken, view in observation.sampler.samples if taken >= joined and view.get(member, ("", ""))[1] == "streaming"), None)
    system_ids = {
        m.name: str(patroni_get(deployment.nodes, deployment.manager, m.name, "/patroni").get("database_system_identifier", ""))
        for m in deployment.objects.layout.patroni
    }
    return NodeReplaced(
        node=node,
        member=member,
        role=str(next(m["role"] for m in cluster["members"] if m["name"] == member)),
        lost=lost,
        joined=joined,
        running=engine_time(task["Status"]["Timestamp"]),
        streaming=streaming,
        healthy=healthy,
        nodes_before=nodes_before,
        nodes_after=_member_nodes(deployment, member),
        system_ids=system_ids,
        on_new_volume=any((new.root / "mnt").rglob("PG_VERSION")),
        leaders=leaders_seen(observation.sampler, lost, healthy),
        silence=longest_silence(observation.acknowledged_times(), lost, healthy),
        errors=observation.error_count(lost, healthy),
    )


def restart_exporter(deployment: Deployment, member: str) -> None:
    """Kills the PostgreSQL exporter of a member whose node was lost, which Swarm restarts, so that
    the Swarm is whole again for what follows. Found, not fixed: the exporter keeps a connection to
    the lost member's old address with a query unacknowledged, which TCP retransmits for about 15
    minutes (tcp_retries2), and every scrape waits behind it (Prometheus shows the target down).
    """
    index = next(i for i, m in enumerate(deployment.objects.layout.patroni, start=1) if m.name == member)
    node, container = container_of(deployment.nodes, deployment.manager, postgres_exporter_host(index))
    node.engine.post(f"/containers/{container}/kill")
    wait_until_healthy(deployment.manager, deployment.nodes, deployment.objects, HEALTHY_TIMEOUT)


def node_came_back(replaced: NodeReplaced) -> list[str]:
    """Where the replaced node's member differs from a replica re-created from the leader on the new
    node (empty when it is one): its task on another Swarm node than before, its data on the new
    node's volume, one database (every member the same system identifier: a copy of the leader's,
    not a cluster of its own), and the leadership unchanged. That it streams is what the stack's
    health (waited for) means.
    """
    found: list[str] = []
    if not replaced.nodes_after or set(replaced.nodes_after) & set(replaced.nodes_before):
        found.append(f"{replaced.member}'s task runs on {replaced.nodes_after}, before on {replaced.nodes_before}: not on a new node")
    if len(set(replaced.system_ids.values())) != 1 or "" in replaced.system_ids.values():
        found.append(f"the members' database system identifiers differ: {dict(replaced.system_ids)}")
    if not replaced.on_new_volume:
        found.append(f"no PostgreSQL data directory on the new {replaced.node}'s volumes")
    if len(set(replaced.leaders) - {"none"}) != 1:
        found.append(f"the leadership changed: {' → '.join(replaced.leaders)}")
    return found


def describe_node(replaced: NodeReplaced) -> list[str]:
    """The node phase's figures, times in seconds from the loss."""
    streaming = f"{replaced.streaming - replaced.lost:.1f}s" if replaced.streaming is not None else "not sampled before healthy"
    return [
        f"node: {replaced.node} (running {replaced.member}, {replaced.role}) powered off; a new {replaced.node} in the Swarm with its labels at "
        f"{replaced.joined - replaced.lost:.1f}s, {replaced.member}'s new task running (healthy) at {replaced.running - replaced.lost:.1f}s, "
        f"streaming at {streaming}, stack healthy at {replaced.healthy - replaced.lost:.1f}s; leaders {' → '.join(replaced.leaders)}; "
        f"longest time without an acknowledged write {replaced.silence:.1f}s, {replaced.errors} failed attempts",
        f"  Swarm node of {replaced.member} before {', '.join(n[:12] for n in replaced.nodes_before)}, after "
        f"{', '.join(n[:12] for n in replaced.nodes_after)}; data directory on the new volume: {'yes' if replaced.on_new_volume else 'no'}; "
        f"database system identifiers {dict(replaced.system_ids)}",
    ]


@contextmanager
def restoring(deployment: Deployment) -> Generator[None]:
    """Restores the Swarm (`restored`) once the block ends or fails, but not when the run is
    interrupted (Ctrl-C, or the SIGTERM of `./run swarm`'s bound, which the suite turns into
    KeyboardInterrupt): rolling three members back takes minutes, past the bound's one-minute kill
    grace, and the teardown that follows an interrupt removes the whole lab anyway. A lab of
    `./run up` interrupted here keeps the phase's image until the next `./run up` deploys the
    program's own again.
    """
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException:
        restored(deployment)
        raise
    restored(deployment)


def restored(deployment: Deployment) -> None:
    """The members back on the program's images (rolled, if a phase left them elsewhere), and the
    images the phases made removed from the nodes.
    """
    roll(deployment.manager, patroni_members(deployment.objects), deployment.secret_values, deployment.images, deployment.naming_key)
    for tag in (ROLLED_TAG, FAILING_TAG):
        remove_image(deployment, f"{_repository(deployment.images[Image.POSTGRES])}:{tag}")


PHASES = ("update", "rollback", "restore", "node")


def _measure(deployment: Deployment, settings: Settings, wanted: Sequence[str]) -> int:
    """The phases `wanted` (in PHASES' order) under one observation, each described once it is
    over; the Swarm ends as the program defines it, also when a phase fails.
    """
    print(
        f"rolling update of the Patroni members on the local Swarm ({len(deployment.nodes)} engines in network namespaces, "
        f"{os.cpu_count()} CPUs): members sent by engine.deploy.roll leader-last (replicas, a switchover, the old leader), each once "
        f"the one before has run its new task for the update's monitor period; a client on {CLIENT_NODE} commits a row every "
        f"{WRITE_PAUSE * 1000:.0f} ms through HAProxy's primary route (TLS, app_user); Patroni's /cluster sampled every "
        f"{SAMPLE_INTERVAL:.0f}s; task times are Swarm's",
        flush=True,
    )
    rolls = {"update": lambda: retagged(deployment, ROLLED_TAG), "rollback": lambda: failing_health_check(deployment), "restore": lambda: deployment.images}
    phases: list[Phase] = []
    found: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dpc-rolling-") as scratch:
        ca_file = Path(scratch) / "ca.pem"
        ca_file.write_text(deployment.secret_values[CA_SECRET])
        with restoring(deployment), observed(deployment, ca_file) as observation:
            for name in (name for name in PHASES if name in wanted):
                if name == "node":
                    replaced = node_replaced(observation, settings)
                    print("\n".join(describe_node(replaced)), flush=True)
                    found += [f"node: {problem}" for problem in node_came_back(replaced)]
                else:
                    phases.append(run_phase(observation, name, rolls[name]()))
                    print("\n".join(describe(phases[-1])), flush=True)
    if observation.result is None:
        raise RuntimeError("the observation ended without its result")
    writes = observation.result
    print(f"rows acknowledged {writes.acknowledged}, held by the leader {writes.held}, acknowledged and lost {len(writes.lost)} (target: 0); "
          f"in doubt {writes.in_doubt}; failed attempts {writes.errors}")
    found = problems(phases, writes) + found
    for problem in found:
        print(f"PROBLEM: {problem}")
    return 1 if found else 0


def on_local_swarm(root: Path | None, stack: str, own_stack: str, measure: Callable[[Deployment, Settings], int]) -> int:
    """`measure` on the local Swarm that `./run up` (or the Swarm suite, with DPC_SWARM_ROOT) made at
    `root` as `stack`, left running afterwards; without `root`, on one brought up in a directory of
    its own under the namespace tag `own_stack` and removed at the end. `measure`'s exit status.
    """
    settings = settings_from_stack_file(STACK_FILE)
    if root is not None:
        return measure(bring_up(settings, root, stack, print), settings)
    own = Path(tempfile.mkdtemp(prefix=f"dpc-{own_stack}-", dir="/var/tmp"))
    try:
        return measure(bring_up(settings, own, own_stack, print), settings)
    finally:
        leftover = tear_down(own, own_stack)
        if leftover:
            print(f"teardown: {leftover}", file=sys.stderr)


def main() -> int:
    """Runs the phases on a given local Swarm, or on one of its own that it removes afterwards."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="the directory of a local Swarm that is up (./run up's --root/<stack>)")
    parser.add_argument("--stack", default="local", help="its stack name (the namespaces' tag)")
    parser.add_argument("--phase", action="append", choices=PHASES, help="a phase to run (repeatable; default: all, in this order: %(choices)s)")
    args = parser.parse_args()
    wanted = args.phase or PHASES
    return on_local_swarm(args.root, args.stack, OWN_STACK, lambda deployment, settings: _measure(deployment, settings, wanted))


if __name__ == "__main__":
    sys.exit(main())
