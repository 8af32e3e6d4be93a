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
- the pack's config file, read as the engine reads `--policy-pack-config`: each entry a level or an
  object (a level and properties), `all` sets every policy's level and a policy's own entry
  overrides it; properties are filled from each policy's schema defaults and then validated
  against its schema (an object of those properties, with its required ones), every error named
  by policy and field; an entry for a policy the pack does not have is ignored, as the engine
  ignores it (its config validation walks the pack's policies, not the file's names).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
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

from dpc.config import SECRET_SHOWN, StackFileError, stack_file_config
from policies.pack import DEFAULT_ENFORCEMENT, PACK_NAME, PACK_VERSION, POLICIES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POLICY_CONFIG_DIR = PROJECT_ROOT / "policies" / "config"
UNKNOWN_SHOWN = "[unknown]"
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIGNATURE = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_SIGNATURE = "5cf8f73096256a8f31e491e813e4eb8e"
"""The engine's wire markers (`sig` key, and its values for a secret and a resource reference)."""


class PolicyConfigError(ValueError):
    """A pack config file the engine would refuse: not a JSON object, an entry neither a level nor
    an object, a bad level, or properties that do not match their policy's schema.
    """


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
    outputs: Mapping[str, Any] | None = None
    """What the engine hands whole-stack policies: a resource's outputs (its state, as a preview's
    provider echoes it or as `up` and `refresh` read it back); None where the plan records none,
    and whole-stack policies then see the inputs, as per-resource ones always do.
    """


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


_GONE = frozenset({"delete", "delete-replaced", "discard", "discard-replaced", "remove-pending-replace"})
"""Step ops after which the resource is not in the stack: the engine analyzes no such resource."""


def _inputs(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """A state's inputs; a state that records only its outputs is read by them (they hold the
    inputs the provider echoed), never as a resource with no properties.
    """
    return cast(Mapping[str, Any], state["inputs"] if "inputs" in state else state.get("outputs") or {})


def plan_resources(plan: Mapping[str, Any]) -> list[PlannedResource]:
    """The resources of a plan in the plan's order: an offline plan (`review.plan.build_plan`) or a
    `pulumi preview --json`, whose steps may lack what ours record (outputs or inputs, property
    dependencies), whose deletes have no new state, and which lists a replaced resource once per
    step of its replacement (the last new state is the one the engine analyzes).
    """
    states: dict[str, Mapping[str, Any]] = {}
    for step in plan["steps"]:
        state = step.get("newState")
        if step.get("op") in _GONE or not isinstance(state, Mapping):
            continue
        states[str(cast(Mapping[str, Any], state)["urn"])] = cast(Mapping[str, Any], state)
    return [
        PlannedResource(
            urn=urn, type=state["type"], name=urn.split("::")[-1], inputs=_inputs(state), protect=bool(state.get("protect")),
            parent=state.get("parent") or "", provider=state.get("provider") or "", dependencies=tuple(state.get("dependencies") or ()),
            property_dependencies=state.get("propertyDependencies") or {}, outputs=state.get("outputs"),
        )
        for urn, state in states.items()
    ]


def _level(value: Any, where: str) -> EnforcementLevel:
    try:
        return EnforcementLevel(value)
    except ValueError:
        levels = ", ".join(level.value for level in EnforcementLevel)
        raise PolicyConfigError(f"{where}: {value!r} is not a valid enforcement level (one of {levels})") from None


def _entry(name: str, value: Any) -> tuple[EnforcementLevel | None, dict[str, Any]]:
    """A config entry's level and properties: a string is a level alone, an object may hold one
    (`enforcementLevel`) beside the properties; anything else the engine refuses.
    """
    if isinstance(value, str):
        return _level(value, name), {}
    if not isinstance(value, dict):
        raise PolicyConfigError(f"{name}: {json.dumps(value)} is not a valid value; must be a level or an object")
    properties = dict(cast(dict[str, Any], value))
    level = properties.pop("enforcementLevel", None)
    if level is not None and not isinstance(level, str):
        raise PolicyConfigError(f"{name}: enforcementLevel {json.dumps(level)} is not a valid enforcement level; must be a string")
    return (_level(level, name) if level is not None else None), properties


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer(),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}
SCHEMA_KEYWORDS = frozenset({
    "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength",
    "pattern", "items", "minItems", "maxItems", "uniqueItems", "properties", "required", "additionalProperties",
    "default", "description", "title", "examples",
})
"""The JSON Schema keywords `schema_errors` judges (draft 7, as the engine's validator reads them)
and the annotations it may pass over; a policy schema using another is refused, not half-checked.
"""


