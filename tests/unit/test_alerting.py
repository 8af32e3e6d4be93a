"""Where alerts go: the webhook settings, their validation, and how the token travels (a Docker
secret file Alertmanager reads, never the plain config)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dpc.config import stack_file_config
from dpc.services import ALERTING_TOKEN_SECRET
from tests.plan_graph import PlanGraph
from tests.unit.conftest import plan_of
from tests.unit.test_settings import only_problem, stack

URL = "https://alerts.example.com/hooks/postgres"
STACK_FILE = f"""\
config:
  dpc:cloud: local
  dpc:environment: dev
  dpc:alerting:
    webhookUrl: {URL}
    webhookToken:
      secure: AAABAHVmYWtlLWNpcGhlcnRleHQ=
"""


@pytest.mark.parametrize(
    ("alerting", "path", "words"),
    [
        ({"webhookUrl": "http://alerts.example.com/hook"}, "alerting.webhookUrl", "https://"),
        ({"webhookUrl": "https://user:pw@alerts.example.com/hook"}, "alerting.webhookUrl", "credentials"),
        ({"webhookUrl": "https://alerts.example.com/hook?token=abc"}, "alerting.webhookUrl", "query"),
        ({"webhookToken": "abc"}, "alerting.webhookToken", "without a webhook"),
    ],
)
def test_a_webhook_that_would_leak_or_go_nowhere_is_refused(alerting: dict[str, Any], path: str, words: str) -> None:
    problem = only_problem(stack("prod", alerting=alerting))
    assert problem.path == path and words in problem.message


def test_a_nested_secret_is_masked_and_makes_its_key_secret(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.alerting.yaml"
    path.write_text(STACK_FILE)
    config, secret_keys = stack_file_config(path)
    assert json.loads(config["dpc:alerting"]) == {"webhookUrl": URL, "webhookToken": "[secret]"}
    assert secret_keys == ["dpc:alerting"]


def test_the_token_reaches_alertmanager_as_a_secret_file_and_the_url_as_config(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.alerting.yaml").write_text(STACK_FILE)
    graph = PlanGraph(plan_of("alerting", tmp_path))
    (service,) = [s for s in graph.of_type("docker:index/service:Service") if s.inputs["name"] == "alertmanager"]
    mounted = {m["fileName"] for m in service.inputs["taskSpec"]["containerSpec"]["secrets"]}
    assert mounted == {f"/run/secrets/{ALERTING_TOKEN_SECRET}"}
    (token,) = [s for s in graph.of_type("docker:index/secret:Secret") if s.name.endswith(f"secret-{ALERTING_TOKEN_SECRET.replace('_', '-')}")]
    assert token.inputs["data"] == "[secret]"
    (config,) = [c for c in graph.of_type("docker:index/serviceConfig:ServiceConfig") if c.name.endswith("config-alertmanager-yml")]
    receivers = yaml.safe_load(base64.b64decode(config.inputs["data"]))["receivers"]
    for receiver in receivers:
        (webhook,) = receiver["webhook_configs"]
        assert webhook["url"] == URL
        assert webhook["http_config"]["authorization"] == {"type": "Bearer", "credentials_file": f"/run/secrets/{ALERTING_TOKEN_SECRET}"}
