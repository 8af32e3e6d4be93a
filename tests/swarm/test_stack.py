"""The database stack as deployed on the multi-node Swarm: placement, files, volumes, health,
the Patroni cluster, the client paths over TLS, backups, and monitoring (issue 9).
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from dpc.cluster import BACKUP_STANZA, DATABASE_NAME, Port, User
from dpc.render.prometheus import ALERT_RULES_FILE
from dpc.services import BUILT_IMAGES
from dpc.swarm_spec import SwarmService
from engine.deploy import container_of, deploy, exec_in, nodes_running, patroni_cluster, task_states
from engine.lab import Deployment
from engine.netns import NamespaceClient
from tests.cluster.client import query, wait_until

pytestmark = pytest.mark.swarm

CALL_TIMEOUT = 30.0


def _node_facts(deployment: Deployment) -> dict[str, dict[str, str]]:
    """What placement constraints read of each node: its role and labels, as the Swarm holds them."""
    facts: dict[str, dict[str, str]] = {}
    by_id = {node.engine.get("/info")["Swarm"]["NodeID"]: node.name for node in deployment.nodes}
    for listed in deployment.manager.get("/nodes"):
        name = by_id[listed["ID"]]
        facts[name] = {"node.role": listed["Spec"]["Role"]} | {f"node.labels.{k}": v for k, v in listed["Spec"].get("Labels", {}).items()}
    return facts


def _satisfies(facts: dict[str, str], constraint: str) -> bool:
    key, operator, value = constraint.split(maxsplit=2)
    assert operator in ("==", "!="), constraint
    return (facts.get(key) == value) == (operator == "==")


def _running(deployment: Deployment, service: SwarmService) -> list[str]:
    return sorted(s.node for s in task_states(deployment.manager, deployment.nodes, service.name) if s.state == "running")


def test_every_service_runs_where_its_constraints_place_it(deployment: Deployment) -> None:
    facts = _node_facts(deployment)
    for service in deployment.objects.services:
        nodes = _running(deployment, service)
        if service.replicas is None:
            assert nodes == sorted(facts), f"{service.name} (global) runs on {nodes}"
            continue
        assert len(nodes) == service.replicas, f"{service.name}: {nodes}"
        for node in nodes:
            assert all(_satisfies(facts[node], c) for c in service.constraints), f"{service.name} on {node} ({facts[node]}) breaks {service.constraints}"
        if service.max_replicas_per_node == 1:
            assert len(set(nodes)) == len(nodes), f"{service.name} has two tasks on one node: {nodes}"
    patroni = {s.name: _running(deployment, s) for s in deployment.objects.services if s.name.startswith("patroni-")}
    assert patroni == {f"patroni-{i}": [f"worker-{i}"] for i in (1, 2, 3)}


def test_only_the_vendor_images_that_cannot_be_had_are_left_out(deployment: Deployment) -> None:
    deployed = {s.name for s in deployment.objects.services}
    for name, reason in deployment.objects.left_out.items():
        assert name not in deployed
        assert "cannot be had" in reason
    images = {s.image for s in deployment.objects.services}
    assert set(BUILT_IMAGES) <= images, "every service of the project's own images is deployed"


def test_a_second_deploy_changes_nothing(deployment: Deployment) -> None:
    versions = {s["Spec"]["Name"]: s["Version"]["Index"] for s in deployment.manager.get("/services")}
    deploy(deployment.manager, deployment.objects, deployment.secret_values, deployment.images, deployment.naming_key)
    after = {s["Spec"]["Name"]: s["Version"]["Index"] for s in deployment.manager.get("/services")}
    assert after == versions, "the engines hold exactly the specs the translation gives: redeploying them updates nothing"


def test_secrets_and_configs_are_files_with_their_owners_and_modes(deployment: Deployment) -> None:
    for service in deployment.objects.services:
        files = (*service.secrets, *service.configs)
        if not files:
            continue
        node, container = container_of(deployment.nodes, deployment.manager, service.name)
        result = exec_in(node, container, ["stat", "-L", "-c", "%u %g %a %n", *(f.target for f in files)])
        assert result.returncode == 0, f"{service.name}: {result.stderr}"
        seen = {line.split(" ", 3)[3]: line.split(" ", 3)[:3] for line in result.stdout.splitlines()}
        for f in files:
            assert seen[f.target] == [f.uid, f.gid, f"{f.mode:o}"], f"{service.name}: {f.target} is {seen[f.target]}"


def test_each_member_keeps_its_data_on_its_nodes_volume(deployment: Deployment) -> None:
    for index in (1, 2, 3):
        node = deployment.node(f"worker-{index}")
        data = node.root / "mnt" / "postgres-cluster" / f"patroni-{index}"
        assert (data / "pgdata" / "PG_VERSION").read_text().strip() == "15"
        assert (node.root / "mnt" / "postgres-cluster" / f"patroni-{index}-wal" / "pg_wal").is_dir()
        assert data.stat().st_uid == 999


def test_health_checks_pass(deployment: Deployment) -> None:
    for service in deployment.objects.services:
        for state in task_states(deployment.manager, deployment.nodes, service.name):
            if service.image == "postgres":
                assert state.health == "healthy", f"{service.name} on {state.node}: {state.health}"


def test_the_cluster_has_a_leader_a_synchronous_and_an_asynchronous_replica(deployment: Deployment) -> None:
    cluster = patroni_cluster(deployment.nodes, deployment.manager, "patroni-1")
    roles = sorted((m["role"], m["state"]) for m in cluster["members"])
    assert roles == [("leader", "running"), ("replica", "streaming"), ("sync_standby", "streaming")]


def _through_haproxy(deployment: Deployment, ca_file: Path, manager: str, **extra: str) -> dict[str, Any]:
    return {
        "host": deployment.node(manager).address, "port": Port.HAPROXY_PRIMARY, "dbname": DATABASE_NAME,
        "user": User.SUPERUSER.value, "password": deployment.secret_values["postgres_superuser_password"],
        "sslmode": "verify-ca", "sslrootcert": str(ca_file), **extra,
    }  # fmt: skip


def test_clients_write_through_either_haproxy_and_read_through_pgbouncer_over_tls(deployment: Deployment, ca_file: Path, app_node: NamespaceClient) -> None:
    marker = f"swarm-{time.time_ns()}"
    haproxies = [n.name for n in nodes_running(deployment.manager, deployment.nodes, deployment.objects.layout.haproxy.name)]
    assert len(haproxies) == 2
    for manager in haproxies:
        conninfo = _through_haproxy(deployment, ca_file, manager)
        app_node.call(query, conninfo, "CREATE TABLE IF NOT EXISTS swarm_probe (marker text, via text)", timeout=CALL_TIMEOUT)
        app_node.call(query, conninfo, "INSERT INTO swarm_probe VALUES (%s, %s)", (marker, manager), timeout=CALL_TIMEOUT)
        ssl = app_node.call(query, conninfo, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", timeout=CALL_TIMEOUT)
        assert ssl == [(True, "TLSv1.3")]
        app_node.call(query, conninfo, f"GRANT SELECT ON swarm_probe TO {User.APP.value}", timeout=CALL_TIMEOUT)
    through_pgbouncer = {
        "host": "pgbouncer", "hostaddr": deployment.node("app-2").address, "port": Port.PGBOUNCER, "dbname": DATABASE_NAME,
        "user": User.APP.value, "password": deployment.secret_values["app_user_password"], "sslmode": "verify-full", "sslrootcert": str(ca_file),
    }  # fmt: skip
    select = "SELECT via FROM swarm_probe WHERE marker = %s ORDER BY via"
    rows = wait_until("the rows through PgBouncer", lambda: app_node.call(query, through_pgbouncer, select, (marker,), timeout=CALL_TIMEOUT), timeout=60)
    assert rows == [(name,) for name in sorted(haproxies)]


def test_a_client_without_tls_is_refused(deployment: Deployment, ca_file: Path, app_node: NamespaceClient) -> None:
    def connect() -> str:
        try:
            haproxy = nodes_running(deployment.manager, deployment.nodes, deployment.objects.layout.haproxy.name)[0].name
            psycopg.connect(**_through_haproxy(deployment, ca_file, haproxy, sslmode="disable"), connect_timeout=5).close()  # pyright: ignore[reportArgumentType]
        except psycopg.OperationalError as error:
            return str(error)
        return "connected"

    assert "no encryption" in app_node.call(connect, timeout=CALL_TIMEOUT)


def test_the_backup_agent_takes_a_full_backup(deployment: Deployment) -> None:
    node, container = container_of(deployment.nodes, deployment.manager, "backup")
    check = ["pgbackrest", f"--stanza={BACKUP_STANZA}", "check"]
    wait_until("the agent's stanza", lambda: exec_in(node, container, check).returncode == 0 or None, timeout=120)
    taken = exec_in(node, container, ["pgbackrest", f"--stanza={BACKUP_STANZA}", "--repo=1", "--type=full", "backup"], timeout=300)
    assert taken.returncode == 0, taken.stderr[-2000:]
    info = exec_in(node, container, ["pgbackrest", f"--stanza={BACKUP_STANZA}", "--output=json", "info"])
    backups = json.loads(info.stdout)[0]["backup"]
    assert [b["type"] for b in backups][-1] == "full"
    assert backups[-1]["error"] is False


def _prometheus(deployment: Deployment, app_node: NamespaceClient, path: str) -> Any:
    nodes = _running(deployment, next(s for s in deployment.objects.services if s.name == "prometheus"))
    url = f"http://{deployment.node(nodes[0]).address}:{Port.PROMETHEUS}{path}"

    def get() -> Any:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    return app_node.call(get, timeout=CALL_TIMEOUT)


def test_prometheus_scrapes_every_target_of_every_deployed_service(deployment: Deployment, app_node: NamespaceClient) -> None:
    left_out = set(deployment.objects.left_out)
    left_out_jobs = {"docker"} if "cadvisor" in left_out else set()

    failing: list[str] = ["no scrape yet"]

    def all_up() -> bool | None:
        targets = _prometheus(deployment, app_node, "/api/v1/targets")["data"]["activeTargets"]
        missing = {"postgres", "patroni", "etcd", "haproxy", "redis", "node", "alertmanager", "prometheus"} - {t["labels"]["job"] for t in targets}
        failing[:] = [f"job {job} has no target" for job in sorted(missing)] + [
            f"{t['labels']['job']} {t['scrapeUrl']}: {t['health']} {t['lastError']}"
            for t in targets
            if t["health"] != "up" and t["labels"]["job"] not in left_out_jobs
        ]
        return True if not failing else None

    try:
        wait_until("every target scraped", all_up, timeout=90)
    except TimeoutError:
        pytest.fail(f"targets not up: {failing}")


def test_the_alert_rules_are_loaded(deployment: Deployment, app_node: NamespaceClient) -> None:
    rendered = yaml.safe_load(deployment.objects.configs[ALERT_RULES_FILE])
    expected = sorted(rule["alert"] for group in rendered["groups"] for rule in group["rules"])
    groups = _prometheus(deployment, app_node, "/api/v1/rules")["data"]["groups"]
    assert sorted(rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting") == expected
