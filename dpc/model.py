"""The cloud-neutral model: node roles, Swarm labels and the host firewall matrix, as data (the
tiers, the overlay networks of design §2.2, are in `dpc.tiers`).

Every provider translates this model into its own resources and the tests and the policy pack
check the result against it, so each fact (which role runs what, which port is open from where)
is written down exactly once, here.

Where the original architecture disagrees with itself, the choice made here is stated next to the data:
- It places HAProxy on the managers, so the "PostgreSQL proxy" port 5432 of its firewall rules is
  open on the managers (from the load balancer and the clients), not on the app nodes (design §11.1).
- Service-to-service traffic of Swarm services travels between hosts as VXLAN (4789/udp), and on
  the encrypted overlays as ESP (IP protocol 50); the per-port rules of the overlay networks
  (design §2.2) are enforced at overlay level by the database stack (design §11.2). The host
  matrix below holds the Swarm ports, the ports that services publish on their hosts, SSH and
  monitoring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from dpc.catalog import machine_type
from dpc.settings import NodeGroup, Settings
from dpc.sizing import PostgresSizing, postgres_sizing


class Role(StrEnum):
    """What a machine is for (design §1.1)."""

    MANAGER = "manager"
    WORKER = "worker"
    APP = "app"
    BACKUP = "backup"
    BASTION = "bastion"


SWARM_ROLES: tuple[Role, ...] = (Role.MANAGER, Role.WORKER, Role.APP, Role.BACKUP)
"""Roles whose machines join the Swarm; the bastion stays outside it."""

SERVICES_BY_ROLE: dict[Role, tuple[str, ...]] = {
    Role.MANAGER: ("etcd", "haproxy", "prometheus", "alertmanager", "grafana"),
    Role.WORKER: ("patroni",),
    Role.APP: ("pgbouncer", "redis"),
    Role.BACKUP: ("backup",),
    Role.BASTION: (),
}
"""Design §1.1; node-exporter and cAdvisor run on every Swarm node besides these."""


Protocol = Literal["tcp", "udp", "esp"]


@dataclass(frozen=True)
class FromRole:
    """Traffic from the machines of a role."""

    role: Role


@dataclass(frozen=True)
class FromCidrs:
    """Traffic from networks named in the settings: the admins' or the database clients'.

    Clients default to the VPC itself when the stack lists none, so the endpoint stays internal.
    """

    kind: Literal["admin", "clients"]


@dataclass(frozen=True)
class FromLoadBalancer:
    """Traffic forwarded by the cloud's network load balancer."""


Source = FromRole | FromCidrs | FromLoadBalancer


@dataclass(frozen=True)
class Rule:
    """One allowed inbound flow: to the machines of `to` (None: the load balancer itself), on
    ports `port`–`to_port`, from `source`.
    """

    to: Role | None
    protocol: Protocol
    port: int
    to_port: int
    source: Source
    purpose: str


def _from_each(roles: tuple[Role, ...]) -> tuple[FromRole, ...]:
    return tuple(FromRole(role) for role in roles)


def _swarm_rules() -> list[Rule]:
    rules: list[Rule] = []
    for target in SWARM_ROLES:
        for source in _from_each(SWARM_ROLES):
            if target is Role.MANAGER:
                rules.append(Rule(target, "tcp", 2377, 2377, source, "Docker Swarm management"))
            rules.append(Rule(target, "tcp", 7946, 7946, source, "Swarm node discovery (TCP)"))
            rules.append(Rule(target, "udp", 7946, 7946, source, "Swarm node discovery (UDP)"))
            rules.append(Rule(target, "udp", 4789, 4789, source, "Swarm overlay traffic (VXLAN)"))
            rules.append(Rule(target, "esp", 0, 0, source, "Encrypted overlay traffic (IPsec ESP)"))
    return rules


