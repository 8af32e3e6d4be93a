"""The database cluster as the rendered configuration files see it: who the members are, where
they listen, where secrets and data live, and which secrets and certificates exist.

Every renderer (`dpc.render`) is a pure function of a `ClusterLayout`. The Swarm deployment builds
the layout from the settings (`swarm_layout`): members are found by their Swarm service names and
secrets are files under /run/secrets. The real-cluster smoke run builds the same layout with the
addresses of its network namespaces and directories of its own, so the files it starts are the
files the program deploys.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from dpc.catalog import machine_type
from dpc.environments import Environment
from dpc.model import Node, Role, worker_sizing
from dpc.settings import Settings
from dpc.sizing import PostgresSizing, WalBudget, wal_budget

CLUSTER_SCOPE = "postgres-cluster-main"
"""Patroni's cluster name (design §5.1)."""

DATABASE_NAME = "distributed_postgres_cluster"
"""The application database (design §3.3)."""

BACKUP_STANZA = "main"
"""pgBackRest's name for this cluster in its repositories; archive_command and the backup agent agree on it."""

BACKUP_METRICS_FILE = "dpc_backup.prom"
"""The backup agent's metrics, written for node-exporter's textfile collector on the backup node:
`dpc_backup_last_success_timestamp_seconds{type="full"|"diff"}` and
`dpc_backup_last_run_success{type=...}` (1 or 0).
"""

BACKUP_LAST_SUCCESS_METRIC = "dpc_backup_last_success_timestamp_seconds"
"""Unix time of the last successful backup, labelled `type` ("full" or "diff"); alerts read its age."""

BACKUP_LAST_RUN_METRIC = "dpc_backup_last_run_success"
"""1 if the last backup run of a `type` succeeded, 0 if it failed."""

MIN_POOLED_CLIENTS = 10_000
"""Clients all PgBouncer replicas together admit (design §5.4, §11.39): 10,000 concurrent TLS
clients, 2 × 5000 with prod's two PgBouncers, measured by benchmarks/pooler_connections.py."""


HOST_VOLUMES_ROOT = "/mnt/postgres-cluster"
"""Where the cloud volumes are mounted on the hosts (design §4.1)."""


def patroni_mount_points(index: int) -> tuple[str, str]:
    """The host directories of Patroni member `index`'s data and WAL volumes."""
    base = f"{HOST_VOLUMES_ROOT}/patroni-{index}"
    return base, f"{base}-wal"


def backup_mount_point() -> str:
    """The host directory of the backup volume, where the backup agent keeps the local repository."""
    return Paths().backup_repository


class Port:
    """Every port a service of the database stack listens on (design §2.2, §2.5, §7.1)."""

    POSTGRES = 5432
    PATRONI_API = 8008
    ETCD_CLIENT = 2379
    ETCD_PEER = 2380
    ETCD_METRICS = 2381
    HAPROXY_PRIMARY = 5432
    HAPROXY_REPLICAS = 5433
    HAPROXY_STATS = 7000
    HAPROXY_METRICS = 9101
    PGBOUNCER = 6432
    REDIS = 6379
    PROMETHEUS = 9090
    ALERTMANAGER = 9093
    GRAFANA = 3000
    POSTGRES_EXPORTER = 9187
    REDIS_EXPORTER = 9121
    NODE_EXPORTER = 9100
    CADVISOR = 8080
    PGBACKREST = 8432


class User(StrEnum):
    """PostgreSQL roles the cluster creates (design §3.3), and the superuser Patroni manages."""

    SUPERUSER = "postgres"
    REPLICATION = "replicator"
    REWIND = "rewind_user"
    APP = "app_user"
    READONLY = "readonly_user"
    EXPORTER = "postgres_exporter"
    PGBOUNCER_AUTH = "pgbouncer_auth"


@dataclass(frozen=True)
class Secret:
    """A Docker secret: a file under the secrets directory, never an environment variable."""

    name: str
    kind: Literal["password", "encryption-key", "tls-ca", "tls-cert", "tls-key", "rendered"]
    purpose: str


