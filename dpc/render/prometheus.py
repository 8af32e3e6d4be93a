"""Prometheus: the scrape configuration (seed §8.2), the alert rules (seed §8.3, corrected, plus the
alerts backups and replication need) and a promtool test file that makes every alert fire once and
stay quiet once.

Targets. Members of replicated services are scraped one by one, never through a Swarm virtual IP
(which would answer from a different task on each scrape): Patroni and etcd members by name, the
globally deployed node-exporter and cAdvisor and the two HAProxy tasks through Docker's
`tasks.<service>` DNS records. The `instance` of a Patroni member's PostgreSQL exporter is the
member's name, the same as its Patroni target's, so that alerts about one member join on
`instance` and Alertmanager's inhibition sees them as one instance.

PostgreSQL exporters. One exporter per Patroni member (`postgres_exporter_host`): postgres_exporter
0.11 given several data sources at once collects its per-collector metrics twice and answers every
scrape with HTTP 500 (recorded by tests/contract/metrics/record.py).

Corrections to the seed's §8.3 rules, so that every expression reads metrics the deployed exporters
expose (recorded in tests/contract/metrics/*.txt and checked by the unit tests):

- PostgreSQLDown: `pg_up == 0`, and also the exporter's own `up == 0`, since a dead exporter
  reports no `pg_up` at all.
- PostgreSQLHighConnections: the seed divided each database's backends by max_connections without
  matching labels (no result, ever); now the sum of backends per server over its max_connections.
- PostgreSQLReplicationLag: `pg_replication_lag` is not a metric of postgres_exporter 0.11 (0.13+
  names it `pg_replication_lag_seconds`); now from Patroni: a replica with WAL still to replay
  (the primary's `patroni_xlog_location` ahead of its `patroni_xlog_replayed_location`) whose last
  replayed transaction is older than the seed's 30 seconds. An idle cluster has nothing to
  replay, so it does not fire.
- PostgreSQLDiskSpaceLow: `pg_filesystem_size_bytes` exists in no exporter; now node-exporter's
  free space of the data, WAL and backup volumes (mounted under HOST_VOLUMES_ROOT on the hosts).
- PostgreSQLLowCacheHitRatio: the seed's ratio of lifetime counters hardly moves after a day of
  uptime; now the ratio of their rates over 15 minutes, per server.
- PatroniNoPrimary / PatroniMultiplePrimaries: Patroni 4 has no `role` label on
  `patroni_postgres_running`; it exposes `patroni_primary` (1 on the leader). `count()` of nothing
  is nothing, never 0, so the seed's no-primary rule could not fire; now the sum, 0 when absent.
- HAProxyBackendDown: HAProxy's built-in exporter has no `haproxy_backend_up`; a backend is down
  when `haproxy_backend_active_servers` is 0, for backends that have servers (`listen stats` has
  none). The backend's label is `proxy`, not `backend`.

Added: etcd below quorum, no synchronous standby (prod, where strict synchronous mode stops
writes without one), WAL archiving failing, backups too old or failed, and any scrape target down.
Annotations use only `$labels`, so that the rule tests can check them exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from dpc.cluster import BACKUP_LAST_RUN_METRIC, BACKUP_LAST_SUCCESS_METRIC, CA_SECRET, ClusterLayout, Member, Port
from dpc.environments import Environment

PROMETHEUS_CONFIG_FILE = "prometheus.yml"
ALERT_RULES_FILE = "alerts.yml"
RULE_TESTS_FILE = "alerts-test.yml"
SCRAPE_INTERVAL = "15s"

PROMETHEUS_RETENTION: Mapping[Environment, str] = {"prod": "30d", "staging": "15d", "dev": "7d"}
"""`--storage.tsdb.retention.time` per environment: seed §8 keeps 30 days in prod; §10.1's cost
advice (30d → 15d) applies where history matters less."""

HOST_VOLUMES_ROOT = "/mnt/postgres-cluster"
"""Where the hosts mount the data, WAL and backup volumes (providers/composition.py)."""

FULL_BACKUP_MAX_AGE_SECONDS = 8 * 86400
"""A full backup runs every Sunday and on the 1st (dpc/render/backup.py): at most 7 days apart,
plus a day for a slow or retried run."""

ANY_BACKUP_MAX_AGE_SECONDS = 26 * 3600
"""A differential or full backup runs every day at 02:00: at most 24 hours apart, plus two hours
for the backup itself (seed §4.3: ~30 minutes for 500 GB). The differential alone would be 48
hours old every Monday, since Sunday's backup is a full one, hence the newest of either type."""