def _service_rules() -> list[Rule]:
    manager, worker, app = FromRole(Role.MANAGER), FromRole(Role.WORKER), FromRole(Role.APP)
    bastion = FromRole(Role.BASTION)
    rules = [
        Rule(Role.MANAGER, "tcp", 2379, 2380, manager, "etcd client and peer (between members)"),
        Rule(Role.MANAGER, "tcp", 2379, 2379, worker, "etcd client (Patroni)"),
        Rule(Role.MANAGER, "tcp", 5432, 5432, FromLoadBalancer(), "PostgreSQL through HAProxy (load balancer)"),
        Rule(Role.MANAGER, "tcp", 5432, 5432, FromCidrs("clients"), "PostgreSQL through HAProxy (clients)"),
        Rule(Role.MANAGER, "tcp", 5432, 5432, app, "PostgreSQL through HAProxy (PgBouncer)"),
        Rule(Role.WORKER, "tcp", 5432, 5432, manager, "PostgreSQL (HAProxy)"),
        Rule(Role.WORKER, "tcp", 5432, 5432, app, "PostgreSQL (PgBouncer)"),
        Rule(Role.WORKER, "tcp", 5432, 5432, FromRole(Role.BACKUP), "PostgreSQL replication (backup agent)"),
        Rule(Role.WORKER, "tcp", 8008, 8008, manager, "Patroni REST API (HAProxy checks, Prometheus)"),
        Rule(Role.APP, "tcp", 6432, 6432, FromCidrs("clients"), "PgBouncer (clients)"),
        Rule(Role.APP, "tcp", 6379, 6379, FromCidrs("clients"), "Redis (clients)"),
        Rule(Role.MANAGER, "tcp", 3000, 3000, bastion, "Grafana (operators through the bastion)"),
        Rule(Role.MANAGER, "tcp", 9090, 9090, bastion, "Prometheus (operators through the bastion)"),
        Rule(Role.MANAGER, "tcp", 9093, 9093, bastion, "Alertmanager (operators through the bastion)"),
        Rule(Role.MANAGER, "tcp", 7000, 7000, bastion, "HAProxy statistics (operators through the bastion)"),
        Rule(Role.BASTION, "tcp", 22, 22, FromCidrs("admin"), "SSH to the bastion (admins)"),
        Rule(None, "tcp", 5432, 5432, FromCidrs("clients"), "PostgreSQL endpoint (clients)"),
    ]
    for target in SWARM_ROLES:
        rules.append(Rule(target, "tcp", 22, 22, bastion, "SSH (only through the bastion)"))
        rules.append(Rule(target, "tcp", 9100, 9100, manager, "node-exporter (Prometheus)"))
        rules.append(Rule(target, "tcp", 8080, 8080, manager, "cAdvisor (Prometheus)"))
    return rules


FIREWALL_MATRIX: tuple[Rule, ...] = tuple(_swarm_rules() + _service_rules())
"""Every inbound flow the hosts allow; anything not listed is dropped. Outbound is open (design §2.5)."""

LOAD_BALANCER_PORT = 5432
LOAD_BALANCER_TARGET_ROLE = Role.MANAGER
"""HAProxy runs on the managers (design §1.1); the load balancer forwards TCP 5432 to them."""



@dataclass(frozen=True)
class HealthCheck:
    """How the load balancer decides a target is serving."""

    protocol: str
    port: int
    interval_seconds: int
    healthy_threshold: int
    unhealthy_threshold: int


LOAD_BALANCER_HEALTH_CHECK = HealthCheck("TCP", 5432, interval_seconds=10, healthy_threshold=3, unhealthy_threshold=3)
"""Design §2.4: TCP on the traffic port, every 10 s, 3 checks to turn healthy or unhealthy."""


@dataclass(frozen=True)
class Node:
    """One machine of the cluster."""

    role: Role
    index: int
    zone: str
    machine_type: str
    root_volume_gb: int
    labels: dict[str, str] = field(default_factory=dict[str, str])

    @property
    def name(self) -> str:
        """`manager-1`, `worker-3`: stable, so renaming a stack does not rename its machines."""
        return f"{self.role.value}-{self.index}"

    @property
    def swarm_init(self) -> bool:
        """manager-1 initialises the Swarm; every other node joins it."""
        return self.role is Role.MANAGER and self.index == 1


