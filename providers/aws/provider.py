"""The explicit AWS provider every resource of the stack uses.

Tags are not set as provider default_tags: they are invisible to previews and policies, so each
resource carries them in its own inputs instead.
"""

from __future__ import annotations

import pulumi_aws as aws

from dpc.settings import Settings


def aws_provider(settings: Settings, stack: str) -> aws.Provider:
    """The region's provider, named after the stack."""
    return aws.Provider(f"{stack}-aws", region=settings.region)

