"""Every property path the policy pack reads exists in the pinned SDK of its resource type, nested
paths included (issue 12: the GCP rules were first written without the SDK, and a misspelt path reads
as "missing", so a rule that should refuse a resource passes it instead).

How the paths are collected: the pack is run over every policy case (tests/unit/policy_cases*.py,
compliant and violating resources of every cloud) and over the shipped plans of each cloud (the
real program under mocks), with each resource's properties wrapped in a recorder that logs every
key looked up, as a path from the resource's root (`attachedDisks[].kmsKeySelfLink`). Recording
what the policies actually read, wherever in their code they read it, cannot drift from the code as
a list written next to it would; the static check below keeps it from missing a read no case reaches.

How a path is checked: the resource type token names the SDK class (`gcp:compute/instance:Instance`
→ pulumi_gcp.compute.Instance); its `*Args` input class and its output properties give the camelCase
wire names (`@pulumi.getter(name=...)`) and the type of each, and a path walks on through the nested
`*Args` (or output) types, through list elements, and stops at a map (labels, metadata: any key).
"""

from __future__ import annotations

import ast
import importlib
import json
import typing
from collections import abc
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pulumi import _types as pulumi_types  # pyright: ignore[reportPrivateUsage]  # the SDK's own reader of getter names and types
from pulumi_policy.proxy import UnknownValueError

from review import policy as harness
from review.plan import stack_config
from review.policy import PlannedResource, load_pack_config, pack_config_for, plan_resources, run_policies
from tests.unit.conftest import planned
from tests.unit.policy_cases import STACK_CONFIG
from tests.unit.policy_shapes import after_refresh
from tests.unit.test_policies import ALL_CASES

SDKS = {"aws": "pulumi_aws", "gcp": "pulumi_gcp", "azure-native": "pulumi_azure_native", "docker": "pulumi_docker", "random": "pulumi_random",
        "tls": "pulumi_tls", "command": "pulumi_command"}
CHECKED_PACKAGES = tuple(SDKS)
"""Every provider whose resources the pack reads: the clouds', and Docker's, random's, TLS's and
command's (read by the Swarm and secret rules)."""
PLANNED_STACKS = ("prod", "gcp-prod", "azure-prod")
"""The prod plan of each cloud, as at `up`."""
REFRESHED_STACKS = ("prod",)
"""The plans also read as the state holds them after `pulumi refresh`, where AWS security groups list
their separately managed rules (read in their own shape, `policies.common.inline_rules`)."""
PACK_DIR = Path(__file__).resolve().parents[2] / "policies"

ANY_KEY = "{}"
"""A path step that stands for every key of a map the policy enumerated (its values, not one key)."""


class _Log:
    """The paths read, by type token."""

    def __init__(self) -> None:
        self.paths: dict[str, set[str]] = {}

    def add(self, token: str, path: str) -> None:
        self.paths.setdefault(token, set()).add(path)


def _child(value: Any, token: str, path: str, log: _Log) -> Any:
    if isinstance(value, Mapping):
        return _RecordedMap(typing.cast(Mapping[str, Any], value), token, path, log)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return _RecordedList(typing.cast(Sequence[Any], value), token, path, log)
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _RecordedMap(Mapping[str, Any]):
    """A resource's properties (or a nested object of them) that log each key looked up."""

    def __init__(self, target: Mapping[str, Any], token: str, path: str, log: _Log) -> None:
        self._target, self._token, self._path, self._log = target, token, path, log

    def __getitem__(self, key: str) -> Any:
        self._log.add(self._token, _join(self._path, key))
        return _child(self._target[key], self._token, _join(self._path, key), self._log)

    def __contains__(self, key: object) -> bool:
        self._log.add(self._token, _join(self._path, str(key)))
        return key in self._target

    def __iter__(self) -> Iterator[str]:
        return iter(self._target)

    def __len__(self) -> int:
        return len(self._target)

    def values(self) -> Any:  # an enumeration reads every key, none by name
        return [_child(self._target[key], self._token, _join(self._path, ANY_KEY), self._log) for key in self._target]

    def items(self) -> Any:
        return [(key, _child(self._target[key], self._token, _join(self._path, ANY_KEY), self._log)) for key in self._target]


class _RecordedList(Sequence[Any]):
    def __init__(self, target: Sequence[Any], token: str, path: str, log: _Log) -> None:
        self._target, self._token, self._path, self._log = target, token, path, log

    @typing.overload
    def __getitem__(self, index: int) -> Any: ...
    @typing.overload
    def __getitem__(self, index: slice) -> Sequence[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self._target))[index]]
        return _child(self._target[index], self._token, f"{self._path}[]", self._log)

    def __len__(self) -> int:
        return len(self._target)


