"""The running cluster as the tests see it, and the states the fixture waits for."""

from __future__ import annotations

from typing import Any

from dpc.cluster import CA_SECRET, DATABASE_NAME, Port, User, certificate_secret, key_secret
from engine.netns import NamespaceClient
from tests.cluster.client import STATEMENT_TIMEOUT, api_get, query
from tests.cluster.hosts import APPS, HAPROXY_HOST, MANAGERS, WORKERS, SmokeCluster

CALL_TIMEOUT = 30.0
"""Seconds one client call (a connection and a statement, or an API request) may take."""

SYNCHRONOUS_ROLES = ("sync_standby", "quorum_standby")
REPLICA_ROLES = ("replica", *SYNCHRONOUS_ROLES)


class Smoke:
    """The cluster's files and a client on its network."""

    def __init__(self, cluster: SmokeCluster, client: NamespaceClient) -> None:
        self.cluster = cluster
        self.client = client

    def sql(self, conninfo: dict[str, str | int], statement: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a statement, from the client host."""
        return self.client.call(query, conninfo, statement, params, timeout=CALL_TIMEOUT)

    def api(self, worker: str, path: str) -> Any:
        """A document of a worker's Patroni REST API, from the client host, over verified TLS."""
        url = f"https://{self.cluster.address(worker)}:{Port.PATRONI_API}{path}"
        return self.client.call(api_get, url, self.cluster.ca_file, timeout=CALL_TIMEOUT)

    def members(self, worker: str = WORKERS[0]) -> list[dict[str, Any]]:
        """Patroni's view of the members, as a worker's API reports it (worker-1's unless that
        worker may be down)."""
        return self.api(worker, "/cluster")["members"]

    def leader(self, worker: str = WORKERS[0]) -> dict[str, Any]:
        """The one member Patroni calls leader, as a worker's API reports it."""
        (leader,) = [m for m in self.members(worker) if m["role"] == "leader"]
        return leader

    def through_haproxy(self, port: int) -> dict[str, str | int]:
        """The superuser through an HAProxy route, over TLS verified against the cluster CA.

        `verify-ca`, not `verify-full`: HAProxy passes TLS through, so the certificate is the
        Patroni member's behind the route, which does not name HAProxy's address.
        """
        return self.superuser(self.cluster.address(HAPROXY_HOST), port)

    def direct(self, worker: str) -> dict[str, str | int]:
        """The superuser straight to a worker's PostgreSQL, bypassing HAProxy."""
        return self.superuser(self.cluster.address(worker), Port.POSTGRES)

    def through_pgbouncer(
        self, user: User, password_secret: str, *, app: str = APPS[0], database: str = DATABASE_NAME, sslmode: str = "verify-full"
    ) -> dict[str, str | int]:
        """A client of an app host's PgBouncer verifying its certificate by the name it was issued
        for (`pgbouncer`, the Swarm service's name) at the host's address."""
        return {
            "host": "pgbouncer",
            "hostaddr": self.cluster.address(app),
            "port": Port.PGBOUNCER,
            "dbname": database,
            "user": user.value,
            "password": self.cluster.values[password_secret],
            "sslmode": sslmode,
            "sslrootcert": str(self.cluster.ca_file),
        }

    def superuser(self, address: str, port: int) -> dict[str, str | int]:
        """The superuser at an address and port, over TLS verified against the cluster CA."""
        return {
            "host": address,
            "port": port,
            "dbname": DATABASE_NAME,
            "user": User.SUPERUSER.value,
            "password": self.cluster.values["postgres_superuser_password"],
            "sslmode": "verify-ca",
            "sslrootcert": str(self.cluster.ca_file),
            "options": STATEMENT_TIMEOUT,
        }


def etcd_health(cluster: SmokeCluster) -> str:
    """etcdctl's health check of every member, run on manager-1 with etcd-1's client certificate."""
    host = cluster.hosts[MANAGERS[0]]
    member = cluster.layout.etcd[0]
    endpoints = ",".join(f"https://{m.host}:{Port.ETCD_CLIENT}" for m in cluster.layout.etcd)
    argv = [
        "etcdctl", f"--endpoints={endpoints}", f"--cacert={host.paths.secret(CA_SECRET)}",
        f"--cert={host.paths.secret(certificate_secret(member.name))}", f"--key={host.paths.secret(key_secret(member.name))}",
        "--command-timeout=3s", "endpoint", "health",
    ]  # fmt: skip
    result = cluster.network.run(MANAGERS[0], "etcd", argv, home=host.root, timeout=10)
    if result.returncode != 0:
        raise RuntimeError((result.stdout + result.stderr).strip())
    return result.stdout


def formed(smoke: Smoke, worker: str = WORKERS[0]) -> list[dict[str, Any]] | None:
    """The members, as a worker's API reports them, once there are a running leader and two
    streaming replicas, one synchronous."""
    members = smoke.members(worker)
    leaders = [m for m in members if m["role"] == "leader" and m["state"] == "running"]
    streaming = [m for m in members if m["role"] in REPLICA_ROLES and m["state"] == "streaming"]
    synchronous = [m for m in streaming if m["role"] in SYNCHRONOUS_ROLES]
    return members if (len(leaders), len(streaming), len(synchronous)) == (1, 2, 1) else None
