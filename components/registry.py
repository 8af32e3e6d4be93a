"""Registry: where the project's images are pushed and the Swarm's nodes pull them from.

The nodes pull with their own cloud identity, never with a token stored in a Swarm service (a
token expires, and a new one in every preview shows a change on every service). The Swarm engine
pulls a task's image only with the credentials stored with its service, so every node pulls the
stack's images itself (`components/scripts/dpc-image-pull`), from the image list the deployment
records after each push; services wait until every node holds them (`dpc-images-ready`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.base import Component


@dataclass(frozen=True)
class RegistryPlan:
    """One repository per image the program builds, encrypted with the stack's key."""

    images: tuple[str, ...]
    key_id: pulumi.Output[str]


@dataclass(frozen=True)
class RegistryResult:
    """The repositories, the credentials to push to them, and where the image list lives.

    The image list's name and id are known before the list is written (`ImageList`), so the
    nodes' bootstrap settings and their identity's permissions can name it before any image is
    built.
    """

    server: pulumi.Output[str]
    username: pulumi.Output[str]
    password: pulumi.Output[str]
    repository_urls: dict[str, pulumi.Output[str]]
    repository_ids: dict[str, pulumi.Output[str]]
    """The cloud's id of each repository (an ARN on AWS), for the nodes' pull permission."""
    image_list_name: pulumi.Output[str]
    """Where the nodes read the references of the images to pull (`DPC_IMAGES_PARAMETER`)."""
    image_list_id: pulumi.Output[str]
    """The cloud's id of the image list (an ARN on AWS), for the nodes' read permission."""


@dataclass(frozen=True)
class ImageListPlan:
    """The pushed images' references by digest, recorded under the registry's image list name."""

    name: pulumi.Input[str]
    references: tuple[pulumi.Input[str], ...]


@dataclass(frozen=True)
class ImageListResult:
    """The recorded list; its version changes with every write, which the readiness gate follows."""

    version: pulumi.Output[str]


class ImageRegistry(Component[RegistryPlan, RegistryResult]):
    """The stack's container registry."""

    type_token = "dpc:registry:ImageRegistry"


class ImageList(Component[ImageListPlan, ImageListResult]):
    """The list of image references every node pulls, one `repository@sha256:…` per line."""

    type_token = "dpc:registry:ImageList"


def image_list_value(references: list[str]) -> str:
    """The list as the nodes read it: one reference per line, sorted, so the same images always
    give the same value and an unchanged stack writes nothing.
    """
    return "\n".join(sorted(references))
