"""The one translation of the stack's services (dpc/services.py) and overlay networks
(dpc/tiers.py) into Docker Swarm's terms, in the Docker Engine API's vocabulary.

Every deployment path reads the Swarm spec from here: the DatabaseStack component
(components/database.py) renames it into pulumi-docker arguments, the stack-file export
(engine/docker_stack.py) into a `docker stack deploy` file, and `engine_service_spec` /
`engine_network_spec` into the Engine API's own request bodies (what a test lab POSTs to real
engines). Those three only rename fields and resolve references (an image key to an image, a
tier to a network, a catalogue name to a created secret or config); every decision — which
files are configs and which secrets, who owns them, the units, the restart, update and rollback
policies, how many tasks a node may run, how ports are published — is taken once, here, so what
a test deploys is what `pulumi up` deploys. `tests/unit/test_swarm_spec.py` holds the three
outputs to each other field by field.

Engine API field names and types are those of API v1.41 (Docker 20.10, what Debian's
`docker.io` serves): durations in nanoseconds, CPUs in billionths, memory in bytes, file owners
as strings, file modes as integers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from dpc.services import BUILT_IMAGES, ServiceSpec
from dpc.tiers import Tier, TierSpec

EndpointMode = Literal["vip", "dnsrr"]
"""How a service's name resolves on its networks (Engine `EndpointSpec.Mode`).

