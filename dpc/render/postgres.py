"""PostgreSQL under Patroni: the server parameters, pg_hba, each member's patroni.yml and the
post-bootstrap script that creates the application's roles and database.

Parameters are split by where Patroni keeps them:
- `postgresql_parameters` are the same on every member and go into the DCS at bootstrap
  (`bootstrap.dcs.postgresql.parameters`); Patroni insists that some of them (max_connections,
  wal_level, max_wal_senders …) come from there only.
- `member_parameters` name files of one host (its certificate, its socket and log directories) and go
  into that member's local `postgresql.parameters`, which Patroni lays over the DCS's. In the Swarm
  every member has the same paths, but in the smoke run each host has its own directories, and a
  path stored once in the DCS would send every member to the first one's.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from dpc.cluster import BACKUP_STANZA, CA_SECRET, CLUSTER_SCOPE, DATABASE_NAME, ClusterLayout, Member, Port, User
from dpc.render import dump_yaml, tls_files

PATRONI_API_USER = "patroni"
"""The user of Patroni's REST API basic authentication (its password is `patroni_api_password`)."""

POST_BOOTSTRAP_FILE = "post-bootstrap.sh"
"""The post-bootstrap script's file name in the config directory (a Docker config: it holds no secret)."""

PGPASS_FILE = ".pgpass"
"""Patroni writes the passwords it connects with here, in the socket directory: a runtime directory
of the postgres user, never on a volume."""

DCS_TIMING = {"ttl": 20, "loop_wait": 5, "retry_timeout": 7, "primary_start_timeout": 10}
"""Patroni's failover timing. Patroni refuses ttl < 20 and needs loop_wait + 2 × retry_timeout ≤ ttl
(19 ≤ 20). A dead primary's leader key expires within ttl and a replica, woken by the etcd watch or
within one loop_wait, promotes: about ttl + loop_wait = 25 s worst case, under the 30 s RTO of design §5.3.
A primary whose PostgreSQL crashed but whose Patroni lives gets primary_start_timeout to restart
in place; with synchronous replication a failover loses nothing, so the wait is short.
"""

MAXIMUM_LAG_ON_FAILOVER_BYTES = 1024 * 1024
"""An asynchronous replica further behind than this is never promoted (the synchronous one is
always eligible)."""

REPLICATION_TIMEOUT = "10s"
"""How long either end of a replication connection waits for the other before dropping it
(PostgreSQL's default is 60 s). A primary cut off from its replicas and demoted by Patroni stops
with a fast shutdown, which waits for its WAL senders to hand the shutdown checkpoint over: with
60 s it sat in that shutdown, neither primary nor replica, for about 50 s after the cut, and
rejoined only after it (design §5.3). Both ends send keepalives at half this period, so 10 s drops
no healthy connection between members of one region."""

LOG_FILENAME = "postgresql-%a.log"
"""One log file per weekday, truncated when the week comes round (`log_truncate_on_rotation`): the
original timestamped names would fill the disk (design §11.11), since nothing ever deletes old files. The logs
stay on a volume of their own for a week."""

SHARED_PRELOAD_LIBRARIES = "pgaudit,pg_stat_statements"

EXTENSIONS = ("pg_stat_statements", "pgaudit")
"""The extensions of design §3.3 that the image carries. ruvector is not packaged for Debian's
PostgreSQL 15 and the image does not build it, so it is not created."""


def _size_from_mb(megabytes: int) -> str:
    """A memory size as PostgreSQL reads it, in whole gigabytes where it divides evenly."""
    return f"{megabytes // 1024}GB" if megabytes % 1024 == 0 else f"{megabytes}MB"


