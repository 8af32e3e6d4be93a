"""The one translation of the services into Swarm terms (dpc/swarm_spec.py): its Engine API bodies
have the Engine API's field names and types."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dpc.cluster import swarm_layout
from dpc.config import settings_from_stack_file
from dpc.services import Placement, ServiceSpec, database_services
from dpc.stack_files import plain_configs
from dpc.swarm_spec import EndpointMode, EngineRefs, ObjectRef, SwarmService, engine_network_spec, engine_service_spec, swarm_network, swarm_service
from dpc.tiers import TIERS, Tier

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The Engine API v1.41 schema (docs/api/v1.41.yaml of moby/moby: definitions ServiceSpec, TaskSpec,
# Mount, Limit, ResourceObject, EndpointSpec, EndpointPortConfig, NetworkAttachmentConfig, and the
# NetworkCreate request), for the fields the translation sets: a nested dict is an object, a list
# of one item an array of it, a type the JSON type (int for int64/uint32, durations in nanoseconds).
_FILE = {"Name": str, "UID": str, "GID": str, "Mode": int}
_RESOURCES = {"NanoCPUs": int, "MemoryBytes": int}
_UPDATE = {"Parallelism": int, "Delay": int, "FailureAction": str, "Monitor": int, "MaxFailureRatio": float, "Order": str}
SERVICE_SCHEMA: dict[str, Any] = {
    "Name": str,
    "Labels": {str: str},
    "TaskTemplate": {
        "ContainerSpec": {
            "Image": str,
            "Args": [str],
            "Env": [str],
            "User": str,
            "Secrets": [{"File": _FILE, "SecretID": str, "SecretName": str}],
            "Configs": [{"File": _FILE, "ConfigID": str, "ConfigName": str}],
            "Mounts": [{"Type": str, "Source": str, "Target": str, "ReadOnly": bool}],
            "StopGracePeriod": int,
        },
        "Resources": {"Limits": _RESOURCES, "Reservations": _RESOURCES},
        "RestartPolicy": {"Condition": str, "Delay": int, "MaxAttempts": int, "Window": int},
        "Placement": {"Constraints": [str], "MaxReplicas": int},
        "Networks": [{"Target": str}],
    },
    "Mode": {"Replicated": {"Replicas": int}, "Global": {}},
    "UpdateConfig": _UPDATE,
    "RollbackConfig": _UPDATE,
    "EndpointSpec": {"Mode": str, "Ports": [{"Protocol": str, "TargetPort": int, "PublishedPort": int, "PublishMode": str}]},
}
NETWORK_SCHEMA: dict[str, Any] = {
    "Name": str, "CheckDuplicate": bool, "Driver": str, "Attachable": bool, "Options": {str: str},
    "IPAM": {"Config": [{"Subnet": str}]}, "Labels": {str: str},
}
ENUMS = {
    "TaskTemplate.ContainerSpec.Mounts.Type": {"bind", "volume", "tmpfs", "npipe"},
    "TaskTemplate.RestartPolicy.Condition": {"none", "on-failure", "any"},
    "UpdateConfig.FailureAction": {"continue", "pause", "rollback"},
    "UpdateConfig.Order": {"stop-first", "start-first"},
    "RollbackConfig.FailureAction": {"continue", "pause"},
    "RollbackConfig.Order": {"stop-first", "start-first"},
    "EndpointSpec.Mode": {"vip", "dnsrr"},
    "EndpointSpec.Ports.Protocol": {"tcp", "udp", "sctp"},
    "EndpointSpec.Ports.PublishMode": {"ingress", "host"},
}


def schema_problems(value: Any, schema: Any, path: str = "") -> list[str]:
    """Where `value` has a field the schema lacks or a value of another type (bool is not an int)."""
    if isinstance(schema, type):
        ok = type(value) is schema
        return [] if ok else [f"{path}: {type(value).__name__} is not {schema.__name__}"]
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{path}: not an array"]
        return [p for item in value for p in schema_problems(item, schema[0], path)]
    if not isinstance(value, dict):
        return [f"{path}: not an object"]
    if str in schema:
        return [p for k, v in value.items() for p in schema_problems(k, str, path) + schema_problems(v, schema[str], f"{path}.{k}")]
    problems = [f"{path}.{key}: not in the Engine API's schema" for key in value if key not in schema]
    problems += [p for key in value if key in schema for p in schema_problems(value[key], schema[key], f"{path}.{key}".lstrip("."))]
    return problems


def enum_problems(value: Any, path: str = "") -> list[str]:
    """Where a field with an enumerated value in the Engine API's schema holds another value."""
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in enum_problems(item, f"{path}.{key}".lstrip("."))]
    if isinstance(value, list):
        return [p for item in value for p in enum_problems(item, path)]
    return [f"{path}: {value!r} is not one of {sorted(ENUMS[path])}"] if path in ENUMS and value not in ENUMS[path] else []