TEST_EVAL_TIME = "40m"
"""Every rule test evaluates at the same time, after the longest `for` (15m) plus a 15m rate window."""
TEST_SERIES_LENGTH = 60
"""Samples per test series, one a minute: past TEST_EVAL_TIME."""


def postgres_exporter_host(index: int) -> str:
    """The Swarm service of the PostgreSQL exporter for the `index`-th (1-based) Patroni member."""
    return f"postgres-exporter-{index}"


def retention(environment: Environment) -> str:
    """The value of Prometheus's `--storage.tsdb.retention.time` flag for an environment."""
    return PROMETHEUS_RETENTION[environment]


# --- scrape configuration -------------------------------------------------------------------------


def _member_targets(members: tuple[Member, ...], port: int) -> list[dict[str, Any]]:
    """One static target per member, its `instance` label the member's name (without the port)."""
    return [{"targets": [f"{member.host}:{port}"], "labels": {"instance": member.name}} for member in members]


def _tasks(service: str, port: int) -> list[dict[str, Any]]:
    """Every task of a Swarm service, through Docker's `tasks.<service>` DNS record."""
    return [{"names": [f"tasks.{service}"], "type": "A", "port": port}]


def prometheus_config(layout: ClusterLayout) -> dict[str, Any]:
    """prometheus.yml as data."""
    exporters = tuple(Member(member.name, postgres_exporter_host(index)) for index, member in enumerate(layout.patroni, start=1))
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
            "external_labels": {"cluster": f"postgres-{layout.environment}"},
        },
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"alertmanager:{Port.ALERTMANAGER}"]}]}]},
        "rule_files": [f"{layout.paths.config}/{ALERT_RULES_FILE}"],
        "scrape_configs": [
            {"job_name": "postgres", "static_configs": _member_targets(exporters, Port.POSTGRES_EXPORTER)},
            {
                "job_name": "patroni",
                "scheme": "https",
                "tls_config": {"ca_file": layout.paths.secret(CA_SECRET)},
                "static_configs": _member_targets(layout.patroni, Port.PATRONI_API),
            },
            {"job_name": "etcd", "static_configs": _member_targets(layout.etcd, Port.ETCD_METRICS)},
            {"job_name": "haproxy", "dns_sd_configs": _tasks(layout.haproxy.name, Port.HAPROXY_METRICS)},
            {"job_name": "redis", "static_configs": [{"targets": [f"redis-exporter:{Port.REDIS_EXPORTER}"]}]},
            {"job_name": "node", "dns_sd_configs": _tasks("node-exporter", Port.NODE_EXPORTER)},
            {"job_name": "docker", "dns_sd_configs": _tasks("cadvisor", Port.CADVISOR)},
            {"job_name": "alertmanager", "static_configs": [{"targets": [f"alertmanager:{Port.ALERTMANAGER}"]}]},
            {"job_name": "prometheus", "static_configs": [{"targets": [f"localhost:{Port.PROMETHEUS}"]}]},
        ],
    }


def render_prometheus(layout: ClusterLayout) -> str:
    """prometheus.yml: a plain Docker config (the CA it trusts is a secret file it only names)."""
    return _dump(prometheus_config(layout))


# --- alert rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleCase:
    """Input series (`selector: values` in promtool's notation, one sample a minute) and the label
    sets of the alerts they raise at TEST_EVAL_TIME (besides `alertname` and `severity`); none
    for a case where the alert must stay quiet.
    """

    series: Mapping[str, str]
    alerts: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True)
class Alert:
    """An alert rule with a case where it fires and one where it does not."""

    name: str
    expr: str
    wait: str
    severity: str
    summary: str
    description: str
    fires: RuleCase
    quiet: RuleCase
    labels: Mapping[str, str] = field(default_factory=dict[str, str])


@dataclass(frozen=True)
class AlertGroup:
    """A rule group, evaluated every 30 seconds as in the seed."""

    name: str
    alerts: tuple[Alert, ...]


def _series(value: str) -> str:
    """TEST_SERIES_LENGTH samples in promtool's notation: `v` a constant, `start+step` a counter."""
    return f"{value}x{TEST_SERIES_LENGTH}"