def postgresql_parameters(layout: ClusterLayout) -> dict[str, str]:
    """The parameters every member runs with: sizing by design §6.1, TLS 1.3 and SCRAM only, the
    logging and pgaudit settings of design §3.4, WAL archiving to the backup repository, and what
    streaming replication, synchronous commit and pg_rewind need.

    The WAL volume's budget (`layout.wal`, design §5.3): max_wal_size and wal_keep_size as it counts
    them, and max_slot_wal_keep_size, its cap on what a replica's slot may hold, so that a replica
    down or far behind cannot fill the primary's WAL volume. Past it the slot is invalidated at the
    next checkpoint and Patroni recreates it; the replica then fetches what it missed from the
    archive (`restore_command`). Where wal_keep_size is larger (a WAL volume under 9 GiB), it is the
    one that counts: PostgreSQL keeps at least that much whatever a slot needs.
    """
    sizing = layout.sizing
    wal = layout.wal
    return {
        "max_connections": str(sizing.max_connections),
        "shared_buffers": _size_from_mb(sizing.shared_buffers_mb),
        "effective_cache_size": _size_from_mb(sizing.effective_cache_size_mb),
        "work_mem": f"{sizing.work_mem_kb}kB",
        "ssl": "on",
        "ssl_min_protocol_version": "TLSv1.3",
        "ssl_prefer_server_ciphers": "on",
        "password_encryption": "scram-sha-256",
        "shared_preload_libraries": SHARED_PRELOAD_LIBRARIES,
        "logging_collector": "on",
        "log_filename": LOG_FILENAME,
        "log_truncate_on_rotation": "on",
        "log_rotation_age": "1d",
        "log_rotation_size": "100MB",
        "log_min_duration_statement": "1000",
        "log_connections": "on",
        "log_disconnections": "on",
        "log_duration": "on",
        "log_line_prefix": "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
        "log_statement": "ddl",
        "log_checkpoints": "on",
        "log_lock_waits": "on",
        "log_temp_files": "0",
        "pgaudit.log": "ddl, write, read",
        "pgaudit.log_catalog": "off",
        "pgaudit.log_parameter": "on",
        "pgaudit.log_relation": "on",
        "pgaudit.log_statement_once": "off",
        "archive_mode": "on",
        "archive_command": f"pgbackrest --stanza={BACKUP_STANZA} archive-push %p",
        "wal_level": "replica",
        "max_wal_size": _size_from_mb(wal.max_wal_size_mb),
        "wal_keep_size": _size_from_mb(wal.wal_keep_size_mb),
        "max_slot_wal_keep_size": _size_from_mb(wal.slot_keep_mb),
        "wal_log_hints": "on",
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "hot_standby": "on",
        "synchronous_commit": "on",
        "wal_sender_timeout": REPLICATION_TIMEOUT,
        "wal_receiver_timeout": REPLICATION_TIMEOUT,
    }


def member_parameters(layout: ClusterLayout, member: Member) -> dict[str, str]:
    """The parameters that name one member's files: its own server certificate (its peers verify
    it by its name), the cluster CA, and its socket and log directories.
    """
    tls = tls_files(layout, member.name)
    return {
        "ssl_cert_file": tls.cert,
        "ssl_key_file": tls.key,
        "ssl_ca_file": tls.ca,
        "unix_socket_directories": layout.paths.sockets,
        "log_directory": layout.paths.logs,
    }


def pg_hba(layout: ClusterLayout) -> list[str]:
    """Client authentication: over TCP only TLS with SCRAM, everything else rejected explicitly.

    On the socket, the postgres OS user (Patroni, the post-bootstrap script) is the superuser by
    peer; other local users and Patroni's local replication connection give their password. The
    rules do not depend on the layout: members and clients are verified by TLS and SCRAM, not by
    address.
    """
    del layout
    networks = ("0.0.0.0/0", "::/0")
    return [
        f"local all {User.SUPERUSER.value} peer",
        "local all all scram-sha-256",
        f"local replication {User.REPLICATION.value} scram-sha-256",
        *(f"hostssl replication {User.REPLICATION.value} {network} scram-sha-256" for network in networks),
        *(f"hostssl all all {network} scram-sha-256" for network in networks),
        *(f"hostnossl replication all {network} reject" for network in networks),
        *(f"hostnossl all all {network} reject" for network in networks),
    ]


def render_postgresql_conf(layout: ClusterLayout, member: Member) -> str:
    """A plain postgresql.conf with what Patroni would run `member` with: the shared and the
    member's parameters, its listen address and port. For running PostgreSQL without Patroni
    (the contract test does).
    """
    parameters = {
        **postgresql_parameters(layout),
        **member_parameters(layout, member),
        "listen_addresses": member.listen,
        "port": str(Port.POSTGRES),
    }
    lines = [f"{name} = '{_quote_conf_value(value)}'" for name, value in sorted(parameters.items())]
    return "\n".join(["# Rendered by dpc.render.postgres; Patroni writes the same parameters.", *lines]) + "\n"