def _bounds_errors(schema: Mapping[str, Any], value: Any) -> Iterator[str]:
    """What a number, string or array breaks of its schema's bounds."""
    if _TYPES["number"](value):
        for keyword, broken in (("minimum", value < schema.get("minimum", -math.inf)), ("maximum", value > schema.get("maximum", math.inf)),
                                ("exclusiveMinimum", value <= schema.get("exclusiveMinimum", -math.inf)),
                                ("exclusiveMaximum", value >= schema.get("exclusiveMaximum", math.inf))):
            if broken:
                yield f"{json.dumps(value)} breaks its {keyword} {schema[keyword]}"
        if "multipleOf" in schema and not float(value / schema["multipleOf"]).is_integer():
            yield f"{json.dumps(value)} is not a multiple of {schema['multipleOf']}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", math.inf):
            yield f"{json.dumps(value)} has {len(value)} characters, outside {schema.get('minLength', 0)}..{schema.get('maxLength', 'any')}"
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            yield f"{json.dumps(value)} does not match {schema['pattern']}"
    if isinstance(value, list):
        items = cast(list[Any], value)
        if len(items) < schema.get("minItems", 0) or len(items) > schema.get("maxItems", math.inf):
            yield f"has {len(items)} items, outside {schema.get('minItems', 0)}..{schema.get('maxItems', 'any')}"
        if schema.get("uniqueItems") and len({json.dumps(item, sort_keys=True) for item in items}) < len(items):
            yield "has repeated items"


def schema_errors(schema: Mapping[str, Any], value: Any, where: str = "") -> Iterator[str]:
    """Each way `value` breaks `schema`, as `field: why` (`[i]` for list items, `.key` for keys)."""
    unsupported = sorted(set(schema) - SCHEMA_KEYWORDS)
    if unsupported:
        raise PolicyConfigError(f"{where or 'schema'}: the harness cannot judge the schema keyword(s) {', '.join(unsupported)}")
    field = where or "(config)"
    types = schema.get("type")
    allowed = [types] if isinstance(types, str) else cast(list[str], types or [])
    if allowed and not any(_TYPES[t](value) for t in allowed):
        yield f"{field}: {json.dumps(value)} is not of type {' or '.join(allowed)}"
        return
    if "enum" in schema and value not in schema["enum"]:
        yield f"{field}: {json.dumps(value)} is not one of {json.dumps(schema['enum'])}"
    if "const" in schema and value != schema["const"]:
        yield f"{field}: {json.dumps(value)} is not {json.dumps(schema['const'])}"
    yield from (f"{field}: {why}" for why in _bounds_errors(schema, value))
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(cast(list[Any], value)):
            yield from schema_errors(schema["items"], item, f"{where}[{index}]")
    if isinstance(value, dict):
        yield from _object_errors(schema, cast(dict[str, Any], value), where)


def _object_errors(schema: Mapping[str, Any], mapping: Mapping[str, Any], where: str) -> Iterator[str]:
    """What an object breaks of its schema: a required key missing, a key's value, a key it forbids."""
    properties = cast(dict[str, Any], schema.get("properties", {}))
    for key in schema.get("required", []):
        if key not in mapping:
            yield f"{where + '.' if where else ''}{key}: is required"
    for key, item in mapping.items():
        inner = f"{where}.{key}" if where else key
        if key in properties:
            yield from schema_errors(properties[key], item, inner)
        elif schema.get("additionalProperties") is False:
            yield f"{inner}: is not a property of this schema"
        elif isinstance(schema.get("additionalProperties"), dict):
            yield from schema_errors(schema["additionalProperties"], item, inner)


def _policy_schema(policy: Policy) -> dict[str, Any]:
    """A policy's config schema as the engine validates against it: an object of its properties."""
    schema: dict[str, Any] = {"type": "object"}
    if policy.config_schema and policy.config_schema.properties:
        schema["properties"] = policy.config_schema.properties
    if policy.config_schema and policy.config_schema.required:
        schema["required"] = policy.config_schema.required
    return schema


