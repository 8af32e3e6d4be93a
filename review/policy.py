"""Runs the policy pack over an offline plan the way the Pulumi engine runs it over a preview.

There is no official harness for Python policy packs, and `pulumi preview --json` leaves policy
results out, so this module plays the engine's part, keeping to what it hands the pack:
- each resource's properties travel as a protobuf Struct (numbers become doubles, as on the
  wire), are deserialized by pulumi_policy and wrapped in its unknown-checking proxy (once per
  resource and shared by the policies, which only read them); values the
  plan shows as "[unknown]" become the engine's unknown sentinel, so a policy that reads one is
  reported as unable to run during preview, exactly as the engine reports it;
- resource options (protect, parent), the provider, dependencies and property dependencies;
- the stack's config, which the engine passes to the pack's process (policies read `dpc:access`);
- the pack's config file: `all` sets every policy's enforcement level, a policy's own entry
  overrides it, and config properties are filled from each policy's schema defaults.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policies.pack import DEFAULT_ENFORCEMENT, PACK_NAME, PACK_VERSION, POLICIES

POLICY_CONFIG_DIR = Path(__file__).resolve().parent.parent / "policies" / "config"
UNKNOWN_SHOWN = "[unknown]"


class PolicyConfigError(ValueError):
    """A pack config file that names a policy the pack does not have, or a bad level."""


@dataclass(frozen=True)
class PlannedResource:
    """One resource of a plan, as the engine knows it when it asks the pack."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    protect: bool = False
    parent: str = ""
    provider: str = ""
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, Sequence[str]] | None = None


@dataclass(frozen=True)
class Violation:
    """One diagnostic of the pack, as the engine prints it."""

    policy: str
    level: EnforcementLevel
    severity: str
    message: str
    urn: str
    remediation: str


@dataclass(frozen=True)
class ConfiguredPolicy:
    """A policy with the enforcement level and properties its config gives it."""

    policy: Policy
    level: EnforcementLevel
    properties: Mapping[str, Any]


def plan_resources(plan: Mapping[str, Any]) -> list[PlannedResource]:
    """The resources of an offline plan (`review.plan.build_plan`), in the plan's order."""
    resources: list[PlannedResource] = []
    for step in plan["steps"]:
        state = step["newState"]
        resources.append(PlannedResource(
            urn=state["urn"], type=state["type"], name=state["urn"].split("::")[-1], inputs=state["inputs"], protect=state["protect"],
            parent=state["parent"], provider=state["provider"], dependencies=tuple(state["dependencies"]),
            property_dependencies=state.get("propertyDependencies", {}),
        ))
    return resources


def _level(value: Any, where: str) -> EnforcementLevel:
    try:
        return EnforcementLevel(value)
    except ValueError:
        raise PolicyConfigError(f"{where}: {value!r} is not one of {', '.join(level.value for level in EnforcementLevel)}") from None


def _entry(value: Any) -> dict[str, Any]:
    """A config entry as an object: a bare string is the enforcement level alone."""
    if isinstance(value, str):
        return {"enforcementLevel": value}
    return dict(cast(dict[str, Any], value)) if isinstance(value, dict) else {}


def configure(pack_config: Mapping[str, Any], policies: Sequence[Policy] = POLICIES) -> list[ConfiguredPolicy]:
    """Every policy with its level and properties, as the engine resolves a `--policy-pack-config` file."""
    names = {policy.name for policy in policies}
    unknown = sorted(set(pack_config) - names - {"all"})
    if unknown:
        raise PolicyConfigError(f"the pack has no policy {', '.join(unknown)}; its policies: {', '.join(sorted(names))}")
    all_level = _entry(pack_config.get("all")).get("enforcementLevel")
    configured: list[ConfiguredPolicy] = []
    for policy in policies:
        entry = _entry(pack_config.get(policy.name))
        level = entry.pop("enforcementLevel", None)
        resolved = _level(level, policy.name) if level else _level(all_level, "all") if all_level else policy.enforcement_level or DEFAULT_ENFORCEMENT
        schema = policy.config_schema.properties if policy.config_schema else {}
        properties = {key: spec["default"] for key, spec in schema.items() if "default" in spec} | entry
        configured.append(ConfiguredPolicy(policy, EnforcementLevel.MANDATORY if resolved is EnforcementLevel.REMEDIATE else resolved, properties))
    return configured


def load_pack_config(path: Path) -> dict[str, Any]:
    """A `policies/config/<env>.json` file."""
    return cast(dict[str, Any], json.loads(path.read_text()))


def _unmasked(value: Any) -> Any:
    if value == UNKNOWN_SHOWN:
        return UNKNOWN_STRING_VALUE
    if isinstance(value, dict):
        return {key: _unmasked(item) for key, item in cast(dict[str, Any], value).items()}
    if isinstance(value, list):
        return [_unmasked(item) for item in cast(list[Any], value)]
    return value