def _quote_conf_value(value: str) -> str:
    """A value inside single quotes in postgresql.conf: quotes and backslashes doubled."""
    return value.replace("\\", "\\\\").replace("'", "''")


def _tls_connection(layout: ClusterLayout) -> dict[str, str]:
    """The TLS settings libpq uses for connections between members: the peer's certificate must be the
    cluster CA's and name the host connected to.
    """
    return {"sslmode": "verify-full", "sslrootcert": layout.paths.secret(CA_SECRET)}


def _dcs(layout: ClusterLayout) -> dict[str, Any]:
    """The dynamic configuration Patroni stores in etcd when it bootstraps the cluster.

    Failsafe mode keeps the primary writable while etcd has no quorum, as long as it reaches every
    member's REST API and each accepts it as leader (design §5.3). It cannot split the brain here:
    a member promotes only by taking the leader key, which nobody can while etcd is down; a member
    that still reaches etcd and sees the key expire holds back while the leader's `POST /failsafe`
    reached it within ttl; and a primary that cannot reach even one member demotes as without it,
    which is what a partitioned primary does. It applies at bootstrap; a running cluster takes it
    with `patronictl edit-config`.
    """
    return {
        **DCS_TIMING,
        "failsafe_mode": True,
        "maximum_lag_on_failover": MAXIMUM_LAG_ON_FAILOVER_BYTES,
        "synchronous_mode": True,
        "synchronous_mode_strict": layout.synchronous_mode_strict,
        "synchronous_node_count": 1,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": postgresql_parameters(layout),
        },
    }


