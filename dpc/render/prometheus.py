"""Prometheus: the scrape configuration (design §7.1), the alert rules (design §7.2, corrected, plus the
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

Corrections to the original alert rules (design §11.9), so that every expression reads metrics the deployed exporters
expose (recorded in tests/contract/metrics/*.txt and checked by the unit tests):

- PostgreSQLDown: `pg_up == 0`, and also the exporter's own `up == 0`, since a dead exporter
  reports no `pg_up` at all.
- PostgreSQLHighConnections: the seed divided each database's backends by max_connections without
  matching labels (no result, ever); now the sum of backends per server over its max_connections.
- PostgreSQLReplicationLag: `pg_replication_lag` is not a metric of postgres_exporter 0.11 (0.13+
  names it `pg_replication_lag_seconds`); now from Patroni: a replica with WAL still to replay
  (the primary's `patroni_xlog_location` ahead of its `patroni_xlog_replayed_location`) whose last
  replayed transaction is older than 30 seconds (design §7.2). An idle cluster has nothing to
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
from dataclasses import dataclass
from typing import Any

from dpc.cluster import BACKUP_LAST_RUN_METRIC, BACKUP_LAST_SUCCESS_METRIC, CA_SECRET, HOST_VOLUMES_ROOT, ClusterLayout, Member, Port
from dpc.environments import Environment
from dpc.render import dump_yaml

PROMETHEUS_CONFIG_FILE = "prometheus.yml"
ALERT_RULES_FILE = "alerts.yml"
RULE_TESTS_FILE = "alerts-test.yml"
SCRAPE_INTERVAL = "15s"

PROMETHEUS_RETENTION: Mapping[Environment, str] = {"prod": "30d", "staging": "15d", "dev": "7d"}
"""`--storage.tsdb.retention.time` per environment (design §7.5): 30 days in prod; the original cost
advice (30d → 15d) applies where history matters less."""

"""Where the hosts mount the data, WAL and backup volumes (providers/common/composition.py)."""

FULL_BACKUP_MAX_AGE_SECONDS = 8 * 86400
"""A full backup runs every Sunday and on the 1st (dpc/render/backup.py): at most 7 days apart,
plus a day for a slow or retried run."""

ANY_BACKUP_MAX_AGE_SECONDS = 26 * 3600
"""A differential or full backup runs every day at 02:00: at most 24 hours apart, plus two hours
for the backup itself (design §4.2: ~30 minutes for 500 GB). The differential alone would be 48
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
    """An alert rule and its two test cases: `series` gives each input series' values in the firing
    case and in the quiet case (promtool notation: `v` a constant, `start+step` a counter);
    `fired` the label sets of the alerts the firing case raises.
    """

    name: str
    expr: str
    wait: str
    severity: str
    summary: str
    description: str
    series: Mapping[str, tuple[str, str]]
    fired: tuple[Mapping[str, str], ...]

    @property
    def fires(self) -> RuleCase:
        """The case where the alert fires."""
        return RuleCase({selector: _series(values[0]) for selector, values in self.series.items()}, self.fired)

    @property
    def quiet(self) -> RuleCase:
        """The case where it stays quiet."""
        return RuleCase({selector: _series(values[1]) for selector, values in self.series.items()})


@dataclass(frozen=True)
class AlertGroup:
    """A rule group, evaluated every 30 seconds as in the seed."""

    name: str
    alerts: tuple[Alert, ...]


def _series(value: str) -> str:
    """TEST_SERIES_LENGTH samples in promtool's notation."""
    return f"{value}x{TEST_SERIES_LENGTH}"


def _selector(metric: str, labels: Mapping[str, str]) -> str:
    return metric + "{" + ",".join(f'{name}="{value}"' for name, value in sorted(labels.items())) + "}"


P1 = {"instance": "patroni-1", "job": "postgres"}
P2_PATRONI = {"instance": "patroni-2", "job": "patroni"}
NODE = {"instance": "10.0.2.11:9100", "job": "node"}
BACKUP_NODE = {"instance": "10.0.4.10:9100", "job": "node"}
HAPROXY = {"instance": "10.0.1.5:9101", "job": "haproxy"}
DAY = 86400
VOLUMES = f'mountpoint=~"{HOST_VOLUMES_ROOT}/.+"'


