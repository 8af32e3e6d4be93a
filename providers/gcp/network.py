"""GCP network: a custom-mode VPC, one regional private subnetwork for the nodes and one public for
the bastion, Cloud Router and Cloud NAT for the private subnetwork only, and the firewall rules
generated from the model's matrix on network tags, closed by an explicit, logged deny-all.

The counterparts of AWS's pieces (`providers/aws/network.py`): subnetworks are regional, so every
zone maps to the same one; Cloud NAT is regional and survives a zone's loss by itself, so
`nat_per_zone` has nothing to choose; Private Google Access on the private subnetwork takes the
nodes' calls to Google's APIs (Cloud Storage, Artifact Registry, Secret Manager) off NAT, as AWS's
VPC endpoints do; a custom-mode network has no default rules to close, where AWS closes its
default security group. Flow logs are the subnetworks' own (`log_config`), routed into a log
bucket of the stack under its key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from components.base import Scope
from components.network import LOAD_BALANCER_GROUP, NetworkPlan, NetworkResult
from dpc.model import FromCidrs, FromLoadBalancer, FromRole, Rule, Source
from providers.common.firewall import FIREWALL_GROUPS, port_range, ports_label, source_cidrs, source_group, target_group

NAME_LIMIT = 63
NAME_PATTERN = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
"""What GCP accepts as a resource name (RFC 1035 label), at most `NAME_LIMIT` characters."""

DESCRIPTION_LIMIT = 2048
"""The longest description a firewall rule takes."""

INTERNAL_HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
EXTERNAL_HEALTH_CHECK_RANGES = ("35.191.0.0/16", "209.85.152.0/22", "209.85.204.0/22")
"""Where Google's health checks probe from: an internal passthrough Network Load Balancer's, and an
external (backend service based) one's. They reach only 5432 on the managers, the one row of the
matrix that is the load balancer's traffic."""

ALLOW_PRIORITY = 1000
DENY_ALL_PRIORITY = 65535
"""The matrix's rules at GCP's default priority; the deny-all at the lowest, under every allow."""


def gcp_name(name: str) -> str:
    """`name` as a GCP resource name: lowercase, other characters as `-`, starting with a letter,
    at most 63 characters. A name that had to be cut ends in a digest of the whole, so that two
    long names never become the same one; the same name always gives the same result.
    """
    cleaned = re.sub(r"[^a-z0-9-]", "-", name.lower())
    cleaned = cleaned if cleaned[:1].isalpha() else f"dpc-{cleaned}"
    if len(cleaned) <= NAME_LIMIT and NAME_PATTERN.fullmatch(cleaned):
        return cleaned
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{cleaned[: NAME_LIMIT - len(digest) - 1].rstrip('-')}-{digest}"


@dataclass(frozen=True)
class FirewallRule:
    """One GCP firewall rule: the matrix's rows to one group, on one protocol and port range, from
    one kind of source (roles, the admins, the clients, the load balancer). GCP takes several
    source tags or ranges in one rule, so the rows that differ only by source role are one rule,
    which keeps a stack's rules (44) well inside the project's firewall quota.
    """

    suffix: str
    """The rule's name under the network's: `manager-in-tcp5432-from-clients`."""
    target: str
    protocol: str
    ports: tuple[str, ...]
    """Empty for ESP, which has no ports."""
    source_tags: tuple[str, ...]
    source_ranges: tuple[str, ...]
    description: str


def _kind(source: Source) -> str:
    if isinstance(source, FromRole):
        return "roles"
    return source.kind if isinstance(source, FromCidrs) else LOAD_BALANCER_GROUP


def _ranges(plan: NetworkPlan, source: FromCidrs | FromLoadBalancer) -> tuple[str, ...]:
    """A passthrough load balancer keeps the clients' addresses, so its traffic comes from the
    clients' ranges, and its health checks from Google's.
    """
    if isinstance(source, FromCidrs):
        return source_cidrs(plan, source)
    health = EXTERNAL_HEALTH_CHECK_RANGES if plan.client_cidrs else INTERNAL_HEALTH_CHECK_RANGES
    return (*source_cidrs(plan, FromCidrs("clients")), *health)


