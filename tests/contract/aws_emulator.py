"""A local AWS API for real clients: moto in server mode on loopback, one process per use.

Real clients (Debian's awscli, pgBackRest's S3 driver, boto3) talk to it as they would to AWS;
what they send is what the deployed machines send. Where moto behaves differently from AWS, the
test that relies on it says so.

`aws_emulator(iam_enforced_after=N)` turns on moto's IAM enforcement after the first N requests
(the set-up: users, policies, keys, made with the emulator's root credentials); every later request
is allowed or denied by the policies of the credentials that sign it, as far as moto evaluates them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MOTO_SERVER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "moto_server"
DEBIAN_AWS_CLI = Path("/usr/bin/aws")
"""The client the nodes run (Debian 12's awscli 2.9): it has no AWS_ENDPOINT_URL, so a shim adds `--endpoint-url`."""

REGION = "us-east-1"
ROOT_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class Emulator:
    """A running emulator: its endpoint, and a directory whose `aws` calls Debian's awscli against it."""

    endpoint: str
    shim_dir: Path

    def environment(self, credentials: dict[str, str] | None = None, region: str = REGION) -> dict[str, str]:
        """An environment for a client process: the shim first on PATH, the region, credentials
        (the emulator's root by default), nothing read from the developer's own AWS files.
        """
        base = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        return base | (credentials or ROOT_CREDENTIALS) | {
            "PATH": f"{self.shim_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_serving(endpoint: str, process: subprocess.Popen[bytes], deadline_seconds: float = 30) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise TimeoutError(f"moto_server did not serve {endpoint} within {deadline_seconds}s")


@contextlib.contextmanager
def aws_emulator(*, iam_enforced_after: int | None = None) -> Iterator[Emulator]:
    """Starts moto_server on a free loopback port; stops it and removes the shim afterwards."""
    if not DEBIAN_AWS_CLI.exists():
        raise RuntimeError("Debian's awscli is missing: apt-get install awscli (./run test installs it)")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")} | ROOT_CREDENTIALS
    if iam_enforced_after is not None:
        environment["INITIAL_NO_AUTH_ACTION_COUNT"] = str(iam_enforced_after)
    shim_dir = Path(tempfile.mkdtemp(prefix="dpc-aws-shim-"))
    shim = shim_dir / "aws"
    shim.write_text(f'#!/bin/sh\nexec {DEBIAN_AWS_CLI} --endpoint-url "{endpoint}" "$@"\n')
    shim.chmod(0o755)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_serving(endpoint, process)
            yield Emulator(endpoint, shim_dir)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            shutil.rmtree(shim_dir, ignore_errors=True)