def _postgres_alerts() -> AlertGroup:
    p1 = {"instance": "patroni-1", "job": "postgres"}
    node = {"instance": "10.0.2.11:9100", "job": "node"}
    data_volume = f'{{instance="10.0.2.11:9100",job="node",mountpoint="{HOST_VOLUMES_ROOT}/patroni-1/data"}}'
    disk_labels = {**node, "mountpoint": f"{HOST_VOLUMES_ROOT}/patroni-1/data"}
    size = f"node_filesystem_size_bytes{data_volume}"
    return AlertGroup("postgres", (
        Alert(
            name="PostgreSQLDown",
            expr='pg_up == 0 or up{job="postgres"} == 0',
            wait="1m", severity="critical",
            summary="PostgreSQL is down",
            description="PostgreSQL on {{ $labels.instance }} is down, or its exporter cannot be scraped",
            fires=RuleCase({'pg_up{instance="patroni-1",job="postgres"}': _series("0"), 'up{instance="patroni-1",job="postgres"}': _series("1")}, (p1,)),
            quiet=RuleCase({'pg_up{instance="patroni-1",job="postgres"}': _series("1"), 'up{instance="patroni-1",job="postgres"}': _series("1")}),
        ),
        Alert(
            name="PostgreSQLHighConnections",
            expr="sum by (instance) (pg_stat_database_numbackends) / on (instance) max by (instance) (pg_settings_max_connections) > 0.8",
            wait="5m", severity="warning",
            summary="High connection usage",
            description="More than 80% of max_connections are in use on {{ $labels.instance }}",
            fires=RuleCase({
                'pg_stat_database_numbackends{datname="distributed_postgres_cluster",instance="patroni-1",job="postgres"}': _series("70"),
                'pg_stat_database_numbackends{datname="postgres",instance="patroni-1",job="postgres"}': _series("15"),
                'pg_settings_max_connections{instance="patroni-1",job="postgres"}': _series("100"),
            }, ({"instance": "patroni-1"},)),
            quiet=RuleCase({
                'pg_stat_database_numbackends{datname="distributed_postgres_cluster",instance="patroni-1",job="postgres"}': _series("60"),
                'pg_stat_database_numbackends{datname="postgres",instance="patroni-1",job="postgres"}': _series("15"),
                'pg_settings_max_connections{instance="patroni-1",job="postgres"}': _series("100"),
            }),
        ),
        Alert(
            name="PostgreSQLReplicationLag",
            expr=(
                "(scalar(max(patroni_xlog_location)) - patroni_xlog_replayed_location > 0)"
                " and on (instance) (time() - patroni_xlog_replayed_timestamp > 30)"
                " and on (instance) (patroni_replica == 1)"
            ),
            wait="5m", severity="warning",
            summary="High replication lag",
            description="Replica {{ $labels.instance }} has WAL to replay and has replayed no transaction for more than 30 seconds",
            fires=RuleCase({
                'patroni_xlog_location{instance="patroni-1",job="patroni"}': _series("0+1000"),
                'patroni_xlog_replayed_location{instance="patroni-2",job="patroni"}': _series("5000"),
                'patroni_xlog_replayed_timestamp{instance="patroni-2",job="patroni"}': _series("300"),
                'patroni_replica{instance="patroni-2",job="patroni"}': _series("1"),
            }, ({"instance": "patroni-2", "job": "patroni"},)),
            quiet=RuleCase({
                'patroni_xlog_location{instance="patroni-1",job="patroni"}': _series("0+1000"),
                'patroni_xlog_replayed_location{instance="patroni-2",job="patroni"}': _series("0+1000"),
                'patroni_xlog_replayed_timestamp{instance="patroni-2",job="patroni"}': _series("0+60"),
                'patroni_replica{instance="patroni-2",job="patroni"}': _series("1"),
            }),
        ),
        Alert(
            name="PostgreSQLDiskSpaceLow",
            expr=(
                f'1 - node_filesystem_avail_bytes{{mountpoint=~"{HOST_VOLUMES_ROOT}/.+"}}'
                f' / node_filesystem_size_bytes{{mountpoint=~"{HOST_VOLUMES_ROOT}/.+"}} > 0.85'
            ),
            wait="10m", severity="warning",
            summary="Low disk space",
            description="More than 85% of {{ $labels.mountpoint }} is used on {{ $labels.instance }}",
            fires=RuleCase({f"node_filesystem_avail_bytes{data_volume}": _series("10"), size: _series("100")}, (disk_labels,)),
            quiet=RuleCase({f"node_filesystem_avail_bytes{data_volume}": _series("50"), size: _series("100")}),
        ),
        Alert(
            name="PostgreSQLLowCacheHitRatio",
            expr=(
                "sum by (instance) (rate(pg_stat_database_blks_hit[15m])) / (sum by (instance) (rate(pg_stat_database_blks_hit[15m]))"
                " + sum by (instance) (rate(pg_stat_database_blks_read[15m]))) < 0.95"
            ),
            wait="15m", severity="warning",
            summary="Low cache hit ratio",
            description="Less than 95% of block reads on {{ $labels.instance }} were served from shared buffers in the last 15 minutes",
            fires=RuleCase({
                'pg_stat_database_blks_hit{datname="postgres",instance="patroni-1",job="postgres"}': _series("0+900"),
                'pg_stat_database_blks_read{datname="postgres",instance="patroni-1",job="postgres"}': _series("0+100"),
            }, ({"instance": "patroni-1"},)),
            quiet=RuleCase({
                'pg_stat_database_blks_hit{datname="postgres",instance="patroni-1",job="postgres"}': _series("0+990"),
                'pg_stat_database_blks_read{datname="postgres",instance="patroni-1",job="postgres"}': _series("0+10"),
            }),
        ),
        Alert(
            name="PostgreSQLWALArchivingFailing",
            expr="increase(pg_stat_archiver_failed_count[10m]) > 0 and on (instance) increase(pg_stat_archiver_archived_count[10m]) == 0",
            wait="5m", severity="critical",
            summary="WAL archiving is failing",
            description="{{ $labels.instance }} failed to archive WAL and archived none for 10 minutes: point-in-time recovery is at risk, pg_wal fills up",
            fires=RuleCase({
                'pg_stat_archiver_failed_count{instance="patroni-1",job="postgres"}': _series("0+1"),
                'pg_stat_archiver_archived_count{instance="patroni-1",job="postgres"}': _series("100"),
            }, (p1,)),
            quiet=RuleCase({
                'pg_stat_archiver_failed_count{instance="patroni-1",job="postgres"}': _series("0+1"),
                'pg_stat_archiver_archived_count{instance="patroni-1",job="postgres"}': _series("0+2"),
            }),
        ),
    ))


