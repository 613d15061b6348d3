"""Budget alerts: coordinators are told when a year's budget crosses the policy's shares, once each."""

from datetime import datetime

from sqlmodel import Session, select

from db.models import Budget, DueTask
from services.due import Kind, Outcome
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
        variant = str(threshold)
        sent = session.exec(
            select(DueTask).where(
                DueTask.kind == Kind.BUDGET_ALERT.value,
                DueTask.subject_id == budget.id,
                DueTask.variant == variant,
            )
        ).first()
        if sent is not None:
            continue
        session.add(
            DueTask(
                district_id=budget.district_id,
                kind=Kind.BUDGET_ALERT.value,
                subject_id=budget.id,
                variant=variant,
                due_at=now,
                done_at=now,
                outcome=Outcome.DONE.value,
                created_at=now,
            )
        )
        notify(
            session,
            district_id=budget.district_id,
            recipient=Recipient.COORDINATORS,
            recipient_id=budget.district_id,
            template="budget.alert",
            now=now,
            year=budget.fiscal_year,
            threshold_percent=threshold,
            available_cents=budget.total_cents - spent,
        )
