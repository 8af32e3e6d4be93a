"""The local stack: the DatabaseStack on the Docker engine next to the program, in swarm mode.

No cloud resources: the images are built into the local engine and not pushed, members share
the one node, and the offsite backup copy is left out (there is no bucket to copy to).
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.base import StackContext
from dpc.model import stack_tags
from dpc.settings import Settings
from providers.database import deploy_database

LOCAL_ENGINE = "unix:///var/run/docker.sock"


def deploy_local(settings: Settings, stack: str) -> dict[str, pulumi.Output[str]]:
    """Creates the database stack on the local engine; returns the stack outputs."""
    engine = docker.Provider(f"{stack}-docker", host=LOCAL_ENGINE)
    context = StackContext(stack_tags(settings, stack), settings.is_prod, pulumi.ResourceOptions(provider=engine))
    database = deploy_database(settings, stack, context, engine=engine, registry=None, offsite=None, placement="single-node")
    return {
        "databaseEndpoint": pulumi.Output.from_input("localhost:5432"),
        "superuserPassword": database.superuser_password,
        "appUserPassword": database.app_user_password,
        "grafanaAdminPassword": database.grafana_admin_password,
        "caCertificate": database.ca_certificate,
    }
