"""pgBackRest's configuration files, checked by Debian's pgBackRest 2.45, and a real backup made with
them over pgBackRest's TLS protocol.

- Golden files: the prod layout's repository-host config (with a placeholder offsite bucket, and
  without one), a database host's config (with and without the offsite relay) and the secret
  fragment with a fake passphrase, under tests/golden/backup/ (DPC_UPDATE_GOLDEN=1 rewrites them).
- pgBackRest parses every one of them for the commands that read them (`help <command>` loads
  the configuration and rejects invalid options and values; unknown options only warn, so any
  warning fails the test too).
- A real run on loopback: a throwaway PostgreSQL 15 (Unix socket only) whose archive_command is
  `ARCHIVE_COMMAND`, a `pgbackrest server` as its database host and one as the repository host,
  each with its rendered config and the cluster's certificates from a throwaway CA. The backup
  agent (images/postgres/backup_agent.py) then runs `stanza-create`, `check` and the day's backup
  on the repository host: the backup reads the database over TLS and waits for its WAL to arrive
  through archive-push over TLS. `info` shows the backup in a repository encrypted with
  aes-256-cbc, whose files are zstd-compressed and unreadable without the passphrase.
  What differs from the Swarm, on purpose: both servers share 127.0.0.1, so each gets a free port
  on the command line (`--tls-server-port`, and the clients' `--pg1-host-port`/`--repo1-host-port`);
  with a single database there is no standby, so `--no-backup-standby`; the offsite S3 repository
  is not exercised (no network), only parsed.
- Point-in-time recovery from that backup (design §4.3): rows A, the named restore point
  `RESTORE_POINT`, rows B, their WAL segment switched and archived. Then the disaster: the
  database stops, and a new empty data directory is restored to the restore point the way a
  database host does it, with its rendered config reaching the repository host over TLS (restore
  runs where the data directory is). Command-line overrides, each for this one machine: the
  repository host's free port (`--repo1-host-port`), the new directory (`--pg1-path`, also in the
  restore_command, since archive-get writes `%p` relative to it), and `restore_command` set to the
  rendered `RESTORE_COMMAND` with those and the rendered config's and secret fragment's paths. A second PostgreSQL on the restored directory
  (its own port, archiving off: a throwaway copy must not archive into the live stanza) fetches
  the WAL through pgBackRest, stops at the restore point and promotes: rows A are there, rows B
  are not. The segment holding the restore point exists in the repository only encrypted, the
  restored server's log shows it fetched through restore_command, and a restore without the secret
  fragment is refused before writing anything. (A wrong passphrase is not tried: pgBackRest 2.45
  aborts with a heap corruption when it fails to decrypt through a TLS repository host.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from dpc.cluster import (
    BACKUP_ENCRYPTION_SECRET,
    BACKUP_METRICS_FILE,
    BACKUP_STANZA,
    CA_SECRET,
    ClusterLayout,
    Member,
    Paths,
    certificate_requests,
)
from dpc.config import settings_from_stack_file
from dpc.render.backup import (
    ARCHIVE_COMMAND,
    RESTORE_COMMAND,
    S3Repository,
    render_pgbackrest_database_host,
    render_pgbackrest_repository,
    render_pgbackrest_secrets,
)
from dpc.settings import Settings
from dpc.topology import derive
from engine.pki import issue
from tests.cluster.hosts import SMOKE_CERTIFICATE_VALIDITY
from tests.golden_files import assert_matches_golden, assert_no_stale_golden_files

pytestmark = pytest.mark.contract

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = PROJECT_ROOT / "tests" / "golden" / "backup"
BACKUP_AGENT = PROJECT_ROOT / "images" / "postgres" / "backup_agent.py"
POSTGRES_BIN = Path(Paths().postgres_bin)
FAKE_PASSPHRASE = "fake-backup-passphrase-for-tests-only"
PLACEHOLDER_OFFSITE = S3Repository(bucket="dpc-prod-offsite-backups-placeholder", region="us-east-1")
TIMEOUT = 120
WAIT_SECONDS = 30
"""Bound of every wait for a server to come up, a segment to be archived or recovery to end."""
RESTORE_POINT = "dpc-pitr-test"
LIVE_POSTGRES_PORT = 5432
"""The rig's PostgreSQL, on its Unix socket only; the restored one gets a free port beside it."""
CONFIG_COMMANDS = {
    "repository.conf": ("backup", "check", "expire", "info", "server", "stanza-create"),
    "repository-without-offsite.conf": ("backup", "check", "expire", "info", "server", "stanza-create"),
    "patroni-1.conf": ("archive-get", "archive-push", "check", "server"),
    "patroni-1-without-offsite.conf": ("archive-get", "archive-push", "check", "server"),
    "secrets.conf": ("backup", "info"),
}
"""Each golden file and the pgBackRest commands that read it where it is deployed."""