PASSWORD_SECRETS: dict[str, str] = {
    "postgres_superuser_password": "the `postgres` superuser (Patroni, the backup agent)",
    "replication_password": "the `replicator` role (streaming replication)",
    "rewind_password": "the `rewind_user` role (pg_rewind after a failover)",
    "app_user_password": "the `app_user` role (applications, through PgBouncer)",
    "readonly_user_password": "the `readonly_user` role (read-only applications)",
    "postgres_exporter_password": "the `postgres_exporter` role (monitoring)",
    "pgbouncer_auth_password": "the `pgbouncer_auth` role PgBouncer looks users up with",
    "patroni_api_password": "Patroni's REST API (changes only; reads are open to health checks)",
    "redis_password": "Redis clients",
    "haproxy_stats_password": "HAProxy's statistics page",
    "grafana_admin_password": "Grafana's admin user",
}
"""Every generated password, by secret name (design §3.2)."""

BACKUP_ENCRYPTION_SECRET = "backup_encryption_key"
"""The AES-256 passphrase of the backup repository (design §4.2)."""

GENERATED_SECRET_LENGTHS: dict[str, int] = dict.fromkeys(PASSWORD_SECRETS, 32) | {BACKUP_ENCRYPTION_SECRET: 64}
"""Length of every generated password and passphrase, of letters and digits only, so that no
configuration format needs quoting (whoever generates them: pulumi-random, or the local run)."""

CA_SECRET = "tls_ca_cert"
"""The cluster CA's certificate; every TLS client and server trusts only it."""


@dataclass(frozen=True)
class Member:
    """One member of a replicated service.

    `host` is how the others reach it (a Swarm service name, or an address in the smoke run);
    `listen` is the address it binds (all interfaces in a container, its own address elsewhere).
    """

    name: str
    host: str
    listen: str = "0.0.0.0"


@dataclass(frozen=True)
class Paths:
    """Where files live inside the containers (defaults) or in a smoke-run host's directory."""

    secrets: str = "/run/secrets"
    config: str = "/etc/dpc"
    data: str = "/var/lib/postgresql/data/pgdata"
    wal: str = "/var/lib/postgresql/wal/pg_wal"
    sockets: str = "/var/run/postgresql"
    logs: str = "/var/log/postgresql"
    postgres_bin: str = "/usr/lib/postgresql/15/bin"
    etcd_data: str = "/var/lib/etcd"
    backup_repository: str = f"{HOST_VOLUMES_ROOT}/backups"
    node_exporter_textfiles: str = "/var/lib/node-exporter/textfile"
    pgbackrest_spool: str = "/var/spool/pgbackrest"
    """pgBackRest's working directory: the asynchronous archive queue and its lock files."""

    def secret(self, name: str) -> str:
        """The path of a secret's file."""
        return f"{self.secrets}/{name}"


