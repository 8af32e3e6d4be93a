"""The local stack: the DatabaseStack on the Docker engine next to the program, in swarm mode.

No cloud resources: the images are built into the local engine and not pushed, members share
the one node, and the offsite backup copy is left out (there is no bucket to copy to).
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from dpc.model import LOAD_BALANCER_PORT
from dpc.topology import Topology
from providers.common.database import database_outputs, deploy_database

LOCAL_ENGINE = "unix:///var/run/docker.sock"


def deploy_local(topology: Topology, stack: str) -> dict[str, pulumi.Output[str]]:
    """Creates the database stack on the local engine; returns the stack outputs."""
    engine = docker.Provider(f"{stack}-docker", host=LOCAL_ENGINE)
    database = deploy_database(topology, stack, engine=engine, registry=None, offsite=None, placement="single-node")
    return {"databaseEndpoint": pulumi.Output.from_input(f"localhost:{LOAD_BALANCER_PORT}"), **database_outputs(database)}
