"""Azure's secret store (providers/azure/scripts/secret-store.sh) and docker credential helper, run for
real (bash, curl, jq) against a local fake of the instance metadata service (IMDS), of Key Vault's
secrets REST API and of Azure Container Registry's token exchange on 127.0.0.1; then the Swarm
bootstrap of the azure-prod stack's user data through them, on the modelled Swarm of
tests/contract/swarm_model.py (the structure of test_bootstrap_gcp.py).

What the fake checks as the real services do: IMDS answers only requests that carry `Metadata: true`
and hands out a token for the resource asked, for the machine's own user-assigned identity named by
`msi_res_id` (another identity's is refused, as IMDS refuses an identity the VM does not have); Key
Vault answers only a token for `https://vault.azure.net` (401 otherwise) on api-version 7.4, serves a
secret's latest version (`{"value": ...}`), adds a version on PUT, 404 for an unknown secret (and
403 for a PUT to one: a node's grants are on existing secrets alone); the registry trades only a
Resource Manager token for its own service name for a refresh token. What it does not model:
role assignments (which identity may read which secret: the compute builder's grants, checked in
tests/unit/test_azure_compute.py), CMK, soft delete, token expiry, throttling.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from components.swarm import MANAGER_ADDRESS, MANAGER_TOKEN, PLACEHOLDER, WORKER_TOKEN
from dpc.model import Role
from tests.contract.cloud_init_cases import AZURE, AZURE_REGISTRY, PROJECT_ROOT, azure_identity
from tests.contract.fake_cloud import RUN_TIMEOUT, VALUES, FakeApi, command_lines, form_swarm, logging_curl, run_store, served
from tests.contract.swarm_model import World, tokens_in

pytestmark = pytest.mark.contract

STORE = PROJECT_ROOT / "providers/azure/scripts/secret-store.sh"
HELPER = PROJECT_ROOT / "providers/azure/scripts/docker-credential-dpc-azure"
VAULT_RESOURCE, ARM_RESOURCE = "https://vault.azure.net", "https://management.azure.com/"
TOKENS = {VAULT_RESOURCE: "eyJ0eXAiOiJKV1QiLCJhbGciOi.vault-token." + "v" * 40, ARM_RESOURCE: "eyJ0eXAiOiJKV1QiLCJhbGciOi.arm-token." + "a" * 40}
REFRESH_TOKEN = "eyJhbGciOiJSUzI1NiIsInR5cCI6.refresh-token." + "r" * 40
TENANT = "00000000-0000-0000-0000-000000000000"
IDENTITY = azure_identity(Role.WORKER)
SECRET_NAME = "azure-prod-swarm-worker-token"
SECRET = f"https://dpcazureprod0a1b2c3d.vault.azure.net/secrets/{SECRET_NAME}"
"""A secret as the store takes it: its identifier (the fake serves it, at DPC_KEY_VAULT_ENDPOINT)."""


@dataclass
class FakeAzure:
    """The fake's state: secrets' versions by name, each machine's address and identity (by the path
    prefix its scripts' IMDS is pointed at), the requests seen, and failures to answer next."""

    port: int = 0
    versions: dict[str, list[str]] = field(default_factory=dict[str, list[str]])
    addresses: dict[str, str] = field(default_factory=dict[str, str])
    identities: dict[str, str] = field(default_factory=dict[str, str])
    requests: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list[tuple[str, str, dict[str, str], str]])
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def imds_url(self, machine: str = "node") -> str:
        return f"{self.url}/{machine}/metadata"

    def value(self, name: str) -> str:
        return self.versions[name][-1]