def _record(resources: Sequence[PlannedResource], log: _Log, pack_config: Mapping[str, Any], stack: Mapping[str, str]) -> None:
    """Runs the pack over the resources with every resource's properties (inputs and outputs) recorded."""
    tokens = {id(r.inputs): r.type for r in resources} | {id(r.outputs): r.type for r in resources if r.outputs is not None}
    original = harness.engine_props

    def recorded(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        return _RecordedMap(original(inputs), tokens[id(inputs)], "", log)

    harness.engine_props = recorded
    try:
        run_policies(resources, pack_config, stack)
    finally:
        harness.engine_props = original


@cache
def recorded_paths() -> dict[str, frozenset[str]]:
    """Every path the pack reads, by type token, over the cases and the shipped plans."""
    log = _Log()
    for case in ALL_CASES:
        for resources in (case.good, case.bad):
            _record(resources, log, {"all": "mandatory", **({case.policy: {"enforcementLevel": "mandatory", **case.properties}}
                                                             if case.properties else {})}, STACK_CONFIG)
    for stack in PLANNED_STACKS:
        plan, revealed = planned(stack)
        steps = [{**step, "newState": {**step["newState"], "inputs": revealed.get(step["urn"], step["newState"]["inputs"])}} for step in plan["steps"]]
        config, _ = stack_config(stack)
        up = {**plan, "steps": steps}
        for shape in (up, after_refresh(up)) if stack in REFRESHED_STACKS else (up,):
            _record(plan_resources(shape), log, load_pack_config(pack_config_for(config)), config)
    return {token: frozenset(paths) for token, paths in log.paths.items()}


# --- the SDK's schema ------------------------------------------------------------------------------

Schema = Mapping[str, Any]


@cache
def sdk_schemas(token: str) -> tuple[Schema, Schema] | None:
    """The input (`*Args`) and output properties of a type token's SDK class, by wire name; None
    when the token names no class of the pinned SDK. pulumi-azure-native names a resource's
    arguments `*InitArgs` where `*Args` is the nested type of the same name (a SecurityRule's
    arguments beside the rule inside a network security group)."""
    package, module_path, class_name = token.split(":")
    module_name = module_path.split("/")[0]
    sdk = SDKS[package]
    module = importlib.import_module(sdk if module_name == "index" else f"{sdk}.{module_name}")
    resource = getattr(module, class_name, None)
    if resource is None or getattr(resource, "pulumi_type", None) != token:
        return None
    args = getattr(module, f"{class_name}InitArgs", None) or getattr(module, f"{class_name}Args", None)
    inputs = pulumi_types.input_type_types(args) if args is not None and pulumi_types.is_input_type(args) else {}
    return inputs, pulumi_types.resource_types(resource)


def _properties(typ: Any) -> Schema | None:
    """The properties of a nested object type by wire name, or None for a scalar."""
    if isinstance(typ, type) and pulumi_types.is_input_type(typ):
        return pulumi_types.input_type_types(typ)
    if isinstance(typ, type) and pulumi_types.is_output_type(typ):
        return pulumi_types.output_type_types(typ)
    return None


def _is_map(typ: Any) -> bool:
    return typing.get_origin(typ) in (abc.Mapping, dict, Mapping) or typ in (dict, Any, object)


def _element(typ: Any) -> Any:
    """A list type's element type (unwrapped), or None when `typ` is not a list."""
    if typing.get_origin(typ) in (abc.Sequence, list, Sequence):
        return pulumi_types.unwrap_type(typing.get_args(typ)[0])
    return None


def path_problem(schema: Schema, path: str) -> str | None:
    """Why `path` does not exist in `schema` (None when it does): the first step the SDK lacks."""
    current: Any = schema
    walked = ""
    for step in path.replace("[]", ".[]").split("."):
        if step == "[]":
            element = _element(current)
            if element is None:
                return f"{walked} is not a list"
            current = element
        elif _is_map(current):
            current = Any
        else:
            properties = current if isinstance(current, Mapping) else _properties(current)
            if properties is None:
                return f"{walked or 'the resource'} is a {getattr(current, '__name__', current)}, which has no property {step}"
            if step not in properties:
                return f"{walked or 'the resource'} has no property {step} (it has {', '.join(sorted(properties))})"
            current = pulumi_types.unwrap_type(properties[step])
        walked = f"{walked}{step}" if step == "[]" or not walked else f"{walked}.{step}"
        if _is_map(current):
            current = Any
    return None


RESOURCE_FIELDS = ("id", "urn")
"""What every resource has besides its SDK properties (the engine's state lists the id with the outputs)."""


def sdk_problem(token: str, path: str) -> str | None:
    """Why the resource type has no such property path as input or output (None when it has)."""
    if path in RESOURCE_FIELDS:
        return None
    schemas = sdk_schemas(token)
    if schemas is None:
        return f"{token} names no resource of {SDKS[token.split(':', maxsplit=1)[0]]}"
    problems = [path_problem(schema, path) for schema in schemas]
    return None if None in problems else problems[0]


def _checked(token: str) -> bool:
    return token.split(":", maxsplit=1)[0] in CHECKED_PACKAGES


def test_the_recorder_sees_nested_reads_and_the_checker_refuses_a_wrong_path() -> None:
    """The two halves can fail: a misspelt nested path is refused, a real one passed, and the
    recorder reports the path a policy walked, through lists, from the resource's root."""
    assert sdk_problem("gcp:compute/instance:Instance", "attachedDisks[].kmsKeySelfLink") is None
    assert sdk_problem("gcp:compute/instance:Instance", "metadata.enable-oslogin") is None
    assert sdk_problem("gcp:compute/firewall:Firewall", "allows[].ports") is None
    assert "no property kmsKeyName" in str(sdk_problem("gcp:compute/instance:Instance", "bootDisk.kmsKeyName"))
    assert "no property denys" in str(sdk_problem("gcp:compute/firewall:Firewall", "denys"))
    assert "not a list" in str(sdk_problem("gcp:compute/instance:Instance", "bootDisk[].kmsKeySelfLink"))
    assert "names no resource" in str(sdk_problem("gcp:compute/firewall:Firewalls", "direction"))
    log = _Log()
    props = _RecordedMap({"allows": [{"protocol": "tcp"}], "labels": {"a": "b"}}, "t", "", log)
    allows = typing.cast(Sequence[Mapping[str, Any]], props["allows"])
    assert [a.get("protocol") for a in allows] == ["tcp"] and "ports" not in allows[0]
    assert list(typing.cast(Mapping[str, Any], props["labels"]).values()) == ["b"]
    assert log.paths == {"t": {"allows", "allows[].protocol", "allows[].ports", "labels"}}


def test_every_property_path_the_pack_reads_exists_in_the_sdk() -> None:
    recorded = recorded_paths()
    gcp = {token for token in recorded if token.startswith("gcp:")}
    assert len(gcp) >= 15, f"too few GCP types read to be the GCP plan and the cases: {sorted(gcp)}"
    wrong = [f"{token} {path}: {problem}" for token, paths in sorted(recorded.items()) if _checked(token)
             for path in sorted(paths) if (problem := sdk_problem(token, path))]
    assert wrong == [], "\n".join(wrong)


def _literal_steps() -> Iterator[tuple[str, int, str]]:
    """(module, line, key) of every string a policy passes as a path step to get/peek, or as the
    key of a `.get` on a property map: the reads written in the pack's code."""
    for path in sorted(PACK_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else ""
            if name in ("get", "peek"):
                steps = node.args[1:]
            elif isinstance(node.func, ast.Attribute) and node.func.attr == "get" and isinstance(node.func.value, ast.Call):
                steps = node.args[:1]  # mapping(get(...)).get("key")
            else:
                continue
            for step in steps:
                if isinstance(step, ast.Constant) and isinstance(step.value, str):
                    yield path.stem, node.lineno, step.value


NOT_PROPERTIES = {
    "Statement", "Effect", "Sid", "Action", "NotAction", "Resource", "NotResource", "Principal", "NotPrincipal", "Condition", "Bool",
    "aws:SecureTransport", "AWS", "Federated", "CanonicalUser",
    "chpasswd", "list", "users", "password", "write_files", "content", "encoding", "path",
    "adminCidrs", "clientCidrs", "vpcCidr",
}
"""Keys the pack reads that are no resource's property: those of JSON policy documents (IAM, key and
bucket policies, parsed from a string property), of cloud-config documents (parsed from user data),
and of the stack's `dpc:access` and `dpc:network` settings."""


def test_every_key_the_pack_names_is_read_by_some_case_or_plan() -> None:
    """A read no case or plan reaches is checked against nothing: every key the code names must
    appear in some recorded path (add a case that reaches it)."""
    seen = {step for paths in recorded_paths().values() for path in paths for step in path.replace("[]", "").split(".")}
    unread = sorted({f"{module}:{line} {key}" for module, line, key in _literal_steps() if key not in seen and key not in NOT_PROPERTIES})
    assert unread == [], "\n".join(unread)


@pytest.mark.parametrize("token", ["gcp:compute/firewall:Firewall", "gcp:compute/instance:Instance", "gcp:storage/bucket:Bucket",
                                   "gcp:kms/cryptoKey:CryptoKey", "gcp:secretmanager/secret:Secret"])
def test_the_gcp_rules_read_the_gcp_types_the_plan_holds(token: str) -> None:
    """The GCP rules are exercised on GCP resources, not only declared for them."""
    assert recorded_paths().get(token), json.dumps(sorted(recorded_paths()))


@pytest.mark.parametrize("token", ["azure-native:network:NetworkSecurityGroup", "azure-native:network:SecurityRule", "azure-native:network:NetworkInterface",
                                   "azure-native:compute:VirtualMachine", "azure-native:keyvault:Key", "azure-native:keyvault:Vault",
                                   "azure-native:storage:StorageAccount", "azure-native:authorization:RoleAssignment"])
def test_the_azure_rules_read_the_azure_types_the_plan_holds(token: str) -> None:
    """The Azure rules are exercised on Azure resources, nested paths included, not only declared for them."""
    assert recorded_paths().get(token), json.dumps(sorted(recorded_paths()))


def test_an_unknown_value_still_propagates_through_the_recorder() -> None:
    """The recorder must not change what a policy sees: an unknown read still raises."""
    props = harness.engine_props({"a": {"b": harness.UNKNOWN_SHOWN}})
    recorded = _RecordedMap(props, "t", "", _Log())
    with pytest.raises(UnknownValueError):
        typing.cast(Mapping[str, Any], recorded["a"])["b"]
