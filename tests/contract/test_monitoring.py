"""The rendered monitoring files of the prod stack, checked by the programs that read them.

- Golden files: every file under tests/golden/monitoring/, byte for byte. Set DPC_UPDATE_GOLDEN=1
  to rewrite them after an intended change, then review the diff.
- `promtool check config` accepts prometheus.yml with its rule file in place (the layout's config
  and secrets directories point at a temporary directory; promtool 2.42 reads the rule file but
  does not open TLS files, so the CA path is asserted by the unit tests).
- `promtool check rules` accepts the alert rules; `promtool test rules` passes the rendered rule
  tests (each alert fires in one case and stays quiet in another), and fails when the quiet cases
  are given the firing cases' series, so the quiet cases do assert something.
- `amtool check-config` accepts alertmanager.yml with and without a webhook, and
  `amtool config routes test` sends each severity to its receiver.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
import yaml

from dpc.cluster import CA_SECRET, ClusterLayout
from dpc.config import settings_from_stack_file
from dpc.render.alertmanager import ALERTMANAGER_CONFIG_FILE, render_alertmanager
from dpc.render.grafana import grafana_dashboards, render_grafana_dashboard, render_grafana_dashboard_provider, render_grafana_datasources
from dpc.render.prometheus import (
    ALERT_RULES_FILE,
    PROMETHEUS_CONFIG_FILE,
    RULE_TESTS_FILE,
    render_alert_rule_tests,
    render_alert_rules,
    render_prometheus,
)
from dpc.topology import derive
from tests.golden_files import assert_matches_golden, assert_no_stale_golden_files

pytestmark = pytest.mark.contract

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = PROJECT_ROOT / "tests" / "golden" / "monitoring"
TIMEOUT = 60


@cache
def prod_layout() -> ClusterLayout:
    return derive(settings_from_stack_file(PROJECT_ROOT / "Pulumi.prod.yaml")).layout


def golden_files() -> dict[str, Callable[[], str]]:
    """Every rendered file of the prod stack, by the name it is delivered under."""
    layout = prod_layout()
    files: dict[str, Callable[[], str]] = {
        PROMETHEUS_CONFIG_FILE: lambda: render_prometheus(layout),
        ALERT_RULES_FILE: lambda: render_alert_rules(layout),
        RULE_TESTS_FILE: lambda: render_alert_rule_tests(layout),
        ALERTMANAGER_CONFIG_FILE: lambda: render_alertmanager(layout),
        "grafana-datasources.yml": lambda: render_grafana_datasources(layout),
        "grafana-dashboards.yml": render_grafana_dashboard_provider,
    }
    for name in grafana_dashboards():
        files[f"dashboard-{name}.json"] = lambda name=name: render_grafana_dashboard(name)
    return files


def run(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.mark.parametrize("name", sorted(golden_files()))
def test_golden(name: str) -> None:
    assert_matches_golden(GOLDEN_DIR / name, golden_files()[name](), name)


def test_golden_directory_has_no_stale_files() -> None:
    assert_no_stale_golden_files(GOLDEN_DIR, set(golden_files()))


def layout_in(directory: Path) -> ClusterLayout:
    """The prod layout with its config and secrets directories moved to `directory`."""
    layout = prod_layout()
    return dataclasses.replace(layout, paths=dataclasses.replace(layout.paths, config=str(directory), secrets=str(directory)))


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    layout = layout_in(tmp_path)
    (tmp_path / PROMETHEUS_CONFIG_FILE).write_text(render_prometheus(layout))
    (tmp_path / ALERT_RULES_FILE).write_text(render_alert_rules(layout))
    (tmp_path / CA_SECRET).write_text("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
    result = run("promtool", "check", "config", PROMETHEUS_CONFIG_FILE, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    (tmp_path / ALERT_RULES_FILE).write_text(render_alert_rules(prod_layout()))
    result = run("promtool", "check", "rules", ALERT_RULES_FILE, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rule_count = sum(len(group["rules"]) for group in yaml.safe_load(render_alert_rules(prod_layout()))["groups"])
    assert f"SUCCESS: {rule_count} rules found" in result.stdout


def test_promtool_rule_tests_pass(tmp_path: Path) -> None:
    (tmp_path / ALERT_RULES_FILE).write_text(render_alert_rules(prod_layout()))
    (tmp_path / RULE_TESTS_FILE).write_text(render_alert_rule_tests(prod_layout()))
    result = run("promtool", "test", "rules", RULE_TESTS_FILE, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_tests_fail_when_quiet_cases_get_firing_series(tmp_path: Path) -> None:
    """Each alert's quiet case, fed its firing case's series, must fail: the cases discriminate."""
    tests = yaml.safe_load(render_alert_rule_tests(prod_layout()))
    firing, quiet = tests["tests"][0::2], tests["tests"][1::2]
    for fires, stays_quiet in zip(firing, quiet, strict=True):
        assert fires["alert_rule_test"][0]["exp_alerts"] and not stays_quiet["alert_rule_test"][0]["exp_alerts"]
        stays_quiet["input_series"] = fires["input_series"]
    (tmp_path / ALERT_RULES_FILE).write_text(render_alert_rules(prod_layout()))
    (tmp_path / RULE_TESTS_FILE).write_text(yaml.safe_dump({**tests, "tests": quiet}))
    result = run("promtool", "test", "rules", RULE_TESTS_FILE, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    failed = {line.split("alertname: ")[1].split(",")[0] for line in output.splitlines() if "alertname: " in line}
    assert failed == {test["alert_rule_test"][0]["alertname"] for test in quiet}


@pytest.mark.parametrize(("webhook_url", "token_file"), [(None, None), ("https://hooks.example.com/dpc", None), ("https://hooks.example.com/dpc", "token")])
def test_amtool_accepts_the_alertmanager_config(tmp_path: Path, webhook_url: str | None, token_file: str | None) -> None:
    if token_file is not None:
        (tmp_path / token_file).write_text("not-a-real-token\n")
    config = render_alertmanager(prod_layout(), webhook_url, str(tmp_path / token_file) if token_file else None)
    (tmp_path / ALERTMANAGER_CONFIG_FILE).write_text(config)
    result = run("amtool", "check-config", ALERTMANAGER_CONFIG_FILE, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    for severity in ("critical", "warning"):
        routed = run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG_FILE}", f"severity={severity}", cwd=tmp_path)
        assert routed.returncode == 0, routed.stderr
        assert routed.stdout.strip() == f"postgres-prod-{severity}"
