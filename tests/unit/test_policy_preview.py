"""Policies over values unknown at preview: a whole-stack policy judges each resource on its own, so
one unknown leaves that resource unjudged (an advisory note naming it) and a real violation on
another resource is still reported, as mandatory.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pulumi_policy import EnforcementLevel, PolicyResource, Severity, StackValidationArgs
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policies.common import get, judge_each, of_type, stack_policy
from review.policy import run_policies
from tests.unit.policy_cases import STACK_CONFIG, res

VOLUME = "aws:ebs/volume:Volume"


def _unencrypted(volume: PolicyResource) -> Iterator[str]:
    if get(volume.props, "encrypted") is not True:
        yield "not encrypted"


def _each_volume(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    yield from judge_each(of_type(args, VOLUME), _unencrypted)


def _all_volumes_at_once(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    for volume in of_type(args, VOLUME):
        for message in _unencrypted(volume):
            yield message, volume.urn


EACH = stack_policy("volumes-encrypted", "Volumes are encrypted.", severity=Severity.HIGH, remediation="Encrypt it.", check=_each_volume, clouds=["aws"])
AT_ONCE = stack_policy("volumes-encrypted-at-once", "Volumes are encrypted.", severity=Severity.HIGH, remediation="Encrypt it.",
                       check=_all_volumes_at_once, clouds=["aws"])
# The unknown volume comes first: judged all at once, its unknown would end the policy before the
# plaintext volume after it.
UNKNOWN = res(VOLUME, "a-unknown", {"encrypted": "[unknown]"})
PLAINTEXT = res(VOLUME, "b-plaintext", {"encrypted": False})
ENCRYPTED = res(VOLUME, "c-encrypted", {"encrypted": True})


def _run(policy_name: str) -> list[tuple[str, EnforcementLevel, str]]:
    found = run_policies([UNKNOWN, PLAINTEXT, ENCRYPTED], {"all": "mandatory"}, STACK_CONFIG, policies=[EACH if policy_name == EACH.name else AT_ONCE])
    return [(v.urn, v.level, v.message) for v in found]


def test_one_unknown_leaves_that_resource_unjudged_and_the_others_judged() -> None:
    found = _run(EACH.name)
    assert [(urn, level) for urn, level, _ in found] == [(PLAINTEXT.urn, EnforcementLevel.MANDATORY), ("", EnforcementLevel.ADVISORY)]
    note = found[1][2]
    assert note.startswith("can't run policy 'volumes-encrypted' from policy pack 'dpc-policies@v0.0.1' during preview: 1 resource(s) not judged: ")
    assert f"{UNKNOWN.urn}: string value at .encrypted can't be known during preview" in note
    assert PLAINTEXT.urn not in note and ENCRYPTED.urn not in note


def test_a_check_that_reads_every_resource_at_once_is_ended_by_the_first_unknown() -> None:
    """What judge_each is for: the same rule without it misses the plaintext volume."""
    assert [(urn, level) for urn, level, _ in _run(AT_ONCE.name)] == [("", EnforcementLevel.ADVISORY)]


def test_judging_each_resource_outside_a_stack_policy_lets_the_unknown_through() -> None:
    """Outside a stack policy no one would report the unjudged resource: the unknown goes up."""
    props = unknown_checking_proxy({"encrypted": UNKNOWN_STRING_VALUE})
    resources = [PolicyResource(VOLUME, props, "urn:a", "a", None, None, None, [], {})]  # pyright: ignore[reportArgumentType]  # options are not read here
    with pytest.raises(UnknownValueError):
        list(judge_each(resources, _unencrypted))
