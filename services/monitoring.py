"""Figures for watching the service from outside (`/healthz`, `/metrics`): read-only, and cheap.

Undelivered means written for someone and neither sent nor given up: an outbox message not yet
turned into deliveries, or a delivery (a notification or an answer) still waiting for its send or
its retry. Its age counts from when it was written: the outbox message's time, or for an answer
the time it was stored (`give_up_at` less its patience).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from db.models import Budget, Delivery, District, DueTask, OutboxMessage, Request
from services.deliveries import ANSWER_PATIENCE
from services.due import Outcome
from services.ledger import fiscal_year


@dataclass(frozen=True)
class Figures:
    """What `/healthz` reports from the database and `/metrics` shows as gauges."""

    failed_due_rows: int
    oldest_undelivered_at: datetime | None
    requests: dict[tuple[str, str], int]  # (district slug, state) -> how many requests
    budgets_available: dict[str, int]  # district slug -> cents available in `year`
    year: int


def failed_due_rows(session: Session) -> int:
    """Due rows whose handler failed (outcome `failed`): each wants a look by a person."""
    query = select(func.count()).select_from(DueTask).where(DueTask.outcome == Outcome.FAILED.value)
    return int(session.exec(query).one())


def oldest_undelivered_at(session: Session) -> datetime | None:
    """When the oldest notification or answer that is neither sent nor given up was written."""
    pending = (col(Delivery.sent_at).is_(None), col(Delivery.failed_at).is_(None))
    candidates: list[datetime | None] = [
        session.exec(
            select(func.min(OutboxMessage.created_at)).where(col(OutboxMessage.expanded_at).is_(None))
        ).one(),
        session.exec(
            select(func.min(OutboxMessage.created_at))
            .join(Delivery, col(Delivery.outbox_id) == OutboxMessage.id)
            .where(*pending)
        ).one(),
    ]
    answer = (col(Delivery.outbox_id).is_(None), *pending)
    stored = session.exec(select(func.min(Delivery.give_up_at)).where(*answer)).one()
    candidates.append(stored - ANSWER_PATIENCE if stored is not None else None)
    # Answers from before `give_up_at` existed: their first due time is when they were stored.
    candidates.append(
        session.exec(
            select(func.min(Delivery.due_at)).where(*answer, col(Delivery.give_up_at).is_(None))
        ).one()
    )
    found = [moment for moment in candidates if moment is not None]
    return min(found) if found else None


def requests_by_state(session: Session) -> dict[tuple[str, str], int]:
    """How many requests each district has in each state."""
    query = (
        select(District.slug, Request.state, func.count())
        .join(District, col(District.id) == Request.district_id)
        .group_by(District.slug, Request.state)
    )
    return {(slug, state): int(count) for slug, state, count in session.exec(query).all()}


def budgets_available(session: Session, year: int) -> dict[str, int]:
    """Each district's available cents in `year`, for the districts that have a budget that year."""
    query = select(District.slug, Budget).join(Budget, col(Budget.district_id) == District.id)
    rows = session.exec(query.where(Budget.fiscal_year == year)).all()
    return {slug: budget.total_cents - budget.reserved_cents - budget.charged_cents for slug, budget in rows}


def figures(session: Session, now: datetime) -> Figures:
    year = fiscal_year(now)
    return Figures(
        failed_due_rows=failed_due_rows(session),
        oldest_undelivered_at=oldest_undelivered_at(session),
        requests=requests_by_state(session),
        budgets_available=budgets_available(session, year),
        year=year,
    )
