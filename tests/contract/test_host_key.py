"""dpc-host-key run for real: Debian's awscli reads the host key from moto's SSM, as manager-1 and
the bastion do first in their boot, so that `pulumi up` finds the host key it generated.

What the boot would have written comes from the rendered user data itself (host-key.env,
common.sh, secret-store.sh and the script): in a private mount namespace, overlays put them at
their real paths (/etc/dpc, /usr/local/lib/dpc, /usr/local/sbin) without touching this machine's
files, so the script runs unchanged. Stand-ins: `systemctl` and `apt-get` record their arguments
and succeed; the SSH directory is a temporary one (DPC_SSH_DIR) holding cloud-init's keys as
fakes. Needs root (mount namespaces, overlays).

It proves: the stored key becomes sshd's only host key (private 0600, public half derived, 0644)
and sshd is restarted once; a read that fails (the parameter not there yet) is logged and retried;
a stored value that is not an ed25519 private key changes nothing and fails the script; the key
never shows in the script's output; a missing secret-store client is installed first.
Where moto differs from AWS: it does not encrypt SecureString values with the KMS key (it only
checks the call's shape); what the script reads back is the value either way.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from components.swarm import BASTION_HOST_KEY
from tests.contract.aws_emulator import REGION, ROOT_CREDENTIALS, Emulator, aws_emulator
from tests.contract.cloud_init_cases import HOST_KEY_SECRETS, render_bastion, render_node, write_files

pytestmark = pytest.mark.contract

SCRIPT = "/usr/local/sbin/dpc-host-key"
SSHD = "/usr/sbin/sshd"
HOST_KEY_ENV = "/etc/dpc/host-key.env"
OVERLAID = ("/etc", "/usr/local/lib", "/usr/local/sbin")
"""The directories under which the boot writes the script's files: overlaid in the namespace only."""
STAGED = (HOST_KEY_ENV, "/usr/local/lib/dpc/common.sh", "/usr/local/lib/dpc/secret-store.sh", SCRIPT)
RUN_TIMEOUT = 120
"""Seconds any one run may take: a read retried once waits 10 s, and awscli starts in about a second."""

_IN_NAMESPACE = r"""
set -eu
root=$1
shift
for dir in "$@"; do
  name=$(printf %s "$dir" | tr / _)
  mount -t overlay dpc-test -o "lowerdir=$dir,upperdir=$root/upper$name,workdir=$root/work$name" "$dir"
done
exec /usr/local/sbin/dpc-host-key
"""
"""Runs in a private mount namespace: the overlays, then the script at its real path."""

_RECORDER = '#!/bin/sh\nprintf "%s\\n" "$*" >>"$FAKE_CALLS/${0##*/}"\n'
"""systemctl and apt-get: record each call's arguments, one line each, and succeed."""

FAKE_SSH_FILES = {
    **{f"ssh_host_{kind}_key": f"fake {kind} private key from cloud-init\n" for kind in ("rsa", "ecdsa", "ed25519")},
    **{f"ssh_host_{kind}_key.pub": f"fake {kind} public key from cloud-init\n" for kind in ("rsa", "ecdsa", "ed25519")},
    "sshd_config": "# not a host key: stays\n",
}


