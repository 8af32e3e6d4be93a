"""The policy pack, rule by rule: each policy accepts its compliant resources and names every
offender among its violating ones; the pack's declarations and config files; the harness's
faithfulness to the engine (wire types, unknowns, config resolution).
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, PolicyConfigSchema

from policies.pack import POLICIES
from review.policy import UNKNOWN_SHOWN, PolicyConfigError, configure, engine_props, run_policies
from tests.unit.policy_cases import STACK_CONFIG, TAGS, Case, res, violations_of

CASE_MODULES = sorted(path.stem for path in Path(__file__).parent.glob("policy_cases*.py"))
"""policy_cases.py and each concern's own policy_cases_<concern>.py, whose lists named *CASES are gathered."""
ALL_CASES: list[Case] = [case for module in CASE_MODULES for name, cases in vars(importlib.import_module(f"tests.unit.{module}")).items()
                         if name.endswith("CASES") for case in cases]

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
_SDKS = {"aws": "pulumi_aws", "gcp": "pulumi_gcp", "azure-native": "pulumi_azure_native", "docker": "pulumi_docker", "random": "pulumi_random",
         "tls": "pulumi_tls"}


def _sdk_class(token: str) -> Any:
    package, module_path, class_name = token.split(":")
    module_name = module_path.split("/")[0]
    module = importlib.import_module(_SDKS[package] if module_name == "index" else f"{_SDKS[package]}.{module_name}")
    return getattr(module, class_name, None)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: f"{c.policy}-{c.label}")
def test_a_policy_accepts_compliant_resources(case: Case) -> None:
    assert violations_of(case.policy, case.good, case.properties) == []


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: f"{c.policy}-{c.label}")
def test_a_policy_names_every_offender(case: Case) -> None:
    found = violations_of(case.policy, case.bad, case.properties)
    assert found, "no violation reported"
    assert {v.policy for v in found} == {case.policy}
    assert all(v.level is EnforcementLevel.MANDATORY and v.remediation for v in found)
    assert len({v.urn for v in found}) == case.offenders, [v.message for v in found]


def test_every_policy_has_cases_on_both_sides_and_full_metadata() -> None:
    assert {p.name for p in POLICIES} == {c.policy for c in ALL_CASES}
    assert len({p.name for p in POLICIES}) == len(POLICIES)
    for policy in POLICIES:
        assert policy.description and policy.remediation_steps and policy.severity is not None, policy.name
        assert policy.enforcement_level is None, f"{policy.name}: the level belongs to the pack config"


def test_every_type_token_and_top_level_input_exists_in_the_pinned_sdks() -> None:
    tokens = {t for path in PACK_DIR.glob("*.py") for t in re.findall(r'"((?:aws|gcp|azure-native|docker):[\w/]+:[A-Z]\w*)"', path.read_text())}
    tokens |= {r.type for c in ALL_CASES for r in [*c.good, *c.bad]}
    assert len(tokens) >= 35, "the token scan found too few tokens to be reading the pack"
    for token in sorted(tokens):
        cls = _sdk_class(token)
        assert cls is not None and cls.pulumi_type == token, token
    for resource in (r for c in ALL_CASES for r in [*c.good, *c.bad]):
        parameters = inspect.signature(_sdk_class(resource.type)._internal_init).parameters
        for key in resource.inputs:
            assert re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", key).lower() in parameters, f"{resource.type} has no input {key}"


def test_config_files_are_mandatory_in_prod_and_staging_and_advisory_in_dev() -> None:
    levels = {env: {c.policy.name: c.level for c in configure(json.loads((PACK_DIR / "config" / f"{env}.json").read_text()))}
              for env in ("prod", "staging", "dev")}
    assert set(levels["prod"].values()) == {EnforcementLevel.MANDATORY}
    assert levels["staging"].pop("stateful-resources-protected") is EnforcementLevel.DISABLED
    assert set(levels["staging"].values()) == {EnforcementLevel.MANDATORY}
    assert levels["dev"].pop("stateful-resources-protected") is EnforcementLevel.DISABLED
    assert set(levels["dev"].values()) == {EnforcementLevel.ADVISORY}


def test_config_resolution_follows_the_engine() -> None:
    resolved = {c.policy.name: c for c in configure({"all": {"enforcementLevel": "advisory"}, "keys-rotated": "remediate",
                                                     "no-ingress-from-anywhere": {"allowedPorts": [443]}})}
    assert resolved["keys-rotated"].level is EnforcementLevel.MANDATORY
    assert resolved["keys-rotated"].properties == {"maxRotationDays": 90}
    assert resolved["no-ingress-from-anywhere"].level is EnforcementLevel.ADVISORY
    assert resolved["no-ingress-from-anywhere"].properties == {"allowedPorts": [443]}
    assert {c.level for c in configure({})} == {EnforcementLevel.MANDATORY}
    assert configure({"no-such-policy": "disabled"}) == configure({})  # the engine ignores a name the pack lacks
    with pytest.raises(PolicyConfigError, match="'blocking' is not a valid enforcement level"):
        configure({"all": "blocking"})


def test_schema_defaults_are_valid_config() -> None:
    for policy in POLICIES:
        schema = policy.config_schema or PolicyConfigSchema({})
        assert all("default" in spec for spec in schema.properties.values()), policy.name


def test_properties_arrive_as_on_the_wire_and_unknowns_are_guarded() -> None:
    props = engine_props({"size": 10, "tags": {"Owner": UNKNOWN_SHOWN}})
    assert props["size"] == 10.0 and isinstance(props["size"], float)
    key = res("aws:kms/key:Key", "k", {"enableKeyRotation": True, "tags": TAGS}, protect=True)
    unknown_tags = res("aws:ebs/volume:Volume", "v", {"encrypted": True, "kmsKeyId": "k", "tags": UNKNOWN_SHOWN}, protect=True, deps={"kmsKeyId": [key]})
    found = run_policies([key, unknown_tags], {"all": "mandatory"}, STACK_CONFIG)
    assert [(v.policy, v.level) for v in found] == [("required-tags", EnforcementLevel.ADVISORY)]
    assert "can't run policy 'required-tags'" in found[0].message and "during preview" in found[0].message


def test_a_disabled_policy_reports_nothing_and_an_advisory_one_does_not_block() -> None:
    key = res("aws:kms/key:Key", "k", {"enableKeyRotation": True, "tags": TAGS}, protect=True)
    untagged = [key, res("aws:ebs/volume:Volume", "v", {"encrypted": True, "kmsKeyId": "k"}, protect=True, deps={"kmsKeyId": [key]})]
    assert run_policies(untagged, {"required-tags": "disabled"}, STACK_CONFIG) == []
    assert [v.level for v in run_policies(untagged, {"required-tags": "advisory"}, STACK_CONFIG)] == [EnforcementLevel.ADVISORY]


def test_no_pack_module_shadows_the_standard_library() -> None:
    """The engine's host puts the pack's directory first on the path: a `secrets.py` there would
    replace the standard library's for every import, pydantic's included.
    """
    modules = {path.stem for path in PACK_DIR.glob("*.py")} - {"__init__", "__main__"}
    assert modules and not modules & sys.stdlib_module_names