def _patroni_alerts(layout: ClusterLayout) -> AlertGroup:
    def primaries(*values: str) -> dict[str, str]:
        return {f'patroni_primary{{instance="{m.name}",job="patroni"}}': _series(v) for m, v in zip(layout.patroni, values, strict=False)}

    def sync_standbys(*values: str) -> dict[str, str]:
        return {f'patroni_sync_standby{{instance="{m.name}",job="patroni"}}': _series(v) for m, v in zip(layout.patroni, values, strict=False)}

    alerts = [
        Alert(
            name="PatroniNoPrimary",
            expr="(sum(patroni_primary) or vector(0)) == 0",
            wait="1m", severity="critical",
            summary="No Patroni primary",
            description="No Patroni member is the primary: the cluster takes no writes",
            fires=RuleCase(primaries("0", "0", "0"), ({},)),
            quiet=RuleCase(primaries("1", "0", "0")),
        ),
        Alert(
            name="PatroniMultiplePrimaries",
            expr="sum(patroni_primary) > 1",
            wait="1m", severity="critical",
            summary="Multiple Patroni primaries detected",
            description="More than one Patroni member reports itself primary: split brain",
            fires=RuleCase(primaries("1", "1", "0"), ({},)),
            quiet=RuleCase(primaries("1", "0", "0")),
        ),
    ]
    if layout.synchronous_mode_strict:
        alerts.append(Alert(
            name="PatroniNoSynchronousStandby",
            expr="(sum(patroni_sync_standby) or vector(0)) == 0",
            wait="2m", severity="critical",
            summary="No synchronous standby",
            description="No replica is synchronous: with strict synchronous mode the primary accepts no commits (RPO 0 needs one)",
            fires=RuleCase(sync_standbys("0", "0", "0"), ({},)),
            quiet=RuleCase(sync_standbys("0", "1", "0")),
        ))
    return AlertGroup("patroni", tuple(alerts))