def openssh_private(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    """A private key in OpenSSH format, as pulumi-tls's `private_key_openssh` is."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


def openssh_public(key: ed25519.Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def secret_lines(value: str) -> list[str]:
    """What must never show in output: every line of the value that is not an armour line."""
    lines = [line for line in value.splitlines() if line and not line.startswith("-----")]
    assert lines
    return lines


@dataclass
class Machine:
    """One machine's boot: its staged files, its SSH directory and the stand-ins' records."""

    root: Path
    emulator: Emulator
    ssm: Any

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    def stage(self, user_data: str, *, packages: str | None = None) -> None:
        """Writes what the user data writes for the script into the overlays' upper directories."""
        files = write_files(user_data)
        assert set(STAGED) <= files.keys(), "the user data no longer writes what dpc-host-key reads"
        if packages is not None:
            files[HOST_KEY_ENV] = "".join(
                f"DPC_HOST_KEY_PACKAGES='{packages}'\n" if line.startswith("DPC_HOST_KEY_PACKAGES=") else f"{line}\n"
                for line in files[HOST_KEY_ENV].splitlines()
            )
        for directory in OVERLAID:
            name = directory.replace("/", "_")
            (self.root / f"upper{name}").mkdir()
            (self.root / f"work{name}").mkdir()
        for path in STAGED:
            directory = next(d for d in OVERLAID if path.startswith(f"{d}/"))
            staged = self.root / f"upper{directory.replace('/', '_')}" / path.removeprefix(f"{directory}/")
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_text(files[path])
            staged.chmod(0o755 if path == SCRIPT else 0o644)

    def start(self, stderr: Path) -> subprocess.Popen[str]:
        bin_dir = self.root / "bin"
        environment = self.emulator.environment()
        environment |= {
            "PATH": f"{bin_dir}:{environment['PATH']}",
            "DPC_SSH_DIR": str(self.ssh_dir),
            "FAKE_CALLS": str(self.root / "calls"),
            "LC_ALL": "C.UTF-8",
        }
        with stderr.open("w") as errors:
            return subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "bash", "-c", _IN_NAMESPACE, "bash", str(self.root), *OVERLAID],
                env=environment, stdout=subprocess.PIPE, stderr=errors, text=True,
            )

    def run(self) -> tuple[int, str, str]:
        """Runs the script to its end: exit status, standard output, standard error."""
        errors = self.root / "stderr"
        process = self.start(errors)
        stdout, _ = process.communicate(timeout=RUN_TIMEOUT)
        return process.returncode, stdout, errors.read_text()

    def calls(self, command: str) -> list[str]:
        record = self.root / "calls" / command
        return record.read_text().splitlines() if record.exists() else []

    def ssh_files(self) -> dict[str, tuple[bytes, int]]:
        """Every file in the SSH directory (hidden ones too): content and mode."""
        return {path.name: (path.read_bytes(), stat.S_IMODE(path.stat().st_mode)) for path in self.ssh_dir.iterdir()}

    def store(self, name: str, value: str, key_id: str) -> None:
        self.ssm.put_parameter(Name=name, Value=value, Type="SecureString", KeyId=key_id, Overwrite=True)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    if os.geteuid() != 0:
        pytest.fail("dpc-host-key runs in a private mount namespace with overlays: run the contract tests as root")
    with aws_emulator() as emu:
        yield emu


def _client(emulator: Emulator, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=emulator.endpoint, region_name=REGION,
        aws_access_key_id=ROOT_CREDENTIALS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=ROOT_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def key_arn(emulator: Emulator) -> str:
    """The stack's KMS key, which the host keys' parameters are encrypted with."""
    return str(_client(emulator, "kms").create_key(Description="dpc test stack key")["KeyMetadata"]["Arn"])


@pytest.fixture
def machine(emulator: Emulator, tmp_path: Path) -> Iterator[Machine]:
    """A fresh boot's directories and stand-ins; the host keys' parameters are deleted afterwards."""
    if subprocess.run(["dpkg-query", "-W", "-f=${Status}", "awscli"], capture_output=True, text=True, check=False, timeout=30).stdout != "install ok installed":
        pytest.fail("Debian's awscli is not installed as a package: apt-get install awscli (the nodes' secret-store client)")
    (tmp_path / "bin").mkdir()
    (tmp_path / "calls").mkdir()
    for command in ("systemctl", "apt-get"):
        (tmp_path / "bin" / command).write_text(_RECORDER)
        (tmp_path / "bin" / command).chmod(0o755)
    (tmp_path / "ssh").mkdir()
    for name, content in FAKE_SSH_FILES.items():
        (tmp_path / "ssh" / name).write_text(content)
        (tmp_path / "ssh" / name).chmod(0o644 if name.endswith((".pub", "_config")) else 0o600)
    ssm = _client(emulator, "ssm")
    yield Machine(tmp_path, emulator, ssm)
    ssm.delete_parameters(Names=list(HOST_KEY_SECRETS.values()))


def user_data(machine_name: str, key_arn: str) -> str:
    return render_bastion(key_arn=key_arn) if machine_name == BASTION_HOST_KEY else render_node(machine_name, key_arn=key_arn)


def assert_installed(machine: Machine, private: str, public: str, stderr: str) -> None:
    files = machine.ssh_files()
    assert set(files) == {"ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "sshd_config"}, (
        "cloud-init's host keys are removed and nothing is left behind"
    )
    installed, mode = files["ssh_host_ed25519_key"]
    # Debian's awscli prints a text value with a newline after it, so the file may end in one more
    # newline than the stored value: the same key, which sshd loads (checked below).
    assert installed in {private.encode(), private.encode() + b"\n"}, "the stored key, byte for byte"
    assert mode == 0o600, "private to root"
    sshd = subprocess.run(
        [SSHD, "-t", "-f", "/dev/null", "-o", "PidFile=none", "-h", str(machine.ssh_dir / "ssh_host_ed25519_key")],
        capture_output=True, text=True, check=False, timeout=30,
    )
    assert sshd.returncode == 0, f"sshd does not load the installed host key: {sshd.stderr}"
    public_text, public_mode = files["ssh_host_ed25519_key.pub"]
    assert public_text.decode().split()[:2] == public.split()[:2], "the public half is the stored key's"
    assert public_mode == 0o644
    assert files["sshd_config"] == (FAKE_SSH_FILES["sshd_config"].encode(), 0o644), "only host keys are removed"
    assert machine.calls("systemctl") == ["restart ssh"], "sshd restarted once, to offer the installed key"
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(machine.ssh_dir / "ssh_host_ed25519_key.pub")], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()[1]
    assert f"installed the deployment's host key ({fingerprint})" in stderr, stderr