@cache
def prod_settings() -> Settings:
    return settings_from_stack_file(PROJECT_ROOT / "Pulumi.prod.yaml")


def rendered_prod_files() -> dict[str, str]:
    settings = prod_settings()
    layout = derive(settings).layout
    member = layout.patroni[0]
    return {
        "repository.conf": render_pgbackrest_repository(layout, settings.backup, PLACEHOLDER_OFFSITE),
        "repository-without-offsite.conf": render_pgbackrest_repository(layout, settings.backup, None),
        "patroni-1.conf": render_pgbackrest_database_host(layout, member, offsite=True),
        "patroni-1-without-offsite.conf": render_pgbackrest_database_host(layout, member, offsite=False),
        "secrets.conf": render_pgbackrest_secrets({BACKUP_ENCRYPTION_SECRET: FAKE_PASSPHRASE}),
    }


@pytest.mark.parametrize("name", sorted(CONFIG_COMMANDS))
def test_rendered_file_matches_its_golden_file(name: str) -> None:
    assert_matches_golden(GOLDEN_DIR / name, rendered_prod_files()[name], name)


def test_no_stale_golden_files() -> None:
    assert_no_stale_golden_files(GOLDEN_DIR, set(CONFIG_COMMANDS))


def as_user(user: str | None) -> dict[str, object]:
    """subprocess arguments that run a program as `user` with only that user's group."""
    return {"user": user, "group": user, "extra_groups": []} if user else {}


def pgbackrest(*arguments: str | Path, user: str | None = None, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """pgbackrest as `user` (default: this process's) with the given environment."""
    command = ["pgbackrest", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False, env=env, **as_user(user))


@pytest.mark.parametrize("name", sorted(CONFIG_COMMANDS))
def test_pgbackrest_accepts_the_rendered_file(tmp_path: Path, name: str) -> None:
    """The secret fragment is checked as the include of the repository's config, as deployed."""
    files = rendered_prod_files()
    include = tmp_path / "conf.d"
    include.mkdir()
    (include / "secrets.conf").write_text(files["secrets.conf"])
    main = tmp_path / "pgbackrest.conf"
    main.write_text(files["repository.conf" if name == "secrets.conf" else name])
    for command in CONFIG_COMMANDS[name]:
        stanza = () if command == "server" else (f"--stanza={BACKUP_STANZA}",)  # the server serves any stanza
        result = pgbackrest(f"--config={main}", f"--config-include-path={include}", *stanza, "--log-level-console=warn", "help", command)
        assert result.returncode == 0, f"{name}, {command}: {result.stdout}{result.stderr}"
        assert "WARN" not in result.stdout + result.stderr, f"{name}, {command}: {result.stdout}{result.stderr}"


def test_pgbackrest_reads_the_values_that_matter(tmp_path: Path) -> None:
    """A few values as pgBackRest understands them, not only as the file spells them."""
    files = rendered_prod_files()
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "secrets.conf").write_text(files["secrets.conf"])
    (tmp_path / "pgbackrest.conf").write_text(files["repository.conf"])
    base = (f"--config={tmp_path / 'pgbackrest.conf'}", f"--config-include-path={tmp_path / 'conf.d'}", f"--stanza={BACKUP_STANZA}")
    expectations = {
        ("backup", "repo-cipher-type"): "current: aes-256-cbc",
        ("backup", "compress-type"): "current: zst",
        ("backup", "compress-level"): "current: 3",
        ("backup", "repo-retention-full-type"): "current: time",
        ("backup", "backup-standby"): "current: true",
        ("backup", "start-fast"): "current: true",
        ("backup", "pg-host-type"): "current: tls",
    }
    for (command, option), expected in expectations.items():
        result = pgbackrest(*base, "help", command, option)
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout, f"{option}: {result.stdout}"


