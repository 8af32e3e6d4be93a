"""Which composition serves which cloud: AWS, GCP, Azure, or the local engine."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

from dpc.settings import Problem, Settings, SettingsError
from dpc.topology import derive
from providers.common.composition import deploy


def deploy_stack(settings: Settings, stack: str) -> Mapping[str, pulumi.Output[object]]:
    """Creates the stack on its cloud; each cloud's SDK is imported only when it is used (they are large)."""
    topology = derive(settings)
    if settings.cloud == "aws":
        from providers.aws.builders import AWS  # noqa: PLC0415

        return deploy(topology, stack, AWS)
    if settings.cloud == "gcp" and settings.gcp is not None:
        from providers.gcp.builders import gcp_builders, stack_name_problems  # noqa: PLC0415

        if problems := stack_name_problems(topology, stack):
            raise SettingsError(problems)
        return deploy(topology, stack, gcp_builders(settings.gcp))
    if settings.cloud == "azure" and settings.azure is not None:
        from providers.azure.builders import azure_builders  # noqa: PLC0415

        return deploy(topology, stack, azure_builders(settings, settings.azure, stack))
    if settings.cloud == "local":
        from providers.local.composition import deploy_local  # noqa: PLC0415

        return deploy_local(topology, stack)
    problem = Problem("cloud", f"{settings.cloud!r} has no composition, or its stack lacks dpc:{settings.cloud}", "validate the stack first")
    raise SettingsError([problem])
