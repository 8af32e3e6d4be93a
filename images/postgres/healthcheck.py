#!/usr/bin/python3
"""The image's HEALTHCHECK, for whichever service the container runs.

One image runs three services (see entrypoint.sh), and Docker gives them all the image's
HEALTHCHECK, so this finds the service from the container's first process (`tini -- dpc-entrypoint
<service> ...`) and checks what that service serves:

- patroni: Patroni's REST API `/liveness` over TLS, trusting only the cluster CA (a Docker secret).
  Liveness, not role: a replica is as healthy as the primary, and Swarm must not restart a
  member that is merely not the leader.
- backup-agent and pgbackrest-server: the `pgbackrest server` TLS port accepts connections (it
  lets in only the cluster's certificates, so a TCP connection is all an anonymous check gets).

Standard library only: it runs under the image's Debian python3.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import urllib.request
from pathlib import Path

ENTRYPOINT = "dpc-entrypoint"
DEFAULT_SERVICE = "patroni"
PATRONI_LIVENESS = "https://localhost:8008/liveness"
PGBACKREST_ADDRESS = ("localhost", 8432)
CA_SECRET = "tls_ca_cert"
TIMEOUT_SECONDS = 5


def service_of(cmdline: bytes) -> str:
    """The service a container runs, from its first process's NUL-separated command line: the
    argument after the entrypoint, or the entrypoint's default when there is none.
    """
    arguments = [argument.decode(errors="replace") for argument in cmdline.split(b"\0") if argument]
    for position, argument in enumerate(arguments):
        if Path(argument).name == ENTRYPOINT:
            following = arguments[position + 1 : position + 2]
            return following[0] if following else DEFAULT_SERVICE
    return DEFAULT_SERVICE


def patroni_alive(ca_file: str) -> bool:
    """Patroni answers /liveness with 200 over TLS verified against the cluster CA."""
    context = ssl.create_default_context(cafile=ca_file)
    try:
        with urllib.request.urlopen(PATRONI_LIVENESS, timeout=TIMEOUT_SECONDS, context=context) as response:
            return response.status == 200
    except OSError as error:
        print(f"healthcheck: {PATRONI_LIVENESS}: {error}", file=sys.stderr)
        return False


def port_open(address: tuple[str, int]) -> bool:
    """Something accepts TCP connections at `address`."""
    try:
        with socket.create_connection(address, timeout=TIMEOUT_SECONDS):
            return True
    except OSError as error:
        print(f"healthcheck: {address[0]}:{address[1]}: {error}", file=sys.stderr)
        return False


def main() -> int:
    """0 when the container's service is healthy, 1 otherwise (Docker's HEALTHCHECK convention)."""
    service = service_of(Path(os.environ.get("DPC_PROC1_CMDLINE", "/proc/1/cmdline")).read_bytes())
    if service == "patroni":
        return 0 if patroni_alive(str(Path(os.environ.get("DPC_SECRETS_DIR", "/run/secrets")) / CA_SECRET)) else 1
    return 0 if port_open(PGBACKREST_ADDRESS) else 1


if __name__ == "__main__":
    sys.exit(main())