def ignored_policy_names(pack_config: Mapping[str, Any], policies: Sequence[Policy] = POLICIES) -> list[str]:
    """The entries of a pack config that name no policy of the pack: the engine passes them on and
    the pack never reads them (a misspelt name configures nothing), so the CLI warns of them.
    """
    return sorted(set(pack_config) - {policy.name for policy in policies} - {"all"})


def configure(pack_config: Mapping[str, Any], policies: Sequence[Policy] = POLICIES) -> list[ConfiguredPolicy]:
    """Every policy with its level and properties, as the engine resolves a `--policy-pack-config`
    file; raises PolicyConfigError with every error of the file, each named by policy and field.
    """
    entries = {name: _entry(name, value) for name, value in pack_config.items()}
    all_level = entries["all"][0] if "all" in entries else None
    configured: list[ConfiguredPolicy] = []
    errors: list[str] = []
    for policy in policies:
        level, given = entries.get(policy.name, (None, {}))
        resolved = level or all_level or policy.enforcement_level or DEFAULT_ENFORCEMENT
        schema = policy.config_schema.properties if policy.config_schema else {}
        properties = {key: spec["default"] for key, spec in schema.items() if "default" in spec} | given
        if policy.config_schema:
            errors.extend(f"policy '{policy.name}', {why}" for why in schema_errors(_policy_schema(policy), properties))
        configured.append(ConfiguredPolicy(policy, EnforcementLevel.MANDATORY if resolved is EnforcementLevel.REMEDIATE else resolved, properties))
    if errors:
        raise PolicyConfigError("; ".join(errors))
    return configured


def load_pack_config(path: Path) -> dict[str, Any]:
    """A pack config file (`policies/config/<env>.json`): a JSON object of entries by policy name;
    an empty file configures nothing, as for the engine.
    """
    text = path.read_text()
    if not text.strip():
        return {}
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyConfigError(f"not JSON: {error}") from None
    if not isinstance(loaded, dict):
        raise PolicyConfigError(f"must be a JSON object of entries by policy name, not {type(loaded).__name__}")
    return cast(dict[str, Any], loaded)


def _unmasked_mapping(mapping: dict[str, Any]) -> Any:
    """A property map, or one of the envelopes a `pulumi preview --json` writes: a secret with its
    plaintext (`--show-secrets`, JSON-encoded) goes on as a secret, one shown only as ciphertext as
    "[secret]" (its value is not in the file), a resource reference as its URN (as our plans show it).
    """
    signature = mapping.get(SECRET_SIG_KEY)
    if signature == SECRET_SIGNATURE:
        if "plaintext" in mapping:
            return {SECRET_SIG_KEY: SECRET_SIGNATURE, "value": _unmasked(json.loads(mapping["plaintext"]))}
        if "value" in mapping:
            return {SECRET_SIG_KEY: SECRET_SIGNATURE, "value": _unmasked(mapping["value"])}
        return SECRET_SHOWN
    if signature == RESOURCE_SIGNATURE:
        return mapping.get("urn", "")
    return {key: _unmasked(item) for key, item in mapping.items()}