class _Handler(FakeApi):
    fake: FakeAzure

    def respond(self, method: str, data: bytes) -> None:
        fake = self.fake
        body = data.decode()
        path, _, query = self.path.partition("?")
        parameters = dict(urllib.parse.parse_qsl(query))
        with fake.lock:
            fake.requests.append((method, self.path, dict(self.headers.items()), body))
            if fake.failures > 0:
                fake.failures -= 1
                self._answer(503, {"error": {"code": "ServiceUnavailable", "message": "The service is currently unavailable."}})
                return
            parts = path.strip("/").split("/")
            if len(parts) > 2 and parts[1] == "metadata":
                self._imds(parts[0], "/".join(parts[2:]), parameters)
            elif parts[0] == "secrets" and len(parts) == 2:
                self._secret(method, parts[1], parameters, body)
            elif path == "/oauth2/exchange" and method == "POST":
                self._exchange(dict(urllib.parse.parse_qsl(body)))
            else:
                self._answer(404, {"error": {"code": "NotFound", "message": self.path}})

    def _imds(self, machine: str, path: str, parameters: dict[str, str]) -> None:
        if self.headers.get("Metadata") != "true" or "X-Forwarded-For" in self.headers:
            self._answer(400, {"error": "bad_request", "error_description": "Required metadata header not specified"})
        elif path == "identity/oauth2/token" and parameters.get("api-version") == "2018-02-01":
            expected = self.fake.identities.get(machine, IDENTITY)
            if parameters.get("msi_res_id") != expected or parameters.get("resource") not in TOKENS:
                self._answer(400, {"error": "invalid_request", "error_description": "Identity not found"})
                return
            resource = parameters["resource"]
            self._answer(200, {"access_token": TOKENS[resource], "expires_in": "86399", "resource": resource, "token_type": "Bearer"})
        elif path == "instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress" and parameters.get("format") == "text" and machine in self.fake.addresses:
            self._answer_text(200, self.fake.addresses[machine])
        else:
            self._answer(404, {"error": "not_found"})

    def _secret(self, method: str, name: str, parameters: dict[str, str], body: str) -> None:
        fake = self.fake
        if self.headers.get("Authorization") != f"Bearer {TOKENS[VAULT_RESOURCE]}":
            self._answer(401, {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}})
        elif parameters.get("api-version") != "7.4":
            self._answer(400, {"error": {"code": "BadParameter", "message": "The specified version is not supported"}})
        elif name not in fake.versions:
            status, code = (404, "SecretNotFound") if method == "GET" else (403, "Forbidden")
            self._answer(status, {"error": {"code": code, "message": f"A secret with (name/id) {name} was not found"}})
        elif method == "GET":
            versions = fake.versions[name]
            self._answer(200, {"value": versions[-1], "id": f"https://vault/secrets/{name}/{len(versions)}", "attributes": {"enabled": True}})
        elif method == "PUT" and self.headers.get("Content-Type") == "application/json":
            fake.versions[name].append(json.loads(body)["value"])
            self._answer(200, {"value": fake.versions[name][-1], "id": f"https://vault/secrets/{name}/{len(fake.versions[name])}"})
        else:
            self._answer(405, {"error": {"code": "MethodNotAllowed"}})

    def _exchange(self, form: dict[str, str]) -> None:
        wanted = {"grant_type": "access_token", "service": AZURE_REGISTRY, "tenant": TENANT, "access_token": TOKENS[ARM_RESOURCE]}
        if form != wanted:
            self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
        else:
            self._answer(200, {"refresh_token": REFRESH_TOKEN})


@pytest.fixture
def fake() -> Iterator[FakeAzure]:
    """A fake IMDS, Key Vault and registry on a free loopback port, for one test."""
    state = FakeAzure()
    with served(type("Handler", (_Handler,), {"fake": state})) as port:
        state.port = port
        yield state


def settings(fake: FakeAzure) -> dict[str, str]:
    """The store's settings on a node, pointed at the fake."""
    return {"DPC_IMDS_URL": fake.imds_url(), "DPC_KEY_VAULT_ENDPOINT": fake.url, "DPC_IDENTITY": IDENTITY}


