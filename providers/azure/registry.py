"""Azure registry (design §9.8): one Azure Container Registry per stack, Premium (the only tier
that encrypts with a customer-managed key), under the stack key through a user-assigned identity
granted that key first, zone-redundant; no admin user and no anonymous pull, so every pull and push
is by a Microsoft Entra identity. The nodes pull with their own identities (`Capability.PULL_IMAGES`:
AcrPull on the registry, `repository_ids`) the references listed in a Key Vault secret that the
deployment writes after each push.

The deploy host pushes without any stored credential, as on AWS and GCP: the program trades the
provider's Microsoft Entra access token for an ACR refresh token at the registry's `/oauth2/exchange`
(Azure's documented exchange, what `az acr login` does) on every run, and pulumi-docker logs in with
it under the null GUID, ACR's user name for such a token. The exchange runs as pulumi-command's
`local.run` (an invoke: it runs on every preview and update, and nothing of it is kept in the state,
like the access token GCP's registry uses); the token is passed on standard input, never as an
argument, and nothing is logged. A refresh token lasts three hours, longer than a run's pushes. The
identity Pulumi runs as pushes with its own rights on the registry (Owner or Contributor of the
resource group, which ACR's RBAC mode counts as push rights). The token is an input of the image
resources only, and pulumi-docker's image diff ignores it (`providers.aws.registry` says where), so
a new one each run shows no change.

Every image's repository id is the registry's id: ACR grants pull on a registry (AcrPull); a grant
on one repository needs ACR's ABAC repository permissions mode, which this provider version does
not expose. The registry holds only the stack's images.

The image list is a Key Vault secret in the stack vault, as every small value the nodes read on
Azure: created empty here, so that the nodes' read grant names it before any image is built, and
written by `build_image_list` once the images are pushed. It is named after its vault
(`<vault>-images`), so that its name alone, which is what the composition hands the image list's
writer and what the nodes read, says which vault holds it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
from pulumi_azure_native import authorization, containerregistry, keyvault
from pulumi_command import local

from components.base import Scope
from components.registry import ImageListPlan, ImageListResult, RegistryPlan, RegistryResult, image_list_value
from providers.azure.provider import AzureStack
from providers.azure.vault import global_name, key_user, once_created, resource_id, secret_id, vault_name

REGISTRY_NAME_LIMIT = 50
"""Registry names take 5–50 letters and digits."""
REGISTRY_SKU = "Premium"
REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
"""The user name ACR takes with an ACR refresh token as the password."""
IMAGE_LIST_SUFFIX = "-images"

EXCHANGE = """\
import json, sys, urllib.parse, urllib.request
server, tenant, token = sys.stdin.read().split()
body = urllib.parse.urlencode({"grant_type": "access_token", "service": server, "tenant": tenant, "access_token": token}).encode()
with urllib.request.urlopen(f"https://{server}/oauth2/exchange", body, timeout=60) as answer:
    print(json.load(answer)["refresh_token"], end="")
"""
"""Trades a Microsoft Entra access token (read from standard input with the registry and the
tenant) for an ACR refresh token, printed alone."""


def image_list_name(vault: str) -> str:
    """The image list's secret in vault `vault`."""
    return f"{vault}{IMAGE_LIST_SUFFIX}"


def image_list_vault(name: str) -> str:
    """The vault holding the image list secret `name`."""
    if not name.endswith(IMAGE_LIST_SUFFIX):
        raise ValueError(f"not an image list's secret name (<vault>{IMAGE_LIST_SUFFIX}): {name!r}")
    return name.removesuffix(IMAGE_LIST_SUFFIX)


def _push_password(azure: AzureStack, scope: Scope, login_server: pulumi.Output[str]) -> pulumi.Output[str]:
    """An ACR refresh token for the identity the program runs as, fresh on each run (once the
    registry exists: before, the login server is unknown and nothing runs).
    """
    invoke = pulumi.InvokeOutputOptions(parent=scope.component)
    token = authorization.get_client_token_output(opts=invoke).token
    exchanged = local.run_output(
        command=EXCHANGE,
        interpreter=["python3", "-c"],
        stdin=pulumi.Output.secret(pulumi.Output.all(login_server, azure.tenant_id, token).apply(lambda a: " ".join(str(part) for part in a))),
        logging=local.Logging.NONE,
        opts=invoke,
    )
    return pulumi.Output.secret(exchanged.stdout)


