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
from tests.unit.policy_mutations import SHAPES, Outcome, base_plan, blocking, catalogue_problems, judge, table
from tests.unit.policy_mutations_azure import AZURE_MUTATIONS, AZURE_STACK


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return judge(AZURE_MUTATIONS, SHAPES, AZURE_STACK)


@pytest.mark.parametrize(("stack", "shape"), [(AZURE_STACK, "up"), (AZURE_STACK, "preview"), ("azure-dev", "up")])
def test_the_shipped_azure_plans_are_clean(stack: str, shape: str) -> None:
    """So that a caught mutation is the mutation's doing, and the pack passes what the program makes
    (azure-dev under its own, advisory config: nothing at all reported there at `up`)."""
    assert blocking(stack, shape, advisory_too=stack == "azure-dev") == []


def _not_judged_at_preview(stack: str) -> set[str]:
    """The policies that leave some resource of the stack's first preview unjudged (a value unknown there)."""
    config, _ = stack_config(stack)
    found = run_policies(plan_resources(base_plan("preview", stack)), load_pack_config(pack_config_for(config)), config)
    return {v.policy for v in found if v.level is not EnforcementLevel.MANDATORY and "during preview" in v.message}


def test_a_first_preview_of_azure_leaves_unjudged_only_what_gcp_does() -> None:
    """The machines' custom data holds the deployment's key, unknown until it is generated, on every
    cloud; everything else the pack reads on Azure (the security rules' groups, grant scopes, tags)
    is made from names and judged in a first preview."""
    assert _not_judged_at_preview(AZURE_STACK) == _not_judged_at_preview("gcp-prod") == {
        "no-secret-in-rendered-config",
        "no-generated-secret-outside-secret-stores",
    }


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
