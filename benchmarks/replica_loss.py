"""A replica of HAProxy or PgBouncer lost on the local Swarm, as the clients see it (issue 14).

Usage (as root, from the repository root):

    .venv/bin/python -m benchmarks.replica_loss [--root DIR --stack NAME] [--service haproxy|pgbouncer ...] [--runs N]

Without --root it brings the local stack up in a directory of its own and removes it at the end;
with --root and --stack it uses the local Swarm that `./run up` (or the Swarm suite, with
DPC_SWARM_ROOT) made there, and leaves it running (`rolling_update.on_local_swarm`).

Clients in app-1's namespace commit a row every 100 ms, as app_user over TLS, through each
PgBouncer (the certificate verified by name, each writer held to its own PgBouncer's address) and
through HAProxy's primary route on the managers; Patroni's view of the cluster is sampled every
second (`rolling_update.observed`). Then one task of the service is killed hard (SIGKILL of its
container, through its node's engine) and nothing else is done: Swarm's restart policy replaces
the task, and the run waits until the stack is healthy again and every client has written again
after that.

For each loss it prints where the task ran and where Swarm's replacement runs; when the killed task
ended, and when the replacement was made and ran (Swarm's task times); per client path the longest
time without an acknowledged write around the loss, when that time began and ended, and what the
failed attempts said; the leaders Patroni showed; and the rows acknowledged against the rows the
leader holds; at the end, per service, the figures of every run together. Exits 1 where a loss
differs from what the design promises (`loss_problems`).

What it found: Swarm runs the replacement 6–9 s after the kill (its restart delay is 5 s): a
PgBouncer's on its own node, an HAProxy's on any manager without one. A lost PgBouncer's clients
are refused until then and write again within a second of it; every other client path goes on
(longest gap 0.8 s). A lost HAProxy's own clients (libpq over every manager) go on through the
other HAProxy (0.5 s at most). A PgBouncer whose server connection ran through it opens the next
one, usually to the other HAProxy (gaps under 0.4 s, or about 1.4 s after a refused attempt and
`server_login_retry`); but it may pick the dead task's address, which it still has from Swarm's
DNS, where nothing answers: its clients then wait for PgBouncer's `server_connect_timeout` before
it tries the live HAProxy tasks (`pooled_stall_bound`). With PgBouncer's default, 15 s, that was
15.1–15.5 s in 4 of 24 pooled paths; the program now renders 3 s
(`dpc.render.pgbouncer.SERVER_CONNECT_TIMEOUT_SECONDS`), which measured 3.2–3.4 s.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from benchmarks.rolling_update import (
    CALL_TIMEOUT,
    HAPROXY_PATH,
    WRITE_PAUSE,
    Observation,
    Writes,
    haproxy_conninfo,
    leader,
    leaders_seen,
    observed,
    on_local_swarm,
    silence,
)
from dpc.cluster import CA_SECRET, DATABASE_NAME, Port, User
from dpc.settings import Settings
from engine.deploy import StackObjects, engine_time, nodes_by_id, nodes_running, task_states, wait_until_healthy
from engine.lab import Deployment
from engine.nodes import SwarmNode
from tests.cluster.client import CONNECT_TIMEOUT, wait_until

OWN_STACK = "replicas"
"""The namespace tag of a local Swarm this benchmark brings up itself."""
HAPROXY = "haproxy"
"""HAProxy's Swarm service (`ClusterLayout.haproxy`)."""
PGBOUNCER = "pgbouncer"
"""PgBouncer's Swarm service (`dpc.services`)."""
SERVICES = (HAPROXY, PGBOUNCER)
PGBOUNCER_PATH = "PgBouncer on {node}"
"""A client path through the PgBouncer on one app node."""
PGBOUNCER_INI = "pgbouncer.ini"
PGBOUNCER_DEFAULTS = {"dns_max_ttl": 15, "server_connect_timeout": 15, "server_login_retry": 15}
"""The settings whose sum `pooled_stall_bound` is, with PgBouncer's own values (1.18) where pgbouncer.ini sets none."""