def _user_identity(identity_id: str) -> Mapping[str, containerregistry.UserIdentityPropertiesArgsDict]:
    """A user-assigned identity as a registry's `identity` lists it (its id, nothing more)."""
    return {identity_id: {}}


def build_registry(azure: AzureStack, scope: Scope, plan: RegistryPlan) -> RegistryResult:
    """Creates the registry under the stack key and the empty image list the nodes may read before
    any image is pushed (a role assignment needs its scope to exist).
    """
    user = key_user(azure, scope, "identity", plan.key_id)
    identity = user.identity
    registry = containerregistry.Registry(
        scope.child("acr"),
        registry_name=global_name(azure, scope.name, REGISTRY_NAME_LIMIT),
        resource_group_name=azure.resource_group,
        location=azure.location,
        sku={"name": REGISTRY_SKU},
        admin_user_enabled=False,
        anonymous_pull_enabled=False,
        data_endpoint_enabled=False,
        zone_redundancy=containerregistry.ZoneRedundancy.ENABLED,
        identity={"type": containerregistry.ResourceIdentityType.USER_ASSIGNED, "user_assigned_identities": identity.id.apply(_user_identity)},
        encryption={
            "status": containerregistry.EncryptionStatus.ENABLED,
            "key_vault_properties": {"key_identifier": plan.key_id, "identity": identity.client_id},
        },
        network_rule_bypass_options=containerregistry.NetworkRuleBypassOptions.AZURE_SERVICES,
        public_network_access=containerregistry.PublicNetworkAccess.ENABLED,
        tags=scope.tags_with(Name=scope.child("acr")),
        opts=scope.stateful_opts(depends_on=[user.grant]),
    )
    registry_id = resource_id(azure, "Microsoft.ContainerRegistry/registries", registry.name)
    vault = vault_name(plan.key_id)
    image_list = keyvault.Secret(
        scope.child("images"),
        secret_name=vault.apply(image_list_name),
        vault_name=vault,
        resource_group_name=azure.resource_group,
        properties={"value": "", "content_type": "text/plain"},
        tags=scope.tags_with(Name=scope.child("images")),
        opts=scope.opts(ignore_changes=["properties"]),
    )
    name = once_created(image_list, vault).apply(image_list_name)
    return RegistryResult(
        server=registry.login_server,
        username=pulumi.Output.from_input(REFRESH_TOKEN_USER),
        password=_push_password(azure, scope, registry.login_server),
        repository_urls={image: registry.login_server.apply(lambda server, image=image: f"{server}/{image}") for image in plan.images},
        repository_ids=dict.fromkeys(plan.images, registry_id),
        image_list_name=name,
        image_list_id=secret_id(azure, plan.key_id, name),
    )


def build_image_list(azure: AzureStack, scope: Scope, plan: ImageListPlan) -> ImageListResult:
    """Writes the pushed images' references as a new version of the image list secret (the
    secret `build_registry` created, whose later values are this resource's).

    Deleting this resource (or replacing it) leaves the secret alone (`retain_on_delete`): the
    secret is the registry's, and a deleted one stays soft-deleted under purge protection for 90
    days, during which no secret of its name can be created again.
    """
    name = pulumi.Output.from_input(plan.name)
    secret = keyvault.Secret(
        scope.child("references"),
        secret_name=name,
        vault_name=name.apply(image_list_vault),
        resource_group_name=azure.resource_group,
        properties={
            "value": pulumi.Output.all(*plan.references).apply(lambda references: image_list_value([str(r) for r in references])),
            "content_type": "text/plain",
        },
        tags=scope.tags_with(Name=scope.child("references")),
        opts=scope.opts(retain_on_delete=True),
    )
    return ImageListResult(version=secret.properties.secret_uri_with_version)
