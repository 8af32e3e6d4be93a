"""pgBackRest 2.45 and the offsite repository (repo2) on Azure Blob Storage's API: the repository
host's rendered configuration with an Azure repo2 (`AzureRepository`) and the key from its own
rendered fragment (`render_pgbackrest_offsite_secrets`) archives, backs up, expires, fetches WAL and
restores through pgBackRest's Azure driver, with shared key auth; and pgBackRest parses the prod
layout's rendered files with an Azure repo2 without a warning.

The API is Azurite's blob service (npm, pinned with its dependencies by hash in
tests/contract/azurite/; `./run test` installs it under .venv/azurite), in memory, on 127.0.0.1
only, with telemetry off. Azurite serves TLS itself (`--cert`/`--key`) with a throwaway CA's
certificate for `localhost`, which pgBackRest verifies (`repo2-storage-ca-file`). The storage
account is the test's own (`AZURITE_ACCOUNTS`), with a random key: Azurite checks every request's
shared key signature, so a wrong key is refused (the second test), and the first test's requests
pass only with the key of the rendered fragment.

What differs from a node, given in PGBACKREST_* variables: the endpoint (`localhost`, path-style
URIs, as an emulator serves accounts under one host, and its port) and the test CA. Everything
else, the account, the container, the key type, the prefix, the cipher, bundling and retention,
is the rendered one; the key comes from the rendered fragment in the include directory, as the
backup agent's Docker secret delivers it. Azurite models no access tier (Cool and Cold are online
tiers, read at once like Hot, `providers/azure/settings.py`), no lifecycle and no versioning.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import os
import re
import secrets
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpc.cluster import BACKUP_ENCRYPTION_SECRET, BACKUP_STANZA
from dpc.render.backup import OFFSITE_KEY_PREFIX, AzureRepository, render_pgbackrest_offsite_secrets, render_pgbackrest_repository, render_pgbackrest_secrets
from dpc.topology import derive
from tests.contract.test_backup import (
    CONFIG_COMMANDS,
    FAKE_PASSPHRASE,
    TIMEOUT,
    WAIT_SECONDS,
    free_port,
    pgbackrest,
    prod_settings,
    terminate,
    wait_for_port,
)
from tests.contract.test_backup_s3 import OffsiteRig, archiving_rig, localhost_certificate, rig_root

pytestmark = pytest.mark.contract

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AZURITE_BLOB = PROJECT_ROOT / ".venv" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
"""Where `./run test` installs Azurite's blob service (tests/contract/azurite/)."""
ACCOUNT = "dpctestbackups"
CONTAINER = "pgbackrest"
PREFIX = OFFSITE_KEY_PREFIX.strip("/")
EXTENT_MEMORY_MB = 1024
"""Azurite's bound on the blobs it holds in memory (by default half the machine's memory): the
scenario writes a few dozen MB."""
API_VERSION = "2021-06-08"
"""The Blob service REST version of the test's own requests (creating the container, listing blobs)."""


