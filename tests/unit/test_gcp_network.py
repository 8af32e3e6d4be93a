"""The GCP network and endpoint (`providers/gcp/network.py`, `providers/gcp/load_balancer.py`), built
under mocks as components of a stack and read as a plan: the firewall is exactly the model's matrix
(design §2.5), Google's health checks reach only 5432 on the managers, names are GCP's, and the
passthrough load balancer is wired as design §2.4 says.
"""

from __future__ import annotations

import importlib
import inspect
import ipaddress
import re
from dataclasses import dataclass, field

import pulumi
import pytest

from components.base import StackContext
from components.load_balancer import LoadBalancer, LoadBalancerPlan, LoadBalancerTarget
from components.network import LOAD_BALANCER_GROUP, Network, NetworkPlan
from dpc.model import FIREWALL_MATRIX, LOAD_BALANCER_HEALTH_CHECK, LOAD_BALANCER_PORT, FromCidrs, FromLoadBalancer, FromRole, Role, Rule
from providers.gcp.load_balancer import build_load_balancer
from providers.gcp.mocks import COMPUTE_API, GcpMocks, autoname, mock_id, service_agent
from providers.gcp.network import build_network, gcp_name
from tests.mocked_program import run_mocked
from tests.plan_graph import PlanGraph, Resource

STACK = "gcp-prod"
PROJECT = "dpc-test-project"
REGION = "us-central1"
ZONES = ("us-central1-a", "us-central1-b", "us-central1-c")
VPC = "10.20.0.0/16"
ADMINS = ("198.51.100.0/24", "203.0.113.7/32")
CLIENTS = ("192.0.2.0/24",)
INTERNAL_PROBES = {"35.191.0.0/16", "130.211.0.0/22"}
EXTERNAL_PROBES = {"35.191.0.0/16", "209.85.152.0/22", "209.85.204.0/22"}
"""Google's health-check ranges (load-balancing docs, firewall rules), written here apart from the code."""
KEY = f"projects/{PROJECT}/locations/{REGION}/keyRings/r/cryptoKeys/k"
TAGS = {"CostCenter": "Platform Team", "Environment": "prod", "ManagedBy": "pulumi", "Project": "dpc", "Stack": STACK}

FIREWALL = "gcp:compute/firewall:Firewall"
FORWARDING_RULE = "gcp:compute/forwardingRule:ForwardingRule"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
INSTANCE_GROUP = "gcp:compute/instanceGroup:InstanceGroup"
NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


@dataclass
class Built:
    """The recorded resources of one stack's network and endpoint, and their results resolved."""

    graph: PlanGraph
    client_cidrs: tuple[str, ...]
    internal: bool
    groups: dict[str, str] = field(default_factory=dict[str, str])
    egress: dict[str, list[str]] = field(default_factory=dict[str, list[str]])
    address: str = ""
    instances: dict[str, str] = field(default_factory=dict[str, str])


def _network_plan(client_cidrs: tuple[str, ...]) -> NetworkPlan:
    return NetworkPlan(
        cidr=VPC,
        zones=ZONES,
        private_cidrs=("10.20.0.0/20",),
        public_cidrs=("10.20.16.0/24",),
        nat_per_zone=False,
        rules=FIREWALL_MATRIX,
        admin_cidrs=ADMINS,
        client_cidrs=client_cidrs,
        flow_log_retention_days=365,
        key_id=pulumi.Output.from_input(KEY),
    )


def _build(client_cidrs: tuple[str, ...], stack: str = STACK) -> Built:
    """Runs the two builders as the composition does, under the offline plan's GCP mocks."""
    built = Built(PlanGraph({"steps": []}), client_cidrs, internal=not client_cidrs)

    def program() -> None:
        context = StackContext(TAGS, protect_state=True, opts=pulumi.ResourceOptions())
        network = Network(f"{stack}-network", _network_plan(client_cidrs), build_network, context).result
        compute = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones"
        instances = {f"manager-{i + 1}": (zone, f"{compute}/{zone}/instances/m{i}") for i, zone in enumerate(ZONES)}
        built.instances = {node: link for node, (_, link) in instances.items()}
        targets = tuple(
            LoadBalancerTarget(node, zone, pulumi.Output.from_input(link), pulumi.Output.from_input("10.20.0.10")) for node, (zone, link) in instances.items()
        )
        plan = LoadBalancerPlan(built.internal, LOAD_BALANCER_PORT, LOAD_BALANCER_HEALTH_CHECK, network, ZONES, targets, deletion_protection=True)
        endpoint = LoadBalancer(f"{stack}-endpoint", plan, build_load_balancer, context).result
        for group, tag in network.firewall_group_ids.items():
            tag.apply(lambda value, group=group: built.groups.__setitem__(group, value))
        for zone, resources in network.private_egress.items():
            pulumi.Output.all(*(r.urn for r in resources)).apply(lambda urns, zone=zone: built.egress.__setitem__(zone, list(urns)))
        endpoint.address.apply(lambda value: setattr(built, "address", value))

    monitor = run_mocked(GcpMocks(PROJECT, REGION), program, stack)
    built.graph = PlanGraph({"steps": monitor.steps})
    return built


