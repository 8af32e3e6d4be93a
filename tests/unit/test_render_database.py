"""The database renderers on the shipped stacks: the seed's figures, Patroni's timing rules, where
secrets may appear, determinism, and golden files of the prod stack.

Golden files live under tests/golden/database/; DPC_UPDATE_GOLDEN=1 rewrites them after an
intended change (review the diff).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from dpc.cluster import MIN_POOLED_CLIENTS, PASSWORD_SECRETS, ClusterLayout, Member
from dpc.config import settings_from_stack_file
from dpc.render.etcd import render_etcd
from dpc.render.haproxy import render_haproxy, render_haproxy_stats_auth
from dpc.render.pgbouncer import DIRECT_CONNECTIONS, render_pgbouncer, render_pgbouncer_userlist, server_connections_per_pgbouncer
from dpc.render.postgres import (
    DCS_TIMING,
    pg_hba,
    postgresql_parameters,
    render_patroni,
    render_post_bootstrap,
    render_postgresql_conf,
)
from dpc.render.redis import render_redis, render_redis_acl
from dpc.sizing import wal_budget
from dpc.topology import derive
from tests.golden_files import assert_matches_golden, assert_no_stale_golden_files

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = PROJECT_ROOT / "tests" / "golden" / "database"
STACKS = ("prod", "staging", "dev")
SECRETS = {name: f"fake-{name.replace('_', '-')}-value" for name in PASSWORD_SECRETS}


def layout_of(stack: str) -> ClusterLayout:
    return derive(settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml")).layout


def plain_files(layout: ClusterLayout) -> dict[str, str]:
    """Files rendered without secrets: Docker configs."""
    return {
        **{f"etcd-{member.name}.yml": render_etcd(layout, member) for member in layout.etcd},
        **{f"postgresql-{member.name}.conf": render_postgresql_conf(layout, member) for member in layout.patroni},
        "post-bootstrap.sh": render_post_bootstrap(layout),
        "haproxy.cfg": render_haproxy(layout),
        "pgbouncer.ini": render_pgbouncer(layout),
        "redis.conf": render_redis(layout),
    }


def secret_files(layout: ClusterLayout) -> dict[str, str]:
    """Files rendered from the secret values: Docker secrets."""
    return {
        **{f"patroni-{member.name}.yml": render_patroni(layout, member, SECRETS) for member in layout.patroni},
        "haproxy-stats-auth.cfg": render_haproxy_stats_auth(SECRETS),
        "pgbouncer-userlist.txt": render_pgbouncer_userlist(SECRETS),
        "redis-acl": render_redis_acl(SECRETS),
    }


def rendered(stack: str) -> dict[str, str]:
    layout = layout_of(stack)
    return {**plain_files(layout), **secret_files(layout)}


@pytest.fixture(scope="module")
def prod() -> ClusterLayout:
    return layout_of("prod")


# --- seed figures --------------------------------------------------------------------------------


def test_prod_postgresql_is_sized_by_seed_6_3_for_r6i_2xlarge(prod: ClusterLayout) -> None:
    parameters = postgresql_parameters(prod)
    assert parameters["max_connections"] == "850"  # 500 users × 1.5 + 100
    assert parameters["shared_buffers"] == "16GB"  # 64 GiB / 4
    assert parameters["effective_cache_size"] == "48GB"  # 64 GiB × 3/4
    assert parameters["work_mem"] == f"{(64 - 16) * 1024 * 1024 // 850 // 2}kB"


def test_parameters_carry_the_seeds_security_logging_and_replication_settings(prod: ClusterLayout) -> None:
    parameters = postgresql_parameters(prod)
    assert parameters["ssl"] == "on"
    assert parameters["ssl_min_protocol_version"] == "TLSv1.3"
    assert parameters["password_encryption"] == "scram-sha-256"
    assert parameters["shared_preload_libraries"] == "pgaudit,pg_stat_statements"
    assert parameters["pgaudit.log"] == "ddl, write, read"
    assert parameters["log_min_duration_statement"] == "1000"
    assert parameters["archive_mode"] == "on"
    assert parameters["archive_command"] == "pgbackrest --stanza=main archive-push %p"
    assert parameters["wal_log_hints"] == "on"
    assert parameters["synchronous_commit"] == "on"


@pytest.mark.parametrize("stack", STACKS)
def test_the_wal_volume_budget_is_rendered_from_the_stacks_wal_volume(stack: str) -> None:
    """Design §5.3: the slot cap and the WAL PostgreSQL keeps are the budget's, derived once from
    dpc:storage.wal.sizeGb and passed through the layout."""
    layout = layout_of(stack)
    size_gb = settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml").storage.wal.size_gb
    assert layout.wal == wal_budget(size_gb)
    parameters = yaml.safe_load(render_patroni(layout, layout.patroni[0], SECRETS))["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert parameters["max_slot_wal_keep_size"] == f"{layout.wal.slot_keep_mb}MB"
    assert (parameters["max_wal_size"], parameters["wal_keep_size"]) == ("1GB", "2GB")


def test_prods_slot_cap_is_about_a_third_of_its_wal_volume(prod: ClusterLayout) -> None:
    assert postgresql_parameters(prod)["max_slot_wal_keep_size"] == "177408MB"  # 173.25 GiB of 500


# --- Patroni -------------------------------------------------------------------------------------


def test_patroni_timing_is_within_patronis_limits_and_fails_over_within_the_rto() -> None:
    ttl, loop_wait, retry_timeout = DCS_TIMING["ttl"], DCS_TIMING["loop_wait"], DCS_TIMING["retry_timeout"]
    assert ttl >= 20
    assert loop_wait + 2 * retry_timeout <= ttl
    assert ttl + loop_wait < 30, "a dead primary's key expires within ttl, a replica acts within loop_wait"


@pytest.mark.parametrize("stack", STACKS)
def test_synchronous_replication_is_strict_in_prod_only(stack: str) -> None:
    layout = layout_of(stack)
    config = yaml.safe_load(render_patroni(layout, layout.patroni[0], SECRETS))
    dcs = config["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True
    assert dcs["synchronous_mode_strict"] is (stack == "prod")
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["ttl"] >= 20


def test_each_member_listens_on_its_own_address_and_uses_its_own_certificate() -> None:
    """The smoke run's layout: members addressed by IP, each with its own listen address."""
    members = tuple(Member(f"patroni-{index}", f"10.99.0.{index}", f"10.99.0.{index}") for index in (1, 2, 3))
    layout = replace(layout_of("dev"), patroni=members, etcd=tuple(Member(f"etcd-{i}", f"10.99.0.{i}", f"10.99.0.{i}") for i in (1, 2, 3)))
    for member in members:
        config = yaml.safe_load(render_patroni(layout, member, SECRETS))
        assert config["name"] == member.name
        assert config["postgresql"]["listen"] == f"{member.listen}:5432"
        assert config["postgresql"]["connect_address"] == f"{member.host}:5432"
        assert config["restapi"]["connect_address"] == f"{member.host}:8008"
        assert config["postgresql"]["parameters"]["ssl_cert_file"].endswith(f"/{member.name}_tls_cert")
        assert config["etcd3"]["hosts"] == ["10.99.0.1:2379", "10.99.0.2:2379", "10.99.0.3:2379"]
    assert "resolvers" not in render_haproxy(layout)


