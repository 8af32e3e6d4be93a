"""The policy pack on the Azure plans: clean as the program makes them, in both shapes, and the Azure
mutation catalogue (tests/unit/policy_mutations_azure.py `AZURE_MUTATIONS`: careless changes and
evasions of the firewall matrix, machine identity, keys, the vault, role assignments and tags)
caught at 95 % or more in each shape.
"""

from __future__ import annotations

import pytest
from pulumi_policy import EnforcementLevel

from review.plan import stack_config
from review.policy import load_pack_config, pack_config_for, plan_resources, run_policies
from tests.unit.policy_mutations import SHAPES, Outcome, base_plan, judge, rates, table, under_rate
from tests.unit.policy_mutations_azure import AZURE_MUTATIONS, AZURE_STACK


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return judge(AZURE_MUTATIONS, SHAPES, AZURE_STACK)


@pytest.mark.parametrize(("stack", "shape"), [(AZURE_STACK, "up"), (AZURE_STACK, "preview"), ("azure-dev", "up")])
def test_the_shipped_azure_plans_are_clean(stack: str, shape: str) -> None:
    """So that a caught mutation is the mutation's doing, and the pack passes what the program makes
    (azure-dev under its own, advisory config: nothing at all reported there at `up`)."""
    config, _ = stack_config(stack)
    found = run_policies(plan_resources(base_plan(shape, stack)), load_pack_config(pack_config_for(config)), config)
    blocking = [v for v in found if v.level is EnforcementLevel.MANDATORY or stack == "azure-dev"]
    assert [f"{v.policy}: {v.message}" for v in blocking] == []


def test_the_pack_catches_the_azure_mutations(outcomes: list[Outcome], capsys: pytest.CaptureFixture[str]) -> None:
    report = table(outcomes)
    with capsys.disabled():
        print(f"\npolicy mutation suite ({len(AZURE_MUTATIONS)} mutations of the {AZURE_STACK} plan):\n{report}")
    assert len(AZURE_MUTATIONS) >= 40 and all(rates(outcomes)[(shape, "all")][1] == len(AZURE_MUTATIONS) for shape in SHAPES)
    assert under_rate(outcomes) == [], report


def test_the_azure_catalogue_is_varied_and_named_once() -> None:
    assert len({m.name for m in AZURE_MUTATIONS}) == len(AZURE_MUTATIONS)
    assert {m.klass for m in AZURE_MUTATIONS} >= {"careless", "identity", "open-to-internet", "coverage"}
    assert sum(m.evasion for m in AZURE_MUTATIONS) >= 12


def test_every_azure_policy_is_exercised_by_the_catalogue(outcomes: list[Outcome]) -> None:
    """Each policy with Azure rules catches some mutation of the Azure plan, so that none is declared for Azure and judged on nothing."""
    caught = {policy for outcome in outcomes if outcome.shape == "up" for policy in outcome.caught_by}
    azure = {"ports-only-from-firewall-matrix", "ssh-only-from-admins-to-bastion", "no-ingress-from-anywhere", "machines-identified-by-their-groups",
             "no-public-ip-on-nodes", "default-security-group-closed", "flow-logs-on", "load-balancers-internal", "disks-encrypted-with-customer-key",
             "encrypted-with-stack-key", "buckets-encrypted-with-customer-key", "buckets-tls-only", "buckets-public-access-blocked", "keys-rotated",
             "azure-key-vault-protected", "azure-no-password-authentication", "azure-trusted-launch", "registries-immutable-and-scanned", "iam-least-privilege",
             "required-tags", "stateful-resources-protected", "buckets-versioned-and-replicated", "log-groups-retained",
             "no-generated-secret-outside-secret-stores"}
    assert azure - caught == set()