`vip`, the deployed default: the name resolves to one virtual address that the kernel's IPVS
balances over the tasks, and published ports go through Swarm's ingress routing mesh, so any
node's port reaches the service (the cloud's load balancer targets every node, design §2.3).
`dnsrr`: the name resolves to the tasks' own addresses in turn, with no virtual address and so
no IPVS; for engines whose kernel has no IPVS (the issue-9 lab's network namespaces). Swarm
refuses ingress-published ports on a dnsrr service (moby/swarmkit#1693: the ingress network
only works through a virtual address), so `swarm_service` publishes its ports in `host` mode:
on the nodes that run a task only.
"""

PublishMode = Literal["ingress", "host"]
_PUBLISH_MODE: dict[EndpointMode, PublishMode] = {"vip": "ingress", "dnsrr": "host"}

_NANO = 10**9
_MIB = 2**20


@dataclass(frozen=True)
class RestartPolicy:
    """A stopped task is restarted after `delay_seconds`, a restart counting as failed if the task
    ends within `window_seconds`; never given up (no maximum of attempts).
    """

    condition: Literal["none", "on-failure", "any"]
    delay_seconds: int
    window_seconds: int


RESTART_POLICY = RestartPolicy(condition="any", delay_seconds=5, window_seconds=120)

STOP_GRACE_SECONDS = 60
"""Time between SIGTERM and SIGKILL: Patroni demotes and PostgreSQL checkpoints within it."""


@dataclass(frozen=True)
class Converge:
    """How long a deployer waits for a replicated service's tasks to run its new spec, checking
    every `delay_seconds`. Not part of the Engine's spec: pulumi-docker waits by it, and it is
    what makes `ServiceSpec.after` roll quorum members one at a time (without the wait the
    provider returns once Docker accepts an update, and the next member would restart while the
    first is still down). A lab that creates services itself bounds its own wait by it.
    """

    delay_seconds: int
    timeout_seconds: int


CONVERGE = Converge(delay_seconds=7, timeout_seconds=15 * 60)


@dataclass(frozen=True)
class FileRef:
    """A Docker secret or config mounted as a file, named by its catalogue name
    (dpc/database_files.py, the generated secrets); deployers resolve the name to what they created.
    """

    name: str
    target: str
    uid: str
    gid: str
    mode: int


@dataclass(frozen=True)
class Mount:
    """A host directory (`bind`) or a named volume (`volume`) in the container."""

    type: Literal["bind", "volume"]
    source: str
    target: str
    read_only: bool


@dataclass(frozen=True)
class PortConfig:
    """A published port (Engine `EndpointPortConfig`)."""

    target: int
    published: int
    protocol: Literal["tcp", "udp", "sctp"]
    publish_mode: PublishMode


@dataclass(frozen=True)
class Allocation:
    """CPUs and memory, as a limit or a reservation (Engine `Limit` / `ResourceObject`)."""

    nano_cpus: int
    memory_bytes: int


@dataclass(frozen=True)
class UpdateConfig:
    """How tasks are replaced, in an update or a rollback (Engine `UpdateConfig`/`RollbackConfig`)."""

    parallelism: int
    delay_seconds: int
    failure_action: Literal["continue", "pause", "rollback"]
    monitor_seconds: int
    max_failure_ratio: float
    order: Literal["stop-first", "start-first"]


@dataclass(frozen=True)
class SwarmService:
    """One Swarm service, decided: what every deployer creates for one `ServiceSpec`."""

    name: str
    labels: tuple[tuple[str, str], ...]
    image: str
    """A key of BUILT_IMAGES when `image_built`, resolved by the deployer; otherwise a pinned reference."""
    image_built: bool
    args: tuple[str, ...]
    """The command, as arguments to the image's entrypoint (Engine `Args`, compose `command`)."""
    env: tuple[tuple[str, str], ...]
    user: str
    secrets: tuple[FileRef, ...]
    configs: tuple[FileRef, ...]
    mounts: tuple[Mount, ...]
    stop_grace_seconds: int
    limits: Allocation
    reservations: Allocation
    restart: RestartPolicy
    constraints: tuple[str, ...]
    max_replicas_per_node: int | None
    """None: no limit."""
    networks: tuple[Tier, ...]
    replicas: int | None
    """None: a global service, one task on every node."""
    update: UpdateConfig
    rollback: UpdateConfig
    endpoint_mode: EndpointMode
    ports: tuple[PortConfig, ...]
    converge: Converge | None
    """Set for replicated services only: a global service has no count of tasks to reach."""


@dataclass(frozen=True)
class SwarmNetwork:
    """One overlay network, decided (Engine `NetworkCreate`)."""

    tier: Tier
    name: str
    driver: str
    attachable: bool
    options: tuple[tuple[str, str], ...]
    subnet: str
    labels: tuple[tuple[str, str], ...]


def content_name(base: str, content: str) -> str:
    """A Docker config's name: configs are immutable, so a changed file gets a new name and the
    services roll over to it instead of failing to update it in place.
    """
    return f"{base}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def secret_name(base: str, content: str, key: str) -> str:
    """A Docker secret's name, new whenever its content changes, like a config's; the digest is
    keyed because names are shown by `docker secret ls`, the plan and the state, where an unkeyed
    digest of a password would let anyone check a guess of it.
    """
    return f"{base}-{hmac.new(key.encode(), content.encode(), hashlib.sha256).hexdigest()[:12]}"


def swarm_service(spec: ServiceSpec, config_names: Collection[str], endpoint_mode: EndpointMode = "vip") -> SwarmService:
    """The Swarm service of `spec`. `config_names` are the plain rendered files' catalogue names:
    a file the service mounts is a Docker config when its name is one of them, a secret otherwise.
    `endpoint_mode` (see EndpointMode) is `vip` for every deployment; `dnsrr` for engines without IPVS.
    """
    uid = str(spec.uid)
    files = [FileRef(f.source, f.target, uid=uid, gid=uid, mode=f.mode) for f in spec.files]
    update, resources = spec.update, spec.resources
    return SwarmService(
        name=spec.name,
        labels=(("dpc.role", spec.role.value),),
        image=spec.image,
        image_built=spec.image in BUILT_IMAGES,
        args=spec.command,
        env=spec.env,
        user=uid,
        secrets=tuple(f for f in files if f.name not in config_names),
        configs=tuple(f for f in files if f.name in config_names),
        mounts=tuple(Mount(v.kind, v.source, v.target, v.read_only) for v in spec.volumes),
        stop_grace_seconds=STOP_GRACE_SECONDS,
        limits=Allocation(round(resources.cpu_limit * _NANO), resources.memory_limit_mb * _MIB),
        reservations=Allocation(round(resources.cpu_reservation * _NANO), resources.memory_reservation_mb * _MIB),
        restart=RESTART_POLICY,
        constraints=spec.constraints,
        # Replicas of a pinned service never share a node: one node lost takes one of them.
        max_replicas_per_node=1 if spec.replicas and spec.replicas > 1 and spec.constraints else None,
        networks=spec.networks,
        replicas=spec.replicas,
        update=UpdateConfig(
            parallelism=update.parallelism, delay_seconds=update.delay_seconds, failure_action=update.failure_action,
            monitor_seconds=update.monitor_seconds, max_failure_ratio=0.0, order=update.order,
        ),
        rollback=UpdateConfig(
            parallelism=update.parallelism, delay_seconds=update.rollback_delay_seconds, failure_action=update.rollback_failure_action,
            monitor_seconds=update.monitor_seconds, max_failure_ratio=0.0, order=update.order,
        ),
        endpoint_mode=endpoint_mode,
        ports=tuple(PortConfig(p.target, p.published, "tcp", _PUBLISH_MODE[endpoint_mode]) for p in spec.ports),
        converge=CONVERGE if spec.replicas is not None else None,
    )


def swarm_network(spec: TierSpec) -> SwarmNetwork:
    """The overlay network of a tier: only services join it (not attachable by plain containers),
    with its subnet and IPsec on the tiers that mandate it (design §2.2, §2.6). An engine whose
    kernel cannot do IPsec gets a TierSpec with `encrypted=False` (dataclasses.replace), never a
    network that silently drops its traffic.
    """
    return SwarmNetwork(
        tier=spec.tier,
        name=spec.network_name,
        driver="overlay",
        attachable=False,
        options=(("encrypted", ""),) if spec.encrypted else (),
        subnet=spec.subnet,
        labels=(("dpc.tier", spec.tier.value),),
    )


T = TypeVar("T")


def image_reference(service: SwarmService, built: Mapping[str, T]) -> T | str:
    """The image a deployer runs: its own reference of a built image, a vendor image as pinned."""
    return built[service.image] if service.image_built else service.image


@dataclass(frozen=True)
class ObjectRef:
    """A created Docker secret or config: the Engine references it by id, and shows its name."""

    id: str
    name: str


@dataclass(frozen=True)
class EngineRefs:
    """What a deployer created, by the names SwarmService uses."""

    images: Mapping[str, str]
    """Built image key → image reference."""
    networks: Mapping[Tier, str]
    """Tier → network id."""
    objects: Mapping[str, ObjectRef]
    """Catalogue name → the secret or config created for it."""


def _seconds(seconds: int) -> int:
    return seconds * _NANO


def _update(config: UpdateConfig) -> dict[str, Any]:
    return {
        "Parallelism": config.parallelism,
        "Delay": _seconds(config.delay_seconds),
        "FailureAction": config.failure_action,
        "Monitor": _seconds(config.monitor_seconds),
        "MaxFailureRatio": config.max_failure_ratio,
        "Order": config.order,
    }


def _allocation(allocation: Allocation) -> dict[str, int]:
    return {"NanoCPUs": allocation.nano_cpus, "MemoryBytes": allocation.memory_bytes}


def _file(file: FileRef) -> dict[str, Any]:
    return {"Name": file.target, "UID": file.uid, "GID": file.gid, "Mode": file.mode}


def engine_service_spec(service: SwarmService, refs: EngineRefs) -> dict[str, Any]:
    """The Engine API's `ServiceSpec` of `service`: the body of `POST /services/create`."""
    placement: dict[str, Any] = {"Constraints": list(service.constraints)}
    if service.max_replicas_per_node is not None:
        placement["MaxReplicas"] = service.max_replicas_per_node
    secrets = [{"File": _file(f), "SecretID": refs.objects[f.name].id, "SecretName": refs.objects[f.name].name} for f in service.secrets]
    configs = [{"File": _file(f), "ConfigID": refs.objects[f.name].id, "ConfigName": refs.objects[f.name].name} for f in service.configs]
    return {
        "Name": service.name,
        "Labels": dict(service.labels),
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": image_reference(service, refs.images),
                "Args": list(service.args),
                "Env": [f"{key}={value}" for key, value in service.env],
                "User": service.user,
                "Secrets": secrets,
                "Configs": configs,
                "Mounts": [{"Type": m.type, "Source": m.source, "Target": m.target, "ReadOnly": m.read_only} for m in service.mounts],
                "StopGracePeriod": _seconds(service.stop_grace_seconds),
            },
            "Resources": {"Limits": _allocation(service.limits), "Reservations": _allocation(service.reservations)},
            "RestartPolicy": {
                "Condition": service.restart.condition,
                "Delay": _seconds(service.restart.delay_seconds),
                "Window": _seconds(service.restart.window_seconds),
            },
            "Placement": placement,
            "Networks": [{"Target": refs.networks[tier]} for tier in service.networks],
        },
        "Mode": {"Global": {}} if service.replicas is None else {"Replicated": {"Replicas": service.replicas}},
        "UpdateConfig": _update(service.update),
        "RollbackConfig": _update(service.rollback),
        "EndpointSpec": {
            "Mode": service.endpoint_mode,
            "Ports": [
                {"Protocol": p.protocol, "TargetPort": p.target, "PublishedPort": p.published, "PublishMode": p.publish_mode}
                for p in service.ports
            ],
        },
    }


def engine_network_spec(network: SwarmNetwork) -> dict[str, Any]:
    """The Engine API's body of `POST /networks/create` for `network`."""
    return {
        "Name": network.name,
        "CheckDuplicate": True,
        "Driver": network.driver,
        "Attachable": network.attachable,
        "Options": dict(network.options),
        "IPAM": {"Config": [{"Subnet": network.subnet}]},
        "Labels": dict(network.labels),
    }
