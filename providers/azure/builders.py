"""Azure: the builders of every component, composed by `providers.common.composition`.

Every Azure resource lives in the stack's resource group, so each builder takes the stack's
`AzureStack` as its first argument, bound here, and the composition's builder signatures stay the
same for every cloud.
"""

from __future__ import annotations

from functools import partial

from dpc.settings import AzureSettings, Settings
from providers.azure.budget import build_budget
from providers.azure.compute import build_compute
from providers.azure.load_balancer import build_load_balancer
from providers.azure.network import build_network
from providers.azure.provider import azure_stack
from providers.azure.registry import build_image_list, build_registry
from providers.azure.storage import build_storage, offsite_repository
from providers.azure.swarm import build_swarm
from providers.common.composition import CloudBuilders


def azure_builders(settings: Settings, azure: AzureSettings, stack: str) -> CloudBuilders:
    """Azure's builders for a stack of that subscription, with its provider and resource group."""
    provider, home = azure_stack(settings, azure, stack)
    return CloudBuilders(
        provider=lambda _settings, _stack: provider,
        network=partial(build_network, home),
        storage=partial(build_storage, home),
        swarm=partial(build_swarm, home),
        compute=partial(build_compute, home),
        load_balancer=partial(build_load_balancer, home),
        budget=partial(build_budget, home),
        registry=partial(build_registry, home),
        image_list=partial(build_image_list, home),
        offsite_repository=offsite_repository,
    )
