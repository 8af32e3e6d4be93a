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


class Component(pulumi.ComponentResource, Generic[PlanT, ResultT]):
    """A component of one concern: `dpc:<module>:<Name>` built by a per-cloud builder."""

    type_token: ClassVar[str]

    def __init__(
        self,
        name: str,
        plan: PlanT,
        builder: Callable[[Scope, PlanT], ResultT],
        context: StackContext,
    ) -> None:
        super().__init__(self.type_token, name, None, context.opts)
        self.result: ResultT = builder(Scope(self, name, context.tags, context.protect_state), plan)
        self.register_outputs(exported(self.result))
