"""AWS budget: a monthly cost budget of the account's spend in the stack's regions, with e-mail
alerts on actual and forecast spend (design §8.5). Not by the `Stack` tag: AWS Budgets filters by a
tag only once it is activated as a cost allocation tag, which a new account can do only after
billing has seen the tag (up to 24 hours after the first tagged resource), from the organisation's
management account; before that a tag-filtered budget silently tracks nothing (`components.budget`).
"""

from __future__ import annotations

import pulumi_aws as aws

from components.base import Scope
from components.budget import BudgetPlan, BudgetResult

NOTIFICATION_TYPE = {"actual": "ACTUAL", "forecast": "FORECASTED"}


def build_budget(scope: Scope, plan: BudgetPlan) -> BudgetResult:
    """Creates the budget and its notifications."""
    budget = aws.budgets.Budget(
        scope.child("monthly"),
        budget_type="COST",
        limit_amount=f"{plan.monthly_usd:.2f}",
        limit_unit="USD",
        time_unit="MONTHLY",
        cost_filters=[{"name": "Region", "values": list(plan.regions)}],
        notifications=[
            {
                "comparison_operator": "GREATER_THAN",
                "notification_type": NOTIFICATION_TYPE[alert.kind],
                "threshold": alert.percent,
                "threshold_type": "PERCENTAGE",
                "subscriber_email_addresses": list(plan.emails),
            }
            for alert in plan.alerts
        ],
        tags=scope.tags_with(Name=scope.child("monthly")),
        opts=scope.opts(),
    )
    return BudgetResult(name=budget.name)