def test_shared_parameters_name_no_host_path(prod: ClusterLayout) -> None:
    """Paths differ per host in the smoke run; a path in the DCS would be the first member's for all."""
    assert not [value for value in postgresql_parameters(prod).values() if value.startswith("/")]


# --- pg_hba --------------------------------------------------------------------------------------


def test_pg_hba_allows_tcp_only_over_tls_with_scram(prod: ClusterLayout) -> None:
    rules = [line.split() for line in pg_hba(prod)]
    assert all(rule[-1] in {"scram-sha-256", "reject", "peer"} for rule in rules)
    assert all(rule[-1] == "reject" for rule in rules if rule[0] == "hostnossl")
    assert not [rule for rule in rules if rule[0] in {"host", "hostgssenc", "hostnogssenc"}]
    assert ["hostnossl", "all", "all", "0.0.0.0/0", "reject"] in rules
    assert ["hostnossl", "all", "all", "::/0", "reject"] in rules
    assert ["hostnossl", "replication", "all", "0.0.0.0/0", "reject"] in rules
    assert [rule for rule in rules if rule[-1] == "peer"] == [["local", "all", "postgres", "peer"]]


# --- PgBouncer -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_pgbouncers_take_min_pooled_clients_and_never_exceed_max_connections(stack: str) -> None:
    layout = layout_of(stack)
    assert layout.pgbouncer_max_client_connections * layout.pgbouncer_replicas >= MIN_POOLED_CLIENTS
    pool = server_connections_per_pgbouncer(layout)
    assert pool * layout.pgbouncer_replicas + DIRECT_CONNECTIONS <= layout.sizing.max_connections
    ini = render_pgbouncer(layout)
    assert f"max_db_connections = {pool}\n" in ini
    assert f"default_pool_size = {pool}\n" in ini
    assert "reserve_pool_size = 0\n" in ini
    assert f"max_client_conn = {layout.pgbouncer_max_client_connections}\n" in ini


