"""Budget: the stack's monthly cost budget and its alerts (design §8.5)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.base import Component


@dataclass(frozen=True)
class BudgetAlert:
    """Tell the subscribers when actual or forecast spend passes a share of the budget."""

    kind: str
    """"actual" or "forecast"."""
    percent: int


BUDGET_ALERTS: tuple[BudgetAlert, ...] = (
    BudgetAlert("actual", 80),
    BudgetAlert("actual", 100),
    BudgetAlert("forecast", 100),
)


@dataclass(frozen=True)
class BudgetPlan:
    """The amount, who is told, when, and which spend counts: the account's spend in the regions
    the stack runs in. A filter on the stack's own tag would be exact, but a cloud's billing counts
    a tag only once someone has activated it for cost allocation, which a new account cannot do
    until billing has seen the tag (AWS: up to 24 hours after the first tagged resource, and only
    from the organisation's management account); until then such a budget tracks nothing. Regions
    work from the first hour, and count exactly the stack's spend in an account of its own.
    """

    monthly_usd: float
    emails: tuple[str, ...]
    alerts: tuple[BudgetAlert, ...]
    regions: tuple[str, ...]
    """The stack's region and, where backups are copied to a second region, that one."""


@dataclass(frozen=True)
class BudgetResult:
    """The budget's name, for the console and the cost review."""

    name: pulumi.Output[str]


class Budget(Component[BudgetPlan, BudgetResult]):
    """The stack's cost budget."""

    type_token = "dpc:budget:Budget"