@pytest.fixture(scope="module", params=[(), CLIENTS], ids=["internal", "external"])
def built(request: pytest.FixtureRequest) -> Built:
    return _build(request.param)


def _expected(built: Built) -> set[tuple[str, str, str, str]]:
    """The matrix's rows to machines as (target tag, protocol, ports, source), each source tag or
    range one entry: what the firewall must allow, and all it may."""
    clients = built.client_cidrs or (VPC,)
    probes = INTERNAL_PROBES if built.internal else EXTERNAL_PROBES
    expected: set[tuple[str, str, str, str]] = set()
    for rule in FIREWALL_MATRIX:
        if rule.to is None:
            continue
        ports = "" if rule.protocol == "esp" else f"{rule.port}" if rule.port == rule.to_port else f"{rule.port}-{rule.to_port}"
        source = rule.source
        if isinstance(source, FromRole):
            sources = {f"tag:{source.role.value}"}
        elif isinstance(source, FromCidrs):
            sources = {f"range:{c}" for c in (ADMINS if source.kind == "admin" else clients)}
        else:
            assert isinstance(source, FromLoadBalancer)
            sources = {f"range:{c}" for c in (*clients, *probes)}
        expected |= {(rule.to.value, rule.protocol, ports, s) for s in sources}
    return expected


def _allowed(rule: Resource) -> set[tuple[str, str, str, str]]:
    inputs = rule.inputs
    sources = {f"tag:{t}" for t in inputs.get("sourceTags", [])} | {f"range:{r}" for r in inputs.get("sourceRanges", [])}
    return {
        (target, allow["protocol"], port, source)
        for target in inputs["targetTags"]
        for allow in inputs["allows"]
        for port in allow.get("ports") or [""]
        for source in sources
    }


def _id(graph: PlanGraph, suffix: str, typ: str) -> str:
    """The provider's id of a recorded resource, as the mocks give it."""
    resource = graph.named(suffix, typ)
    return mock_id(typ, resource.name, resource.inputs, {"project": PROJECT, "region": REGION})


def _link(graph: PlanGraph, suffix: str, typ: str) -> str:
    return COMPUTE_API + _id(graph, suffix, typ)


def _allows(built: Built) -> list[Resource]:
    return [r for r in built.graph.of_type(FIREWALL) if "allows" in r.inputs]


def test_the_firewall_allows_exactly_the_matrix(built: Built) -> None:
    allowed: set[tuple[str, str, str, str]] = set()
    for rule in _allows(built):
        assert rule.inputs["direction"] == "INGRESS" and rule.inputs["priority"] == 1000
        assert rule.inputs["targetTags"] and (rule.inputs.get("sourceTags") or rule.inputs.get("sourceRanges")), rule.name
        allowed |= _allowed(rule)
    assert allowed == _expected(built)


def test_every_group_has_its_network_tag_and_only_roles_carry_rules(built: Built) -> None:
    assert built.groups == {**{role.value: role.value for role in Role}, LOAD_BALANCER_GROUP: LOAD_BALANCER_GROUP}
    targets = {t for r in _allows(built) for t in r.inputs["targetTags"]}
    assert targets == {role.value for role in Role}, "the load balancer is no machine: no rule targets it"


def test_everything_else_is_denied_and_logged_and_nothing_opens_egress(built: Built) -> None:
    others = [r for r in built.graph.of_type(FIREWALL) if "allows" not in r.inputs]
    assert len(others) == 1
    deny = others[0].inputs
    assert deny["denies"] == [{"protocol": "all"}] and deny["sourceRanges"] == ["0.0.0.0/0"] and "targetTags" not in deny
    assert deny["priority"] == 65535 and deny["direction"] == "INGRESS" and deny["logConfig"] == {"metadata": "INCLUDE_ALL_METADATA"}
    assert all(r.inputs["direction"] == "INGRESS" for r in built.graph.of_type(FIREWALL))


def test_no_allow_rule_is_open_to_the_internet(built: Built) -> None:
    for rule in _allows(built):
        for cidr in rule.inputs.get("sourceRanges", []):
            assert ipaddress.ip_network(cidr).prefixlen >= 16, f"{rule.name} allows {cidr}"