HEALTHY_TIMEOUT = 180.0
"""Seconds the stack may take to be healthy again after a loss: Swarm's restart delay (5 s), the
task's start and its health check, with room for a busy machine."""
RESUME_TIMEOUT = 120.0
"""Seconds every client path may take, once the stack is healthy again, to acknowledge
RESUMED_ROWS rows sent after that."""
RESUMED_ROWS = 20
SURVIVOR_GAP = 2.0
"""Seconds a client path that the loss does not cut may go without an acknowledged write: twenty
times WRITE_PAUSE, far above a reconnection's time, well below Swarm's restart delay (5 s)."""
CLOCK_SLACK = 1.0
"""Seconds by which Swarm's time of a task running may trail its process's start."""
RESTART_RESUME = 5.0
"""Seconds a lost PgBouncer's clients may take to write again once its replacement runs: PgBouncer's
start, its first server logins (measured: 0.3–1.0 s)."""
ERRORS_SHOWN = 3


def pgbouncer_conninfo(deployment: Deployment, ca_file: Path, node: SwarmNode) -> dict[str, str | int]:
    """A client of the PgBouncer on `node` alone, as applications connect (app_user, TLS verified by
    name: PgBouncer's certificate names the service).
    """
    return {
        "host": PGBOUNCER,
        "hostaddr": node.address,
        "port": Port.PGBOUNCER,
        "dbname": DATABASE_NAME,
        "user": User.APP.value,
        "password": deployment.secret_values["app_user_password"],
        "sslmode": "verify-full",
        "sslrootcert": str(ca_file),
    }


def pgbouncer_servers(conninfo: Mapping[str, str | int], password: str) -> list[tuple[str, str, str]]:
    """The server connections of the PgBouncer `conninfo` reaches, as its admin console lists them
    (`SHOW SERVERS`, as pgbouncer_auth, an admin user): (database, user, address) each. The console
    speaks only the simple query protocol, which psycopg's client-side cursor uses.
    """
    admin = {**conninfo, "dbname": PGBOUNCER, "user": User.PGBOUNCER_AUTH.value, "password": password, "connect_timeout": CONNECT_TIMEOUT}
    with psycopg.connect(**admin, autocommit=True, cursor_factory=psycopg.ClientCursor) as connection:  # pyright: ignore[reportArgumentType]
        cursor = connection.execute("SHOW SERVERS")
        columns = [column.name for column in cursor.description or ()]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return [(str(row["database"]), str(row["user"]), str(row["addr"])) for row in rows]


def task_addresses(deployment: Deployment, service: str) -> dict[str, str]:
    """The overlay addresses of `service`'s running tasks (what its dnsrr name resolves to) → their nodes."""
    names = {node_id: node.name for node_id, node in nodes_by_id(deployment.nodes).items()}
    found: dict[str, str] = {}
    for task in deployment.manager.filtered("/tasks", service=[service], **{"desired-state": ["running"]}):
        for attachment in task.get("NetworksAttachments") or ():
            for address in attachment.get("Addresses") or ():
                found[str(address).split("/")[0]] = names.get(str(task.get("NodeID", "")), "?")
    return found


def haproxy_serving_pgbouncers(observation: Observation) -> tuple[str, Mapping[str, int]]:
    """The node of the HAProxy task that carries most of the PgBouncers' server connections for the
    applications (app_user to the read-write database), and how many each HAProxy node carries:
    losing that one is the loss the pooled clients feel, if any is. PgBouncer spreads its server
    connections over the addresses Swarm's DNS gives, in turn, so which one that is differs.
    """
    deployment = observation.deployment
    addresses = task_addresses(deployment, deployment.objects.layout.haproxy.name)
    password = deployment.secret_values["pgbouncer_auth_password"]
    carried: Counter[str] = Counter({node: 0 for node in addresses.values()})
    for path, writer in observation.writers.items():
        if path.startswith(PGBOUNCER_PATH.format(node="")):
            servers = observation.queries.call(pgbouncer_servers, writer.conninfo, password, timeout=CALL_TIMEOUT)
            carried.update(addresses.get(address, address) for database, user, address in servers if database == DATABASE_NAME and user == User.APP.value)
    return carried.most_common(1)[0][0], dict(carried)