def assert_not_shown(value: str, *outputs: str) -> None:
    for output in outputs:
        assert "PRIVATE KEY" not in output
        for line in secret_lines(value):
            assert line not in output, "the stored value shows in the script's output"


@pytest.mark.parametrize("machine_name", sorted(HOST_KEY_SECRETS))
def test_the_stored_key_becomes_sshd_s_only_host_key(machine: Machine, key_arn: str, machine_name: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    private, public = openssh_private(key), openssh_public(key)
    machine.store(HOST_KEY_SECRETS[machine_name], private, key_arn)
    machine.stage(user_data(machine_name, key_arn))
    status, stdout, stderr = machine.run()
    assert status == 0, stderr
    assert_installed(machine, private, public, stderr)
    assert machine.calls("apt-get") == [], "the secret store's client is installed already: nothing to install"
    assert_not_shown(private, stdout, stderr)


def test_a_failed_read_is_logged_and_retried_until_the_key_is_there(machine: Machine, key_arn: str) -> None:
    """The parameter appears only after the script's first read failed (as a store that was not
    reachable yet would): the script waits, reads again and installs it."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = openssh_private(key)
    machine.stage(user_data("manager-1", key_arn))
    errors = machine.root / "stderr"
    process = machine.start(errors)
    try:
        deadline = time.monotonic() + 60
        while "attempt 1 of 60" not in errors.read_text():
            assert process.poll() is None, f"the script ended without retrying: {errors.read_text()}"
            assert time.monotonic() < deadline, f"no failed read logged within 60 s: {errors.read_text()}"
            time.sleep(0.2)
        machine.store(HOST_KEY_SECRETS["manager-1"], private, key_arn)
        stdout, _ = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    stderr = errors.read_text()
    assert process.returncode == 0, stderr
    assert "ParameterNotFound" in stderr, "the client's own error is logged"
    assert "dpc-host-key: reading this machine's host key from the secret store failed (exit" in stderr
    assert "attempt 1 of 60); retrying in 10s" in stderr
    assert "attempt 2 of 60" not in stderr, "read on the second try"
    assert_installed(machine, private, openssh_public(key), stderr)
    assert_not_shown(private, stdout, stderr)


@pytest.mark.parametrize("kind", ["rsa-key", "not-a-key"])
def test_a_stored_value_that_is_not_an_ed25519_key_changes_nothing(machine: Machine, key_arn: str, kind: str) -> None:
    value = (
        openssh_private(rsa.generate_private_key(public_exponent=65537, key_size=2048)) if kind == "rsa-key"
        else "this is not a host key, but it is secret all the same\n"
    )
    machine.store(HOST_KEY_SECRETS[BASTION_HOST_KEY], value, key_arn)
    machine.stage(user_data(BASTION_HOST_KEY, key_arn))
    before = machine.ssh_files()
    status, stdout, stderr = machine.run()
    assert status != 0, stderr
    assert "the secret store's host key is not an ed25519 private key; leaving sshd's keys as they are" in stderr
    assert machine.ssh_files() == before, "cloud-init's keys stay, and nothing is left behind"
    assert machine.calls("systemctl") == [], "sshd is not restarted"
    assert_not_shown(value, stdout, stderr)


def test_a_missing_secret_store_client_is_installed_before_the_key_is_read(machine: Machine, key_arn: str) -> None:
    """The bastion's image lacks awscli: apt installs what is missing, and only that."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = openssh_private(key)
    machine.store(HOST_KEY_SECRETS[BASTION_HOST_KEY], private, key_arn)
    machine.stage(user_data(BASTION_HOST_KEY, key_arn), packages="awscli dpc-test-absent-package")
    status, _, stderr = machine.run()
    assert status == 0, stderr
    assert machine.calls("apt-get") == [
        "-q -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confold update",
        "-q -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confold -y install dpc-test-absent-package",
    ]
    assert_installed(machine, private, openssh_public(key), stderr)
