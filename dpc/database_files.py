"""Every file the database stack's services read, by the name their `FileMount`s use: plain
configs (no secret inside) and files rendered from secret values (delivered as Docker secrets).

One catalogue for the DatabaseStack component and the stack-file export, so both ship the same
files; a test checks that every file a service mounts is in it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dpc.cluster import ClusterLayout
from dpc.render import alertmanager, backup, etcd, grafana, haproxy, pgbouncer, postgres, prometheus, redis
from dpc.services import (
    ALERTING_TOKEN_SECRET,
    ALERTMANAGER_CONFIG,
    BACKUP_REPOSITORY_CONFIG,
    GRAFANA_DASHBOARD_PROVIDER,
    GRAFANA_DATASOURCES,
    HAPROXY_STATS_SECRET,
    PGBACKREST_SECRETS,
    REDIS_EXPORTER_SECRET,
    dashboard_config,
    patroni_config_secret,
)
from dpc.settings import Settings

SecretRenderer = Callable[[Mapping[str, str]], str]
"""Renders a file that carries secret values, from the generated secrets by name."""


def plain_configs(settings: Settings, layout: ClusterLayout, offsite: backup.OffsiteRepository | None) -> dict[str, str]:
    """The rendered files that carry no secret, by name; `offsite` is the backup bucket, if any."""
    files: dict[str, str] = {
        "haproxy.cfg": haproxy.render_haproxy(layout),
        "pgbouncer.ini": pgbouncer.render_pgbouncer(layout),
        "redis.conf": redis.render_redis(layout),
        postgres.POST_BOOTSTRAP_FILE: postgres.render_post_bootstrap(layout),
        prometheus.PROMETHEUS_CONFIG_FILE: prometheus.render_prometheus(layout),
        prometheus.ALERT_RULES_FILE: prometheus.render_alert_rules(layout),
        ALERTMANAGER_CONFIG: alertmanager.render_alertmanager(
            layout,
            settings.alerting.webhook_url,
            layout.paths.secret(ALERTING_TOKEN_SECRET) if settings.alerting.webhook_token is not None else None,
        ),
        GRAFANA_DATASOURCES: grafana.render_grafana_datasources(layout),
        GRAFANA_DASHBOARD_PROVIDER: grafana.render_grafana_dashboard_provider(),
        BACKUP_REPOSITORY_CONFIG: backup.render_pgbackrest_repository(layout, settings.backup, offsite),
    }
    for name in grafana.grafana_dashboards():
        files[dashboard_config(name)] = grafana.render_grafana_dashboard(name)
    for member in layout.etcd:
        files[f"{member.name}.yml"] = etcd.render_etcd(layout, member)
    for member in layout.patroni:
        files[f"{member.name}-pgbackrest.conf"] = backup.render_pgbackrest_database_host(layout, member, offsite=offsite is not None)
    return files


def secret_files(layout: ClusterLayout) -> dict[str, SecretRenderer]:
    """The rendered files that carry secret values, by name, each a function of the secrets."""
    files: dict[str, SecretRenderer] = {
        HAPROXY_STATS_SECRET: haproxy.render_haproxy_stats_auth,
        pgbouncer.USERLIST_SECRET: pgbouncer.render_pgbouncer_userlist,
        redis.ACL_SECRET: redis.render_redis_acl,
        REDIS_EXPORTER_SECRET: redis.render_redis_exporter_passwords,
        PGBACKREST_SECRETS: backup.render_pgbackrest_secrets,
    }
    for member in layout.patroni:
        files[patroni_config_secret(member)] = lambda secrets, member=member: postgres.render_patroni(layout, member, secrets)
    return files
