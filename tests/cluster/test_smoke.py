"""The rendered Patroni, etcd, HAProxy and PgBouncer files form a working TLS-only cluster.

Three etcd members, three Patroni/PostgreSQL 15 members, HAProxy and PgBouncer, each on its own
network namespace, started from the very files, secrets and certificates the program deploys
(see conftest.py and hosts.py). From a client namespace the tests check that:

- Patroni's REST API shows a leader and two streaming replicas, with the synchronous mode the
  rendered configuration asks for;
- HAProxy's primary route reaches the leader and its replica route a replica, over TLS 1.3;
- the leader streams to both replicas over TLS, as many of them synchronous as configured;
- a write by app_user through PgBouncer (TLS, certificate verified by name) is committed on the
  leader and visible on a replica through HAProxy's replica route;
- each of the two PgBouncers (one per app host, from the same rendered files) serves app_user over
  TLS 1.3, with the file descriptor limit its max_client_conn needs;
- a plaintext connection to PostgreSQL, to HAProxy and to PgBouncer is refused, with the right
  password, so that it is the lack of TLS that is refused.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from dpc.cluster import DATABASE_NAME, Port, User
from dpc.render.pgbouncer import READONLY_DATABASE, open_files_needed
from dpc.services import patroni_config_secret
from engine.netns import open_files_limit
from tests.cluster.client import refusal, wait_until
from tests.cluster.hosts import APPS, HAPROXY_HOST, WORKERS
from tests.cluster.smoke import CALL_TIMEOUT, REPLICA_ROLES, SYNCHRONOUS_ROLES, Smoke

pytestmark = pytest.mark.cluster


def _rendered_dcs(smoke: Smoke) -> dict[str, Any]:
    """The bootstrap DCS settings of the rendered patroni.yml that worker-1 was started with."""
    host = smoke.cluster.hosts[WORKERS[0]]
    with open(host.paths.secret(patroni_config_secret(smoke.cluster.layout.patroni[0]))) as rendered:
        return yaml.safe_load(rendered)["bootstrap"]["dcs"]


def _expected_sync_state(dcs: dict[str, Any]) -> str:
    """What pg_stat_replication calls a synchronous standby under the rendered synchronous mode."""
    return "quorum" if dcs["synchronous_mode"] == "quorum" else "sync"


def test_patroni_shows_a_leader_and_two_streaming_replicas(smoke: Smoke) -> None:
    dcs = _rendered_dcs(smoke)
    for worker in WORKERS:
        members: list[dict[str, Any]] = smoke.api(worker, "/cluster")["members"]
        roles = sorted(m["role"] for m in members)
        assert [m["state"] for m in members if m["role"] in REPLICA_ROLES] == ["streaming", "streaming"], members
        synchronous = [m for m in members if m["role"] in SYNCHRONOUS_ROLES]
        assert len(synchronous) == dcs["synchronous_node_count"], roles
        assert roles.count("leader") == 1, roles
    config: dict[str, Any] = smoke.api(WORKERS[0], "/config")
    assert (config["synchronous_mode"], config["synchronous_mode_strict"]) == (dcs["synchronous_mode"], smoke.cluster.layout.synchronous_mode_strict)


def test_every_member_keeps_its_wal_on_the_wal_volume(smoke: Smoke) -> None:
    """The leader from initdb, the replicas from pg_basebackup: both are told where pg_wal goes."""
    for worker in WORKERS:
        paths = smoke.cluster.hosts[worker].paths
        pg_wal = Path(paths.data) / "pg_wal"
        assert pg_wal.is_symlink() and pg_wal.resolve() == Path(paths.wal).resolve(), worker


def test_haproxy_routes_reach_the_leader_and_a_replica_over_tls(smoke: Smoke) -> None:
    leader = smoke.leader()
    statement = "SELECT pg_is_in_recovery(), host(inet_server_addr()), s.ssl, s.version FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()"
    assert smoke.sql(smoke.through_haproxy(Port.HAPROXY_PRIMARY), statement) == [(False, leader["host"], True, "TLSv1.3")]
    ((in_recovery, address, ssl, version),) = smoke.sql(smoke.through_haproxy(Port.HAPROXY_REPLICAS), statement)
    assert (in_recovery, ssl, version) == (True, True, "TLSv1.3")
    assert address in {smoke.cluster.address(worker) for worker in WORKERS} - {leader["host"]}


def test_leader_streams_to_both_replicas_over_tls_one_synchronously(smoke: Smoke) -> None:
    dcs = _rendered_dcs(smoke)
    rows = smoke.sql(
        smoke.through_haproxy(Port.HAPROXY_PRIMARY),
        "SELECT r.application_name, r.state, r.sync_state, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) ORDER BY 1",
    )
    replicas = {m.name for m in smoke.cluster.layout.patroni} - {smoke.leader()["name"]}
    assert {name for name, *_ in rows} == replicas, rows
    assert all(state == "streaming" and ssl for _, state, _, ssl in rows), rows
    sync_states = sorted(sync_state for _, _, sync_state, _ in rows)
    expected = _expected_sync_state(dcs)
    assert sync_states.count(expected) == dcs["synchronous_node_count"] == 1, rows
    assert sync_states.count("async") == len(rows) - 1, rows


def test_write_through_pgbouncer_is_visible_on_a_replica(smoke: Smoke) -> None:
    """DDL is the superuser's (design §3.3 grants app_user only SELECT, INSERT, UPDATE, DELETE; the
    default privileges extend them to new tables); app_user's INSERT goes through PgBouncer."""
    table = f"smoke_{secrets.token_hex(4)}"
    primary = smoke.through_haproxy(Port.HAPROXY_PRIMARY)
    smoke.sql(primary, f"CREATE TABLE {table} (id int PRIMARY KEY, note text NOT NULL)")
    note = secrets.token_hex(8)
    app_user = smoke.through_pgbouncer(User.APP, "app_user_password")
    smoke.sql(app_user, f"INSERT INTO {table} VALUES (1, %s)", (note,))
    assert smoke.sql(app_user, f"SELECT note FROM {table}") == [(note,)]
    assert smoke.sql(primary, f"SELECT note FROM {table}") == [(note,)]
    replica = smoke.through_haproxy(Port.HAPROXY_REPLICAS)
    seen = wait_until("the row on a replica", lambda: smoke.sql(replica, f"SELECT note, pg_is_in_recovery() FROM {table}") or None, timeout=10)
    assert seen == [(note, True)]
    readonly = smoke.through_pgbouncer(User.READONLY, "readonly_user_password", database=READONLY_DATABASE)
    assert smoke.sql(readonly, f"SELECT note, pg_is_in_recovery() FROM {table}") == [(note, True)]


