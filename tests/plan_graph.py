"""Reading a plan document as a graph: resources by type and name, ids resolved back to resources."""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from review.mocks import mock_id


@dataclass(frozen=True)
class Resource:
    """One planned resource: its URN, type, name, inputs and options."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    inputs: dict[str, Any]
    protect: bool
    provider: str
    id: str
    """The id the offline plan's mocks gave it: named from its name (and, on GCP, its inputs and its provider's project and region)."""


class PlanGraph:
    """Queries over the steps of one plan."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        inputs = {s["urn"]: s["newState"]["inputs"] for s in plan["steps"]}

        def resource(state: dict[str, Any], name: str) -> Resource:
            provider_inputs = inputs.get(state["provider"].rsplit("::", 1)[0])
            return Resource(state["urn"], state["type"], name, state["custom"], state["parent"], state["inputs"], state["protect"], state["provider"],
                            mock_id(state["type"], name, state["inputs"], provider_inputs))

        self.resources = [resource(s["newState"], s["urn"].split("::")[-1]) for s in plan["steps"]]
        self.by_urn = {r.urn: r for r in self.resources}
        self.by_id = {r.id: r for r in self.resources if r.custom}

    def of_type(self, typ: str) -> list[Resource]:
        return [r for r in self.resources if r.type == typ]

    def named(self, suffix: str, typ: str | None = None) -> Resource:
        found = [r for r in self.resources if r.name.endswith(suffix) and (typ is None or r.type == typ)]
        assert len(found) == 1, f"expected one resource named *{suffix}, found {[r.name for r in found]}"
        return found[0]

    def role_statements(self) -> dict[str, list[dict[str, Any]]]:
        """Each machine role's IAM statements: its identity's policy and, apart, the one on the
        stack key (providers/aws/compute.py), taken together."""
        statements: dict[str, list[dict[str, Any]]] = {}
        for policy in self.of_type("aws:iam/rolePolicy:RolePolicy"):
            if "-compute-" in policy.name:
                role = policy.name.split("-compute-")[1].removesuffix("-key").removesuffix("-identity")
                statements.setdefault(role, []).extend(json.loads(policy.inputs["policy"])["Statement"])
        return statements


@cache
def sdk_class(token: str) -> type | None:
    """The pulumi_aws class of a type token such as `aws:ec2/instance:Instance`."""
    package, module_path, class_name = token.split(":")
    if package != "aws":
        return None
    module = importlib.import_module(f"pulumi_aws.{module_path.split('/')[0]}")
    return getattr(module, class_name, None)


def is_taggable(token: str) -> bool:
    """Whether the SDK's resource takes a `tags` input: decided by the SDK, not by a list of ours."""
    cls = sdk_class(token)
    return cls is not None and "tags" in inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]
