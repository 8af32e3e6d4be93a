"""The multi-node Swarm suite's fixture: the local stack's layout (3 managers, 3 workers, 2 app
nodes) as Docker engines in network namespaces on this machine, the project's images built, the
database stack deployed onto them through the one Swarm translation, healthy (engine/lab.py).

Not part of the default test paths; run as root with `./run swarm`. On a machine that cannot run
it (not root, no dockerd) it fails instead of skipping: it is only run where it must pass.
One deployment for the session, under a temporary directory, torn down at the end (engines,
namespaces, mounts, directory). When a test failed, or the bring-up did, every engine's log and
every service's log are copied to a directory that outlives the run, named at the end.

`DPC_SWARM_ROOT=DIR` (with `DPC_SWARM_STACK=NAME`) runs the suite on a local Swarm that
`./run up` made instead, and leaves it running: for working on the tests, not for CI.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpc.config import settings_from_stack_file
from dpc.settings import Settings
from engine.lab import Deployment, bring_up, tear_down
from engine.netns import NamespaceClient, require_namespaces

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = PROJECT_ROOT / "Pulumi.local.yaml"
FAILED_TESTS: list[str] = []
KEPT_LOGS: list[Path] = []
PHASES: dict[str, float] = {}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # `./run swarm`'s timeout sends SIGTERM: end like Ctrl-C, so the session fixture still tears
    # the engines and namespaces down (and keeps their logs) instead of leaving them running.
    signal.signal(signal.SIGTERM, _interrupt)
    config.addinivalue_line("markers", "swarm: deploys the database stack on a multi-node Docker Swarm in network namespaces (root only)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        FAILED_TESTS.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if PHASES:
        terminalreporter.write_line("local Swarm bring-up, seconds per phase: " + ", ".join(f"{k} {v}" for k, v in PHASES.items()))
    for kept in KEPT_LOGS:
        terminalreporter.write_line(f"local Swarm logs kept in {kept}")


def _require_engines() -> None:
    require_namespaces()
    missing = [program for program in ("dockerd", "docker", "debootstrap", "nsenter", "unshare") if shutil.which(program) is None]
    if missing:
        raise RuntimeError(f"The Swarm suite cannot start: {', '.join(missing)} not found (./run swarm installs them)")


def keep_logs(root: Path, tag: str) -> Path:
    """Copies every engine's log and every service's log (as the manager gathers them) out of `root`."""
    kept = Path(tempfile.mkdtemp(prefix=f"dpc-swarm-logs-{tag}-", dir="/var/tmp"))
    for log in sorted((root / "nodes").glob("*/dockerd.log")):
        shutil.copy(log, kept / f"{log.parent.name}-dockerd.log")
    if (root / "build.log").exists():
        shutil.copy(root / "build.log", kept / "build.log")
    manager = root / "nodes" / "manager-1" / "docker.sock"
    if manager.exists():
        docker = ["docker", "-H", f"unix://{manager}"]
        listed = subprocess.run([*docker, "service", "ls", "--format", "{{.Name}}"], capture_output=True, text=True, timeout=30, check=False)
        for service in listed.stdout.split():
            logs = subprocess.run(
                ["docker", "-H", f"unix://{manager}", "service", "logs", "--timestamps", "--no-trunc", service],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            (kept / f"service-{service}.log").write_text(logs.stdout + logs.stderr)
            tasks = subprocess.run(
                ["docker", "-H", f"unix://{manager}", "service", "ps", "--no-trunc", service], capture_output=True, text=True, timeout=30, check=False
            )
            (kept / f"service-{service}.tasks").write_text(tasks.stdout + tasks.stderr)
    return kept


@pytest.fixture(scope="session")
def settings() -> Settings:
    return settings_from_stack_file(STACK_FILE)


@pytest.fixture(scope="session")
def deployment(settings: Settings) -> Iterator[Deployment]:
    try:
        _require_engines()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    given = os.environ.get("DPC_SWARM_ROOT")
    if given:
        yield bring_up(settings, Path(given), os.environ.get("DPC_SWARM_STACK", "local"), print)
        return
    tag = secrets.token_hex(2)
    root = Path(tempfile.mkdtemp(prefix=f"dpc-swarm-{tag}-", dir="/var/tmp"))
    try:
        deployed = bring_up(settings, root, f"t{tag}", print)
    except BaseException:
        KEPT_LOGS.append(keep_logs(root, tag))
        tear_down(root, f"t{tag}")
        raise
    PHASES.update(deployed.timings)
    try:
        yield deployed
    finally:
        if FAILED_TESTS:
            KEPT_LOGS.append(keep_logs(root, tag))
        problems = tear_down(root, f"t{tag}")
        assert not problems, f"teardown: {problems}"


@pytest.fixture(scope="session")
def ca_file(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cluster CA's certificate, for clients to verify servers against."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_text(deployment.secret_values["tls_ca_cert"])
    return path


@pytest.fixture(scope="session")
def app_node(deployment: Deployment) -> Iterator[NamespaceClient]:
    """A client on app-1's network, where the applications run."""
    client = NamespaceClient(deployment.node("app-1").namespace)
    yield client
    client.close()