def store(fake: FakeAzure, tmp_path: Path, script: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Runs `script` in bash with the secret store's functions loaded, pointed at the fake."""
    return run_store(STORE, tmp_path, script, settings(fake) | env, stdin)


AZURE_VALUES = VALUES | {"token with newline": "SWMTKN-1-abc-def\n", "unicode": "naïve ✓\ttab"}
"""Key Vault holds text in JSON, so the store's encoding must keep a trailing newline and any character."""


@pytest.mark.parametrize("value", AZURE_VALUES.values(), ids=AZURE_VALUES.keys())
def test_a_value_put_is_the_latest_version_read_back_byte_for_byte(fake: FakeAzure, tmp_path: Path, value: str) -> None:
    fake.versions[SECRET_NAME] = [PLACEHOLDER]
    first = store(fake, tmp_path, f"secret_get {SECRET}")
    assert (first.returncode, first.stdout, first.stderr) == (0, PLACEHOLDER, "")
    put = store(fake, tmp_path, f"secret_put {SECRET}", stdin=value)
    assert (put.returncode, put.stdout, put.stderr) == (0, "", ""), "a write prints nothing"
    assert fake.versions[SECRET_NAME] == [PLACEHOLDER, value], "a write adds a version; the placeholder's stays"
    read = store(fake, tmp_path, f"secret_get {SECRET}")
    assert (read.returncode, read.stdout) == (0, value)
    lines = command_lines(tmp_path)
    assert TOKENS[VAULT_RESOURCE] not in lines and value.strip() not in lines, "neither the token nor the value is on a command line (where /proc shows it)"
    assert not list((tmp_path / "tmp").iterdir()), "the private file of the value written is removed"


def test_every_request_is_the_machines_own_identity_on_the_documented_apis(fake: FakeAzure, tmp_path: Path) -> None:
    fake.versions[SECRET_NAME] = ["value"]
    assert store(fake, tmp_path, f"secret_get {SECRET}").returncode == 0
    assert store(fake, tmp_path, f"printf v | secret_put {SECRET}").returncode == 0
    imds = [(path, headers) for _, path, headers, _ in fake.requests if "/metadata/" in path]
    vault = [(method, path, headers) for method, path, headers, _ in fake.requests if path.startswith("/secrets/")]
    assert imds and all(headers.get("Metadata") == "true" for _, headers in imds)
    for path, _ in imds:
        query = dict(urllib.parse.parse_qsl(path.partition("?")[2]))
        assert query == {"api-version": "2018-02-01", "resource": VAULT_RESOURCE, "msi_res_id": IDENTITY}, "this machine's identity, for Key Vault"
    wanted = f"/secrets/{SECRET_NAME}?api-version=7.4"
    assert [(method, path) for method, path, _ in vault] == [("GET", wanted), ("PUT", wanted)], "the secret of the identifier given"
    assert all(headers["Authorization"] == f"Bearer {TOKENS[VAULT_RESOURCE]}" for _, _, headers in vault)


def test_a_token_for_an_identity_the_machine_lacks_is_refused(fake: FakeAzure, tmp_path: Path) -> None:
    """IMDS refuses `msi_res_id` of an identity not assigned to the VM: the name in the user data is the one that counts."""
    fake.versions[SECRET_NAME] = ["value"]
    result = store(fake, tmp_path, f"secret_get {SECRET}", DPC_IDENTITY=IDENTITY.replace("-worker", "-manager"))
    assert result.returncode != 0 and result.stdout == ""


@pytest.mark.parametrize(
    ("failure", "script"),
    [
        ("unknown secret", f"secret_get {SECRET.replace(SECRET_NAME, 'azure-prod-swarm-missing')}"),
        ("unknown secret", f"printf x | secret_put {SECRET.replace(SECRET_NAME, 'azure-prod-swarm-missing')}"),
        ("service unavailable", f"secret_get {SECRET}"),
        ("metadata unreachable", f"secret_get {SECRET}"),
        ("rejected token", f"secret_get {SECRET}"),
    ],
)
def test_a_failed_call_fails_the_function_without_output_or_secrets(fake: FakeAzure, tmp_path: Path, failure: str, script: str) -> None:
    """The callers retry on a non-zero status (`retry`), so a failure must never look like a value."""
    fake.versions[SECRET_NAME] = ["SWMTKN-1-secret-value"]
    env: dict[str, str] = {}
    if failure == "service unavailable":
        fake.failures = 5
    elif failure == "metadata unreachable":
        env["DPC_IMDS_URL"] = "http://127.0.0.1:9/metadata"
    elif failure == "rejected token":
        script = f"access_token() {{ printf not-the-machines-token; }}; {script}"
    result = store(fake, tmp_path, script, **env)
    assert result.returncode != 0, failure
    assert result.stdout == "", f"{failure}: nothing that a caller could take for a value"
    assert "SWMTKN-1-secret-value" not in result.stderr and TOKENS[VAULT_RESOURCE] not in result.stderr


def test_private_address_is_the_first_interfaces(fake: FakeAzure, tmp_path: Path) -> None:
    fake.addresses["node"] = "10.100.0.7"
    result = store(fake, tmp_path, "private_address")
    assert (result.returncode, result.stdout) == (0, "10.100.0.7")


# --- the docker credential helper -------------------------------------------------------------------


def helper(fake: FakeAzure, tmp_path: Path, *arguments: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The helper as the user data ships it, its node settings and secret store moved to the test's."""
    node_env = tmp_path / "node.env"
    node_env.write_text(f"DPC_REGISTRY='{AZURE_REGISTRY}'\nDPC_TENANT_ID='{TENANT}'\nDPC_IDENTITY='{IDENTITY}'\n")
    copy = tmp_path / HELPER.name
    text = HELPER.read_text()
    for fixed, moved in (("/usr/local/lib/dpc/secret-store.sh", str(STORE)), ("/etc/dpc/node.env", str(node_env))):
        assert fixed in text
        text = text.replace(fixed, moved)
    copy.write_text(text)
    copy.chmod(0o755)
    env = {"PATH": f"{logging_curl(tmp_path)}:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "DPC_REGISTRY_URL": fake.url} | settings(fake)
    return subprocess.run([str(copy), *arguments], input=stdin, env=env, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT)


@pytest.mark.parametrize("server", [AZURE_REGISTRY, f"https://{AZURE_REGISTRY}", f"{AZURE_REGISTRY}/v2/\n"])
def test_the_helper_signs_in_to_the_stacks_registry_as_the_node(fake: FakeAzure, tmp_path: Path, server: str) -> None:
    result = helper(fake, tmp_path, "get", stdin=server)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"Username": "00000000-0000-0000-0000-000000000000", "Secret": REFRESH_TOKEN}
    [exchange] = [body for method, path, _, body in fake.requests if path == "/oauth2/exchange" and method == "POST"]
    assert dict(urllib.parse.parse_qsl(exchange))["access_token"] == TOKENS[ARM_RESOURCE], "a Resource Manager token of the node's identity"
    lines = command_lines(tmp_path)
    assert TOKENS[ARM_RESOURCE] not in lines and REFRESH_TOKEN not in lines, "no token on a command line"


@pytest.mark.parametrize(
    "server",
    ["https://index.docker.io/v1/", "someoneelse.azurecr.io", f"evil{AZURE_REGISTRY}", f"{AZURE_REGISTRY}.evil.example", "mcr.microsoft.com"],
)
def test_the_helper_gives_the_nodes_token_to_no_other_registry(fake: FakeAzure, tmp_path: Path, server: str) -> None:
    """docker's CLI takes this answer as "no credentials" and pulls anonymously; another registry
    (another *.azurecr.io too) would be handed a token of the node's identity."""
    result = helper(fake, tmp_path, "get", stdin=server)
    assert (result.returncode, result.stdout.strip()) == (1, "credentials not found in native keychain")
    assert not fake.requests, "no token is even fetched"


@pytest.mark.parametrize("action", ["store", "erase"])
def test_the_helper_keeps_nothing(fake: FakeAzure, tmp_path: Path, action: str) -> None:
    result = helper(fake, tmp_path, action, stdin=json.dumps({"ServerURL": AZURE_REGISTRY, "Username": "u", "Secret": "s"}))
    assert result.returncode == 1 and "only get and list" in result.stderr


# --- the Swarm bootstrap through Key Vault -------------------------------------------------------------

NODES = ("manager-1", "manager-2", "manager-3", "worker-1", "worker-2", "backup-1")
"""Three managers (a quorum that survives one), two workers and the backup agent, whose containers are kept from the metadata on Azure too."""
ADDRESSES = {name: f"10.100.{index}.{10 + index}" for index, name in enumerate(NODES)}


def name_of(identifier: str) -> str:
    """A secret's name in its identifier, `https://<vault>.vault.azure.net/secrets/<name>`."""
    return identifier.rsplit("/secrets/", 1)[1]


@pytest.fixture
def world(fake: FakeAzure, tmp_path: Path) -> World:
    """The stack's bootstrap secrets holding the placeholder, each machine's address and identity, an empty Swarm."""
    for identifier in AZURE.secret_names.values():
        fake.versions[name_of(identifier)] = [PLACEHOLDER]
    for name, address in ADDRESSES.items():
        host = f"{AZURE.prefix}-{name}"
        fake.addresses[host] = address
        fake.identities[host] = azure_identity(AZURE.nodes()[name].role)
    (tmp_path / "world").mkdir()
    created = World(tmp_path / "world", Path("/nonexistent/aws"), "", {"DPC_KEY_VAULT_ENDPOINT": fake.url})
    created.fake = fake  # type: ignore[attr-defined]
    return created


@pytest.mark.formation
def test_azure_nodes_form_one_labelled_swarm_through_key_vault(world: World, tmp_path: Path) -> None:
    """The other nodes boot first and wait for manager-1's publication; then the managers' timers
    converge the Swarm. Every secret the nodes read and write is the builder's, each node signs in
    as its own role's identity, the published tokens and addresses are the Swarm's, no token is on
    any command line or in any output, and every node (the backup agent's too) guards the metadata."""
    fake: FakeAzure = world.fake  # type: ignore[attr-defined]
    fake.failures = 2
    swarm = form_swarm(world, AZURE, ADDRESSES, lambda machine: {"DPC_IMDS_URL": fake.imds_url(machine.hostname)})
    assert sorted(fake.value(name_of(AZURE.secret_names[MANAGER_ADDRESS])).split()) == sorted(ADDRESSES[f"manager-{i}"] for i in (1, 2, 3))
    assert fake.value(name_of(AZURE.secret_names[MANAGER_TOKEN])).strip() == swarm["tokens"]["manager"]
    assert fake.value(name_of(AZURE.secret_names[WORKER_TOKEN])).strip() == swarm["tokens"]["worker"]
    assert fake.versions[name_of(AZURE.secret_names[MANAGER_TOKEN])][0] == PLACEHOLDER, "published as new versions"
    secrets_used = {path.partition("?")[0].removeprefix("/secrets/") for _, path, _, _ in fake.requests if path.startswith("/secrets/")}
    assert secrets_used == {name_of(identifier) for identifier in AZURE.secret_names.values()}, "the bootstrap secrets the builder names, and no other"
    identities_used = {
        (path.split("/")[1], dict(urllib.parse.parse_qsl(path.partition("?")[2]))["msi_res_id"])
        for _, path, _, _ in fake.requests if "/metadata/identity/" in path
    }
    assert identities_used == {(host, identity) for host, identity in fake.identities.items()}, "each machine as its role's identity"
    every_token = (*TOKENS.values(), *swarm["tokens"].values())
    for call in world.calls():
        line = " ".join(call["argv"])
        assert not any(token in line for token in every_token), f"a token on the command line of {call['argv'][0]}"
    for output in world.outputs:
        assert not tokens_in(output, swarm["tokens"]) and not any(token in output for token in TOKENS.values())
    guards = [call for call in world.calls() if call["argv"] == ["systemctl", "enable", "--now", "dpc-metadata-guard.service"]]
    assert len(guards) == len(NODES), "every node keeps its containers from the metadata, the backup agent's too"
