"""The one translation of the services into Swarm terms (dpc/swarm_spec.py): its Engine API bodies
have the Engine API's field names and types, and the offline plan's pulumi-docker inputs, the
exported stack file and those bodies say the same of every service and network, field by field."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest

from dpc.config import settings_from_stack_file
from dpc.database_files import plain_configs
from dpc.services import BUILT_IMAGES, Image, Placement, ServiceSpec, database_services, placement_of
from dpc.settings import Settings
from dpc.swarm_spec import EndpointMode, EngineRefs, ObjectRef, SwarmService, engine_network_spec, engine_service_spec, swarm_network, swarm_service
from dpc.tiers import TIERS, Tier
from dpc.topology import derive
from engine.docker_stack import docker_stack
from tests.plan_graph import PlanGraph
from tests.unit.test_database_stack import CONFIG, NETWORK, SECRET, SERVICE

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
    layout = derive(settings).layout
    return database_services(derive(settings), placement), set(plain_configs(settings, layout, None))


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
        assert body["Options"] == ({"encrypted": ""} if tier.encrypted else {}), "IPsec where design §2.2 mandates it"
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
    assert engine_service_spec(services["grafana"], refs)["TaskTemplate"]["ContainerSpec"]["Image"] == Image.GRAFANA
    assert engine_service_spec(services["grafana"], refs)["TaskTemplate"]["ContainerSpec"]["Env"] == [
        "GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/grafana_admin_password", "GF_USERS_ALLOW_SIGN_UP=false",
    ]


# Parity: the pulumi-docker inputs the offline plan records, the exported stack file and the
# Engine API body say the same of every service, field by field. Each row names a field of the
# Engine's body, where pulumi-docker and the stack file keep it, and how their value reads in the
# Engine's terms; an empty list or mapping and an absent key mean the same (each format leaves
# empties out in its own way). `_leaves` then checks that no field of any of the three is left
# out of the table, so a field added to one translation alone fails too.


def _ns(duration: str) -> int:
    """A Go duration of whole seconds ("60s") in nanoseconds."""
    assert re.fullmatch(r"\d+s", duration), duration
    return int(duration[:-1]) * 10**9


def _bytes(size: str) -> int:
    """A stack file's memory size ("512M", "536870912b") in bytes, as the docker CLI reads it."""
    match = re.fullmatch(r"(\d+)([bkmg]?)", size.lower())
    assert match, size
    number, unit = match.groups()
    return int(number) * {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}[unit]


def _nano_cpus(cpus: str) -> int:
    value = Decimal(cpus) * 10**9
    assert value == int(value), f"{cpus} CPUs is not a whole number of nano-CPUs: the docker CLI refuses it"
    return int(value)


