"""The docker provider's SSH path, with the real `ssh` client and two real `sshd`s on loopback.

`pulumi up` reaches manager-1's Docker as `ssh <options> admin@<manager-1>`, the options from
`components.access.ssh_options` and the files from `write_client_files`. Here, in a network
namespace of the test's own (its loopback only, so the machine's own sshd, if any, is untouched),
a "bastion" sshd listens on 127.0.0.2:22 and a "manager-1" sshd on 127.0.0.3:22 (as on the cloud,
both on port 22), each with an ed25519 host key in the OpenSSH form pulumi-tls generates, and the deploy key
authorised. What differs from the cloud, on purpose: the login user is root (no `admin` user on
this machine; `ssh_options` takes the user for that), and the command is `echo` instead of
`docker system dial-stdio`.

It proves: the client reaches the target through the bastion with no prompt and no
trust-on-first-use (strict checking, only the written known hosts), and refuses when either
machine's host key is not the one the stack generated.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from components.access import CLIENT_DIRECTORY, known_hosts, ssh_options, write_client_files

pytestmark = pytest.mark.contract

SSHD = Path("/usr/sbin/sshd")
BASTION, TARGET = "127.0.0.2", "127.0.0.3"
NAMESPACE = f"dpc-ssh-{uuid.uuid4().hex[:8]}"
IN_NAMESPACE = ["ip", "netns", "exec", NAMESPACE]


def _key() -> tuple[str, str]:
    """An ed25519 key pair as OpenSSH text: (private, public)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, public


@contextlib.contextmanager
def _sshd(address: str, host_private: str, authorized: str, directory: Path) -> Iterator[None]:
    directory.mkdir(mode=0o700)
    host_key = directory / "host_key"
    host_key.write_text(host_private)
    host_key.chmod(0o600)
    (directory / "authorized_keys").write_text(authorized + "\n")
    config = directory / "sshd_config"
    config.write_text(
        f"ListenAddress {address}:22\nHostKey {host_key}\nAuthorizedKeysFile {directory}/authorized_keys\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPidFile none\nAllowTcpForwarding yes\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    process = subprocess.Popen([*IN_NAMESPACE, str(SSHD), "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run([*IN_NAMESPACE, "ssh-keyscan", "-T", "1", address], capture_output=True, check=False).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                assert process.stderr is not None
                raise RuntimeError(f"sshd on {address} did not start: {process.stderr.read().decode()[-500:]}")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def hosts() -> Iterator[dict[str, tuple[str, str]]]:
    """The deploy key and the two machines' host keys; both sshds running for the module."""
    if os.geteuid() != 0 or not SSHD.exists():
        pytest.fail("needs root and Debian's openssh-server (./run test installs it)")
    keys = {"deploy": _key(), "bastion": _key(), "target": _key()}
    work = Path(tempfile.mkdtemp(prefix="dpc-ssh-"))
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True)
    try:
        subprocess.run([*IN_NAMESPACE, "ip", "link", "set", "lo", "up"], check=True)
        with _sshd(BASTION, keys["bastion"][0], keys["deploy"][1], work / "bastion"), _sshd(TARGET, keys["target"][0], keys["deploy"][1], work / "target"):
            yield keys
    finally:
        subprocess.run(["ip", "netns", "delete", NAMESPACE], check=False)
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _client(keys: dict[str, tuple[str, str]], target_key: str, bastion_key: str) -> Iterator[list[str]]:
    """The files under the user's ~/.ssh/dpc/<a throwaway stack>/ and the options that use them."""
    stack = f"contract-{uuid.uuid4().hex[:8]}"
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    write_client_files(stack, keys["deploy"][0], known_hosts({TARGET: target_key, BASTION: bastion_key}), home=home)
    try:
        yield ssh_options(stack, BASTION, user="root")
    finally:
        shutil.rmtree(home / CLIENT_DIRECTORY.removeprefix("~/") / stack)


def _ssh(options: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IN_NAMESPACE, "ssh", *options, "-o", "ConnectTimeout=10", f"root@{TARGET}", "echo", "reached"],
                          capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)


def test_the_deploy_path_reaches_manager_1_through_the_bastion_with_known_host_keys(hosts: dict[str, tuple[str, str]]) -> None:
    with _client(hosts, hosts["target"][1], hosts["bastion"][1]) as options:
        result = _ssh(options)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "reached"


def test_the_client_files_are_private_to_the_user(hosts: dict[str, tuple[str, str]]) -> None:
    with _client(hosts, hosts["target"][1], hosts["bastion"][1]) as options:
        identity = Path(next(o for o in options if o.startswith("IdentityFile=")).split("=", 1)[1].replace("~", pwd.getpwuid(os.getuid()).pw_dir, 1))
        assert identity.stat().st_mode & 0o777 == 0o600
        assert identity.parent.stat().st_mode & 0o777 == 0o700
        assert (identity.parent / "known_hosts").read_text().splitlines() == [f"{BASTION} {hosts['bastion'][1]}", f"{TARGET} {hosts['target'][1]}"]


@pytest.mark.parametrize("impostor", ["target", "bastion"])
def test_a_host_whose_key_is_not_the_generated_one_is_refused(hosts: dict[str, tuple[str, str]], impostor: str) -> None:
    other = _key()[1]
    target_key = other if impostor == "target" else hosts["target"][1]
    bastion_key = other if impostor == "bastion" else hosts["bastion"][1]
    with _client(hosts, target_key, bastion_key) as options:
        result = _ssh(options)
    assert result.returncode != 0
    assert "reached" not in result.stdout
    assert "host key" in result.stderr.lower() or "identification has changed" in result.stderr.lower(), result.stderr
