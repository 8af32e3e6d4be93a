"""The pack's config, read as the engine reads `--policy-pack-config`: every entry a level or an
object, properties validated against the policy's JSON schema (the same verdicts as a JSON Schema
validator), every error named by policy and field; a name the pack does not have is ignored, as the
engine ignores it; the commands exit 2 with the error and no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy

from policies.pack import POLICIES
from review.__main__ import main
from review.policy import SCHEMA_KEYWORDS, PolicyConfigError, configure, ignored_policy_names, load_pack_config, schema_errors


def _policy(schema: dict[str, Any], required: list[str] | None = None) -> ResourceValidationPolicy:
    return ResourceValidationPolicy("configured", "A policy with a config.", lambda _args, _report: None,
                                    config_schema=PolicyConfigSchema(schema, required))


WIDE = _policy({
    "ports": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}, "uniqueItems": True, "default": []},
    "mode": {"type": "string", "enum": ["strict", "lenient"], "default": "strict"},
    "days": {"type": "integer", "exclusiveMinimum": 0},
    "label": {"type": "string", "minLength": 2, "maxLength": 8, "pattern": "^[a-z-]+$"},
    "ratio": {"type": ["number", "null"], "multipleOf": 0.5},
    "options": {"type": "object", "properties": {"on": {"type": "boolean"}}, "required": ["on"], "additionalProperties": False},
}, required=["days"])

GOOD = {"days": 1}
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "an item of the wrong type": ({"days": 1, "ports": [22, "x"]}, 'ports[1]: "x" is not of type integer'),
    "a value outside its enum": ({"days": 1, "mode": "loose"}, 'mode: "loose" is not one of ["strict", "lenient"]'),
    "a required property missing": ({}, "days: is required"),
    "a number below its exclusive minimum": ({"days": 0}, "days: 0 breaks its exclusiveMinimum 0"),
    "a whole number of the wrong type": ({"days": 1.5}, "days: 1.5 is not of type integer"),
    "an item above its maximum": ({"days": 1, "ports": [70000]}, "ports[0]: 70000 breaks its maximum 65535"),
    "repeated items": ({"days": 1, "ports": [1, 1]}, "ports: has repeated items"),
    "a string too long": ({"days": 1, "label": "abcdefghij"}, 'label: "abcdefghij" has 10 characters'),
    "a string off its pattern": ({"days": 1, "label": "AB"}, 'label: "AB" does not match ^[a-z-]+$'),
    "not a multiple": ({"days": 1, "ratio": 0.3}, "ratio: 0.3 is not a multiple of 0.5"),
    "a nested required key missing": ({"days": 1, "options": {}}, "options.on: is required"),
    "a nested key the schema forbids": ({"days": 1, "options": {"on": True, "off": False}}, "options.off: is not a property of this schema"),
    "a boolean where a number goes": ({"days": True}, "days: true is not of type integer"),
}


def _errors(properties: dict[str, Any]) -> list[str]:
    return list(schema_errors({"type": "object", "properties": WIDE.config_schema.properties, "required": ["days"]}, properties))  # pyright: ignore[reportOptionalMemberAccess]


@pytest.mark.parametrize("case", BAD)
def test_a_bad_property_is_named_by_policy_and_field(case: str) -> None:
    properties, expected = BAD[case]
    with pytest.raises(PolicyConfigError) as raised:
        configure({"configured": {"enforcementLevel": "mandatory", **properties}}, [WIDE])
    assert f"policy 'configured', {expected}" in str(raised.value)


@pytest.mark.parametrize("case", [*BAD, "good"])
def test_the_verdicts_are_a_json_schema_validators(case: str) -> None:
    """Each case judged as gojsonschema (the engine's validator) judges it, by the reference
    validator of the same draft: invalid exactly when the harness finds errors."""
    properties = BAD[case][0] if case in BAD else GOOD
    schema = {"type": "object", "properties": WIDE.config_schema.properties, "required": ["days"]}  # pyright: ignore[reportOptionalMemberAccess]
    assert bool(_errors(properties)) == (not jsonschema.Draft7Validator(schema).is_valid(properties))


def test_a_good_config_fills_defaults_and_keeps_what_it_gives() -> None:
    [configured] = configure({"all": "advisory", "configured": {"days": 3}}, [WIDE])
    assert configured.level is EnforcementLevel.ADVISORY
    assert configured.properties == {"ports": [], "mode": "strict", "days": 3}


def test_every_error_of_the_file_is_reported_at_once() -> None:
    with pytest.raises(PolicyConfigError) as raised:
        configure({"configured": {"ports": ["a"], "mode": "x"}}, [WIDE])
    assert str(raised.value).count("policy 'configured'") == 3


@pytest.mark.parametrize(("entry", "expected"), [
    ("blocking", "configured: 'blocking' is not a valid enforcement level"),
    (3, "configured: 3 is not a valid value; must be a level or an object"),
    ({"enforcementLevel": 1}, "configured: enforcementLevel 1 is not a valid enforcement level; must be a string"),
])
def test_an_entry_neither_a_level_nor_an_object_is_refused(entry: object, expected: str) -> None:
    with pytest.raises(PolicyConfigError, match=expected):
        configure({"configured": entry}, [WIDE])


def test_a_name_the_pack_does_not_have_is_ignored_as_the_engine_ignores_it() -> None:
    """The engine's ReconcilePolicyPackConfig keeps the entry and validates the pack's own policies
    only; the analyzer never reads an entry no policy of it has."""
    config = {"all": "mandatory", "no-such-policy": {"enforcementLevel": "disabled", "anything": 1}}
    assert [c.level for c in configure(config, POLICIES)] == [EnforcementLevel.MANDATORY] * len(POLICIES)
    assert ignored_policy_names(config) == ["no-such-policy"]


def test_every_schema_of_the_pack_uses_only_keywords_the_harness_judges() -> None:
    for policy in POLICIES:
        for spec in (policy.config_schema.properties.values() if policy.config_schema else ()):
            stack = [spec]
            while stack:
                schema = stack.pop()
                assert set(schema) <= SCHEMA_KEYWORDS, (policy.name, set(schema) - SCHEMA_KEYWORDS)
                stack.extend(s for key in ("items", "additionalProperties") if isinstance(s := schema.get(key), dict))
                stack.extend(schema.get("properties", {}).values())


def test_a_schema_keyword_the_harness_cannot_judge_is_refused() -> None:
    with pytest.raises(PolicyConfigError, match="cannot judge the schema keyword"):
        configure({}, [_policy({"port": {"type": "integer", "oneOf": [{"minimum": 1}], "default": 1}})])


@pytest.mark.parametrize(("text", "expected"), [("", {}), ("  \n", {}), ('{"all": "advisory"}', {"all": "advisory"})])
def test_an_empty_file_configures_nothing(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    path = tmp_path / "pack.json"
    path.write_text(text)
    assert load_pack_config(path) == expected


@pytest.mark.parametrize(("text", "expected"), [("{", "not JSON"), ("[1]", "must be a JSON object of entries by policy name, not list")])
def test_a_file_that_is_not_a_json_object_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "pack.json"
    path.write_text(text)
    with pytest.raises(PolicyConfigError, match=expected):
        load_pack_config(path)


@pytest.mark.parametrize("command", ["plan", "policy"])
def test_the_commands_exit_2_naming_the_file_policy_and_field(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = tmp_path / "pack.json"
    pack.write_text(json.dumps({"all": "mandatory", "no-ingress-from-anywhere": {"allowedPorts": ["x"]}}))
    plan = tmp_path / "plan.json"
    if command == "policy":
        plan.write_text(json.dumps({"steps": []}))
        argv = ["policy", str(plan), "--policy-pack-config", str(pack)]
    else:
        argv = ["plan", "--stack", "dev", "--out", str(plan), "--policy-pack-config", str(pack)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"policy pack config {pack}: policy 'no-ingress-from-anywhere', allowedPorts[0]: \"x\" is not of type integer" in error
    assert "Traceback" not in error
