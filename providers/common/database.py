"""The database stack's plan, shared by every composition: the cloud stacks deploy it to their
Swarm through manager-1 over SSH via the bastion, the local stack to the local engine.
"""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import Path

import pulumi
import pulumi_docker as docker
import pulumi_random as random
import pulumi_tls as tls

from components.access import DeployAccess, Route, client_files, ssh_options
from components.base import StackContext
from components.database import DatabasePlan, DatabaseResult, DatabaseStack, Registry
from dpc.cluster import certificate_requests
from dpc.database_files import plain_configs, secret_files
from dpc.model import stack_tags
from dpc.render.backup import OffsiteRepository, render_pgbackrest_offsite_secrets
from dpc.services import ALERTING_TOKEN_SECRET, BUILT_IMAGES, PGBACKREST_OFFSITE_SECRETS, Placement, database_services
from dpc.settings import Settings
from dpc.tiers import TIERS
from dpc.topology import Topology

PROJECT_ROOT = Path(__file__).resolve().parents[2]


BUILD_CACHE_PATTERNS = ("__pycache__", "*.pyc")
"""What Python leaves in an image's directory when its modules are imported (by the tests): not the
image's source. Kept out of the tag's digest and of the build context, so running the tests never
re-tags an image (and rolls its services)."""


def context_files(context: Path) -> list[Path]:
    """The files of an image's build context, without Python's caches, in a stable order."""
    return sorted(
        path for path in context.rglob("*")
        if path.is_file() and not any(fnmatch.fnmatch(part, pattern) for part in path.relative_to(context).parts for pattern in BUILD_CACHE_PATTERNS)
    )


def image_tags(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Each project image's tag: a digest of its own build context, so the same sources give the
    same tag and a change to one image's files rolls only the services that run that image.
    """
    tags: dict[str, str] = {}
    for image, context in sorted(BUILT_IMAGES.items()):
        digest = hashlib.sha256()
        for path in context_files(root / context):
            digest.update(path.relative_to(root / context).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        tags[image] = digest.hexdigest()[:16]
    return tags


def given_secrets(settings: Settings) -> dict[str, pulumi.Output[str]]:
    """The secrets the stack's settings hold, as secret outputs: the engine decrypts the config for
    the program, so the program marks them secret again before they go anywhere.
    """
    token = settings.alerting.webhook_token
    return {} if token is None else {ALERTING_TOKEN_SECRET: pulumi.Output.secret(token)}


def swarm_provider(stack: str, access: DeployAccess, route: Route, ready: pulumi.Resource) -> docker.Provider:
    """Docker on manager-1, reached over SSH through the bastion (the managers have no public
    address) with the stack's deploy key and known host keys, once the Swarm is whole (`ready`).
    """
    return docker.Provider(
        f"{stack}-docker",
        host=client_files(stack, access, route),
        ssh_opts=pulumi.Output.from_input(route.bastion_ip).apply(lambda ip: ssh_options(stack, ip)),
        opts=pulumi.ResourceOptions(depends_on=[ready]),
    )


def deploy_database(
    topology: Topology,
    stack: str,
    *,
    engine: docker.Provider,
    registry: Registry | None,
    offsite: pulumi.Output[OffsiteRepository] | None,
    offsite_credential: pulumi.Output[str] | None = None,
    placement: Placement,
) -> DatabaseResult:
    """The DatabaseStack of one stack, on the given engine; its passwords and CA protected in prod.

    `offsite_credential` is the offsite store's key where the backup node cannot use its own
    identity (Azure's storage account key): it reaches the backup agent only as its own Docker
    secret, the pgBackRest fragment `PGBACKREST_OFFSITE_SECRETS`, marked secret here whatever the
    cloud marked it; never in a Docker config, never in an environment variable.
    """
    settings, layout = topology.settings, topology.layout
    configs: dict[str, pulumi.Input[str]] = dict(plain_configs(settings, layout, None))
    secrets = given_secrets(settings)
    if offsite is not None:
        rendered = offsite.apply(lambda repository: plain_configs(settings, layout, repository))
        configs = {name: rendered.apply(lambda files, name=name: files[name]) for name in configs}
        if offsite_credential is not None:
            fragment = pulumi.Output.all(offsite, offsite_credential).apply(lambda args: render_pgbackrest_offsite_secrets(args[0], args[1]))
            secrets[PGBACKREST_OFFSITE_SECRETS] = pulumi.Output.secret(fragment)
    plan = DatabasePlan(
        networks=TIERS,
        services=database_services(topology, placement, offsite_key=PGBACKREST_OFFSITE_SECRETS in secrets),
        certificates=certificate_requests(layout),
        configs=configs,
        secret_files=secret_files(layout),
        image_tags=image_tags(),
        registry=registry,
        given_secrets=secrets,
    )
    providers: list[pulumi.ProviderResource] = [engine, random.Provider(f"{stack}-random"), tls.Provider(f"{stack}-tls")]
    opts = pulumi.ResourceOptions(providers=providers)
    return DatabaseStack(f"{stack}-database", plan, StackContext(stack_tags(settings, stack), settings.is_prod, opts)).result


def database_outputs(database: DatabaseResult) -> dict[str, pulumi.Output[str]]:
    """The stack outputs of the database stack: what a client or an operator needs to connect."""
    return {
        "superuserPassword": database.superuser_password,
        "appUserPassword": database.app_user_password,
        "grafanaAdminPassword": database.grafana_admin_password,
        "caCertificate": database.ca_certificate,
    }