# --- a real backup over TLS ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        assert process.poll() is None, f"pgbackrest server exited: {process.communicate()}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on 127.0.0.1:{port}")


@dataclass(frozen=True)
class BackupRig:
    """The directories of the run: one layout per host, sharing the cluster's certificates."""

    root: Path
    repository_layout: ClusterLayout
    database_layout: ClusterLayout
    repository_include: Path
    database_include: Path
    repository_port: int
    database_port: int

    @property
    def environment(self) -> dict[str, str]:
        """A clean environment for the postgres user's programs (no inherited PG* variables)."""
        return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.root)}

    @property
    def agent(self) -> Path:
        """The backup agent, installed in the rig as the image installs it (`/usr/local/bin/dpc-backup-agent`):
        the postgres user runs it, and may not reach into a checkout under a private directory."""
        return self.root / "bin" / "dpc-backup-agent"

    @property
    def metrics_file(self) -> Path:
        """Where the backup agent writes its results for node-exporter."""
        return Path(self.repository_layout.paths.node_exporter_textfiles) / BACKUP_METRICS_FILE

    @property
    def repository_config(self) -> Path:
        return self.root / "repository" / "pgbackrest.conf"

    @property
    def database_config(self) -> Path:
        return self.root / "database" / "pgbackrest.conf"

    def repository_options(self) -> dict[str, str]:
        """What the repository host's commands get beyond the rendered file, as PGBACKREST_* variables
        (paths and ports only; see the module docstring for why)."""
        return {
            "PGBACKREST_CONFIG": str(self.repository_config),
            "PGBACKREST_CONFIG_INCLUDE_PATH": str(self.repository_include),
            "PGBACKREST_PG1_HOST_PORT": str(self.database_port),
            "PGBACKREST_BACKUP_STANDBY": "n",
            "PGBACKREST_ARCHIVE_TIMEOUT": "20",
        }

    def database_host_options(self, include: Path | None = None) -> tuple[str, ...]:
        """What the database host's commands get beyond the rendered file, on their command line
        (PostgreSQL runs archive and restore commands with its own environment): the rendered
        config, the secret fragment's directory (`include`, default the real one) and the
        repository host's port."""
        return (
            f"--config={self.database_config}",
            f"--config-include-path={include or self.database_include}",
            f"--repo1-host-port={self.repository_port}",
        )


def layouts(root: Path) -> tuple[ClusterLayout, ClusterLayout]:
    """The prod layout with one Patroni member, every path under `root`, both hosts on loopback; the
    two hosts differ only in pgBackRest's spool (separate containers in the Swarm)."""
    paths = Paths(
        secrets=str(root / "secrets"),
        config=str(root / "config"),
        data=str(root / "data" / "pgdata"),
        wal=str(root / "wal" / "pg_wal"),
        sockets=str(root / "run"),
        logs=str(root / "log"),
        backup_repository=str(root / "repository" / "backups"),
        node_exporter_textfiles=str(root / "textfile"),
        pgbackrest_spool=str(root / "repository" / "spool"),
    )
    repository = dataclasses.replace(
        derive(prod_settings()).layout,
        patroni=(Member("patroni-1", "localhost", "127.0.0.1"),),
        backup=Member("backup", "localhost", "127.0.0.1"),
        paths=paths,
    )
    database = dataclasses.replace(repository, paths=dataclasses.replace(paths, pgbackrest_spool=str(root / "database" / "spool")))
    return repository, database


