"""The pack under its real host: started as the engine starts it, it prints its port and serves
the policies over gRPC; what it reports for a resource is what the offline harness reports.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

from policies.pack import PACK_NAME, POLICIES
from review.policy import configure, run_policies
from tests.unit.policy_cases import STACK_CONFIG, res

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
STARTUP_SECONDS = 30
HOSTS = {
    "python policies/__main__.py": [sys.executable, str(PACK_DIR / "__main__.py")],
    "python -m pulumi.policy (the engine's Python policy host)": [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(PACK_DIR)],
}
_LEVELS = {EnforcementLevel.MANDATORY: analyzer_pb2.MANDATORY, EnforcementLevel.ADVISORY: analyzer_pb2.ADVISORY}


def _first_line(process: subprocess.Popen[str]) -> str:
    """The first line the pack prints, waiting at most STARTUP_SECONDS."""
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline() if process.stdout else ""), daemon=True).start()
    try:
        return lines.get(timeout=STARTUP_SECONDS)
    except queue.Empty:
        pytest.fail(f"the pack printed no port within {STARTUP_SECONDS}s")


@pytest.fixture(params=HOSTS, scope="module")
def analyzer(request: pytest.FixtureRequest) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    process = subprocess.Popen(HOSTS[request.param], cwd=PACK_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _first_line(process)
        assert line.strip().isdigit(), f"expected the port alone on the first line, got {line!r}"
        with grpc.insecure_channel(f"127.0.0.1:{int(line)}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_served_pack_declares_every_policy_with_its_metadata(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == PACK_NAME and info.supportsConfig
    assert [p.name for p in info.policies] == [p.name for p in POLICIES]
    for policy in info.policies:
        assert policy.description and policy.remediation_steps and policy.severity != analyzer_pb2.POLICY_SEVERITY_UNSPECIFIED, policy.name
        assert policy.enforcementLevel == analyzer_pb2.MANDATORY, policy.name


def test_the_served_pack_reports_what_the_harness_reports(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    prod = json.loads((PACK_DIR / "config" / "prod.json").read_text())
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for configured in configure(prod):
        request.policyConfig[configured.policy.name].enforcementLevel = _LEVELS[configured.level]
        request.policyConfig[configured.policy.name].properties.update(dict(configured.properties))
    analyzer.Configure(request)
    volume = res("aws:ebs/volume:Volume", "prod-storage-worker-1-data", {"availabilityZone": "us-east-1a", "size": 100, "encrypted": False})
    properties = struct_pb2.Struct()
    properties.update(dict(volume.inputs))
    served = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(type=volume.type, properties=properties, urn=volume.urn, name=volume.name,
                                                           options=analyzer_pb2.AnalyzerResourceOptions(protect=False)))
    offline = run_policies([volume], prod, STACK_CONFIG, [p for p in POLICIES if isinstance(p, ResourceValidationPolicy)])  # Analyze runs these alone
    assert {(d.policyName, d.message, d.enforcementLevel) for d in served.diagnostics} == {(v.policy, v.message, _LEVELS[v.level]) for v in offline}
    assert {v.policy for v in offline} == {"disks-encrypted-with-customer-key", "required-tags", "stateful-resources-protected"}