def test_pgbouncer_userlist_quotes_the_password() -> None:
    assert render_pgbouncer_userlist({"pgbouncer_auth_password": 'a"b'}) == '"pgbouncer_auth" "a""b"\n'


# --- Redis and HAProxy ---------------------------------------------------------------------------


def test_redis_is_tls_only_and_keeps_nothing_on_disk(prod: ClusterLayout) -> None:
    settings = dict(line.split(" ", 1) for line in render_redis(prod).splitlines() if not line.startswith("#"))
    assert settings["port"] == "0"
    assert settings["tls-port"] == "6379"
    assert settings["tls-protocols"] == '"TLSv1.3"'
    assert settings["appendonly"] == "no"
    assert settings["save"] == '""'
    assert settings["maxmemory"] == f"{prod.cache_memory_mb}mb"
    assert settings["maxmemory-policy"] == "allkeys-lru"


def test_redis_acl_holds_the_password_hash_only() -> None:
    acl = render_redis_acl(SECRETS)
    assert SECRETS["redis_password"] not in acl
    assert f"#{hashlib.sha256(SECRETS['redis_password'].encode()).hexdigest()}" in acl


def test_haproxy_routes_by_patronis_health_checks(prod: ClusterLayout) -> None:
    config = render_haproxy(prod)
    assert "http-check send meth GET uri /primary" in config
    assert "http-check send meth GET uri /replica" in config
    assert config.count("check port 8008 check-ssl verify required") == 2 * len(prod.patroni)
    assert "on-marked-down shutdown-sessions" in config
    assert "nameserver docker 127.0.0.11:53" in config
    assert "http-request use-service prometheus-exporter" in config


# --- secrets, determinism, golden files ----------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_in_the_plain_files_and_each_secret_file_holds_its_own(stack: str) -> None:
    layout = layout_of(stack)
    for name, content in plain_files(layout).items():
        leaked = [secret for secret, value in SECRETS.items() if value in content]
        assert not leaked, f"{name} holds {leaked}"
    secret_bearing = secret_files(layout)
    patroni = secret_bearing["patroni-patroni-1.yml"]
    for secret in ("patroni_api_password", "postgres_superuser_password", "replication_password", "rewind_password"):
        assert SECRETS[secret] in patroni
    assert SECRETS["haproxy_stats_password"] in secret_bearing["haproxy-stats-auth.cfg"]
    assert SECRETS["pgbouncer_auth_password"] in secret_bearing["pgbouncer-userlist.txt"]


@pytest.mark.parametrize("stack", STACKS)
def test_rendering_is_deterministic(stack: str) -> None:
    assert rendered(stack) == rendered(stack)


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_files_match_their_golden_files(stack: str) -> None:
    files = rendered(stack)
    directory = GOLDEN_DIR / stack
    assert_no_stale_golden_files(directory, set(files))
    for name, content in files.items():
        assert_matches_golden(directory / name, content, f"{stack}/{name}")
