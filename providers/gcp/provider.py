"""The explicit Google Cloud provider every resource of the stack uses.

Labels are not set as provider default_labels: they are invisible to previews and policies, so each
resource carries them in its own inputs instead (`providers.gcp.labels`).
"""

from __future__ import annotations

import pulumi_gcp as gcp

from dpc.settings import Settings


def gcp_provider(settings: Settings, stack: str) -> gcp.Provider:
    """The stack's project and region, named after the stack."""
    if settings.gcp is None:
        raise ValueError("a GCP stack needs the dpc:gcp section (its project)")
    return gcp.Provider(f"{stack}-gcp", project=settings.gcp.project, region=settings.region)
