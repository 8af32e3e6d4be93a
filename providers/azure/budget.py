"""Azure budget: a monthly Cost Management budget of the stack's spend, with e-mail alerts on actual
and forecast spend (design §8.5).

By the stack's `Stack` tag, at the subscription's scope, as on GCP (`providers.gcp.budget`) and
unlike AWS: Cost Management attributes a resource's tags to its usage from the time they are set,
with no activation step, so the budget counts exactly this stack's tagged spend, also where stacks
share a subscription (every resource the stack creates carries the tag, its resource group too).
Usage that reaches Cost Management without its resource's tags is not counted (a few services
emit none; which ones could not be checked here); the machines, disks and storage, nearly all of
the stack's cost (design §8.5), carry theirs.

The amount is in the billing account's currency, which Azure chooses (USD for most accounts
billed in the United States): `budget.monthlyUsd` is taken as that amount.

A budget starts on the first day of a month, and Azure refuses a start in an earlier month at
creation: it starts in the month of the first deployment, and later runs keep that start
(`timePeriod` is not updated), so a plan of an unchanged stack stays unchanged.
"""

from __future__ import annotations

import datetime

from pulumi_azure_native import consumption

from components.base import Scope
from components.budget import BudgetPlan, BudgetResult
from providers.azure.provider import AzureStack

THRESHOLD_TYPE = {"actual": consumption.ThresholdType.ACTUAL, "forecast": consumption.ThresholdType.FORECASTED}


def month_start(today: datetime.date) -> str:
    """The first day of `today`'s month, as a budget's start date."""
    return today.replace(day=1).isoformat()


def build_budget(azure: AzureStack, scope: Scope, plan: BudgetPlan) -> BudgetResult:
    """Creates the budget on the subscription, filtered on the stack's tag, one notification per
    alert to the listed addresses alone (no role of the subscription is told).
    """
    budget = consumption.Budget(
        scope.child("monthly"),
        budget_name=scope.child("monthly"),
        scope=f"/subscriptions/{azure.subscription_id}",
        amount=plan.monthly_usd,
        category=consumption.CategoryType.COST,
        time_grain=consumption.TimeGrainType.MONTHLY,
        time_period={"start_date": month_start(datetime.datetime.now(datetime.UTC).date())},
        filter={"tags": {"name": "Stack", "operator": consumption.BudgetOperatorType.IN_, "values": [scope.tags["Stack"]]}},
        notifications={
            f"{alert.kind}-{alert.percent}": {
                "enabled": True,
                "operator": consumption.OperatorType.GREATER_THAN_OR_EQUAL_TO,
                "threshold": alert.percent,
                "threshold_type": THRESHOLD_TYPE[alert.kind],
                "contact_emails": list(plan.emails),
            }
            for alert in plan.alerts
        },
        opts=scope.opts(ignore_changes=["timePeriod"]),
    )
    return BudgetResult(name=budget.name)
