"""What the Azure builder tests share: the subscription, tenant, location and resource group they
build in, and a builder's stack as `providers.azure.provider` makes it (its provider and resource
group) with the stack's context, for a program run under the offline plan's Azure mocks."""

from __future__ import annotations

import pulumi
import pulumi_azure_native as azure_native

from components.base import StackContext
from dpc.model import stack_tags
from dpc.settings import Settings
from providers.azure.mocks import AzureMocks
from providers.azure.provider import AzureStack, resource_group_name

STACK = "azure-prod"
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
TENANT = "66666666-7777-8888-9999-000000000000"
LOCATION = "eastus2"
GROUP = resource_group_name(STACK)
PREFIX = f"dpc-{STACK}"


def mocks(*, preview: bool = False) -> AzureMocks:
    """The offline plan's Azure mocks for this subscription and location."""
    return AzureMocks(SUBSCRIPTION, TENANT, LOCATION, preview=preview)


def azure_home(settings: Settings, stack: str = STACK) -> tuple[AzureStack, StackContext]:
    """Inside a program: the stack's provider, its `AzureStack` and the components' context."""
    provider = azure_native.Provider(f"{stack}-azure", subscription_id=SUBSCRIPTION, tenant_id=TENANT, location=LOCATION)
    home = AzureStack(pulumi.Output.from_input(resource_group_name(stack)), LOCATION, SUBSCRIPTION, TENANT)
    return home, StackContext(stack_tags(settings, stack), settings.is_prod, pulumi.ResourceOptions(provider=provider))
