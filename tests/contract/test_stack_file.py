"""The stack-file export through `docker stack config`, Docker's own parser of stack files (it needs
no engine): the same services as the DatabaseStack deploys, accepted as written."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from dpc.cluster import BACKUP_ENCRYPTION_SECRET, PASSWORD_SECRETS, swarm_layout
from dpc.config import settings_from_stack_file
from dpc.services import database_services
from review.stackfile import export, main

PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.contract


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_docker_stack_config_accepts_the_exported_stack(stack: str, tmp_path: Path) -> None:
    docker = shutil.which("docker")
    assert docker, "the docker client is needed to check stack files (no engine needed)"
    settings = settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml")
    path = export(settings, tmp_path)
    result = subprocess.run(
        [docker, "stack", "config", "--compose-file", str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    expected = {s.name for s in database_services(settings, swarm_layout(settings))}
    assert set(resolved["services"]) == expected
    for name in ("coordinator-net", "data-net"):
        assert resolved["networks"][name]["driver_opts"] == {"encrypted": ""}
    for service in resolved["services"].values():
        assert "environment" not in service or not any("PASSWORD=" in f"{k}={v}".upper() for k, v in service["environment"].items())
    assert all(secret.get("external") for secret in resolved["secrets"].values())


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
