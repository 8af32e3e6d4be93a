"""The explicit Azure provider every resource of the stack uses, and the stack's resource group.

Tags are not provider defaults: every resource carries them in its own inputs, where previews and
policies see them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure_native

from dpc.model import stack_tags
from dpc.settings import AzureSettings, Settings


@dataclass(frozen=True)
class AzureStack:
    """What every Azure builder of one stack shares: the resource group all its resources live in
    (its name an output, so that each resource waits for the group), the location, and the
    subscription and tenant the stack names (`dpc:azure`).
    """

    resource_group: pulumi.Output[str]
    location: str
    subscription_id: str
    tenant_id: str


def resource_group_name(stack: str) -> str:
    """The stack's resource group, named rather than generated so that operators find it."""
    return f"dpc-{stack}"


def azure_stack(settings: Settings, azure: AzureSettings, stack: str) -> tuple[azure_native.Provider, AzureStack]:
    """The stack's provider and its resource group, protected in prod: deleting a resource group
    deletes everything in it, volumes and keys included.
    """
    provider = azure_native.Provider(
        f"{stack}-azure", subscription_id=azure.subscription_id, tenant_id=azure.tenant_id, location=settings.region
    )
    group = azure_native.resources.ResourceGroup(
        f"{stack}-resource-group",
        resource_group_name=resource_group_name(stack),
        location=settings.region,
        tags=stack_tags(settings, stack),
        opts=pulumi.ResourceOptions(provider=provider, protect=settings.is_prod),
    )
    return provider, AzureStack(group.name, settings.region, azure.subscription_id, azure.tenant_id)
