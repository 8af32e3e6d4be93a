"""Registry: where the project's own images are pushed and the Swarm's nodes pull them from."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.base import Component


@dataclass(frozen=True)
class RegistryPlan:
    """One repository per image the program builds, encrypted with the stack's key."""

    images: tuple[str, ...]
    key_arn: pulumi.Output[str]


@dataclass(frozen=True)
class RegistryResult:
    """The repositories and the credentials to push to them."""

    server: pulumi.Output[str]
    username: pulumi.Output[str]
    password: pulumi.Output[str]
    repository_urls: dict[str, pulumi.Output[str]]


class ImageRegistry(Component[RegistryPlan, RegistryResult]):
    """The stack's container registry."""

    type_token = "dpc:registry:ImageRegistry"
