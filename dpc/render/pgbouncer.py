"""PgBouncer: transaction pooling in front of HAProxy, TLS on both sides, SCRAM for clients.

Clients authenticate with SCRAM against the verifiers PostgreSQL holds: PgBouncer looks them up
as `pgbouncer_auth` through a function the post-bootstrap script creates, so no application
password is copied into PgBouncer. The auth file (`render_pgbouncer_userlist`, a Docker secret)
holds only pgbouncer_auth's own password.

Towards PostgreSQL it verifies the server certificate against the cluster CA (`verify-ca`):
HAProxy passes TLS through, so the certificate presented is the current primary's, whose names
are the Patroni member's, not HAProxy's; `verify-full` against the HAProxy address would fail.
"""

from __future__ import annotations

from collections.abc import Mapping

from dpc.cluster import DATABASE_NAME, ClusterLayout, Port, User
from dpc.render import tls_files
from dpc.render.postgres import PGBOUNCER_AUTH_QUERY

USERLIST_SECRET = "pgbouncer_userlist"
"""The Docker secret holding the auth file."""

READONLY_DATABASE = f"{DATABASE_NAME}_readonly"
"""The pooled name of the read-only route (HAProxy's replica port)."""

AUTH_QUERY_CONNECTIONS = 4
"""Server connections pgbouncer_auth may hold for its lookups: each takes about a millisecond, so a
few serve a login storm, and the rest of the database's connections stay with the applications
(uncapped, a storm of 5 000 logins took up to 60 of a PgBouncer's 110, measured by
benchmarks/pooler_connections.py)."""

OPEN_FILES_HEADROOM = 256
"""Descriptors beyond client and server sockets: listeners, TLS files, logs, DNS."""

DIRECT_CONNECTIONS = 20
"""PostgreSQL connections kept out of the pools: superuser_reserved_connections (3), Patroni, the
exporter, the backup agent and administrators."""


def server_connections_per_pgbouncer(layout: ClusterLayout) -> int:
    """The most server connections one PgBouncer opens to a database, so that all replicas
    together never exceed PostgreSQL's max_connections less the direct connections.
    """
    budget = (layout.sizing.max_connections - DIRECT_CONNECTIONS) // layout.pgbouncer_replicas
    if budget < 1:
        raise ValueError(f"max_connections {layout.sizing.max_connections} leaves no server connections for {layout.pgbouncer_replicas} PgBouncers")
    return budget


def open_files_needed(layout: ClusterLayout) -> int:
    """The file descriptors one PgBouncer needs: a socket for every client it admits and every
    server connection it may open (a pool per database), and headroom. PgBouncer does not raise
    its own limit, and a default of 1024 would cap it near 1 000 clients.
    """
    servers = len(_databases(layout)) * server_connections_per_pgbouncer(layout)
    return layout.pgbouncer_max_client_connections + servers + OPEN_FILES_HEADROOM


def _databases(layout: ClusterLayout) -> dict[str, str]:
    """The pooled databases: the read-write route (HAProxy's primary port) and the read-only one."""
    haproxy = layout.haproxy.host
    return {
        DATABASE_NAME: f"host={haproxy} port={Port.HAPROXY_PRIMARY} dbname={DATABASE_NAME}",
        READONLY_DATABASE: f"host={haproxy} port={Port.HAPROXY_REPLICAS} dbname={DATABASE_NAME}",
    }


SERVER_LOGIN_RETRY_SECONDS = 1
"""How soon PgBouncer tries the primary route again after a server connection failed. PgBouncer's
default, 15 s, is added whole to every failover for pooled clients: while HAProxy has no primary,
PgBouncer's attempt fails and it then refuses its clients for the rest of the period even once
HAProxy routes to the new leader (design §5.3). One second bounds that wait at one HAProxy check."""

SERVER_CONNECT_TIMEOUT_SECONDS = 3
"""How long PgBouncer waits for a server connection's connect and login before giving it up. With
PgBouncer's default, 15 s, a lost HAProxy task stalled pooled clients for 15 s in 4 of 24 pooled
paths on the local Swarm: PgBouncer keeps the dead task's address from Swarm's DNS for up to
`dns_max_ttl` and its next connection waited out the timeout while clients waited in silence
(a client's cancel is dropped while it waits for a server). At 3 s the same losses cost 3.2–3.4 s
(design §5.4). A login through HAProxy with TLS 1.3 and SCRAM takes milliseconds; one slower than
3 s is retried after `SERVER_LOGIN_RETRY_SECONDS`."""


def render_pgbouncer(layout: ClusterLayout) -> str:
    """pgbouncer.ini (a plain Docker config)."""
    pool = server_connections_per_pgbouncer(layout)
    tls = tls_files(layout, "pgbouncer")
    settings = {
        "listen_addr": "0.0.0.0",
        "listen_port": str(Port.PGBOUNCER),
        "unix_socket_dir": "",
        "pool_mode": "transaction",
        "max_client_conn": str(layout.pgbouncer_max_client_connections),
        "default_pool_size": str(pool),
        "min_pool_size": "0",
        "reserve_pool_size": "0",
        "max_db_connections": str(pool),
        "auth_type": "scram-sha-256",
        "auth_file": layout.paths.secret(USERLIST_SECRET),
        "auth_user": User.PGBOUNCER_AUTH.value,
        "auth_query": PGBOUNCER_AUTH_QUERY,
        "admin_users": User.PGBOUNCER_AUTH.value,
        "stats_users": User.PGBOUNCER_AUTH.value,
        "client_tls_sslmode": "require",
        "client_tls_cert_file": tls.cert,
        "client_tls_key_file": tls.key,
        "client_tls_ca_file": tls.ca,
        "client_tls_protocols": "tlsv1.3",
        "server_tls_sslmode": "verify-ca",
        "server_tls_ca_file": tls.ca,
        "server_tls_protocols": "tlsv1.3",
        "server_check_query": "select 1",
        "server_login_retry": str(SERVER_LOGIN_RETRY_SECONDS),
        "server_connect_timeout": str(SERVER_CONNECT_TIMEOUT_SECONDS),
        "server_lifetime": "3600",
        "server_idle_timeout": "600",
        "query_wait_timeout": "120",
        "dns_max_ttl": "5",
        "ignore_startup_parameters": "extra_float_digits",
        "log_connections": "1",
        "log_disconnections": "1",
        "log_pooler_errors": "1",
    }
    return "\n".join(
        [
            "; Rendered by dpc.render.pgbouncer.",
            "[databases]",
            *(f"{name} = {value}" for name, value in sorted(_databases(layout).items())),
            "",
            "[users]",
            f"{User.PGBOUNCER_AUTH.value} = max_user_connections={AUTH_QUERY_CONNECTIONS}",
            "",
            "[pgbouncer]",
            *(f"{name} = {value}" for name, value in sorted(settings.items())),
            "",
        ]
    )


def _userlist_word(value: str) -> str:
    """A double-quoted word of PgBouncer's auth file, quotes doubled."""
    return '"' + value.replace('"', '""') + '"'


def render_pgbouncer_userlist(secrets: Mapping[str, str]) -> str:
    """The auth file: pgbouncer_auth's password, with which PgBouncer logs in to look users up."""
    return f"{_userlist_word(User.PGBOUNCER_AUTH.value)} {_userlist_word(secrets['pgbouncer_auth_password'])}\n"
