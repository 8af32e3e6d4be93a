"""Deploy access: how `pulumi up` reaches the Swarm with an identity the stack owns.

The stack generates its own SSH key (authorised for the deploy user on every node and the bastion,
next to the admins' keys) and the host keys of the machines it connects to (the bastion and
manager-1, set through their user data), so every connection knows the host it talks to before
the machine exists: no trust on first use, no person at a prompt. Admins keep their own keys
(`dpc:access.sshPublicKeys`); the deploy key serves the program alone.

Two clients use it: the readiness gate (`pulumi-command`, which takes keys as values) and the
docker provider, which runs the `ssh` program and so needs the key and the known hosts in files:
`client_files` writes them under the user's `~/.ssh/dpc/<stack>/` on every run, where the
provider's options point (the same literal path on every machine, so a preview elsewhere shows no
change of the provider).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_tls as tls

from components.swarm import DEPLOY_USER, SshHostKey

DIAL_ATTEMPTS = 120
PER_DIAL_SECONDS = 15
"""How long a connection keeps trying a machine that is still booting: 120 dials of up to 15 s and
the provider's back-off between them, about 30 minutes, the bootstrap's own bound."""

CLIENT_DIRECTORY = "~/.ssh/dpc"
OFFLINE_PLAN_VARIABLE = "DPC_OFFLINE_PLAN"
"""Set by the offline plan, which must write nothing into the user's home."""


class DeployAccess(pulumi.ComponentResource):
    """The deploy key and the host keys of the machines the program connects to; protected in prod,
    since a new host key no longer matches a running machine (its user data is not re-read).
    """

    def __init__(self, name: str, hosts: Sequence[str], *, protect: bool, opts: pulumi.ResourceOptions) -> None:
        super().__init__("dpc:access:DeployAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, protect=protect)
        deploy = tls.PrivateKey(f"{name}-deploy-key", algorithm="ED25519", opts=child)
        self.deploy_public_key: pulumi.Output[str] = deploy.public_key_openssh
        self.deploy_private_key: pulumi.Output[str] = pulumi.Output.secret(deploy.private_key_openssh)
        self.host_keys: dict[str, SshHostKey] = {}
        for host in hosts:
            key = tls.PrivateKey(f"{name}-{host}-host-key", algorithm="ED25519", opts=child)
            self.host_keys[host] = SshHostKey(pulumi.Output.secret(key.private_key_openssh), key.public_key_openssh)
        self.register_outputs({"deploy_public_key": self.deploy_public_key})


@dataclass(frozen=True)
class Route:
    """How to reach a machine behind the bastion: the addresses, and which host keys are whose."""

    target_ip: pulumi.Input[str]
    target_host: str
    bastion_ip: pulumi.Input[str]
    bastion_host: str


def remote_connection(access: DeployAccess, route: Route) -> command.remote.ConnectionArgs:
    """A pulumi-command connection to the target through the bastion, both hops verified by their
    host keys, retrying while the machines boot.
    """
    return command.remote.ConnectionArgs(
        **_hop(access, route.target_ip, route.target_host),
        proxy=command.remote.ProxyConnectionArgs(**_hop(access, route.bastion_ip, route.bastion_host)),
    )


def _hop(access: DeployAccess, address: pulumi.Input[str], host: str) -> dict[str, Any]:
    """One SSH hop's settings, the same for the bastion and the target."""
    return {
        "host": address,
        "user": DEPLOY_USER,
        "private_key": access.deploy_private_key,
        "host_key": access.host_keys[host].public_openssh,
        "dial_error_limit": DIAL_ATTEMPTS,
        "per_dial_timeout": PER_DIAL_SECONDS,
    }


def ssh_options(stack: str, bastion_ip: str, user: str = DEPLOY_USER) -> list[str]:
    """The docker provider's `ssh` options: the deploy key, only the known hosts the program wrote,
    strict checking, and the jump through the bastion as `user` with the same options (ProxyJump
    would not pass them on to the first hop).
    """
    directory = f"{CLIENT_DIRECTORY}/{stack}"
    common = [
        "-o", f"IdentityFile={directory}/deploy_key",
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={directory}/known_hosts",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
    ]
    jump = " ".join(["ssh", *common, "-W", "%h:%p", f"{user}@{bastion_ip}"])
    return [*common, "-o", f"ProxyCommand={jump}"]


def known_hosts(entries: Mapping[str, str]) -> str:
    """A known_hosts file: each address (or name) with its host's public key, sorted."""
    return "".join(f"{address} {key.strip()}\n" for address, key in sorted(entries.items()))


def write_client_files(stack: str, private_key: str, hosts: str, home: Path | None = None) -> None:
    """Writes the deploy key and the known hosts where `ssh_options` points, private to the user.
    `~` is the user's home as ssh resolves it (the password database, not $HOME).
    """
    base = home if home is not None else Path(pwd.getpwuid(os.getuid()).pw_dir)
    directory = base / CLIENT_DIRECTORY.removeprefix("~/") / stack
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, text in (("deploy_key", private_key), ("known_hosts", hosts)):
        path = directory / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        path.chmod(0o600)


def client_files(stack: str, access: DeployAccess, route: Route) -> pulumi.Output[str]:
    """Writes the docker provider's SSH files once the keys and addresses are known; resolves to
    the provider's host URL, so the provider waits for the files.
    """
    host = pulumi.Output.all(
        access.deploy_private_key,
        route.target_ip,
        route.bastion_ip,
        access.host_keys[route.target_host].public_openssh,
        access.host_keys[route.bastion_host].public_openssh,
    ).apply(lambda values: _written(stack, values))
    # The host URL carries no key; only the files it waits for do.
    return pulumi.Output.unsecret(host)


def _written(stack: str, values: list[str]) -> str:
    private_key, target_ip, bastion_ip, target_key, bastion_key = values
    if os.environ.get(OFFLINE_PLAN_VARIABLE) != "1":
        write_client_files(stack, private_key, known_hosts({target_ip: target_key, bastion_ip: bastion_key}))
    return f"ssh://{DEPLOY_USER}@{target_ip}"