def client_paths(deployment: Deployment, ca_file: Path) -> dict[str, dict[str, str | int]]:
    """Every client path: each running PgBouncer on its own, and HAProxy's primary route."""
    paths = {
        PGBOUNCER_PATH.format(node=node.name): pgbouncer_conninfo(deployment, ca_file, node)
        for node in nodes_running(deployment.manager, deployment.nodes, PGBOUNCER)
    }
    return paths | {HAPROXY_PATH: haproxy_conninfo(deployment, ca_file, User.APP, "app_user_password")}


@dataclass(frozen=True)
class PathSeen:
    """What one client path saw around a loss; times in seconds from the kill."""

    gap: float
    """The longest time without an acknowledged write from the kill until the stack was healthy."""
    gap_began: float
    """The acknowledgement before that time, and the one that ended it."""
    gap_ended: float
    errors: int
    """Failed attempts from the kill until the stack was healthy."""
    said: Mapping[str, int]
    """The failed attempts' first lines, most frequent first, with their counts."""
    written_after: int
    """Rows acknowledged of statements sent once the stack was healthy again (RESUMED_ROWS wanted)."""


@dataclass(frozen=True)
class ReplicaLost:
    """One task of a replicated service killed under observation; times in time.time()'s terms."""

    service: str
    node: str
    """Where the killed task ran."""
    nodes_before: tuple[str, ...]
    nodes_after: tuple[str, ...]
    """The nodes running the service's tasks before the kill, and once the stack is healthy again."""
    replicas: int
    pooled_bound: float
    """`pooled_stall_bound` of the deployed pgbouncer.ini."""
    carried: Mapping[str, int]
    """For a lost HAProxy: the PgBouncers' server connections for the applications each HAProxy node
    carried before the kill (the task that carried most is the one killed)."""
    killed: float
    """When the kill was sent to the engine."""
    ended: float | None
    """When Swarm recorded the killed task's end (None: not in the task history any more)."""
    created: float | None
    """When Swarm made the replacement task, and when it ran (its health check passing)."""
    running: float | None
    replaced_on: str
    """The node the replacement runs on."""
    healthy: float
    """When the stack was healthy again."""
    leader_before: str
    leaders: tuple[str, ...]
    """The leaders Patroni showed from the kill until every path wrote again ("none" between two)."""
    paths: Mapping[str, PathSeen]


def _seen(observation: Observation, path: str, killed: float, healthy: float) -> PathSeen:
    gap, began, ended = silence(observation.acknowledged_times(path), killed, healthy)
    said = Counter(message.splitlines()[0][:160] for message in observation.errors(killed, healthy, path) if message)
    sent_after = healthy - observation.offset
    return PathSeen(
        gap=gap,
        gap_began=began - killed,
        gap_ended=ended - killed,
        errors=observation.error_count(killed, healthy, path),
        said=dict(said.most_common(ERRORS_SHOWN)),
        written_after=sum(1 for ack in observation.writers[path].acknowledged if ack.sent_at > sent_after),
    )


