"""A renamed component keeps a live stack's resources: its children are derived from its name
(`Scope.child`), so without their own aliases the engine would replace every one of them, volumes
and keys included. `Component(..., opts=ResourceOptions(aliases=[Alias(name=<former name>)]))`
gives each child the alias of its former name (`components.base.children_renamed`).

The alias URNs are the SDK's own: with the engine's `aliasSpecs` feature off, the Python SDK
computes every alias URN itself (the parent's inherited ones included) and sends them with the
registration, which is what the engine matches old URNs against.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.settings import reset_options
from pulumi.runtime.stack import run_pulumi_func

from components.base import Component, Scope, StackContext


class _Mocks(Mocks):
    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, object]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, object], list[tuple[str, str]] | None]:
        return {}, None


class _AliasRecorder(MockMonitor):
    """Records each registration's URN and alias URNs; declines `aliasSpecs` so the SDK computes them.

    URNs are the engine's (`engine_urn`): the mock monitor's own leave out the parent's type chain.
    """

    def __init__(self) -> None:
        super().__init__(_Mocks())
        self.urns: list[str] = []
        self.alias_urns: dict[str, list[str]] = {}
        self.engine_urns: dict[str, str] = {}

    def RegisterResource(self, request: object) -> object:  # noqa: N802  # the gRPC method's name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":  # type: ignore[attr-defined]  # protobuf request
            urn = self.engine_urn(request.parent, request.type, request.name)  # type: ignore[attr-defined]
            self.urns.append(urn)
            self.alias_urns[urn] = list(request.aliasURNs)  # type: ignore[attr-defined]
        return response

    def engine_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the engine gives: the parent's type chain (the stack's left out), then the type."""
        parent_urn = self.engine_urns.get(parent)
        qualified = f"{parent_urn.split('::')[2]}${type_}" if parent_urn else type_
        urn = f"urn:pulumi:prod::dpc::{qualified}::{name}"
        self.engine_urns[self.make_urn(parent, type_, name)] = urn
        return urn

    def GetDeploymentInfo(self, request: object) -> object:  # noqa: N802
        info = super().GetDeploymentInfo(request)
        supported = [f for f in info.supportedFeatures if f != resource_pb2.RESOURCE_MONITOR_FEATURE_ALIAS_SPECS]  # type: ignore[attr-defined]
        return resource_pb2.DeploymentInfo(supportedFeatures=supported)


@dataclass(frozen=True)
class _Plan:
    pass


@dataclass(frozen=True)
class _Result:
    key: pulumi.Output[str]


def _build(scope: Scope, plan: _Plan) -> _Result:
    """A component with a child and a grandchild, both named after the component as builders name them."""
    del plan
    key = random.RandomId(scope.child("key"), byte_length=8, opts=scope.stateful_opts())
    random.RandomPet(scope.child("pet"), prefix=key.hex, opts=pulumi.ResourceOptions(parent=key))
    return _Result(key.hex)


class _Thing(Component[_Plan, _Result]):
    type_token = "dpc:test:Thing"


def _register(name: str, opts: pulumi.ResourceOptions | None) -> _AliasRecorder:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    monitor = _AliasRecorder()
    try:
        reset_options(project="dpc", stack="prod", preview=False)
        pulumi.runtime.set_mocks(monitor.mocks, project="dpc", stack="prod", preview=False, monitor=monitor)
        context = StackContext({"Stack": "prod"}, protect_state=True, opts=pulumi.ResourceOptions())
        loop.run_until_complete(run_pulumi_func(lambda: _Thing(name, _Plan(), _build, context, opts)))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return monitor


def _kept(before: _AliasRecorder, after: _AliasRecorder) -> dict[str, bool]:
    """Each URN of the old stack: whether the new program still has it, by URN or by alias."""
    known = set(after.urns) | {alias for aliases in after.alias_urns.values() for alias in aliases}
    return {urn: urn in known for urn in before.urns}


def test_a_renamed_component_keeps_every_child_through_aliases() -> None:
    before = _register("prod-endpoint", None)
    after = _register("prod-database-endpoint", pulumi.ResourceOptions(aliases=[pulumi.Alias(name="prod-endpoint")]))
    assert len(before.urns) == 3
    assert not set(before.urns) & set(after.urns), "the rename changes every URN"
    assert all(_kept(before, after).values()), _kept(before, after)


def test_without_the_alias_the_rename_would_replace_the_children() -> None:
    before = _register("prod-endpoint", None)
    after = _register("prod-database-endpoint", None)
    assert not any(_kept(before, after).values())