def patroni_config(layout: ClusterLayout, member: Member, secrets: Mapping[str, str]) -> dict[str, Any]:
    """patroni.yml of one member, as data."""
    tls = tls_files(layout, member.name)
    connection = _tls_connection(layout)
    paths = layout.paths
    return {
        "scope": CLUSTER_SCOPE,
        "name": member.name,
        "etcd3": {
            "hosts": [f"{etcd.host}:{Port.ETCD_CLIENT}" for etcd in layout.etcd],
            "protocol": "https",
            "cacert": tls.ca,
            "cert": tls.cert,
            "key": tls.key,
        },
        "restapi": {
            "listen": f"{member.listen}:{Port.PATRONI_API}",
            "connect_address": f"{member.host}:{Port.PATRONI_API}",
            "certfile": tls.cert,
            "keyfile": tls.key,
            "cafile": tls.ca,
            "authentication": {"username": PATRONI_API_USER, "password": secrets["patroni_api_password"]},
        },
        "ctl": {"cacert": tls.ca, "certfile": tls.cert, "keyfile": tls.key},
        "bootstrap": {
            "dcs": _dcs(layout),
            "initdb": ["data-checksums", {"encoding": "UTF8"}, {"locale": "C.UTF-8"}, {"waldir": paths.wal}],
            "post_bootstrap": f"/bin/sh {paths.config}/{POST_BOOTSTRAP_FILE}",
        },
        "postgresql": {
            "listen": f"{member.listen}:{Port.POSTGRES}",
            "connect_address": f"{member.host}:{Port.POSTGRES}",
            "data_dir": paths.data,
            "basebackup": [{"checkpoint": "fast"}, {"waldir": paths.wal}],
            "bin_dir": paths.postgres_bin,
            "pgpass": f"{paths.sockets}/{PGPASS_FILE}",
            "use_unix_socket": True,
            "use_unix_socket_repl": True,
            "authentication": {
                "superuser": {"username": User.SUPERUSER.value, "password": secrets["postgres_superuser_password"], **connection},
                "replication": {"username": User.REPLICATION.value, "password": secrets["replication_password"], **connection},
                "rewind": {"username": User.REWIND.value, "password": secrets["rewind_password"], **connection},
            },
            "parameters": member_parameters(layout, member),
            "pg_hba": pg_hba(layout),
            "recovery_conf": {"restore_command": f'pgbackrest --stanza={BACKUP_STANZA} archive-get %f "%p"'},
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }


def render_patroni(layout: ClusterLayout, member: Member, secrets: Mapping[str, str]) -> str:
    """patroni.yml of one member. It carries the API, superuser, replication and rewind passwords,
    so it is delivered as a Docker secret.
    """
    return dump_yaml(patroni_config(layout, member, secrets))


def _read_secret_variable(layout: ClusterLayout, variable: str, secret: str) -> str:
    """A psql meta-command that reads a secret file into a psql variable at run time."""
    return f"\\set {variable} `cat {shlex.quote(layout.paths.secret(secret))}`"


_APPLICATION_ROLES = (
    (User.APP, "app_user_password", "app_password"),
    (User.READONLY, "readonly_user_password", "readonly_password"),
    (User.EXPORTER, "postgres_exporter_password", "exporter_password"),
    (User.PGBOUNCER_AUTH, "pgbouncer_auth_password", "pgbouncer_auth_password"),
)
"""The roles the script creates with their password's secret and the psql variable holding it.
Patroni itself creates the replication and rewind roles after the script, from patroni.yml."""

_GRANTS_SQL = f"""\
REVOKE ALL ON DATABASE {DATABASE_NAME} FROM PUBLIC;
GRANT CONNECT ON DATABASE {DATABASE_NAME} TO {User.APP}, {User.READONLY}, {User.EXPORTER}, {User.PGBOUNCER_AUTH};
GRANT pg_monitor TO {User.EXPORTER};
\\connect {DATABASE_NAME}
{"".join(f"CREATE EXTENSION IF NOT EXISTS {extension};{chr(10)}" for extension in EXTENSIONS)}\
GRANT USAGE ON SCHEMA public TO {User.APP}, {User.READONLY};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {User.APP};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {User.APP};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {User.READONLY};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {User.APP};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {User.APP};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {User.READONLY};
CREATE SCHEMA pgbouncer;
REVOKE ALL ON SCHEMA pgbouncer FROM PUBLIC;
GRANT USAGE ON SCHEMA pgbouncer TO {User.PGBOUNCER_AUTH};
CREATE FUNCTION pgbouncer.get_auth(p_username text) RETURNS TABLE (username text, password text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
    AS $$SELECT rolname::text, rolpassword FROM pg_catalog.pg_authid
          WHERE rolname = p_username AND rolcanlogin AND NOT rolsuper AND NOT rolreplication$$;
REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO {User.PGBOUNCER_AUTH};
"""
"""Design §3.3's grants, the extensions, and PgBouncer's lookup function. The function hands out
SCRAM verifiers of ordinary login roles only: never a superuser's or a replication role's."""

PGBOUNCER_AUTH_QUERY = "SELECT username, password FROM pgbouncer.get_auth($1)"
"""How PgBouncer, logged in as pgbouncer_auth, looks up a client's SCRAM verifier."""


def render_post_bootstrap(layout: ClusterLayout) -> str:
    """The script Patroni runs once on a new cluster's first primary, with a connection string as
    its argument: the application's roles, database, grants and extensions.

    It holds no password: psql reads each from its secret file at run time. The session turns off
    statement logging and auditing first, so no password reaches the server log.
    """
    role_sql = [
        line
        for user, secret, variable in _APPLICATION_ROLES
        for line in (_read_secret_variable(layout, variable, secret), f"CREATE ROLE {user} LOGIN PASSWORD :'{variable}';")
    ]
    sql = "\n".join(
        [
            "SET log_statement = 'none';",
            "SET log_min_duration_statement = -1;",
            "SET log_min_error_statement = 'panic';",
            "SET pgaudit.log = 'none';",
            *role_sql,
            f"CREATE DATABASE {DATABASE_NAME} ENCODING 'UTF8';",
        ]
    )
    return f"""\
#!/bin/sh
# Patroni's post_bootstrap: creates the application's roles, database, grants and extensions on the
# new cluster's first primary. Patroni passes the superuser's connection string as the argument.
set -eu
connection="$1"
exec {shlex.quote(layout.paths.postgres_bin)}/psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 --dbname "$connection" <<'SQL'
{sql}
{_GRANTS_SQL}SQL
"""