def engine_props(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """Properties as the pack receives them: through a protobuf Struct, deserialized, proxied."""
    struct = struct_pb2.Struct()
    struct.update(_unmasked(dict(inputs)))
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def _options(resource: PlannedResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(resource.protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], resource.parent or None)


Validation = Callable[[ReportViolation], object]
"""A policy's validate, bound to the arguments of one resource or of the stack."""


def _run(validation: Validation, report: ReportViolation) -> None:
    """Calls a validation, awaiting it if it is a coroutine, as the SDK's analyzer does."""
    result = validation(report)
    if inspect.isawaitable(result):
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(result)
        finally:
            loop.close()


@dataclass
class _Diagnostics:
    """Collects the diagnostics of one run, worded as the SDK words them."""

    found: list[Violation]

    def reporter(self, configured: ConfiguredPolicy, default_urn: str) -> ReportViolation:
        policy = configured.policy

        def report(message: str, urn: str | None = None) -> None:
            text = f"{policy.description}\n{message}" if message else policy.description
            self.add(configured, configured.level, text, urn or default_urn)

        return report

    def add(self, configured: ConfiguredPolicy, level: EnforcementLevel, message: str, urn: str) -> None:
        policy = configured.policy
        severity = policy.severity.value if policy.severity else ""
        self.found.append(Violation(policy.name, level, severity, message, urn, policy.remediation_steps or ""))

    def guarded(self, configured: ConfiguredPolicy, urn: str, validation: Validation) -> None:
        """Runs a validation; an unknown value read during preview becomes the engine's advisory note."""
        try:
            _run(validation, self.reporter(configured, urn))
        except UnknownValueError as error:
            note = f"can't run policy '{configured.policy.name}' from policy pack '{PACK_NAME}@v{PACK_VERSION}' during preview: {error.message}"
            self.add(configured, EnforcementLevel.ADVISORY, note, urn)


def run_policies(resources: Sequence[PlannedResource], pack_config: Mapping[str, Any], stack_config: Mapping[str, str],
                 policies: Sequence[Policy] = POLICIES) -> list[Violation]:
    """Every violation the pack reports on these resources with this pack config, for a stack
    whose config is `stack_config` (the `Pulumi.<stack>.yaml` values as the engine passes them).
    """
    pulumi.runtime.set_all_config(dict(stack_config))
    props = {r.urn: engine_props(r.inputs) for r in resources}
    providers = {r.urn: PolicyProviderResource(r.type, props[r.urn], r.urn, r.name) for r in resources if r.type.startswith("pulumi:providers:")}
    stack = _stack_resources(resources, props, providers)
    diagnostics = _Diagnostics([])
    for configured in configure(pack_config, policies):
        policy = configured.policy
        if configured.level is EnforcementLevel.DISABLED:
            continue
        if isinstance(policy, ResourceValidationPolicy):
            for resource in resources:
                args = ResourceValidationArgs(resource.type, props[resource.urn], resource.urn, resource.name, _options(resource),
                                              providers.get(_provider_urn(resource)), dict(configured.properties))
                diagnostics.guarded(configured, resource.urn, partial(policy.validate, args))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]  # the SDK leaves validate's Awaitable unparameterised
        elif isinstance(policy, StackValidationPolicy):
            stack_args = StackValidationArgs(stack, dict(configured.properties))
            diagnostics.guarded(configured, "", partial(policy.validate, stack_args))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]  # as above
    return diagnostics.found


def _provider_urn(resource: PlannedResource) -> str:
    """The URN of a resource's provider, from its `urn::id` reference."""
    return resource.provider.rsplit("::", 1)[0]


def _stack_resources(resources: Sequence[PlannedResource], props: Mapping[str, Mapping[str, Any]],
                     providers: Mapping[str, PolicyProviderResource]) -> list[PolicyResource]:
    """The resources as a stack policy sees them, linked to their parents and dependencies."""
    by_urn = {r.urn: PolicyResource(r.type, props[r.urn], r.urn, r.name, _options(r), providers.get(_provider_urn(r)), None, [], {}) for r in resources}
    for r in resources:
        resource = by_urn[r.urn]
        resource.parent = by_urn.get(r.parent)
        resource.dependencies = [by_urn[d] for d in r.dependencies if d in by_urn]
        resource.property_dependencies = {key: [by_urn[d] for d in urns if d in by_urn] for key, urns in (r.property_dependencies or {}).items()}
    return list(by_urn.values())


def report(violations: Sequence[Violation]) -> str:
    """The violations grouped by enforcement level, mandatory first, as a reviewer reads them."""
    if not violations:
        return "policy pack: no violations"
    lines: list[str] = []
    for level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY):
        found = [v for v in violations if v.level is level]
        if not found:
            continue
        lines.append(f"{level.value} violations ({len(found)}):")
        for violation in sorted(found, key=lambda v: (v.policy, v.urn)):
            where = violation.urn.split("::")[-1] if violation.urn else "(stack)"
            detail = violation.message.splitlines()[-1]
            lines.append(f"  [{violation.severity}] {violation.policy} — {where}: {detail}")
            lines.append(f"      fix: {violation.remediation}")
    return "\n".join(lines)


def pack_config_for(stack_config: Mapping[str, str]) -> Path:
    """The pack config of the stack's environment (`dpc:environment`), as CI passes it to the CLI."""
    return POLICY_CONFIG_DIR / f"{stack_config.get('dpc:environment', 'prod')}.json"
