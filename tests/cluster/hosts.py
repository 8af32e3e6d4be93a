"""The smoke run's cluster: the program's own rendered files, secrets and certificates, placed on
stand-in hosts (network namespaces) the way the Swarm services mount them, and started with
Debian's etcd, PostgreSQL 15, HAProxy and PgBouncer and Patroni from PyPI.

Hosts mirror the seed: three managers run etcd (manager-1 also HAProxy), three workers run
Patroni/PostgreSQL, two app nodes each run PgBouncer (the layout's two replicas, from the same
rendered files), and a client host is where the test connects from.
Each host has its own directories, described by a per-host copy of the layout's `Paths`; nothing
else of the layout differs between hosts, so every rendered file is the one the program deploys
for that member, with addresses in place of service names.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dpc.cluster import BACKUP_METRICS_FILE, CA_SECRET, CertificateRequest, ClusterLayout, Member, Paths, certificate_requests, certificate_secret, key_secret
from dpc.environments import ENVIRONMENT_DEFAULTS
from dpc.render.backup import (
    PGBACKREST_CONFIG,
    PGBACKREST_INCLUDE_DIR,
    render_pgbackrest_database_host,
    render_pgbackrest_repository,
    render_pgbackrest_secrets,
)
from dpc.render.etcd import render_etcd
from dpc.render.haproxy import render_haproxy, render_haproxy_stats_auth
from dpc.render.pgbouncer import USERLIST_SECRET, open_files_needed, render_pgbouncer, render_pgbouncer_userlist
from dpc.render.postgres import POST_BOOTSTRAP_FILE, render_patroni, render_post_bootstrap
from dpc.services import HAPROXY_STATS_SECRET, PATRONI_PASSWORDS, patroni_config_secret
from dpc.settings import BackupSettings
from dpc.sizing import postgres_sizing, wal_budget
from engine.netns import Network
from engine.pki import issue
from engine.secrets import generated_passwords

MANAGERS = ("manager-1", "manager-2", "manager-3")
WORKERS = ("worker-1", "worker-2", "worker-3")
APPS = ("app-1", "app-2")
CLIENT = "client"
HOSTS = (*MANAGERS, *WORKERS, *APPS, CLIENT)
HAPROXY_HOST = MANAGERS[0]
BACKUP_HOST = MANAGERS[0]
"""Where the backup agent (pgBackRest's repository host) runs: the first manager, where the
topology places it when there is no backup node (dpc/services.py)."""
BACKUP_AGENT = Path(__file__).resolve().parents[2] / "images" / "postgres" / "backup_agent.py"
SMALL_DISK_WORKER = WORKERS[2]
"""The worker whose WAL directory is on a filesystem of its own, `SMALL_DISK_BYTES` large, which
the disk-full drill fills (tests/cluster/test_disk_full.py)."""
SMALL_DISK_BYTES = 4 * 1024**3
"""The smallest WAL volume the settings accept (`dpc.sizing.MIN_WAL_VOLUME_GIB`), and the size every
member's WAL budget is derived from (`smoke_layout`): above what the WAL of any run reaches
(wal_keep_size 2 GB and max_wal_size 1 GB, the caps inside them), so that only the disk-full drill
fills it; a sparse file, so it costs the machine only what is written."""
SMOKE_BACKUP = BackupSettings.model_validate(ENVIRONMENT_DEFAULTS["prod"]["backup"])
"""Prod's retention for the repository host's config (the layout is prod's); no run lives long enough to expire a backup."""

SUBNET_CANDIDATES = ("10.231.0.0/24", "10.232.0.0/24", "172.31.231.0/24")

SMOKE_SIZING = postgres_sizing(memory_gib=1, expected_concurrent_users=20)
"""Three PostgreSQL servers on one machine: a 1 GiB worker's sizing (design §6.1), not prod's 64 GiB."""


SMOKE_CERTIFICATE_VALIDITY = datetime.timedelta(days=1)

CONFIG_MODE = 0o444
SECRET_MODE = 0o600


def host_paths(root: Path) -> Paths:
    """A host's own directories, in place of the container paths; the backup volume is the
    repository host's on every host, as the same path is in every container: a database host's
    pgbackrest.conf repeats repo1's path, and the repository host's server uses the client's."""
    return Paths(
        secrets=f"{root}/run/secrets",
        config=f"{root}/etc/dpc",
        data=f"{root}/data/pgdata",
        wal=f"{root}/wal/pg_wal",
        sockets=f"{root}/run/postgresql",
        logs=f"{root}/log/postgresql",
        etcd_data=f"{root}/etcd",
        backup_repository=f"{root.parent}/{BACKUP_HOST}/backups",
        node_exporter_textfiles=f"{root}/textfile",
        pgbackrest_spool=f"{root}/spool/pgbackrest",
    )


def smoke_layout(addresses: Mapping[str, str]) -> ClusterLayout:
    """The prod layout with the namespaces' addresses as hosts, each member binding its own address,
    and the WAL budget of the small disk (`SMALL_DISK_BYTES`), derived as the product derives it from
    `dpc:storage.wal.sizeGb`: its caps are the ones the run's WAL can reach, where prod's 500 GiB
    would put them beyond anything a run writes."""

    def member(name: str, host: str) -> Member:
        return Member(name, addresses[host], addresses[host])

    return ClusterLayout(
        environment="prod",
        etcd=tuple(member(f"etcd-{index}", host) for index, host in enumerate(MANAGERS, start=1)),
        patroni=tuple(member(f"patroni-{index}", host) for index, host in enumerate(WORKERS, start=1)),
        haproxy=member("haproxy", HAPROXY_HOST),
        backup=member("backup", BACKUP_HOST),
        pgbouncer_replicas=len(APPS),
        sizing=SMOKE_SIZING,
        wal=wal_budget(SMALL_DISK_BYTES // 1024**3),
    )


@dataclass
class Host:
    """One stand-in host: its directory tree and the layout with its paths."""

    name: str
    root: Path
    layout: ClusterLayout

    @property
    def paths(self) -> Paths:
        return self.layout.paths

    def directory(self, path: str, owner: str, mode: int = 0o755) -> Path:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        _chown(directory, owner)
        directory.chmod(mode)
        return directory

    def write(self, path: str, content: str, owner: str, mode: int) -> Path:
        """A file as the Swarm mounts it: owned by the user that reads it, with the mount's mode."""
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content)
        _chown(file, owner)
        file.chmod(mode)
        return file


def _chown(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class Phases:
    """Wall-clock time of each phase of the run, for the report."""

    timings: list[tuple[str, float]] = field(default_factory=list[tuple[str, float]])

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.timings.append((name, time.monotonic() - start))

    def summary(self) -> str:
        total = sum(seconds for _, seconds in self.timings)
        return ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.timings) + f"; total {total:.1f}s"


@dataclass
class SmokeCluster:
    """The files and processes of one run."""

    network: Network
    root: Path
    layout: ClusterLayout
    values: dict[str, str]
    """Every secret value by secret name: passwords, the CA certificate, certificates and keys."""
    hosts: dict[str, Host]
    venv: Path

    @property
    def ca_file(self) -> Path:
        return Path(self.hosts[CLIENT].paths.secret(CA_SECRET))

    def address(self, host: str) -> str:
        return self.network.hosts[host]

    def log(self, host: str, service: str) -> Path:
        return self.hosts[host].root / "log" / f"{service}.log"

    def _secret_file(self, host: Host, name: str, owner: str) -> None:
        public = {CA_SECRET, *(certificate_secret(request.name) for request in certificate_requests(host.layout))}
        mode = CONFIG_MODE if name in public else SECRET_MODE
        host.write(host.paths.secret(name), self.values[name], owner, mode)

    def write_files(self) -> None:
        """Every host's files, where and as whom the Swarm mounts them (dpc/services.py)."""
        for name, member in zip(MANAGERS, self.layout.etcd, strict=True):
            host = self.hosts[name]
            host.directory(host.paths.etcd_data, "etcd", 0o700)
            host.write(f"{host.paths.config}/etcd.yml", render_etcd(host.layout, member), "etcd", CONFIG_MODE)
            for secret in (CA_SECRET, certificate_secret(member.name), key_secret(member.name)):
                self._secret_file(host, secret, "etcd")
        haproxy = self.hosts[HAPROXY_HOST]
        haproxy.write(f"{haproxy.paths.config}/haproxy.cfg", render_haproxy(haproxy.layout), "haproxy", CONFIG_MODE)
        haproxy.write(haproxy.paths.secret(HAPROXY_STATS_SECRET), render_haproxy_stats_auth(self.values), "haproxy", SECRET_MODE)
        for name, member in zip(WORKERS, self.layout.patroni, strict=True):
            host = self.hosts[name]
            if name == SMALL_DISK_WORKER:
                _small_disk(host.root / "small-disk.img", Path(host.paths.wal).parent)
            for directory in (host.paths.data, host.paths.wal):
                host.directory(str(Path(directory).parent), "postgres", 0o700)
            host.directory(host.paths.sockets, "postgres", 0o700)
            host.directory(host.paths.logs, "postgres", 0o700)
            host.write(host.paths.secret(patroni_config_secret(member)), render_patroni(host.layout, member, self.values), "postgres", SECRET_MODE)
            host.write(f"{host.paths.config}/{POST_BOOTSTRAP_FILE}", render_post_bootstrap(host.layout), "postgres", CONFIG_MODE)
            for secret in (CA_SECRET, certificate_secret(member.name), key_secret(member.name), *PATRONI_PASSWORDS):
                self._secret_file(host, secret, "postgres")
            self._pgbackrest_files(host, render_pgbackrest_database_host(host.layout, member, offsite=False))
        backup = self.hosts[BACKUP_HOST]
        backup.directory(backup.paths.backup_repository, "postgres", 0o700)
        backup.directory(backup.paths.node_exporter_textfiles, "postgres")
        self._pgbackrest_files(backup, render_pgbackrest_repository(backup.layout, SMOKE_BACKUP, None))
        for secret in (CA_SECRET, certificate_secret(self.layout.backup.name), key_secret(self.layout.backup.name)):
            self._secret_file(backup, secret, "postgres")
        for name in APPS:
            app = self.hosts[name]
            app.write(f"{app.paths.config}/pgbouncer.ini", render_pgbouncer(app.layout), "postgres", CONFIG_MODE)
            app.write(app.paths.secret(USERLIST_SECRET), render_pgbouncer_userlist(self.values), "postgres", SECRET_MODE)
            for secret in (CA_SECRET, certificate_secret("pgbouncer"), key_secret("pgbouncer")):
                self._secret_file(app, secret, "postgres")
        self._secret_file(self.hosts[CLIENT], CA_SECRET, "root")

    def _pgbackrest_files(self, host: Host, config: str) -> None:
        """pgBackRest's config and the secret fragment with the cipher passphrase, where the Swarm
        mounts them (`PGBACKREST_CONFIG`, `PGBACKREST_INCLUDE_DIR`) under the host's root, and its spool."""
        host.write(f"{host.root}{PGBACKREST_CONFIG}", config, "postgres", CONFIG_MODE)
        host.write(f"{host.root}{PGBACKREST_INCLUDE_DIR}/secrets.conf", render_pgbackrest_secrets(self.values), "postgres", SECRET_MODE)
        host.directory(host.paths.pgbackrest_spool, "postgres", 0o700)

    def pgbackrest_environment(self, name: str) -> list[str]:
        """`NAME=value` settings for `env` that point pgBackRest at the host's own files: every
        namespace shares the machine's /etc/pgbackrest, where the Swarm mounts each container's.
        PostgreSQL's archive and restore commands inherit them from Patroni. The repository host
        also gets each member's data and socket directories (`pgN-path`, `pgN-socket-path`), the
        one thing that differs between hosts here and not in the Swarm."""
        host = self.hosts[name]
        settings = [f"PGBACKREST_CONFIG={host.root}{PGBACKREST_CONFIG}", f"PGBACKREST_CONFIG_INCLUDE_PATH={host.root}{PGBACKREST_INCLUDE_DIR}"]
        if name == BACKUP_HOST:
            for index, worker in enumerate(WORKERS, start=1):
                paths = self.hosts[worker].paths
                settings += [f"PGBACKREST_PG{index}_PATH={paths.data}", f"PGBACKREST_PG{index}_SOCKET_PATH={paths.sockets}"]
        return settings

    def start_etcd(self) -> None:
        for name in MANAGERS:
            self.start_etcd_on(name)

    def start_etcd_on(self, manager: str) -> None:
        """A manager's etcd member from its rendered etcd.yml: at first start, or again after it
        was stopped, with the data it kept."""
        host = self.hosts[manager]
        argv = ["etcd", "--config-file", f"{host.paths.config}/etcd.yml"]
        self.network.start("etcd", manager, "etcd", argv, home=host.root, log=self.log(manager, "etcd"))

    def member(self, worker: str) -> Member:
        """The Patroni member a worker runs."""
        return self.layout.patroni[WORKERS.index(worker)]

    def worker(self, member_name: str) -> str:
        """The worker that runs the Patroni member of this name."""
        (worker,) = [worker for worker, member in zip(WORKERS, self.layout.patroni, strict=True) if member.name == member_name]
        return worker

    def start_patroni(self) -> None:
        """Every member, after the backup agent, whose repository server the members' archive and
        restore commands reach from their first segment (without it they wait out their timeouts)."""
        self.start_backup_agent()
        for worker in WORKERS:
            self.start_patroni_on(worker)

    def start_patroni_on(self, worker: str) -> None:
        """The worker's Patroni from its rendered patroni.yml: at first start, or after a crash with
        whatever its data directory then holds."""
        host = self.hosts[worker]
        environment = ["env", *self.pgbackrest_environment(worker)]
        argv = [*environment, str(self.venv / "bin/patroni"), host.paths.secret(patroni_config_secret(self.member(worker)))]
        self.network.start("patroni", worker, "postgres", argv, home=host.root, log=self.log(worker, "patroni"))
        self.network.start("pgbackrest", worker, "postgres", [*environment, "pgbackrest", "server"], home=host.root, log=self.log(worker, "pgbackrest"))

    def start_backup_agent(self) -> None:
        """The backup service (images/postgres/backup_agent.py): the repository host's `pgbackrest
        server`, then `stanza-create` and `check`, then the daily schedule; installed under the
        host's root as the image installs it, since its user may not enter a private checkout."""
        host = self.hosts[BACKUP_HOST]
        agent = host.write(f"{host.root}/bin/dpc-backup-agent", BACKUP_AGENT.read_text(), "postgres", CONFIG_MODE)
        metrics = f"{host.paths.node_exporter_textfiles}/{BACKUP_METRICS_FILE}"
        argv = ["env", *self.pgbackrest_environment(BACKUP_HOST), "/usr/bin/python3", str(agent), "--metrics-file", metrics]
        self.network.start("backup", BACKUP_HOST, "postgres", argv, home=host.root, log=self.log(BACKUP_HOST, "backup"))

    def start_proxies(self) -> None:
        self.start_haproxy()
        for name in APPS:
            self.start_pgbouncer_on(name)

    def start_haproxy(self) -> None:
        haproxy = self.hosts[HAPROXY_HOST]
        argv = ["haproxy", "-W", "-db", "-f", f"{haproxy.paths.config}/haproxy.cfg", "-f", haproxy.paths.secret(HAPROXY_STATS_SECRET)]
        self.network.start("haproxy", HAPROXY_HOST, "haproxy", argv, home=haproxy.root, log=self.log(HAPROXY_HOST, "haproxy"))

    def start_pgbouncer_on(self, app: str) -> None:
        """An app host's PgBouncer: at first start, or again after it was lost."""
        host = self.hosts[app]
        argv = ["pgbouncer", f"{host.paths.config}/pgbouncer.ini"]
        log = self.log(app, "pgbouncer")
        self.network.start("pgbouncer", app, "postgres", argv, home=host.root, log=log, open_files=open_files_needed(host.layout))

    def _logs(self) -> Iterator[tuple[Host, Path]]:
        for host in self.hosts.values():
            for log in sorted((host.root / "log").glob("*.log")) + sorted(Path(host.paths.logs).glob("*.log")):
                yield host, log

    def keep_logs(self) -> Path:
        """Every service's log and PostgreSQL's own, copied out of the run's directory (which
        teardown deletes) to explain a failure; CI can keep the directory as an artifact."""
        kept = Path(tempfile.gettempdir()) / f"dpc-smoke-logs-{self.network.tag}"
        for host, log in self._logs():
            (kept / host.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(log, kept / host.name / log.name)
        return kept

    def service_logs_tail(self, lines: int = 15) -> str:
        """The end of each service's own output (not PostgreSQL's verbose server log)."""
        sections: list[str] = []
        for host, log in self._logs():
            if log.parent.name == "log":
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                sections.append(f"--- {host.name}: {log.name}\n" + "\n".join(tail))
        return "\n".join(sections)


def smoke_certificate_requests(layout: ClusterLayout) -> tuple[CertificateRequest, ...]:
    """The program's certificate requests, each naming its addresses also as DNS names: pgBackRest
    2.45 matches the host it connects to against a certificate's DNS names and common name only,
    and hosts here are addresses, where in the Swarm they are service names."""
    return tuple(dataclasses.replace(request, dns_names=(*request.dns_names, *request.ip_addresses)) for request in certificate_requests(layout))


def _small_disk(image: Path, mount_point: Path) -> None:
    """An ext4 filesystem in a sparse file of `SMALL_DISK_BYTES`, loop-mounted at `mount_point`:
    a disk of its own that can fill up (no blocks reserved for root, so what the drill fills is
    what PostgreSQL sees). Unmounted at teardown (`engine.netns.unmount_under`), which also frees
    the loop device."""
    with image.open("wb") as file:
        file.truncate(SMALL_DISK_BYTES)
    mount_point.mkdir(parents=True)
    for argv in (["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], ["mount", "-o", "loop", str(image), str(mount_point)]):
        subprocess.run(argv, check=True, capture_output=True, timeout=60)


def build(network: Network, root: Path, venv: Path) -> SmokeCluster:
    """Addresses, layout, certificates, passwords and every host's files under `root`; nothing started yet."""
    network.create(HOSTS)
    layout = smoke_layout(network.hosts)
    root.chmod(0o755)
    hosts: dict[str, Host] = {}
    for name in HOSTS:
        host_root = root / name
        (host_root / "log").mkdir(parents=True)
        hosts[name] = Host(name, host_root, dataclasses.replace(layout, paths=host_paths(host_root)))
    values = generated_passwords() | issue(smoke_certificate_requests(layout), "dpc smoke-run CA", SMOKE_CERTIFICATE_VALIDITY)
    cluster = SmokeCluster(network, root, layout, values, hosts, venv)
    cluster.write_files()
    return cluster
