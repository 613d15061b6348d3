"""The tax-free volunteer allowance (Ehrenamtspauschale): what interpreters were paid against it.

Coordinators are told, once per interpreter and year, when someone's pay reaches 90 % of the
policy's allowance and again when it goes beyond it, so the county can act before a tax problem
arises. Pay counts by the session's year (Berlin); a correction or a late cancellation counts too.
"""

from datetime import datetime

from sqlmodel import Session

from services.billing_report import paid_in_year
from services.due import Kind, mark_once
from services.notices import AllowanceExceeded, AllowanceNear
from services.outbox import notify
from services.policy import load_policy
from services.vocabulary import Recipient

WARNING_PERCENTS = (90, 100)


def check_allowance(
    session: Session, *, district_id: int, interpreter_id: int, year: int, now: datetime
) -> None:
    """Call after pay changed (settled, corrected, a cancellation fee): warn once per threshold."""
    allowance = load_policy(session, district_id).volunteer_allowance
    if allowance <= 0:
        return
    paid = paid_in_year(session, district_id, interpreter_id, year)
    for percent in WARNING_PERCENTS:
        if paid * 100 < allowance * percent:
            break
        if not mark_once(
            session,
            district_id=district_id,
            kind=Kind.ALLOWANCE_WARNING,
            subject_id=interpreter_id,
            variant=f"{year}:{percent}",
            now=now,
        ):
            continue
        warning: type[AllowanceNear | AllowanceExceeded] = (
            AllowanceNear if percent < 100 else AllowanceExceeded
        )
        notify(
            session,
            district_id=district_id,
            recipient=Recipient.COORDINATORS,
            recipient_id=district_id,
            notice=warning(
                interpreter_id=interpreter_id,
                year=year,
                paid_cents=paid,
                allowance_cents=allowance,
            ),
            now=now,
        )