@pytest.mark.parametrize("app", APPS)
def test_each_pgbouncer_serves_app_user_over_tls_with_enough_file_descriptors(smoke: Smoke, app: str) -> None:
    statement = "SELECT current_user, s.ssl, s.version FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()"
    assert smoke.sql(smoke.through_pgbouncer(User.APP, "app_user_password", app=app), statement) == [(User.APP.value, True, "TLSv1.3")]
    (pid,) = smoke.cluster.network.processes(app, "pgbouncer")
    expected = open_files_needed(smoke.cluster.hosts[app].layout)
    assert open_files_limit(pid) == (expected, expected)
    assert expected > smoke.cluster.layout.pgbouncer_max_client_connections


def test_plaintext_connections_are_refused(smoke: Smoke) -> None:
    cluster = smoke.cluster
    password = cluster.values["postgres_superuser_password"]
    plaintext = {"dbname": DATABASE_NAME, "user": User.SUPERUSER.value, "password": password, "sslmode": "disable"}
    leader_address = smoke.leader()["host"]
    direct = smoke.client.call(refusal, {**plaintext, "host": leader_address, "port": Port.POSTGRES}, timeout=CALL_TIMEOUT)
    assert "pg_hba.conf rejects connection" in direct and "no encryption" in direct, direct
    through_haproxy = smoke.client.call(refusal, {**plaintext, "host": cluster.address(HAPROXY_HOST), "port": Port.HAPROXY_PRIMARY}, timeout=CALL_TIMEOUT)
    assert "pg_hba.conf rejects connection" in through_haproxy and "no encryption" in through_haproxy, through_haproxy
    pgbouncer = smoke.client.call(refusal, smoke.through_pgbouncer(User.APP, "app_user_password", sslmode="disable"), timeout=CALL_TIMEOUT)
    assert "SSL required" in pgbouncer, pgbouncer
