"""The project's images as files: pinned bases and dependencies, entrypoint defaults that agree with
the cluster layout, and the backup agent's and health check's pure functions (images/postgres/)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dpc.cluster import BACKUP_METRICS_FILE, BACKUP_STANZA, CA_SECRET, Paths, Port
from dpc.config import settings_from_stack_file
from dpc.render.backup import PGBACKREST_CONFIG, S3Repository, render_pgbackrest_repository
from dpc.topology import derive
from engine.images import pinned_base

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IMAGES = PROJECT_ROOT / "images"
POSTGRES_IMAGE = IMAGES / "postgres"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
UTC = dt.UTC


def load(name: str) -> ModuleType:
    """A script of the postgres image as a module (it is not on the import path)."""
    module_name = f"postgres_image_{name}"
    spec = importlib.util.spec_from_file_location(module_name, POSTGRES_IMAGE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


agent = load("backup_agent")
healthcheck = load("healthcheck")


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "") for line in text.splitlines() if line.strip()]


# --- pinning ----------------------------------------------------------------------------------


def test_there_is_a_postgres_image() -> None:
    assert POSTGRES_IMAGE / "Dockerfile" in DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_base_image_is_pinned_by_version(dockerfile: Path) -> None:
    instructions = dockerfile_instructions(dockerfile)
    defaults = dict(arguments.split("=", 1) for instruction, arguments in instructions if instruction == "ARG" and "=" in arguments)
    froms = [arguments.split()[0] for instruction, arguments in instructions if instruction == "FROM"]
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), base) for base in froms]
    assert bases
    for base in bases:
        name, _, tag = base.partition(":")
        assert tag and tag != "latest", f"{dockerfile.relative_to(PROJECT_ROOT)}: {base} is not pinned by a version tag"
        assert re.search(r"\d", tag), f"{base}: the tag names no version"
        assert name
    assert "latest" not in dockerfile.read_text()


def test_both_images_build_from_one_base_that_a_build_can_replace() -> None:
    """The local Swarm builds from a debootstrapped stand-in where the pinned base cannot be pulled
    (engine/images.py): both Dockerfiles take it as BASE_IMAGE, pinned to the same default."""
    for dockerfile in DOCKERFILES:
        froms = [arguments for instruction, arguments in dockerfile_instructions(dockerfile) if instruction == "FROM"]
        assert froms == ["${BASE_IMAGE}"], dockerfile
    assert pinned_base() == "debian:12.11-slim"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_hadolint_ignore_is_justified_by_the_comment_above(dockerfile: Path) -> None:
    lines = dockerfile.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            rules = line.split("=", 1)[1].split(",")
            above = number
            while above > 0 and lines[above - 1].lstrip().startswith("#"):
                above -= 1
            justification = " ".join(lines[above:number])
            for rule in rules:
                assert f"({rule.strip()})" in justification, f"{dockerfile.name}:{number + 1}: {rule} is ignored without a justification naming it"


def pinned_patroni(requirement_lines: list[str]) -> str:
    versions = [m.group(1) for line in requirement_lines if (m := re.match(r"^patroni(?:\[[^\]]*\])?==([\w.]+)", line.strip()))]
    assert len(versions) == 1, requirement_lines
    return versions[0]


def test_patroni_in_the_image_is_the_version_the_tests_run() -> None:
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    dev_version = pinned_patroni(pyproject["dependency-groups"]["dev"])
    assert pinned_patroni((POSTGRES_IMAGE / "requirements.in").read_text().splitlines()) == dev_version
    assert pinned_patroni((POSTGRES_IMAGE / "requirements.txt").read_text().splitlines()) == dev_version


def test_patroni_has_the_extras_the_cluster_needs() -> None:
    requirement = next(line for line in (POSTGRES_IMAGE / "requirements.in").read_text().splitlines() if line.startswith("patroni"))
    assert {"etcd3", "psycopg3"} <= set(requirement.split("[", 1)[1].split("]", 1)[0].split(","))


def test_every_python_requirement_is_pinned_with_hashes() -> None:
    text = (POSTGRES_IMAGE / "requirements.txt").read_text()
    requirements = re.findall(r"^([A-Za-z0-9_.\[\],-]+)(==[^ ]+)? \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", text, flags=re.MULTILINE)
    names = [line.split("==")[0] for line in text.splitlines() if line and not line[0].isspace() and not line.startswith("#")]
    assert len(requirements) == len(names) > 10
    assert all(pin for _, pin, _ in requirements), "every requirement is pinned with =="
    assert not re.search(r"https?://|file:", text), "no index or local path in the committed file"


def test_the_image_installs_the_pinned_requirements_with_hashes() -> None:
    runs = " ".join(arguments for instruction, arguments in dockerfile_instructions(POSTGRES_IMAGE / "Dockerfile") if instruction == "RUN")
    assert "--require-hashes" in runs
    for package in ("postgresql-15", "postgresql-15-pgaudit", "pgbackrest", "ca-certificates", "tini", "python3-venv"):
        assert re.search(rf"\s{re.escape(package)}(\s|$)", runs), package


def test_the_image_runs_as_the_postgres_uid_and_starts_through_its_entrypoint() -> None:
    instructions = dockerfile_instructions(POSTGRES_IMAGE / "Dockerfile")
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users == ["999:999"]
    assert "--uid 999" in " ".join(a for i, a in instructions if i == "RUN")
    entrypoint = next(arguments for instruction, arguments in instructions if instruction == "ENTRYPOINT")
    assert entrypoint.endswith('"/usr/local/bin/dpc-entrypoint"]')
    health = next(arguments for instruction, arguments in instructions if instruction == "HEALTHCHECK")
    assert health.endswith('["/usr/local/bin/dpc-entrypoint", "healthcheck"]')


def test_every_copied_script_exists_and_is_executable() -> None:
    sources = [arguments.split()[0] for instruction, arguments in dockerfile_instructions(POSTGRES_IMAGE / "Dockerfile") if instruction == "COPY"]
    assert "entrypoint.sh" in sources
    for source in sources:
        path = POSTGRES_IMAGE / source
        assert path.is_file(), source
        if path.suffix in {".sh", ".py"}:
            assert path.stat().st_mode & 0o111, f"{source} is not executable (COPY keeps the mode)"


def test_no_secret_is_baked_into_the_image() -> None:
    text = (POSTGRES_IMAGE / "Dockerfile").read_text()
    assert not re.search(r"(?i)(password|passphrase|cipher-pass|secret_key)\s*=", text)
    arguments = sorted(a.split("=")[0] for i, a in dockerfile_instructions(POSTGRES_IMAGE / "Dockerfile") if i == "ARG")
    assert arguments == ["BASE_IMAGE", "PIP_NO_INDEX"], "only the base and pip's index switch are build arguments: none could carry a secret"


# --- the entrypoint's and scripts' defaults agree with the layout ------------------------------------


def shell_default(variable: str) -> str:
    match = re.search(rf"\${{{variable}:-([^}}]+)}}", (POSTGRES_IMAGE / "entrypoint.sh").read_text())
    assert match, variable
    return match.group(1)


def test_entrypoint_defaults_are_the_container_paths_of_the_layout() -> None:
    paths = Paths()
    assert shell_default("DPC_SECRETS_DIR") == paths.secrets
    assert shell_default("DPC_PGDATA") == paths.data
    assert shell_default("DPC_PGWAL") == paths.wal


def test_scripts_agree_with_the_cluster_constants() -> None:
    assert agent.STANZA == BACKUP_STANZA
    assert f"{Paths().node_exporter_textfiles}/{BACKUP_METRICS_FILE}" == agent.DEFAULT_METRICS_FILE
    assert agent.DEFAULT_CONFIG == PGBACKREST_CONFIG
    assert healthcheck.CA_SECRET == CA_SECRET
    assert healthcheck.PGBACKREST_ADDRESS[1] == Port.PGBACKREST
    assert f"https://localhost:{Port.PATRONI_API}/liveness" == healthcheck.PATRONI_LIVENESS


# --- the backup schedule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (dt.date(2025, 6, 1), "full"),  # a Sunday that is also the 1st
        (dt.date(2025, 6, 8), "full"),  # Sunday
        (dt.date(2025, 7, 1), "full"),  # the 1st, a Tuesday
        (dt.date(2025, 7, 2), "diff"),
        (dt.date(2025, 7, 5), "diff"),  # Saturday
        (dt.date(2024, 2, 29), "diff"),  # leap day
        (dt.date(2024, 3, 1), "full"),
        (dt.date(2025, 12, 31), "diff"),
        (dt.date(2026, 1, 1), "full"),
    ],
)
def test_backup_type_of_a_day(day: dt.date, expected: str) -> None:
    assert agent.backup_type(day) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (dt.datetime(2025, 7, 2, 1, 59, 59, tzinfo=UTC), dt.datetime(2025, 7, 2, 2, 0, tzinfo=UTC)),
        (dt.datetime(2025, 7, 2, 2, 0, tzinfo=UTC), dt.datetime(2025, 7, 3, 2, 0, tzinfo=UTC)),  # strictly after: a run never repeats
        (dt.datetime(2025, 7, 2, 2, 0, 1, tzinfo=UTC), dt.datetime(2025, 7, 3, 2, 0, tzinfo=UTC)),
        (dt.datetime(2025, 1, 31, 23, 0, tzinfo=UTC), dt.datetime(2025, 2, 1, 2, 0, tzinfo=UTC)),  # month end
        (dt.datetime(2024, 2, 28, 12, 0, tzinfo=UTC), dt.datetime(2024, 2, 29, 2, 0, tzinfo=UTC)),  # leap year
        (dt.datetime(2025, 2, 28, 12, 0, tzinfo=UTC), dt.datetime(2025, 3, 1, 2, 0, tzinfo=UTC)),
        (dt.datetime(2025, 12, 31, 3, 0, tzinfo=UTC), dt.datetime(2026, 1, 1, 2, 0, tzinfo=UTC)),  # year end
        # Europe's spring-forward morning, given in local summer time (00:30 UTC): due at 02:00 UTC, not local.
        (dt.datetime(2025, 3, 30, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))), dt.datetime(2025, 3, 30, 2, 0, tzinfo=UTC)),
    ],
)
def test_next_run(now: dt.datetime, expected: dt.datetime) -> None:
    assert agent.next_run(now) == expected


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_next_run_is_the_next_0200_utc_within_a_day(now: dt.datetime) -> None:
    due = agent.next_run(now)
    assert now < due <= now + dt.timedelta(days=1)
    assert (due.hour, due.minute, due.second, due.microsecond) == (2, 0, 0, 0)
    assert due.utcoffset() == dt.timedelta(0)


@given(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 1, 1)))
def test_every_week_has_a_full_backup_and_every_month_starts_with_one(day: dt.date) -> None:
    week = [day + dt.timedelta(days=offset) for offset in range(7)]
    assert "full" in {agent.backup_type(d) for d in week}
    assert agent.backup_type(day.replace(day=1)) == "full"


def test_scheduled_backups_send_only_fulls_offsite() -> None:
    sunday, wednesday = dt.date(2025, 7, 6), dt.date(2025, 7, 9)
    assert agent.scheduled_backups(sunday, (2, 1)) == (agent.Backup("full", 1), agent.Backup("full", 2))
    assert agent.scheduled_backups(wednesday, (1, 2)) == (agent.Backup("diff", 1),)
    assert agent.scheduled_backups(wednesday, (1,)) == (agent.Backup("diff", 1),)


def test_configured_repositories_of_the_rendered_configs() -> None:
    settings = settings_from_stack_file(PROJECT_ROOT / "Pulumi.prod.yaml")
    layout = derive(settings).layout
    offsite = S3Repository(bucket="example-bucket", region="us-east-1")
    assert agent.configured_repositories(render_pgbackrest_repository(layout, settings.backup, offsite)) == (1, 2)
    assert agent.configured_repositories(render_pgbackrest_repository(layout, settings.backup, None)) == (1,)
    assert agent.configured_repositories("[global]\nlog-level-file=off\n") == (1,)


# --- metrics ------------------------------------------------------------------------------------


def test_metrics_of_a_first_run_name_only_what_is_known(tmp_path: Path) -> None:
    path = tmp_path / BACKUP_METRICS_FILE
    agent.record_run(path, "diff", True, 1751335200.0)
    text = path.read_text()
    assert 'dpc_backup_last_success_timestamp_seconds{type="diff"} 1751335200.000' in text
    assert 'dpc_backup_last_run_success{type="diff"} 1' in text
    assert 'type="full"' not in text
    assert "# TYPE dpc_backup_last_success_timestamp_seconds gauge" in text
    assert "# TYPE dpc_backup_last_run_success gauge" in text


def test_a_failed_run_keeps_the_last_success_and_the_other_type(tmp_path: Path) -> None:
    path = tmp_path / BACKUP_METRICS_FILE
    agent.record_run(path, "full", True, 100.0)
    agent.record_run(path, "diff", True, 200.0)
    agent.record_run(path, "full", False, 300.0)
    state = agent.parse_metrics(path.read_text())
    assert state["full"] == agent.TypeMetrics(last_success=100.0, last_run_success=False)
    assert state["diff"] == agent.TypeMetrics(last_success=200.0, last_run_success=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [BACKUP_METRICS_FILE], "no temporary file is left behind"
    assert path.stat().st_mode & 0o777 == 0o644, "node-exporter, another user, reads it"


@given(
    st.sampled_from(["full", "diff"]),
    st.one_of(st.none(), st.floats(min_value=0, max_value=4e9, allow_nan=False)),
    st.one_of(st.none(), st.booleans()),
)
def test_metrics_round_trip(kind: str, success: float | None, run: bool | None) -> None:
    state = agent.unknown_metrics()
    state[kind] = agent.TypeMetrics(last_success=None if success is None else round(success, 3), last_run_success=run)
    assert agent.parse_metrics(agent.render_metrics(state)) == state


def test_a_failed_write_leaves_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / BACKUP_METRICS_FILE
    path.write_text("previous\n")

    def refuse(_source: str, _target: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(agent.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        agent.write_atomically(path, "next\n")
    assert path.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == [BACKUP_METRICS_FILE]


# --- the agent's actions with a recording runner -------------------------------------------------


def test_a_full_day_backs_up_every_repository_and_records_one_run(tmp_path: Path) -> None:
    commands: list[list[str]] = []
    path = tmp_path / BACKUP_METRICS_FILE

    def runner(command: list[str]) -> int:
        commands.append(list(command))
        return 1 if "--repo=2" in command else 0

    backup_agent = agent.Agent(pgbackrest="pgbackrest", metrics_file=path, repositories=(1, 2), run=runner)
    assert backup_agent.back_up(dt.date(2025, 7, 6), clock=lambda: 42.0) is False
    assert commands == [
        ["pgbackrest", "--stanza=main", "--log-level-console=info", "--type=full", "--repo=1", "backup"],
        ["pgbackrest", "--stanza=main", "--log-level-console=info", "--type=full", "--repo=2", "backup"],
    ]
    assert agent.parse_metrics(path.read_text())["full"] == agent.TypeMetrics(last_success=None, last_run_success=False)


def test_initialise_creates_the_stanza_then_checks_and_stops_at_the_first_failure(tmp_path: Path) -> None:
    commands: list[str] = []

    def runner(command: list[str]) -> int:
        commands.append(command[-1])
        return 1

    assert agent.Agent("pgbackrest", tmp_path / "m.prom", (1,), runner).initialise() is False
    assert commands == ["stanza-create"]


# --- the health check -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmdline", "service"),
    [
        (b"/usr/bin/tini\0--\0/usr/local/bin/dpc-entrypoint\0patroni\0/run/secrets/patroni-1.yml\0", "patroni"),
        (b"/usr/bin/tini\0--\0/usr/local/bin/dpc-entrypoint\0backup-agent\0", "backup-agent"),
        (b"/usr/bin/tini\0--\0/usr/local/bin/dpc-entrypoint\0pgbackrest-server\0", "pgbackrest-server"),
        (b"/usr/bin/tini\0--\0/usr/local/bin/dpc-entrypoint\0", "patroni"),
        (b"/bin/sh\0", "patroni"),
    ],
)
def test_health_check_finds_the_service_from_the_first_process(cmdline: bytes, service: str) -> None:
    assert healthcheck.service_of(cmdline) == service
