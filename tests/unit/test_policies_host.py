"""The pack under its real host: started as the engine starts it (the stack's config in its
environment), it prints its port and serves the policies over gRPC; what it reports is what the
offline harness reports, for a resource (Analyze) and for the whole stack (AnalyzeStack, with
parents, dependencies and property dependencies): violations, values unknown at preview (the
engine's sentinel in the Struct), secrets (the engine's secret envelope).
"""

from __future__ import annotations

import copy
import json
import os
import queue
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from policies.pack import PACK_NAME, POLICIES
from review.plan import stack_config
from review.policy import SECRET_SIG_KEY, SECRET_SIGNATURE, PlannedResource, Violation, configure, plan_resources, run_policies
from tests.unit.conftest import plan_of
from tests.unit.policy_cases import res
from tests.unit.policy_shapes import preview_of

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
STARTUP_SECONDS = 30
HOSTS = {
    "python policies/__main__.py": [sys.executable, str(PACK_DIR / "__main__.py")],
    "python -m pulumi.policy (the engine's Python policy host)": [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(PACK_DIR)],
}
_LEVELS = {EnforcementLevel.MANDATORY: analyzer_pb2.MANDATORY, EnforcementLevel.ADVISORY: analyzer_pb2.ADVISORY}
STACK_CONFIG, _ = stack_config("prod")
PROD_PACK = json.loads((PACK_DIR / "config" / "prod.json").read_text())


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
    environment = os.environ | {"PULUMI_CONFIG": json.dumps(STACK_CONFIG)}  # as the engine hands the pack the stack's config
    process = subprocess.Popen(HOSTS[request.param], cwd=PACK_DIR, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment)
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