def _etcd_alerts(layout: ClusterLayout) -> AlertGroup:
    quorum = len(layout.etcd) // 2 + 1

    def members_up(*values: str) -> dict[str, str]:
        return {f'up{{instance="{m.name}",job="etcd"}}': _series(v) for m, v in zip(layout.etcd, values, strict=False)}

    first = {"instance": layout.etcd[0].name, "job": "etcd"}
    first_member = f'{{instance="{layout.etcd[0].name}",job="etcd"}}'
    below_quorum = ["1"] * (quorum - 1) + ["0"] * (len(layout.etcd) - quorum + 1)
    at_quorum = ["1"] * quorum + ["0"] * (len(layout.etcd) - quorum)
    return AlertGroup("etcd", (
        Alert(
            name="EtcdDown",
            expr='up{job="etcd"} == 0',
            wait="1m", severity="critical",
            summary="etcd node down",
            description="etcd member {{ $labels.instance }} is down",
            fires=RuleCase({f"up{first_member}": _series("0")}, (first,)),
            quiet=RuleCase({f"up{first_member}": _series("1")}),
        ),
        Alert(
            name="EtcdNoLeader",
            expr="etcd_server_has_leader == 0",
            wait="1m", severity="critical",
            summary="etcd has no leader",
            description="etcd member {{ $labels.instance }} sees no leader",
            fires=RuleCase({f"etcd_server_has_leader{first_member}": _series("0")}, (first,)),
            quiet=RuleCase({f"etcd_server_has_leader{first_member}": _series("1")}),
        ),
        Alert(
            name="EtcdInsufficientMembers",
            expr=f'(sum(up{{job="etcd"}}) or vector(0)) < {quorum}',
            wait="1m", severity="critical",
            summary="etcd has lost its quorum",
            description=f"Fewer than {quorum} of {len(layout.etcd)} etcd members are up: Patroni cannot keep or elect a leader",
            fires=RuleCase(members_up(*below_quorum), ({},)),
            quiet=RuleCase(members_up(*at_quorum)),
        ),
    ))


def _haproxy_alerts() -> AlertGroup:
    target = '{instance="10.0.1.5:9101",job="haproxy",proxy="postgres-primary"}'
    server = '{instance="10.0.1.5:9101",job="haproxy",proxy="postgres-primary",server="patroni-1",state="DOWN"}'
    stats = '{instance="10.0.1.5:9101",job="haproxy",proxy="stats"}'
    return AlertGroup("haproxy", (
        Alert(
            name="HAProxyBackendDown",
            expr="haproxy_backend_active_servers == 0 and on (instance, proxy) count by (instance, proxy) (haproxy_server_status) > 0",
            wait="1m", severity="critical",
            summary="HAProxy backend down",
            description="HAProxy backend {{ $labels.proxy }} on {{ $labels.instance }} has no server up",
            fires=RuleCase({
                f"haproxy_backend_active_servers{target}": _series("0"),
                f"haproxy_server_status{server}": _series("1"),
                f"haproxy_backend_active_servers{stats}": _series("0"),
            }, ({"instance": "10.0.1.5:9101", "job": "haproxy", "proxy": "postgres-primary"},)),
            quiet=RuleCase({
                f"haproxy_backend_active_servers{target}": _series("1"),
                f"haproxy_server_status{server}": _series("0"),
                f"haproxy_backend_active_servers{stats}": _series("0"),
            }),
        ),
    ))


