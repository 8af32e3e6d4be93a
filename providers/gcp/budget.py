"""GCP budget: a monthly Cloud Billing budget of the stack's spend, with e-mail alerts on actual
and forecast spend (design §8.5) through Cloud Monitoring e-mail channels.

By the stack's label, unlike AWS (`providers.aws.budget`): Cloud Billing attributes the labels of
labelled resources to their usage from the first hour, with no activation step, so a budget on the
`stack` label counts exactly this stack's labelled spend, also where stacks share a project. It is
also held to the stack's project. Usage that reaches billing without its resource's labels is not
counted (which services attribute labels could not be checked here, without a billing account);
the machines, disks and bucket, nearly all of the stack's cost (design §8.5), carry theirs.
Only the listed addresses are told, as on AWS: the billing account's administrators, whom Cloud
Billing tells by default, are left out.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from components.base import Scope
from components.budget import BudgetPlan, BudgetResult
from dpc.settings import GcpSettings
from providers.gcp.labels import label_key, label_value, scope_labels

SPEND_BASIS = {"actual": "CURRENT_SPEND", "forecast": "FORECASTED_SPEND"}

def _amount(usd: float) -> gcp.billing.BudgetAmountSpecifiedAmountArgsDict:
    """Dollars as Cloud Billing's money: whole units and nanos."""
    cents = round(usd * 100)
    return {"currency_code": "USD", "units": str(cents // 100), "nanos": cents % 100 * 10_000_000}


def build_budget(settings: GcpSettings, scope: Scope, plan: BudgetPlan) -> BudgetResult:
    """Creates one e-mail channel per recipient (at most `BUDGET_CHANNEL_LIMIT`, which GCP settings
    check) and the budget on the billing account.
    """
    channels = [
        gcp.monitoring.NotificationChannel(
            scope.child(f"email-{index}"),
            type="email",
            display_name=f"{scope.name} budget: {email}",
            labels={"email_address": email},
            user_labels=scope_labels(scope, Name=scope.child(f"email-{index}")),
            opts=scope.opts(),
        )
        for index, email in enumerate(plan.emails, start=1)
    ]
    project = gcp.organizations.get_project_output(opts=pulumi.InvokeOutputOptions(parent=scope.component))
    budget = gcp.billing.Budget(
        scope.child("monthly"),
        billing_account=settings.billing_account,
        display_name=scope.child("monthly"),
        amount={"specified_amount": _amount(plan.monthly_usd)},
        budget_filter={
            "projects": [project.number.apply(lambda number: f"projects/{number}")],
            "labels": {label_key("Stack"): label_value(scope.tags["Stack"])},
            "calendar_period": "MONTH",
        },
        threshold_rules=[{"threshold_percent": alert.percent / 100, "spend_basis": SPEND_BASIS[alert.kind]} for alert in plan.alerts],
        all_updates_rule={"monitoring_notification_channels": [channel.id for channel in channels], "disable_default_iam_recipients": True},
        opts=scope.opts(),
    )
    return BudgetResult(name=budget.name)