def _specs(stack: str, placement: Placement = "cluster") -> tuple[tuple[ServiceSpec, ...], set[str]]:
    settings = settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml")
    layout = swarm_layout(settings)
    return database_services(settings, layout, placement), set(plain_configs(settings, layout, None))


def _refs(services: list[SwarmService]) -> EngineRefs:
    names = {f.name for s in services for f in (*s.secrets, *s.configs)}
    return EngineRefs(
        images={"postgres": "dpc-postgres:1", "services": "dpc-services:1"},
        networks={tier: f"id-of-{tier.value}" for tier in Tier},
        objects={name: ObjectRef(f"id-of-{name}", f"{name}-0123456789ab") for name in names},
    )


@pytest.mark.parametrize("endpoint_mode", ["vip", "dnsrr"])
def test_every_service_body_has_the_engine_apis_fields_and_types(endpoint_mode: EndpointMode) -> None:
    specs, configs = _specs("prod")
    services = [swarm_service(spec, configs, endpoint_mode) for spec in specs]
    refs = _refs(services)
    for service in services:
        body = engine_service_spec(service, refs)
        assert schema_problems(body, SERVICE_SCHEMA) == [], service.name
        assert enum_problems(body) == [], service.name


def test_network_bodies_have_the_engine_apis_fields_and_types() -> None:
    for tier in TIERS:
        body = engine_network_spec(swarm_network(tier))
        assert schema_problems(body, NETWORK_SCHEMA) == [], tier.network_name
        assert body["Driver"] == "overlay" and body["Attachable"] is False and body["Labels"] == {"dpc.tier": tier.tier.value}
        assert body["IPAM"] == {"Config": [{"Subnet": tier.subnet}]}
        assert body["Options"] == ({"encrypted": ""} if tier.encrypted else {}), "IPsec where seed §2.2 mandates it"
    plain = engine_network_spec(swarm_network(replace(TIERS[0], encrypted=False)))
    assert plain["Options"] == {}, "an engine without IPsec gets an unencrypted network only when asked"


def test_the_schema_check_catches_a_wrong_name_or_type() -> None:
    specs, configs = _specs("prod")
    service = swarm_service(specs[0], configs)
    body = engine_service_spec(service, _refs([service]))
    body["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"] = "60s"
    body["TaskTemplate"]["Resources"]["Limits"]["NanoCpus"] = 1
    body["UpdateConfig"]["Order"] = "stop-last"
    assert len(schema_problems(body, SERVICE_SCHEMA)) == 2 and len(enum_problems(body)) == 1


def test_durations_are_nanoseconds_and_sizes_bytes() -> None:
    specs, configs = _specs("prod")
    patroni = next(s for s in specs if s.name == "patroni-1")
    service = swarm_service(patroni, configs)
    body = engine_service_spec(service, _refs([service]))
    task = body["TaskTemplate"]
    assert task["ContainerSpec"]["StopGracePeriod"] == 60 * 10**9
    assert task["RestartPolicy"] == {"Condition": "any", "Delay": 5 * 10**9, "Window": 120 * 10**9}
    assert body["UpdateConfig"]["Delay"] == patroni.update.delay_seconds * 10**9
    assert body["RollbackConfig"]["Delay"] == patroni.update.rollback_delay_seconds * 10**9
    assert task["Resources"]["Limits"] == {"NanoCPUs": round(patroni.resources.cpu_limit * 10**9), "MemoryBytes": patroni.resources.memory_limit_mb * 2**20}
    assert body["Mode"] == {"Replicated": {"Replicas": 1}}
    assert task["ContainerSpec"]["User"] == "999" and all(s["File"]["UID"] == s["File"]["GID"] == "999" for s in task["ContainerSpec"]["Secrets"])
    assert task["Networks"] == [{"Target": "id-of-coordinator"}, {"Target": "id-of-data"}, {"Target": "id-of-monitoring"}]