def _postgres_alerts() -> AlertGroup:
    data_volume = {**NODE, "mountpoint": f"{HOST_VOLUMES_ROOT}/patroni-1/data"}
    app_db, postgres_db = {**P1, "datname": "distributed_postgres_cluster"}, {**P1, "datname": "postgres"}
    return AlertGroup("postgres", (
        Alert(
            "PostgreSQLDown", 'pg_up == 0 or up{job="postgres"} == 0', "1m", "critical",
            "PostgreSQL is down", "PostgreSQL on {{ $labels.instance }} is down, or its exporter cannot be scraped",
            {_selector("pg_up", P1): ("0", "1"), _selector("up", P1): ("1", "1")}, (P1,),
        ),
        Alert(
            "PostgreSQLHighConnections",
            "sum by (instance) (pg_stat_database_numbackends) / on (instance) max by (instance) (pg_settings_max_connections) > 0.8", "5m", "warning",
            "High connection usage", "More than 80% of max_connections are in use on {{ $labels.instance }}",
            {
                _selector("pg_stat_database_numbackends", app_db): ("70", "60"),
                _selector("pg_stat_database_numbackends", postgres_db): ("15", "15"),
                _selector("pg_settings_max_connections", P1): ("100", "100"),
            },
            ({"instance": "patroni-1"},),
        ),
        Alert(
            "PostgreSQLReplicationLag",
            "(scalar(max(patroni_xlog_location)) - patroni_xlog_replayed_location > 0)"
            " and on (instance) (time() - patroni_xlog_replayed_timestamp > 30)"
            " and on (instance) (patroni_replica == 1)",
            "5m", "warning",
            "High replication lag", "Replica {{ $labels.instance }} has WAL to replay and has replayed no transaction for more than 30 seconds",
            {
                _selector("patroni_xlog_location", {"instance": "patroni-1", "job": "patroni"}): ("0+1000", "0+1000"),
                _selector("patroni_xlog_replayed_location", P2_PATRONI): ("5000", "0+1000"),
                _selector("patroni_xlog_replayed_timestamp", P2_PATRONI): ("300", "0+60"),
                _selector("patroni_replica", P2_PATRONI): ("1", "1"),
            },
            (P2_PATRONI,),
        ),
        Alert(
            "PostgreSQLDiskSpaceLow",
            f"1 - node_filesystem_avail_bytes{{{VOLUMES}}} / node_filesystem_size_bytes{{{VOLUMES}}} > 0.85",
            "10m", "warning",
            "Low disk space", "More than 85% of {{ $labels.mountpoint }} is used on {{ $labels.instance }}",
            {_selector("node_filesystem_avail_bytes", data_volume): ("10", "50"), _selector("node_filesystem_size_bytes", data_volume): ("100", "100")},
            (data_volume,),
        ),
        Alert(
            "PostgreSQLLowCacheHitRatio",
            "sum by (instance) (rate(pg_stat_database_blks_hit[15m])) / (sum by (instance) (rate(pg_stat_database_blks_hit[15m]))"
            " + sum by (instance) (rate(pg_stat_database_blks_read[15m]))) < 0.95",
            "15m", "warning",
            "Low cache hit ratio", "Less than 95% of block reads on {{ $labels.instance }} were served from shared buffers in the last 15 minutes",
            {_selector("pg_stat_database_blks_hit", postgres_db): ("0+900", "0+990"), _selector("pg_stat_database_blks_read", postgres_db): ("0+100", "0+10")},
            ({"instance": "patroni-1"},),
        ),
        Alert(
            "PostgreSQLWALArchivingFailing",
            "increase(pg_stat_archiver_failed_count[10m]) > 0 and on (instance) increase(pg_stat_archiver_archived_count[10m]) == 0", "5m", "critical",
            "WAL archiving is failing",
            "{{ $labels.instance }} failed to archive WAL and archived none for 10 minutes: point-in-time recovery is at risk, pg_wal fills up",
            {_selector("pg_stat_archiver_failed_count", P1): ("0+1", "0+1"), _selector("pg_stat_archiver_archived_count", P1): ("100", "0+2")},
            (P1,),
        ),
    ))


def _per_member(metric: str, members: tuple[Member, ...], job: str, firing: str, quiet: str) -> dict[str, tuple[str, str]]:
    """One series per member; member i's value is character i of `firing` and of `quiet`."""
    return {_selector(metric, {"instance": m.name, "job": job}): (f, q) for m, f, q in zip(members, firing, quiet, strict=False)}


def _patroni_alerts(layout: ClusterLayout) -> AlertGroup:
    alerts = [
        Alert(
            "PatroniNoPrimary", "(sum(patroni_primary) or vector(0)) == 0", "1m", "critical",
            "No Patroni primary", "No Patroni member is the primary: the cluster takes no writes",
            _per_member("patroni_primary", layout.patroni, "patroni", "000", "100"), ({},),
        ),
        Alert(
            "PatroniMultiplePrimaries", "sum(patroni_primary) > 1", "1m", "critical",
            "Multiple Patroni primaries detected", "More than one Patroni member reports itself primary: split brain",
            _per_member("patroni_primary", layout.patroni, "patroni", "110", "100"), ({},),
        ),
    ]
    if layout.synchronous_mode_strict:
        alerts.append(Alert(
            "PatroniNoSynchronousStandby", "(sum(patroni_sync_standby) or vector(0)) == 0", "2m", "critical",
            "No synchronous standby", "No replica is synchronous: with strict synchronous mode the primary accepts no commits (RPO 0 needs one)",
            _per_member("patroni_sync_standby", layout.patroni, "patroni", "000", "010"), ({},),
        ))
    return AlertGroup("patroni", tuple(alerts))


