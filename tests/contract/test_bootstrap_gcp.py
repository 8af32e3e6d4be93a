"""GCP's secret store (providers/gcp/scripts/secret-store.sh) and docker credential helper, run for
real (bash, curl, jq, base64) against a local fake of the metadata server and of Secret Manager's
REST API on 127.0.0.1; then the Swarm bootstrap of the gcp-prod stack's user data through them, on
the modelled Swarm of tests/contract/swarm_model.py (the structure of test_bootstrap_aws.py, whose
scenarios on AWS cover what the scripts do with the store).

What the fake checks as the real services do: the metadata server answers only requests that carry
`Metadata-Flavor: Google` and hands out an access token; Secret Manager answers only that token
(401 otherwise), serves a secret's latest version (`versions/latest:access`, base64 payload) and
adds versions (`:addVersion`), 404 for an unknown secret. What it does not model: IAM (which
service account may read which secret: the compute builder's grants, checked in the plan tests),
CMEK, replication, version states other than enabled, token expiry, and quotas.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from components.swarm import MANAGER_ADDRESS, MANAGER_TOKEN, PLACEHOLDER, WORKER_TOKEN, labels_table
from tests.contract.cloud_init_cases import GCP, PROJECT_ROOT
from tests.contract.swarm_model import Machine, World, tokens_in

pytestmark = pytest.mark.contract

STORE = PROJECT_ROOT / "providers/gcp/scripts/secret-store.sh"
HELPER = PROJECT_ROOT / "providers/gcp/scripts/docker-credential-dpc-gcp"
TOKEN = "ya29.test-access-token-" + "x" * 40
SECRET = "projects/dpc-test-project/secrets/gcp-prod-swarm-worker-token"
RUN_TIMEOUT = 60


@dataclass
class FakeGoogle:
    """The fake's state: secrets' versions by name, the metadata of each machine (by the path prefix
    its scripts are pointed at), the requests seen, and failures to answer next."""

    port: int = 0
    versions: dict[str, list[bytes]] = field(default_factory=dict[str, list[bytes]])
    addresses: dict[str, str] = field(default_factory=dict[str, str])
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list[tuple[str, str, dict[str, str]]])
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def secret_manager_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def metadata_url(self, machine: str = "node") -> str:
        return f"http://127.0.0.1:{self.port}/{machine}/computeMetadata/v1"

    def value(self, name: str) -> str:
        return self.versions[name][-1].decode()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGoogle

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads `fake.requests`."""

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with fake.lock:
            fake.requests.append((method, self.path, dict(self.headers.items())))
            if fake.failures > 0:
                fake.failures -= 1
                self._answer(503, {"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}})
                return
            metadata = re.fullmatch(r"/([^/]+)/computeMetadata/v1/(.+)", self.path)
            if metadata:
                self._metadata(metadata[1], metadata[2])
                return
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._answer(401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})
                return
            access = re.fullmatch(r"/v1/(projects/[^/]+/secrets/[^/]+)/versions/latest:access", self.path)
            add = re.fullmatch(r"/v1/(projects/[^/]+/secrets/[^/:]+):addVersion", self.path)
            if method == "GET" and access:
                self._access(access[1])
            elif method == "POST" and add and add[1] in fake.versions:
                data = base64.b64decode(json.loads(body)["payload"]["data"], validate=True)
                fake.versions[add[1]].append(data)
                self._answer(200, {"name": f"{add[1]}/versions/{len(fake.versions[add[1]])}", "state": "ENABLED"})
            else:
                self._answer(404, {"error": {"code": 404, "message": f"Secret [{self.path}] not found or has no versions.", "status": "NOT_FOUND"}})

    def _metadata(self, machine: str, path: str) -> None:
        if self.headers.get("Metadata-Flavor") != "Google":
            self._answer(403, "Missing Metadata-Flavor:Google header.")
        elif path == "instance/service-accounts/default/token":
            self._answer(200, {"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"})
        elif path == "instance/network-interfaces/0/ip" and machine in self.fake.addresses:
            data = self.fake.addresses[machine].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._answer(404, "not found")

    def _access(self, name: str) -> None:
        versions = self.fake.versions.get(name)
        if not versions:
            self._answer(404, {"error": {"code": 404, "message": f"Secret [{name}] not found or has no versions.", "status": "NOT_FOUND"}})
            return
        payload = base64.b64encode(versions[-1]).decode()
        self._answer(200, {"name": f"{name}/versions/{len(versions)}", "payload": {"data": payload, "dataCrc32c": "0"}})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    """A fake metadata server and Secret Manager on a free loopback port, for one test."""
    state = FakeGoogle()
    handler = type("Handler", (_Handler,), {"fake": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _logging_curl(directory: Path) -> Path:
    """A `curl` first on PATH that logs its argv (one JSON line each) before running the real one,
    so a test can look for a token or a value on a command line."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    curl = bin_dir / "curl"
    curl.write_text(f'#!/bin/bash\nprintf "%s\\n" "$(printf "%q " "$@")" >>{shlex.quote(str(directory / "curl.log"))}\nexec /usr/bin/curl "$@"\n')
    curl.chmod(0o755)
    return bin_dir


def store(fake: FakeGoogle, tmp_path: Path, script: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Runs `script` in bash with the secret store's functions loaded, pointed at the fake."""
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        _logging_curl(tmp_path)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": str(tmp_path / "tmp"),
        "DPC_METADATA_URL": fake.metadata_url(),
        "DPC_SECRET_MANAGER_URL": fake.secret_manager_url,
    } | env
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; . {shlex.quote(str(STORE))}; {script}"],
        input=stdin, env=environment, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT,
    )


def command_lines(tmp_path: Path) -> str:
    log = tmp_path / "curl.log"
    return log.read_text() if log.exists() else ""


HOST_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n"


VALUES = {"token": "SWMTKN-1-abc-def", "addresses": "10.60.0.2 10.60.0.3", "key": HOST_KEY, "shell": "it's $(not) `run` \\ \"quoted\""}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_a_value_put_is_the_latest_version_read_back_byte_for_byte(fake: FakeGoogle, tmp_path: Path, value: str) -> None:
    fake.versions[SECRET] = [PLACEHOLDER.encode()]
    first = store(fake, tmp_path, f"secret_get {SECRET}")
    assert (first.returncode, first.stdout, first.stderr) == (0, PLACEHOLDER, "")
    put = store(fake, tmp_path, f"secret_put {SECRET}", stdin=value)
    assert (put.returncode, put.stdout, put.stderr) == (0, "", ""), "a write prints nothing"
    assert fake.versions[SECRET] == [PLACEHOLDER.encode(), value.encode()], "a write adds a version; the placeholder's stays"
    read = store(fake, tmp_path, f"secret_get {SECRET}")
    assert (read.returncode, read.stdout) == (0, value)
    lines = command_lines(tmp_path)
    assert TOKEN not in lines and value not in lines, "neither the token nor the value is on a command line (where /proc shows it)"
    assert not list((tmp_path / "tmp").iterdir()), "the private file of the value written is removed"


def test_every_request_is_authenticated_as_the_machine(fake: FakeGoogle, tmp_path: Path) -> None:
    fake.versions[SECRET] = [b"value"]
    assert store(fake, tmp_path, f"secret_get {SECRET}").returncode == 0
    metadata = [headers for method, path, headers in fake.requests if "/computeMetadata/" in path]
    api = [(method, path, headers) for method, path, headers in fake.requests if path.startswith("/v1/")]
    assert metadata and all(headers.get("Metadata-Flavor") == "Google" for headers in metadata)
    assert [(method, path) for method, path, _ in api] == [("GET", f"/v1/{SECRET}/versions/latest:access")]
    assert api[0][2]["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("failure", "script"),
    [
        ("unknown secret", "secret_get projects/dpc-test-project/secrets/missing"),
        ("unknown secret", "printf x | secret_put projects/dpc-test-project/secrets/missing"),
        ("service unavailable", f"secret_get {SECRET}"),
        ("metadata unreachable", f"secret_get {SECRET}"),
        ("rejected token", f"secret_get {SECRET}"),
    ],
)
def test_a_failed_call_fails_the_function_without_output_or_secrets(fake: FakeGoogle, tmp_path: Path, failure: str, script: str) -> None:
    """The callers retry on a non-zero status (`retry`), so a failure must never look like a value."""
    fake.versions[SECRET] = [b"SWMTKN-1-secret-value"]
    env: dict[str, str] = {}
    if failure == "service unavailable":
        fake.failures = 5
    elif failure == "metadata unreachable":
        env["DPC_METADATA_URL"] = "http://127.0.0.1:9/computeMetadata/v1"
    elif failure == "rejected token":
        script = f"access_token() {{ printf not-the-machines-token; }}; {script}"
    result = store(fake, tmp_path, script, **env)
    assert result.returncode != 0, failure
    assert result.stdout == "", f"{failure}: nothing that a caller could take for a value"
    assert "SWMTKN-1-secret-value" not in result.stderr and TOKEN not in result.stderr


def test_private_address_is_the_first_interfaces(fake: FakeGoogle, tmp_path: Path) -> None:
    fake.addresses["node"] = "10.60.0.7"
    result = store(fake, tmp_path, "private_address")
    assert (result.returncode, result.stdout) == (0, "10.60.0.7")


# --- the docker credential helper -------------------------------------------------------------------


def helper(fake: FakeGoogle, tmp_path: Path, *arguments: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The helper as the user data ships it, its secret store's path moved to the checkout's."""
    copy = tmp_path / HELPER.name
    text = HELPER.read_text()
    assert "/usr/local/lib/dpc/secret-store.sh" in text
    copy.write_text(text.replace("/usr/local/lib/dpc/secret-store.sh", str(STORE)))
    copy.chmod(0o755)
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        _logging_curl(tmp_path)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "DPC_METADATA_URL": fake.metadata_url()}
    return subprocess.run([str(copy), *arguments], input=stdin, env=env, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT)


@pytest.mark.parametrize("server", ["us-central1-docker.pkg.dev", "https://europe-west4-docker.pkg.dev", "us-docker.pkg.dev\n"])
def test_the_helper_signs_in_to_artifact_registry_as_the_node(fake: FakeGoogle, tmp_path: Path, server: str) -> None:
    result = helper(fake, tmp_path, "get", stdin=server)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"Username": "oauth2accesstoken", "Secret": TOKEN}
    assert TOKEN not in command_lines(tmp_path)


@pytest.mark.parametrize(
    "server", ["https://index.docker.io/v1/", "registry.example.com", "evil-docker.pkg.dev.example.com", "us-central1-docker.pkg.dev.evil"]
)
def test_the_helper_gives_the_token_to_no_other_registry(fake: FakeGoogle, tmp_path: Path, server: str) -> None:
    """docker's CLI takes this answer as "no credentials" and pulls anonymously."""
    result = helper(fake, tmp_path, "get", stdin=server)
    assert (result.returncode, result.stdout.strip()) == (1, "credentials not found in native keychain")
    assert not any("/token" in path for _, path, _ in fake.requests), "the token is not even fetched"


@pytest.mark.parametrize("action", ["store", "erase"])
def test_the_helper_keeps_nothing(fake: FakeGoogle, tmp_path: Path, action: str) -> None:
    result = helper(fake, tmp_path, action, stdin='{"ServerURL": "us-docker.pkg.dev", "Username": "u", "Secret": "s"}')
    assert result.returncode == 1 and "only get and list" in result.stderr


# --- the Swarm bootstrap through the GCP store ------------------------------------------------------

NODES = ("manager-1", "manager-2", "manager-3", "worker-1", "worker-2")
"""As in test_bootstrap_aws.py: three managers (a quorum that survives one) and two workers."""
ADDRESSES = {name: f"10.60.{index}.{10 + index}" for index, name in enumerate(NODES)}
BOOT_SECONDS = 240


@pytest.fixture
def world(fake: FakeGoogle, tmp_path: Path) -> World:
    """The stack's bootstrap secrets holding the placeholder, each machine's metadata, an empty Swarm."""
    for name in GCP.secret_names.values():
        fake.versions[name] = [PLACEHOLDER.encode()]
    for name, address in ADDRESSES.items():
        fake.addresses[f"{GCP.prefix}-{name}"] = address
    (tmp_path / "world").mkdir()
    created = World(tmp_path / "world", Path("/nonexistent/aws"), "", {"DPC_SECRET_MANAGER_URL": fake.secret_manager_url})
    created.fake = fake  # type: ignore[attr-defined]
    return created


def boot(world: World, name: str) -> Machine:
    return world.boot(f"{GCP.prefix}-{name}", ADDRESSES[name], GCP.render_node(name, only=NODES))


def run(world: World, machine: Machine, script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    fake: FakeGoogle = world.fake  # type: ignore[attr-defined]
    return machine.run(script, *arguments, DPC_METADATA_URL=fake.metadata_url(machine.hostname))


@pytest.mark.formation
def test_gcp_nodes_form_one_labelled_swarm_through_secret_manager(world: World, tmp_path: Path) -> None:
    """The other nodes boot first and wait for manager-1's publication; then the managers' timers
    converge the Swarm. Every secret the nodes read and write is the builder's, the published
    tokens and addresses are the Swarm's, and no token is on any command line or in any output."""
    fake: FakeGoogle = world.fake  # type: ignore[attr-defined]
    fake.failures = 2
    machines = {name: boot(world, name) for name in NODES}
    started = [
        (machines[name], machines[name].start("dpc-swarm-bootstrap", DPC_METADATA_URL=fake.metadata_url(machines[name].hostname)))
        for name in NODES if name != "manager-1"
    ]
    end = time.monotonic() + BOOT_SECONDS
    while time.monotonic() < end:
        sleeping = {call["machine"] for call in world.calls() if call["argv"][0] == "sleep"} if (world.root / "calls.jsonl").exists() else set()
        if all(machine.directory.name in sleeping for machine, _ in started):
            break
        time.sleep(0.5)
    first = run(world, machines["manager-1"], "dpc-swarm-bootstrap")
    assert first.returncode == 0, first.stderr
    for machine, process in started:
        stdout, stderr = process.communicate(timeout=BOOT_SECONDS)
        world.outputs.append(stdout + stderr)
        assert process.returncode == 0, f"{machine.hostname}: {stderr}"
    for name in ("manager-1", "manager-2", "manager-3"):
        result = run(world, machines[name], "dpc-swarm-converge")
        assert result.returncode == 0, result.stderr
    ready = run(world, machines["manager-1"], "dpc-swarm-ready", "--timeout", "0")
    assert ready.returncode == 0, ready.stderr

    swarm = world.swarm
    assert swarm["splits"] == 0
    table = labels_table(GCP.prefix, tuple(node for name, node in GCP.nodes().items() if name in NODES))
    expected: dict[str, dict[str, str]] = {}
    for host, label in (line.split("\t") for line in table.splitlines()):
        expected.setdefault(host, {}).__setitem__(*label.split("=", 1))
    assert {node["hostname"]: node["labels"] for node in swarm["nodes"]} == expected
    assert sorted(fake.value(GCP.secret_names[MANAGER_ADDRESS]).split()) == sorted(ADDRESSES[f"manager-{i}"] for i in (1, 2, 3))
    assert fake.value(GCP.secret_names[MANAGER_TOKEN]).strip() == swarm["tokens"]["manager"]
    assert fake.value(GCP.secret_names[WORKER_TOKEN]).strip() == swarm["tokens"]["worker"]
    assert fake.versions[GCP.secret_names[MANAGER_TOKEN]][0] == PLACEHOLDER.encode(), "published as new versions"
    secrets_used = {re.sub(r"(/versions/latest:access|:addVersion)$", "", path.removeprefix("/v1/")) for _, path, _ in fake.requests if path.startswith("/v1/")}
    assert secrets_used == set(GCP.secret_names.values()), "the bootstrap secrets the builder names, and no other"
    for call in world.calls():
        assert not tokens_in(" ".join(call["argv"]), swarm["tokens"]), f"a join token on the command line of {call['argv'][0]}"
        assert TOKEN not in " ".join(call["argv"]), f"the access token on the command line of {call['argv'][0]}"
    for output in world.outputs:
        assert not tokens_in(output, swarm["tokens"]) and TOKEN not in output
    guards = [call for call in world.calls() if call["argv"] == ["systemctl", "enable", "--now", "dpc-metadata-guard.service"]]
    assert len(guards) == len(NODES), "every node here keeps its containers from the metadata (the backup agent's is not among them)"