def _configure(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    """The prod pack config, as the engine sends it once resolved (levels and properties)."""
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for configured in configure(PROD_PACK):
        request.policyConfig[configured.policy.name].enforcementLevel = _LEVELS[configured.level]
        request.policyConfig[configured.policy.name].properties.update(dict(configured.properties))
    analyzer.Configure(request)


def test_the_served_pack_reports_what_the_harness_reports(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    _configure(analyzer)
    prod = PROD_PACK
    volume = res("aws:ebs/volume:Volume", "prod-storage-worker-1-data", {"availabilityZone": "us-east-1a", "size": 100, "encrypted": False})
    properties = struct_pb2.Struct()
    properties.update(dict(volume.inputs))
    served = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(type=volume.type, properties=properties, urn=volume.urn, name=volume.name,
                                                           options=analyzer_pb2.AnalyzerResourceOptions(protect=False)))
    offline = run_policies([volume], prod, STACK_CONFIG, [p for p in POLICIES if isinstance(p, ResourceValidationPolicy)])  # Analyze runs these alone
    assert {(d.policyName, d.message, d.enforcementLevel) for d in served.diagnostics} == {(v.policy, v.message, _LEVELS[v.level]) for v in offline}
    assert {v.policy for v in offline} == {"disks-encrypted-with-customer-key", "required-tags", "stateful-resources-protected"}


def _wire(value: Any) -> Any:
    """A plan's property as the engine marshals it for the analyzer: a value unknown at preview as
    the unknown sentinel; secret envelopes and everything else as they are."""
    if value == "[unknown]":
        return UNKNOWN_STRING_VALUE
    if isinstance(value, dict):
        return {key: _wire(item) for key, item in cast(dict[str, Any], value).items()}
    if isinstance(value, list):
        return [_wire(item) for item in cast(list[Any], value)]
    return value


def _struct(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(_wire(dict(properties)))
    return struct


def _stack_request(resources: Sequence[PlannedResource]) -> analyzer_pb2.AnalyzeStackRequest:
    """The engine's AnalyzeStack: every resource with its options, parent, dependencies and the
    resources each property was computed from."""
    request = analyzer_pb2.AnalyzeStackRequest()
    for r in resources:
        resource = request.resources.add(type=r.type, properties=_struct(r.inputs), urn=r.urn, name=r.name, parent=r.parent,
                                         dependencies=list(r.dependencies), options=analyzer_pb2.AnalyzerResourceOptions(protect=r.protect, parent=r.parent))
        for key, urns in (r.property_dependencies or {}).items():
            resource.propertyDependencies[key].urns.extend(urns)
    return request


def _served(analyzer: analyzer_pb2_grpc.AnalyzerStub, resources: Sequence[PlannedResource]) -> Counter[tuple[str, str, str, int]]:
    """What the served pack reports on the resources: each through Analyze (with its provider),
    then all of them through AnalyzeStack. A per-resource diagnostic names no URN on the wire: the
    engine files it under the resource it asked about."""
    providers = {r.urn: r for r in resources if r.type.startswith("pulumi:providers:")}
    found: Counter[tuple[str, str, str, int]] = Counter()
    for r in resources:
        provider = providers.get(r.provider.rsplit("::", 1)[0])
        request = analyzer_pb2.AnalyzeRequest(type=r.type, properties=_struct(r.inputs), urn=r.urn, name=r.name,
                                              options=analyzer_pb2.AnalyzerResourceOptions(protect=r.protect, parent=r.parent))
        if provider is not None:
            request.provider.CopyFrom(analyzer_pb2.AnalyzerProviderResource(type=provider.type, properties=_struct(provider.inputs),
                                                                            urn=provider.urn, name=provider.name))
        found.update((d.policyName, d.urn or r.urn, d.message, d.enforcementLevel) for d in analyzer.Analyze(request).diagnostics)
    found.update((d.policyName, d.urn, d.message, d.enforcementLevel) for d in analyzer.AnalyzeStack(_stack_request(resources)).diagnostics)
    return found


def _offline(resources: Sequence[PlannedResource]) -> tuple[Counter[tuple[str, str, str, int]], list[Violation]]:
    violations = run_policies(resources, PROD_PACK, STACK_CONFIG)
    return Counter((v.policy, v.urn, v.message, _LEVELS[v.level]) for v in violations), violations


def _step(plan: dict[str, Any], suffix: str) -> dict[str, Any]:
    [state] = [s["newState"] for s in plan["steps"] if s["urn"].endswith(f"::{suffix}")]
    return state


def _mutated(plan: dict[str, Any]) -> dict[str, Any]:
    """Postgres opened to the world (a whole-stack rule) and a password handed to Redis as an
    argument, marked secret as the engine marks it (it hands policies the plaintext)."""
    mutated = copy.deepcopy(plan)
    _step(mutated, "prod-network-manager-in-tcp5432-from-clients0")["inputs"]["cidrIpv4"] = "0.0.0.0/0"
    container = _step(mutated, "prod-database-redis")["inputs"]["taskSpec"]["containerSpec"]
    container["args"] = [*container["args"], "--requirepass", {SECRET_SIG_KEY: SECRET_SIGNATURE, "value": "correct horse battery staple"}]
    return mutated


SHAPES = {
    "up, clean": lambda: plan_of("prod"),
    "up, postgres open and a secret argument": lambda: _mutated(plan_of("prod")),
    "first preview, unknowns": lambda: preview_of("prod"),
    "first preview, unknowns, postgres open and a secret argument": lambda: _mutated(preview_of("prod")),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_served_pack_judges_the_whole_prod_plan_as_the_harness_does(analyzer: analyzer_pb2_grpc.AnalyzerStub, shape: str) -> None:
    _configure(analyzer)
    resources = plan_resources(SHAPES[shape]())
    offline, violations = _offline(resources)
    assert _served(analyzer, resources) == offline
    stack_policies = {p.name for p in POLICIES if isinstance(p, StackValidationPolicy)}
    if "open" in shape:  # the whole-stack violation and the secret are there: an unknown elsewhere hid neither
        assert any(v.policy == "no-ingress-from-anywhere" and v.urn.endswith("tcp5432-from-clients0") for v in violations)
        assert any(v.urn.endswith("prod-database-redis") and v.level is EnforcementLevel.MANDATORY for v in violations)
        assert any(v.policy in stack_policies and v.level is EnforcementLevel.MANDATORY for v in violations)
    if "preview" in shape:  # a whole-stack policy that could not judge some resources says which, as the host words it
        assert any("resource(s) not judged" in v.message and v.level is EnforcementLevel.ADVISORY for v in violations)
    if shape == "up, clean":
        assert violations == []