def replica_lost(observation: Observation, service: str, node: str | None = None) -> ReplicaLost:
    """The container of `service`'s task on `node` (default: for HAProxy the task that carries most
    of the PgBouncers' server connections, `haproxy_serving_pgbouncers`; else the first node by
    name) killed with SIGKILL through that node's engine, as a crash or an OOM kill ends it; then the
    waits until the stack is healthy again (Swarm's restart policy replaces the task) and every
    client path has acknowledged RESUMED_ROWS rows sent after that (not raising when one has not:
    the report shows it). What Swarm, Patroni and the clients saw meanwhile.
    """
    deployment = observation.deployment
    replicas = next(s.replicas for s in deployment.objects.services if s.name == service)
    if replicas is None:
        raise ValueError(f"{service} is a global service: its lost task is not rescheduled elsewhere")
    carried: Mapping[str, int] = {}
    if node is None and service == deployment.objects.layout.haproxy.name:
        node, carried = haproxy_serving_pgbouncers(observation)
    running = sorted((s for s in task_states(deployment.manager, deployment.nodes, service) if s.state == "running" and s.container), key=lambda s: s.node)
    target = next(s for s in running if node is None or s.node == node)
    names = {node_id: node.name for node_id, node in nodes_by_id(deployment.nodes).items()}
    killed_task = next(
        t for t in deployment.manager.filtered("/tasks", service=[service]) if t["Status"].get("ContainerStatus", {}).get("ContainerID") == target.container
    )
    killed = time.time()
    deployment.node(target.node).engine.post(f"/containers/{target.container}/kill")
    wait_until_healthy(deployment.manager, deployment.nodes, deployment.objects, HEALTHY_TIMEOUT)
    healthy = time.time()
    with_resumed = list(observation.writers.values())
    with contextlib.suppress(TimeoutError):
        wait_until(
            "every client path writing again",
            lambda: all(len(w.acknowledged_after(healthy - observation.offset)) >= RESUMED_ROWS for w in with_resumed) or None,
            timeout=RESUME_TIMEOUT,
        )
    settled = time.time()
    tasks = deployment.manager.filtered("/tasks", service=[service])
    ended = next((t for t in tasks if t["ID"] == killed_task["ID"]), None)
    replacement = max(
        (t for t in tasks if t.get("Slot") == killed_task.get("Slot") and t["ID"] != killed_task["ID"] and t["DesiredState"] == "running"),
        key=lambda t: engine_time(t["CreatedAt"]),
        default=None,
    )
    return ReplicaLost(
        service=service,
        node=target.node,
        nodes_before=tuple(sorted(s.node for s in running)),
        nodes_after=tuple(sorted(n.name for n in nodes_running(deployment.manager, deployment.nodes, service))),
        replicas=replicas,
        pooled_bound=pooled_stall_bound(deployment.objects),
        carried=carried,
        killed=killed,
        ended=engine_time(ended["Status"]["Timestamp"]) if ended is not None else None,
        created=engine_time(replacement["CreatedAt"]) if replacement is not None else None,
        running=engine_time(replacement["Status"]["Timestamp"]) if replacement is not None and replacement["Status"]["State"] == "running" else None,
        replaced_on=names.get(str(replacement.get("NodeID", "")), "?") if replacement is not None else "none",
        healthy=healthy,
        leader_before=leader(observation.sampler.at(killed)),
        leaders=leaders_seen(observation.sampler, killed, settled),
        paths={path: _seen(observation, path, killed, healthy) for path in observation.writers},
    )


def pooled_stall_bound(objects: StackObjects) -> float:
    """The longest a pooled client may wait when the HAProxy under its PgBouncer's server connection
    dies, by the rendered pgbouncer.ini. PgBouncer opens the next server connection to an address it
    has from Swarm's DNS, and keeps those up to `dns_max_ttl` after the kill: possibly the dead
    task's, where nothing answers, and it gives that up only after `server_connect_timeout` (a
    refused one costs `server_login_retry` instead). By then it asks the DNS again, which gives the
    live tasks; SURVIVOR_GAP for that connection and the write. A client's cancel does not shorten
    the wait: PgBouncer drops a cancel for a client that waits for a server connection ("cancel
    request for idle client" in its log).
    """
    config = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    config.read_string(objects.configs[PGBOUNCER_INI])
    section = config["pgbouncer"]
    return sum(float(section.get(name, str(default))) for name, default in PGBOUNCER_DEFAULTS.items()) + SURVIVOR_GAP