@dataclass(frozen=True)
class ClusterLayout:
    """Everything the rendered configuration files depend on."""

    environment: Environment
    etcd: tuple[Member, ...]
    patroni: tuple[Member, ...]
    haproxy: Member
    """How clients and PgBouncer reach HAProxy: the service's virtual IP, or one instance."""
    pgbouncer_replicas: int
    sizing: PostgresSizing
    wal: WalBudget
    """What each member's WAL volume holds, derived once from its size (`dpc.sizing.wal_budget`):
    PostgreSQL renders its slot cap, pgBackRest its archive-queue cap (design §5.3)."""
    paths: Paths = Paths()
    backup: Member = Member("backup", "backup")
    """The backup node's pgBackRest repository host, which the database hosts archive WAL to over TLS."""
    cache_memory_mb: int = 1024
    """Redis's maxmemory: what the cache holds before it evicts the least recently used keys."""

    @property
    def synchronous_mode_strict(self) -> bool:
        """Prod never acknowledges a commit that only one node holds (RPO 0, design §5.2); other
        environments keep accepting writes when both replicas are down.
        """
        return self.environment == "prod"

    @property
    def pgbouncer_max_client_connections(self) -> int:
        """Client connections per PgBouncer, so that all replicas together take at least MIN_POOLED_CLIENTS."""
        return -(-MIN_POOLED_CLIENTS // self.pgbouncer_replicas)


def certificate_secret(name: str) -> str:
    """The secret holding the certificate named `name` (a `CertificateRequest.name`)."""
    return f"{name}_tls_cert"


def key_secret(name: str) -> str:
    """The secret holding the private key of the certificate named `name`."""
    return f"{name}_tls_key"


@dataclass(frozen=True)
class CertificateRequest:
    """One certificate the cluster CA signs: its secret names, subject and names it answers to."""

    name: str
    common_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    usage: Literal["server", "client", "server-and-client"]

    @property
    def cert_secret(self) -> str:
        """The secret holding the certificate."""
        return certificate_secret(self.name)

    @property
    def key_secret(self) -> str:
        """The secret holding the private key."""
        return key_secret(self.name)


def _names(*hosts: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Hosts split into DNS names and IP addresses, each once, for a certificate's SANs."""
    ips = tuple(dict.fromkeys(h for h in hosts if h.replace(".", "").isdigit()))
    dns = tuple(dict.fromkeys(h for h in hosts if h not in ips))
    return dns, ips


def certificate_requests(layout: ClusterLayout) -> tuple[CertificateRequest, ...]:
    """Every certificate of the cluster: a server certificate per member (peers verify each other
    by name), client certificates for the callers that authenticate by certificate.
    """
    requests: list[CertificateRequest] = []
    for member in layout.etcd:
        dns, ips = _names(member.name, member.host, "localhost", "127.0.0.1")
        requests.append(CertificateRequest(member.name, member.name, dns, ips, "server-and-client"))
    for member in layout.patroni:
        dns, ips = _names(member.name, member.host, "localhost", "127.0.0.1")
        requests.append(CertificateRequest(member.name, member.name, dns, ips, "server-and-client"))
    for service in ("haproxy", "pgbouncer", "redis"):
        host = layout.haproxy.host if service == "haproxy" else service
        dns, ips = _names(service, host, f"tasks.{service}")
        requests.append(CertificateRequest(service, service, dns, ips, "server"))
    dns, ips = _names(layout.backup.name, layout.backup.host)
    requests.append(CertificateRequest(layout.backup.name, User.SUPERUSER.value, dns, ips, "server-and-client"))
    return tuple(requests)


def cache_memory_mb(settings: Settings) -> int:
    """A quarter of an app node's memory: Redis shares the node with PgBouncer, and a snapshot or a
    rewrite never has to fork a large heap.
    """
    app = machine_type(settings.cloud, settings.nodes.app.machine_type)
    return int(app.memory_gib * 1024) // 4


def swarm_layout(settings: Settings, nodes: tuple[Node, ...]) -> ClusterLayout:
    """The layout inside the Swarm: members reached by their service names, one service per member
    (`dpc.topology.derive` makes it, from the nodes it plans).
    """
    managers = [n for n in nodes if n.role is Role.MANAGER]
    workers = [n for n in nodes if n.role is Role.WORKER]
    app_nodes = [n for n in nodes if n.role is Role.APP]
    return ClusterLayout(
        environment=settings.environment,
        etcd=tuple(Member(f"etcd-{n.index}", f"etcd-{n.index}") for n in managers),
        patroni=tuple(Member(f"patroni-{n.index}", f"patroni-{n.index}") for n in workers),
        haproxy=Member("haproxy", "haproxy"),
        pgbouncer_replicas=max(1, len(app_nodes)),
        sizing=worker_sizing(settings),
        wal=wal_budget(settings.storage.wal.size_gb),
        cache_memory_mb=cache_memory_mb(settings),
    )