def test_health_check_ranges_reach_only_5432_on_the_managers(built: Built) -> None:
    probes = INTERNAL_PROBES if built.internal else EXTERNAL_PROBES
    carrying = [r for r in _allows(built) if probes & set(r.inputs.get("sourceRanges", []))]
    assert len(carrying) == 1
    assert carrying[0].inputs["targetTags"] == ["manager"] and carrying[0].inputs["allows"] == [{"protocol": "tcp", "ports": ["5432"]}]
    assert probes <= set(carrying[0].inputs["sourceRanges"])
    other = (EXTERNAL_PROBES if built.internal else INTERNAL_PROBES) - probes
    assert not any(other & set(r.inputs.get("sourceRanges", [])) for r in _allows(built)), "only the probes of this stack's kind of balancer"


def test_firewall_names_are_gcp_names_and_each_rule_is_described(built: Built) -> None:
    names = [r.inputs["name"] for r in built.graph.of_type(FIREWALL)]
    assert len(set(names)) == len(names)
    assert all(NAME.fullmatch(n) and len(n) <= 63 for n in names), names
    assert all(0 < len(r.inputs["description"]) <= 2048 for r in built.graph.of_type(FIREWALL))
    assert "gcp-prod-network-manager-in-tcp5432-from-load-balancer" in names


def test_a_rule_describes_each_purpose_with_the_roles_it_comes_from(built: Built) -> None:
    rule = built.graph.named("network-worker-in-tcp5432-from-roles", FIREWALL)
    assert rule.inputs["sourceTags"] == ["manager", "app", "backup"]
    assert rule.inputs["description"] == (
        "PostgreSQL (HAProxy) (from manager); PostgreSQL (PgBouncer) (from app); PostgreSQL replication (backup agent) (from backup)"
    )


def test_long_names_are_cut_deterministically_and_stay_apart() -> None:
    long = "gcp-production-europe-west-network-manager-in-tcp2379-2380-from-roles"
    cut = gcp_name(long)
    assert len(cut) <= 63 and NAME.fullmatch(cut) and cut == gcp_name(long) and cut.startswith("gcp-production-europe-west-network-manager")
    assert gcp_name(long.replace("2379", "2378")) != cut
    assert gcp_name("Prod_Stack.network") == "prod-stack-network"
    assert NAME.fullmatch(gcp_name("1st-network-vpc"))


def test_every_name_fits_under_a_long_stack_name() -> None:
    names = [r.inputs["name"] for r in _build((), stack="gcp-production-europe-west4").graph.resources if "name" in r.inputs]
    assert names and all(NAME.fullmatch(n) and len(n) <= 63 for n in names)
    assert len(set(names)) == len(names)


