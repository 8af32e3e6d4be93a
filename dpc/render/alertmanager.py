"""Alertmanager: alerts routed by severity, grouped per alert and instance, warnings held back
while a critical alert of the same instance fires.

Receivers deliver to the webhook of `dpc:alerting.webhookUrl`, with a bearer token read from a
Docker secret file when the stack sets `dpc:alerting.webhookToken` (Alertmanager 0.25 reads no URL
from a file, so the URL itself must carry no credentials; settings validation insists). Without a
webhook, the receivers have no integration: alerts are still grouped, inhibited and shown by
Alertmanager's UI and API (`amtool alert query`).
"""

from __future__ import annotations

from typing import Any

from dpc.cluster import ClusterLayout
from dpc.render import dump_yaml

ALERTMANAGER_CONFIG_FILE = "alertmanager.yml"

REPEAT_INTERVAL = {"critical": "1h", "warning": "4h"}
"""How often a firing alert is sent again: hourly while critical, twice a working day as a warning.
Its keys are the severities the alert rules use (dpc/render/prometheus.py)."""

GROUP_WAIT = {"critical": "10s", "warning": "1m"}
"""How long a new group waits for more alerts before its first notification: critical ones go out
at once; warnings wait for their siblings (e.g. every target of a failed node)."""


def receiver_name(layout: ClusterLayout, severity: str) -> str:
    """Receivers are named by cluster and severity, so that a shared webhook tells clusters apart."""
    return f"postgres-{layout.environment}-{severity}"


def _receiver(name: str, webhook_url: str | None, token_file: str | None) -> dict[str, Any]:
    if webhook_url is None:
        return {"name": name}
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
    if token_file is not None:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": token_file}}
    return {"name": name, "webhook_configs": [webhook]}


def alertmanager_config(layout: ClusterLayout, webhook_url: str | None = None, token_file: str | None = None) -> dict[str, Any]:
    """alertmanager.yml as data: one receiver per severity, each posting to `webhook_url` if given,
    authenticated with the bearer token in `token_file` if given.
    """
    return {
        "route": {
            "receiver": receiver_name(layout, "warning"),
            "group_by": ["alertname", "cluster", "instance"],
            "group_wait": GROUP_WAIT["warning"],
            "group_interval": "5m",
            "repeat_interval": REPEAT_INTERVAL["warning"],
            "routes": [
                {
                    "receiver": receiver_name(layout, severity),
                    "matchers": [f'severity="{severity}"'],
                    "group_wait": GROUP_WAIT[severity],
                    "repeat_interval": interval,
                }
                for severity, interval in REPEAT_INTERVAL.items()
            ],
        },
        "inhibit_rules": [
            {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'], "equal": ["cluster", "instance"]},
        ],
        "receivers": [_receiver(receiver_name(layout, severity), webhook_url, token_file) for severity in REPEAT_INTERVAL],
    }


def render_alertmanager(layout: ClusterLayout, webhook_url: str | None = None, token_file: str | None = None) -> str:
    """alertmanager.yml, a plain Docker config (see the module's note on webhook URLs)."""
    return dump_yaml(alertmanager_config(layout, webhook_url, token_file))