def _unmasked(value: Any) -> Any:
    if value == UNKNOWN_SHOWN:
        return UNKNOWN_STRING_VALUE
    if isinstance(value, dict):
        return _unmasked_mapping(cast(dict[str, Any], value))
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
    Per-resource policies read each resource's inputs, whole-stack ones its outputs where the plan
    has them (the engine's AnalyzeStack hands over the resources' states).
    """
    pulumi.runtime.set_all_config(dict(stack_config))
    props = {r.urn: engine_props(r.inputs) for r in resources}
    state = {r.urn: engine_props(r.outputs) if r.outputs is not None else props[r.urn] for r in resources}
    providers = {r.urn: PolicyProviderResource(r.type, props[r.urn], r.urn, r.name) for r in resources if r.type.startswith("pulumi:providers:")}
    stack = _stack_resources(resources, state, providers)
    diagnostics = _Diagnostics([])
    for configured in configure(pack_config, policies):
        policy = configured.policy
        if configured.level is EnforcementLevel.DISABLED:
            continue
        config = _as_configured(configured.properties)
        if isinstance(policy, ResourceValidationPolicy):
            for resource in resources:
                args = ResourceValidationArgs(resource.type, props[resource.urn], resource.urn, resource.name, _options(resource),
                                              providers.get(_provider_urn(resource)), None if config is None else dict(config))
                diagnostics.guarded(configured, resource.urn, partial(policy.validate, args))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]  # the SDK leaves validate's Awaitable unparameterised
        elif isinstance(policy, StackValidationPolicy):
            stack_args = StackValidationArgs(stack, None if config is None else dict(config))
            diagnostics.guarded(configured, "", partial(policy.validate, stack_args))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]  # as above
    return diagnostics.found


def _as_configured(properties: Mapping[str, Any]) -> dict[str, Any] | None:
    """A policy's config properties as the policy host hands them to `validate`: sent by the engine
    in a protobuf Struct (every number a float: 32 arrives as 32.0), a fresh copy for each call,
    and None for a policy with none.
    """
    if not properties:
        return None
    struct = struct_pb2.Struct()
    struct.update(dict(properties))
    return json_format.MessageToDict(struct)


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


POLICY_EXIT_CODES = """exit status:
  0  no mandatory violation (advisory ones, and policies that could not judge an unknown value, are printed)
  1  at least one mandatory violation
  2  bad input: a plan file that is not a plan, a bad stack file, or a pack config the engine would refuse
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `policy` subcommand's arguments (python -m review policy PLAN.json)."""
    parser.add_argument("plan", type=Path, help="a plan: ./run plan's, or what `pulumi preview --json` printed")
    parser.add_argument("--policy-pack-config", type=Path, help="the pack's config (default: policies/config/<dpc:environment>.json)")
    parser.add_argument("--stack-config", type=Path,
                        help="the stack file whose config the policies read (default: Pulumi.<stack>.yaml of the plan's stack, if there is one)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text for a reviewer, json for a tool")
    parser.epilog = POLICY_EXIT_CODES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def _plan_file(path: Path) -> dict[str, Any]:
    """A plan file's JSON, refused unless it is an object with a list of steps, each naming a URN."""
    try:
        plan: object = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PolicyConfigError(f"not JSON: {error}") from None
    steps = cast(dict[str, Any], plan).get("steps") if isinstance(plan, dict) else None
    if not isinstance(steps, list) or not all(isinstance(step, dict) for step in cast(list[Any], steps)):
        raise PolicyConfigError("not a plan: expected an object with a list of `steps` (./run plan or `pulumi preview --json`)")
    return cast(dict[str, Any], plan)


def _stack_of(resources: Sequence[PlannedResource]) -> str:
    """The stack a plan is of, from its URNs (`urn:pulumi:<stack>::<project>::...`)."""
    return resources[0].urn.split(":")[2] if resources else ""


def command(args: argparse.Namespace) -> int:
    """Runs the pack over a plan file as the engine would over that preview; exits as POLICY_EXIT_CODES says."""
    where = f"plan {args.plan}"
    try:
        try:
            resources = plan_resources(_plan_file(args.plan))
        except KeyError as error:
            raise PolicyConfigError(f"not a plan: a step's new state has no {error}") from None
        stack_file: Path = args.stack_config or PROJECT_ROOT / f"Pulumi.{_stack_of(resources)}.yaml"
        where = f"stack file {stack_file}"
        config = stack_file_config(stack_file)[0] if args.stack_config or stack_file.is_file() else {}
        pack_config: Path = args.policy_pack_config or pack_config_for(config)
        where = f"policy pack config {pack_config}"
        loaded = load_pack_config(pack_config)
        violations = run_policies(resources, loaded, config)
    except (PolicyConfigError, StackFileError, OSError) as error:
        print(f"{where}: {error}", file=sys.stderr)
        return 2
    for name in ignored_policy_names(loaded):
        print(f"warning: {pack_config} configures {name!r}, which is no policy of the pack: ignored, as the engine ignores it", file=sys.stderr)
    if args.format == "json":
        print(json.dumps({"violations": [_violation_json(v) for v in violations]}, indent=2, sort_keys=True))
    else:
        print(f"policy pack with {pack_config} over {len(resources)} resources of {args.plan}:")
        print(report(violations))
    return 1 if any(v.level is EnforcementLevel.MANDATORY for v in violations) else 0


def _violation_json(violation: Violation) -> dict[str, str]:
    return {"policy": violation.policy, "level": violation.level.value, "severity": violation.severity, "message": violation.message,
            "urn": violation.urn, "remediation": violation.remediation}
