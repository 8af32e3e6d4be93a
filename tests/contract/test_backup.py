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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

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
    swarm_layout,
)
from dpc.config import settings_from_stack_file
from dpc.render.backup import (
    ARCHIVE_COMMAND,
    OffsiteRepository,
    render_pgbackrest_database_host,
    render_pgbackrest_repository,
    render_pgbackrest_secrets,
)
from dpc.settings import Settings
from tests.cluster.pki import issue
from tests.golden_files import assert_matches_golden, assert_no_stale_golden_files

pytestmark = pytest.mark.contract

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = PROJECT_ROOT / "tests" / "golden" / "backup"
BACKUP_AGENT = PROJECT_ROOT / "images" / "postgres" / "backup_agent.py"
POSTGRES_BIN = Path(Paths().postgres_bin)
FAKE_PASSPHRASE = "fake-backup-passphrase-for-tests-only"
PLACEHOLDER_OFFSITE = OffsiteRepository(bucket="dpc-prod-offsite-backups-placeholder", region="us-east-1")
TIMEOUT = 120
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
    layout = swarm_layout(settings)
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
        swarm_layout(prod_settings()),
        patroni=(Member("patroni-1", "localhost", "127.0.0.1"),),
        backup=Member("backup", "localhost", "127.0.0.1"),
        paths=paths,
    )
    database = dataclasses.replace(repository, paths=dataclasses.replace(paths, pgbackrest_spool=str(root / "database" / "spool")))
    return repository, database


def write_secrets(layout: ClusterLayout, owner: str) -> None:
    secrets = Path(layout.paths.secrets)
    secrets.mkdir()
    for name, pem in issue(certificate_requests(layout)).items():
        path = secrets / name
        path.write_text(pem)
        path.chmod(0o644 if name == CA_SECRET or name.endswith("_cert") else 0o600)
        shutil.chown(path, owner, owner)


def run_as(user: str, command: Sequence[str | Path], env: Mapping[str, str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout, check=False, env=dict(env), **as_user(user))
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result


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
    processes: list[subprocess.Popen[str]] = []
    environment = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(root)}
    data = Path(database_layout.paths.data)
    try:
        directories = (include_repository, include_database, Path(repository_layout.paths.backup_repository), data.parent)
        for directory in (*directories, root / "wal", root / "run", root / "textfile"):
            directory.mkdir(parents=True)
        rig.repository_config.write_text(render_pgbackrest_repository(repository_layout, prod_settings().backup, None))
        rig.database_config.write_text(render_pgbackrest_database_host(database_layout, database_layout.patroni[0], offsite=False))
        for include in (include_repository, include_database):
            (include / "secrets.conf").write_text(render_pgbackrest_secrets({BACKUP_ENCRYPTION_SECRET: FAKE_PASSPHRASE}))
        write_secrets(repository_layout, user)
        subprocess.run(["chown", "-R", f"{user}:{user}", str(root)], check=True, timeout=TIMEOUT)

        initdb = [POSTGRES_BIN / "initdb", "-D", data, f"--waldir={database_layout.paths.wal}", "--auth=trust", "--no-sync", "--username=postgres"]
        run_as(user, initdb, environment)
        archive_command = ARCHIVE_COMMAND.replace(
            "pgbackrest ", f"pgbackrest --config={rig.database_config} --config-include-path={include_database} --repo1-host-port={rig.repository_port} ", 1
        )
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{database_layout.paths.sockets}'",
            "port": "5432",
            "archive_mode": "on",
            "archive_command": f"'{archive_command}'",
            "fsync": "off",
        }
        with (data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        run_as(user, [POSTGRES_BIN / "pg_ctl", "-D", data, "-l", root / "postgresql.log", "-w", "-t", "60", "start"], environment)

        deadline = time.monotonic() + 30
        for config, include, port in (
            (rig.database_config, include_database, rig.database_port),
            (rig.repository_config, include_repository, rig.repository_port),
        ):
            server = subprocess.Popen(
                ["pgbackrest", f"--config={config}", f"--config-include-path={include}", f"--tls-server-port={port}", "server"],
                user=user, group=user, extra_groups=[], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            processes.append(server)
            wait_for_port(port, server, deadline)
        yield rig
    finally:
        for process in processes:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            if process.poll() is None:
                process.kill()
                process.wait()
        if (data / "postmaster.pid").exists():
            stop = [POSTGRES_BIN / "pg_ctl", "-D", data, "-m", "immediate", "stop"]
            subprocess.run(stop, env=environment, capture_output=True, timeout=60, check=False, **as_user(user))
        shutil.rmtree(root, ignore_errors=True)


def test_a_real_encrypted_backup_over_tls(rig: BackupRig) -> None:
    environment = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(rig.root), **rig.repository_options()}
    metrics = Path(rig.repository_layout.paths.node_exporter_textfiles) / BACKUP_METRICS_FILE
    agent = subprocess.run(
        ["/usr/bin/python3", str(BACKUP_AGENT), "--now", "--metrics-file", str(metrics)],
        capture_output=True, text=True, timeout=TIMEOUT, check=False, user="postgres", group="postgres", extra_groups=[], env=environment,
    )
    assert agent.returncode == 0, f"{agent.stderr}\nPostgreSQL's log:\n{(rig.root / 'postgresql.log').read_bytes()[-3000:].decode(errors='replace')}"
    assert "backup command end: completed successfully" in agent.stderr + agent.stdout

    info = json.loads(run_as("postgres", ["pgbackrest", f"--stanza={BACKUP_STANZA}", "--output=json", "info"], environment).stdout)
    (stanza,) = info
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

    text = metrics.read_text()
    kind = "full" if 'type="full"' in text else "diff"
    assert f'dpc_backup_last_run_success{{type="{kind}"}} 1' in text
    assert f'dpc_backup_last_success_timestamp_seconds{{type="{kind}"}}' in text