def _labels(role: Role, index: int) -> dict[str, str]:
    """Design §1.4: the original architecture's labels, plus placement labels it leaves implicit:
    `dpc.role` on every node, `postgres.pgbouncer` on the app nodes and `postgres.backup` on the
    backup node.
    """
    labels = {"dpc.role": role.value}
    if role is Role.MANAGER:
        labels["postgres.etcd"] = f"etcd-{index}"
    elif role is Role.WORKER:
        labels |= {"postgres.role": "patroni", "postgres.patroni-id": str(index)}
    elif role is Role.APP:
        labels["postgres.pgbouncer"] = "true"
        if index == 1:
            labels["redis.role"] = "master"
    elif role is Role.BACKUP:
        labels["postgres.backup"] = "true"
    return labels


def node_group(settings: Settings, role: Role) -> NodeGroup:
    """The settings of a role's machines (the bastion has no group: it is not in the Swarm)."""
    groups = {
        Role.MANAGER: settings.nodes.managers,
        Role.WORKER: settings.nodes.workers,
        Role.APP: settings.nodes.app,
        Role.BACKUP: settings.nodes.backup,
    }
    return groups[role]


def plan_nodes(settings: Settings) -> list[Node]:
    """The Swarm nodes, each role spread round-robin over the zones.

    With as many zones as members, every etcd and every Patroni member sits in its own zone.
    """
    nodes: list[Node] = []
    for role in SWARM_ROLES:
        group = node_group(settings, role)
        for index in range(1, group.count + 1):
            zone = settings.zones[(index - 1) % len(settings.zones)]
            nodes.append(Node(role, index, zone, group.machine_type, group.root_volume_gb, _labels(role, index)))
    return nodes


def bastion_node(settings: Settings) -> Node:
    """The bastion, in the first zone's public subnet."""
    bastion = settings.nodes.bastion
    return Node(Role.BASTION, 1, settings.zones[0], bastion.machine_type, bastion.root_volume_gb)


def worker_sizing(settings: Settings) -> PostgresSizing:
    """PostgreSQL sizing of the workers, from their machine type and the expected workload."""
    worker = machine_type(settings.cloud, settings.nodes.workers.machine_type)
    return postgres_sizing(worker.memory_gib, settings.database.expected_concurrent_users)


def stack_tags(settings: Settings, stack: str) -> dict[str, str]:
    """The tags every taggable resource carries in its own inputs."""
    return dict(sorted((settings.tags | {"ManagedBy": "pulumi", "Stack": stack}).items()))


class Capability(StrEnum):
    """What a machine's own cloud identity may do; each cloud grants exactly these and nothing more."""

    READ_MANAGER_JOIN = "read-manager-join"
    """Read the manager join token and manager-1's address."""
    READ_WORKER_JOIN = "read-worker-join"
    """Read the worker join token and manager-1's address."""
    PUBLISH_JOIN = "publish-join"
    """Write the join tokens and the address (manager-1, or a manager that re-initialises)."""
    WRITE_BACKUPS = "write-backups"
    """Read and write the offsite backup bucket (the backup agent: offsite backups and WAL)."""
    PULL_IMAGES = "pull-images"
    """Read the stack's image list and pull those images from the stack's registry: every Swarm
    node, since the services carry no registry credentials (`components.registry`)."""
    READ_HOST_KEY = "read-host-key"
    """Read the SSH host key the deployment generated for the role's machine that `pulumi up`
    reaches (manager-1, the bastion; `components.access`)."""


def role_capabilities(backup_agent_role: Role) -> dict[Role, tuple[Capability, ...]]:
    """What each role's machines may do. Only the backup agent's machines reach the offsite bucket:
    the database hosts send their WAL through the repository host, never to the bucket themselves.
    """
    capabilities: dict[Role, tuple[Capability, ...]] = {
        Role.MANAGER: (Capability.READ_MANAGER_JOIN, Capability.PUBLISH_JOIN),
        Role.WORKER: (Capability.READ_WORKER_JOIN,),
        Role.APP: (Capability.READ_WORKER_JOIN,),
        Role.BACKUP: (Capability.READ_WORKER_JOIN,),
        Role.BASTION: (Capability.READ_HOST_KEY,),
    }
    capabilities[Role.MANAGER] = (*capabilities[Role.MANAGER], Capability.READ_HOST_KEY)
    capabilities[backup_agent_role] = (*capabilities[backup_agent_role], Capability.WRITE_BACKUPS)
    for role in SWARM_ROLES:
        capabilities[role] = (*capabilities[role], Capability.PULL_IMAGES)
    return capabilities
