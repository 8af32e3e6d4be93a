"""Budget: the stack's monthly cost budget and its alerts (seed §10.3)."""

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
    """The amount, who is told, and when."""

    monthly_usd: float
    emails: tuple[str, ...]
    alerts: tuple[BudgetAlert, ...]
    stack: str


@dataclass(frozen=True)
class BudgetResult:
    """The budget's name, for the console and the cost review."""

    name: pulumi.Output[str]


class Budget(Component[BudgetPlan, BudgetResult]):
    """The stack's cost budget."""

    type_token = "dpc:budget:Budget"