def test_the_network_is_custom_mode_with_private_google_access_flow_logs_and_nat_for_the_private_subnetwork(built: Built) -> None:
    graph = built.graph
    assert graph.named("network-vpc").inputs["autoCreateSubnetworks"] is False
    private, public = graph.named("network-private").inputs, graph.named("network-public").inputs
    assert private["privateIpGoogleAccess"] is True and public["privateIpGoogleAccess"] is False
    assert (private["ipCidrRange"], public["ipCidrRange"]) == ("10.20.0.0/20", "10.20.16.0/24")
    for subnetwork in (private, public):
        assert subnetwork["logConfig"] == {"aggregationInterval": "INTERVAL_1_MIN", "flowSampling": 1, "metadata": "INCLUDE_ALL_METADATA"}
    nat = graph.named("network-nat").inputs
    assert nat["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"
    assert nat["subnetworks"] == [{"name": _link(graph, "network-private", SUBNETWORK), "sourceIpRangesToNats": ["ALL_IP_RANGES"]}]
    assert nat["logConfig"] == {"enable": True, "filter": "ERRORS_ONLY"}
    assert nat["router"] == autoname(graph.named("network-router").name)


def test_a_node_boots_after_the_router_and_nat_of_its_zone(built: Built) -> None:
    router, nat = built.graph.named("network-router").urn, built.graph.named("network-nat").urn
    assert built.egress == {zone: [router, nat] for zone in ZONES}


def test_the_endpoint_is_a_passthrough_balancer_checked_as_design_2_4_says(built: Built) -> None:
    graph = built.graph
    health = graph.named("endpoint-health").inputs
    assert (health["checkIntervalSec"], health["healthyThreshold"], health["unhealthyThreshold"]) == (10, 3, 3)
    assert health["tcpHealthCheck"] == {"port": 5432}
    groups = graph.of_type(INSTANCE_GROUP)
    assert sorted(g.inputs["zone"] for g in groups) == list(ZONES)
    assert sorted(i for g in groups for i in g.inputs["instances"]) == sorted(built.instances.values())
    assert all(g.inputs["instances"] == [built.instances[f"manager-{ZONES.index(g.inputs['zone']) + 1}"]] for g in groups)
    backend = graph.named("endpoint-haproxy", "gcp:compute/regionBackendService:RegionBackendService").inputs
    scheme = "INTERNAL" if built.internal else "EXTERNAL"
    assert backend["loadBalancingScheme"] == scheme and backend["protocol"] == "TCP"
    assert sorted(b["group"] for b in backend["backends"]) == sorted(_link(graph, g.name, INSTANCE_GROUP) for g in groups)
    assert {b["balancingMode"] for b in backend["backends"]} == {"CONNECTION"}
    assert backend["healthChecks"] == _id(graph, "endpoint-health", "gcp:compute/regionHealthCheck:RegionHealthCheck")


def test_the_forwarding_rule_is_internal_with_a_dns_name_unless_clients_are_listed(built: Built) -> None:
    rule = built.graph.named("endpoint-postgres", FORWARDING_RULE)
    inputs = rule.inputs
    assert inputs["ports"] == ["5432"] and inputs["ipProtocol"] == "TCP" and rule.protect
    assert inputs["name"] == "gcp-prod-endpoint-postgres"
    if built.internal:
        assert inputs["loadBalancingScheme"] == "INTERNAL" and inputs["serviceLabel"] == "postgres"
        assert inputs["subnetwork"] == _link(built.graph, "network-private", SUBNETWORK)
        assert built.address == f"postgres.gcp-prod-endpoint-postgres.il4.{REGION}.lb.{PROJECT}.internal"
    else:
        assert inputs["loadBalancingScheme"] == "EXTERNAL"
        assert not {"serviceLabel", "subnetwork", "network"} & set(inputs)
        assert ipaddress.ip_address(built.address) in ipaddress.ip_network("203.0.113.0/24"), "the mocks' external range"


def _labelable(token: str) -> bool:
    """Whether the SDK's resource takes `labels`: decided by pulumi_gcp itself."""
    _, module_path, class_name = token.split(":")
    cls = getattr(importlib.import_module(f"pulumi_gcp.{module_path.split('/')[0]}"), class_name)
    return "labels" in inspect.signature(cls._internal_init).parameters


def test_every_labelable_resource_carries_the_stack_labels(built: Built) -> None:
    gcp = [r for r in built.graph.resources if r.type.startswith("gcp:")]
    labelled = [r for r in gcp if _labelable(r.type)]
    assert [r.type for r in labelled] == [FORWARDING_RULE]
    assert all(r.inputs["labels"]["cost_center"] == "platform-team" and r.inputs["labels"]["stack"] == STACK for r in labelled)


def test_the_rule_to_the_load_balancer_itself_has_no_gcp_counterpart() -> None:
    assert [r for r in FIREWALL_MATRIX if r.to is None] == [Rule(None, "tcp", 5432, 5432, FromCidrs("clients"), "PostgreSQL endpoint (clients)")]


def test_flow_logs_are_kept_as_long_as_the_environment_says_under_the_stack_key(built: Built) -> None:
    graph = built.graph
    bucket = graph.named("network-flow-logs", "gcp:logging/projectBucketConfig:ProjectBucketConfig")
    assert bucket.inputs["retentionDays"] == 365 and bucket.inputs["location"] == REGION and bucket.inputs["project"] == PROJECT
    assert bucket.inputs["cmekSettings"] == {"kmsKeyName": KEY}
    grant = graph.named("network-flow-logs-key", "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    agent = service_agent(PROJECT, "logging.googleapis.com")
    assert grant.inputs == {"cryptoKeyId": KEY, "role": "roles/cloudkms.cryptoKeyEncrypterDecrypter", "member": f"serviceAccount:{agent}"}
    step = next(s for s in graph.plan["steps"] if s["urn"] == bucket.urn)
    assert grant.urn in step["newState"]["dependencies"], "the agent holds the key before the bucket names it"
    sink = graph.named("network-flow-logs", "gcp:logging/projectSink:ProjectSink").inputs
    assert sink["destination"] == f"logging.googleapis.com/projects/{PROJECT}/locations/{REGION}/buckets/gcp-prod-network-flow-logs"
    subnetworks = [autoname(graph.named(f"network-{tier}", SUBNETWORK).name) for tier in ("private", "public")]
    assert sink["filter"] == f'log_id("compute.googleapis.com/vpc_flows") AND resource.labels.subnetwork_name=("{subnetworks[0]}" OR "{subnetworks[1]}")'
