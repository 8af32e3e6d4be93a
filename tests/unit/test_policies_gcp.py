"""The policy pack on the GCP prod plan: clean as the program makes it, in both shapes, and the GCP
mutation catalogue (tests/unit/policy_mutations.py `GCP_MUTATIONS`: careless changes and evasions of
the firewall matrix, machine identity, keys, IAM and labels) caught at 95 % or more in each shape.
"""

from __future__ import annotations

import pytest

from dpc.settings import REQUIRED_TAG_KEYS
from policies.tagging import gcp_label_key
from providers.gcp.labels import label_key
from tests.unit.policy_mutations import GCP_MUTATIONS, GCP_STACK, SHAPES, Outcome, blocking, catalogue_problems, judge, table


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return judge(GCP_MUTATIONS, SHAPES, GCP_STACK)


@pytest.mark.parametrize(("stack", "shape"), [(GCP_STACK, "up"), (GCP_STACK, "preview"), ("gcp-dev", "up")])
def test_the_shipped_gcp_plans_are_clean(stack: str, shape: str) -> None:
    """So that a caught mutation is the mutation's doing, and the pack passes what the program makes
    (gcp-dev under its own, advisory config: nothing at all reported there at `up`)."""
    assert blocking(stack, shape, advisory_too=stack == "gcp-dev") == []


def test_the_pack_catches_the_gcp_mutations(outcomes: list[Outcome], capsys: pytest.CaptureFixture[str]) -> None:
    """At 95 % or more in each shape, over a catalogue of 40 or more varied mutations named once."""
    report = table(outcomes)
    with capsys.disabled():
        print(f"\npolicy mutation suite ({len(GCP_MUTATIONS)} mutations of the {GCP_STACK} plan):\n{report}")
    assert catalogue_problems(outcomes, GCP_MUTATIONS) == [], report


def test_the_pack_converts_the_required_tags_as_the_gcp_builders_do() -> None:
    """The pack writes the conversion out rather than importing it; the two must agree on every key it requires."""
    assert [gcp_label_key(key) for key in REQUIRED_TAG_KEYS] == [label_key(key) for key in REQUIRED_TAG_KEYS]
