"""The coordinators' weekly digest: what the pool did in the week, and where the money stands."""

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from db.models import Budget, LedgerEntry, Request, UnmetDemand
from services import budget_picture, ledger
from services.due import weeks_later
from services.notices import DigestWeekly
from services.outbox import notify
from services.vocabulary import LedgerKind, Recipient, UnmetReason


def send_digest(session: Session, district_id: int, *, until: datetime, now: datetime) -> None:
    """Tell the coordinators about the seven days before `until`."""
    since = weeks_later(until, -1)
    bookings = session.exec(
        select(func.count())
        .select_from(Request)
        .where(
            Request.district_id == district_id,
            col(Request.booked_at) >= since,
            col(Request.booked_at) < until,
        )
    ).one()
    charged = session.exec(
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .join(Budget, col(Budget.id) == LedgerEntry.budget_id)
        .where(
            Budget.district_id == district_id,
            col(LedgerEntry.kind).in_([LedgerKind.CHARGE.value, LedgerKind.ADJUST.value]),
            col(LedgerEntry.created_at) >= since,
            col(LedgerEntry.created_at) < until,
        )
    ).one()
    unmet = session.exec(
        select(UnmetDemand).where(
            UnmetDemand.district_id == district_id,
            col(UnmetDemand.created_at) >= since,
            col(UnmetDemand.created_at) < until,
        )
    ).all()
    budget = ledger.find_budget(session, district_id, ledger.fiscal_year(until))
    balance = ledger.balance_of(budget) if budget else None
    pace = budget_picture.projection_of(session, budget, until) if budget else None
    notify(
        session,
        district_id=district_id,
        recipient=Recipient.COORDINATORS,
        recipient_id=district_id,
        notice=DigestWeekly(
            since_at=since,
            bookings=int(bookings),
            charged_cents=int(charged),
            available_cents=balance.available_cents if balance else 0,
            used_percent=round(balance.used_percent) if balance else 0,
            unfilled=len({u.request_id for u in unmet if u.reason == UnmetReason.NOT_FILLED.value}),
            uncovered=tuple(sorted({u.language for u in unmet if u.reason == UnmetReason.NOT_COVERED.value})),
            year_end_cents=pace.year_end_cents if pace else None,
            runs_out_on=pace.runs_out_on if pace else None,
        ),
        now=now,
    )
