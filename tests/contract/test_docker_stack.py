"""The stack-file export through `docker stack config`, Docker's own parser of stack files (it needs
no engine): the same services as the DatabaseStack deploys, accepted as written, and read back in
the units the Engine API body of dpc/swarm_spec.py says."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from dpc.cluster import BACKUP_ENCRYPTION_SECRET, PASSWORD_SECRETS
from dpc.config import settings_from_stack_file
from dpc.database_files import plain_configs
from dpc.services import database_services, placement_of
from dpc.swarm_spec import swarm_service
from dpc.topology import derive
from engine.docker_stack import export, main

PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.contract


def _docker_stack_config(path: Path) -> dict[str, Any]:
    """The stack file as Docker's own parser resolves it."""
    docker = shutil.which("docker")
    assert docker, "the docker client is needed to check stack files (no engine needed)"
    result = subprocess.run(
        [docker, "stack", "config", "--compose-file", str(path)], capture_output=True, text=True, timeout=60, cwd=path.parent, check=False
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _seconds(duration: str) -> int:
    """A Go duration as Docker prints it ("1m0s") in seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, duration
    hours, minutes, seconds = (int(p or 0) for p in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_docker_stack_config_accepts_the_exported_stack(stack: str, tmp_path: Path) -> None:
    settings = settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml")
    resolved = _docker_stack_config(export(settings, tmp_path))
    expected = {s.name for s in database_services(derive(settings))}
    assert set(resolved["services"]) == expected
    for name in ("coordinator-net", "data-net"):
        assert resolved["networks"][name]["driver_opts"] == {"encrypted": ""}
    for service in resolved["services"].values():
        assert "environment" not in service or not any("PASSWORD=" in f"{k}={v}".upper() for k, v in service["environment"].items())
    assert all(secret.get("external") for secret in resolved["secrets"].values())


@pytest.mark.parametrize("stack", ["prod", "local"])
def test_docker_reads_the_stack_files_units_as_the_swarm_spec_says(stack: str, tmp_path: Path) -> None:
    """CPUs, memory and durations are written in the stack file's own units: Docker's parser must
    read back exactly the nano-CPUs, bytes and seconds of the Engine API body."""
    settings = settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml")
    layout = derive(settings).layout
    configs = plain_configs(settings, layout, None)
    resolved = _docker_stack_config(export(settings, tmp_path))["services"]
    for spec in database_services(derive(settings), placement_of(settings)):
        service, deploy = swarm_service(spec, configs), resolved[spec.name]["deploy"]
        for allocation, read in ((service.limits, deploy["resources"]["limits"]), (service.reservations, deploy["resources"]["reservations"])):
            # Docker leaves out a zero (the local stack reserves nothing).
            assert Decimal(read.get("cpus", "0")) * 10**9 == allocation.nano_cpus, spec.name
            assert int(read.get("memory", "0")) == allocation.memory_bytes, spec.name
        assert _seconds(resolved[spec.name]["stop_grace_period"]) == service.stop_grace_seconds
        assert _seconds(deploy["restart_policy"]["window"]) == service.restart.window_seconds
        assert _seconds(deploy["update_config"]["delay"]) == service.update.delay_seconds, spec.name
        assert _seconds(deploy["rollback_config"]["delay"]) == service.rollback.delay_seconds, spec.name
        assert deploy["endpoint_mode"] == service.endpoint_mode
        assert deploy.get("placement", {}).get("max_replicas_per_node") == service.max_replicas_per_node, spec.name


def test_the_export_command_writes_the_stack_its_configs_and_the_secrets_to_create(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "prod", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "docker-stack.yml")
    assert (tmp_path / "configs" / "haproxy.cfg").is_file()
    names = (tmp_path / "secrets.txt").read_text()
    assert "postgres_superuser_password" in names and "patroni-1-patroni.yml" in names


def test_the_export_command_rejects_a_bad_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "missing", "--out", str(tmp_path)]) == 2
    assert "Pulumi.missing.yaml" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_the_secret_bearing_files_are_rendered_from_the_generated_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    assert main(["--stack", "prod", "--out", str(tmp_path / "out"), "--secrets", str(secrets)]) == 2
    assert "postgres_superuser_password" in capsys.readouterr().err, "names what is missing"
    assert sorted(p.name for p in secrets.iterdir()) == [], "writes nothing when a secret is missing"
    for name in (*PASSWORD_SECRETS, BACKUP_ENCRYPTION_SECRET):
        (secrets / name).write_text(f"value-of-{name}\n")
    assert main(["--stack", "prod", "--out", str(tmp_path / "out"), "--secrets", str(secrets)]) == 0
    patroni = secrets / "patroni-1-patroni.yml"
    assert "value-of-replication_password" in patroni.read_text()
    assert stat.S_IMODE(patroni.stat().st_mode) == 0o600
    listed = (tmp_path / "out" / "secrets.txt").read_text().splitlines()
    written = {p.name for p in secrets.iterdir()} - {*PASSWORD_SECRETS, BACKUP_ENCRYPTION_SECRET}
    assert written and written <= set(listed), "every file written is a secret the stack file expects"
