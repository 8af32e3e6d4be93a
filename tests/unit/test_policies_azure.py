"""The policy pack on the Azure plans: clean as the program makes them, in both shapes, and the Azure
mutation catalogue (tests/unit/policy_mutations_azure.py `AZURE_MUTATIONS`: careless changes and
evasions of the firewall matrix, machine identity, keys, the vault, role assignments and tags)
caught at 95 % or more in each shape.
"""

from __future__ import annotations

import pytest

from tests.unit.policy_mutations import SHAPES, Outcome, blocking, catalogue_problems, judge, table
from tests.unit.policy_mutations_azure import AZURE_MUTATIONS, AZURE_STACK


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return judge(AZURE_MUTATIONS, SHAPES, AZURE_STACK)


@pytest.mark.parametrize(("stack", "shape"), [(AZURE_STACK, "up"), (AZURE_STACK, "preview"), ("azure-dev", "up")])
def test_the_shipped_azure_plans_are_clean(stack: str, shape: str) -> None:
    """So that a caught mutation is the mutation's doing, and the pack passes what the program makes
    (azure-dev under its own, advisory config: nothing at all reported there at `up`)."""
    assert blocking(stack, shape, advisory_too=stack == "azure-dev") == []


def test_the_pack_catches_the_azure_mutations(outcomes: list[Outcome], capsys: pytest.CaptureFixture[str]) -> None:
    """At 95 % or more in each shape, over a catalogue of 40 or more varied mutations named once."""
    report = table(outcomes)
    with capsys.disabled():
        print(f"\npolicy mutation suite ({len(AZURE_MUTATIONS)} mutations of the {AZURE_STACK} plan):\n{report}")
    assert catalogue_problems(outcomes, AZURE_MUTATIONS) == [], report


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
