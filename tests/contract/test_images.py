"""The project's images checked by the tools that read them, and the postgres image's entrypoint and
backup agent run for real in a sandbox.

- hadolint passes every Dockerfile under images/; shellcheck passes the entrypoint.
- The entrypoint runs under /bin/sh with stand-in `patroni` and `pgbackrest` programs on PATH that
  record their arguments and environment, and with the container's paths pointed into a temporary
  directory (DPC_* variables, paths only). Checked: the dispatch, refusals with their messages,
  the data and WAL directories, and that no secret value reaches the environment of what it runs.
- The backup agent runs with a stand-in pgbackrest: the commands of a full day, the metrics file,
  and that the long-running agent stops when its repository server dies or it is told to stop.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from dpc.cluster import BACKUP_ENCRYPTION_SECRET, BACKUP_METRICS_FILE, CA_SECRET, PASSWORD_SECRETS
from dpc.config import settings_from_stack_file
from dpc.render.backup import S3Repository, render_pgbackrest_repository
from dpc.topology import derive

pytestmark = pytest.mark.contract

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IMAGES = PROJECT_ROOT / "images"
ENTRYPOINT = IMAGES / "postgres" / "entrypoint.sh"
BACKUP_AGENT = IMAGES / "postgres" / "backup_agent.py"
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
FAKE_SECRET = "fake-secret-value-do-not-use"
EX_USAGE, EX_CONFIG = 64, 78
TIMEOUT = 30

RECORDER = """#!/bin/sh
# A stand-in that records how it was run, then behaves as told by $STANDIN_EXIT.
name=$(basename "$0")
printf '%s\\n' "$@" > "$RECORDS/$name.args"
env > "$RECORDS/$name.env"
exit "${STANDIN_EXIT:-0}"
"""

PGBACKREST_STANDIN = """#!/bin/sh
# pgbackrest for the backup agent: logs each command line; `server` stays up unless told not to;
# a backup to repo2 fails when $FAIL_REPO2 is set.
printf '%s\\n' "$*" >> "$RECORDS/pgbackrest.log"
case "$*" in
  server) [ -n "${SERVER_EXITS:-}" ] && exit 3; echo $$ > "$RECORDS/server.pid"; exec sleep 600 ;;
  *--repo=2*) [ -n "${FAIL_REPO2:-}" ] && exit 1 ;;