def loss_problems(lost: ReplicaLost, writes: Writes) -> list[str]:
    """Where a loss differs from what the design promises (empty when it does not).

    Any loss: no acknowledged row lost; the leader unchanged throughout (a proxy's loss is no reason
    to fail over); Swarm's replacement made and running, and the service back at its count of
    running tasks; every client path writing again once the stack is healthy.

    A lost HAProxy: the kill hit the task that carried PgBouncer's server connections (else the
    drill proves nothing about the pooled paths); the other HAProxy serves meanwhile: the clients of
    HAProxy's route (libpq tries every manager) never without a write for longer than SURVIVOR_GAP,
    and each PgBouncer's clients for no longer than `pooled_stall_bound`.

    A lost PgBouncer: its replacement on the same node (its address is what its clients know);
    every other path never without a write for longer than SURVIVOR_GAP; the lost one's clients
    write again only once the replacement runs, and within RESTART_RESUME of it.
    """
    found = [f"{len(writes.lost)} acknowledged rows lost: {list(writes.lost[:10])}"] if writes.lost else []
    if set(lost.leaders) != {lost.leader_before} or lost.leader_before == "none":
        found.append(f"the leadership changed: {lost.leader_before} before, then {' → '.join(lost.leaders)}")
    if lost.running is None:
        found.append(f"Swarm's replacement of {lost.service} on {lost.node} is not running (made: {lost.created is not None})")
    if len(lost.nodes_after) != lost.replicas:
        found.append(f"{lost.service} runs on {list(lost.nodes_after)}: want {lost.replicas} tasks")
    for path, seen in lost.paths.items():
        if seen.written_after < RESUMED_ROWS:
            found.append(f"{path}: {seen.written_after} rows acknowledged once the stack was healthy again, want {RESUMED_ROWS} within {RESUME_TIMEOUT:.0f}s")
    cut = PGBOUNCER_PATH.format(node=lost.node)
    for path, seen in lost.paths.items():
        bound = lost.pooled_bound if lost.service != PGBOUNCER and path != HAPROXY_PATH else SURVIVOR_GAP
        if path != cut and seen.gap > bound:
            found.append(f"{path}: {seen.gap:.1f}s without an acknowledged write ({seen.gap_began:.1f}s to {seen.gap_ended:.1f}s), "
                         f"want at most {bound:.0f}s")  # fmt: skip
    if lost.service == PGBOUNCER:
        if lost.nodes_after != lost.nodes_before:
            found.append(f"PgBouncer ran on {list(lost.nodes_before)} and runs on {list(lost.nodes_after)}: its clients' addresses changed")
        seen = lost.paths[cut]
        if lost.running is not None and not lost.running - lost.killed - CLOCK_SLACK <= seen.gap_ended <= lost.running - lost.killed + RESTART_RESUME:
            found.append(f"{cut}: wrote again at {seen.gap_ended:.1f}s, its replacement ran at {lost.running - lost.killed:.1f}s: "
                         f"want within {RESTART_RESUME:.0f}s after it, not before")  # fmt: skip
    elif lost.carried and lost.carried.get(lost.node, 0) < 1:
        found.append(f"the HAProxy killed on {lost.node} carried none of the PgBouncers' server connections ({dict(lost.carried)})")
    return found


def describe_loss(lost: ReplicaLost, writes: Writes | None = None) -> list[str]:
    """The loss's figures, one line each, times in seconds from the kill."""

    def at(moment: float | None) -> str:
        return f"{moment - lost.killed:.1f}s" if moment is not None else "never"

    lines = [
        f"{lost.service}: the task on {lost.node} killed (running on {', '.join(lost.nodes_before)}); Swarm ended it at {at(lost.ended)}, "
        f"made its replacement at {at(lost.created)}, running on {lost.replaced_on} at {at(lost.running)}; stack healthy at {at(lost.healthy)}; "
        f"now on {', '.join(lost.nodes_after)}; leaders {lost.leader_before} → {' → '.join(lost.leaders)}",
    ]
    if lost.carried:
        lines.append("  the PgBouncers' server connections for the applications before the kill, by HAProxy node: "
                     + ", ".join(f"{node} {count}" for node, count in sorted(lost.carried.items())))  # fmt: skip
    for path, seen in lost.paths.items():
        said = "; ".join(f"{count}× {message}" for message, count in seen.said.items())
        lines.append(
            f"  {path}: longest time without an acknowledged write {seen.gap:.2f}s (from {seen.gap_began:.2f}s to {seen.gap_ended:.2f}s), "
            f"{seen.errors} failed attempts{f' ({said})' if said else ''}; {seen.written_after} rows acknowledged once healthy again"
        )
    if writes is not None:
        lines.append(f"  rows acknowledged {writes.acknowledged}, held by the leader {writes.held}, acknowledged and lost {len(writes.lost)}; "
                     f"in doubt {writes.in_doubt}; failed attempts {writes.errors}")  # fmt: skip
    return lines


