"""pgBackRest 2.45 and the offsite repository (repo2) on a local Cloud Storage JSON API: the
repository host's rendered configuration with a GCS repo2 (`GcsRepository`) archives, backs up,
expires, fetches WAL and restores through pgBackRest's GCS driver.

The API is gcp-storage-emulator's server (PyPI), in memory, on loopback. pgBackRest's GCS driver
speaks only TLS: as for S3 (tests/contract/test_backup_s3.py), Debian's HAProxy terminates TLS in
front of it with a throwaway CA's certificate that pgBackRest verifies (`repo2-storage-ca-file`),
closing each connection after its response (`option httpclose`): the emulator answers in HTTP/1.0,
whose responses pgBackRest reads until the connection closes, which HAProxy would otherwise keep
open (every request then hung until pgBackRest's timeout).

The rendered file names the endpoint (`GcsRepository.endpoint`, `localhost:<port>`: pgBackRest 2.45
takes a GCS repository's port only there). What differs from a node, given in PGBACKREST_*
variables: the test CA, and a fixed bearer token
(`repo2-gcs-key-type=token`) instead of the instance's service account (`auto`): pgBackRest asks
GCE's metadata server for that token at a fixed host name, which a test cannot serve without
changing the machine's name resolution. Every other option, the bucket, the prefix, the cipher,
bundling and retention, is the rendered one. The emulator checks no token and no permission (the
service account's grant on the bucket is compute's, tests/unit/test_gcp_compute.py), models no
storage class (every Cloud Storage class is read at once, so the lifecycle's transitions change
nothing pgBackRest sees) and no versioning.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from dpc.cluster import BACKUP_STANZA
from dpc.render.backup import OFFSITE_KEY_PREFIX, GcsRepository
from tests.contract.test_backup import TIMEOUT, WAIT_SECONDS, free_port, terminate, wait_for_port
from tests.contract.test_backup_s3 import OffsiteRig, archiving_rig, rig_root, tls_terminator

pytestmark = pytest.mark.contract

BUCKET = "dpc-test-offsite-backups"
PREFIX = OFFSITE_KEY_PREFIX.strip("/")


@contextlib.contextmanager
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator in memory on a free loopback port, with the bucket; its plain HTTP endpoint."""
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        pytest.fail("gcp-storage-emulator is missing from the virtualenv (a dev requirement): it serves the GCS API pgBackRest writes to")
    port = free_port()
    command = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host=127.0.0.1", f"--port={port}", "--in-memory", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, process, time.monotonic() + WAIT_SECONDS)
        endpoint = f"http://127.0.0.1:{port}"
        create = urllib.request.Request(
            f"{endpoint}/storage/v1/b?project=dpc-test", data=json.dumps({"name": BUCKET}).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(create, timeout=TIMEOUT):
            pass
        yield endpoint
    finally:
        terminate(process)


def object_names(endpoint: str) -> list[str]:
    """Every object of the repository, as the JSON API lists them."""
    with urllib.request.urlopen(f"{endpoint}/storage/v1/b/{BUCKET}/o?prefix={PREFIX}/", timeout=TIMEOUT) as response:
        return [item["name"] for item in json.load(response).get("items", [])]


@contextlib.contextmanager
def gcs_rig() -> Iterator[tuple[OffsiteRig, str]]:
    """The emulator behind TLS and PostgreSQL 15 archiving with the repository host's rendered
    config, repo2 in the emulator's bucket; the rig and the emulator's endpoint."""
    with rig_root("GCS") as root, gcs_emulator() as endpoint, tls_terminator(root, endpoint, options=("httpclose",)) as (port, ca_file):
        overrides = {
            "PGBACKREST_REPO2_STORAGE_CA_FILE": str(ca_file),
            "PGBACKREST_REPO2_GCS_KEY_TYPE": "token",
            "PGBACKREST_REPO2_GCS_KEY": "test-token",
        }
        with archiving_rig(root, GcsRepository(bucket=BUCKET, endpoint=f"localhost:{port}"), overrides) as rig:
            yield rig, endpoint


def test_pgbackrest_keeps_its_offsite_repository_in_cloud_storage() -> None:
    with gcs_rig() as (rig, endpoint):
        first = rig.first_full_backup()
        assert any(f"/{first}/" in name for name in object_names(endpoint)), "the backup's files are objects under the prefix"
        last_segment = rig.second_full_backup()

        expired = rig.ok("--repo=2", f"--set={first}", "--log-level-console=info", "expire")
        assert f"repo2: remove expired backup {first}" in expired, expired
        assert not [name for name in object_names(endpoint) if f"/{first}/" in name], "expire deleted the first backup's objects"

        rig.fetch_and_restore(last_segment)
        assert BACKUP_STANZA in rig.ok("--repo=2", "info")
