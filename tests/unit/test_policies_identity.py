"""The identity rules in both shapes of plan: as `pulumi up` hands the pack resolved values, and as a
first `pulumi preview` does, where every id and ARN computed from a resource still to be created is
unknown. A rule that decides by identity follows the engine's property dependencies, so it judges
each case the same way in both shapes; and the shipped stacks stay clean in both.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, cast

import pytest
from pulumi_policy import EnforcementLevel

from policies import encryption, hardening, iam, lifecycle, segmentation, tagging
from policies.identity import covers_public_space
from review.plan import build_plan, stack_config
from review.policy import UNKNOWN_SHOWN, PlannedResource, load_pack_config, pack_config_for, plan_resources, run_policies
from tests.unit.policy_cases import GROUPS, MANAGER, STACK_CONFIG, WORKER, Case, ingress
from tests.unit.policy_cases_coverage import COVERAGE_CASES
from tests.unit.policy_cases_identity import IDENTITY_CASES
from tests.unit.test_policies import ALL_CASES

_OUTPUT = re.compile(r"^(arn:|sg-|i-|eni-|vpc-|subnet-|projects/|/subscriptions/|https://|registry\.invalid/)")
"""Values only a created resource can give (ids, ARNs, key names, digests): unknown at a first preview."""


def _unknown_outputs(value: Any) -> Any:
    if isinstance(value, str):
        return UNKNOWN_SHOWN if _OUTPUT.match(value) else value
    if isinstance(value, dict):
        return {k: _unknown_outputs(v) for k, v in cast(dict[str, Any], value).items()}
    if isinstance(value, list):
        return [_unknown_outputs(v) for v in cast(list[Any], value)]
    return value


def previewed(resource: PlannedResource) -> PlannedResource:
    """The resource as a first preview shows it: in each property computed from another resource,
    the values that resource's creation gives are unknown; literals stay known.
    """
    computed = set(resource.property_dependencies or {})
    inputs = {key: _unknown_outputs(value) if key in computed else value for key, value in resource.inputs.items()}
    return replace(resource, inputs=inputs)


def _mandatory(case: Case, resources: list[PlannedResource]) -> set[str]:
    config = {"all": "disabled", case.policy: {"enforcementLevel": "mandatory", **(case.properties or {})}}
    return {v.urn for v in run_policies(resources, config, STACK_CONFIG) if v.level is EnforcementLevel.MANDATORY}


_SHAPES = {"up": lambda r: r, "preview": previewed}
_MINE = {p.name for module in (encryption, hardening, iam, lifecycle, segmentation, tagging) for p in module.POLICIES}
"""The policies of the identity and coverage work (the secret-leak policies have their own preview tests)."""
_SHAPED_CASES = [c for c in ALL_CASES if c in IDENTITY_CASES or c in COVERAGE_CASES or c.policy in _MINE]


@pytest.mark.parametrize("shape", _SHAPES)
@pytest.mark.parametrize("case", _SHAPED_CASES, ids=lambda c: f"{c.policy}-{c.label}")
def test_identity_rules_judge_alike_in_up_and_preview(case: Case, shape: str) -> None:
    shaped = _SHAPES[shape]
    assert _mandatory(case, [shaped(r) for r in case.good]) == set()
    expected = case.offenders if shape == "up" or case.preview_offenders is None else case.preview_offenders
    assert len(_mandatory(case, [shaped(r) for r in case.bad])) == expected


def test_the_preview_shape_does_hide_outputs() -> None:
    """The preview cases are not the up cases again: computed ids and ARNs are unknown in them."""
    hidden = [r for c in _SHAPED_CASES for r in c.bad if previewed(r).inputs != r.inputs]
    assert len(hidden) >= 10


@pytest.mark.parametrize(("ranges", "open_"), [
    (["0.0.0.0/0"], True), (["0.0.0.0/1", "128.0.0.0/1"], True), (["0.0.0.0/1"], False), (["::/0"], True), (["::/1", "8000::/1"], True),
    (["2000::/3"], True), (["2000::/4"], False), (["10.0.0.0/8", "172.16.0.0/12"], False),
    ([str(n) for n in __import__("ipaddress").ip_network("0.0.0.0/0").address_exclude(__import__("ipaddress").ip_network("10.0.0.0/8"))], True),
    (["VirtualNetwork"], False),
])
def test_open_means_the_union_covers_public_space(ranges: list[str], open_: bool) -> None:
    assert covers_public_space(ranges) is open_


@pytest.mark.parametrize("stack", ["prod", "staging", "dev", "local"])
def test_every_shipped_stack_is_clean_in_its_first_preview(stack: str) -> None:
    config, _ = stack_config(stack)
    found = run_policies(plan_resources(build_plan(stack, preview=True)), load_pack_config(pack_config_for(config)), config)
    judged = [v for v in found if v.policy in _MINE]
    assert [(v.policy, v.urn, v.message) for v in judged if v.level is EnforcementLevel.MANDATORY] == []
    # what a first preview cannot show is said, never passed: the node roles' policies name the stack key's ARN
    unjudged = [v for v in judged if v.level is EnforcementLevel.ADVISORY]
    assert all(v.policy == "iam-least-privilege" and "during preview" in v.message for v in unjudged), [v.message for v in unjudged]


@pytest.mark.parametrize("policy", ["no-ingress-from-anywhere", "ports-only-from-firewall-matrix", "ssh-only-from-admins-to-bastion"])
def test_a_rule_unknown_at_preview_hides_no_other_rule(policy: str) -> None:
    """A rule whose range is computed (unknown at a first preview) is set aside and said to be; a
    rule open to the world beside it is still refused."""
    computed = ingress("computed", MANAGER, 22, cidr=UNKNOWN_SHOWN)
    found = run_policies([*GROUPS, computed, ingress("open", WORKER, 22, cidr="0.0.0.0/0")], {"all": "disabled", policy: "mandatory"}, STACK_CONFIG)
    assert {v.urn.split("::")[-1] for v in found if v.level is EnforcementLevel.MANDATORY} == {"open"}
    notes = [v.message for v in found if v.level is EnforcementLevel.ADVISORY]
    assert len(notes) == 1 and "during preview" in notes[0] and "::computed:" in notes[0]
