"""The mutation suite of issue 10: every realistic mutation of the prod plan in the catalogue
(tests/unit/policy_mutations.py, careless changes and deliberate evasions), each in the plan as the
engine hands it to the pack at `up` and as a first preview, must be caught by a mandatory violation
naming what it changed; the suite prints the catch rate per shape and class and fails under 95 % in
either shape.
"""

from __future__ import annotations

import copy

import pytest

from tests.unit.policy_mutations import CLASSES, MUTATIONS, SHAPES, Edit, Mutation, Outcome, base_plan, judge, rates, table, under_rate


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return judge()


def test_the_pack_catches_at_least_95_percent_of_the_mutations_in_each_shape(outcomes: list[Outcome], capsys: pytest.CaptureFixture[str]) -> None:
    report = table(outcomes)
    with capsys.disabled():
        print(f"\npolicy mutation suite ({len(MUTATIONS)} mutations of the prod plan):\n{report}")
    assert all(rates(outcomes)[(shape, "all")][1] == len(MUTATIONS) for shape in SHAPES)
    assert under_rate(outcomes) == [], report


def test_the_catalogue_is_large_varied_and_named_once() -> None:
    assert len(MUTATIONS) >= 60
    assert len({m.name for m in MUTATIONS}) == len(MUTATIONS)
    assert {m.klass for m in MUTATIONS} == set(CLASSES)
    assert sum(m.evasion for m in MUTATIONS) >= 30
    assert all(m.why for m in MUTATIONS)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_mutation_changes_the_plan_and_names_what_it_changed(shape: str) -> None:
    """A change inside a value unknown at preview leaves that plan as it was: the mutation says why."""
    base = base_plan(shape)
    for candidate in MUTATIONS:
        edit = Edit(base, shape)
        candidate.apply(edit)
        assert edit.targets, candidate.name
        changed = edit.plan()["steps"] != base["steps"]
        assert changed or (shape == "preview" and candidate.note), f"{candidate.name} changes nothing and says nothing of why"


@pytest.mark.parametrize("shape", SHAPES)
def test_mutations_leave_the_shared_base_plan_as_it_was(shape: str) -> None:
    """The base plan's steps are shared by every mutation (and the pack's view of them reused)."""
    base = base_plan(shape)
    before = copy.deepcopy(base)
    for candidate in MUTATIONS:
        candidate.apply(Edit(base, shape))
    assert base == before


def test_a_mutation_counts_only_when_a_new_mandatory_violation_names_it() -> None:
    """What "caught" means: a violation the unmutated plan has, or one on another resource, is not one."""

    def public_ip_named_elsewhere(edit: Edit) -> None:
        edit.set("prod-compute-worker-2", "associatePublicIpAddress", True)
        edit.targets[:] = [edit.urn("prod-network-vpc")]

    def nothing(edit: Edit) -> None:
        edit.target(edit.urn("prod-network-vpc"))

    def public_ip(edit: Edit) -> None:
        edit.set("prod-compute-worker-2", "associatePublicIpAddress", True)

    found = judge([Mutation(f.__name__, "careless", False, f) for f in (public_ip_named_elsewhere, nothing, public_ip)], shapes=("up",))
    assert [outcome.caught_by for outcome in found] == [(), (), ("no-public-ip-on-nodes",)]
