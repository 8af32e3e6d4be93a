"""The database stack's Swarm services, as data: image, command, networks, placement, files,
published ports, resources and update policy of every service of the seed.

dpc/swarm_spec.py translates them into Swarm's terms, once, for every deployer (the
DatabaseStack component, the stack-file export, the Engine API), so all deploy exactly the same
services. Attaching each service only to the overlay networks it needs is the overlay half of the
firewall matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from dpc.catalog import machine_type
from dpc.cluster import CA_SECRET, ClusterLayout, Member, Paths, Port, User, certificate_secret, key_secret, patroni_mount_points
from dpc.model import Role, node_group
from dpc.render import grafana
from dpc.render.backup import PGBACKREST_CONFIG, PGBACKREST_INCLUDE_DIR
from dpc.render.pgbouncer import USERLIST_SECRET, open_files_needed
from dpc.render.postgres import POST_BOOTSTRAP_FILE
from dpc.render.prometheus import ALERT_RULES_FILE, PROMETHEUS_CONFIG_FILE, postgres_exporter_host, retention
from dpc.render.redis import ACL_SECRET, redis_exporter_address
from dpc.settings import Settings
from dpc.tiers import Tier
from dpc.topology import Topology


class Uid:
    """The user each service runs as. The project's images create these users with these ids
    (images/*/Dockerfile), so the Docker secrets and configs a service reads are owned by it.
    """

    POSTGRES = 999
    ETCD = 998
    HAPROXY = 997
    REDIS = 996
    PROMETHEUS = 995
    GRAFANA = 472
    """The vendor image's user."""
    NOBODY = 65534
    ROOT = 0
    """cAdvisor only: it reads every container's cgroups and the Docker state on the host."""


Placement = Literal["cluster", "single-node"]
"""`cluster`: services pinned to nodes by the labels of design §1.4; `single-node`: one local engine."""


def placement_of(settings: Settings) -> Placement:
    """A local stack's services share its one engine (providers/local/composition.py); a cloud's are pinned to
    its labelled nodes (providers/common/composition.py).
    """
    return "single-node" if settings.cloud == "local" else "cluster"


class Image:
    """Every image the stack runs, pinned by version (never `latest`).

    `postgres` and `services` are the project's own (images/), built and pushed to the cloud's
    registry by the program; the Debian packages in `services` come from the Debian release whose
    programs the contract tests run. Grafana and cAdvisor are not packaged by Debian and come from
    their vendors, pinned by digest as well as version, so that a tag moved upstream changes
    nothing here (the policy pack's images-pinned-by-digest).
    """

    POSTGRES = "postgres"
    SERVICES = "services"
    GRAFANA = "grafana/grafana:11.3.0@sha256:a0f881232a6fb71a0554a47d0fe2203b6888fe77f4cefb7ea62bed7eb54e13c3"
    CADVISOR = "gcr.io/cadvisor/cadvisor:v0.49.1@sha256:3cde6faf0791ebf7b41d6f8ae7145466fed712ea6f252c935294d2608b1af388"


HAPROXY_STATS_SECRET = "haproxy_stats_auth"
"""HAProxy's second configuration file: the statistics page's credentials."""

REDIS_EXPORTER_SECRET = "redis_exporter_passwords"
"""The redis exporter's password file (JSON: Redis URI → password)."""

PGBACKREST_SECRETS = "pgbackrest_secrets"
"""pgBackRest's included fragment with the repositories' cipher passphrase."""
PGBACKREST_OFFSITE_SECRETS = "pgbackrest_offsite_secrets"
"""pgBackRest's included fragment with the offsite repository's key, the backup agent's alone,
where the cloud's offsite store takes a key (Azure: `dpc.render.backup.AzureRepository`)."""

ALERTMANAGER_CONFIG = "alertmanager.yml"
ALERTING_TOKEN_SECRET = "alerting_webhook_token"
"""The bearer token of the alert webhook (dpc:alerting.webhookToken), when the stack sets one."""
GRAFANA_DATASOURCES = "grafana-datasources.yml"
GRAFANA_DASHBOARD_PROVIDER = "grafana-dashboards.yml"

BACKUP_REPOSITORY_CONFIG = "backup-pgbackrest.conf"
"""The backup agent's pgBackRest config: it names the offsite bucket, known once the cloud made it."""


PATRONI_PASSWORDS = (
    "postgres_superuser_password", "replication_password", "rewind_password", "app_user_password",
    "readonly_user_password", "postgres_exporter_password", "pgbouncer_auth_password",
)
"""The passwords a Patroni task mounts: its own connections' (also inside its patroni.yml) and
those the post-bootstrap script gives the application's roles."""


def dashboard_config(name: str) -> str:
    """The Docker config holding one Grafana dashboard."""
    return f"dashboard-{name}.json"


def patroni_config_secret(member: Member) -> str:
    """The Docker secret holding a member's patroni.yml (it carries passwords)."""
    return f"{member.name}-patroni.yml"


BUILT_IMAGES: dict[str, str] = {Image.POSTGRES: "images/postgres", Image.SERVICES: "images/services"}
"""The project's own images and their build contexts."""


def local_repository(key: str) -> str:
    """A project image's repository in an engine with no registry (the local stack, the local Swarm)."""
    return f"dpc-{key}"


@dataclass(frozen=True)
class FileMount:
    """A Docker config or secret a service reads: `source` names it in the stack's catalogue."""

    source: str
    target: str
    mode: int = 0o400


@dataclass(frozen=True)
class VolumeMount:
    """Data a service keeps: a host directory (`bind`) or a named local volume."""

    kind: Literal["bind", "volume"]
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class PublishedPort:
    """A port published on the Swarm's ingress (reachable on every node; hosts' firewalls choose who)."""

    target: int
    published: int


@dataclass(frozen=True)
class Resources:
    """Limits and reservations, from the size of the machine the service runs on."""

    cpu_limit: float
    memory_limit_mb: int
    cpu_reservation: float
    memory_reservation_mb: int


@dataclass(frozen=True)
class UpdatePolicy:
    """Design §8.2: one task at a time, a delay between, roll back on failure (a failed rollback
    pauses for an operator rather than flapping between versions).
    """

    delay_seconds: int = 60
    monitor_seconds: int = 30
    order: Literal["stop-first", "start-first"] = "stop-first"
    parallelism: int = 1
    failure_action: Literal["rollback"] = "rollback"
    rollback_delay_seconds: int = 10
    rollback_failure_action: Literal["pause"] = "pause"


@dataclass(frozen=True)
class ServiceSpec:
    """One Swarm service."""

    name: str
    image: str
    command: tuple[str, ...]
    networks: tuple[Tier, ...]
    role: Role
    uid: int
    """The user it runs as; the files it mounts are owned by it."""
    constraints: tuple[str, ...]
    replicas: int | None
    """None: a global service, one task on every node."""
    resources: Resources
    files: tuple[FileMount, ...] = ()
    volumes: tuple[VolumeMount, ...] = ()
    ports: tuple[PublishedPort, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    """Plain settings only; a test checks that no value is a secret."""
    update: UpdatePolicy = field(default_factory=UpdatePolicy)
    after: str = ""
    """A service this one is updated after, so members of a quorum roll one at a time."""


@dataclass(frozen=True)
class _Share:
    """The part of its machine a service may use: limits are caps, reservations what it is guaranteed."""

    cpu_limit: float
    memory_limit: float
    cpu_reservation: float
    memory_reservation: float


_SHARES: dict[str, _Share] = {
    "patroni": _Share(1.0, 0.85, 0.5, 0.70),
    "etcd": _Share(0.5, 0.15, 0.25, 0.10),
    "haproxy": _Share(0.5, 0.10, 0.10, 0.02),
    "prometheus": _Share(0.5, 0.30, 0.10, 0.15),
    "alertmanager": _Share(0.25, 0.03, 0.05, 0.01),
    "grafana": _Share(0.25, 0.10, 0.05, 0.03),
    "pgbouncer": _Share(0.5, 0.10, 0.10, 0.02),
    "redis": _Share(0.5, 0.40, 0.10, 0.20),
    "exporter": _Share(0.25, 0.03, 0.02, 0.01),
    "backup": _Share(1.0, 0.50, 0.25, 0.10),
}


def _resources(settings: Settings, role: Role, share: str) -> Resources:
    machine = machine_type(settings.cloud, node_group(settings, role).machine_type)
    s, memory_mb = _SHARES[share], int(machine.memory_gib * 1024)
    return Resources(
        cpu_limit=round(machine.vcpus * s.cpu_limit, 2),
        memory_limit_mb=int(memory_mb * s.memory_limit),
        cpu_reservation=round(machine.vcpus * s.cpu_reservation, 2),
        memory_reservation_mb=int(memory_mb * s.memory_reservation),
    )


def _ca() -> FileMount:
    return FileMount(CA_SECRET, Paths().secret(CA_SECRET), mode=0o444)


def _cert(name: str) -> tuple[FileMount, ...]:
    return (
        FileMount(certificate_secret(name), Paths().secret(certificate_secret(name)), mode=0o444),
        _secret(key_secret(name)),
    )


def _secret(name: str, target: str = "") -> FileMount:
    return FileMount(name, target or Paths().secret(name))


def _config(source: str, target: str) -> FileMount:
    return FileMount(source, target, mode=0o444)


@dataclass(frozen=True)
class _Placer:
    """Constraints of design §1.4's labels on a cluster; none on a single local engine."""

    placement: Placement
    backup_role: Role

    def on(self, *constraints: str) -> tuple[str, ...]:
        return constraints if self.placement == "cluster" else ()

    def host_dir(self, host_path: str, volume: str, target: str) -> VolumeMount:
        """A cloud volume mounted on the host in a cluster; a named volume on a single engine."""
        if self.placement == "cluster":
            return VolumeMount("bind", host_path, target)
        return VolumeMount("volume", volume, target)

    @property
    def backup_node(self) -> tuple[str, ...]:
        """Where the topology places the agent: the backup node, or the first manager."""
        label = "node.labels.postgres.backup == true" if self.backup_role is Role.BACKUP else "node.labels.postgres.etcd == etcd-1"
        return self.on(label)


def _etcd(settings: Settings, layout: ClusterLayout, place: _Placer) -> list[ServiceSpec]:
    services: list[ServiceSpec] = []
    for index, member in enumerate(layout.etcd, start=1):
        services.append(ServiceSpec(
            name=member.name,
            image=Image.SERVICES,
            command=("etcd", "--config-file", f"{Paths().config}/etcd.yml"),
            networks=(Tier.COORDINATOR, Tier.MONITORING),
            role=Role.MANAGER,
            uid=Uid.ETCD,
            constraints=place.on(f"node.labels.postgres.etcd == etcd-{index}"),
            replicas=1,
            resources=_resources(settings, Role.MANAGER, "etcd"),
            files=(_config(f"{member.name}.yml", f"{Paths().config}/etcd.yml"), _ca(), *_cert(member.name)),
            volumes=(VolumeMount("volume", f"{member.name}-data", Paths().etcd_data),),
            after=layout.etcd[index - 2].name if index > 1 else "",
        ))
    return services


def _patroni(settings: Settings, layout: ClusterLayout, place: _Placer) -> list[ServiceSpec]:
    paths = Paths()
    services: list[ServiceSpec] = []
    for index, member in enumerate(layout.patroni, start=1):
        data_dir = paths.data.rsplit("/", 1)[0]
        wal_dir = paths.wal.rsplit("/", 1)[0]
        data_mount, wal_mount = patroni_mount_points(index)
        services.append(ServiceSpec(
            name=member.name,
            image=Image.POSTGRES,
            command=("patroni", paths.secret(patroni_config_secret(member))),
            networks=(Tier.COORDINATOR, Tier.DATA, Tier.MONITORING),
            role=Role.WORKER,
            uid=Uid.POSTGRES,
            constraints=place.on(f"node.labels.postgres.patroni-id == {index}"),
            replicas=1,
            resources=_resources(settings, Role.WORKER, "patroni"),
            files=(
                _secret(patroni_config_secret(member)),
                _config(POST_BOOTSTRAP_FILE, f"{paths.config}/{POST_BOOTSTRAP_FILE}"),
                _ca(),
                *_cert(member.name),
                *(_secret(name) for name in PATRONI_PASSWORDS),
                _config(f"{member.name}-pgbackrest.conf", PGBACKREST_CONFIG),
                _secret(PGBACKREST_SECRETS, f"{PGBACKREST_INCLUDE_DIR}/secrets.conf"),
            ),
            volumes=(
                place.host_dir(data_mount, f"{member.name}-data", data_dir),
                place.host_dir(wal_mount, f"{member.name}-wal", wal_dir),
                VolumeMount("volume", f"{member.name}-logs", paths.logs),
            ),
            after=layout.patroni[index - 2].name if index > 1 else "",
        ))
    return services


def _proxies(settings: Settings, layout: ClusterLayout, place: _Placer) -> list[ServiceSpec]:
    config = Paths().config
    return [
        ServiceSpec(
            name=layout.haproxy.name,
            image=Image.SERVICES,
            command=("haproxy", "-W", "-db", "-f", f"{config}/haproxy.cfg", "-f", Paths().secret(HAPROXY_STATS_SECRET)),
            networks=(Tier.DATA, Tier.APP, Tier.MONITORING),
            role=Role.MANAGER,
            uid=Uid.HAPROXY,
            constraints=place.on("node.role == manager"),
            replicas=2,
            resources=_resources(settings, Role.MANAGER, "haproxy"),
            files=(_config("haproxy.cfg", f"{config}/haproxy.cfg"), _secret(HAPROXY_STATS_SECRET), _ca()),
            ports=(PublishedPort(Port.HAPROXY_PRIMARY, Port.HAPROXY_PRIMARY), PublishedPort(Port.HAPROXY_STATS, Port.HAPROXY_STATS)),
            update=UpdatePolicy(order="start-first"),
        ),
        ServiceSpec(
            name="pgbouncer",
            image=Image.SERVICES,
            # PgBouncer keeps the descriptor limit it is given, and Docker's default soft limit (1024)
            # would stop it near 1 000 of its clients; pulumi-docker's service arguments have no ulimits.
            command=("sh", "-c", f"ulimit -n {open_files_needed(layout)} && exec pgbouncer {config}/pgbouncer.ini"),
            networks=(Tier.APP, Tier.DATA),
            role=Role.APP,
            uid=Uid.POSTGRES,
            constraints=place.on("node.labels.postgres.pgbouncer == true"),
            replicas=layout.pgbouncer_replicas,
            resources=_resources(settings, Role.APP, "pgbouncer"),
            files=(_config("pgbouncer.ini", f"{config}/pgbouncer.ini"), _secret(USERLIST_SECRET), _ca(), *_cert("pgbouncer")),
            ports=(PublishedPort(Port.PGBOUNCER, Port.PGBOUNCER),),
        ),
        ServiceSpec(
            name="redis",
            image=Image.SERVICES,
            command=("redis-server", f"{config}/redis.conf"),
            networks=(Tier.APP, Tier.DATA),
            role=Role.APP,
            uid=Uid.REDIS,
            constraints=place.on("node.labels.redis.role == master"),
            replicas=1,
            resources=_resources(settings, Role.APP, "redis"),
            files=(_config("redis.conf", f"{config}/redis.conf"), _secret(ACL_SECRET), _ca(), *_cert("redis")),
            ports=(PublishedPort(Port.REDIS, Port.REDIS),),
        ),
    ]


def _exporter_uri(member: Member) -> str:
    """One Patroni member, over TLS verified against the CA by the member's name; one exporter per
    member, since postgres_exporter 0.11 fails every scrape when given several (dpc/render/prometheus.py).
    """
    return f"{member.host}:{Port.POSTGRES}/postgres?sslmode=verify-full&sslrootcert={Paths().secret(CA_SECRET)}"


def _monitoring(settings: Settings, layout: ClusterLayout, place: _Placer) -> list[ServiceSpec]:
    config, secrets = Paths().config, Paths().secrets
    manager = place.on("node.role == manager")
    exporter = _resources(settings, Role.MANAGER, "exporter")
    return [
        ServiceSpec(
            name="prometheus",
            image=Image.SERVICES,
            command=(
                "prometheus", f"--config.file={config}/{PROMETHEUS_CONFIG_FILE}", "--storage.tsdb.path=/var/lib/prometheus",
                f"--storage.tsdb.retention.time={retention(layout.environment)}",
            ),
            networks=(Tier.MONITORING,),
            role=Role.MANAGER,
            uid=Uid.PROMETHEUS,
            constraints=place.on("node.labels.postgres.etcd == etcd-1"),
            replicas=1,
            resources=_resources(settings, Role.MANAGER, "prometheus"),
            files=(
                _config(PROMETHEUS_CONFIG_FILE, f"{config}/{PROMETHEUS_CONFIG_FILE}"), _config(ALERT_RULES_FILE, f"{config}/{ALERT_RULES_FILE}"), _ca(),
            ),
            volumes=(VolumeMount("volume", "prometheus-data", "/var/lib/prometheus"),),
            ports=(PublishedPort(Port.PROMETHEUS, Port.PROMETHEUS),),
        ),
        ServiceSpec(
            name="alertmanager",
            image=Image.SERVICES,
            command=("prometheus-alertmanager", f"--config.file={config}/{ALERTMANAGER_CONFIG}", "--storage.path=/var/lib/alertmanager"),
            networks=(Tier.MONITORING,),
            role=Role.MANAGER,
            uid=Uid.PROMETHEUS,
            constraints=place.on("node.labels.postgres.etcd == etcd-2"),
            replicas=1,
            resources=_resources(settings, Role.MANAGER, "alertmanager"),
            files=(
                _config(ALERTMANAGER_CONFIG, f"{config}/{ALERTMANAGER_CONFIG}"),
                *((_secret(ALERTING_TOKEN_SECRET),) if settings.alerting.webhook_token is not None else ()),
            ),
            volumes=(VolumeMount("volume", "alertmanager-data", "/var/lib/alertmanager"),),
            ports=(PublishedPort(Port.ALERTMANAGER, Port.ALERTMANAGER),),
        ),
        ServiceSpec(
            name="grafana",
            image=Image.GRAFANA,
            command=(),
            networks=(Tier.MONITORING,),
            role=Role.MANAGER,
            uid=Uid.GRAFANA,
            constraints=place.on("node.labels.postgres.etcd == etcd-3"),
            replicas=1,
            resources=_resources(settings, Role.MANAGER, "grafana"),
            files=(
                _config(GRAFANA_DATASOURCES, grafana.DATASOURCES_FILE),
                _config(GRAFANA_DASHBOARD_PROVIDER, grafana.DASHBOARD_PROVIDER_FILE),
                *(_config(dashboard_config(name), f"{grafana.DASHBOARDS_DIR}/{name}.json") for name in sorted(grafana.grafana_dashboards())),
                _secret(grafana.ADMIN_PASSWORD_SECRET),
            ),
            volumes=(VolumeMount("volume", "grafana-data", "/var/lib/grafana"),),
            ports=(PublishedPort(Port.GRAFANA, Port.GRAFANA),),
            env=(("GF_SECURITY_ADMIN_PASSWORD__FILE", Paths().secret(grafana.ADMIN_PASSWORD_SECRET)), ("GF_USERS_ALLOW_SIGN_UP", "false")),
        ),
        *(
            ServiceSpec(
                name=postgres_exporter_host(index),
                image=Image.SERVICES,
                command=("prometheus-postgres-exporter", f"--web.listen-address=:{Port.POSTGRES_EXPORTER}"),
                networks=(Tier.DATA, Tier.MONITORING),
                role=Role.MANAGER,
                uid=Uid.NOBODY,
                constraints=manager,
                replicas=1,
                resources=exporter,
                files=(_secret("postgres_exporter_password"), _ca()),
                env=(
                    ("DATA_SOURCE_URI", _exporter_uri(member)),
                    ("DATA_SOURCE_USER", User.EXPORTER.value),
                    ("DATA_SOURCE_PASS_FILE", f"{secrets}/postgres_exporter_password"),
                ),
            )
            for index, member in enumerate(layout.patroni, start=1)
        ),
        ServiceSpec(
            name="redis-exporter",
            image=Image.SERVICES,
            command=("prometheus-redis-exporter", f"--web.listen-address=:{Port.REDIS_EXPORTER}"),
            networks=(Tier.APP, Tier.MONITORING),
            role=Role.MANAGER,
            uid=Uid.NOBODY,
            constraints=manager,
            replicas=1,
            resources=exporter,
            files=(_secret(REDIS_EXPORTER_SECRET), _ca()),
            env=(
                ("REDIS_ADDR", redis_exporter_address()),
                ("REDIS_PASSWORD_FILE", Paths().secret(REDIS_EXPORTER_SECRET)),
                ("REDIS_EXPORTER_TLS_CA_CERT_FILE", f"{secrets}/{CA_SECRET}"),
            ),
        ),
        ServiceSpec(
            name="node-exporter",
            image=Image.SERVICES,
            command=(
                "prometheus-node-exporter", "--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--path.rootfs=/host/root",
                f"--collector.textfile.directory={Paths().node_exporter_textfiles}",
            ),
            networks=(Tier.MONITORING,),
            role=Role.MANAGER,
            uid=Uid.NOBODY,
            constraints=(),
            replicas=None,
            resources=exporter,
            volumes=(
                VolumeMount("bind", "/proc", "/host/proc", read_only=True),
                VolumeMount("bind", "/sys", "/host/sys", read_only=True),
                VolumeMount("bind", "/", "/host/root", read_only=True),
                VolumeMount("volume", "node-exporter-textfiles", Paths().node_exporter_textfiles, read_only=True),
            ),
            update=UpdatePolicy(delay_seconds=10, order="stop-first"),
        ),
        ServiceSpec(
            name="cadvisor",
            image=Image.CADVISOR,
            command=(),
            networks=(Tier.MONITORING,),
            role=Role.MANAGER,
            uid=Uid.ROOT,
            constraints=(),
            replicas=None,
            resources=exporter,
            volumes=(
                VolumeMount("bind", "/", "/rootfs", read_only=True),
                VolumeMount("bind", "/var/run", "/var/run", read_only=True),
                VolumeMount("bind", "/sys", "/sys", read_only=True),
                VolumeMount("bind", "/var/lib/docker", "/var/lib/docker", read_only=True),
            ),
            update=UpdatePolicy(delay_seconds=10, order="stop-first"),
        ),
    ]


def _backup(settings: Settings, layout: ClusterLayout, place: _Placer, offsite_key: bool) -> ServiceSpec:
    role = place.backup_role
    return ServiceSpec(
        name="backup",
        image=Image.POSTGRES,
        command=("backup-agent",),
        networks=(Tier.DATA,),
        role=role,
        uid=Uid.POSTGRES,
        constraints=place.backup_node,
        replicas=1,
        resources=_resources(settings, role, "backup"),
        files=(
            _config(BACKUP_REPOSITORY_CONFIG, PGBACKREST_CONFIG),
            _secret(PGBACKREST_SECRETS, f"{PGBACKREST_INCLUDE_DIR}/secrets.conf"),
            *((_secret(PGBACKREST_OFFSITE_SECRETS, f"{PGBACKREST_INCLUDE_DIR}/offsite.conf"),) if offsite_key else ()),
            _ca(),
            *_cert("backup"),
        ),
        volumes=(
            place.host_dir(layout.paths.backup_repository, "backup-repository", layout.paths.backup_repository),
            VolumeMount("volume", "node-exporter-textfiles", Paths().node_exporter_textfiles),
        ),
    )




def database_services(topology: Topology, placement: Placement = "cluster", *, offsite_key: bool = False) -> tuple[ServiceSpec, ...]:
    """Every service of the stack, in the order they are declared. On a single engine the services
    reserve nothing: their reservations are shares of separate machines, and together they would
    ask one engine for several times what a workstation has, leaving tasks pending. Limits stay.
    `offsite_key`: the backup agent also mounts `PGBACKREST_OFFSITE_SECRETS` (the stack's offsite
    store takes a key).
    """
    settings, layout = topology.settings, topology.layout
    place = _Placer(placement, topology.backup_agent.role)
    services = (
        *_etcd(settings, layout, place),
        *_patroni(settings, layout, place),
        *_proxies(settings, layout, place),
        *_monitoring(settings, layout, place),
        _backup(settings, layout, place, offsite_key),
    )
    if placement == "cluster":
        return services
    return tuple(replace(s, resources=replace(s.resources, cpu_reservation=0, memory_reservation_mb=0)) for s in services)