def _described(rows: list[Rule]) -> str:
    """Each purpose of the rows, with the roles it comes from: `Swarm node discovery (TCP) (from
    manager, worker, app, backup)`.
    """
    purposes: dict[str, list[str]] = {}
    for row in rows:
        sources = purposes.setdefault(row.purpose, [])
        if isinstance(row.source, FromRole):
            sources.append(source_group(row.source))
    return "; ".join(f"{purpose} (from {', '.join(roles)})" if roles else purpose for purpose, roles in purposes.items())


def firewall_rules(plan: NetworkPlan) -> tuple[FirewallRule, ...]:
    """The matrix as GCP firewall rules, in the matrix's order.

    Rows to no role (`to=None`, the load balancer itself) have no counterpart: a passthrough load
    balancer is no machine and has no firewall; the clients it admits are admitted by the managers'
    rules, which see the clients' own addresses.
    """
    grouped: dict[tuple[str, str, str], list[Rule]] = {}
    for rule in plan.rules:
        if rule.to is not None:
            grouped.setdefault((target_group(rule), ports_label(rule), _kind(rule.source)), []).append(rule)
    rules: list[FirewallRule] = []
    for (target, ports, kind), rows in grouped.items():
        first = rows[0]
        tags = tuple(dict.fromkeys(source_group(r.source) for r in rows if isinstance(r.source, FromRole)))
        ranges = tuple(dict.fromkeys(c for r in rows if not isinstance(r.source, FromRole) for c in _ranges(plan, r.source)))
        rules.append(
            FirewallRule(
                suffix=f"{target}-in-{ports}-from-{kind}",
                target=target,
                protocol=first.protocol,
                ports=() if first.protocol == "esp" else (port_range(first),),
                source_tags=tags,
                source_ranges=ranges,
                description=_described(rows)[:DESCRIPTION_LIMIT],
            )
        )
    return tuple(rules)


def _firewall(scope: Scope, network: gcp.compute.Network, suffix: str, *, priority: int, description: str, **rule: Any) -> None:
    """An ingress rule of the network. Named by the program (GCP's rules for names, stable across
    updates), so a replacement must delete the old rule before creating the new one of the same name.
    """
    name = scope.child(suffix)
    gcp.compute.Firewall(
        name,
        name=gcp_name(name),
        network=network.self_link,
        direction="INGRESS",
        priority=priority,
        description=description,
        opts=scope.opts(delete_before_replace=True),
        **rule,
    )


def _firewalls(scope: Scope, plan: NetworkPlan, network: gcp.compute.Network) -> dict[str, pulumi.Output[str]]:
    """The matrix's rules and the deny-all under them; by group, the network tag that places a
    machine under its group's rules.

    The tag is the group's name, known before anything exists, so that a first preview, where the
    policy pack judges each machine's groups, sees it (an output derived from the rules' ids would
    be unknown there). The load balancer's group has no rule on GCP (a passthrough load balancer
    has no firewall of its own): its tag is there because every cloud names every group, and no
    resource carries it.
    """
    for rule in firewall_rules(plan):
        _firewall(
            scope,
            network,
            rule.suffix,
            priority=ALLOW_PRIORITY,
            description=rule.description,
            target_tags=[rule.target],
            allows=[gcp.compute.FirewallAllowArgs(protocol=rule.protocol, ports=list(rule.ports) or None)],
            source_tags=list(rule.source_tags) or None,
            source_ranges=list(rule.source_ranges) or None,
        )
    _firewall(
        scope,
        network,
        "all-in-deny",
        priority=DENY_ALL_PRIORITY,
        description="Everything the firewall matrix does not allow, dropped and logged (design §2.5)",
        denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
        source_ranges=["0.0.0.0/0"],
        log_config=gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"),
    )
    return {group: pulumi.Output.from_input(group) for group in FIREWALL_GROUPS}


def _subnetwork(scope: Scope, network: gcp.compute.Network, tier: str, cidr: str, *, private: bool) -> gcp.compute.Subnetwork:
    """A regional subnetwork; every flow in it logged, each minute (as AWS's flow log)."""
    return gcp.compute.Subnetwork(
        scope.child(tier),
        network=network.self_link,
        ip_cidr_range=cidr,
        private_ip_google_access=private,
        log_config=gcp.compute.SubnetworkLogConfigArgs(aggregation_interval="INTERVAL_1_MIN", flow_sampling=1.0, metadata="INCLUDE_ALL_METADATA"),
        description=f"dpc {tier} subnetwork" + (": the nodes, Google's APIs without NAT" if private else ": the bastion"),
        opts=scope.opts(),
    )