@dataclasses.dataclass(frozen=True)
class Azurite:
    """Azurite's blob service over TLS on 127.0.0.1, with the test's account and its key."""

    port: int
    ca_file: Path
    key: str

    def request(self, method: str, path: str, query: dict[str, str]) -> bytes:
        """A shared-key-signed Blob service request (path-style: `/<account>/<container>`); its body."""
        date = datetime.datetime.now(datetime.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
        headers = {"x-ms-date": date, "x-ms-version": API_VERSION}
        resource = f"/{ACCOUNT}/{ACCOUNT}/{path}" + "".join(f"\n{name}:{value}" for name, value in sorted(query.items()))
        canonical_headers = "".join(f"{name}:{value}\n" for name, value in sorted(headers.items()))
        to_sign = f"{method}\n" + "\n" * 11 + canonical_headers + resource
        signature = base64.b64encode(hmac.new(base64.b64decode(self.key), to_sign.encode(), hashlib.sha256).digest()).decode()
        url = f"https://localhost:{self.port}/{ACCOUNT}/{path}?{urllib.parse.urlencode(query)}"
        signed = urllib.request.Request(url, method=method, headers={**headers, "Authorization": f"SharedKey {ACCOUNT}:{signature}", "Content-Length": "0"})
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(signed, timeout=TIMEOUT, context=context) as response:
            return response.read()

    def blob_names(self) -> list[str]:
        """Every blob of the repository, as the Blob service lists them (one page: a test repository
        holds far fewer than the 5000 a page may list)."""
        listing = self.request("GET", CONTAINER, {"restype": "container", "comp": "list", "prefix": f"{PREFIX}/"}).decode()
        assert not re.search(r"<NextMarker>[^<]", listing), "one page of blobs"
        return re.findall(r"<Name>([^<]+)</Name>", listing)


@contextlib.contextmanager
def azurite(root: Path) -> Iterator[Azurite]:
    """Azurite's blob service in memory on a free port of 127.0.0.1, TLS with a throwaway CA, the
    test's account with a random key, and the repository's container (pgBackRest creates none)."""
    if not AZURITE_BLOB.is_file():
        pytest.fail(f"Azurite is missing from {AZURITE_BLOB.parent}: `./run test` installs it (tests/contract/azurite/)")
    ca_file, certificate, key = localhost_certificate(root)
    cert_file, key_file = ca_file.parent / "azurite.pem", ca_file.parent / "azurite.key"
    cert_file.write_text(certificate)
    key_file.write_text(key)
    account_key = base64.b64encode(secrets.token_bytes(64)).decode()
    port = free_port()
    workspace = root / "azurite"
    workspace.mkdir()
    command = [
        str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--cert", str(cert_file), "--key", str(key_file),
        "--inMemoryPersistence", "--extentMemoryLimit", str(EXTENT_MEMORY_MB), "--disableTelemetry", "--silent",
    ]
    environment = {"PATH": os.environ["PATH"], "HOME": str(workspace), "AZURITE_ACCOUNTS": f"{ACCOUNT}:{account_key}"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment, cwd=workspace)
    try:
        wait_for_port(port, process, time.monotonic() + WAIT_SECONDS)
        service = Azurite(port, ca_file, account_key)
        service.request("PUT", CONTAINER, {"restype": "container"})
        yield service
    finally:
        terminate(process)


@contextlib.contextmanager
def azure_rig() -> Iterator[tuple[OffsiteRig, Azurite]]:
    """Azurite and PostgreSQL 15 archiving with the repository host's rendered config, repo2 in
    Azurite's container, the account key in the rendered offsite fragment; the rig and Azurite."""
    with rig_root("Azure") as root, azurite(root) as service:
        overrides = {
            "PGBACKREST_REPO2_AZURE_ENDPOINT": "localhost",
            "PGBACKREST_REPO2_AZURE_URI_STYLE": "path",
            "PGBACKREST_REPO2_STORAGE_PORT": str(service.port),
            "PGBACKREST_REPO2_STORAGE_CA_FILE": str(service.ca_file),
        }
        repository = AzureRepository.from_bucket_name(f"{ACCOUNT}/{CONTAINER}")
        fragments = {"offsite.conf": render_pgbackrest_offsite_secrets(repository, service.key)}
        with archiving_rig(root, repository, overrides, fragments) as rig:
            yield rig, service


@pytest.mark.parametrize("command", CONFIG_COMMANDS["repository.conf"])
def test_pgbackrest_accepts_the_rendered_azure_files(tmp_path: Path, command: str) -> None:
    """The prod layout's repository-host config with an Azure repo2, and both fragments in its
    include directory as the backup agent mounts them, parsed by pgBackRest for each command the
    repository host runs: no error, no warning (unknown options only warn)."""
    settings = prod_settings()
    repository = AzureRepository.from_bucket_name(f"{ACCOUNT}/{CONTAINER}")
    include = tmp_path / "conf.d"
    include.mkdir()
    (include / "secrets.conf").write_text(render_pgbackrest_secrets({BACKUP_ENCRYPTION_SECRET: FAKE_PASSPHRASE}))
    (include / "offsite.conf").write_text(render_pgbackrest_offsite_secrets(repository, base64.b64encode(b"key").decode()))
    main = tmp_path / "pgbackrest.conf"
    main.write_text(render_pgbackrest_repository(derive(settings).layout, settings.backup, repository))
    stanza = () if command == "server" else (f"--stanza={BACKUP_STANZA}",)
    result = pgbackrest(f"--config={main}", f"--config-include-path={include}", *stanza, "--log-level-console=warn", "help", command)
    assert result.returncode == 0 and "WARN" not in result.stdout + result.stderr, f"{command}: {result.stdout}{result.stderr}"


def test_pgbackrest_keeps_its_offsite_repository_in_blob_storage() -> None:
    with azure_rig() as (rig, service):
        first = rig.first_full_backup()
        assert any(f"/{first}/" in name for name in service.blob_names()), "the backup's files are blobs under the prefix"
        last_segment = rig.second_full_backup()

        expired = rig.ok("--repo=2", f"--set={first}", "--log-level-console=info", "expire")
        assert f"repo2: remove expired backup {first}" in expired, expired
        assert not [name for name in service.blob_names() if f"/{first}/" in name], "expire deleted the first backup's blobs"

        rig.fetch_and_restore(last_segment)
        assert BACKUP_STANZA in rig.ok("--repo=2", "info")


def test_a_wrong_account_key_is_refused() -> None:
    """The rendered fragment's key is what lets pgBackRest in: another key (given in the
    environment, which pgBackRest prefers to its files) is refused with 403, nothing written."""
    with azure_rig() as (rig, service):
        wrong = dataclasses.replace(rig, environment=rig.environment | {"PGBACKREST_REPO2_AZURE_KEY": base64.b64encode(secrets.token_bytes(64)).decode()})
        refused = wrong.pgbackrest("stanza-create")
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0, output
        assert "403" in output, output
        assert service.blob_names() == [], "nothing written with the wrong key"
