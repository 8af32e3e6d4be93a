"""`python -m engine up --stack local` / `python -m engine down --stack local` (`./run up`, `./run down`).

`up` brings the local stack's Swarm up on this machine (engine/lab.py), checks that a client on
an app node writes over TLS through PgBouncer, and prints how to connect. `down` removes what `up`
made, and nothing else.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from dpc.cluster import CA_SECRET, DATABASE_NAME, Port, User
from dpc.config import StackFileError, settings_from_stack_file
from dpc.settings import SettingsError
from engine.deploy import nodes_running
from engine.lab import Deployment, bring_up, tear_down

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = Path("/var/lib/dpc-local")
CLIENT_NODE = "app-1"


def _say(message: str) -> None:
    print(f"dpc-local: {message}", flush=True)


def client_files(deployment: Deployment, root: Path) -> tuple[Path, Path]:
    """The CA certificate, and a pgpass file (owner-only) with the passwords of the application user
    (through PgBouncer) and the superuser (through HAProxy).
    """
    ca = root / "ca.pem"
    ca.write_text(deployment.secret_values[CA_SECRET])
    ca.chmod(0o644)
    pgpass = root / "pgpass"
    pgpass.touch(mode=0o600)
    pgpass.write_text(
        f"*:{Port.PGBOUNCER}:{DATABASE_NAME}:{User.APP.value}:{deployment.secret_values['app_user_password']}\n"
        f"*:{Port.HAPROXY_PRIMARY}:{DATABASE_NAME}:{User.SUPERUSER.value}:{deployment.secret_values['postgres_superuser_password']}\n"
    )
    return ca, pgpass


def psql_command(deployment: Deployment, ca: Path, pgpass: Path, *, superuser: bool = False) -> list[str]:
    """The psql command line an application on app-1 would use: through PgBouncer, the certificate
    verified by name. `superuser`: the operator's, through HAProxy on a manager that runs it (which
    passes TLS through to the leader, whose certificate names the member, so the CA is verified but
    not the name).
    """
    if superuser:
        haproxy = nodes_running(deployment.manager, deployment.nodes, deployment.objects.layout.haproxy.name)[0]
        target = f"host={haproxy.address} port={Port.HAPROXY_PRIMARY} user={User.SUPERUSER.value} sslmode=verify-ca"
    else:
        pgbouncer = nodes_running(deployment.manager, deployment.nodes, "pgbouncer")[-1]
        target = f"host=pgbouncer hostaddr={pgbouncer.address} port={Port.PGBOUNCER} user={User.APP.value} sslmode=verify-full"
    conninfo = f"{target} dbname={DATABASE_NAME} sslrootcert={ca}"
    return ["nsenter", f"--net=/run/netns/{deployment.node(CLIENT_NODE).namespace}", "env", f"PGPASSFILE={pgpass}", "psql", conninfo]


WRITE_CHECK_TABLE = "dpc_local_writes"
"""Where `up` proves a write: made by the superuser (the application user may not create tables),
written by the application user through PgBouncer."""


def write_check(deployment: Deployment, ca: Path, pgpass: Path) -> str:
    """Empty when the application user wrote a row over TLS through PgBouncer; else what failed."""
    steps = [
        (psql_command(deployment, ca, pgpass, superuser=True), f"CREATE TABLE IF NOT EXISTS {WRITE_CHECK_TABLE} (at timestamptz NOT NULL DEFAULT now())"),
        (psql_command(deployment, ca, pgpass), f"INSERT INTO {WRITE_CHECK_TABLE} DEFAULT VALUES; SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
    ]
    output = ""
    for psql, sql in steps:
        done = subprocess.run([*psql, "-v", "ON_ERROR_STOP=1", "-Atqc", sql], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            return done.stderr.strip()
        output = done.stdout.strip()
    return "" if output == "t" else f"the connection was not TLS: {output}"


def up(stack: str, root: Path) -> int:
    """Brings the stack up and proves a TLS write; prints how to connect."""
    try:
        settings = settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml")
    except (SettingsError, StackFileError) as error:
        print(error, file=sys.stderr)
        return 2
    if settings.cloud != "local":
        print(f"Pulumi.{stack}.yaml is a {settings.cloud} stack: `./run up` runs local stacks only (dpc:cloud: local)", file=sys.stderr)
        return 2
    started = time.monotonic()
    deployment = bring_up(settings, root / stack, stack, _say)
    ca, pgpass = client_files(deployment, root / stack)
    if failure := write_check(deployment, ca, pgpass):
        print(f"dpc-local: the stack is up but a client on {CLIENT_NODE} could not write over TLS: {failure}", file=sys.stderr)
        return 1
    phases = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in deployment.timings.items())
    print(f"\nThe {stack} stack is healthy after {time.monotonic() - started:.0f}s ({phases}).")
    print(f"Nodes: {', '.join(f'{n.name} {n.address}' for n in deployment.nodes)}")
    if deployment.objects.left_out:
        print("Left out: " + "; ".join(f"{name} ({reason})" for name, reason in sorted(deployment.objects.left_out.items())))
    print("Connect as an application on app-1 does (TLS through PgBouncer, the certificate verified by name):")
    print("  " + subprocess.list2cmdline(psql_command(deployment, ca, pgpass)))
    print("Or as the superuser through HAProxy (to the leader):")
    print("  " + subprocess.list2cmdline(psql_command(deployment, ca, pgpass, superuser=True)))
    print(f"Remove it all: ./run down --stack {stack}")
    return 0


def down(stack: str, root: Path) -> int:
    """Removes the stack's engines, namespaces and directory."""
    if not (root / stack).exists():
        print(f"dpc-local: nothing to remove: {root / stack} does not exist")
        return 0
    problems = tear_down(root / stack, stack)
    for problem in problems:
        print(f"dpc-local: {problem}", file=sys.stderr)
    print(f"dpc-local: removed the {stack} stack ({root / stack})")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """`python -m engine up|down --stack STACK [--root DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("--stack", default="local", help="a local stack (Pulumi.<stack>.yaml with dpc:cloud: local)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"where the engines keep their data (default {DEFAULT_ROOT}/<stack>)")
    args = parser.parse_args(argv)
    return up(args.stack, args.root) if args.command == "up" else down(args.stack, args.root)


if __name__ == "__main__":
    sys.exit(main())
