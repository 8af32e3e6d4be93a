"""The database stack's rendered files, read and run by the real programs.

- `patroni --validate-config` accepts each prod member's patroni.yml (names resolved through a
  private /etc/hosts, etcd reachable because the rendered etcd runs in the same namespace).
- shellcheck finds nothing in the post-bootstrap script.
- `haproxy -c` accepts haproxy.cfg with the statistics fragment, for the Swarm layout (names,
  Docker DNS) and for an addressed layout like the smoke run's.
- PostgreSQL 15 starts with the rendered postgresql.conf and pg_hba.conf; the post-bootstrap script
  creates the roles, database and extensions; TLS with SCRAM works and plaintext is refused.
- PgBouncer starts with the rendered ini and pools a TLS client to that PostgreSQL.
- redis-server starts with the rendered config: PING over TLS with the ACL password; plaintext fails.
- etcd starts as a single member from its rendered config and answers over TLS to a client
  certificate only; its metrics are plain HTTP.

Every server runs in a network namespace of its own with only a loopback, so it binds the
rendered addresses and ports without touching the machine's. Files live under a directory of
/tmp owned by postgres (Debian's PostgreSQL and PgBouncer refuse to run as root).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from dpc.cluster import (
    DATABASE_NAME,
    PASSWORD_SECRETS,
    ClusterLayout,
    Member,
    Paths,
    Port,
    User,
    certificate_requests,
)
from dpc.config import settings_from_stack_file
from dpc.render.etcd import render_etcd
from dpc.render.haproxy import render_haproxy, render_haproxy_stats_auth
from dpc.render.pgbouncer import USERLIST_SECRET, render_pgbouncer, render_pgbouncer_userlist
from dpc.render.postgres import POST_BOOTSTRAP_FILE, pg_hba, render_patroni, render_post_bootstrap, render_postgresql_conf
from dpc.render.redis import ACL_SECRET, render_redis, render_redis_acl
from dpc.sizing import postgres_sizing
from dpc.topology import derive
from engine.pki import issue
from tests.cluster.hosts import SMOKE_CERTIFICATE_VALIDITY

pytestmark = pytest.mark.contract

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SERVICE_USER = "postgres"
START_TIMEOUT = 20.0
COMMAND_TIMEOUT = 20.0
LOOPBACK = "127.0.0.1"

SECRETS: dict[str, str] = {name: f"fake-{name.replace('_', '-')}" for name in PASSWORD_SECRETS} | {
    "haproxy_stats_password": "fake 'stats' \"password\" $HOME #1",
}
"""Obviously fake secret values; the statistics one carries the characters HAProxy would interpret."""


def prod_layout() -> ClusterLayout:
    return derive(settings_from_stack_file(PROJECT_ROOT / "Pulumi.prod.yaml")).layout


def paths_under(root: Path) -> Paths:
    return Paths(
        secrets=str(root / "secrets"),
        config=str(root / "config"),
        data=str(root / "data"),
        wal=str(root / "wal" / "pg_wal"),
        sockets=str(root / "sockets"),
        logs=str(root / "logs"),
        etcd_data=str(root / "etcd"),
    )


def loopback_layout(root: Path) -> ClusterLayout:
    """One host, everything on its loopback: one etcd and one Patroni member, HAProxy's address
    standing for PostgreSQL itself, and a sizing small enough for this machine."""
    return replace(
        prod_layout(),
        etcd=(Member("etcd-1", LOOPBACK),),
        patroni=(Member("patroni-1", LOOPBACK),),
        haproxy=Member("haproxy", LOOPBACK),
        sizing=postgres_sizing(1, 20),
        cache_memory_mb=64,
        paths=paths_under(root),
    )


# --- helpers: a directory postgres owns, namespaces, processes ----------------------------------


def chown_tree(path: Path) -> None:
    for directory, _, files in os.walk(path):
        shutil.chown(directory, SERVICE_USER, SERVICE_USER)
        for name in files:
            shutil.chown(Path(directory) / name, SERVICE_USER, SERVICE_USER)


@contextmanager
def postgres_reachable_directory() -> Iterator[Path]:
    """A directory the postgres user can reach (pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="dpc-contract-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def host_root() -> Iterator[Path]:
    with postgres_reachable_directory() as root:
        yield root


def write_secrets(layout: ClusterLayout) -> None:
    """The passwords and a fresh CA with every certificate of the layout, as secret files."""
    directory = Path(layout.paths.secrets)
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in {**SECRETS, **issue(certificate_requests(layout), "dpc test CA", SMOKE_CERTIFICATE_VALIDITY)}.items():
        path = directory / name
        path.write_text(value)
        path.chmod(0o600)


def write_file(path: Path, content: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(mode)
    return path


def run(argv: Sequence[str], *, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def wait_until(condition: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


@dataclass
class Namespace:
    """A network namespace with only a loopback, and the processes started in it."""

    name: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list[subprocess.Popen[bytes]])

    def command(self, argv: Sequence[str], user: str | None = None) -> list[str]:
        as_user = ["runuser", "-u", user, "--"] if user else []
        return ["ip", "netns", "exec", self.name, *as_user, *argv]

    def run(self, argv: Sequence[str], *, user: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(self.command(argv, user), check=check)

    def start(self, argv: Sequence[str], log: Path, *, user: str | None = None) -> subprocess.Popen[bytes]:
        with log.open("wb") as output:
            process = subprocess.Popen(self.command(argv, user), stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@contextmanager
def network_namespace(label: str) -> Iterator[Namespace]:
    """A fresh namespace; on exit its processes are stopped and it is deleted."""
    name = f"dpc-contract-{os.getpid()}-{label[:20]}".replace("[", "-").replace("]", "")
    run(["ip", "netns", "add", name])
    ns = Namespace(name)
    try:
        ns.run(["ip", "link", "set", "lo", "up"])
        yield ns
    finally:
        ns.stop_all()
        run(["ip", "netns", "delete", name], check=False)


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> Iterator[Namespace]:
    with network_namespace(request.node.name) as ns:
        yield ns


def listening(ns: Namespace, port: int) -> bool:
    return f":{port} " in ns.run(["ss", "-Hltn"]).stdout


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


# --- etcd and Patroni ----------------------------------------------------------------------------


def start_etcd(ns: Namespace, layout: ClusterLayout, root: Path) -> None:
    config = write_file(root / "config" / "etcd.yml", render_etcd(layout, layout.etcd[0]))
    log = root / "etcd.log"
    process = ns.start(["etcd", "--config-file", str(config)], log)
    wait_until(lambda: process.poll() is not None or listening(ns, Port.ETCD_CLIENT), "etcd to listen")
    assert process.poll() is None, f"etcd exited:\n{tail(log)}"


def etcdctl(ns: Namespace, layout: ClusterLayout, *args: str, client_certificate: bool = True) -> subprocess.CompletedProcess[str]:
    secrets = Path(layout.paths.secrets)
    identity = ["--cert", str(secrets / "etcd-1_tls_cert"), "--key", str(secrets / "etcd-1_tls_key")] if client_certificate else []
    endpoint = f"https://{LOOPBACK}:{Port.ETCD_CLIENT}"
    argv = ["etcdctl", "--endpoints", endpoint, "--cacert", str(secrets / "tls_ca_cert"), *identity, "--dial-timeout", "1s", "--command-timeout", "3s", *args]
    return ns.run(argv, check=False)


def test_etcd_serves_tls_clients_with_a_certificate_only(namespace: Namespace, host_root: Path) -> None:
    layout = loopback_layout(host_root)
    write_secrets(layout)
    start_etcd(namespace, layout, host_root)

    put = etcdctl(namespace, layout, "put", "/dpc/contract", "ok")
    assert put.returncode == 0, put.stderr
    assert etcdctl(namespace, layout, "get", "--print-value-only", "/dpc/contract").stdout.strip() == "ok"
    assert etcdctl(namespace, layout, "get", "/dpc/contract", client_certificate=False).returncode != 0

    secrets = layout.paths.secrets
    gateway = namespace.run(
        ["curl", "-sf", "--max-time", "3", "--cacert", f"{secrets}/tls_ca_cert", "--cert", f"{secrets}/etcd-1_tls_cert", "--key", f"{secrets}/etcd-1_tls_key",
         "-d", '{"key": "L2RwYy9jb250cmFjdA=="}', f"https://{LOOPBACK}:{Port.ETCD_CLIENT}/v3/kv/range"]
    )
    assert '"value":"b2s="' in gateway.stdout, "the JSON gateway Patroni's etcd3 client uses must answer"

    metrics = namespace.run(["curl", "-sf", "--max-time", "3", f"http://{LOOPBACK}:{Port.ETCD_METRICS}/metrics"])
    assert "etcd_server_has_leader 1" in metrics.stdout


def test_patroni_validates_every_prod_member(namespace: Namespace, host_root: Path) -> None:
    prod = replace(prod_layout(), paths=paths_under(host_root))
    etcd = replace(loopback_layout(host_root), paths=prod.paths)
    write_secrets(prod)
    start_etcd(namespace, etcd, host_root)
    names = " ".join(member.host for member in (*prod.etcd, *prod.patroni))
    hosts = write_file(host_root / "hosts", f"127.0.0.1 localhost {names}\n")
    assert len(prod.patroni) == 3
    for member in prod.patroni:
        config = write_file(host_root / "config" / f"{member.name}.yml", render_patroni(prod, member, SECRETS), 0o600)
        script = f"mount --bind {hosts} /etc/hosts && exec {VENV_BIN / 'patroni'} --validate-config {config}"
        result = namespace.run(["unshare", "--mount", "sh", "-c", script], check=False)
        assert result.returncode == 0, f"{member.name}: {result.stdout}{result.stderr}"


def test_post_bootstrap_script_passes_shellcheck(host_root: Path) -> None:
    script = write_file(host_root / POST_BOOTSTRAP_FILE, render_post_bootstrap(prod_layout()))
    result = run([str(VENV_BIN / "shellcheck"), "--shell=sh", "--severity=style", str(script)], check=False)
    assert result.returncode == 0, result.stdout


# --- HAProxy -------------------------------------------------------------------------------------


@pytest.mark.parametrize("addressed", [False, True], ids=["swarm-names", "addresses"])
def test_haproxy_accepts_the_config_and_the_stats_fragment(host_root: Path, addressed: bool) -> None:
    layout = loopback_layout(host_root) if addressed else replace(prod_layout(), paths=paths_under(host_root))
    write_secrets(layout)
    config = write_file(host_root / "haproxy.cfg", render_haproxy(layout))
    auth = write_file(host_root / "stats-auth.cfg", render_haproxy_stats_auth(SECRETS), 0o600)
    result = run(["haproxy", "-c", "-f", str(config), "-f", str(auth)], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("resolvers docker" in config.read_text()) is not addressed


def test_haproxy_serves_stats_behind_auth_and_metrics(namespace: Namespace, host_root: Path) -> None:
    layout = loopback_layout(host_root)
    write_secrets(layout)
    config = write_file(host_root / "haproxy.cfg", render_haproxy(layout))
    auth = write_file(host_root / "stats-auth.cfg", render_haproxy_stats_auth(SECRETS), 0o600)
    log = host_root / "haproxy.log"
    process = namespace.start(["haproxy", "-db", "-f", str(config), "-f", str(auth)], log)
    wait_until(lambda: process.poll() is not None or listening(namespace, Port.HAPROXY_METRICS), "HAProxy to listen")
    assert process.poll() is None, tail(log)

    stats_url = f"http://{LOOPBACK}:{Port.HAPROXY_STATS}/"
    anonymous = namespace.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", stats_url])
    assert anonymous.stdout == "401"
    credentials = f"admin:{SECRETS['haproxy_stats_password']}"
    authorised = namespace.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "-u", credentials, stats_url])
    assert authorised.stdout == "200"
    metrics = namespace.run(["curl", "-sf", "--max-time", "3", f"http://{LOOPBACK}:{Port.HAPROXY_METRICS}/metrics"])
    assert 'haproxy_server_status{proxy="postgres_primary",server="patroni-1"' in metrics.stdout


# --- PostgreSQL and PgBouncer --------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """A running PostgreSQL of the rendered configuration, bootstrapped by the rendered script."""

    ns: Namespace
    layout: ClusterLayout
    root: Path

    def psql(self, connection: Mapping[str, str], sql: str) -> subprocess.CompletedProcess[str]:
        dsn = " ".join(f"{key}='{value}'" for key, value in {"connect_timeout": "5", **connection}.items())
        return self.ns.run(["psql", "--no-psqlrc", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql], check=False)

    def local(self, sql: str) -> str:
        """A query as the superuser over the socket (peer authentication, as Patroni connects)."""
        dsn = f"host={self.layout.paths.sockets} dbname={DATABASE_NAME}"
        return self.ns.run(["psql", "--no-psqlrc", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql], user=SERVICE_USER).stdout.strip()

    def tls(self, user: User, port: int = Port.POSTGRES, dbname: str = DATABASE_NAME, sslmode: str = "verify-full") -> dict[str, str]:
        """Connection settings of `user` over TCP, verifying the server's certificate by its name."""
        server_name = "pgbouncer" if port == Port.PGBOUNCER else "localhost"
        return {
            "host": server_name,
            "hostaddr": LOOPBACK,
            "port": str(port),
            "dbname": dbname,
            "user": user.value,
            "password": SECRETS[f"{user.value}_password"],
            "sslmode": sslmode,
            "sslrootcert": f"{self.layout.paths.secrets}/tls_ca_cert",
        }


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    """One PostgreSQL for the module's database tests: initdb and start take most of their time."""
    with postgres_reachable_directory() as root, network_namespace("database") as ns:
        yield from _running_database(ns, root)


def _running_database(namespace: Namespace, host_root: Path) -> Iterator[Database]:
    layout = loopback_layout(host_root)
    member = layout.patroni[0]
    paths = layout.paths
    write_secrets(layout)
    for directory in (paths.sockets, paths.logs, paths.config):
        Path(directory).mkdir(parents=True, exist_ok=True)
    write_file(Path(paths.config) / POST_BOOTSTRAP_FILE, render_post_bootstrap(layout))
    chown_tree(host_root)
    run(
        ["runuser", "-u", SERVICE_USER, "--", str(PG_BIN / "initdb"), "-D", paths.data, "--waldir", paths.wal, "--data-checksums",
         "--encoding", "UTF8", "--locale", "C.UTF-8", "--username", User.SUPERUSER.value, "--auth-local", "peer", "--auth-host", "reject"],
        timeout=60,
    )
    write_file(Path(paths.data) / "postgresql.conf", render_postgresql_conf(layout, member), 0o600)
    write_file(Path(paths.data) / "pg_hba.conf", "\n".join(pg_hba(layout)) + "\n", 0o600)
    chown_tree(host_root)
    log = host_root / "postgres-start.log"
    pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", paths.data, "-l", str(log), "-w", "-t", str(int(START_TIMEOUT))]
    started = namespace.run([*pg_ctl, "start"], user=SERVICE_USER, check=False)
    try:
        assert started.returncode == 0, f"PostgreSQL did not start:\n{tail(log)}\n{started.stderr}\n" + "".join(
            tail(path) for path in Path(paths.logs).glob("*.log")
        )
        script = f"{paths.config}/{POST_BOOTSTRAP_FILE}"
        namespace.run(["sh", script, f"host={paths.sockets} dbname=postgres"], user=SERVICE_USER)
        yield Database(namespace, layout, host_root)
    finally:
        # Immediate: no shutdown checkpoint whose WAL the archiver would try to push to a backup
        # repository that this test has not got.
        namespace.run([*pg_ctl, "-m", "immediate", "stop"], user=SERVICE_USER, check=False)


def test_postgresql_runs_the_rendered_parameters(database: Database) -> None:
    sizing = database.layout.sizing
    expected = {
        "ssl": "on",
        "ssl_min_protocol_version": "TLSv1.3",
        "password_encryption": "scram-sha-256",
        "shared_preload_libraries": "pgaudit,pg_stat_statements",
        "archive_mode": "on",
        "wal_level": "replica",
        "wal_log_hints": "on",
        "synchronous_commit": "on",
        "max_connections": str(sizing.max_connections),
        "pgaudit.log": "ddl, write, read",
        "logging_collector": "on",
        "data_checksums": "on",
    }
    for name, value in expected.items():
        assert database.local(f"SHOW {name}") == value, name
    assert database.local("SELECT setting::int * 8 FROM pg_settings WHERE name = 'shared_buffers'") == str(sizing.shared_buffers_mb * 1024)


def test_post_bootstrap_creates_roles_database_and_extensions(database: Database) -> None:
    assert database.local("SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension") == "pg_stat_statements,pgaudit,plpgsql"
    roles = database.local("SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname !~ '^pg_'")
    assert roles == ",".join(sorted(["app_user", "readonly_user", "postgres_exporter", "pgbouncer_auth", "postgres"]))
    assert database.local("SELECT count(*) FROM pg_authid WHERE rolpassword LIKE 'SCRAM-SHA-256$%'") == "4"
    database.local("CREATE TABLE contract_items (id serial PRIMARY KEY, name text)")
    write = database.psql(database.tls(User.APP), "INSERT INTO contract_items (name) VALUES ('a') RETURNING id")
    assert write.returncode == 0, write.stderr
    assert database.psql(database.tls(User.READONLY), "SELECT count(*) FROM contract_items").stdout.strip() == "1"
    assert database.psql(database.tls(User.READONLY), "INSERT INTO contract_items (name) VALUES ('b')").returncode != 0
    lookup = database.psql(database.tls(User.PGBOUNCER_AUTH), "SELECT username FROM pgbouncer.get_auth('postgres')")
    assert lookup.returncode == 0 and lookup.stdout.strip() == "", "the lookup must never hand out the superuser's verifier"
    server_log = "".join(path.read_text() for path in Path(database.layout.paths.logs).glob("*.log"))
    assert all(SECRETS[f"{user}_password"] not in server_log for user in ("app_user", "readonly_user", "pgbouncer_auth"))


def test_postgresql_takes_tls_with_scram_and_refuses_plaintext(database: Database) -> None:
    secure = database.psql(database.tls(User.APP), "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert secure.returncode == 0, secure.stderr
    assert secure.stdout.strip() == "t|TLSv1.3"
    plaintext = database.psql(database.tls(User.APP, sslmode="disable"), "SELECT 1")
    assert plaintext.returncode != 0
    assert "no encryption" in plaintext.stderr
    wrong_password = database.psql({**database.tls(User.APP), "password": "not-the-password"}, "SELECT 1")
    assert "password authentication failed" in wrong_password.stderr


def test_pgbouncer_pools_tls_clients_to_postgresql(database: Database) -> None:
    layout, ns = database.layout, database.ns
    write_file(Path(layout.paths.secrets) / USERLIST_SECRET, render_pgbouncer_userlist(SECRETS), 0o600)
    config = write_file(database.root / "config" / "pgbouncer.ini", render_pgbouncer(layout))
    chown_tree(database.root)
    log = database.root / "pgbouncer.log"
    process = ns.start(["pgbouncer", str(config)], log, user=SERVICE_USER)
    wait_until(lambda: process.poll() is not None or listening(ns, Port.PGBOUNCER), "PgBouncer to listen")
    assert process.poll() is None, tail(log)

    pooled = database.psql(database.tls(User.APP, Port.PGBOUNCER), "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert pooled.returncode == 0, pooled.stderr + tail(log)
    assert pooled.stdout.strip() == "app_user|t", "PgBouncer's own connection to PostgreSQL must be TLS"
    plaintext = database.psql(database.tls(User.APP, Port.PGBOUNCER, sslmode="disable"), "SELECT 1")
    assert plaintext.returncode != 0
    admin = database.psql(database.tls(User.PGBOUNCER_AUTH, Port.PGBOUNCER, dbname="pgbouncer"), "SHOW CONFIG")
    assert f"max_client_conn|{layout.pgbouncer_max_client_connections}" in admin.stdout.replace("| ", "|"), admin.stderr


# --- Redis ---------------------------------------------------------------------------------------


def test_redis_answers_over_tls_with_the_password_only(namespace: Namespace, host_root: Path) -> None:
    layout = loopback_layout(host_root)
    write_secrets(layout)
    write_file(Path(layout.paths.secrets) / ACL_SECRET, render_redis_acl(SECRETS), 0o600)
    config = write_file(host_root / "redis.conf", render_redis(layout))
    log = host_root / "redis.log"
    process = namespace.start(["redis-server", str(config)], log)
    wait_until(lambda: process.poll() is not None or listening(namespace, Port.REDIS), "Redis to listen")
    assert process.poll() is None, tail(log)

    secrets = layout.paths.secrets
    tls = ["--tls", "--cacert", f"{secrets}/tls_ca_cert", "--sni", "redis"]
    cli = ["timeout", "5", "redis-cli", "-h", LOOPBACK, "-p", str(Port.REDIS)]
    authenticated = namespace.run([*cli, *tls, "--no-auth-warning", "--user", "default", "--pass", SECRETS["redis_password"], "PING"], check=False)
    assert authenticated.stdout.strip() == "PONG", authenticated.stdout + authenticated.stderr + tail(log)
    anonymous = namespace.run([*cli, *tls, "PING"], check=False)
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr
    plaintext = namespace.run([*cli, "PING"], check=False)
    assert "PONG" not in plaintext.stdout
    memory = namespace.run([*cli, *tls, "--no-auth-warning", "--pass", SECRETS["redis_password"], "CONFIG", "GET", "maxmemory"])
    assert memory.stdout.split() == ["maxmemory", str(layout.cache_memory_mb * 1024 * 1024)]

