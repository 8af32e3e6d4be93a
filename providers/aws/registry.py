"""AWS registry: an ECR repository per built image, encrypted with the stack's key, tags
immutable so a tag always means the same image, scanned on push; pushed to with a short-lived
token from the caller's credentials. The nodes pull with their own role (`Capability.PULL_IMAGES`)
the references listed in an SSM String parameter that the deployment writes after each push.

The push token is an input of the image resources only (`docker.Image`'s `registry`), and
pulumi-docker's image diff compares the registry's server alone, never its username or password
(provider/provider.go `diffUpdates`: they "can change frequently and should not trigger a
rebuild"), so a new token each run shows no change. The docker provider's own `registryAuth` is
not used for pushes by `docker.Image`, which reads its `registry` input or the host's docker
configuration only.
"""

from __future__ import annotations

from typing import cast

import pulumi
import pulumi_aws as aws

from components.base import Scope
from components.registry import ImageListPlan, ImageListResult, RegistryPlan, RegistryResult, image_list_value
from providers.aws.arns import Account, account_of


def image_list_name(scope: Scope) -> str:
    """The SSM parameter the nodes read the image references from, under the stack's `/dpc/` path."""
    return f"/dpc/{scope.name}/images"


def build_registry(scope: Scope, plan: RegistryPlan) -> RegistryResult:
    """Creates the repositories; the push token comes from the account the program runs as."""
    urls: dict[str, pulumi.Output[str]] = {}
    arns: dict[str, pulumi.Output[str]] = {}
    registry_id: pulumi.Output[str] | None = None
    account = account_of(scope)
    for image in plan.images:
        repository = aws.ecr.Repository(
            scope.child(image),
            name=f"{scope.name}-{image}",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": plan.key_id}],
            tags=scope.tags_with(Name=scope.child(image)),
            opts=scope.stateful_opts(),
        )
        urls[image] = repository.repository_url
        arns[image] = pulumi.Output.all(account, repository.name).apply(lambda args: cast(Account, args[0]).repository(cast(str, args[1])))
        registry_id = repository.registry_id
    invoke = pulumi.InvokeOutputOptions(parent=scope.component)
    token = aws.ecr.get_authorization_token_output(registry_id=registry_id, opts=invoke)
    name = image_list_name(scope)
    return RegistryResult(
        server=token.proxy_endpoint,
        username=token.user_name,
        password=pulumi.Output.secret(token.password),
        repository_urls=urls,
        repository_ids=arns,
        image_list_name=pulumi.Output.from_input(name),
        image_list_id=account.apply(lambda where: where.parameter(name)),
    )


def build_image_list(scope: Scope, plan: ImageListPlan) -> ImageListResult:
    """Writes the pushed images' references into the parameter the nodes read. A String, not a
    SecureString, written as `insecure_value` (the provider masks `value` as secret): references
    are not secret, the plan shows them, and the nodes need no key to read them.
    """
    parameter = aws.ssm.Parameter(
        scope.child("references"),
        name=plan.name,
        type="String",
        tier="Standard",
        insecure_value=pulumi.Output.all(*plan.references).apply(lambda references: image_list_value([str(r) for r in references])),
        description="The stack's images by digest, one per line: every node pulls them with its own role",
        tags=scope.tags_with(Name=scope.child("references")),
        opts=scope.opts(),
    )
    return ImageListResult(version=parameter.version.apply(str))