def _backup_alerts() -> AlertGroup:
    node = 'instance="10.0.4.10:9100",job="node"'
    full, diff = f'{BACKUP_LAST_SUCCESS_METRIC}{{{node},type="full"}}', f'{BACKUP_LAST_SUCCESS_METRIC}{{{node},type="diff"}}'
    day = 86400
    return AlertGroup("backup", (
        Alert(
            name="PostgreSQLFullBackupTooOld",
            expr=f'time() - max({BACKUP_LAST_SUCCESS_METRIC}{{type="full"}}) > {FULL_BACKUP_MAX_AGE_SECONDS}',
            wait="10m", severity="critical",
            summary="No recent full backup",
            description="The last successful full backup is more than 8 days old (one is due every Sunday)",
            fires=RuleCase({full: _series(str(-9 * day)), diff: _series("0")}, ({},)),
            quiet=RuleCase({full: _series(str(-6 * day)), diff: _series("0")}),
        ),
        Alert(
            name="PostgreSQLBackupTooOld",
            expr=f"time() - max({BACKUP_LAST_SUCCESS_METRIC}) > {ANY_BACKUP_MAX_AGE_SECONDS} or absent({BACKUP_LAST_SUCCESS_METRIC})",
            wait="10m", severity="warning",
            summary="No backup in the last day",
            description="No full or differential backup succeeded in the last 26 hours, or the backup agent reports nothing",
            fires=RuleCase({full: _series(str(-3 * day)), diff: _series(str(-2 * day))}, ({},)),
            quiet=RuleCase({full: _series(str(-3 * day)), diff: _series("0")}),
        ),
        Alert(
            name="PostgreSQLBackupFailed",
            expr=f"{BACKUP_LAST_RUN_METRIC} == 0",
            wait="1m", severity="warning",
            summary="Backup failed",
            description="The last {{ $labels.type }} backup run failed",
            fires=RuleCase({f'{BACKUP_LAST_RUN_METRIC}{{{node},type="diff"}}': _series("0")}, ({"instance": "10.0.4.10:9100", "job": "node", "type": "diff"},)),
            quiet=RuleCase({f'{BACKUP_LAST_RUN_METRIC}{{{node},type="diff"}}': _series("1")}),
        ),
    ))


def _monitoring_alerts() -> AlertGroup:
    node = '{instance="10.0.2.11:9100",job="node"}'
    return AlertGroup("monitoring", (
        Alert(
            name="MonitoringTargetDown",
            expr='up{job!~"postgres|etcd"} == 0',
            wait="5m", severity="warning",
            summary="Scrape target down",
            description="Prometheus cannot scrape {{ $labels.job }} on {{ $labels.instance }}",
            fires=RuleCase({f"up{node}": _series("0")}, ({"instance": "10.0.2.11:9100", "job": "node"},)),
            quiet=RuleCase({f"up{node}": _series("1"), 'up{instance="etcd-1",job="etcd"}': _series("0")}),
        ),
    ))


def alert_groups(layout: ClusterLayout) -> tuple[AlertGroup, ...]:
    """Every alert rule group, in the order of the rendered file."""
    return (_postgres_alerts(), _patroni_alerts(layout), _etcd_alerts(layout), _haproxy_alerts(), _backup_alerts(), _monitoring_alerts())


def _rule(alert: Alert) -> dict[str, Any]:
    return {
        "alert": alert.name,
        "expr": alert.expr,
        "for": alert.wait,
        "labels": {"severity": alert.severity, **alert.labels},
        "annotations": {"summary": alert.summary, "description": alert.description},
    }


def render_alert_rules(layout: ClusterLayout) -> str:
    """alerts.yml, the rule file prometheus.yml loads."""
    return _dump({"groups": [{"name": group.name, "interval": "30s", "rules": [_rule(a) for a in group.alerts]} for group in alert_groups(layout)]})


def _expected_text(template: str, labels: Mapping[str, str]) -> str:
    """An annotation as Prometheus expands it: each `{{ $labels.x }}` replaced by the label's value."""
    for name, value in labels.items():
        template = template.replace(f"{{{{ $labels.{name} }}}}", value)
    return template


def _test(alert: Alert, case: RuleCase) -> dict[str, Any]:
    expected = [
        {
            "exp_labels": {**labels, "severity": alert.severity, **alert.labels},
            "exp_annotations": {"summary": _expected_text(alert.summary, labels), "description": _expected_text(alert.description, labels)},
        }
        for labels in case.alerts
    ]
    return {
        "interval": "1m",
        "input_series": [{"series": selector, "values": values} for selector, values in sorted(case.series.items())],
        "alert_rule_test": [{"eval_time": TEST_EVAL_TIME, "alertname": alert.name, "exp_alerts": expected}],
    }


def render_alert_rule_tests(layout: ClusterLayout, rule_file: str = ALERT_RULES_FILE) -> str:
    """A `promtool test rules` file: for every alert, a case where it fires and one where it does not."""
    tests = [_test(alert, case) for group in alert_groups(layout) for alert in group.alerts for case in (alert.fires, alert.quiet)]
    return _dump({"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests})


def _dump(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(data), sort_keys=True, default_flow_style=False, width=1000)
