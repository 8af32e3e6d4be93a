"""The offline plan drops the aliases an SDK declares for its type's API versions (azure-native's,
dozens a resource, with no state in a plan to match) and keeps the program's own."""

from __future__ import annotations

from typing import Any, cast

import pulumi

from review.plan import _drop_api_version_aliases  # pyright: ignore[reportPrivateUsage]  # the harness's own transformation, tested alone

VERSIONED = "azure-native:network/v20240301:VirtualNetwork"


def _args(aliases: list[Any]) -> pulumi.ResourceTransformationArgs:
    resource = cast(pulumi.Resource, object())
    return pulumi.ResourceTransformationArgs(resource, "azure-native:network:VirtualNetwork", "vnet", {}, pulumi.ResourceOptions(aliases=aliases))


def test_api_version_aliases_go_and_the_programs_stay() -> None:
    renamed = pulumi.Alias(name="old-vnet")
    moved = pulumi.Alias(type_="dpc:network:OldNetwork")
    result = _drop_api_version_aliases(_args([pulumi.Alias(type_=VERSIONED), renamed, moved, "urn:pulumi:s::p::t::n"]))
    assert result is not None
    assert result.opts.aliases == [renamed, moved, "urn:pulumi:s::p::t::n"]


def test_a_resource_without_such_aliases_is_left_as_it_is() -> None:
    assert _drop_api_version_aliases(_args([pulumi.Alias(name="old-vnet")])) is None
    assert _drop_api_version_aliases(_args([])) is None