def test_files_are_configs_when_the_catalogue_has_them_as_plain_files() -> None:
    specs, configs = _specs("prod")
    service = swarm_service(next(s for s in specs if s.name == "haproxy"), configs)
    assert [f.name for f in service.configs] == ["haproxy.cfg"]
    assert [f.name for f in service.secrets] == ["haproxy_stats_auth", "tls_ca_cert"]
    body = engine_service_spec(service, _refs([service]))
    assert body["TaskTemplate"]["ContainerSpec"]["Configs"][0] == {
        "File": {"Name": "/etc/dpc/haproxy.cfg", "UID": "997", "GID": "997", "Mode": 0o444},
        "ConfigID": "id-of-haproxy.cfg", "ConfigName": "haproxy.cfg-0123456789ab",
    }


def test_pinned_replicas_never_share_a_node_and_global_services_have_no_count() -> None:
    specs, configs = _specs("prod")
    by_name = {s.name: swarm_service(s, configs) for s in specs}
    refs = _refs(list(by_name.values()))
    assert engine_service_spec(by_name["haproxy"], refs)["TaskTemplate"]["Placement"] == {"Constraints": ["node.role == manager"], "MaxReplicas": 1}
    assert "MaxReplicas" not in engine_service_spec(by_name["etcd-1"], refs)["TaskTemplate"]["Placement"], "one replica"
    node_exporter = engine_service_spec(by_name["node-exporter"], refs)
    assert node_exporter["Mode"] == {"Global": {}} and by_name["node-exporter"].converge is None
    local, local_configs = _specs("local", "single-node")
    unpinned = swarm_service(next(s for s in local if s.name == "haproxy"), local_configs)
    assert unpinned.max_replicas_per_node is None, "no constraint: the replicas may share the one engine"


def test_dnsrr_publishes_on_the_host_because_swarm_refuses_ingress_with_it() -> None:
    specs, configs = _specs("prod")
    haproxy = next(s for s in specs if s.name == "haproxy")
    vip, dnsrr = swarm_service(haproxy, configs), swarm_service(haproxy, configs, "dnsrr")
    refs = _refs([vip])
    deployed, lab = engine_service_spec(vip, refs)["EndpointSpec"], engine_service_spec(dnsrr, refs)["EndpointSpec"]
    assert deployed["Mode"] == "vip" and {p["PublishMode"] for p in deployed["Ports"]} == {"ingress"}
    assert lab["Mode"] == "dnsrr" and {p["PublishMode"] for p in lab["Ports"]} == {"host"}
    assert [p["PublishedPort"] for p in lab["Ports"]] == [p["PublishedPort"] for p in deployed["Ports"]]


def test_built_images_resolve_through_the_refs_and_vendor_images_stay_pinned() -> None:
    specs, configs = _specs("prod")
    services = {s.name: swarm_service(s, configs) for s in specs}
    refs = _refs(list(services.values()))
    assert engine_service_spec(services["patroni-1"], refs)["TaskTemplate"]["ContainerSpec"]["Image"] == "dpc-postgres:1"
    assert engine_service_spec(services["grafana"], refs)["TaskTemplate"]["ContainerSpec"]["Image"] == "grafana/grafana-oss:11.3.0"
    assert engine_service_spec(services["grafana"], refs)["TaskTemplate"]["ContainerSpec"]["Env"] == [
        "GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/grafana_admin_password", "GF_USERS_ALLOW_SIGN_UP=false",
    ]
