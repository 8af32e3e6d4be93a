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
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from components.swarm import MANAGER_ADDRESS, MANAGER_TOKEN, PLACEHOLDER, WORKER_TOKEN
from tests.contract.cloud_init_cases import GCP, PROJECT_ROOT
from tests.contract.fake_cloud import RUN_TIMEOUT, VALUES, FakeApi, command_lines, form_swarm, logging_curl, run_store, served
from tests.contract.swarm_model import World, tokens_in

pytestmark = pytest.mark.contract

STORE = PROJECT_ROOT / "providers/gcp/scripts/secret-store.sh"
HELPER = PROJECT_ROOT / "providers/gcp/scripts/docker-credential-dpc-gcp"
TOKEN = "ya29.test-access-token-" + "x" * 40
SECRET = "projects/dpc-test-project/secrets/gcp-prod-swarm-worker-token"


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


class _Handler(FakeApi):
    fake: FakeGoogle

    def respond(self, method: str, body: bytes) -> None:
        fake = self.fake
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
            self._answer_text(200, self.fake.addresses[machine])
        else:
            self._answer(404, "not found")

    def _access(self, name: str) -> None:
        versions = self.fake.versions.get(name)
        if not versions:
            self._answer(404, {"error": {"code": 404, "message": f"Secret [{name}] not found or has no versions.", "status": "NOT_FOUND"}})
            return
        payload = base64.b64encode(versions[-1]).decode()
        self._answer(200, {"name": f"{name}/versions/{len(versions)}", "payload": {"data": payload, "dataCrc32c": "0"}})


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    """A fake metadata server and Secret Manager on a free loopback port, for one test."""
    state = FakeGoogle()
    with served(type("Handler", (_Handler,), {"fake": state})) as port:
        state.port = port
        yield state


def store(fake: FakeGoogle, tmp_path: Path, script: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Runs `script` in bash with the secret store's functions loaded, pointed at the fake."""
    settings = {"DPC_METADATA_URL": fake.metadata_url(), "DPC_SECRET_MANAGER_URL": fake.secret_manager_url}
    return run_store(STORE, tmp_path, script, settings | env, stdin)


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
    env = {"PATH": f"{logging_curl(tmp_path)}:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "DPC_METADATA_URL": fake.metadata_url()}
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


@pytest.mark.formation
def test_gcp_nodes_form_one_labelled_swarm_through_secret_manager(world: World, tmp_path: Path) -> None:
    """The other nodes boot first and wait for manager-1's publication; then the managers' timers
    converge the Swarm. Every secret the nodes read and write is the builder's, the published
    tokens and addresses are the Swarm's, and no token is on any command line or in any output."""
    fake: FakeGoogle = world.fake  # type: ignore[attr-defined]
    fake.failures = 2
    swarm = form_swarm(world, GCP, ADDRESSES, lambda machine: {"DPC_METADATA_URL": fake.metadata_url(machine.hostname)})
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
