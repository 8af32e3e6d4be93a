"""GCP: the builders of every component, composed by `providers.common.composition`.

Builders that need what only a GCP stack has (the project, the billing account: `dpc:gcp`) take it
as their first argument, bound here, so the composition's builder signatures stay the same for
every cloud.
"""

from functools import partial

from dpc.render.backup import GcsRepository
from dpc.settings import GcpSettings
from providers.common.composition import CloudBuilders
from providers.gcp.budget import build_budget
from providers.gcp.compute import build_compute
from providers.gcp.load_balancer import build_load_balancer
from providers.gcp.network import build_network
from providers.gcp.provider import gcp_provider
from providers.gcp.registry import build_image_list, build_registry
from providers.gcp.storage import build_storage
from providers.gcp.swarm import build_swarm


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