def summary(losses: Sequence[ReplicaLost]) -> list[str]:
    """Per service, every run's figures together: when the replacement ran, and per kind of client
    path (the lost PgBouncer's, another PgBouncer's, HAProxy's route) the longest times without a write.
    """

    def kind(lost: ReplicaLost, path: str) -> str:
        if path == HAPROXY_PATH:
            return "HAProxy's route"
        return "the lost PgBouncer" if lost.service == PGBOUNCER and path == PGBOUNCER_PATH.format(node=lost.node) else "a PgBouncer"

    lines: list[str] = []
    for service in dict.fromkeys(lost.service for lost in losses):
        runs = [lost for lost in losses if lost.service == service]
        running = sorted(lost.running - lost.killed for lost in runs if lost.running is not None)
        gaps: dict[str, list[float]] = {}
        for lost in runs:
            for path, seen in lost.paths.items():
                gaps.setdefault(kind(lost, path), []).append(seen.gap)
        lines.append(
            f"{service}, {len(runs)} runs: replacement running at " + ", ".join(f"{t:.1f}" for t in running) + " s; longest times without a write: "
            + "; ".join(f"{name} " + ", ".join(f"{gap:.2f}" for gap in sorted(values)) + " s" for name, values in gaps.items())
        )
    return lines


def measured_loss(deployment: Deployment, ca_file: Path, service: str, node: str | None = None) -> tuple[ReplicaLost, Writes]:
    """One loss of `service` under writers through every client path (`client_paths`), and the
    rows they acknowledged against the rows the leader holds once the stack is healthy again.
    """
    with observed(deployment, ca_file, client_paths(deployment, ca_file)) as observation:
        lost = replica_lost(observation, service, node)
    if observation.result is None:
        raise RuntimeError("the observation ended without its result")
    return lost, observation.result


def _measure(deployment: Deployment, services: Sequence[str], runs: int) -> int:
    print(
        f"replica loss on the local Swarm ({len(deployment.nodes)} engines in network namespaces, {os.cpu_count()} CPUs): one task of the "
        f"service SIGKILLed through its node's engine, Swarm left to replace it; clients on app-1 commit a row every {WRITE_PAUSE * 1000:.0f} ms "
        "through each PgBouncer (app_user, TLS verified by name) and HAProxy's primary route; task times are Swarm's",
        flush=True,
    )
    found: list[str] = []
    losses: list[ReplicaLost] = []
    with tempfile.TemporaryDirectory(prefix="dpc-replica-loss-") as scratch:
        ca_file = Path(scratch) / "ca.pem"
        ca_file.write_text(deployment.secret_values[CA_SECRET])
        for run in range(1, runs + 1):
            for service in services:
                lost, writes = measured_loss(deployment, ca_file, service)
                losses.append(lost)
                print(f"run {run}: " + "\n".join(describe_loss(lost, writes)), flush=True)
                found += [f"run {run}, {service}: {problem}" for problem in loss_problems(lost, writes)]
    for line in summary(losses):
        print(line)
    for problem in found:
        print(f"PROBLEM: {problem}")
    return 1 if found else 0




def main() -> int:
    """Loses each service's replica `--runs` times on a given local Swarm, or on one of its own."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="the directory of a local Swarm that is up (./run up's --root/<stack>)")
    parser.add_argument("--stack", default="local", help="its stack name (the namespaces' tag)")
    parser.add_argument("--service", action="append", choices=SERVICES, help="a service to lose a task of (repeatable; default: both)")
    parser.add_argument("--runs", type=int, default=1, help="losses of each service (default 1)")
    args = parser.parse_args()

    def measure(deployment: Deployment, settings: Settings) -> int:
        del settings
        return _measure(deployment, args.service or SERVICES, args.runs)

    return on_local_swarm(args.root, args.stack, OWN_STACK, measure)


if __name__ == "__main__":
    sys.exit(main())

