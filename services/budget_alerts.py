"""Budget alerts: coordinators are told when a year's budget crosses the policy's shares, once each."""

from datetime import datetime

from sqlmodel import Session

from db.models import Budget
from services.due import Kind, mark_once
from services.notices import BudgetAlert
from services.outbox import notify
from services.policy import load_policy
from services.vocabulary import Recipient


def check_budget_alerts(session: Session, budget: Budget, now: datetime) -> None:
    """Called under the budget row's lock after each posting; each threshold alerts once per budget."""
    assert budget.id is not None
    policy = load_policy(session, budget.district_id)
    spent = budget.reserved_cents + budget.charged_cents
    used = 100 * spent / budget.total_cents if budget.total_cents else 100.0
    for threshold in sorted({policy.budget_alert_first, policy.budget_alert_second}):
        if used < threshold:
            break
        if not mark_once(
            session,
            district_id=budget.district_id,
            kind=Kind.BUDGET_ALERT,
            subject_id=budget.id,
            variant=str(threshold),
            now=now,
        ):
            continue
        notify(
            session,
            district_id=budget.district_id,
            recipient=Recipient.COORDINATORS,
            recipient_id=budget.district_id,
            notice=BudgetAlert(
                year=budget.fiscal_year,
                threshold_percent=threshold,
                available_cents=budget.total_cents - spent,
            ),
            now=now,
        )
