"""The shape every component shares: one type token, children parented and named after it,
outputs registered last.

A component holds the cloud-neutral plan of its concern; a per-cloud builder (a function in
`providers/<cloud>/`) creates the cloud's resources inside the component's `Scope` and returns
the results the callers need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Generic, TypeVar

import pulumi


@dataclass(frozen=True)
class Scope:
    """Where a builder creates children: names derived from the component's, parent set, tags at hand."""

    component: pulumi.ComponentResource
    name: str
    tags: Mapping[str, str]
    protect_state: bool
    """True in prod: stateful children (volumes, buckets, keys) are protected from deletion."""

    def child(self, suffix: str) -> str:
        """A child's name: the component's name and the child's role, `prod-network-vpc`."""
        return f"{self.name}-{suffix}"

    def opts(self, **kwargs: Any) -> pulumi.ResourceOptions:
        """Options of a child: parented to the component, plus whatever the caller adds."""
        return pulumi.ResourceOptions(parent=self.component, **kwargs)

    def stateful_opts(self, **kwargs: Any) -> pulumi.ResourceOptions:
        """Options of a child that holds data: protected in prod."""
        return self.opts(protect=self.protect_state, **kwargs)

    def tags_with(self, **extra: str) -> dict[str, str]:
        """The stack's tags plus the child's own (`Name`, `Role`)."""
        return dict(self.tags) | extra


@dataclass(frozen=True)
class StackContext:
    """What every component of one stack shares: its tags, whether it is prod, its provider."""

    tags: Mapping[str, str]
    protect_state: bool
    opts: pulumi.ResourceOptions


PlanT = TypeVar("PlanT")
ResultT = TypeVar("ResultT")


def exported(result: object) -> dict[str, Any]:
    """A result dataclass as the dict of outputs a component registers."""
    return {f.name: getattr(result, f.name) for f in fields(result)}  # type: ignore[arg-type]  # any dataclass instance


def former_names(opts: pulumi.ResourceOptions | None) -> tuple[str, ...]:
    """The names a component had before a rename, from its `aliases` (those that name one)."""
    aliases = (opts.aliases or []) if opts else []
    return tuple(alias.name for alias in aliases if isinstance(alias, pulumi.Alias) and isinstance(alias.name, str))


def children_renamed(name: str, former: tuple[str, ...]) -> pulumi.ResourceTransformation:
    """A transformation that gives each child of a renamed component the alias of its former name.

    A child's name is derived from its component's (`Scope.child`), so renaming the component
    renames every child; the component's own alias only carries over its type and parent, and the
    engine would replace every child, volumes and keys included. With this, each child named
    `<name>-<role>` is also known as `<former>-<role>`, and a rename replaces nothing.
    """
    prefix = f"{name}-"

    def rename(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not args.name.startswith(prefix):
            return None
        suffix = args.name.removeprefix(prefix)
        aliases = [pulumi.Alias(name=f"{old}-{suffix}") for old in former]
        return pulumi.ResourceTransformationResult(args.props, pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(aliases=aliases)))

    return rename


def component_opts(name: str, context: StackContext, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """A component's options: the stack's, the caller's, and its children's aliases if it was renamed."""
    merged = pulumi.ResourceOptions.merge(context.opts, opts)
    former = former_names(opts)
    if not former:
        return merged
    return pulumi.ResourceOptions.merge(merged, pulumi.ResourceOptions(transformations=[children_renamed(name, former)]))


class Component(pulumi.ComponentResource, Generic[PlanT, ResultT]):
    """A component of one concern: `dpc:<module>:<Name>` built by a per-cloud builder.

    `opts` adds to the stack's options; its `aliases` keep a live stack's resources when the
    component is renamed (`children_renamed`).
    """

    type_token: ClassVar[str]

    def __init__(
        self,
        name: str,
        plan: PlanT,
        builder: Callable[[Scope, PlanT], ResultT],
        context: StackContext,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(self.type_token, name, None, component_opts(name, context, opts))
        self.result: ResultT = builder(Scope(self, name, context.tags, context.protect_state), plan)
        self.register_outputs(exported(self.result))
