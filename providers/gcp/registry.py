"""GCP registry: an Artifact Registry Docker repository per built image, encrypted with the stack's
key, tags immutable so a tag always means the same image, scanned where the project scans; pushed
to with the deploying identity's OAuth access token. The nodes pull with their own service account
(`Capability.PULL_IMAGES`) the references listed in a Secret Manager secret that the deployment
writes after each push.

The token is an input of the image resources only, and pulumi-docker's image diff compares the
registry's server alone, never its username or password (`providers.aws.registry` says where), so a
new token each run shows no change.

The image list is a secret, not because references are secret but because Secret Manager is where
GCP keeps small values that machines read with IAM (GCP has no parameter store): user-managed
replication in the stack's region, under the stack's key like every other secret of the stack.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from components.base import Scope
from components.registry import ImageListPlan, ImageListResult, RegistryPlan, RegistryResult, image_list_value
from providers.gcp.labels import scope_labels
from providers.gcp.network import gcp_name
from providers.gcp.swarm import secret_name

ACCESS_TOKEN_USER = "oauth2accesstoken"
"""The user name Artifact Registry takes with an OAuth access token as the password."""


def build_registry(scope: Scope, plan: RegistryPlan) -> RegistryResult:
    """Creates a repository per image in the stack's region, and the empty image list the nodes
    are allowed to read before any image is pushed (an IAM grant needs the secret to exist).

    The repositories' and the list's ids are made of the project, the region and the ids the
    program chooses, as the API names them, from the resources' own inputs (so whoever grants on
    them waits for them): known at a first preview, where the policy pack judges each role's
    grants, unlike the ids the API returns.
    """
    config = gcp.organizations.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=scope.component))
    urls: dict[str, pulumi.Output[str]] = {}
    ids: dict[str, pulumi.Output[str]] = {}
    for image in plan.images:
        repository = gcp.artifactregistry.Repository(
            scope.child(image),
            repository_id=gcp_name(scope.child(image)),
            location=config.region,
            format="DOCKER",
            description=f"The {image} image of {scope.name}",
            docker_config={"immutable_tags": True},
            kms_key_name=plan.key_id,
            vulnerability_scanning_config={"enablement_config": "INHERITED"},
            labels=scope_labels(scope, Name=scope.child(image)),
            opts=scope.stateful_opts(),
        )
        urls[image] = repository.registry_uri.apply(lambda uri, image=image: f"{uri}/{image}")
        ids[image] = pulumi.Output.all(config.project, config.region, repository.repository_id).apply(
            lambda a: f"projects/{a[0]}/locations/{a[1]}/repositories/{a[2]}"
        )
    image_list = gcp.secretmanager.Secret(
        scope.child("images"),
        secret_id=scope.child("images"),
        replication={"user_managed": {"replicas": [{"location": config.region, "customer_managed_encryption": {"kms_key_name": plan.key_id}}]}},
        labels=scope_labels(scope, Name=scope.child("images")),
        opts=scope.opts(),
    )
    image_list_id = pulumi.Output.all(config.project, image_list.secret_id).apply(lambda a: secret_name(a[0], a[1]))
    return RegistryResult(
        server=config.region.apply(lambda region: f"https://{region}-docker.pkg.dev"),
        username=pulumi.Output.from_input(ACCESS_TOKEN_USER),
        password=pulumi.Output.secret(config.access_token),
        repository_urls=urls,
        repository_ids=ids,
        image_list_name=image_list_id,
        image_list_id=image_list_id,
    )


def build_image_list(scope: Scope, plan: ImageListPlan) -> ImageListResult:
    """Writes the pushed images' references as a new version of the image list; the nodes read its
    latest version (`projects/p/secrets/name/versions/latest`).
    """
    version = gcp.secretmanager.SecretVersion(
        scope.child("references"),
        secret=plan.name,
        secret_data=pulumi.Output.all(*plan.references).apply(lambda references: image_list_value([str(r) for r in references])),
        opts=scope.opts(),
    )
    return ImageListResult(version=version.version)