def _etcd_alerts(layout: ClusterLayout) -> AlertGroup:
    members, quorum = len(layout.etcd), len(layout.etcd) // 2 + 1
    first = {"instance": layout.etcd[0].name, "job": "etcd"}
    below_quorum, at_quorum = "1" * (quorum - 1) + "0" * (members - quorum + 1), "1" * quorum + "0" * (members - quorum)
    return AlertGroup("etcd", (
        Alert(
            "EtcdDown", 'up{job="etcd"} == 0', "1m", "critical",
            "etcd node down", "etcd member {{ $labels.instance }} is down",
            {_selector("up", first): ("0", "1")}, (first,),
        ),
        Alert(
            "EtcdNoLeader", "etcd_server_has_leader == 0", "1m", "critical",
            "etcd has no leader", "etcd member {{ $labels.instance }} sees no leader",
            {_selector("etcd_server_has_leader", first): ("0", "1")}, (first,),
        ),
        Alert(
            "EtcdInsufficientMembers", f'(sum(up{{job="etcd"}}) or vector(0)) < {quorum}', "1m", "critical",
            "etcd has lost its quorum", f"Fewer than {quorum} of {members} etcd members are up: Patroni cannot keep or elect a leader",
            _per_member("up", layout.etcd, "etcd", below_quorum, at_quorum), ({},),
        ),
    ))


def _haproxy_alerts() -> AlertGroup:
    primary, stats = {**HAPROXY, "proxy": "postgres-primary"}, {**HAPROXY, "proxy": "stats"}
    return AlertGroup("haproxy", (
        Alert(
            "HAProxyBackendDown", "haproxy_backend_active_servers == 0 and on (instance, proxy) count by (instance, proxy) (haproxy_server_status) > 0",
            "1m", "critical",
            "HAProxy backend down", "HAProxy backend {{ $labels.proxy }} on {{ $labels.instance }} has no server up",
            {
                _selector("haproxy_backend_active_servers", primary): ("0", "1"),
                _selector("haproxy_server_status", {**primary, "server": "patroni-1", "state": "DOWN"}): ("1", "0"),
                _selector("haproxy_backend_active_servers", stats): ("0", "0"),
            },
            (primary,),
        ),
    ))


def _backup_alerts() -> AlertGroup:
    full, diff = _selector(BACKUP_LAST_SUCCESS_METRIC, {**BACKUP_NODE, "type": "full"}), _selector(BACKUP_LAST_SUCCESS_METRIC, {**BACKUP_NODE, "type": "diff"})
    failed_diff = {**BACKUP_NODE, "type": "diff"}
    return AlertGroup("backup", (
        Alert(
            "PostgreSQLFullBackupTooOld", f'time() - max({BACKUP_LAST_SUCCESS_METRIC}{{type="full"}}) > {FULL_BACKUP_MAX_AGE_SECONDS}', "10m", "critical",
            "No recent full backup", "The last successful full backup is more than 8 days old (one is due every Sunday)",
            {full: (str(-9 * DAY), str(-6 * DAY)), diff: ("0", "0")}, ({},),
        ),
        Alert(
            "PostgreSQLBackupTooOld",
            f"time() - max({BACKUP_LAST_SUCCESS_METRIC}) > {ANY_BACKUP_MAX_AGE_SECONDS} or absent({BACKUP_LAST_SUCCESS_METRIC})", "10m", "warning",
            "No backup in the last day", "No full or differential backup succeeded in the last 26 hours, or the backup agent reports nothing",
            {full: (str(-3 * DAY), str(-3 * DAY)), diff: (str(-2 * DAY), "0")}, ({},),
        ),
        Alert(
            "PostgreSQLBackupFailed", f"{BACKUP_LAST_RUN_METRIC} == 0", "1m", "warning",
            "Backup failed", "The last {{ $labels.type }} backup run failed",
            {_selector(BACKUP_LAST_RUN_METRIC, failed_diff): ("0", "1")}, (failed_diff,),
        ),
    ))


def _monitoring_alerts() -> AlertGroup:
    return AlertGroup("monitoring", (
        Alert(
            "MonitoringTargetDown", 'up{job!~"postgres|etcd"} == 0', "5m", "warning",
            "Scrape target down", "Prometheus cannot scrape {{ $labels.job }} on {{ $labels.instance }}",
            {_selector("up", NODE): ("0", "1"), _selector("up", {"instance": "etcd-1", "job": "etcd"}): ("0", "0")}, (NODE,),
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
        "labels": {"severity": alert.severity},
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
            "exp_labels": {**labels, "severity": alert.severity},
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
    return dump_yaml(dict(data))
