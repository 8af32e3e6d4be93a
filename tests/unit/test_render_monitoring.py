"""The monitoring files as data: scrape jobs, alert rules and their tests, Alertmanager routes,
Grafana dashboards, and every PromQL query against the metrics the deployed exporters expose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dpc.cluster import CA_SECRET, ClusterLayout
from dpc.config import settings_from_stack_file
from dpc.render.alertmanager import render_alertmanager
from dpc.render.grafana import (
    DATASOURCE_UID,
    GRID_COLUMNS,
    admin_password_file,
    grafana_dashboards,
    render_grafana_dashboard,
    render_grafana_dashboard_provider,
    render_grafana_datasources,
)
from dpc.render.prometheus import (
    render_alert_rule_tests,
    render_alert_rules,
    render_prometheus,
    retention,
)
from dpc.topology import derive
from tests.contract.metrics.catalog import catalogs, exposed_metrics, metric_names

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STACKS = ("prod", "staging", "dev")


def layout_of(stack: str) -> ClusterLayout:
    return derive(settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml")).layout


@pytest.fixture(params=STACKS)
def layout(request: pytest.FixtureRequest) -> ClusterLayout:
    return layout_of(str(request.param))


def rules_of(layout: ClusterLayout) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(render_alert_rules(layout))["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[tuple[str, str]]:
    return [(name, target["expr"]) for name, board in grafana_dashboards().items() for panel in board["panels"] for target in panel["targets"]]


# --- the PromQL tokenizer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("pg_up == 0", {"pg_up"}),
        ('up{job="etcd"} == 0', {"up"}),
        ("sum by (instance) (rate(a_total[5m])) / on (instance) group_left (mode) b > 0.8", {"a_total", "b"}),
        ('rate(x{le="0.5",path=~"/a{2}|b"}[5m:1m] offset 1h) * 1e3 and bool y', {"x", "y"}),
        ("time() - max(ts{type=\"full\"}) > 691200 or absent(ts)", {"ts"}),
        ("(sum(p) or vector(0)) == 0 unless ignoring (job) q", {"p", "q"}),
        ("histogram_quantile(0.99, sum without (pod) (rate(h_bucket[5m]))) > Inf", {"h_bucket"}),
        ("scalar(max(loc)) - replayed and on (instance) replica == 1", {"loc", "replayed", "replica"}),
        ("ns:rule:rate5m @ start()", {"ns:rule:rate5m"}),
    ],
)
def test_metric_names_skips_functions_labels_keywords_and_durations(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_catalogs_were_recorded_for_every_scraped_program() -> None:
    assert set(catalogs()) == {
        "postgres-exporter", "redis-exporter", "haproxy", "node-exporter", "etcd", "prometheus",
        "alertmanager", "patroni", "cadvisor", "backup-agent",
    }  # fmt: skip
    assert all(len(names) >= 2 for names in catalogs().values())
    assert {"up", "pg_up", "patroni_primary", "etcd_server_has_leader", "haproxy_backend_active_servers"} <= exposed_metrics()


# --- every query reads exposed metrics --------------------------------------------------------------


def test_every_alert_expression_uses_only_exposed_metrics(layout: ClusterLayout) -> None:
    for rule in rules_of(layout):
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exposed_metrics(), f"{rule['alert']}: {sorted(names - exposed_metrics())}"


@pytest.mark.parametrize(("dashboard", "expr"), dashboard_exprs())
def test_every_dashboard_query_uses_only_exposed_metrics(dashboard: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, expr
    assert names <= exposed_metrics(), f"{dashboard}: {sorted(names - exposed_metrics())}"


def test_the_seeds_wrong_metrics_are_gone() -> None:
    rules = rules_of(layout_of("prod"))
    used = set().union(*(metric_names(rule["expr"]) for rule in rules))
    for wrong in ("pg_filesystem_size_bytes", "haproxy_backend_up", "pg_replication_lag"):
        assert wrong not in used
        assert wrong not in exposed_metrics()
    assert not any("role=" in rule["expr"] for rule in rules)


# --- alert rules and their tests --------------------------------------------------------------------


def test_seed_alerts_are_kept_and_backup_alerts_added(layout: ClusterLayout) -> None:
    names = {rule["alert"] for rule in rules_of(layout)}
    seed = {
        "PostgreSQLDown", "PostgreSQLHighConnections", "PostgreSQLReplicationLag", "PostgreSQLDiskSpaceLow",
        "PostgreSQLLowCacheHitRatio", "PatroniNoPrimary", "PatroniMultiplePrimaries", "EtcdDown", "EtcdNoLeader", "HAProxyBackendDown",
    }  # fmt: skip
    added = {"PostgreSQLWALArchivingFailing", "PostgreSQLFullBackupTooOld", "PostgreSQLBackupTooOld", "PostgreSQLBackupFailed", "EtcdInsufficientMembers"}
    assert seed | added <= names
    assert ("PatroniNoSynchronousStandby" in names) == (layout.environment == "prod")
    assert len(names) == len(rules_of(layout))
    for rule in rules_of(layout):
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_has_a_firing_and_a_quiet_case(layout: ClusterLayout) -> None:
    tests = yaml.safe_load(render_alert_rule_tests(layout))["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in tests:
        assert test["input_series"]
        for case in test["alert_rule_test"]:
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in rules_of(layout)}
    assert firing == names
    assert quiet == names


def test_expected_annotations_are_fully_expanded(layout: ClusterLayout) -> None:
    for test in yaml.safe_load(render_alert_rule_tests(layout))["tests"]:
        for case in test["alert_rule_test"]:
            for alert in case["exp_alerts"]:
                assert "{{" not in json.dumps(alert["exp_annotations"]), case["alertname"]


def test_etcd_quorum_follows_the_member_count(layout: ClusterLayout) -> None:
    (rule,) = (r for r in rules_of(layout) if r["alert"] == "EtcdInsufficientMembers")
    assert rule["expr"].endswith(f"< {len(layout.etcd) // 2 + 1}")


# --- Prometheus ------------------------------------------------------------------------------------


def test_scrape_jobs_reach_every_member(layout: ClusterLayout) -> None:
    config = yaml.safe_load(render_prometheus(layout))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"postgres", "patroni", "etcd", "haproxy", "redis", "node", "docker", "alertmanager", "prometheus"}

    def static_targets(job: str) -> dict[str, str]:
        return {entry["targets"][0]: entry["labels"]["instance"] for entry in jobs[job]["static_configs"]}

    assert static_targets("patroni") == {f"{m.host}:8008": m.name for m in layout.patroni}
    assert static_targets("etcd") == {f"{m.host}:2381": m.name for m in layout.etcd}
    assert sorted(static_targets("postgres").values()) == sorted(m.name for m in layout.patroni)
    assert jobs["patroni"]["scheme"] == "https"
    assert jobs["patroni"]["tls_config"]["ca_file"] == f"{layout.paths.secrets}/{CA_SECRET}"
    assert jobs["node"]["dns_sd_configs"] == [{"names": ["tasks.node-exporter"], "type": "A", "port": 9100}]
    assert jobs["docker"]["dns_sd_configs"] == [{"names": ["tasks.cadvisor"], "type": "A", "port": 8080}]
    assert config["global"]["external_labels"] == {"cluster": f"postgres-{layout.environment}"}
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "15s"
    assert config["rule_files"] == [f"{layout.paths.config}/alerts.yml"]


def test_retention_is_thirty_days_in_prod_and_shorter_elsewhere() -> None:
    assert retention("prod") == "30d"
    assert retention("staging") == "15d"
    assert retention("dev") == "7d"


# --- Alertmanager ----------------------------------------------------------------------------------


def test_alertmanager_routes_by_severity_and_inhibits_warnings() -> None:
    layout = layout_of("prod")
    config = yaml.safe_load(render_alertmanager(layout, "https://hooks.example.com/dpc"))
    routes = {route["matchers"][0]: route["receiver"] for route in config["route"]["routes"]}
    assert routes == {'severity="critical"': "postgres-prod-critical", 'severity="warning"': "postgres-prod-warning"}
    assert config["inhibit_rules"] == [
        {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'], "equal": ["cluster", "instance"]}
    ]
    assert all(receiver["webhook_configs"][0]["url"] == "https://hooks.example.com/dpc" for receiver in config["receivers"])
    assert all(set(receiver) == {"name"} for receiver in yaml.safe_load(render_alertmanager(layout))["receivers"])


# --- Grafana ---------------------------------------------------------------------------------------


def test_datasource_has_the_uid_the_dashboards_use() -> None:
    (datasource,) = yaml.safe_load(render_grafana_datasources(layout_of("prod")))["datasources"]
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(render_grafana_dashboard_provider())["providers"][0]
    assert provider["options"]["path"] == "/etc/grafana/dashboards", "outside the grafana-data volume, where the dashboard configs are mounted"
    assert admin_password_file(layout_of("prod")) == "/run/secrets/grafana_admin_password"


def test_dashboards_are_the_seeds_five() -> None:
    titles = {board["title"] for board in grafana_dashboards().values()}
    assert titles == {"Cluster Overview", "Performance", "Resource Utilization", "Replication", "Application"}
    assert len({board["uid"] for board in grafana_dashboards().values()}) == 5


@pytest.mark.parametrize("name", sorted(grafana_dashboards()))
def test_dashboard_structure(name: str) -> None:
    board = json.loads(render_grafana_dashboard(name))
    panels = board["panels"]
    assert panels
    assert len({panel["id"] for panel in panels}) == len(panels)
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == DATASOURCE_UID
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
        assert grid["x"] + grid["w"] <= GRID_COLUMNS
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        assert panel["targets"]
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["datasource"]["uid"] == DATASOURCE_UID


@pytest.mark.parametrize("name", sorted(grafana_dashboards()))
def test_dashboard_json_is_deterministic_with_sorted_keys(name: str) -> None:
    text = render_grafana_dashboard(name)
    assert text == render_grafana_dashboard(name)
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_rendering_is_deterministic(layout: ClusterLayout) -> None:
    for render in (render_prometheus, render_alert_rules, render_alert_rule_tests, render_alertmanager, render_grafana_datasources):
        assert render(layout) == render(layout)