def _pulumi_files(kind: str) -> Callable[[Any], Any]:
    def convert(files: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return [
            {
                "File": {"Name": f["fileName"], "UID": f["fileUid"], "GID": f["fileGid"], "Mode": f["fileMode"]},
                f"{kind}ID": f[f"{kind.lower()}Id"], f"{kind}Name": f[f"{kind.lower()}Name"],
            }
            for f in files or []
        ]
    return convert


def _compose_files(kind: str) -> Callable[[Any], Any]:
    def convert(files: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return [
            {"File": {"Name": f["target"], "UID": f["uid"], "GID": f["gid"], "Mode": f["mode"]}, f"{kind}ID": f["source"], f"{kind}Name": f["source"]}
            for f in files or []
        ]
    return convert


def _label_list(labels: list[dict[str, str]] | None) -> dict[str, str]:
    return {entry["label"]: entry["value"] for entry in labels or []}


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Row:
    """One field: its path in the Engine's body, and its paths and reading in the other two
    (None: the field has no place there, for the reason given)."""

    engine: str
    pulumi: tuple[str, ...] | None
    compose: tuple[str, ...] | None
    from_pulumi: Callable[..., Any] = _same
    from_compose: Callable[..., Any] = _same
    normalize: Callable[[Any], Any] = _same


def _update_rows(engine: str, pulumi: str, compose: str) -> tuple[Row, ...]:
    return (
        Row(f"{engine}.Parallelism", (f"{pulumi}.parallelism",), (f"{compose}.parallelism",)),
        Row(f"{engine}.Delay", (f"{pulumi}.delay",), (f"{compose}.delay",), _ns, _ns),
        Row(f"{engine}.FailureAction", (f"{pulumi}.failureAction",), (f"{compose}.failure_action",)),
        Row(f"{engine}.Monitor", (f"{pulumi}.monitor",), (f"{compose}.monitor",), _ns, _ns),
        Row(f"{engine}.MaxFailureRatio", (f"{pulumi}.maxFailureRatio",), (f"{compose}.max_failure_ratio",), float, float),
        Row(f"{engine}.Order", (f"{pulumi}.order",), (f"{compose}.order",)),
    )


def _resource_rows(engine: str, pulumi: str, compose: str) -> tuple[Row, ...]:
    return (
        Row(f"{engine}.NanoCPUs", (f"{pulumi}.nanoCpus",), (f"{compose}.cpus",), from_compose=_nano_cpus),
        Row(f"{engine}.MemoryBytes", (f"{pulumi}.memoryBytes",), (f"{compose}.memory",), from_compose=_bytes),
    )


CONTAINER = "taskSpec.containerSpec"
SERVICE_FIELDS: tuple[Row, ...] = (
    Row("Name", ("name",), ("<name>",)),
    Row("Labels", ("labels",), ("deploy.labels",), _label_list),
    Row("TaskTemplate.ContainerSpec.Image", (f"{CONTAINER}.image",), ("image",)),
    Row("TaskTemplate.ContainerSpec.Args", (f"{CONTAINER}.args",), ("command",)),
    Row(
        "TaskTemplate.ContainerSpec.Env", (f"{CONTAINER}.env",), ("environment",),
        lambda env: [f"{k}={v}" for k, v in (env or {}).items()], lambda env: [f"{k}={v}" for k, v in (env or {}).items()],
        normalize=lambda env: sorted(env or []),
    ),
    Row("TaskTemplate.ContainerSpec.User", (f"{CONTAINER}.user",), ("user",)),
    Row("TaskTemplate.ContainerSpec.Secrets", (f"{CONTAINER}.secrets",), ("secrets",), _pulumi_files("Secret"), _compose_files("Secret")),
    Row("TaskTemplate.ContainerSpec.Configs", (f"{CONTAINER}.configs",), ("configs",), _pulumi_files("Config"), _compose_files("Config")),
    Row(
        "TaskTemplate.ContainerSpec.Mounts", (f"{CONTAINER}.mounts",), ("volumes",),
        lambda mounts: [{"Type": m["type"], "Source": m["source"], "Target": m["target"], "ReadOnly": m["readOnly"]} for m in mounts or []],
        lambda mounts: [{"Type": m["type"], "Source": m["source"], "Target": m["target"], "ReadOnly": m["read_only"]} for m in mounts or []],
    ),
    Row("TaskTemplate.ContainerSpec.StopGracePeriod", (f"{CONTAINER}.stopGracePeriod",), ("stop_grace_period",), _ns, _ns),
    *_resource_rows("TaskTemplate.Resources.Limits", "taskSpec.resources.limits", "deploy.resources.limits"),
    *_resource_rows("TaskTemplate.Resources.Reservations", "taskSpec.resources.reservation", "deploy.resources.reservations"),
    Row("TaskTemplate.RestartPolicy.Condition", ("taskSpec.restartPolicy.condition",), ("deploy.restart_policy.condition",)),
    Row("TaskTemplate.RestartPolicy.Delay", ("taskSpec.restartPolicy.delay",), ("deploy.restart_policy.delay",), _ns, _ns),
    Row("TaskTemplate.RestartPolicy.Window", ("taskSpec.restartPolicy.window",), ("deploy.restart_policy.window",), _ns, _ns),
    Row("TaskTemplate.Placement.Constraints", ("taskSpec.placement.constraints",), ("deploy.placement.constraints",)),
    Row("TaskTemplate.Placement.MaxReplicas", ("taskSpec.placement.maxReplicas",), ("deploy.placement.max_replicas_per_node",)),
    Row(
        "TaskTemplate.Networks", ("taskSpec.networksAdvanceds",), ("networks",),
        lambda networks: [{"Target": n["id"]} for n in networks], lambda networks: [{"Target": name} for name in networks],
    ),
    Row(
        "Mode", ("mode",), ("deploy.mode", "deploy.replicas"),
        lambda mode: {"Global": {}} if mode.get("global") else {"Replicated": {"Replicas": mode["replicated"]["replicas"]}},
        lambda mode, replicas: {"Global": {}} if mode == "global" else {"Replicated": {"Replicas": replicas}},
    ),
    *_update_rows("UpdateConfig", "updateConfig", "deploy.update_config"),
    *_update_rows("RollbackConfig", "rollbackConfig", "deploy.rollback_config"),
    Row("EndpointSpec.Mode", ("endpointSpec.mode",), ("deploy.endpoint_mode",)),
    Row(
        "EndpointSpec.Ports", ("endpointSpec.ports",), ("ports",),
        lambda ports: [
            {"Protocol": p["protocol"], "TargetPort": p["targetPort"], "PublishedPort": p["publishedPort"], "PublishMode": p["publishMode"]}
            for p in ports or []
        ],
        lambda ports: [
            {"Protocol": p["protocol"], "TargetPort": p["target"], "PublishedPort": p["published"], "PublishMode": p["mode"]} for p in ports or []
        ],
    ),
)
PULUMI_ONLY = {"convergeConfig.delay", "convergeConfig.timeout"}
"""pulumi-docker's own wait for a service to converge: no Engine field (checked against SwarmService.converge)."""

NETWORK_FIELDS: tuple[Row, ...] = (
    Row("Name", ("name",), ("name",)),
    Row("Driver", ("driver",), ("driver",)),
    Row("Attachable", ("attachable",), ("attachable",)),
    Row("Options", ("options",), ("driver_opts",)),
    Row("IPAM.Config", ("ipamConfigs",), ("ipam.config",), lambda c: [{"Subnet": x["subnet"]} for x in c], lambda c: [{"Subnet": x["subnet"]} for x in c]),
    Row("Labels", ("labels",), ("labels",), _label_list),
    Row("CheckDuplicate", None, None),
)
"""CheckDuplicate asks the Engine to refuse a second network of the same name: pulumi-docker and
`docker stack deploy` look the name up themselves."""


def _get(document: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(document, dict) or key not in document:
            return None
        document = document[key]
    return document


def _empty_is_absent(value: Any) -> Any:
    return None if value in (None, [], {}) else value


def _differences(engine: dict[str, Any], pulumi: dict[str, Any], compose: dict[str, Any], rows: tuple[Row, ...]) -> list[str]:
    differences: list[str] = []
    for row in rows:
        expected = _empty_is_absent(row.normalize(_get(engine, row.engine)))
        for side, paths, read, document in (("pulumi", row.pulumi, row.from_pulumi, pulumi), ("compose", row.compose, row.from_compose, compose)):
            if paths is None:
                continue
            values = [_get(document, path) for path in paths]
            found = _empty_is_absent(row.normalize(None if all(v is None for v in values) else read(*values)))
            if found != expected:
                differences.append(f"{row.engine}: engine {expected!r}, {side} {paths} {found!r}")
    return differences


def _leaves(document: Any, stops: set[str], path: str = "") -> set[str]:
    """The paths of a document's values, not descending below a path the table names."""
    if path in stops or not isinstance(document, dict):
        return {path}
    return {leaf for key, value in document.items() for leaf in _leaves(value, stops, f"{path}.{key}".lstrip("."))}


def _differences(engine: dict[str, Any], document: dict[str, Any], side: Literal["pulumi", "compose"], rows: tuple[Row, ...]) -> list[str]:
    """Where `document` (pulumi-docker's inputs or a stack file's entry) says otherwise than the Engine's body."""
    differences: list[str] = []
    for row in rows:
        paths, read = (row.pulumi, row.from_pulumi) if side == "pulumi" else (row.compose, row.from_compose)
        if paths is None:
            continue
        values = [_get(document, path) for path in paths]
        found = _empty_is_absent(row.normalize(None if all(v is None for v in values) else read(*values)))
        expected = _empty_is_absent(row.normalize(_get(engine, row.engine)))
        if found != expected:
            differences.append(f"{row.engine}: the Engine's body says {expected!r}, {side}'s {'/'.join(paths)} {found!r}")
    return differences


def _unmapped(engine: dict[str, Any], pulumi: dict[str, Any], compose: dict[str, Any], rows: tuple[Row, ...]) -> list[str]:
    """Fields of any of the three that no row of the table holds to the others."""
    mapped = {
        "engine": {row.engine for row in rows},
        "pulumi": {path for row in rows for path in row.pulumi or ()} | PULUMI_ONLY,
        "compose": {path for row in rows for path in row.compose or ()},
    }
    found = {"engine": engine, "pulumi": pulumi, "compose": compose}
    return [f"{side}: {leaf}" for side, document in found.items() for leaf in sorted(_leaves(document, mapped[side]) - mapped[side])]


def _built_images(services: list[SwarmService], image_of: Callable[[SwarmService], str]) -> dict[str, str]:
    """Built image key → the one reference every service of that image runs."""
    references: dict[str, set[str]] = {}
    for service in services:
        if service.image_built:
            references.setdefault(service.image, set()).add(image_of(service))
    assert all(len(found) == 1 for found in references.values()), references
    return {key: found.pop() for key, found in references.items()}


def _stack(settings: Settings) -> tuple[list[SwarmService], dict[str, str], Placement]:
    layout = derive(settings).layout
    placement = placement_of(settings)
    configs = plain_configs(settings, layout, None)
    return [swarm_service(spec, configs) for spec in database_services(derive(settings), placement)], configs, placement


def _pulumi_refs(graph: PlanGraph, services: list[SwarmService]) -> EngineRefs:
    """What the planned resources are, by the names SwarmService uses: a secret's or config's
    name is its catalogue name and a digest (components/database.py)."""
    planned = {r.inputs["name"]: r.inputs for r in graph.of_type(SERVICE)}
    images = _built_images(services, lambda s: planned[s.name]["taskSpec"]["containerSpec"]["image"])
    for image in graph.of_type("docker:index/image:Image"):
        key = next(key for key, context in BUILT_IMAGES.items() if context == image.inputs["build"]["context"])
        assert images[key].startswith(image.inputs["imageName"].rsplit(":", 1)[0]), "services run the image the stack builds"
    tiers = {t.network_name: t.tier for t in TIERS}
    return EngineRefs(
        images=images,
        networks={tiers[n.inputs["name"]]: n.id for n in graph.of_type(NETWORK)},
        objects={r.inputs["name"].rsplit("-", 1)[0]: ObjectRef(r.id, r.inputs["name"]) for r in graph.of_type(SECRET) + graph.of_type(CONFIG)},
    )


def _compose_refs(compose: dict[str, Any], services: list[SwarmService]) -> EngineRefs:
    """A stack file names what `docker stack deploy` creates: networks, secrets and configs by name."""
    return EngineRefs(
        images=_built_images(services, lambda s: compose["services"][s.name]["image"]),
        networks={Tier(n["labels"]["dpc.tier"]): n["name"] for n in compose["networks"].values()},
        objects={name: ObjectRef(name, name) for name in (*compose["secrets"], *compose["configs"])},
    )


@pytest.mark.parametrize("stack", ["prod", "local"])
def test_the_plan_the_stack_file_and_the_engine_body_say_the_same_of_every_service(graph: PlanGraph, settings: Settings) -> None:
    services, configs, placement = _stack(settings)
    planned = {r.inputs["name"]: r.inputs for r in graph.of_type(SERVICE)}
    compose = docker_stack(derive(settings), configs, placement)
    assert set(planned) == set(compose["services"]) == {s.name for s in services}
    pulumi_refs, compose_refs = _pulumi_refs(graph, services), _compose_refs(compose, services)
    problems: list[str] = []
    for service in services:
        pulumi, exported = planned[service.name], {"<name>": service.name, **compose["services"][service.name]}
        engine = engine_service_spec(service, pulumi_refs)
        problems += [f"{service.name} {p}" for p in _differences(engine, pulumi, "pulumi", SERVICE_FIELDS)]
        problems += [f"{service.name} {p}" for p in _differences(engine_service_spec(service, compose_refs), exported, "compose", SERVICE_FIELDS)]
        problems += [f"{service.name} unmapped {p}" for p in _unmapped(engine, pulumi, exported, SERVICE_FIELDS)]
        waits = pulumi.get("convergeConfig")
        found = (_ns(waits["delay"]), _ns(waits["timeout"])) if waits else None
        expected = (service.converge.delay_seconds * 10**9, service.converge.timeout_seconds * 10**9) if service.converge else None
        problems += [f"{service.name} convergeConfig {waits} is not {service.converge}"] if found != expected else []
    assert problems == []


@pytest.mark.parametrize("stack", ["prod", "local"])
def test_the_plan_the_stack_file_and_the_engine_body_say_the_same_of_every_network(graph: PlanGraph, settings: Settings) -> None:
    _, configs, placement = _stack(settings)
    planned = {n.inputs["name"]: n.inputs for n in graph.of_type(NETWORK)}
    exported = docker_stack(derive(settings), configs, placement)["networks"]
    assert set(planned) == set(exported) == {t.network_name for t in TIERS}
    problems: list[str] = []
    for tier in TIERS:
        engine, pulumi, compose = engine_network_spec(swarm_network(tier)), planned[tier.network_name], exported[tier.network_name]
        problems += [f"{tier.network_name} {p}" for p in _differences(engine, pulumi, "pulumi", NETWORK_FIELDS)]
        problems += [f"{tier.network_name} {p}" for p in _differences(engine, compose, "compose", NETWORK_FIELDS)]
        problems += [f"{tier.network_name} unmapped {p}" for p in _unmapped(engine, pulumi, compose, NETWORK_FIELDS)]
    assert problems == []
