"""AWS registry: an ECR repository per built image, encrypted with the stack's key, tags
immutable so a tag always means the same image, scanned on push; pushed to with a short-lived
token from the caller's credentials.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.base import Scope
from components.registry import RegistryPlan, RegistryResult


def build_registry(scope: Scope, plan: RegistryPlan) -> RegistryResult:
    """Creates the repositories; the push token comes from the account the program runs as."""
    urls: dict[str, pulumi.Output[str]] = {}
    registry_id: pulumi.Output[str] | None = None
    for image in plan.images:
        repository = aws.ecr.Repository(
            scope.child(image),
            name=f"{scope.name}-{image}",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": plan.key_arn}],
            tags=scope.tags_with(Name=scope.child(image)),
            opts=scope.stateful_opts(),
        )
        urls[image] = repository.repository_url
        registry_id = repository.registry_id
    token = aws.ecr.get_authorization_token_output(registry_id=registry_id, opts=pulumi.InvokeOutputOptions(parent=scope.component))
    return RegistryResult(
        server=token.proxy_endpoint,
        username=token.user_name,
        password=pulumi.Output.secret(token.password),
        repository_urls=urls,
    )
