"""What the secret-store tests of GCP and Azure share: a fake cloud API served on 127.0.0.1 for one
test, a `curl` that logs every command line (where /proc would show a token), the store's functions
run under bash, and the Swarm formation scenario run through a cloud's store on the modelled Swarm
(tests/contract/swarm_model.py), whose common outcome each cloud's test checks before its own.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from components.swarm import labels_table
from tests.contract.cloud_init_cases import CloudCase
from tests.contract.swarm_model import Machine, World

RUN_TIMEOUT = 60
BOOT_SECONDS = 240
HOST_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n"
VALUES = {"token": "SWMTKN-1-abc-def", "addresses": "10.60.0.2 10.60.0.3", "key": HOST_KEY, "shell": "it's $(not) `run` \\ \"quoted\""}
"""Values a store must write and read back byte for byte."""


class FakeApi(BaseHTTPRequestHandler):
    """A fake cloud API's handler: quiet, answering JSON (or text), every method's request with its
    body handed to `respond`."""

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read what their fake recorded."""

    def _answer(self, status: int, body: object) -> None:
        """Answers `body` as JSON."""
        self._send(status, json.dumps(body).encode(), "application/json")

    def _answer_text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def respond(self, method: str, body: bytes) -> None:
        """Answers one request (`self.path`, `self.headers`)."""
        raise NotImplementedError

    def _request(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.respond(method, self.rfile.read(length) if length else b"")

    def do_GET(self) -> None:
        self._request("GET")

    def do_PUT(self) -> None:
        self._request("PUT")

    def do_POST(self) -> None:
        self._request("POST")


@contextmanager
def served(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serves `handler` on a free loopback port until the block ends; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def logging_curl(directory: Path) -> Path:
    """A `curl` first on PATH that logs its argv (one line each) before running the real one, so a
    test can look for a token or a value on a command line; returns its directory (made once)."""
    bin_dir = directory / "bin"
    if bin_dir.exists():
        return bin_dir
    bin_dir.mkdir()
    curl = bin_dir / "curl"
    curl.write_text(f'#!/bin/bash\nprintf "%s\\n" "$(printf "%q " "$@")" >>{shlex.quote(str(directory / "curl.log"))}\nexec /usr/bin/curl "$@"\n')
    curl.chmod(0o755)
    return bin_dir


def command_lines(directory: Path) -> str:
    """Every command line the logging `curl` of `directory` ran."""
    log = directory / "curl.log"
    return log.read_text() if log.exists() else ""


def run_store(store: Path, tmp_path: Path, script: str, env: Mapping[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Runs `script` in bash with the secret store's functions of `store` loaded, the logging curl
    first on PATH and a private TMPDIR, in the environment `env` (the store's settings)."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    environment = {"PATH": f"{logging_curl(tmp_path)}:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "TMPDIR": str(tmp_path / "tmp"), **env}
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; . {shlex.quote(str(store))}; {script}"],
        input=stdin, env=environment, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT,
    )


def form_swarm(world: World, case: CloudCase, addresses: Mapping[str, str], machine_env: Callable[[Machine], dict[str, str]]) -> dict[str, Any]:
    """Boots the nodes of `addresses` with the cloud's user data; every node but manager-1 starts its
    bootstrap first and waits for manager-1's publication, then manager-1 boots; the managers'
    timers converge the Swarm. Checks what every cloud must give (each bootstrap, convergence and the
    readiness check succeed, one Swarm, every node with its labels) and returns the modelled Swarm.
    `machine_env` is what a machine's scripts need to reach the fake as that machine."""
    nodes = tuple(addresses)
    machines = {name: world.boot(f"{case.prefix}-{name}", addresses[name], case.render_node(name, only=nodes)) for name in nodes}
    started = [(machines[name], machines[name].start("dpc-swarm-bootstrap", **machine_env(machines[name]))) for name in nodes if name != "manager-1"]
    end = time.monotonic() + BOOT_SECONDS
    while time.monotonic() < end:
        sleeping = {call["machine"] for call in world.calls() if call["argv"][0] == "sleep"} if (world.root / "calls.jsonl").exists() else set()
        if all(machine.directory.name in sleeping for machine, _ in started):
            break
        time.sleep(0.5)
    first = machines["manager-1"].run("dpc-swarm-bootstrap", **machine_env(machines["manager-1"]))
    assert first.returncode == 0, first.stderr
    for machine, process in started:
        stdout, stderr = process.communicate(timeout=BOOT_SECONDS)
        world.outputs.append(stdout + stderr)
        assert process.returncode == 0, f"{machine.hostname}: {stderr}"
    for name in (name for name in nodes if name.startswith("manager-")):
        result = machines[name].run("dpc-swarm-converge", **machine_env(machines[name]))
        assert result.returncode == 0, result.stderr
    ready = machines["manager-1"].run("dpc-swarm-ready", "--timeout", "0", **machine_env(machines["manager-1"]))
    assert ready.returncode == 0, ready.stderr

    swarm = world.swarm
    assert swarm["splits"] == 0
    table = labels_table(case.prefix, tuple(node for name, node in case.nodes().items() if name in nodes))
    expected: dict[str, dict[str, str]] = {}
    for host, label in (line.split("\t") for line in table.splitlines()):
        expected.setdefault(host, {}).__setitem__(*label.split("=", 1))
    assert {node["hostname"]: node["labels"] for node in swarm["nodes"]} == expected
    return swarm