def write_secrets(layout: ClusterLayout, owner: str) -> None:
    secrets = Path(layout.paths.secrets)
    secrets.mkdir()
    for name, pem in issue(certificate_requests(layout), "dpc test CA", SMOKE_CERTIFICATE_VALIDITY).items():
        path = secrets / name
        path.write_text(pem)
        path.chmod(0o644 if name == CA_SECRET or name.endswith("_cert") else 0o600)
        shutil.chown(path, owner, owner)


def run_as(user: str, command: Sequence[str | Path], env: Mapping[str, str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout, check=False, env=dict(env), **as_user(user))
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result


def with_options(command: str, *options: str) -> str:
    """A rendered archive or restore command with this machine's options added after `pgbackrest`."""
    return command.replace("pgbackrest ", f"pgbackrest {' '.join(options)} ", 1)


@contextlib.contextmanager
def postgres_running(data: Path, log: Path, environment: Mapping[str, str], *settings: str) -> Iterator[None]:
    """PostgreSQL 15 on `data` as the postgres user (`settings` are its -c name=value overrides),
    stopped immediately on the way out unless it already stopped."""
    overrides = ("-o", " ".join(f"-c {setting}" for setting in settings)) if settings else ()
    start = [POSTGRES_BIN / "pg_ctl", "-D", data, "-l", log, "-w", "-t", str(WAIT_SECONDS), *overrides, "start"]
    try:
        run_as("postgres", start, environment)
        yield
    finally:
        if (data / "postmaster.pid").exists():
            stop = [POSTGRES_BIN / "pg_ctl", "-D", data, "-m", "immediate", "stop"]
            subprocess.run(stop, env=dict(environment), capture_output=True, timeout=60, check=False, **as_user("postgres"))


@contextlib.contextmanager
def pgbackrest_server(config: Path, include: Path, port: int, environment: Mapping[str, str], deadline: float) -> Iterator[None]:
    """`pgbackrest server` with a rendered config on `port`, listening before this returns and
    terminated (killed if it lingers) on the way out."""
    server = subprocess.Popen(
        ["pgbackrest", f"--config={config}", f"--config-include-path={include}", f"--tls-server-port={port}", "server"],
        user="postgres", group="postgres", extra_groups=[], env=dict(environment), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_port(port, server, deadline)
        yield
    finally:
        terminate(server)


def terminate(process: subprocess.Popen[str]) -> None:
    """Stop a process the test started: terminated, killed if it lingers, reaped."""
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture
def rig() -> Iterator[BackupRig]:
    """PostgreSQL 15 and the two pgBackRest servers, torn down afterwards whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run PostgreSQL and pgBackRest as the postgres user")
    user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="dpc-backup-"))
    root.chmod(0o755)
    repository_layout, database_layout = layouts(root)
    include_repository, include_database = root / "repository" / "conf.d", root / "database" / "conf.d"
    rig = BackupRig(root, repository_layout, database_layout, include_repository, include_database, free_port(), free_port())
    data = Path(database_layout.paths.data)
    try:
        directories = (include_repository, include_database, Path(repository_layout.paths.backup_repository), data.parent)
        for directory in (*directories, root / "wal", root / "run", root / "textfile", rig.agent.parent):
            directory.mkdir(parents=True)
        shutil.copyfile(BACKUP_AGENT, rig.agent)
        rig.repository_config.write_text(render_pgbackrest_repository(repository_layout, prod_settings().backup, None))
        rig.database_config.write_text(render_pgbackrest_database_host(database_layout, database_layout.patroni[0], offsite=False))
        for include in (include_repository, include_database):
            (include / "secrets.conf").write_text(render_pgbackrest_secrets({BACKUP_ENCRYPTION_SECRET: FAKE_PASSPHRASE}))
        write_secrets(repository_layout, user)
        subprocess.run(["chown", "-R", f"{user}:{user}", str(root)], check=True, timeout=TIMEOUT)

        initdb = [POSTGRES_BIN / "initdb", "-D", data, f"--waldir={database_layout.paths.wal}", "--auth=trust", "--no-sync", "--username=postgres"]
        run_as(user, initdb, rig.environment)
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{database_layout.paths.sockets}'",
            "port": str(LIVE_POSTGRES_PORT),
            "archive_mode": "on",
            "archive_command": f"'{with_options(ARCHIVE_COMMAND, *rig.database_host_options())}'",
            "fsync": "off",
        }
        with (data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        with contextlib.ExitStack() as running:
            running.enter_context(postgres_running(data, root / "postgresql.log", rig.environment))
            deadline = time.monotonic() + WAIT_SECONDS
            for config, include, port in (
                (rig.database_config, include_database, rig.database_port),
                (rig.repository_config, include_repository, rig.repository_port),
            ):
                running.enter_context(pgbackrest_server(config, include, port, rig.environment, deadline))
            yield rig
    finally:
        shutil.rmtree(root, ignore_errors=True)


def take_backup(rig: BackupRig) -> None:
    """The backup agent's day of backups, now: stanza-create, check and (the stanza's first) a full."""
    agent = subprocess.run(
        ["/usr/bin/python3", str(rig.agent), "--now", "--metrics-file", str(rig.metrics_file)],
        capture_output=True, text=True, timeout=TIMEOUT, check=False, user="postgres", group="postgres", extra_groups=[],
        env={**rig.environment, **rig.repository_options()},
    )
    assert agent.returncode == 0, f"{agent.stderr}\nPostgreSQL's log:\n{(rig.root / 'postgresql.log').read_bytes()[-3000:].decode(errors='replace')}"
    assert "backup command end: completed successfully" in agent.stderr + agent.stdout


def repository_info(rig: BackupRig) -> list[dict[str, Any]]:
    """`pgbackrest info` on the repository host, as JSON: one entry per stanza."""
    environment = {**rig.environment, **rig.repository_options()}
    return json.loads(run_as("postgres", ["pgbackrest", f"--stanza={BACKUP_STANZA}", "--output=json", "info"], environment).stdout)


def test_a_real_encrypted_backup_over_tls(rig: BackupRig) -> None:
    environment = {**rig.environment, **rig.repository_options()}
    take_backup(rig)

    (stanza,) = repository_info(rig)
    assert stanza["status"]["message"] == "ok", stanza["status"]
    assert [repository["cipher"] for repository in stanza["repo"]] == ["aes-256-cbc"]
    assert [backup["type"] for backup in stanza["backup"]] == ["full"], "the first backup of a stanza is a full one"
    assert stanza["archive"][0]["min"], "WAL reached the archive through archive-push over TLS"

    repository = Path(rig.repository_layout.paths.backup_repository)
    backup_files = [path for path in repository.rglob("*.zst") if path.is_file()]
    assert backup_files, "files are zstd-compressed"
    assert not any(path.read_bytes().startswith(b"\x28\xb5\x2f\xfd") for path in backup_files), "a zstd frame in clear: not encrypted"
    assert (repository / "backup" / BACKUP_STANZA / "backup.info").read_bytes().startswith(b"Salted__"), "the repository's own index is encrypted too"

    no_include = rig.root / "no-secrets"
    no_include.mkdir()
    without_passphrase = {**environment, "PGBACKREST_CONFIG_INCLUDE_PATH": str(no_include)}
    refused = pgbackrest(f"--stanza={BACKUP_STANZA}", "info", user="postgres", env=without_passphrase)
    assert refused.returncode != 0 or "error" in refused.stdout, "the repository opened without its passphrase"

    text = rig.metrics_file.read_text()
    kind = "full" if 'type="full"' in text else "diff"
    assert f'dpc_backup_last_run_success{{type="{kind}"}} 1' in text
    assert f'dpc_backup_last_success_timestamp_seconds{{type="{kind}"}}' in text


# --- point-in-time recovery from that backup -------------------------------------------------------


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds, failing the test after `WAIT_SECONDS`."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT_SECONDS} s: {what}")
        time.sleep(0.1)


def sql(rig: BackupRig, port: int, query: str) -> str:
    """One query's result, unaligned, through the Unix socket of the server on `port`."""
    connection = ("-h", rig.database_layout.paths.sockets, "-p", str(port), "-d", "postgres")
    psql = [POSTGRES_BIN / "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", *connection, "-c", query]
    return run_as("postgres", psql, rig.environment).stdout.strip()


def archived_up_to(rig: BackupRig, segment: str) -> bool:
    """Whether the repository's WAL archive, as `pgbackrest info` reads it, reaches `segment`."""
    return any((archive.get("max") or "") >= segment for stanza in repository_info(rig) for archive in stanza["archive"])


def owned_by_postgres(directory: Path) -> Path:
    """A new directory only the postgres user can read, as PostgreSQL and pgBackRest demand."""
    directory.mkdir(mode=0o700, parents=True)
    shutil.chown(directory, "postgres", "postgres")
    return directory


def test_point_in_time_recovery_to_a_named_restore_point(rig: BackupRig) -> None:
    take_backup(rig)
    sql(rig, LIVE_POSTGRES_PORT, "CREATE TABLE pitr (id integer PRIMARY KEY, batch text NOT NULL)")
    sql(rig, LIVE_POSTGRES_PORT, "INSERT INTO pitr SELECT id, 'A' FROM generate_series(1, 100) AS id")
    sql(rig, LIVE_POSTGRES_PORT, f"SELECT pg_create_restore_point('{RESTORE_POINT}')")
    sql(rig, LIVE_POSTGRES_PORT, "INSERT INTO pitr SELECT id, 'B' FROM generate_series(101, 200) AS id")
    segment = sql(rig, LIVE_POSTGRES_PORT, "SELECT pg_walfile_name(pg_switch_wal())")
    wait_until(lambda: archived_up_to(rig, segment), f"WAL segment {segment} in the repository")
    live_data = Path(rig.database_layout.paths.data)
    run_as("postgres", [POSTGRES_BIN / "pg_ctl", "-D", live_data, "-m", "fast", "-w", "-t", str(WAIT_SECONDS), "stop"], rig.environment)

    restored = owned_by_postgres(rig.root / "restored" / "pgdata")
    restore_command = with_options(RESTORE_COMMAND, *rig.database_host_options(), f"--pg1-path={restored}")
    restore = (
        f"--stanza={BACKUP_STANZA}", f"--pg1-path={restored}", "--type=name", f"--target={RESTORE_POINT}", "--target-action=promote",
        f"--recovery-option=restore_command={restore_command}", "restore",
    )
    refused = pgbackrest(*rig.database_host_options(owned_by_postgres(rig.root / "no-secrets")), *restore, user="postgres", env=rig.environment)
    assert refused.returncode != 0, f"restored without the repository's passphrase: {refused.stdout}"
    assert "requires option: repo1-cipher-pass" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert not any(restored.iterdir()), "a refused restore wrote into the data directory"

    run_as("postgres", ["pgbackrest", *rig.database_host_options(), *restore], rig.environment)
    assert (restored / "pg_wal").resolve().is_relative_to(restored), "the restore's WAL directory points at the live one"
    restored_port, log = free_port(), rig.root / "restored.log"
    with postgres_running(restored, log, rig.environment, f"port={restored_port}", "archive_mode=off"):
        wait_until(lambda: sql(rig, restored_port, "SELECT pg_is_in_recovery()") == "f", "recovery to end with a promotion")
        assert sql(rig, restored_port, "SELECT batch, count(*) FROM pitr GROUP BY batch ORDER BY batch") == "A|100", "rows A only"
    messages = log.read_text()
    assert f'recovery stopping at restore point "{RESTORE_POINT}"' in messages, messages
    assert f'restored log file "{segment}" from archive' in messages, "the restore point's WAL came through restore_command"
    (archived,) = Path(rig.repository_layout.paths.backup_repository).glob(f"archive/{BACKUP_STANZA}/*/*/{segment}-*")
    assert archived.read_bytes().startswith(b"Salted__"), "the segment is in the repository only encrypted"
