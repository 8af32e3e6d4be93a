"""GCP: the builders of every component, composed by `providers.common.composition`.

Builders that need what only a GCP stack has (the project, the billing account: `dpc:gcp`) take it
as their first argument, bound here, so the composition's builder signatures stay the same for
every cloud.
"""

from functools import partial

from components.swarm import hostname
from dpc.render.backup import GcsRepository
from dpc.settings import GcpSettings, Problem
from dpc.topology import Topology
from providers.common.composition import CloudBuilders, hostname_prefix
from providers.gcp.budget import build_budget
from providers.gcp.compute import build_compute
from providers.gcp.load_balancer import build_load_balancer
from providers.gcp.network import build_network
from providers.gcp.provider import gcp_provider
from providers.gcp.registry import build_image_list, build_registry
from providers.gcp.storage import build_storage
from providers.gcp.swarm import build_swarm

INSTANCE_NAME_LIMIT = 63
"""Compute Engine's longest instance name; an instance is named by its host name (`components.swarm.hostname`)."""


def stack_name_problems(topology: Topology, stack: str) -> list[Problem]:
    """The stack's name against Compute Engine's instance names, which the stack name is part of:
    refused before anything is created, not by the API halfway through an update.
    """
    longest = max((hostname(hostname_prefix(stack), node) for node in (*topology.nodes, topology.bastion)), key=len)
    excess = len(longest) - INSTANCE_NAME_LIMIT
    if excess <= 0:
        return []
    return [Problem(
        "stack",
        f"the stack {stack!r} names its machines up to {longest!r}, {len(longest)} characters; Compute Engine takes at most {INSTANCE_NAME_LIMIT}",
        f"use a stack name of at most {len(stack) - excess} characters",
    )]


def gcp_builders(gcp: GcpSettings) -> CloudBuilders:
    """GCP's builders for a stack of that project and billing account."""
    return CloudBuilders(
        provider=gcp_provider,
        network=build_network,
        storage=build_storage,
        swarm=build_swarm,
        compute=partial(build_compute, gcp),
        load_balancer=build_load_balancer,
        budget=partial(build_budget, gcp),
        registry=build_registry,
        image_list=build_image_list,
        offsite_repository=lambda _settings, bucket: GcsRepository(bucket=bucket),
    )