def _flow_logs(scope: Scope, plan: NetworkPlan, subnetworks: list[gcp.compute.Subnetwork]) -> None:
    """The subnetworks' flow logs routed into a log bucket of the stack, kept as long as the
    environment keeps them and encrypted with the stack's key (design §2.1), as AWS's log group.

    Cloud Logging's service agent must hold the key before the bucket names it; the agent is the
    one getCmekSettings returns (the call creates it in a project that has none yet). The bucket's
    id is fixed: a deleted log bucket keeps its id for 7 days, so a stack destroyed and created
    again within a week must wait. The project's `_Default` sink still keeps its own 30-day copy;
    excluding flow logs there is a project-wide choice, left to the project's owner (README).
    """
    invoke = pulumi.InvokeOutputOptions(parent=scope.component)
    where = gcp.organizations.get_client_config_output(opts=invoke)
    agent = gcp.logging.get_project_cmek_settings_output(project=where.project, opts=invoke).service_account_id
    grant = gcp.kms.CryptoKeyIAMMember(
        scope.child("flow-logs-key"),
        crypto_key_id=plan.key_id,
        role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
        member=pulumi.Output.concat("serviceAccount:", agent),
        opts=scope.opts(),
    )
    bucket = gcp.logging.ProjectBucketConfig(
        scope.child("flow-logs"),
        project=where.project,
        location=where.region,
        bucket_id=gcp_name(scope.child("flow-logs")),
        retention_days=plan.flow_log_retention_days,
        cmek_settings=gcp.logging.ProjectBucketConfigCmekSettingsArgs(kms_key_name=plan.key_id),
        description="dpc VPC flow logs",
        opts=scope.opts(depends_on=[grant]),
    )
    names = pulumi.Output.all(*(subnetwork.name for subnetwork in subnetworks))
    gcp.logging.ProjectSink(
        scope.child("flow-logs"),
        project=where.project,
        destination=pulumi.Output.concat("logging.googleapis.com/", bucket.id),
        filter=names.apply(lambda n: f'log_id("compute.googleapis.com/vpc_flows") AND resource.labels.subnetwork_name=({" OR ".join(map(json.dumps, n))})'),
        unique_writer_identity=True,
        description="dpc VPC flow logs into the stack's log bucket",
        opts=scope.opts(),
    )


def build_network(scope: Scope, plan: NetworkPlan) -> NetworkResult:
    """Creates the VPC and everything in it."""
    (private_cidr,) = plan.private_cidrs
    (public_cidr,) = plan.public_cidrs
    network = gcp.compute.Network(
        scope.child("vpc"),
        auto_create_subnetworks=False,
        routing_mode="REGIONAL",
        description="dpc stack network: regional subnetworks, firewall from the matrix",
        opts=scope.opts(),
    )
    private = _subnetwork(scope, network, "private", private_cidr, private=True)
    public = _subnetwork(scope, network, "public", public_cidr, private=False)
    _flow_logs(scope, plan, [private, public])
    router = gcp.compute.Router(scope.child("router"), network=network.self_link, description="dpc Cloud NAT of the private subnetwork", opts=scope.opts())
    nat = gcp.compute.RouterNat(
        scope.child("nat"),
        router=router.name,
        nat_ip_allocate_option="AUTO_ONLY",
        source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
        subnetworks=[gcp.compute.RouterNatSubnetworkArgs(name=private.self_link, source_ip_ranges_to_nats=["ALL_IP_RANGES"])],
        log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
        opts=scope.opts(),
    )
    return NetworkResult(
        network_id=network.self_link,
        public_subnet_ids=dict.fromkeys(plan.zones, public.self_link),
        private_subnet_ids=dict.fromkeys(plan.zones, private.self_link),
        firewall_group_ids=_firewalls(scope, plan, network),
        private_egress={zone: [router, nat] for zone in plan.zones},
    )