esac
exit 0
"""


@pytest.mark.parametrize("dockerfile", sorted(IMAGES.glob("*/Dockerfile")), ids=lambda p: p.parent.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = subprocess.run([VENV_BIN / "hadolint", dockerfile], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_passes_the_entrypoint() -> None:
    result = subprocess.run([VENV_BIN / "shellcheck", "--shell=sh", ENTRYPOINT], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the entrypoint in a sandbox --------------------------------------------------------------------


@dataclass(frozen=True)
class Sandbox:
    root: Path
    bin: Path
    records: Path
    secrets: Path
    pgdata: Path
    pgwal: Path

    def environment(self, **extra: str) -> dict[str, str]:
        """A clean environment: stand-ins first on PATH, the container's paths redirected here."""
        return {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.root),
            "RECORDS": str(self.records),
            "DPC_SECRETS_DIR": str(self.secrets),
            "DPC_PGDATA": str(self.pgdata),
            "DPC_PGWAL": str(self.pgwal),
            "DPC_BACKUP_SERVER_RESTART_SECONDS": "0.1",
            "DPC_BACKUP_AGENT": str(self.bin / "dpc-backup-agent"),
            **extra,
        }

    def run(self, *arguments: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", ENTRYPOINT, *arguments], env=self.environment(**extra), capture_output=True, text=True, timeout=TIMEOUT, check=False)

    def recorded(self, program: str) -> tuple[list[str], str]:
        """The arguments a stand-in was run with, and its environment."""
        return (self.records / f"{program}.args").read_text().splitlines(), (self.records / f"{program}.env").read_text()


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    box = Sandbox(tmp_path, tmp_path / "bin", tmp_path / "records", tmp_path / "secrets", tmp_path / "data" / "pgdata", tmp_path / "wal" / "pg_wal")
    for directory in (box.bin, box.records, box.secrets, box.pgdata.parent, box.pgwal.parent):
        directory.mkdir(parents=True)
    for program in ("patroni", "pgbackrest", "dpc-backup-agent"):
        executable(box.bin / program, RECORDER)
    for name in (*PASSWORD_SECRETS, BACKUP_ENCRYPTION_SECRET):
        (box.secrets / name).write_text(f"{FAKE_SECRET}-{name}\n")
    (box.secrets / "patroni.yml").write_text(f"superuser:\n  password: {FAKE_SECRET}-patroni\n")
    (box.secrets / "patroni-1.yml").write_text(f"superuser:\n  password: {FAKE_SECRET}-patroni-1\n")
    (box.secrets / CA_SECRET).write_text("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
    return box


def assert_no_secret_in(text: str) -> None:
    assert FAKE_SECRET not in text


def test_patroni_runs_beside_its_backup_server(sandbox: Sandbox) -> None:
    assert sandbox.run("patroni").returncode == 0
    arguments, environment = sandbox.recorded("pgbackrest")
    assert arguments == ["server"]
    assert_no_secret_in(environment)


def test_patroni_runs_with_the_config_the_service_names(sandbox: Sandbox) -> None:
    config = sandbox.secrets / "patroni-1.yml"
    result = sandbox.run("patroni", str(config))
    assert result.returncode == 0, result.stderr
    arguments, environment = sandbox.recorded("patroni")
    assert arguments == [str(config)]
    assert_no_secret_in(environment)
    for directory in (sandbox.pgdata, sandbox.pgwal):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert directory.stat().st_uid == os.geteuid()


def test_patroni_is_the_default_with_the_default_config(sandbox: Sandbox) -> None:
    result = sandbox.run()
    assert result.returncode == 0, result.stderr
    assert sandbox.recorded("patroni")[0] == [str(sandbox.secrets / "patroni.yml")]


def test_a_data_directory_open_to_others_is_made_private(sandbox: Sandbox) -> None:
    sandbox.pgdata.mkdir(mode=0o755)
    sandbox.pgdata.chmod(0o755)
    assert sandbox.run("patroni").returncode == 0
    assert stat.S_IMODE(sandbox.pgdata.stat().st_mode) == 0o700


def test_a_missing_config_secret_stops_patroni_with_a_clear_message(sandbox: Sandbox) -> None:
    missing = sandbox.secrets / "patroni-9.yml"
    result = sandbox.run("patroni", str(missing))
    assert result.returncode == EX_CONFIG
    assert f"the Patroni configuration {missing} is missing" in result.stderr
    assert "Docker secret" in result.stderr
    assert not (sandbox.records / "patroni.args").exists()


def test_a_volume_owned_by_another_user_stops_patroni(sandbox: Sandbox) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the data directory to another user")
    sandbox.pgdata.mkdir(mode=0o700)
    os.chown(sandbox.pgdata, 65534, 65534)
    result = sandbox.run("patroni")
    assert result.returncode == EX_CONFIG
    assert f"{sandbox.pgdata} is owned by uid 65534" in result.stderr
    assert "chown the volume" in result.stderr
    assert not (sandbox.records / "patroni.args").exists()


def test_a_missing_volume_stops_patroni(sandbox: Sandbox) -> None:
    sandbox.pgwal.parent.rmdir()
    result = sandbox.run("patroni")
    assert result.returncode == EX_CONFIG
    assert f"cannot create {sandbox.pgwal}" in result.stderr


@pytest.mark.parametrize(
    ("command", "program", "arguments"),
    [("backup-agent", "dpc-backup-agent", ["--now"]), ("pgbackrest-server", "pgbackrest", ["server"])],
)
def test_backup_services_dispatch(sandbox: Sandbox, command: str, program: str, arguments: list[str]) -> None:
    result = sandbox.run(command, *(arguments if command == "backup-agent" else []))
    assert result.returncode == 0, result.stderr
    recorded_arguments, environment = sandbox.recorded(program)
    assert recorded_arguments == arguments
    assert_no_secret_in(environment)


def test_the_exit_status_of_the_service_is_the_containers(sandbox: Sandbox) -> None:
    assert sandbox.run("pgbackrest-server", STANDIN_EXIT="3").returncode == 3


@pytest.mark.parametrize("command", ["bash", "psql", "--help", "patroni-1"])
def test_unknown_commands_are_refused(sandbox: Sandbox, command: str) -> None:
    result = sandbox.run(command)
    assert result.returncode == EX_USAGE
    assert f"unknown command '{command}'" in result.stderr
    assert "expected patroni [CONFIG], backup-agent, pgbackrest-server or healthcheck" in result.stderr
    assert not list(sandbox.records.iterdir())


@pytest.mark.parametrize("variable", ["PGPASSWORD", "PATRONI_SUPERUSER_PASSWORD", "PGBACKREST_REPO1_CIPHER_PASS", "AWS_SECRET_ACCESS_KEY"])
@pytest.mark.parametrize("command", ["patroni", "backup-agent", "pgbackrest-server"])
def test_a_secret_in_the_environment_is_refused_without_being_shown(sandbox: Sandbox, command: str, variable: str) -> None:
    result = sandbox.run(command, **{variable: FAKE_SECRET})
    assert result.returncode == EX_CONFIG
    assert variable in result.stderr
    assert_no_secret_in(result.stderr + result.stdout)
    assert not list(sandbox.records.iterdir())


def test_path_variables_are_not_taken_for_secrets(sandbox: Sandbox) -> None:
    assert sandbox.run("pgbackrest-server", PGPASSFILE="/run/postgresql/.pgpass", PGBACKREST_STANZA="main").returncode == 0


# --- the backup agent with a stand-in pgbackrest ---------------------------------------------------


@pytest.fixture
def agent_sandbox(sandbox: Sandbox) -> Sandbox:
    executable(sandbox.bin / "pgbackrest", PGBACKREST_STANDIN)
    settings = settings_from_stack_file(PROJECT_ROOT / "Pulumi.prod.yaml")
    config = render_pgbackrest_repository(derive(settings).layout, settings.backup, S3Repository(bucket="example-bucket", region="us-east-1"))
    (sandbox.root / "pgbackrest.conf").write_text(config)
    return sandbox


def run_agent(box: Sandbox, *arguments: str, **extra: str) -> subprocess.Popen[str]:
    environment = box.environment(PGBACKREST_CONFIG=str(box.root / "pgbackrest.conf"), **extra)
    command = [str(BACKUP_AGENT), "--pgbackrest", str(box.bin / "pgbackrest"), "--metrics-file", str(box.root / BACKUP_METRICS_FILE), *arguments]
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def pgbackrest_log(box: Sandbox) -> list[str]:
    return (box.records / "pgbackrest.log").read_text().splitlines()


def todays_backup_type() -> str:
    """The schedule's rule (design §4.2), for the day the test runs: full on Sundays and the 1st."""
    today = dt.datetime.now(dt.UTC).date()
    return "full" if today.weekday() == 6 or today.day == 1 else "diff"


def test_the_agent_takes_the_days_backups_and_writes_metrics(agent_sandbox: Sandbox) -> None:
    kind = todays_backup_type()
    agent = run_agent(agent_sandbox, "--now", FAIL_REPO2="1")
    _, stderr = agent.communicate(timeout=TIMEOUT)
    assert agent.returncode == (1 if kind == "full" else 0), stderr
    commands = pgbackrest_log(agent_sandbox)
    assert commands[:2] == ["--stanza=main --log-level-console=info stanza-create", "--stanza=main --log-level-console=info check"]
    expected = [f"--stanza=main --log-level-console=info --type={kind} --repo=1 backup"]
    if kind == "full":
        expected.append("--stanza=main --log-level-console=info --type=full --repo=2 backup")
    assert commands[2:] == expected
    metrics = (agent_sandbox.root / BACKUP_METRICS_FILE).read_text()
    assert f'dpc_backup_last_run_success{{type="{kind}"}} {0 if kind == "full" else 1}' in metrics


def test_the_agent_stops_when_its_repository_server_dies(agent_sandbox: Sandbox) -> None:
    agent = run_agent(agent_sandbox, SERVER_EXITS="1")
    _, stderr = agent.communicate(timeout=TIMEOUT)
    assert agent.returncode == 1
    assert "pgbackrest server exited with 3" in stderr
    assert "server" in pgbackrest_log(agent_sandbox)


def test_the_agent_stops_its_server_on_sigterm(agent_sandbox: Sandbox) -> None:
    agent = run_agent(agent_sandbox)
    initialised = {"server", "--stanza=main --log-level-console=info stanza-create", "--stanza=main --log-level-console=info check"}
    log = agent_sandbox.records / "pgbackrest.log"
    deadline = time.monotonic() + TIMEOUT
    while not (log.exists() and initialised <= set(pgbackrest_log(agent_sandbox)) and (agent_sandbox.records / "server.pid").exists()):
        assert time.monotonic() < deadline, "the agent did not start its server and initialise the stanza"
        time.sleep(0.1)
    server = int((agent_sandbox.records / "server.pid").read_text())
    agent.send_signal(signal.SIGTERM)
    _, stderr = agent.communicate(timeout=TIMEOUT)
    assert agent.returncode == 128 + signal.SIGTERM, stderr
    assert not Path(f"/proc/{server}").exists(), "the repository server outlived the agent"
