"""The readiness gate between the machines and everything on the Swarm.

A cloud reports a machine "running" long before its bootstrap has installed Docker and joined the
Swarm; the docker provider, and any service placed by node labels, would fail against a Swarm still
forming. The gate runs `dpc-swarm-ready` on manager-1 over SSH (`components.access`): it returns
once every node of the plan is Ready and Active with all its labels and no stale node is left, or
fails the run naming what is missing. Everything Docker waits for it, so the first `pulumi up` of
an empty stack completes in one run.

It runs again only when a machine is replaced (its id is a trigger), so a re-run of an unchanged
stack does nothing, and a replaced node is back in the Swarm before anything is deployed to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_command as command

from components.access import DIAL_ATTEMPTS, PER_DIAL_SECONDS

READY_SCRIPT = "/usr/local/sbin/dpc-swarm-ready"
READY_TIMEOUT_SECONDS = 1800
"""The nodes' own bootstrap bound: a node not in the Swarm by then will not be without help."""


def _beyond(seconds: int) -> pulumi.CustomTimeouts:
    """The engine's deadline for a gate: its script's own bound plus the SSH dials of a booting
    machine (`components.access.DIAL_ATTEMPTS`), so the script, which names what is missing, is
    the one that gives up first.
    """
    minutes = seconds // 60 + DIAL_ATTEMPTS * PER_DIAL_SECONDS // 60 + 5
    return pulumi.CustomTimeouts(create=f"{minutes}m", update=f"{minutes}m")


def _check(
    parent: pulumi.ComponentResource,
    name: str,
    connection: command.remote.ConnectionArgs,
    *,
    create: pulumi.Input[str],
    triggers: Sequence[pulumi.Input[str]],
    bound_seconds: int,
) -> command.remote.Command:
    """A gate's command on manager-1: run once, and again when a trigger changes."""
    return command.remote.Command(
        f"{name}-nodes",
        connection=connection,
        create=create,
        triggers=list(triggers),
        opts=pulumi.ResourceOptions(parent=parent, custom_timeouts=_beyond(bound_seconds)),
    )


class SwarmReady(pulumi.ComponentResource):
    """Completes once the Swarm holds every planned node, labelled."""

    def __init__(
        self,
        name: str,
        connection: command.remote.ConnectionArgs,
        machines: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("dpc:readiness:SwarmReady", name, None, opts)
        create = f"{READY_SCRIPT} --timeout {READY_TIMEOUT_SECONDS}"
        triggers = [machines[node] for node in sorted(machines)]
        self.check = _check(self, name, connection, create=create, triggers=triggers, bound_seconds=READY_TIMEOUT_SECONDS)
        self.register_outputs({})


IMAGES_SCRIPT = "/usr/local/sbin/dpc-images-ready"
IMAGES_TIMEOUT_SECONDS = 1200
"""How long `dpc-images-ready` waits (it is told): the nodes pull every minute, so 20 minutes is many tries."""


class ImagesReady(pulumi.ComponentResource):
    """Completes once every node holds each of the stack's images, pulled with its own identity:
    services wait for it, so none is updated to an image a node lacks (its task would be rejected
    there and the rolling update roll back). It runs `dpc-images-ready` on manager-1 after the
    image list the nodes pull from is written (`list_version`), and again whenever it changes.
    """

    def __init__(
        self,
        name: str,
        connection: command.remote.ConnectionArgs,
        references: Sequence[pulumi.Input[str]],
        list_version: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("dpc:readiness:ImagesReady", name, None, opts)
        create = pulumi.Output.all(*references).apply(
            lambda refs: " ".join([f"DPC_IMAGES_READY_WAIT_SECONDS={IMAGES_TIMEOUT_SECONDS}", IMAGES_SCRIPT, *sorted(str(r) for r in refs)])
        )
        self.check = _check(self, name, connection, create=create, triggers=[list_version], bound_seconds=IMAGES_TIMEOUT_SECONDS)
        self.register_outputs({})
